# The row passes of the Model's compiled training step (_fused_mlp.pyx.tp): one row's forward and
# backward through Dense(K, H) -> ReLU -> [mask] -> Dense(H, C), in C with GCC/clang vector types.
# No .pyx sits behind this file: everything here is inline.
from cython cimport floating

# One row of the step, forward and backward, each one pass over the H hidden values in blocks of
# W (8 float32, 4 float64) held in registers: GCC/clang vector types; other compilers get the same
# numbers, in the same order, from the lane-by-lane loops (every lane is one value of the row, and
# the logits' partial sums are combined in one fixed order). The same code in the baseline and the
# AVX2 build, so both give the same bits. Values past the last whole block go through the same
# formulas one at a time.
#
# forward_row: z = x @ weights1 + biases1 (products summed in input order, then the bias), a =
#   relu(z) * m (m: the row's dropout mask, or ones), logits = a @ weights2 (W partial sums per
#   class, combined pairwise), without biases2.
# backward_row: from dl (the row's gradient at the logits), dh = dl @ weights2.T (classes in
#   order), g = dh * m where z > 0 (else 0, as ReLU's backward), and the accumulations
#   dweights2.T += dl (x) a, dbiases1 += g (in double), dweights1 += x (x) g.
cdef extern from *:
    """
    #include <stddef.h>
    #include <string.h>
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTNN_VEC 1
    #define FASTNN_INLINE inline __attribute__((always_inline))
    #else
    #define FASTNN_VEC 0
    #define FASTNN_INLINE inline
    #endif
    #define FASTNN_ROWS(SUF, T, W, IT)                                                                    \
    static FASTNN_INLINE void fastnn_forward_impl_##SUF(const T *x_, ptrdiff_t k, ptrdiff_t h, ptrdiff_t c,              \
            const T *w1, const T *b1, const T *w2t, const T *m, T *z, T *a, T *logits) {                 \
        T part[16][W], x[16];                                                                             \
        ptrdiff_t j = 0, q, l;                                                                            \
        for (q = 0; q < k; ++q) x[q] = x_[q];                                                             \
        for (q = 0; q < c; ++q) for (l = 0; l < W; ++l) part[q][l] = 0;                                   \
        FASTNN_FORWARD_BLOCKS_##SUF                                                                       \
        for (; j + W <= h; j += W) {                                                                      \
            for (l = 0; l < W; ++l) {                                                                     \
                T v = x[0] * w1[j + l];                                                                   \
                for (q = 1; q < k; ++q) v = v + x[q] * w1[q * h + j + l];                                 \
                v = v + b1[j + l];                                                                        \
                z[j + l] = v;                                                                             \
                v = (v <= 0 ? (T)0 : v) * m[j + l];                                                       \
                a[j + l] = v;                                                                             \
                for (q = 0; q < c; ++q) part[q][l] = part[q][l] + v * w2t[q * h + j + l];                 \
            }                                                                                             \
        }                                                                                                 \
        for (q = 0; q < c; ++q) {                                                                         \
            for (l = W / 2; l >= 1; l /= 2) {                                                             \
                ptrdiff_t i;                                                                              \
                for (i = 0; i < l; ++i) part[q][i] = part[q][i] + part[q][i + l];                         \
            }                                                                                             \
            logits[q] = part[q][0];                                                                       \
        }                                                                                                 \
        for (; j < h; ++j) {                                                                              \
            T v = x[0] * w1[j];                                                                           \
            for (q = 1; q < k; ++q) v = v + x[q] * w1[q * h + j];                                         \
            v = v + b1[j];                                                                                \
            z[j] = v;                                                                                     \
            v = (v <= 0 ? (T)0 : v) * m[j];                                                               \
            a[j] = v;                                                                                     \
            for (q = 0; q < c; ++q) logits[q] = logits[q] + v * w2t[q * h + j];                           \
        }                                                                                                 \
    }                                                                                                     \
    static FASTNN_INLINE void fastnn_backward_impl_##SUF(const T *x_, ptrdiff_t k, ptrdiff_t h, ptrdiff_t c,              \
            const T *w2t, const T *dl_, const T *z, const T *a, const T *m, T *dw1, T *db1,              \
            T *dw2t) {                                                                                    \
        ptrdiff_t j = 0, q, l;                                                                            \
        T x[16], dl[16];                                                                                  \
        for (q = 0; q < k; ++q) x[q] = x_[q];                                                             \
        for (q = 0; q < c; ++q) dl[q] = dl_[q];                                                           \
        FASTNN_BACKWARD_BLOCKS_##SUF                                                                      \
        for (; j + W <= h; j += W) {                                                                      \
            for (l = 0; l < W; ++l) {                                                                     \
                T v = a[j + l], g = dl[0] * w2t[j + l];                                                   \
                for (q = 1; q < c; ++q) g = g + dl[q] * w2t[q * h + j + l];                               \
                for (q = 0; q < c; ++q) dw2t[q * h + j + l] = dw2t[q * h + j + l] + v * dl[q];            \
                g = g * m[j + l];                                                                         \
                g = z[j + l] <= 0 ? (T)0 : g;                                                             \
                db1[j + l] = db1[j + l] + g;                                                              \
                for (q = 0; q < k; ++q) dw1[q * h + j + l] = dw1[q * h + j + l] + x[q] * g;               \
            }                                                                                             \
        }                                                                                                 \
        for (; j < h; ++j) {                                                                              \
            T v = a[j], g = dl[0] * w2t[j];                                                               \
            for (q = 1; q < c; ++q) g = g + dl[q] * w2t[q * h + j];                                       \
            for (q = 0; q < c; ++q) dw2t[q * h + j] = dw2t[q * h + j] + v * dl[q];                        \
            g = g * m[j];                                                                                 \
            g = z[j] <= 0 ? (T)0 : g;                                                                     \
            db1[j] = db1[j] + g;                                                                          \
            for (q = 0; q < k; ++q) dw1[q * h + j] = dw1[q * h + j] + x[q] * g;                           \
        }                                                                                                 \
    }
    #if FASTNN_VEC
    #define FASTNN_LOAD(V, P) memcpy(&(V), (P), sizeof(V))
    #define FASTNN_STORE(P, V) memcpy((P), &(V), sizeof(V))
    #define FASTNN_BLOCKS(SUF, T, W, IT)                                                                  \
        typedef T vec_##SUF __attribute__((vector_size(W * sizeof(T))));                                  \
        typedef IT ivec_##SUF __attribute__((vector_size(W * sizeof(T))));
    FASTNN_BLOCKS(f32, float, 8, int)
    FASTNN_BLOCKS(f64, double, 4, long long)
    #define FASTNN_FORWARD_BLOCKS(SUF)                                                                    \
        {                                                                                                 \
            vec_##SUF acc[16], v, w, zero = {0};                                                          \
            for (q = 0; q < c; ++q) acc[q] = zero;                                                        \
            for (; j + (ptrdiff_t)(sizeof(v) / sizeof(v[0])) <= h; j += sizeof(v) / sizeof(v[0])) {       \
                FASTNN_LOAD(w, w1 + j); v = x[0] * w;                                                     \
                for (q = 1; q < k; ++q) { FASTNN_LOAD(w, w1 + q * h + j); v = v + x[q] * w; }             \
                FASTNN_LOAD(w, b1 + j); v = v + w;                                                        \
                FASTNN_STORE(z + j, v);                                                                   \
                v = (vec_##SUF)((ivec_##SUF)v & ~(ivec_##SUF)(v <= zero));                                \
                FASTNN_LOAD(w, m + j); v = v * w;                                                         \
                FASTNN_STORE(a + j, v);                                                                   \
                for (q = 0; q < c; ++q) { FASTNN_LOAD(w, w2t + q * h + j); acc[q] = acc[q] + v * w; }     \
            }                                                                                             \
            for (q = 0; q < c; ++q) FASTNN_STORE(part[q], acc[q]);                                        \
        }
    #define FASTNN_BACKWARD_BLOCKS(SUF)                                                              \
        {                                                                                                 \
            vec_##SUF v, g, w, zero = {0};                                                                \
            for (; j + (ptrdiff_t)(sizeof(v) / sizeof(v[0])) <= h; j += sizeof(v) / sizeof(v[0])) {       \
                FASTNN_LOAD(w, w2t + j); g = dl[0] * w;                                                   \
                for (q = 1; q < c; ++q) { FASTNN_LOAD(w, w2t + q * h + j); g = g + dl[q] * w; }           \
                FASTNN_LOAD(v, a + j);                                                                    \
                for (q = 0; q < c; ++q) {                                                                 \
                    FASTNN_LOAD(w, dw2t + q * h + j); w = w + v * dl[q]; FASTNN_STORE(dw2t + q * h + j, w); \
                }                                                                                         \
                FASTNN_LOAD(w, m + j); g = g * w;                                                         \
                FASTNN_LOAD(w, z + j);                                                                    \
                g = (vec_##SUF)((ivec_##SUF)g & ~(ivec_##SUF)(w <= zero));                                \
                FASTNN_LOAD(w, db1 + j); w = w + g; FASTNN_STORE(db1 + j, w);                             \
                for (q = 0; q < k; ++q) {                                                                 \
                    FASTNN_LOAD(w, dw1 + q * h + j); w = w + x[q] * g; FASTNN_STORE(dw1 + q * h + j, w);  \
                }                                                                                         \
            }                                                                                             \
        }
    #define FASTNN_FORWARD_BLOCKS_f32 FASTNN_FORWARD_BLOCKS(f32)
    #define FASTNN_FORWARD_BLOCKS_f64 FASTNN_FORWARD_BLOCKS(f64)
    #define FASTNN_BACKWARD_BLOCKS_f32 FASTNN_BACKWARD_BLOCKS(f32)
    #define FASTNN_BACKWARD_BLOCKS_f64 FASTNN_BACKWARD_BLOCKS(f64)
    #else
    #define FASTNN_FORWARD_BLOCKS_f32
    #define FASTNN_FORWARD_BLOCKS_f64
    #define FASTNN_BACKWARD_BLOCKS_f32
    #define FASTNN_BACKWARD_BLOCKS_f64
    #endif
    FASTNN_ROWS(f32, float, 8, int)
    FASTNN_ROWS(f64, double, 4, long long)
    /* The entry points: the impl functions inlined with the input and class counts as constants
       for 1 to 4 of each (the loops over them unrolled, the running values in registers). */
    #define FASTNN_KC(CALL)                                                                               \
        switch (k * 8 + c) {                                                                              \
            case 9: CALL(1, 1); case 10: CALL(1, 2); case 11: CALL(1, 3); case 12: CALL(1, 4);            \
            case 17: CALL(2, 1); case 18: CALL(2, 2); case 19: CALL(2, 3); case 20: CALL(2, 4);           \
            case 25: CALL(3, 1); case 26: CALL(3, 2); case 27: CALL(3, 3); case 28: CALL(3, 4);           \
            case 33: CALL(4, 1); case 34: CALL(4, 2); case 35: CALL(4, 3); case 36: CALL(4, 4);           \
            default: CALL(k, c);                                                                          \
        }
    #define FASTNN_ENTRY(SUF, T)                                                                          \
    static void fastnn_forward_row_##SUF(const T *x, ptrdiff_t k, ptrdiff_t h, ptrdiff_t c,               \
            const T *w1, const T *b1, const T *w2t, const T *m, T *z, T *a, T *logits) {                 \
        FASTNN_KC(FASTNN_FORWARD_CALL_##SUF)                                                              \
    }                                                                                                     \
    static void fastnn_backward_row_##SUF(const T *x, ptrdiff_t k, ptrdiff_t h, ptrdiff_t c,              \
            const T *w2t, const T *dl, const T *z, const T *a, const T *m, T *dw1, T *db1,               \
            T *dw2t) {                                                                                    \
        FASTNN_KC(FASTNN_BACKWARD_CALL_##SUF)                                                             \
    }
    #define FASTNN_FORWARD_CALL_f32(K, C) fastnn_forward_impl_f32(x, K, h, C, w1, b1, w2t, m, z, a, logits); return;
    #define FASTNN_FORWARD_CALL_f64(K, C) fastnn_forward_impl_f64(x, K, h, C, w1, b1, w2t, m, z, a, logits); return;
    #define FASTNN_BACKWARD_CALL_f32(K, C) fastnn_backward_impl_f32(x, K, h, C, w2t, dl, z, a, m, dw1, db1, dw2t); return;
    #define FASTNN_BACKWARD_CALL_f64(K, C) fastnn_backward_impl_f64(x, K, h, C, w2t, dl, z, a, m, dw1, db1, dw2t); return;
    FASTNN_ENTRY(f32, float)
    FASTNN_ENTRY(f64, double)
    """
    void fastnn_forward_row_f32(const float* x, Py_ssize_t k, Py_ssize_t h, Py_ssize_t c, const float* w1,
                                const float* b1, const float* w2t, const float* m, float* z, float* a,
                                float* logits) noexcept nogil
    void fastnn_forward_row_f64(const double* x, Py_ssize_t k, Py_ssize_t h, Py_ssize_t c, const double* w1,
                                const double* b1, const double* w2t, const double* m, double* z, double* a,
                                double* logits) noexcept nogil
    void fastnn_backward_row_f32(const float* x, Py_ssize_t k, Py_ssize_t h, Py_ssize_t c, const float* w2t,
                                 const float* dl, const float* z, const float* a, const float* m, float* dw1,
                                 float* db1, float* dw2t) noexcept nogil
    void fastnn_backward_row_f64(const double* x, Py_ssize_t k, Py_ssize_t h, Py_ssize_t c, const double* w2t,
                                 const double* dl, const double* z, const double* a, const double* m, double* dw1,
                                 double* db1, double* dw2t) noexcept nogil


cdef inline void _forward_row(const floating* x, Py_ssize_t k, Py_ssize_t h, Py_ssize_t c, const floating* w1,
                              const floating* b1, const floating* w2t, const floating* m, floating* z, floating* a,
                              floating* logits) noexcept nogil:
    if floating is float:
        fastnn_forward_row_f32(x, k, h, c, w1, b1, w2t, m, z, a, logits)
    else:
        fastnn_forward_row_f64(x, k, h, c, w1, b1, w2t, m, z, a, logits)


cdef inline void _backward_row(const floating* x, Py_ssize_t k, Py_ssize_t h, Py_ssize_t c, const floating* w2t,
                               const floating* dl, const floating* z, const floating* a, const floating* m,
                               floating* dw1, floating* db1, floating* dw2t) noexcept nogil:
    if floating is float:
        fastnn_backward_row_f32(x, k, h, c, w2t, dl, z, a, m, dw1, db1, dw2t)
    else:
        fastnn_backward_row_f64(x, k, h, c, w2t, dl, z, a, m, dw1, db1, dw2t)
