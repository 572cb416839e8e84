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
# A sample's planes are copied one channel at a time into a zero-padded (HP, WP) plane,
# HP = 2*TH + 2 and WP = 2*TW + 2, so the transforms run without bounds checks; each loop runs
# along a row of tiles (tj), which GCC vectorises.
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
    """plane (HP, WP) = x (h, w) at rows pt.., columns pl.., zeros around (rows and columns of x
    past the padded plane are never read by a tile and are left out)."""
    cdef Py_ssize_t i, j, r, j0, j1
    for i in range(tl.hp * tl.wp):
        plane[i] = 0
    j0 = 0 if pl >= 0 else -pl
    j1 = w if w + pl <= tl.wp else tl.wp - pl
    for i in range(h):
        r = i + pt
        if r < 0 or r >= tl.hp:
            continue
        for j in range(j0, j1):
            plane[r * tl.wp + j + pl] = x[i * w + j]


cdef inline void input_transform(const floating* plane, floating* v, Py_ssize_t stride,
                                 const Tiles* tl) noexcept nogil:
    """v[xi * stride + ti*TW + tj] = (B^T d B)[xi] of the 4x4 patch d at rows 2ti.., columns 2tj..
    of the padded plane, for every tile of the plane."""
    cdef Py_ssize_t ti, j, tw = tl.tw, wp = tl.wp
    cdef const floating* r0
    cdef const floating* r1
    cdef const floating* r2
    cdef const floating* r3
    cdef floating* out
    cdef floating a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3
    cdef floating t0, t1, t2, t3
    for ti in range(tl.th):
        r0 = plane + (2 * ti) * wp
        r1 = r0 + wp
        r2 = r1 + wp
        r3 = r2 + wp
        out = v + ti * tw
        for j in range(tw):
            # columns 2j..2j+3 of the four rows, combined down (B^T d) then across (. B)
            a0 = r0[2 * j] - r2[2 * j]
            a1 = r0[2 * j + 1] - r2[2 * j + 1]
            a2 = r0[2 * j + 2] - r2[2 * j + 2]
            a3 = r0[2 * j + 3] - r2[2 * j + 3]
            b0 = r1[2 * j] + r2[2 * j]
            b1 = r1[2 * j + 1] + r2[2 * j + 1]
            b2 = r1[2 * j + 2] + r2[2 * j + 2]
            b3 = r1[2 * j + 3] + r2[2 * j + 3]
            c0 = r2[2 * j] - r1[2 * j]
            c1 = r2[2 * j + 1] - r1[2 * j + 1]
            c2 = r2[2 * j + 2] - r1[2 * j + 2]
            c3 = r2[2 * j + 3] - r1[2 * j + 3]
            d0 = r1[2 * j] - r3[2 * j]
            d1 = r1[2 * j + 1] - r3[2 * j + 1]
            d2 = r1[2 * j + 2] - r3[2 * j + 2]
            d3 = r1[2 * j + 3] - r3[2 * j + 3]
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


cdef inline void output_transform(const floating* m, Py_ssize_t stride, floating bias, floating* y,
                                  Py_ssize_t oh, Py_ssize_t ow, const Tiles* tl) noexcept nogil:
    """y (oh, ow) = A^T m A + bias for every tile of one output plane; m[xi * stride + ti*TW + tj]."""
    cdef Py_ssize_t ti, j, tw = tl.tw, i0
    cdef const floating* mm
    cdef floating s00, s01, s02, s03, s10, s11, s12, s13
    cdef floating* y0
    cdef floating* y1
    cdef bint full_w = ow == 2 * tw
    cdef floating e0, e1, f0, f1
    for ti in range(tl.th):
        mm = m + ti * tw
        i0 = 2 * ti
        y0 = y + i0 * ow
        y1 = y0 + ow
        for j in range(tw):
            # down (A^T m): rows 0 and 1 of four columns
            s00 = mm[0 * stride + j] + mm[4 * stride + j] + mm[8 * stride + j]
            s01 = mm[1 * stride + j] + mm[5 * stride + j] + mm[9 * stride + j]
            s02 = mm[2 * stride + j] + mm[6 * stride + j] + mm[10 * stride + j]
            s03 = mm[3 * stride + j] + mm[7 * stride + j] + mm[11 * stride + j]
            s10 = mm[4 * stride + j] - mm[8 * stride + j] - mm[12 * stride + j]
            s11 = mm[5 * stride + j] - mm[9 * stride + j] - mm[13 * stride + j]
            s12 = mm[6 * stride + j] - mm[10 * stride + j] - mm[14 * stride + j]
            s13 = mm[7 * stride + j] - mm[11 * stride + j] - mm[15 * stride + j]
            e0 = s00 + s01 + s02 + bias
            e1 = s01 - s02 - s03 + bias
            f0 = s10 + s11 + s12 + bias
            f1 = s11 - s12 - s13 + bias
            if full_w or j < tw - 1:
                y0[2 * j] = e0
                y0[2 * j + 1] = e1
                if i0 + 1 < oh:
                    y1[2 * j] = f0
                    y1[2 * j + 1] = f1
            else:
                y0[2 * j] = e0
                if i0 + 1 < oh:
                    y1[2 * j] = f0


cdef inline void output_gradient_transform(const floating* dy, Py_ssize_t oh, Py_ssize_t ow, floating* dm,
                                           Py_ssize_t stride, const Tiles* tl) noexcept nogil:
    """dm[xi * stride + ti*TW + tj] = (A dY A^T)[xi] of each 2x2 tile of one plane dy (oh, ow),
    zeros past the plane."""
    cdef Py_ssize_t ti, j, tw = tl.tw, i0
    cdef const floating* y0
    cdef const floating* y1
    cdef floating* out
    cdef floating a0, a1, b0, b1
    cdef floating h00, h01, h02, h03, h10, h11, h12, h13
    cdef bint full_w = ow == 2 * tw
    cdef bint two_rows
    for ti in range(tl.th):
        i0 = 2 * ti
        two_rows = i0 + 1 < oh
        y0 = dy + i0 * ow
        y1 = y0 + ow
        out = dm + ti * tw
        for j in range(tw):
            a0 = y0[2 * j]
            a1 = y0[2 * j + 1] if full_w or j < tw - 1 else 0
            if two_rows:
                b0 = y1[2 * j]
                b1 = y1[2 * j + 1] if full_w or j < tw - 1 else 0
            else:
                b0 = 0
                b1 = 0
            # across (dY A^T) for each row, then down (A .)
            h00 = a0
            h01 = a0 + a1
            h02 = a0 - a1
            h03 = -a1
            h10 = b0
            h11 = b0 + b1
            h12 = b0 - b1
            h13 = -b1
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


cdef inline void input_gradient_transform(const floating* dv, Py_ssize_t stride, floating* plane,
                                          const Tiles* tl) noexcept nogil:
    """plane (HP, WP) = the sum over the tiles of B dV B^T at the patch each read (rows 2ti..,
    columns 2tj..), dv[xi * stride + ti*TW + tj]; tiles added in row-major order."""
    cdef Py_ssize_t ti, j, k, tw = tl.tw, wp = tl.wp
    cdef const floating* d
    cdef floating* row
    cdef floating q[4][4]
    cdef floating v0, v1, v2, v3
    for j in range(tl.hp * wp):
        plane[j] = 0
    for ti in range(tl.th):
        d = dv + ti * tw
        row = plane + (2 * ti) * wp
        for j in range(tw):
            for k in range(4):      # q = B dV (4x4): column k
                v0 = d[(0 * 4 + k) * stride + j]
                v1 = d[(1 * 4 + k) * stride + j]
                v2 = d[(2 * 4 + k) * stride + j]
                v3 = d[(3 * 4 + k) * stride + j]
                q[0][k] = v0
                q[1][k] = v1 - v2 + v3
                q[2][k] = v1 + v2 - v0
                q[3][k] = -v3
            for k in range(4):      # q B^T: row k, added at columns 2j..2j+3
                row[k * wp + 2 * j] += q[k][0]
                row[k * wp + 2 * j + 1] += q[k][1] - q[k][2] + q[k][3]
                row[k * wp + 2 * j + 2] += q[k][1] + q[k][2] - q[k][0]
                row[k * wp + 2 * j + 3] += -q[k][3]


cdef inline void unpad_plane(const floating* plane, Py_ssize_t h, Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl,
                             floating* dx, const Tiles* tl) noexcept nogil:
    """dx (h, w) = the padded plane at rows pt.., columns pl.. (zeros where it has none)."""
    cdef Py_ssize_t i, j, r, c
    for i in range(h):
        r = i + pt
        for j in range(w):
            c = j + pl
            if r < 0 or r >= tl.hp or c < 0 or c >= tl.wp:
                dx[i * w + j] = 0
            else:
                dx[i * w + j] = plane[r * tl.wp + c]
