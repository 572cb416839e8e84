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
# Every loop of the transforms runs over all T tiles of one plane, each loop writing one array, so
# GCC vectorises it whatever the plane's width (rows of tiles are short: 7 tiles for a 14x14 plane).
# For that an input plane, zero-padded, is first split into 8 "phase" arrays of (TH + 1) * TW
# values, X[a][b][u][i*TW + j] = padded[2i + a][2j + 2u + b]: element (r, c) of tile p = ti*TW + tj's
# patch is X[r % 2][c % 2][c // 2][p + (r // 2) * TW], the same arrays at a fixed offset for every
# tile. The dinputs pass adds its patches into the same kind of arrays and joins them at the end;
# outputs and output gradients are split into their four 2x2 phases the same way.
from cython cimport floating


cdef struct Tiles:
    Py_ssize_t th, tw     # tiles down and across a plane
    Py_ssize_t t          # th * tw
    Py_ssize_t r          # (th + 1) * tw: one phase array
    Py_ssize_t work       # the transforms' scratch for one plane, in values


cdef inline void tiles_of(Tiles* tl, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    tl.th = (oh + 1) // 2
    tl.tw = (ow + 1) // 2
    tl.t = tl.th * tl.tw
    tl.r = (tl.th + 1) * tl.tw
    tl.work = 17 * tl.t + 8 * tl.r + 16   # the most any transform uses (the dinputs one)


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


cdef inline void _combine(floating* out, const floating* a, const floating* b, Py_ssize_t n,
                          int how) noexcept nogil:
    """out[j] = a[j] - b[j] (how 0), a[j] + b[j] (1), b[j] - a[j] (2), a[j] (3), -a[j] (4), for
    j < n. One output array a loop: GCC vectorises it (checking at run time that out meets
    neither input)."""
    cdef Py_ssize_t j
    if how == 0:
        for j in range(n):
            out[j] = a[j] - b[j]
    elif how == 1:
        for j in range(n):
            out[j] = a[j] + b[j]
    elif how == 2:
        for j in range(n):
            out[j] = b[j] - a[j]
    elif how == 3:
        for j in range(n):
            out[j] = a[j]
    else:
        for j in range(n):
            out[j] = -a[j]


cdef inline void _combine3(floating* out, const floating* a, const floating* b, const floating* c,
                           Py_ssize_t n, int how, floating bias) noexcept nogil:
    """out[j] = a + b + c (how 0), a - b - c (1), a + b - c (2), a - b + c (3), plus bias."""
    cdef Py_ssize_t j
    if how == 0:
        for j in range(n):
            out[j] = a[j] + b[j] + c[j] + bias
    elif how == 1:
        for j in range(n):
            out[j] = a[j] - b[j] - c[j] + bias
    elif how == 2:
        for j in range(n):
            out[j] = a[j] + b[j] - c[j] + bias
    else:
        for j in range(n):
            out[j] = a[j] - b[j] + c[j] + bias


cdef inline void _phase_range(Py_ssize_t shift, Py_ssize_t w, Py_ssize_t pl, Py_ssize_t tw,
                              Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    """The j in [0, tw) whose input column 2j + shift - pl lies in [0, w)."""
    cdef Py_ssize_t lo = pl - shift, hi = w + pl - shift      # 2j in [lo, hi)
    lo = (lo + 1) // 2 if lo > 0 else 0
    hi = (hi + 1) // 2 if hi > 0 else 0
    j0[0] = lo if lo < tw else tw
    j1[0] = hi if hi < tw else tw
    if j1[0] < j0[0]:
        j1[0] = j0[0]


cdef inline void input_transform(const floating* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl,
                                 floating* work, floating* v, Py_ssize_t stride, const Tiles* tl) noexcept nogil:
    """v[xi * stride + p] = (B^T d B)[xi] of tile p's 4x4 patch d of the input plane x (h, w)
    padded by pt rows above and pl columns left (zeros), for every tile p of the plane."""
    cdef Py_ssize_t i, j, j0, j1, row, rr = tl.r, tw = tl.tw, t = tl.t
    cdef int a, b, u, l
    cdef floating* ph = work            # X[a][b][u] at ph + ((a*2 + b)*2 + u) * rr
    cdef floating* td = work + 8 * rr   # across: td[a][l] at td + (a*4 + l) * rr
    cdef floating* dst
    cdef const floating* src
    for i in range(8 * rr):
        ph[i] = 0
    for i in range(h):
        row = i + pt                    # padded row 2*(row // 2) + row % 2
        src = x + i * w
        a = row % 2
        for b in range(2):
            for u in range(2):
                _phase_range(2 * u + b, w, pl, tw, &j0, &j1)
                dst = ph + ((a * 2 + b) * 2 + u) * rr + (row // 2) * tw
                for j in range(j0, j1):
                    dst[j] = src[2 * j + 2 * u + b - pl]
    # across (d B) on the patch's columns c = 2u + b: d0 - d2, d1 + d2, d2 - d1, d1 - d3, for both
    # row phases and every tile row (rr values)
    for a in range(2):
        dst = td + a * 4 * rr
        src = ph + a * 4 * rr           # X[a][b][u] at src + (b*2 + u) * rr; column c = 2u + b
        _combine(dst, src, src + 1 * rr, rr, 0)               # c0 - c2: X[a][0][0] - X[a][0][1]
        _combine(dst + rr, src + 2 * rr, src + 1 * rr, rr, 1)  # c1 + c2: X[a][1][0] + X[a][0][1]
        _combine(dst + 2 * rr, src + 2 * rr, src + 1 * rr, rr, 2)  # c2 - c1
        _combine(dst + 3 * rr, src + 2 * rr, src + 3 * rr, rr, 0)  # c1 - c3: X[a][1][0] - X[a][1][1]
    # down (B^T .) on the patch's rows r (phase r % 2, offset (r // 2) * TW): r0 - r2, r1 + r2,
    # r2 - r1, r1 - r3
    for l in range(4):
        src = td + l * rr               # row phase 0; phase 1 at src + 4 * rr
        _combine(v + l * stride, src, src + tw, t, 0)
        _combine(v + (4 + l) * stride, src + 4 * rr, src + tw, t, 1)
        _combine(v + (8 + l) * stride, src + 4 * rr, src + tw, t, 2)
        _combine(v + (12 + l) * stride, src + 4 * rr, src + 4 * rr + tw, t, 0)


cdef inline void output_transform(const floating* m, Py_ssize_t stride, floating bias, floating* y,
                                  Py_ssize_t oh, Py_ssize_t ow, floating* work, const Tiles* tl) noexcept nogil:
    """y (oh, ow) = A^T m A + bias for every tile of one output plane, m[xi * stride + p]."""
    cdef Py_ssize_t ti, tj, t = tl.t, tw = tl.tw, full = ow // 2
    cdef int r, l
    cdef floating* sd = work            # down: sd[r][l] at sd + (r*4 + l) * t
    cdef floating* ya = work + 8 * t    # the output's phases: ya[r][s] at ya + (r*2 + s) * t
    cdef floating* row
    cdef const floating* e
    cdef const floating* o
    # down (A^T m): row 0 is m0 + m1 + m2, row 1 is m1 - m2 - m3 (rows of m, each column l)
    for l in range(4):
        _combine3(sd + l * t, m + l * stride, m + (4 + l) * stride, m + (8 + l) * stride, t, 0, 0)
        _combine3(sd + (4 + l) * t, m + (4 + l) * stride, m + (8 + l) * stride, m + (12 + l) * stride, t, 1, 0)
    # across (. A) and the bias: s0 + s1 + s2, s1 - s2 - s3
    for r in range(2):
        _combine3(ya + 2 * r * t, sd + 4 * r * t, sd + (4 * r + 1) * t, sd + (4 * r + 2) * t, t, 0, bias)
        _combine3(ya + (2 * r + 1) * t, sd + (4 * r + 1) * t, sd + (4 * r + 2) * t, sd + (4 * r + 3) * t, t, 1, bias)
    for ti in range(tl.th):
        for r in range(2):
            if 2 * ti + r >= oh:
                break
            row = y + (2 * ti + r) * ow
            e = ya + 2 * r * t + ti * tw
            o = e + t
            for tj in range(full):
                row[2 * tj] = e[tj]
                row[2 * tj + 1] = o[tj]
            if full < tw:
                row[2 * full] = e[full]


cdef inline void output_gradient_transform(const floating* dy, Py_ssize_t oh, Py_ssize_t ow, floating* dm,
                                           Py_ssize_t stride, floating* work, const Tiles* tl) noexcept nogil:
    """dm[xi * stride + p] = (A dY A^T)[xi] of each 2x2 tile p of one plane dy (oh, ow), zeros
    past the plane."""
    cdef Py_ssize_t ti, tj, i, t = tl.t, tw = tl.tw, full = ow // 2
    cdef int r, l
    cdef floating* ya = work            # dY's phases: ya[r][s] at ya + (r*2 + s) * t
    cdef floating* hd = work + 4 * t    # across: hd[r][l] at hd + (r*4 + l) * t
    cdef floating* e
    cdef floating* o
    cdef const floating* row
    for ti in range(tl.th):
        for r in range(2):
            e = ya + 2 * r * t + ti * tw
            o = e + t
            if 2 * ti + r >= oh:
                for tj in range(tw):
                    e[tj] = 0
                    o[tj] = 0
                continue
            row = dy + (2 * ti + r) * ow
            for tj in range(full):
                e[tj] = row[2 * tj]
                o[tj] = row[2 * tj + 1]
            if full < tw:
                e[full] = row[2 * full]
                o[full] = 0
    # across (dY A^T), each of the tile's rows: y0, y0 + y1, y0 - y1, -y1
    for r in range(2):
        e = ya + 2 * r * t
        o = e + t
        _combine(hd + 4 * r * t, e, o, t, 3)
        _combine(hd + (4 * r + 1) * t, e, o, t, 1)
        _combine(hd + (4 * r + 2) * t, e, o, t, 0)
        _combine(hd + (4 * r + 3) * t, o, o, t, 4)
    # down (A .): h0, h0 + h1, h0 - h1, -h1
    for l in range(4):
        e = hd + l * t
        o = hd + (4 + l) * t
        _combine(dm + l * stride, e, o, t, 3)
        _combine(dm + (4 + l) * stride, e, o, t, 1)
        _combine(dm + (8 + l) * stride, e, o, t, 0)
        _combine(dm + (12 + l) * stride, o, o, t, 4)


cdef inline void input_gradient_transform(const floating* dv, Py_ssize_t stride, floating* dx, Py_ssize_t h,
                                          Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl, floating* work,
                                          const Tiles* tl) noexcept nogil:
    """dx (h, w) = the sum over the tiles of B dV B^T at the patch each read (rows 2ti.., columns
    2tj.. of the plane padded by pt rows and pl columns), dv[xi * stride + p]; in a fixed order."""
    cdef Py_ssize_t i, j, row, t = tl.t, tw = tl.tw, rr = tl.r
    cdef int r, l, a, b, u, c
    cdef floating* qd = work            # down: qd[r][l] at qd + (r*4 + l) * t (r = 1, 2, 3)
    cdef floating* dd = work + 16 * t   # one (r, c) of B dV B^T
    cdef floating* z = work + 17 * t    # Z[a][b][u] at z + ((a*2 + b)*2 + u) * rr
    cdef floating* q0
    cdef floating* q1
    cdef floating* q2
    cdef floating* q3
    cdef floating* dst
    cdef const floating* z0
    cdef const floating* z1
    cdef floating* out
    # down (B .): rows v0, v1 - v2 + v3, v1 + v2 - v0, -v3 (v_k = dV[4k + l])
    for l in range(4):
        _combine3(qd + (4 + l) * t, dv + (4 + l) * stride, dv + (8 + l) * stride, dv + (12 + l) * stride, t, 3, 0)
        _combine3(qd + (8 + l) * t, dv + (4 + l) * stride, dv + (8 + l) * stride, dv + l * stride, t, 2, 0)
        _combine(qd + (12 + l) * t, dv + (12 + l) * stride, dv, t, 4)
    for i in range(8 * rr):
        z[i] = 0
    # across (. B^T), columns q0, q1 - q2 + q3, q1 + q2 - q0, -q3, each added into its phase array
    # at the tile's offset: rows r and r + 2 share a row phase, r + 2 one tile row further down
    for r in range(4):
        a = r % 2
        if r == 0:
            q0 = <floating*>dv
            q1 = <floating*>(dv + stride)
            q2 = <floating*>(dv + 2 * stride)
            q3 = <floating*>(dv + 3 * stride)
        else:
            q0 = qd + 4 * r * t
            q1 = q0 + t
            q2 = q0 + 2 * t
            q3 = q0 + 3 * t
        for c in range(4):
            b = c % 2
            u = c // 2
            if c == 0:
                _combine(dd, q0, q0, t, 3)
            elif c == 1:
                _combine3(dd, q1, q2, q3, t, 3, 0)
            elif c == 2:
                _combine3(dd, q1, q2, q0, t, 2, 0)
            else:
                _combine(dd, q3, q3, t, 4)
            dst = z + ((a * 2 + b) * 2 + u) * rr + (r // 2) * tw
            for j in range(t):
                dst[j] += dd[j]
    # join: padded[2i + a][2j + b] = Z[a][b][0][i*TW + j] + Z[a][b][1][i*TW + j - 1]
    for i in range(h):
        row = i + pt
        a = row % 2
        out = dx + i * w
        for j in range(w):
            c = <int>((j + pl) % 2)
            z0 = z + ((a * 2 + c) * 2) * rr + (row // 2) * tw + (j + pl) // 2
            z1 = z0 + rr - 1
            if (j + pl) // 2 == 0:
                out[j] = z0[0]
            elif (j + pl) // 2 == tw:
                out[j] = z1[0]
            else:
                out[j] = z0[0] + z1[0]
