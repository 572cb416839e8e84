# Small float32 GEMMs in AVX-512 for Conv2D (_conv.pyx: the Winograd, shifted-plane and im2col
# paths) and the compiled regression step (_fused_deep.pyx). No .pyx sits behind this file:
# everything here is inline.
#
# Their GEMMs are many and short: the Winograd path's, per block of samples, are 16 products
# (O, C) @ (C, P) (forward), U.T @ dM (dinputs) and dM @ V.T (dweights), with C and O a few tens
# and P a few hundred tiles. NumPy's BLAS packs both operands on every call, and where its build picks the
# AVX2 kernels on a CPU that has AVX-512 (OpenBLAS does where OPENBLAS_CORETYPE says Haswell, or
# where it does not know the CPU) it also runs at half the vector width. The kernels below read
# the operands where they lie: a tile of C is 8 rows x 32 columns (16 accumulators of 16 floats),
# one row of B (two vectors, masked at the right edge) and 8 broadcast elements of A per step of
# k, so B's panel of K x 32 values and all of A stay in L1 while every tile of a panel is made.
# A @ B.T (the dweights product, summed over the tiles) is a grid of dot products instead: a tile
# is 4 rows of A against 4 rows of B, 16 accumulators over k, their lanes summed at the end.
# C is written once, at the end of the tile's sum; the sum runs over k in order, with one
# fused multiply-add per product, so a value does not depend on the thread count or the tile it
# falls in. The error bound is a GEMM's: |error| <= K * 2^-24 * sum |a||b| (tests check it).
#
# small_gemm() has the calling convention of _blas.gemm() and falls back to it for everything the
# kernels do not cover (float64, alpha != 1, beta other than 0 or 1, both operands transposed, a CPU
# without AVX-512, or the kernels switched off with _blas.set_small_gemm).
from cython cimport floating
from fastnn._ext._blas cimport gemm, small_gemm_on

cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    #include <immintrin.h>
    /* Callers run these only where _blas.small_gemm_on() says so (the CPU has AVX-512). */
    #define FNN_AVX512 __attribute__((target("avx512f")))
    /* One tile: R rows (1 to 8) x up to 32 columns (masks m0, m1) of C = op(A) @ B (+ C); with
       V = 1 (m1 empty: at most 16 columns), only the first vector of each row is computed. */
    static inline __attribute__((always_inline)) FNN_AVX512 void fnn_sgemm_tile(
            const int R, const int V, Py_ssize_t k, const float* a, Py_ssize_t a_rs, Py_ssize_t a_ks,
            const float* b, Py_ssize_t ldb, const Py_ssize_t* b_rows, int accumulate, float* c,
            Py_ssize_t ldc, __mmask16 m0, __mmask16 m1) {
        __m512 s0[8], s1[8];
        int r;
        for (r = 0; r < 8; r++) {
            if (r < R) {
                s0[r] = _mm512_setzero_ps();
                s1[r] = _mm512_setzero_ps();
            }
        }
        for (Py_ssize_t kk = 0; kk < k; kk++) {
            const float* bk = b + (b_rows ? b_rows[kk] : kk * ldb);
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, bk);
            const __m512 b1 = V == 2 ? _mm512_maskz_loadu_ps(m1, bk + 16) : _mm512_setzero_ps();
            const float* ak = a + kk * a_ks;
            for (r = 0; r < 8; r++) {
                if (r < R) {
                    const __m512 av = _mm512_set1_ps(ak[r * a_rs]);
                    s0[r] = _mm512_fmadd_ps(av, b0, s0[r]);
                    if (V == 2)
                        s1[r] = _mm512_fmadd_ps(av, b1, s1[r]);
                }
            }
        }
        for (r = 0; r < 8; r++) {
            if (r < R) {
                float* cr = c + r * ldc;
                if (accumulate)
                    s0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), s0[r]);
                _mm512_mask_storeu_ps(cr, m0, s0[r]);
                if (V == 2) {
                    if (accumulate)
                        s1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), s1[r]);
                    _mm512_mask_storeu_ps(cr + 16, m1, s1[r]);
                }
            }
        }
    }
    /* C (m, n; row stride ldc) = op(A) @ B, plus C when accumulate: op(A)[i, kk] = a[i*a_rs + kk*a_ks]
       (a_rs = lda, a_ks = 1 for A; a_rs = 1, a_ks = lda for A transposed), B (k, n): row kk at
       b + b_rows[kk], or b + kk*ldb when b_rows is NULL. Returns 0, touching nothing, where the
       kernels are not compiled. */
    #define FNN_NN_TILE(R) fnn_sgemm_tile(R, 2, k, a + i * a_rs, a_rs, a_ks, b + j, ldb, b_rows, accumulate, c + i * ldc + j, ldc, m0, m1)
    FNN_AVX512 static int fnn_sgemm_nn_rows_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
            const float* a, Py_ssize_t a_rs, Py_ssize_t a_ks, const float* b, Py_ssize_t ldb,
            const Py_ssize_t* b_rows, int accumulate, float* c, Py_ssize_t ldc) {
        for (Py_ssize_t j = 0; j < n; j += 32) {
            Py_ssize_t w = n - j < 32 ? n - j : 32;
            __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1);
            __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w <= 16 ? 0 : (1u << (w - 16)) - 1);
            Py_ssize_t i = 0;
            for (; i + 8 <= m; i += 8)
                FNN_NN_TILE(8);
            switch (m - i) {
                case 7: FNN_NN_TILE(7); break; case 6: FNN_NN_TILE(6); break; case 5: FNN_NN_TILE(5); break;
                case 4: FNN_NN_TILE(4); break; case 3: FNN_NN_TILE(3); break; case 2: FNN_NN_TILE(2); break;
                case 1: FNN_NN_TILE(1); break; default: break;
            }
        }
        return 1;
    }
    static int fnn_sgemm_nn_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t a_rs, Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, int accumulate,
            float* c, Py_ssize_t ldc) {
        return fnn_sgemm_nn_rows_avx512(m, n, k, a, a_rs, a_ks, b, ldb, NULL, accumulate, c, ldc);
    }
    /* Rows [i0, i1) and the 32-column panels p0 <= p < p1 of C = op(A) @ B (+ C), as
       fnn_sgemm_nn_avx512, with the inner dimension in blocks of FNN_KC: each block's sum runs
       over its k in order and is added to C, blocks in order (the first one stored, or added to C
       when accumulate). So a value depends on neither the thread nor the range it falls in.
       B (k, n) is b with row stride ldb, or, with b_trans, the transpose of b (n, k; row stride
       ldb): A @ W.T without a transposed copy of W. Each block of B (FNN_KC x 32) is first
       copied to a contiguous buffer on the stack (32 KB; b's rows read in order when b_trans),
       which stays in the first-level cache while the range's rows go by: read in place, a wide
       B's rows lie a multiple of 4 KB apart, in one cache set and one page each. A range of at
       most 8 rows reads each value of B once, so it reads B in place (not transposed). The Dense
       layers' products in Model.train (_dense.pyx) split C into such ranges. */
    #define FNN_KC 256
    #define FNN_NN_BLOCK(R, V) fnn_sgemm_tile(R, V, kc, a + i * a_rs + kb * a_ks, a_rs, a_ks, bb, bld, NULL, acc, c + i * ldc + j, ldc, m0, m1)
    #define FNN_NN_RANGE_ROWS(V) {                                                                  \
        Py_ssize_t i = i0;                                                                         \
        for (; i + 8 <= i1; i += 8)                                                                \
            FNN_NN_BLOCK(8, V);                                                                    \
        switch (i1 - i) {                                                                          \
            case 7: FNN_NN_BLOCK(7, V); break; case 6: FNN_NN_BLOCK(6, V); break;                  \
            case 5: FNN_NN_BLOCK(5, V); break; case 4: FNN_NN_BLOCK(4, V); break;                  \
            case 3: FNN_NN_BLOCK(3, V); break; case 2: FNN_NN_BLOCK(2, V); break;                  \
            case 1: FNN_NN_BLOCK(1, V); break; default: break; } }
    FNN_AVX512 static int fnn_sgemm_nn_range_avx512(Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t a_rs, Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, int b_trans, int accumulate,
            float* c, Py_ssize_t ldc, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t p0, Py_ssize_t p1) {
        float pack[FNN_KC * 32] __attribute__((aligned(64)));
        for (Py_ssize_t p = p0; p < p1; p++) {
            const Py_ssize_t j = p * 32, w = n - j < 32 ? n - j : 32;
            const __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1);
            const __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w <= 16 ? 0 : (1u << (w - 16)) - 1);
            for (Py_ssize_t kb = 0; kb < k || kb == 0; kb += FNN_KC) {
                const Py_ssize_t kc = k - kb < FNN_KC ? k - kb : FNN_KC;
                const int acc = accumulate || kb > 0;
                const float* bb = pack;
                Py_ssize_t bld = 32;
                if (!b_trans && i1 - i0 <= 8) {
                    bb = b + kb * ldb + j;
                    bld = ldb;
                } else if (b_trans) {
                    for (Py_ssize_t e = 0; e < 32; e++) {
                        if (e < w) {
                            const float* row = b + (j + e) * ldb + kb;
                            for (Py_ssize_t q = 0; q < kc; q++)
                                pack[q * 32 + e] = row[q];
                        } else {
                            for (Py_ssize_t q = 0; q < kc; q++)
                                pack[q * 32 + e] = 0.0f;
                        }
                    }
                } else {
                    for (Py_ssize_t q = 0; q < kc; q++) {
                        const float* row = b + (kb + q) * ldb + j;
                        _mm512_store_ps(pack + q * 32, _mm512_maskz_loadu_ps(m0, row));
                        _mm512_store_ps(pack + q * 32 + 16, _mm512_maskz_loadu_ps(m1, row + 16));
                    }
                }
                if (w <= 16)     /* a narrow panel: one vector per row, half the multiply-adds */
                    FNN_NN_RANGE_ROWS(1)
                else
                    FNN_NN_RANGE_ROWS(2)
            }
        }
        return 1;
    }
    /* The 16 sums of the lanes of s[0..15], in one vector: lane 4L + e holds the sum of
       s[(0, 2, 1, 3)[e] + (0, 8, 4, 12)[L]] (a tree of 45 shuffles and adds instead of 16
       separate reductions of about 8 each). */
    static inline __attribute__((always_inline)) FNN_AVX512 __m512 fnn_sum16(const __m512* s) {
        __m512 x[8], y[4], z[2];
        int i;
        for (i = 0; i < 8; i++)
            x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[i], s[i + 8], 0x44), _mm512_shuffle_f32x4(s[i], s[i + 8], 0xEE));
        for (i = 0; i < 4; i++)
            y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[i], x[i + 4], 0x88), _mm512_shuffle_f32x4(x[i], x[i + 4], 0xDD));
        for (i = 0; i < 2; i++)
            z[i] = _mm512_add_ps(_mm512_unpacklo_ps(y[i], y[i + 2]), _mm512_unpackhi_ps(y[i], y[i + 2]));
        return _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x44), _mm512_shuffle_ps(z[0], z[1], 0xEE));
    }
    /* One tile of C = A @ B.T (+ C): R rows of A (1 to 4) against S rows of B (1 to 4), each a
       dot product over k, 16 lanes at a time (masked at the end), the lanes summed at the end. */
    static inline __attribute__((always_inline)) FNN_AVX512 void fnn_sgemm_nt_tile(
            const int R, const int S, Py_ssize_t k, const float* a, Py_ssize_t lda,
            const Py_ssize_t* a_rows, const float* b, Py_ssize_t ldb, int accumulate, float* c,
            Py_ssize_t ldc) {
        static const int lane_of[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
        __m512 s[16];
        float sums[16];
        const float* ar[4];
        int r, q;
        for (r = 0; r < 4; r++)
            ar[r] = a + (a_rows ? a_rows[r < R ? r : 0] : (r < R ? r : 0) * lda);
        for (q = 0; q < 16; q++)
            s[q] = _mm512_setzero_ps();
        for (Py_ssize_t kk = 0; kk < k; kk += 16) {
            __mmask16 mk = (__mmask16)(k - kk >= 16 ? 0xFFFF : (1u << (k - kk)) - 1);
            __m512 bv[4];
            for (q = 0; q < 4; q++)
                if (q < S)
                    bv[q] = _mm512_maskz_loadu_ps(mk, b + q * ldb + kk);
            for (r = 0; r < 4; r++) {
                if (r < R) {
                    const __m512 av = _mm512_maskz_loadu_ps(mk, ar[r] + kk);
                    for (q = 0; q < 4; q++)
                        if (q < S)
                            s[4 * r + q] = _mm512_fmadd_ps(av, bv[q], s[4 * r + q]);
                }
            }
        }
        _mm512_storeu_ps(sums, fnn_sum16(s));
        for (r = 0; r < R; r++)
            for (q = 0; q < S; q++)
                c[r * ldc + q] = accumulate ? c[r * ldc + q] + sums[lane_of[4 * r + q]] : sums[lane_of[4 * r + q]];
    }
    #define FNN_NT_ROW(R, S) fnn_sgemm_nt_tile(R, S, k, a_rows ? a : a + i * lda, lda, a_rows ? a_rows + i : NULL, b + j * ldb, ldb, accumulate, c + i * ldc + j, ldc)
    #define FNN_NT_ROWS(S)                                                                         \
        switch (m - i < 4 ? m - i : 4) {                                                           \
            case 4: FNN_NT_ROW(4, S); break; case 3: FNN_NT_ROW(3, S); break;                      \
            case 2: FNN_NT_ROW(2, S); break; case 1: FNN_NT_ROW(1, S); break; default: break; }
    /* C (m, n; row stride ldc) = A @ B.T, plus C when accumulate: A (m, k), row i at a + a_rows[i],
       or a + i*lda when a_rows is NULL; B (n, k; row stride ldb). Returns 0, touching nothing, where
       the kernels are not compiled. */
    FNN_AVX512 static int fnn_sgemm_nt_rows_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
            const float* a, Py_ssize_t lda, const Py_ssize_t* a_rows, const float* b, Py_ssize_t ldb,
            int accumulate, float* c, Py_ssize_t ldc) {
        for (Py_ssize_t i = 0; i < m; i += 4) {
            for (Py_ssize_t j = 0; j < n; j += 4) {
                switch (n - j < 4 ? n - j : 4) {
                    case 4: FNN_NT_ROWS(4) break; case 3: FNN_NT_ROWS(3) break;
                    case 2: FNN_NT_ROWS(2) break; case 1: FNN_NT_ROWS(1) break; default: break;
                }
            }
        }
        return 1;
    }
    static int fnn_sgemm_nt_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t lda, const float* b, Py_ssize_t ldb, int accumulate, float* c, Py_ssize_t ldc) {
        return fnn_sgemm_nt_rows_avx512(m, n, k, a, lda, NULL, b, ldb, accumulate, c, ldc);
    }
    /* target[offsets[r] + j] += rows[r * n + j] for r < k, j < n, rows in order (the shifted-plane
       path's col2im; the rows overlap in target). Returns 0, touching nothing, where the kernels
       are not compiled. */
    FNN_AVX512 static int fnn_add_rows_avx512(float* target, const Py_ssize_t* offsets, const float* rows,
                                              Py_ssize_t k, Py_ssize_t n) {
        for (Py_ssize_t r = 0; r < k; r++) {
            float* t = target + offsets[r];
            const float* row = rows + r * n;
            for (Py_ssize_t j = 0; j < n; j += 16) {
                __mmask16 mk = (__mmask16)(n - j >= 16 ? 0xFFFF : (1u << (n - j)) - 1);
                _mm512_mask_storeu_ps(t + j, mk, _mm512_add_ps(_mm512_maskz_loadu_ps(mk, t + j),
                                                               _mm512_maskz_loadu_ps(mk, row + j)));
            }
        }
        return 1;
    }
    #else
    static int fnn_sgemm_nn_range_avx512(Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t a_rs,
            Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, int b_trans, int accumulate, float* c,
            Py_ssize_t ldc, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t p0, Py_ssize_t p1) {
        return 0;
    }
    static int fnn_add_rows_avx512(float* target, const Py_ssize_t* offsets, const float* rows,
                                   Py_ssize_t k, Py_ssize_t n) {
        return 0;
    }
    static int fnn_sgemm_nn_rows_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t a_rs, Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, const Py_ssize_t* b_rows,
            int accumulate, float* c, Py_ssize_t ldc) {
        return 0;
    }
    static int fnn_sgemm_nt_rows_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t lda, const Py_ssize_t* a_rows, const float* b, Py_ssize_t ldb, int accumulate,
            float* c, Py_ssize_t ldc) {
        return 0;
    }
    static int fnn_sgemm_nt_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t lda, const float* b, Py_ssize_t ldb, int accumulate, float* c, Py_ssize_t ldc) {
        return 0;
    }
    static int fnn_sgemm_nn_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a,
            Py_ssize_t a_rs, Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, int accumulate,
            float* c, Py_ssize_t ldc) {
        return 0;
    }
    #endif
    """
    bint fnn_sgemm_nn_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t a_rs,
                             Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, int accumulate, float* c,
                             Py_ssize_t ldc) noexcept nogil
    bint fnn_sgemm_nt_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                             const float* b, Py_ssize_t ldb, int accumulate, float* c, Py_ssize_t ldc) noexcept nogil
    bint fnn_sgemm_nn_range_avx512(Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t a_rs,
                                   Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, int b_trans, int accumulate, float* c,
                                   Py_ssize_t ldc, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t p0,
                                   Py_ssize_t p1) noexcept nogil
    bint fnn_add_rows_avx512(float* target, const Py_ssize_t* offsets, const float* rows, Py_ssize_t k,
                             Py_ssize_t n) noexcept nogil
    bint fnn_sgemm_nn_rows_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t a_rs,
                                  Py_ssize_t a_ks, const float* b, Py_ssize_t ldb, const Py_ssize_t* b_rows,
                                  int accumulate, float* c, Py_ssize_t ldc) noexcept nogil
    bint fnn_sgemm_nt_rows_avx512(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                                  const Py_ssize_t* a_rows, const float* b, Py_ssize_t ldb, int accumulate,
                                  float* c, Py_ssize_t ldc) noexcept nogil


cdef inline void small_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                            floating alpha, const floating* a, Py_ssize_t lda,
                            const floating* b, Py_ssize_t ldb,
                            floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, as _blas.gemm (row-major, op transposes when asked):
    the AVX-512 kernels above where they apply, NumPy's BLAS otherwise."""
    if floating is float:
        if alpha == 1 and (beta == 0 or beta == 1) and small_gemm_on():
            if not trans_b and fnn_sgemm_nn_avx512(m, n, k, a, 1 if trans_a else lda, lda if trans_a else 1,
                                                   b, ldb, beta == 1, c, ldc):
                return
            if trans_b and not trans_a and fnn_sgemm_nt_avx512(m, n, k, a, lda, b, ldb, beta == 1, c, ldc):
                return
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
