"""Dropout kernels: inverted dropout with a mask drawn inside the kernel (fast mode), and the
application of the book's float64 np.random.binomial mask (book mode). Backward next to forward.

Fast mode: every element gets a 16-bit uniform number from a counter-based hash of (seed,
element index); it is kept when that number is below round(keep * 65536), and kept values are
scaled by 1 / keep (inverted dropout, as the book). The seed comes from NumPy's global RNG (one
draw per forward pass, made by the Python layer), so `np.random.seed` reproduces a run, and the
mask does not depend on the number of threads. The keep probability is quantised to 1/65536
(an error below 1.6e-5).
"""
from libc.stdint cimport uint32_t, uint64_t

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, ready, ready_float, ready_like, reuse, same_shape

# lowbias32 (Chris Wellons' hash prospector): a 32-bit integer hash with very low bias, written
# with 32-bit multiplies so compilers vectorise it on any x86-64.
cdef inline uint32_t _mix(uint32_t x) noexcept nogil:
    x ^= x >> 16
    x *= <uint32_t>0x7feb352d
    x ^= x >> 15
    x *= <uint32_t>0x846ca68b
    x ^= x >> 16
    return x


# One 32-bit word per pair of elements: two 16-bit draws.
cdef inline uint32_t _word(uint64_t pair, uint32_t seed0, uint32_t seed1) noexcept nogil:
    return _mix(_mix(<uint32_t>pair + seed0) ^ (seed1 + <uint32_t>(pair >> 32)))


cdef inline void _fast_forward(const floating* inputs, floating* output, floating* mask, Py_ssize_t n,
                               uint32_t threshold, floating scale, uint32_t seed0, uint32_t seed1) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint32_t word, u
    cdef floating m
    for i in range(n):
        word = _word(<uint64_t>(i >> 1), seed0, seed1)
        u = (word >> 16) if (i & 1) else (word & 0xFFFF)
        m = scale if u < threshold else 0
        mask[i] = m
        output[i] = inputs[i] * m


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
    cdef uint32_t threshold = <uint32_t>(keep * 65536.0 + 0.5)
    cdef uint32_t seed0 = <uint32_t>seed, seed1 = <uint32_t>(seed >> 32)
    cdef void* px = data(x)
    cdef void* pm = data(mask)
    cdef void* po = data(output)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _fast_forward(<float*>px, <float*>po, <float*>pm, n, threshold, <float>(1.0 / keep), seed0, seed1)
        else:
            _fast_forward(<double*>px, <double*>po, <double*>pm, n, threshold, 1.0 / keep, seed0, seed1)
    state["inputs"] = x
    return True


def book_forward(dict state, object inputs, cnp.ndarray mask):
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
