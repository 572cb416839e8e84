# Geometry of one convolution or pooling window (kernel, stride and padding per axis; "same"
# padding is the pair of sides PyTorch pads) and the im2col/col2im copies of one sample, for the
# Conv2D and MaxPool2D kernels (_conv.pyx, _pool.pyx). No .pyx sits behind this file: everything
# here is inline.
from libc.string cimport memcpy, memset
from cython cimport floating


# Short row copies and zero fills, inline. Written as plain loops, GCC turns them into calls to
# memcpy/memset, whose call and dispatch cost is most of the work for a row of 14 floats (im2col of
# a 3x3 convolution on a 14x14 plane copies about 500,000 such rows per batch of 128; the calls
# were a third of a conv forward+backward's time outside the GEMMs). The pragma, which applies to
# every function of a module that cimports this file, keeps them loops, which GCC vectorises.
cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC optimize("no-tree-loop-distribute-patterns")
    #endif
    """


cdef inline void copy_row(floating* d, const floating* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        d[i] = s[i]


cdef inline void zero_row(floating* d, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        d[i] = 0


cdef struct Geometry:
    Py_ssize_t n          # samples
    Py_ssize_t c, h, w    # input channels and plane
    Py_ssize_t o          # output channels
    Py_ssize_t kh, kw     # kernel height and width
    Py_ssize_t sh, sw     # strides along height and width
    Py_ssize_t pt, pb     # zero rows added above and below
    Py_ssize_t pl, pr     # zero columns added left and right
    Py_ssize_t oh, ow     # output plane
    Py_ssize_t ckk        # c * kh * kw: rows of the column matrix
    Py_ssize_t ohw        # oh * ow: its columns
    bint direct           # 1x1 kernel, stride 1, no padding: the input is the column matrix


cdef inline bint fits_plane(Geometry* g, Py_ssize_t h, Py_ssize_t w) noexcept nogil:
    """An (h, w) plane, padded, holds at least one window: set g's plane and output sizes."""
    if h < 1 or w < 1 or h + g.pt + g.pb < g.kh or w + g.pl + g.pr < g.kw:
        return False
    g.h = h
    g.w = w
    g.oh = (h + g.pt + g.pb - g.kh) // g.sh + 1
    g.ow = (w + g.pl + g.pr - g.kw) // g.sw + 1
    g.ohw = g.oh * g.ow
    return True


cdef inline bint int_pair(object value, Py_ssize_t low, Py_ssize_t* first, Py_ssize_t* second):
    """value is an int in [low, 2**31 - 1] or a tuple of two such ints: first and second get them
    (an int twice)."""
    cdef object a, b
    if type(value) is int:
        a = b = value
    elif type(value) is tuple and len(<tuple>value) == 2:
        a, b = value
    else:
        return False
    if type(a) is not int or type(b) is not int or not (low <= a <= 2147483647 and low <= b <= 2147483647):
        return False
    first[0] = a
    second[0] = b
    return True


cdef enum:
    WINDOW_OK = 0
    BAD_KERNEL_SIZE = 1
    BAD_WINDOW_STRIDE = 2
    BAD_WINDOW_PADDING = 3


cdef inline int window(object kernel_size, object stride, object padding, Geometry* g):
    """g's kernel, stride and padding fields from a layer's attributes: ints or (height, width)
    pairs, padding also "same" (stride 1; a total of k - 1 rows and columns, the extra one of an
    even kernel below and on the right, as PyTorch). WINDOW_OK, or which attribute is unusable."""
    if not int_pair(kernel_size, 1, &g.kh, &g.kw):
        return BAD_KERNEL_SIZE
    if not int_pair(stride, 1, &g.sh, &g.sw):
        return BAD_WINDOW_STRIDE
    if type(padding) is str and padding == "same":
        if g.sh != 1 or g.sw != 1:
            return BAD_WINDOW_PADDING
        g.pt = (g.kh - 1) // 2
        g.pb = g.kh - 1 - g.pt
        g.pl = (g.kw - 1) // 2
        g.pr = g.kw - 1 - g.pl
    elif int_pair(padding, 0, &g.pt, &g.pl):
        g.pb = g.pt
        g.pr = g.pl
    else:
        return BAD_WINDOW_PADDING
    return WINDOW_OK


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
# (col2im). The sample's (C*kh*kw, OH*OW) column matrix has rows ld apart (ld >= OH*OW): the
# columns of several samples side by side make one wide matrix, (C*kh*kw, S*OH*OW), ld = S*OH*OW.

cdef inline void _im2col(const floating* x, floating* columns, Py_ssize_t ld, const Geometry* g) noexcept nogil:
    cdef Py_ssize_t c, a, b, i, j, ih, j0, j1, i0, i1
    cdef Py_ssize_t kh = g.kh, kw = g.kw, sh = g.sh, sw = g.sw, pt = g.pt, pl = g.pl, w = g.w, ow = g.ow
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for c in range(g.c):
        for a in range(kh):
            _valid_range(a - pt, g.h, g.oh, sh, &i0, &i1)
            for b in range(kw):
                row = columns + ((c * kh + a) * kw + b) * ld
                _valid_range(b - pl, w, ow, sw, &j0, &j1)
                zero_row(row, i0 * ow)
                zero_row(row + i1 * ow, (g.oh - i1) * ow)
                for i in range(i0, i1):
                    ih = i * sh - pt + a
                    dst = row + i * ow
                    src = x + (c * g.h + ih) * w     # input row; column j reads src[j*sw + b - pl]
                    zero_row(dst, j0)
                    if sw == 1:
                        copy_row(dst + j0, src + (j0 + b - pl), j1 - j0)
                    else:
                        for j in range(j0, j1):
                            dst[j] = src[j * sw + b - pl]
                    zero_row(dst + j1, ow - j1)


cdef inline void _col2im(const floating* columns, Py_ssize_t ld, floating* dx, const Geometry* g) noexcept nogil:
    """dx (C, H, W) = the sum of every column entry at the input position it was copied from."""
    cdef Py_ssize_t c, a, b, i, j, ih, j0, j1, i0, i1
    cdef Py_ssize_t kh = g.kh, kw = g.kw, sh = g.sh, sw = g.sw, pt = g.pt, pl = g.pl, w = g.w, ow = g.ow
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    memset(dx, 0, g.c * g.h * w * sizeof(floating))
    for c in range(g.c):
        for a in range(kh):
            _valid_range(a - pt, g.h, g.oh, sh, &i0, &i1)
            for b in range(kw):
                row = columns + ((c * kh + a) * kw + b) * ld
                _valid_range(b - pl, w, ow, sw, &j0, &j1)
                for i in range(i0, i1):
                    ih = i * sh - pt + a
                    src = row + i * ow
                    dst = dx + (c * g.h + ih) * w    # input row; column j goes to dst[j*sw + b - pl]
                    if sw == 1:
                        for j in range(j0, j1):
                            dst[j + b - pl] += src[j]
                    else:
                        for j in range(j0, j1):
                            dst[j * sw + b - pl] += src[j]
