# Geometry of one convolution and the im2col/col2im copies of one sample, for the Conv2D kernels
# (_conv.pyx). No .pyx sits behind this file: everything here is inline.
from libc.string cimport memcpy, memset
from cython cimport floating


cdef struct Geometry:
    Py_ssize_t n          # samples
    Py_ssize_t c, h, w    # input channels and plane
    Py_ssize_t o          # output channels
    Py_ssize_t k, s, p    # kernel size, stride, padding
    Py_ssize_t oh, ow     # output plane
    Py_ssize_t ckk        # c * k * k: rows of the column matrix
    Py_ssize_t ohw        # oh * ow: its columns
    bint direct           # 1x1 kernel, stride 1, no padding: the input is the column matrix


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline void _valid_range(Py_ssize_t offset, Py_ssize_t size, Py_ssize_t out_size, Py_ssize_t s,
                              Py_ssize_t* first, Py_ssize_t* stop) noexcept nogil:
    """Output positions j in [first, stop) whose input index j*s + offset lies in [0, size)."""
    cdef Py_ssize_t lo = 0, hi
    if offset < 0:
        lo = _ceil_div(-offset, s)
    if size - 1 - offset < 0:
        hi = 0
    else:
        hi = (size - 1 - offset) // s + 1
    if hi > out_size:
        hi = out_size
    if lo > hi:
        lo = hi
    first[0] = lo
    stop[0] = hi


# ---------------------------------------------------------------------------------------------
# im2col / col2im for one sample. Rows that fall in the padding are zeros (im2col) or dropped
# (col2im).

cdef inline void _im2col(const floating* x, floating* columns, const Geometry* g) noexcept nogil:
    cdef Py_ssize_t c, a, b, i, j, ih, j0, j1, i0, i1
    cdef Py_ssize_t k = g.k, s = g.s, p = g.p, w = g.w, ow = g.ow
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for c in range(g.c):
        for a in range(k):
            _valid_range(a - p, g.h, g.oh, s, &i0, &i1)
            for b in range(k):
                row = columns + ((c * k + a) * k + b) * g.ohw
                _valid_range(b - p, w, ow, s, &j0, &j1)
                if i0 > 0:
                    memset(row, 0, i0 * ow * sizeof(floating))
                if i1 < g.oh:
                    memset(row + i1 * ow, 0, (g.oh - i1) * ow * sizeof(floating))
                for i in range(i0, i1):
                    ih = i * s - p + a
                    dst = row + i * ow
                    src = x + (c * g.h + ih) * w     # input row; column j reads src[j*s + b - p]
                    for j in range(j0):
                        dst[j] = 0
                    if s == 1:
                        memcpy(dst + j0, src + (j0 + b - p), (j1 - j0) * sizeof(floating))
                    else:
                        for j in range(j0, j1):
                            dst[j] = src[j * s + b - p]
                    for j in range(j1, ow):
                        dst[j] = 0


cdef inline void _col2im(const floating* columns, floating* dx, const Geometry* g) noexcept nogil:
    """dx (C, H, W) = the sum of every column entry at the input position it was copied from."""
    cdef Py_ssize_t c, a, b, i, j, ih, j0, j1, i0, i1
    cdef Py_ssize_t k = g.k, s = g.s, p = g.p, w = g.w, ow = g.ow
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    memset(dx, 0, g.c * g.h * w * sizeof(floating))
    for c in range(g.c):
        for a in range(k):
            _valid_range(a - p, g.h, g.oh, s, &i0, &i1)
            for b in range(k):
                row = columns + ((c * k + a) * k + b) * g.ohw
                _valid_range(b - p, w, ow, s, &j0, &j1)
                for i in range(i0, i1):
                    ih = i * s - p + a
                    src = row + i * ow
                    dst = dx + (c * g.h + ih) * w    # input row; column j goes to dst[j*s + b - p]
                    if s == 1:
                        for j in range(j0, j1):
                            dst[j + b - p] += src[j]
                    else:
                        for j in range(j0, j1):
                            dst[j * s + b - p] += src[j]
