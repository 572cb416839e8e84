"""Dropout kernels: inverted dropout with a mask drawn inside the kernel (fast mode), and the
application of the book's float64 np.random.binomial mask (book mode). Backward next to forward.

Fast mode: every element gets a 16-bit uniform number from a vectorised xorshift128+ generator
seeded by one number; it is kept when that number is below round(keep * 65536), and kept values
are scaled by 1 / keep (inverted dropout, as the book). The seed comes from NumPy's global RNG (one
draw per forward pass, made by the Python layer), so `np.random.seed` reproduces a run, and the
mask does not depend on the number of threads. The keep probability is quantised to 1/65536
(an error below 1.6e-5).
"""
from libc.stdint cimport uint16_t, uint64_t
from libc.string cimport memcpy

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, ready, ready_float, ready_like, reuse, same_shape
from _xorshift cimport CHUNK, CHUNK_STEPS, CHUNK_WORDS, _seed_lanes, fastnn_xorshift128p_fill, LANES

# The mask generator (_xorshift.pxd): a fixed function of (seed, element index); the elements
# are processed CHUNK at a time in two vectorisable passes: fill a buffer with CHUNK 16-bit
# draws, then compare, scale and multiply.


cdef inline void _fast_forward(const floating* inputs, floating* output, floating* mask, Py_ssize_t n,
                               int threshold, floating scale, uint64_t seed) noexcept nogil:
    cdef uint64_t s0[LANES]
    cdef uint64_t s1[LANES]
    cdef uint64_t words[CHUNK_WORDS]
    cdef uint16_t draws[CHUNK]
    cdef Py_ssize_t start, k, step, count
    cdef floating m
    _seed_lanes(seed, s0, s1)
    start = 0
    while start < n:
        fastnn_xorshift128p_fill(s0, s1, words, CHUNK_STEPS)
        memcpy(draws, words, sizeof(words))  # the 16-bit pieces, without breaking strict aliasing
        count = min(<Py_ssize_t>CHUNK, n - start)
        for k in range(count):
            m = scale if <int>draws[k] < threshold else 0
            mask[start + k] = m
            output[start + k] = inputs[start + k] * m
        start += CHUNK


# Applies a mask of the data's dtype: output = inputs * mask (fast mode forward's product, and
# the backward of both modes when the mask has the data's dtype).
cdef inline void _apply_mask(const floating* values, const floating* mask, floating* out,
                             Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = values[i] * mask[i]


# Book mode: the mask is the book's float64 binomial / keep; the product is taken in double and
# rounded once, exactly as NumPy computes float32 * float64 followed by astype(float32).
cdef inline void _apply_mask64(const floating* values, const double* mask, floating* out,
                               Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = <floating>(<double>values[i] * mask[i])


def fast_forward(dict state, object inputs, double keep, uint64_t seed):
    """Training forward in fast mode: sets `inputs`, `binary_mask` (0 or 1/keep, inputs' dtype)
    and `output`. False, changing nothing, when inputs is not a C-contiguous float array."""
    if not ready_float(inputs):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef cnp.ndarray mask = reuse(state, "binary_mask", x.ndim, cnp.PyArray_DIMS(x), typenum, x, None)
    cdef cnp.ndarray output = reuse(state, "output", x.ndim, cnp.PyArray_DIMS(x), typenum, x, mask)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    # keep in (0, 1]; keep == 1 keeps every element (threshold above any 16-bit draw).
    cdef int threshold = <int>(keep * 65536.0 + 0.5)
    cdef void* px = data(x)
    cdef void* pm = data(mask)
    cdef void* po = data(output)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _fast_forward(<float*>px, <float*>po, <float*>pm, n, threshold, <float>(1.0 / keep), seed)
        else:
            _fast_forward(<double*>px, <double*>po, <double*>pm, n, threshold, 1.0 / keep, seed)
    state["inputs"] = x
    return True


def book_forward(dict state, object inputs, cnp.ndarray mask not None):
    """Training forward in book mode: output = inputs * mask (mask: the book's float64 array of
    inputs' shape, stored as `binary_mask`). False when inputs is not a C-contiguous float array."""
    if not ready_float(inputs):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if not ready(mask, cnp.NPY_FLOAT64) or cnp.PyArray_SIZE(mask) != cnp.PyArray_SIZE(x):
        raise ValueError("fastnn internal error: book dropout mask does not match the inputs")
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef cnp.ndarray output = reuse(state, "output", x.ndim, cnp.PyArray_DIMS(x), typenum, x, mask)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void* px = data(x)
    cdef void* pm = data(mask)
    cdef void* po = data(output)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _apply_mask64(<float*>px, <double*>pm, <float*>po, n)
        else:
            _apply_mask64(<double*>px, <double*>pm, <double*>po, n)
    state["inputs"] = x
    state["binary_mask"] = mask
    return True


def backward(dict state, object dvalues):
    """dinputs = dvalues * binary_mask. False when dvalues is not a C-contiguous array of the
    forward's shape and dtype (the Python layer converts it or raises)."""
    mask = state.get("binary_mask")
    inputs = state.get("inputs")
    if not ready_float(dvalues) or not ready_float(inputs) or not ready_float(mask):
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues, m = <cnp.ndarray>mask, x = <cnp.ndarray>inputs
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dv)
    if not ready_like(dv, x) or not same_shape(m, x):
        return False
    cdef int mask_type = cnp.PyArray_TYPE(m)
    if mask_type != typenum and mask_type != cnp.NPY_FLOAT64:
        return False
    cdef cnp.ndarray dinputs = reuse(state, "dinputs", dv.ndim, cnp.PyArray_DIMS(dv), typenum, dv, m)
    cdef void* pdv = data(dv)
    cdef void* pm = data(m)
    cdef void* pdx = data(dinputs)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if mask_type == cnp.NPY_FLOAT64:
                _apply_mask64(<float*>pdv, <double*>pm, <float*>pdx, n)
            else:
                _apply_mask(<float*>pdv, <float*>pm, <float*>pdx, n)
        else:
            _apply_mask64(<double*>pdv, <double*>pm, <double*>pdx, n)
    return True
