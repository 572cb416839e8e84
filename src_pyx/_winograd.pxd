# Winograd F(2x2, 3x3) for stride-1 3x3 convolutions (any padding), the transforms of one block of
# samples, for Conv2D (_conv.pyx). No .pyx sits behind this file: everything here is inline.
#
# Each 2x2 output tile Y of an output plane is A^T [ U (.) V ] A summed over the input channels,
# with U = G g G^T (g: one 3x3 kernel) and V = B^T d B (d: the 4x4 input patch, padding zeros,
# that the tile's outputs read), A^T (2x4), G (4x3), B^T (4x4):
#
#     A^T = | 1 1  1  0 |     G = |  1    0    0  |     B^T = | 1  0 -1  0 |
#           | 0 1 -1 -1 |         | 1/2  1/2  1/2 |           | 0  1  1  0 |
#                                 | 1/2 -1/2  1/2 |           | 0 -1  1  0 |
#                                 |  0    0    1  |           | 0  1  0 -1 |
#
# Element xi = 4k + l of the 4x4 transforms is one GEMM over the channels for every tile at once:
# M[xi] (O, P) = U[xi] (O, C) @ V[xi] (C, P), P the tiles of a block of samples (tile p = s*T +
# ti*TW + tj, sample s of the block, T = TH*TW tiles a plane, TH = ceil(OH/2), TW = ceil(OW/2)).
# Tiles past an odd OH or OW read zeros and their extra outputs are not written.
#
# The backward passes are the exact adjoints of that forward (so they are the gradients of the
# forward as computed, and of the convolution up to rounding):
#   dM = A dY A^T (dY's 2x2 tile, zeros past the plane), dU[xi] = dM[xi] @ V[xi].T summed over the
#   tiles, dweights = G^T dU G; dV[xi] = U[xi].T @ dM[xi], dinputs = the sum over the tiles of
#   B dV B^T at the patch each tile read (patches overlap by two rows and columns).
#
# A sample's planes are copied one channel at a time into a zero-padded plane of HP = 2*TH + 2
# rows, each row stored as its even columns then its odd columns (TW + 1 of each), so the
# transforms run without bounds checks and read and write whole vectors: each loop runs along a
# row of tiles (tj), and tile tj's four columns are even[tj], odd[tj], even[tj+1], odd[tj+1].
from cython cimport floating


cdef struct Tiles:
    Py_ssize_t th, tw     # tiles down and across a plane
    Py_ssize_t t          # th * tw
    Py_ssize_t hp, wp     # the zero-padded plane: 2*th + 2, 2*tw + 2


cdef inline void tiles_of(Tiles* tl, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    tl.th = (oh + 1) // 2
    tl.tw = (ow + 1) // 2
    tl.t = tl.th * tl.tw
    tl.hp = 2 * tl.th + 2
    tl.wp = 2 * tl.tw + 2


cdef inline void weights_transform(const floating* w, floating* u, Py_ssize_t o, Py_ssize_t c) noexcept nogil:
    """u (16, O, C): u[xi, oo, cc] = (G w[oo, cc] G^T)[xi] for weights w (O, C, 3, 3)."""
    cdef Py_ssize_t oo, cc, a, k, l
    cdef floating r[4][3]
    cdef const floating* g
    cdef Py_ssize_t stride = o * c
    for oo in range(o):
        for cc in range(c):
            g = w + (oo * c + cc) * 9
            for a in range(3):          # r = G g (4x3): column a
                r[0][a] = g[a]
                r[1][a] = (g[a] + g[3 + a] + g[6 + a]) * <floating>0.5
                r[2][a] = (g[a] - g[3 + a] + g[6 + a]) * <floating>0.5
                r[3][a] = g[6 + a]
            for k in range(4):          # r G^T (4x4): row k
                l = (k * 4) * stride + oo * c + cc
                u[l] = r[k][0]
                u[l + stride] = (r[k][0] + r[k][1] + r[k][2]) * <floating>0.5
                u[l + 2 * stride] = (r[k][0] - r[k][1] + r[k][2]) * <floating>0.5
                u[l + 3 * stride] = r[k][2]


cdef inline void weights_gradient(const floating* du, floating* dw, Py_ssize_t o, Py_ssize_t c) noexcept nogil:
    """dw (O, C, 3, 3) = G^T du[:, oo, cc] G for du (16, O, C)."""
    cdef Py_ssize_t oo, cc, k, l
    cdef floating q[3][4]
    cdef floating v0, v1, v2, v3
    cdef floating* d
    cdef Py_ssize_t stride = o * c
    for oo in range(o):
        for cc in range(c):
            for l in range(4):          # q = G^T du (3x4): column l
                v0 = du[(0 * 4 + l) * stride + oo * c + cc]
                v1 = du[(1 * 4 + l) * stride + oo * c + cc]
                v2 = du[(2 * 4 + l) * stride + oo * c + cc]
                v3 = du[(3 * 4 + l) * stride + oo * c + cc]
                q[0][l] = v0 + (v1 + v2) * <floating>0.5
                q[1][l] = (v1 - v2) * <floating>0.5
                q[2][l] = (v1 + v2) * <floating>0.5 + v3
            d = dw + (oo * c + cc) * 9
            for k in range(3):          # q G (3x3): row k
                d[k * 3] = q[k][0] + (q[k][1] + q[k][2]) * <floating>0.5
                d[k * 3 + 1] = (q[k][1] - q[k][2]) * <floating>0.5
                d[k * 3 + 2] = (q[k][1] + q[k][2]) * <floating>0.5 + q[k][3]


cdef inline void pad_plane(const floating* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl,
                           floating* plane, const Tiles* tl) noexcept nogil:
    """plane = x (h, w) at rows pt.., columns pl.. of the padded plane (split into even and odd
    columns), zeros around; pt, pl >= 0 and the padded plane holds all of x."""
    cdef Py_ssize_t i, m, m0, m1, half = tl.tw + 1
    cdef floating* even
    cdef floating* odd
    cdef const floating* src
    for i in range(tl.hp * tl.wp):
        plane[i] = 0
    for i in range(h):
        even = plane + (i + pt) * tl.wp
        odd = even + half
        src = x + i * w               # padded column jj holds src[jj - pl], pl <= jj < pl + w
        m0 = (pl + 1) // 2            # even columns 2m in [pl, pl + w)
        m1 = (pl + w + 1) // 2
        for m in range(m0, m1):
            even[m] = src[2 * m - pl]
        m0 = pl // 2                  # odd columns 2m + 1 in [pl, pl + w)
        m1 = (pl + w) // 2
        for m in range(m0, m1):
            odd[m] = src[2 * m + 1 - pl]


cdef inline void input_transform(const floating* plane, floating* v, Py_ssize_t stride,
                                 const Tiles* tl) noexcept nogil:
    """v[xi * stride + ti*TW + tj] = (B^T d B)[xi] of the 4x4 patch d at rows 2ti.., columns 2tj..
    of the padded plane, for every tile of the plane."""
    cdef Py_ssize_t ti, j, tw = tl.tw, wp = tl.wp, half = tl.tw + 1
    cdef const floating* e0
    cdef const floating* e1
    cdef const floating* e2
    cdef const floating* e3
    cdef floating* out
    cdef floating a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3
    for ti in range(tl.th):
        e0 = plane + (2 * ti) * wp     # row k's even columns at ek, odd columns at ek + half
        e1 = e0 + wp
        e2 = e1 + wp
        e3 = e2 + wp
        out = v + ti * tw
        for j in range(tw):
            # columns 2j..2j+3 of the four rows, combined down (B^T d) then across (. B)
            a0 = e0[j] - e2[j]
            a1 = e0[half + j] - e2[half + j]
            a2 = e0[j + 1] - e2[j + 1]
            a3 = e0[half + j + 1] - e2[half + j + 1]
            b0 = e1[j] + e2[j]
            b1 = e1[half + j] + e2[half + j]
            b2 = e1[j + 1] + e2[j + 1]
            b3 = e1[half + j + 1] + e2[half + j + 1]
            c0 = e2[j] - e1[j]
            c1 = e2[half + j] - e1[half + j]
            c2 = e2[j + 1] - e1[j + 1]
            c3 = e2[half + j + 1] - e1[half + j + 1]
            d0 = e1[j] - e3[j]
            d1 = e1[half + j] - e3[half + j]
            d2 = e1[j + 1] - e3[j + 1]
            d3 = e1[half + j + 1] - e3[half + j + 1]
            out[0 * stride + j] = a0 - a2
            out[1 * stride + j] = a1 + a2
            out[2 * stride + j] = a2 - a1
            out[3 * stride + j] = a1 - a3
            out[4 * stride + j] = b0 - b2
            out[5 * stride + j] = b1 + b2
            out[6 * stride + j] = b2 - b1
            out[7 * stride + j] = b1 - b3
            out[8 * stride + j] = c0 - c2
            out[9 * stride + j] = c1 + c2
            out[10 * stride + j] = c2 - c1
            out[11 * stride + j] = c1 - c3
            out[12 * stride + j] = d0 - d2
            out[13 * stride + j] = d1 + d2
            out[14 * stride + j] = d2 - d1
            out[15 * stride + j] = d1 - d3


cdef inline void _output_row(const floating* mm, Py_ssize_t stride, floating bias, floating* y,
                             Py_ssize_t j0, Py_ssize_t j1, bint upper) noexcept nogil:
    """Row 0 (upper) or row 1 of A^T m A + bias for tiles [j0, j1): y[2j], y[2j+1]."""
    cdef Py_ssize_t j
    cdef Py_ssize_t k0 = 0 if upper else 4
    cdef floating s0, s1, s2, s3
    for j in range(j0, j1):
        if upper:     # down (A^T m): row 0, four columns
            s0 = mm[0 * stride + j] + mm[4 * stride + j] + mm[8 * stride + j]
            s1 = mm[1 * stride + j] + mm[5 * stride + j] + mm[9 * stride + j]
            s2 = mm[2 * stride + j] + mm[6 * stride + j] + mm[10 * stride + j]
            s3 = mm[3 * stride + j] + mm[7 * stride + j] + mm[11 * stride + j]
        else:         # row 1
            s0 = mm[4 * stride + j] - mm[8 * stride + j] - mm[12 * stride + j]
            s1 = mm[5 * stride + j] - mm[9 * stride + j] - mm[13 * stride + j]
            s2 = mm[6 * stride + j] - mm[10 * stride + j] - mm[14 * stride + j]
            s3 = mm[7 * stride + j] - mm[11 * stride + j] - mm[15 * stride + j]
        y[2 * j] = s0 + s1 + s2 + bias
        y[2 * j + 1] = s1 - s2 - s3 + bias


cdef inline void output_transform(const floating* m, Py_ssize_t stride, floating bias, floating* y,
                                  Py_ssize_t oh, Py_ssize_t ow, const Tiles* tl) noexcept nogil:
    """y (oh, ow) = A^T m A + bias for every tile of one output plane; m[xi * stride + ti*TW + tj].
    A last tile past an odd OW is written through a 2-value row on the stack."""
    cdef Py_ssize_t ti, tw = tl.tw, i0, r
    cdef Py_ssize_t full = ow // 2       # tiles with both columns in the plane
    cdef floating last[2]
    for ti in range(tl.th):
        i0 = 2 * ti
        for r in range(2):
            if i0 + r >= oh:
                break
            _output_row(m + ti * tw, stride, bias, y + (i0 + r) * ow, 0, full, r == 0)
            if full < tw:
                _output_row(m + ti * tw + full, stride, bias, last, 0, 1, r == 0)
                y[(i0 + r) * ow + 2 * full] = last[0]


cdef inline void _dm_store(floating* out, Py_ssize_t stride, Py_ssize_t j, floating a0, floating a1,
                           floating b0, floating b1) noexcept nogil:
    """out[xi * stride + j] = (A dY A^T)[xi] of the tile dY = (a0 a1; b0 b1)."""
    # across (dY A^T) for each row, then down (A .)
    cdef floating h00 = a0, h01 = a0 + a1, h02 = a0 - a1, h03 = -a1
    cdef floating h10 = b0, h11 = b0 + b1, h12 = b0 - b1, h13 = -b1
    out[0 * stride + j] = h00
    out[1 * stride + j] = h01
    out[2 * stride + j] = h02
    out[3 * stride + j] = h03
    out[4 * stride + j] = h00 + h10
    out[5 * stride + j] = h01 + h11
    out[6 * stride + j] = h02 + h12
    out[7 * stride + j] = h03 + h13
    out[8 * stride + j] = h00 - h10
    out[9 * stride + j] = h01 - h11
    out[10 * stride + j] = h02 - h12
    out[11 * stride + j] = h03 - h13
    out[12 * stride + j] = -h10
    out[13 * stride + j] = -h11
    out[14 * stride + j] = -h12
    out[15 * stride + j] = -h13


cdef inline void output_gradient_transform(const floating* dy, Py_ssize_t oh, Py_ssize_t ow, floating* dm,
                                           Py_ssize_t stride, const Tiles* tl) noexcept nogil:
    """dm[xi * stride + ti*TW + tj] = (A dY A^T)[xi] of each 2x2 tile of one plane dy (oh, ow),
    zeros past the plane."""
    cdef Py_ssize_t ti, j, tw = tl.tw, i0
    cdef Py_ssize_t full = ow // 2
    cdef const floating* y0
    cdef const floating* y1
    cdef floating* out
    for ti in range(tl.th):
        i0 = 2 * ti
        y0 = dy + i0 * ow
        y1 = y0 + ow
        out = dm + ti * tw
        if i0 + 1 < oh:
            for j in range(full):
                _dm_store(out, stride, j, y0[2 * j], y0[2 * j + 1], y1[2 * j], y1[2 * j + 1])
            if full < tw:
                _dm_store(out, stride, full, y0[2 * full], 0, y1[2 * full], 0)
        else:
            for j in range(full):
                _dm_store(out, stride, j, y0[2 * j], y0[2 * j + 1], 0, 0)
            if full < tw:
                _dm_store(out, stride, full, y0[2 * full], 0, 0, 0)


cdef inline void _gradient_row(const floating* d, Py_ssize_t stride, floating* even, floating* odd,
                               Py_ssize_t tw, int k) noexcept nogil:
    """Row k of B dV B^T for each tile of a row of tiles, added at columns 2j..2j+3 of one padded
    row: even[j] and odd[j] get columns 2j and 2j+1 (first loop), even[j+1] and odd[j+1] columns
    2j+2 and 2j+3 (second loop, so neither loop writes what the other of its iterations reads)."""
    cdef Py_ssize_t j
    cdef int r
    cdef floating q0, q1, q2, q3
    for r in range(2):
        for j in range(tw):
            # q = row k of B dV: B's row k is (1 0 0 0), (0 1 -1 1), (-1 1 1 0) or (0 0 0 -1)
            if k == 0:
                q0 = d[0 * stride + j]
                q1 = d[1 * stride + j]
                q2 = d[2 * stride + j]
                q3 = d[3 * stride + j]
            elif k == 1:
                q0 = d[4 * stride + j] - d[8 * stride + j] + d[12 * stride + j]
                q1 = d[5 * stride + j] - d[9 * stride + j] + d[13 * stride + j]
                q2 = d[6 * stride + j] - d[10 * stride + j] + d[14 * stride + j]
                q3 = d[7 * stride + j] - d[11 * stride + j] + d[15 * stride + j]
            elif k == 2:
                q0 = d[4 * stride + j] + d[8 * stride + j] - d[0 * stride + j]
                q1 = d[5 * stride + j] + d[9 * stride + j] - d[1 * stride + j]
                q2 = d[6 * stride + j] + d[10 * stride + j] - d[2 * stride + j]
                q3 = d[7 * stride + j] + d[11 * stride + j] - d[3 * stride + j]
            else:
                q0 = -d[12 * stride + j]
                q1 = -d[13 * stride + j]
                q2 = -d[14 * stride + j]
                q3 = -d[15 * stride + j]
            if r == 0:   # . B^T: columns (q0), (q1 - q2 + q3), (q1 + q2 - q0), (-q3)
                even[j] += q0
                odd[j] += q1 - q2 + q3
            else:
                even[j + 1] += q1 + q2 - q0
                odd[j + 1] += -q3


cdef inline void input_gradient_transform(const floating* dv, Py_ssize_t stride, floating* plane,
                                          const Tiles* tl) noexcept nogil:
    """plane (padded, even and odd columns) = the sum over the tiles of B dV B^T at the patch each
    read (rows 2ti.., columns 2tj..), dv[xi * stride + ti*TW + tj]; in a fixed order."""
    cdef Py_ssize_t ti, j, tw = tl.tw, wp = tl.wp, half = tl.tw + 1
    cdef floating* row
    cdef int k
    for j in range(tl.hp * wp):
        plane[j] = 0
    for ti in range(tl.th):
        for k in range(4):
            row = plane + (2 * ti + k) * wp
            _gradient_row(dv + ti * tw, stride, row, row + half, tw, k)


cdef inline void unpad_plane(const floating* plane, Py_ssize_t h, Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl,
                             floating* dx, const Tiles* tl) noexcept nogil:
    """dx (h, w) = the padded plane (even and odd columns) at rows pt.., columns pl.."""
    cdef Py_ssize_t i, m, m0, m1, half = tl.tw + 1
    cdef const floating* even
    cdef const floating* odd
    cdef floating* dst
    for i in range(h):
        even = plane + (i + pt) * tl.wp
        odd = even + half
        dst = dx + i * w
        m0 = (pl + 1) // 2
        m1 = (pl + w + 1) // 2
        for m in range(m0, m1):
            dst[2 * m - pl] = even[m]
        m0 = pl // 2
        m1 = (pl + w) // 2
        for m in range(m0, m1):
            dst[2 * m + 1 - pl] = odd[m]
