"""Image-batch augmentation kernels: a random crop of the zero-padded image and a horizontal flip,
one pass that writes each augmented sample into a reused output buffer. Layout NCHW.

For sample i with crop offsets (rows[i], cols[i]) in [0, 2 * padding] and flip flag flips[i]:

    output[i, c, h, w] = inputs[i, c, h + rows[i] - padding, x + cols[i] - padding]
    x = W - 1 - w when flips[i] else w

and 0 where that position falls outside the image (the zero padding). The draws come from the
caller (fastnn/augment.py takes them from NumPy's global RNG), so the kernel is a pure copy:
bit-identical to fastnn.reference's NumPy version given the same draws.
"""
from libc.string cimport memcpy, memset

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, overlaps, ready, same_shape

cpdef enum:
    OK = 0            # done
    CONVERT = 1       # inputs is not a C-contiguous float32/float64 (N, C, H, W) array; nothing changed
    BAD_OUTPUT = 2    # output is not a writeable C-contiguous array of inputs' dtype and shape, or
                      # shares memory with inputs
    BAD_DRAWS = 3     # rows/cols/flips are not 1-D arrays of length N (intp, intp, bool) with the
                      # offsets in [0, 2 * padding], or padding is negative


cdef inline void _row(const floating* src, floating* dst, Py_ssize_t w, Py_ssize_t shift,
                      bint flip) noexcept nogil:
    """One output row of width w from the source row `src` (width w) read at columns
    x + shift, x = w - 1 - j when flipped, else j; zeros outside [0, w)."""
    cdef Py_ssize_t j, x, lo, hi
    if not flip:
        # Columns j with 0 <= j + shift < w: one copy, zeros on either side.
        lo = -shift if shift < 0 else 0
        hi = w - shift if shift > 0 else w
        if lo >= hi:
            memset(dst, 0, w * sizeof(floating))
            return
        if lo > 0:
            memset(dst, 0, lo * sizeof(floating))
        memcpy(dst + lo, src + lo + shift, (hi - lo) * sizeof(floating))
        if hi < w:
            memset(dst + hi, 0, (w - hi) * sizeof(floating))
        return
    for j in range(w):
        x = w - 1 - j + shift
        dst[j] = src[x] if 0 <= x < w else 0


cdef inline void _crop_flip(const floating* inputs, floating* output, const Py_ssize_t* rows,
                            const Py_ssize_t* cols, const cnp.npy_bool* flips, Py_ssize_t n,
                            Py_ssize_t channels, Py_ssize_t h, Py_ssize_t w, Py_ssize_t padding) noexcept nogil:
    cdef Py_ssize_t i, c, r, source, dy, dx
    cdef bint flip
    cdef const floating* plane
    cdef floating* out
    for i in range(n):
        dy = rows[i] - padding if rows != NULL else 0
        dx = cols[i] - padding if cols != NULL else 0
        flip = flips != NULL and flips[i]
        for c in range(channels):
            plane = inputs + (i * channels + c) * h * w
            out = output + (i * channels + c) * h * w
            for r in range(h):
                source = r + dy
                if source < 0 or source >= h:
                    memset(out + r * w, 0, w * sizeof(floating))
                else:
                    _row(plane + source * w, out + r * w, w, dx, flip)


cdef bint _offsets(object offsets, Py_ssize_t n, Py_ssize_t high) noexcept:
    """None, or a 1-D intp array of length n with every value in [0, high]."""
    if offsets is None:
        return True
    if not ready(offsets, cnp.NPY_INTP):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>offsets
    if a.ndim != 1 or a.shape[0] != n:
        return False
    cdef const Py_ssize_t* p = <const Py_ssize_t*>data(a)
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] < 0 or p[i] > high:
            return False
    return True


def crop_flip(object inputs, object output, object rows, object cols, object flips, Py_ssize_t padding):
    """Write the augmented `inputs` (N, C, H, W) into `output` (the same shape and dtype): crop
    offsets `rows`/`cols` (intp arrays of length N, values in [0, 2 * padding], or None for no
    crop) and flip flags `flips` (a bool array of length N, or None for no flip). Returns a status:
    OK, or CONVERT / BAD_OUTPUT / BAD_DRAWS (see the constants) having written nothing."""
    if not (ready(inputs, cnp.NPY_FLOAT32) or ready(inputs, cnp.NPY_FLOAT64)) or (<cnp.ndarray>inputs).ndim != 4:
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef int typenum = cnp.PyArray_TYPE(x)
    if not ready(output, typenum) or not same_shape(<cnp.ndarray>output, x) \
            or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>output) or overlaps(<cnp.ndarray>output, x):
        return BAD_OUTPUT
    cdef cnp.ndarray out = <cnp.ndarray>output
    cdef Py_ssize_t n = x.shape[0]
    if padding < 0 or (rows is None) != (cols is None) or not _offsets(rows, n, 2 * padding) \
            or not _offsets(cols, n, 2 * padding):
        return BAD_DRAWS
    if flips is not None and (not ready(flips, cnp.NPY_BOOL) or (<cnp.ndarray>flips).ndim != 1
                              or (<cnp.ndarray>flips).shape[0] != n):
        return BAD_DRAWS
    cdef const Py_ssize_t* p_rows = NULL if rows is None else <const Py_ssize_t*>data(<cnp.ndarray>rows)
    cdef const Py_ssize_t* p_cols = NULL if cols is None else <const Py_ssize_t*>data(<cnp.ndarray>cols)
    cdef const cnp.npy_bool* p_flips = NULL if flips is None else <const cnp.npy_bool*>data(<cnp.ndarray>flips)
    cdef Py_ssize_t channels = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef void* p_x = data(x)
    cdef void* p_out = data(out)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _crop_flip(<const float*>p_x, <float*>p_out, p_rows, p_cols, p_flips, n, channels, h, w, padding)
        else:
            _crop_flip(<const double*>p_x, <double*>p_out, p_rows, p_cols, p_flips, n, channels, h, w, padding)
    return OK
