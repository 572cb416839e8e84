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
# The transforms' loops run over all T tiles of one plane at once, so GCC vectorises them whatever
# the plane's width (rows of tiles are short: 7 tiles for a 14x14 plane).
# For that an input plane, zero-padded, is first split into 8 "phase" arrays of (TH + 1) * TW
# values, X[a][b][u][i*TW + j] = padded[2i + a][2j + 2u + b]: element (r, c) of tile p = ti*TW + tj's
# patch is X[r % 2][c % 2][c // 2][p + (r // 2) * TW], the same arrays at a fixed offset for every
# tile. The dinputs pass adds its patches into the same kind of arrays and joins them at the end;
# outputs and output gradients are split into their four 2x2 phases the same way.
from cython cimport floating


# The transforms' inner loops, in C: each is one loop over the tiles (or columns) of a plane that
# reads and writes up to 16 arrays, and only `restrict` pointers let GCC vectorise a loop with that
# many arrays (written in Cython the loops stayed scalar, or, split into one loop per output array,
# spent their time in loop overheads: a plane has only 49 tiles for a 14x14 output). One macro
# defines the float and the double versions.
cdef extern from *:
    """
    #if defined(_MSC_VER)
    #define FNN_R __restrict
    #else
    #define FNN_R __restrict__
    #endif
    #define FNN_WINOGRAD(T, S)                                                                     \
    /* Phase rows of one input row: x[b][u][j] = src[2j + 2u + b - pl] where 0 <= that < w (the  \
       four rows are zeros already); j < tw. */                                                  \
    static inline void fnn_wino_phase_row_##S(const T* FNN_R src, Py_ssize_t w, Py_ssize_t pl,   \
            Py_ssize_t tw, T* FNN_R x00, T* FNN_R x01, T* FNN_R x10, T* FNN_R x11) {             \
        Py_ssize_t j, j0 = (pl + 1) / 2, j1 = (w + pl - 4) / 2 + 1;                              \
        if (w + pl - 4 < 0) j1 = 0;                                                              \
        if (j1 > tw) j1 = tw;                                                                    \
        if (j0 > j1) j0 = j1;                                                                    \
        for (j = 0; j < j0; j++) {                                                               \
            Py_ssize_t c = 2 * j - pl;                                                           \
            if (c >= 0 && c < w) x00[j] = src[c];                                                \
            if (c + 1 >= 0 && c + 1 < w) x10[j] = src[c + 1];                                    \
            if (c + 2 >= 0 && c + 2 < w) x01[j] = src[c + 2];                                    \
            if (c + 3 >= 0 && c + 3 < w) x11[j] = src[c + 3];                                    \
        }                                                                                        \
        for (j = j0; j < j1; j++) {                                                              \
            x00[j] = src[2 * j - pl];                                                            \
            x10[j] = src[2 * j + 1 - pl];                                                        \
            x01[j] = src[2 * j + 2 - pl];                                                        \
            x11[j] = src[2 * j + 3 - pl];                                                        \
        }                                                                                        \
        for (j = j1; j < tw; j++) {                                                              \
            Py_ssize_t c = 2 * j - pl;                                                           \
            if (c >= 0 && c < w) x00[j] = src[c];                                                \
            if (c + 1 >= 0 && c + 1 < w) x10[j] = src[c + 1];                                    \
            if (c + 2 >= 0 && c + 2 < w) x01[j] = src[c + 2];                                    \
            if (c + 3 >= 0 && c + 3 < w) x11[j] = src[c + 3];                                    \
        }                                                                                        \
    }                                                                                            \
    /* V = B^T d B for tiles p < t: d[r][c] = x[r % 2][c % 2][c / 2][p + (r / 2) * tw], x[a][b][u] \
       at ph + ((a*2 + b)*2 + u) * rr; v[xi] at v + xi * stride. Across first (d B), then down.  \
       (GCC takes `restrict` only from parameters: hence the core function with one parameter  \
       per array, inlined into its caller.) */                                                   \
    static inline void fnn_wino_input_core_##S(Py_ssize_t t, Py_ssize_t tw,                      \
            const T* FNN_R e00, const T* FNN_R e01, const T* FNN_R e10, const T* FNN_R e11,      \
            const T* FNN_R o00, const T* FNN_R o01, const T* FNN_R o10, const T* FNN_R o11,      \
            T* FNN_R v0, T* FNN_R v1, T* FNN_R v2, T* FNN_R v3, T* FNN_R v4, T* FNN_R v5,         \
            T* FNN_R v6, T* FNN_R v7, T* FNN_R v8, T* FNN_R v9, T* FNN_R v10, T* FNN_R v11,      \
            T* FNN_R v12, T* FNN_R v13, T* FNN_R v14, T* FNN_R v15) {                            \
        Py_ssize_t p;                                                                            \
        for (p = 0; p < t; p++) {                                                                \
            Py_ssize_t q = p + tw;                                                               \
            /* row r's columns c0..c3: (r even: e, odd: o)[b][u] at p or q; c = 2u + b */         \
            T a0 = e00[p] - e01[p], a1 = e10[p] + e01[p], a2 = e01[p] - e10[p], a3 = e10[p] - e11[p]; \
            T b0 = o00[p] - o01[p], b1 = o10[p] + o01[p], b2 = o01[p] - o10[p], b3 = o10[p] - o11[p]; \
            T c0 = e00[q] - e01[q], c1 = e10[q] + e01[q], c2 = e01[q] - e10[q], c3 = e10[q] - e11[q]; \
            T d0 = o00[q] - o01[q], d1 = o10[q] + o01[q], d2 = o01[q] - o10[q], d3 = o10[q] - o11[q]; \
            v0[p] = a0 - c0;  v1[p] = a1 - c1;  v2[p] = a2 - c2;  v3[p] = a3 - c3;               \
            v4[p] = b0 + c0;  v5[p] = b1 + c1;  v6[p] = b2 + c2;  v7[p] = b3 + c3;               \
            v8[p] = c0 - b0;  v9[p] = c1 - b1;  v10[p] = c2 - b2; v11[p] = c3 - b3;              \
            v12[p] = b0 - d0; v13[p] = b1 - d1; v14[p] = b2 - d2; v15[p] = b3 - d3;              \
        }                                                                                        \
    }                                                                                            \
    static inline void fnn_wino_input_##S(const T* ph, Py_ssize_t rr, Py_ssize_t tw,             \
            Py_ssize_t t, T* v, Py_ssize_t stride) {                                             \
        fnn_wino_input_core_##S(t, tw, ph, ph + rr, ph + 2 * rr, ph + 3 * rr, ph + 4 * rr,       \
            ph + 5 * rr, ph + 6 * rr, ph + 7 * rr, v, v + stride, v + 2 * stride, v + 3 * stride, \
            v + 4 * stride, v + 5 * stride, v + 6 * stride, v + 7 * stride, v + 8 * stride,      \
            v + 9 * stride, v + 10 * stride, v + 11 * stride, v + 12 * stride, v + 13 * stride,  \
            v + 14 * stride, v + 15 * stride);                                                   \
    }                                                                                            \
    /* The output's four phases y[r][s] (at ya + (r*2 + s) * t) = A^T m A + bias, tiles p < t;   \
       m[xi] at m + xi * stride. Down first (A^T m), then across. */                             \
    static inline void fnn_wino_output_core_##S(Py_ssize_t t, T bias,                            \
            const T* FNN_R m0, const T* FNN_R m1, const T* FNN_R m2, const T* FNN_R m3,          \
            const T* FNN_R m4, const T* FNN_R m5, const T* FNN_R m6, const T* FNN_R m7,          \
            const T* FNN_R m8, const T* FNN_R m9, const T* FNN_R m10, const T* FNN_R m11,        \
            const T* FNN_R m12, const T* FNN_R m13, const T* FNN_R m14, const T* FNN_R m15,      \
            T* FNN_R y00, T* FNN_R y01, T* FNN_R y10, T* FNN_R y11) {                            \
        Py_ssize_t p;                                                                            \
        for (p = 0; p < t; p++) {                                                                \
            T s0 = m0[p] + m4[p] + m8[p],  s1 = m1[p] + m5[p] + m9[p];                           \
            T s2 = m2[p] + m6[p] + m10[p], s3 = m3[p] + m7[p] + m11[p];                          \
            T u0 = m4[p] - m8[p] - m12[p], u1 = m5[p] - m9[p] - m13[p];                          \
            T u2 = m6[p] - m10[p] - m14[p], u3 = m7[p] - m11[p] - m15[p];                        \
            y00[p] = s0 + s1 + s2 + bias;  y01[p] = s1 - s2 - s3 + bias;                         \
            y10[p] = u0 + u1 + u2 + bias;  y11[p] = u1 - u2 - u3 + bias;                         \
        }                                                                                        \
    }                                                                                            \
    static inline void fnn_wino_output_##S(const T* m, Py_ssize_t stride, T bias, Py_ssize_t t,  \
            T* ya) {                                                                             \
        fnn_wino_output_core_##S(t, bias, m, m + stride, m + 2 * stride, m + 3 * stride,         \
            m + 4 * stride, m + 5 * stride, m + 6 * stride, m + 7 * stride, m + 8 * stride,      \
            m + 9 * stride, m + 10 * stride, m + 11 * stride, m + 12 * stride, m + 13 * stride,  \
            m + 14 * stride, m + 15 * stride, ya, ya + t, ya + 2 * t, ya + 3 * t);               \
    }                                                                                            \
    /* row[2j] = e[j], row[2j + 1] = o[j] for j < full; row[2 * full] = e[full] when odd. */     \
    static inline void fnn_wino_interleave_##S(const T* FNN_R e, const T* FNN_R o, Py_ssize_t full, \
            int odd, T* FNN_R row) {                                                             \
        Py_ssize_t j;                                                                            \
        for (j = 0; j < full; j++) { row[2 * j] = e[j]; row[2 * j + 1] = o[j]; }                 \
        if (odd) row[2 * full] = e[full];                                                        \
    }                                                                                            \
    /* e[j] = row[2j], o[j] = row[2j + 1] for j < full; e[full] = row[2 * full], o[full] = 0 when \
       odd. */                                                                                   \
    static inline void fnn_wino_deinterleave_##S(const T* FNN_R row, Py_ssize_t full, int odd,   \
            T* FNN_R e, T* FNN_R o) {                                                            \
        Py_ssize_t j;                                                                            \
        for (j = 0; j < full; j++) { e[j] = row[2 * j]; o[j] = row[2 * j + 1]; }                 \
        if (odd) { e[full] = row[2 * full]; o[full] = 0; }                                       \
    }                                                                                            \
    /* dm[xi] (at dm + xi * stride) = A dY A^T, dY's phases y[r][s] at ya + (r*2 + s) * t.      \
       Across first (dY A^T), then down. */                                                      \
    static inline void fnn_wino_output_grad_core_##S(Py_ssize_t t,                               \
            const T* FNN_R y00, const T* FNN_R y01, const T* FNN_R y10, const T* FNN_R y11,      \
            T* FNN_R d0, T* FNN_R d1, T* FNN_R d2, T* FNN_R d3, T* FNN_R d4, T* FNN_R d5,         \
            T* FNN_R d6, T* FNN_R d7, T* FNN_R d8, T* FNN_R d9, T* FNN_R d10, T* FNN_R d11,      \
            T* FNN_R d12, T* FNN_R d13, T* FNN_R d14, T* FNN_R d15) {                            \
        Py_ssize_t p;                                                                            \
        for (p = 0; p < t; p++) {                                                                \
            T h0 = y00[p], h1 = y00[p] + y01[p], h2 = y00[p] - y01[p], h3 = -y01[p];             \
            T g0 = y10[p], g1 = y10[p] + y11[p], g2 = y10[p] - y11[p], g3 = -y11[p];             \
            d0[p] = h0;       d1[p] = h1;       d2[p] = h2;       d3[p] = h3;                    \
            d4[p] = h0 + g0;  d5[p] = h1 + g1;  d6[p] = h2 + g2;  d7[p] = h3 + g3;               \
            d8[p] = h0 - g0;  d9[p] = h1 - g1;  d10[p] = h2 - g2; d11[p] = h3 - g3;              \
            d12[p] = -g0;     d13[p] = -g1;     d14[p] = -g2;     d15[p] = -g3;                  \
        }                                                                                        \
    }                                                                                            \
    static inline void fnn_wino_output_grad_##S(const T* ya, Py_ssize_t t, T* dm,                \
            Py_ssize_t stride) {                                                                 \
        fnn_wino_output_grad_core_##S(t, ya, ya + t, ya + 2 * t, ya + 3 * t, dm, dm + stride,    \
            dm + 2 * stride, dm + 3 * stride, dm + 4 * stride, dm + 5 * stride, dm + 6 * stride, \
            dm + 7 * stride, dm + 8 * stride, dm + 9 * stride, dm + 10 * stride, dm + 11 * stride, \
            dm + 12 * stride, dm + 13 * stride, dm + 14 * stride, dm + 15 * stride);             \
    }                                                                                            \
    /* B dV B^T of tiles p < t (dv[xi] at dv + xi * stride), rows `first` and `first` + 1 of it  \
       (first = 0: stored into, first = 2: added into): row r, column c = 2u + b goes to        \
       z[r % 2][b][u][p + (r / 2) * tw], z[a][b][u] at z + ((a*2 + b)*2 + u) * rr. */            \
    static inline void fnn_wino_input_grad_core_##S(Py_ssize_t t, int first,                     \
            const T* FNN_R w0, const T* FNN_R w1, const T* FNN_R w2, const T* FNN_R w3,          \
            const T* FNN_R w4, const T* FNN_R w5, const T* FNN_R w6, const T* FNN_R w7,          \
            const T* FNN_R w8, const T* FNN_R w9, const T* FNN_R w10, const T* FNN_R w11,        \
            const T* FNN_R w12, const T* FNN_R w13, const T* FNN_R w14, const T* FNN_R w15,      \
            T* FNN_R z000, T* FNN_R z001, T* FNN_R z010, T* FNN_R z011,                          \
            T* FNN_R z100, T* FNN_R z101, T* FNN_R z110, T* FNN_R z111) {                        \
        Py_ssize_t p;                                                                            \
        if (!first) {                                                                            \
            for (p = 0; p < t; p++) {                                                            \
                /* rows 0 and 1 of B dV: v0 and v1 - v2 + v3 (v_k = dV[4k + l]) */               \
                T q0 = w0[p], q1 = w1[p], q2 = w2[p], q3 = w3[p];                                \
                T r0 = w4[p] - w8[p] + w12[p], r1 = w5[p] - w9[p] + w13[p];                      \
                T r2 = w6[p] - w10[p] + w14[p], r3 = w7[p] - w11[p] + w15[p];                    \
                /* . B^T: columns q0, q1 - q2 + q3, q1 + q2 - q0, -q3 */                         \
                z000[p] = q0; z010[p] = q1 - q2 + q3; z001[p] = q1 + q2 - q0; z011[p] = -q3;     \
                z100[p] = r0; z110[p] = r1 - r2 + r3; z101[p] = r1 + r2 - r0; z111[p] = -r3;     \
            }                                                                                    \
        } else {                                                                                 \
            for (p = 0; p < t; p++) {                                                            \
                /* rows 2 and 3 of B dV: v1 + v2 - v0 and -v3 */                                 \
                T q0 = w4[p] + w8[p] - w0[p], q1 = w5[p] + w9[p] - w1[p];                        \
                T q2 = w6[p] + w10[p] - w2[p], q3 = w7[p] + w11[p] - w3[p];                      \
                T r0 = -w12[p], r1 = -w13[p], r2 = -w14[p], r3 = -w15[p];                        \
                z000[p] += q0; z010[p] += q1 - q2 + q3; z001[p] += q1 + q2 - q0; z011[p] += -q3; \
                z100[p] += r0; z110[p] += r1 - r2 + r3; z101[p] += r1 + r2 - r0; z111[p] += -r3; \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static inline void fnn_wino_input_grad_##S(const T* dv, Py_ssize_t stride, Py_ssize_t t,     \
            int first, Py_ssize_t tw, T* z, Py_ssize_t rr) {                                     \
        T* zo = z + (first ? tw : 0);                                                            \
        fnn_wino_input_grad_core_##S(t, first, dv, dv + stride, dv + 2 * stride, dv + 3 * stride, \
            dv + 4 * stride, dv + 5 * stride, dv + 6 * stride, dv + 7 * stride, dv + 8 * stride, \
            dv + 9 * stride, dv + 10 * stride, dv + 11 * stride, dv + 12 * stride,               \
            dv + 13 * stride, dv + 14 * stride, dv + 15 * stride, zo, zo + rr, zo + 2 * rr,      \
            zo + 3 * rr, zo + 4 * rr, zo + 5 * rr, zo + 6 * rr, zo + 7 * rr);                    \
    }                                                                                            \
    /* One row of dinputs from the phase sums: out[j] = padded[.][j + pl], padded[.][2jj + b] =  \
       z0[b][jj] (jj < tw) + z1[b][jj - 1] (jj >= 1); z0[b] at zrow + b * 2 * rr, z1 at + rr. */ \
    static inline void fnn_wino_join_row_##S(const T* FNN_R zrow, Py_ssize_t rr, Py_ssize_t tw,  \
            Py_ssize_t w, Py_ssize_t pl, T* FNN_R out) {                                         \
        const T* FNN_R e0 = zrow; const T* FNN_R e1 = zrow + rr;                                 \
        const T* FNN_R o0 = zrow + 2 * rr; const T* FNN_R o1 = zrow + 3 * rr;                    \
        Py_ssize_t j, jj;                                                                        \
        Py_ssize_t j0 = (pl + 1) / 2, j1 = (w + pl - 2) / 2 + 1;  /* 1 <= jj < tw, both in */     \
        if (j0 < 1) j0 = 1;                                                                      \
        if (w + pl - 2 < 0) j1 = 0;                                                              \
        if (j1 > tw) j1 = tw;                                                                    \
        if (j1 < j0) j1 = j0;                                                                    \
        for (j = 0; j < w; j++) {                                                                \
            Py_ssize_t c = j + pl;                                                               \
            jj = c / 2;                                                                          \
            if (jj >= j0 && jj < j1) { j = 2 * j1 - pl - 1; continue; }                          \
            {                                                                                    \
                const T* FNN_R a0 = (c % 2) ? o0 : e0;                                           \
                const T* FNN_R a1 = (c % 2) ? o1 : e1;                                           \
                if (jj == 0) out[j] = a0[0];                                                     \
                else if (jj >= tw) out[j] = a1[jj - 1];                                          \
                else out[j] = a0[jj] + a1[jj - 1];                                               \
            }                                                                                    \
        }                                                                                        \
        for (jj = j0; jj < j1; jj++) {                                                           \
            out[2 * jj - pl] = e0[jj] + e1[jj - 1];                                              \
            out[2 * jj + 1 - pl] = o0[jj] + o1[jj - 1];                                          \
        }                                                                                        \
    }
    FNN_WINOGRAD(float, f)
    FNN_WINOGRAD(double, d)
    """
    void fnn_wino_phase_row_f(const float* src, Py_ssize_t w, Py_ssize_t pl, Py_ssize_t tw, float* x00,
                              float* x01, float* x10, float* x11) noexcept nogil
    void fnn_wino_phase_row_d(const double* src, Py_ssize_t w, Py_ssize_t pl, Py_ssize_t tw, double* x00,
                              double* x01, double* x10, double* x11) noexcept nogil
    void fnn_wino_input_f(const float* ph, Py_ssize_t rr, Py_ssize_t tw, Py_ssize_t t, float* v,
                          Py_ssize_t stride) noexcept nogil
    void fnn_wino_input_d(const double* ph, Py_ssize_t rr, Py_ssize_t tw, Py_ssize_t t, double* v,
                          Py_ssize_t stride) noexcept nogil
    void fnn_wino_output_f(const float* m, Py_ssize_t stride, float bias, Py_ssize_t t, float* ya) noexcept nogil
    void fnn_wino_output_d(const double* m, Py_ssize_t stride, double bias, Py_ssize_t t, double* ya) noexcept nogil
    void fnn_wino_interleave_f(const float* e, const float* o, Py_ssize_t full, int odd, float* row) noexcept nogil
    void fnn_wino_interleave_d(const double* e, const double* o, Py_ssize_t full, int odd, double* row) noexcept nogil
    void fnn_wino_deinterleave_f(const float* row, Py_ssize_t full, int odd, float* e, float* o) noexcept nogil
    void fnn_wino_deinterleave_d(const double* row, Py_ssize_t full, int odd, double* e, double* o) noexcept nogil
    void fnn_wino_output_grad_f(const float* ya, Py_ssize_t t, float* dm, Py_ssize_t stride) noexcept nogil
    void fnn_wino_output_grad_d(const double* ya, Py_ssize_t t, double* dm, Py_ssize_t stride) noexcept nogil
    void fnn_wino_input_grad_f(const float* dv, Py_ssize_t stride, Py_ssize_t t, int first, Py_ssize_t tw,
                               float* z, Py_ssize_t rr) noexcept nogil
    void fnn_wino_input_grad_d(const double* dv, Py_ssize_t stride, Py_ssize_t t, int first, Py_ssize_t tw,
                               double* z, Py_ssize_t rr) noexcept nogil
    void fnn_wino_join_row_f(const float* zrow, Py_ssize_t rr, Py_ssize_t tw, Py_ssize_t w, Py_ssize_t pl,
                             float* out) noexcept nogil
    void fnn_wino_join_row_d(const double* zrow, Py_ssize_t rr, Py_ssize_t tw, Py_ssize_t w, Py_ssize_t pl,
                             double* out) noexcept nogil


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
    tl.work = 8 * tl.r + 16      # the most any transform uses: 8 phase arrays


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


cdef inline void input_transform(const floating* x, Py_ssize_t h, Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl,
                                 floating* work, floating* v, Py_ssize_t stride, const Tiles* tl) noexcept nogil:
    """v[xi * stride + p] = (B^T d B)[xi] of tile p's 4x4 patch d of the input plane x (h, w)
    padded by pt rows above and pl columns left (zeros), for every tile p of the plane."""
    cdef Py_ssize_t i, row, rr = tl.r, tw = tl.tw
    cdef floating* dst
    for i in range(8 * rr):
        work[i] = 0
    for i in range(h):
        row = i + pt       # padded row 2 * (row // 2) + row % 2: X[row % 2][b][u], tile row row // 2
        dst = work + (row % 2) * 4 * rr + (row // 2) * tw
        if floating is float:
            fnn_wino_phase_row_f(x + i * w, w, pl, tw, dst, dst + rr, dst + 2 * rr, dst + 3 * rr)
        else:
            fnn_wino_phase_row_d(x + i * w, w, pl, tw, dst, dst + rr, dst + 2 * rr, dst + 3 * rr)
    if floating is float:
        fnn_wino_input_f(work, rr, tw, tl.t, v, stride)
    else:
        fnn_wino_input_d(work, rr, tw, tl.t, v, stride)


cdef inline void output_transform(const floating* m, Py_ssize_t stride, floating bias, floating* y,
                                  Py_ssize_t oh, Py_ssize_t ow, floating* work, const Tiles* tl) noexcept nogil:
    """y (oh, ow) = A^T m A + bias for every tile of one output plane, m[xi * stride + p]."""
    cdef Py_ssize_t ti, t = tl.t, tw = tl.tw, full = ow // 2
    cdef int r
    cdef floating* e
    if floating is float:
        fnn_wino_output_f(m, stride, bias, t, work)
    else:
        fnn_wino_output_d(m, stride, bias, t, work)
    for ti in range(tl.th):
        for r in range(2):
            if 2 * ti + r >= oh:
                break
            e = work + 2 * r * t + ti * tw       # phase (r, 0); (r, 1) at e + t
            if floating is float:
                fnn_wino_interleave_f(e, e + t, full, ow % 2, y + (2 * ti + r) * ow)
            else:
                fnn_wino_interleave_d(e, e + t, full, ow % 2, y + (2 * ti + r) * ow)


cdef inline void output_gradient_transform(const floating* dy, Py_ssize_t oh, Py_ssize_t ow, floating* dm,
                                           Py_ssize_t stride, floating* work, const Tiles* tl) noexcept nogil:
    """dm[xi * stride + p] = (A dY A^T)[xi] of each 2x2 tile p of one plane dy (oh, ow), zeros
    past the plane."""
    cdef Py_ssize_t ti, j, t = tl.t, tw = tl.tw, full = ow // 2
    cdef int r
    cdef floating* e
    for ti in range(tl.th):
        for r in range(2):
            e = work + 2 * r * t + ti * tw
            if 2 * ti + r >= oh:
                for j in range(tw):
                    e[j] = 0
                    e[t + j] = 0
            elif floating is float:
                fnn_wino_deinterleave_f(dy + (2 * ti + r) * ow, full, ow % 2, e, e + t)
            else:
                fnn_wino_deinterleave_d(dy + (2 * ti + r) * ow, full, ow % 2, e, e + t)
    if floating is float:
        fnn_wino_output_grad_f(work, t, dm, stride)
    else:
        fnn_wino_output_grad_d(work, t, dm, stride)


cdef inline void input_gradient_transform(const floating* dv, Py_ssize_t stride, floating* dx, Py_ssize_t h,
                                          Py_ssize_t w, Py_ssize_t pt, Py_ssize_t pl, floating* work,
                                          const Tiles* tl) noexcept nogil:
    """dx (h, w) = the sum over the tiles of B dV B^T at the patch each read (rows 2ti.., columns
    2tj.. of the plane padded by pt rows and pl columns), dv[xi * stride + p]; in a fixed order:
    rows 0 and 1 of every patch, then rows 2 and 3, then the two column shifts joined."""
    cdef Py_ssize_t i, j, row, t = tl.t, tw = tl.tw, rr = tl.r
    for i in range(8):
        for j in range(t, rr):
            work[i * rr + j] = 0
    if floating is float:
        fnn_wino_input_grad_f(dv, stride, t, 0, tw, work, rr)
        fnn_wino_input_grad_f(dv, stride, t, 2, tw, work, rr)
    else:
        fnn_wino_input_grad_d(dv, stride, t, 0, tw, work, rr)
        fnn_wino_input_grad_d(dv, stride, t, 2, tw, work, rr)
    for i in range(h):
        row = i + pt
        if floating is float:
            fnn_wino_join_row_f(work + (row % 2) * 4 * rr + (row // 2) * tw, rr, tw, w, pl, dx + i * w)
        else:
            fnn_wino_join_row_d(work + (row % 2) * 4 * rr + (row // 2) * tw, rr, tw, w, pl, dx + i * w)
