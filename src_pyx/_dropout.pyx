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

# The mask generator: LANES independent xorshift128+ generators (Vigna 2014) advanced side by
# side, so the update loop is a handful of 64-bit shifts, xors and adds that compilers vectorise on
# any x86-64 (no 32-bit multiplies, which SSE2 lacks). Each step yields LANES 64-bit words, cut
# into four 16-bit draws each: DRAWS = 4 * LANES elements per step. The lanes are seeded from the
# one seed by splitmix64, so the mask is a fixed function of (seed, element index).
cdef enum:
    LANES = 8
    DRAWS = 32


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline void _seed_lanes(uint64_t seed, uint64_t* s0, uint64_t* s1) noexcept nogil:
    cdef int lane
    for lane in range(LANES):
        s0[lane] = _splitmix64(&seed)
        s1[lane] = _splitmix64(&seed)
        if s0[lane] == 0 and s1[lane] == 0:  # the one state xorshift128+ cannot leave
            s1[lane] = 1


# LANES = 8 xorshift128+ generators advanced side by side, `steps` times, appending 8 words per step
# to `out`. Written with GCC/clang vector types (two 64-bit lanes per 128-bit register): compilers
# do not vectorise the plain loop by themselves. Other compilers get the same words from the
# scalar loop.
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline void fastnn_xorshift128p_fill(uint64_t *s0, uint64_t *s1, uint64_t *out, int steps) {
    #if defined(__GNUC__) || defined(__clang__)
        typedef uint64_t u64x2 __attribute__((vector_size(16)));
        u64x2 a[4], b[4];
        memcpy(a, s0, sizeof a);
        memcpy(b, s1, sizeof b);
        for (int step = 0; step < steps; ++step) {
            for (int v = 0; v < 4; ++v) {
                u64x2 x = a[v], y = b[v];
                a[v] = y;
                x ^= x << 23;
                x = x ^ y ^ (x >> 17) ^ (y >> 26);
                b[v] = x;
                u64x2 r = x + y;
                memcpy(out + 8 * step + 2 * v, &r, sizeof r);
            }
        }
        memcpy(s0, a, sizeof a);
        memcpy(s1, b, sizeof b);
    #else
        for (int step = 0; step < steps; ++step) {
            for (int lane = 0; lane < 8; ++lane) {
                uint64_t x = s0[lane], y = s1[lane];
                s0[lane] = y;
                x ^= x << 23;
                x = x ^ y ^ (x >> 17) ^ (y >> 26);
                s1[lane] = x;
                out[8 * step + lane] = x + y;
            }
        }
    #endif
    }
    """
    void fastnn_xorshift128p_fill(uint64_t* s0, uint64_t* s1, uint64_t* out, int steps) noexcept nogil


# The elements are processed CHUNK at a time in two vectorisable passes: fill a buffer with
# CHUNK 16-bit draws, then compare, scale and multiply.
cdef enum:
    CHUNK = 2048
    CHUNK_WORDS = 512    # CHUNK 16-bit draws in 64-bit words
    CHUNK_STEPS = 64     # generator steps per chunk (CHUNK / DRAWS)


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
