# Generated from _fused_mlp.pyx.tp by setup.py: edit the template, not this file.
"""The Model's compiled training step for one wide hidden layer between thin ones (the book's Ch18
spiral network): Dense(K, H) -> ReLU -> [Dropout, fast mode] -> Dense(H, C) -> softmax with
categorical cross-entropy and categorical accuracy on class ids.

One pass over the batch, row by row: each row's hidden values, mask, logits, softmax, loss,
argmax, the head's gradient and the backward through both Dense layers are computed while the
row sits in the first-level cache, and the four parameter gradients are accumulated as the rows
go by. No (n_samples, H) array is written or read: the step touches the inputs, the labels and
the parameters. The per-layer path moves the (n_samples, H) activation about twenty times.

Shapes: X (n, K), labels (n,), weights1 (K, H), biases1 (1, H), weights2 (H, C), biases2 (1, C);
the gradients dweights1 (K, H), dbiases1 (1, H), dweights2 (H, C), dbiases2 (1, C) go into the
Dense layers' state dicts under the book's names.

Agreement with the per-layer path (tests/test_fused_mlp.py): the dropout mask is the fast mode's
(the same generator, element for element), ReLU, the mask product, the softmax, the per-sample
losses, the argmax and the head's gradient are the same operations in the same order; the two
Dense products and the gradient sums are plain loops where the per-layer path calls BLAS, so they
differ by float rounding (within the dot-product error bound). Bias gradients accumulate in double,
as the per-layer kernel's; weight gradients in the data's dtype, as BLAS does.

A Tempita template (src_pyx/_templates.py): dispatch() writes the ladder over the float type and
the kind of the class ids.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.string cimport memcpy

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, ready, ready2, reuse2
from _cross_entropy cimport _clip, _log
from _labels cimport I32, I64, NOT_LABELS, U8, label_kind, label_t, labels_in_range
from _regularization cimport add_penalty_gradient
from _softmax cimport _softmax_forward
from _xorshift cimport CHUNK, CHUNK_STEPS, CHUNK_WORDS, LANES, _seed_lanes, fastnn_xorshift128p_fill

# The thin sides: at most MAX_THIN inputs and classes (the row's logits live on the stack).
cpdef enum:
    MAX_THIN = 16

# dbiases1 is summed over BIAS_BLOCK rows at a time in the data's dtype, and those partial sums in
# double (a sum in double of every value costs a conversion per value, most of the backward's time).
cdef enum:
    BIAS_BLOCK = 32


cdef struct _Mask:
    # The fast dropout mask, drawn in element order exactly as _dropout.pyx's fast_forward draws it.
    uint64_t s0[LANES]
    uint64_t s1[LANES]
    uint64_t words[CHUNK_WORDS]
    uint16_t draws[CHUNK]
    Py_ssize_t used        # draws taken from the current chunk


cdef inline void _mask_row(_Mask* g, floating* m, Py_ssize_t h, int threshold, floating scale) noexcept nogil:
    """The next h mask values (scale or 0) of the stream."""
    cdef Py_ssize_t j = 0, count, k
    cdef const uint16_t* d
    while j < h:
        if g.used == CHUNK:
            fastnn_xorshift128p_fill(g.s0, g.s1, g.words, CHUNK_STEPS)
            memcpy(g.draws, g.words, sizeof(g.words))
            g.used = 0
        count = min(h - j, CHUNK - g.used)
        d = g.draws + g.used
        for k in range(count):
            m[j + k] = scale if <int>d[k] < threshold else 0
        g.used += count
        j += count


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


cdef void _step(const floating* X, const label_t* labels, const floating* w1, const floating* b1,
                const floating* w2, const floating* b2, floating* dw1, floating* db1, floating* dw2,
                floating* db2, floating* scratch, double* db1_sum, Py_ssize_t n, Py_ssize_t k_in,
                Py_ssize_t h, Py_ssize_t c, bint dropout, int threshold, floating scale, uint64_t seed,
                double* loss_sum, Py_ssize_t* correct) noexcept nogil:
    # scratch: z, m, a (the row's hidden values: Dense output, mask, the hidden output after
    # ReLU and dropout), w2t (C, H) weights2 transposed, dw2t (C, H) its gradient.
    cdef floating* z = scratch
    cdef floating* m = scratch + h
    cdef floating* a = scratch + 2 * h
    cdef floating* db1_part = scratch + 3 * h
    cdef floating* w2t = scratch + 4 * h
    cdef floating* dw2t = w2t + c * h
    cdef floating logits[MAX_THIN]
    cdef floating p[MAX_THIN]
    cdef floating dl[MAX_THIN]
    cdef double db2_sum[MAX_THIN]
    cdef floating nf = <floating>n
    cdef Py_ssize_t i, j, q, best
    cdef const floating* row
    cdef floating top, v, loss
    cdef double total = 0
    cdef Py_ssize_t hits = 0
    cdef _Mask gen
    for q in range(c):
        db2_sum[q] = 0
        for j in range(h):
            w2t[q * h + j] = w2[j * c + q]
            dw2t[q * h + j] = 0
    for j in range(k_in * h):
        dw1[j] = 0
    for j in range(h):
        db1_sum[j] = 0
        db1_part[j] = 0
        m[j] = scale
    if dropout:
        _seed_lanes(seed, gen.s0, gen.s1)
        gen.used = CHUNK
    for i in range(n):
        row = X + i * k_in
        # Forward: z = x @ weights1 + biases1, ReLU, the dropout mask, logits = a @ weights2 + biases2.
        if dropout:
            _mask_row(&gen, m, h, threshold, scale)
        _forward_row(row, k_in, h, c, w1, b1, <const floating*>w2t, <const floating*>m, z, a, logits)
        for q in range(c):
            logits[q] = logits[q] + b2[q]
        # The head, as _fused_head's softmax_cce_step on this one row.
        _softmax_forward(<const floating*>logits, p, 1, c)
        loss = -_log(_clip(p[labels[i]]))
        total += loss
        best = 0
        top = p[0]
        for q in range(1, c):
            v = p[q]
            best = q if v > top else best
            top = v if v > top else top
        hits += best == labels[i]
        for q in range(c):
            dl[q] = p[q]
        dl[labels[i]] -= 1
        for q in range(c):
            dl[q] = dl[q] / nf
        # Backward: dbiases2, then the rest in one pass over the row (see backward_row above).
        for q in range(c):
            db2_sum[q] += dl[q]
        _backward_row(row, k_in, h, c, <const floating*>w2t, <const floating*>dl, <const floating*>z,
                      <const floating*>a, <const floating*>m, dw1, db1_part, dw2t)
        if i % BIAS_BLOCK == BIAS_BLOCK - 1 or i == n - 1:
            for j in range(h):
                db1_sum[j] += db1_part[j]
                db1_part[j] = 0
    for j in range(h):
        db1[j] = <floating>db1_sum[j]
    for q in range(c):
        db2[q] = <floating>db2_sum[q]
        for j in range(h):
            dw2[j * c + q] = dw2t[q * h + j]
    loss_sum[0] = total
    correct[0] = hits


cdef inline bint _dense_ready(dict state, int typenum, Py_ssize_t n_inputs):
    w = state.get("weights")
    b = state.get("biases")
    return (ready2(w, typenum, -1) and (<cnp.ndarray>w).shape[0] == n_inputs
            and ready2(b, typenum, (<cnp.ndarray>w).shape[1]) and (<cnp.ndarray>b).shape[0] == 1)


def hidden_step(dict dense1, dict dense2, dict scratch, object X, object labels, double keep, object draw_seed):
    """One training step's forward, head and backward (see the module docstring): sets dense1's and
    dense2's `dweights` and `dbiases` (regularisation gradients included) and returns (sum of the
    per-sample losses, number of rows whose argmax is the label). `keep`: the dropout's keep
    probability, or 0 for no dropout; `draw_seed()`: called once, after every check, for the
    mask's seed (as Layer_Dropout draws it). `scratch`: a dict the caller keeps, whose buffers are
    reused from step to step.

    None, having changed nothing and drawn nothing, when the arrays are not in the forms this
    kernel reads: X a C-contiguous (n, K) array of the weights' dtype with n >= 1, labels in-range
    class ids, K and C at most MAX_THIN; the caller takes the per-layer path then."""
    w1o = dense1.get("weights")
    if not (ready2(w1o, cnp.NPY_FLOAT32, -1) or ready2(w1o, cnp.NPY_FLOAT64, -1)):
        return None
    cdef cnp.ndarray w1 = <cnp.ndarray>w1o
    cdef int typenum = cnp.PyArray_TYPE(w1)
    cdef Py_ssize_t k_in = w1.shape[0], h = w1.shape[1]
    if not _dense_ready(dense1, typenum, k_in) or not _dense_ready(dense2, typenum, h):
        return None
    cdef cnp.ndarray b1 = dense1["biases"], w2 = dense2["weights"], b2 = dense2["biases"]
    cdef Py_ssize_t c = w2.shape[1]
    if k_in > MAX_THIN or c > MAX_THIN or not ready2(X, typenum, k_in):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>X
    cdef Py_ssize_t n = x.shape[0]
    cdef int kind = label_kind(labels, n)
    if n == 0 or kind == NOT_LABELS:
        return None
    cdef void* p_y = data(<cnp.ndarray>labels)
    if not labels_in_range(kind, p_y, n, c):
        return None
    cdef bint dropout = keep > 0
    cdef uint64_t seed = <uint64_t>draw_seed() if dropout else 0
    cdef int threshold = <int>(keep * 65536.0 + 0.5)
    cdef double scale = 1.0 / keep if dropout else 1.0
    cdef cnp.ndarray dw1 = reuse2(dense1, "dweights", k_in, h, typenum, x, w1)
    cdef cnp.ndarray db1 = reuse2(dense1, "dbiases", 1, h, typenum, b1, None)
    cdef cnp.ndarray dw2 = reuse2(dense2, "dweights", h, c, typenum, w2, None)
    cdef cnp.ndarray db2 = reuse2(dense2, "dbiases", 1, c, typenum, b2, None)
    cdef cnp.ndarray rows = reuse2(scratch, "rows", 4 + 2 * c, h, typenum, None, None)
    cdef cnp.ndarray sums = reuse2(scratch, "sums", 1, h, cnp.NPY_FLOAT64, None, None)
    cdef double l1w = dense1.get("weight_regularizer_l1", 0), l2w = dense1.get("weight_regularizer_l2", 0)
    cdef double l1b = dense1.get("bias_regularizer_l1", 0), l2b = dense1.get("bias_regularizer_l2", 0)
    cdef double m1w = dense2.get("weight_regularizer_l1", 0), m2w = dense2.get("weight_regularizer_l2", 0)
    cdef double m1b = dense2.get("bias_regularizer_l1", 0), m2b = dense2.get("bias_regularizer_l2", 0)
    cdef void* p_x = data(x)
    cdef void* p_w1 = data(w1)
    cdef void* p_b1 = data(b1)
    cdef void* p_w2 = data(w2)
    cdef void* p_b2 = data(b2)
    cdef void* p_dw1 = data(dw1)
    cdef void* p_db1 = data(db1)
    cdef void* p_dw2 = data(dw2)
    cdef void* p_db2 = data(db2)
    cdef void* p_rows = data(rows)
    cdef double* p_sums = <double*>data(sums)
    cdef double total = 0
    cdef Py_ssize_t correct = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if kind == U8:
                _step(<float*>p_x, <uint8_t*>p_y, <float*>p_w1, <float*>p_b1, <float*>p_w2, <float*>p_b2, <float*>p_dw1, <float*>p_db1, <float*>p_dw2, <float*>p_db2, <float*>p_rows, p_sums, n, k_in, h, c, dropout, threshold, <float>scale, seed, &total, &correct)
            elif kind == I32:
                _step(<float*>p_x, <int32_t*>p_y, <float*>p_w1, <float*>p_b1, <float*>p_w2, <float*>p_b2, <float*>p_dw1, <float*>p_db1, <float*>p_dw2, <float*>p_db2, <float*>p_rows, p_sums, n, k_in, h, c, dropout, threshold, <float>scale, seed, &total, &correct)
            else:
                _step(<float*>p_x, <int64_t*>p_y, <float*>p_w1, <float*>p_b1, <float*>p_w2, <float*>p_b2, <float*>p_dw1, <float*>p_db1, <float*>p_dw2, <float*>p_db2, <float*>p_rows, p_sums, n, k_in, h, c, dropout, threshold, <float>scale, seed, &total, &correct)
        else:
            if kind == U8:
                _step(<double*>p_x, <uint8_t*>p_y, <double*>p_w1, <double*>p_b1, <double*>p_w2, <double*>p_b2, <double*>p_dw1, <double*>p_db1, <double*>p_dw2, <double*>p_db2, <double*>p_rows, p_sums, n, k_in, h, c, dropout, threshold, <double>scale, seed, &total, &correct)
            elif kind == I32:
                _step(<double*>p_x, <int32_t*>p_y, <double*>p_w1, <double*>p_b1, <double*>p_w2, <double*>p_b2, <double*>p_dw1, <double*>p_db1, <double*>p_dw2, <double*>p_db2, <double*>p_rows, p_sums, n, k_in, h, c, dropout, threshold, <double>scale, seed, &total, &correct)
            else:
                _step(<double*>p_x, <int64_t*>p_y, <double*>p_w1, <double*>p_b1, <double*>p_w2, <double*>p_b2, <double*>p_dw1, <double*>p_db1, <double*>p_dw2, <double*>p_db2, <double*>p_rows, p_sums, n, k_in, h, c, dropout, threshold, <double>scale, seed, &total, &correct)
        if typenum == cnp.NPY_FLOAT32:
            add_penalty_gradient(<float*>p_dw1, <float*>p_w1, k_in * h, l1w, l2w)
            add_penalty_gradient(<float*>p_db1, <float*>p_b1, h, l1b, l2b)
            add_penalty_gradient(<float*>p_dw2, <float*>p_w2, h * c, m1w, m2w)
            add_penalty_gradient(<float*>p_db2, <float*>p_b2, c, m1b, m2b)
        else:
            add_penalty_gradient(<double*>p_dw1, <double*>p_w1, k_in * h, l1w, l2w)
            add_penalty_gradient(<double*>p_db1, <double*>p_b1, h, l1b, l2b)
            add_penalty_gradient(<double*>p_dw2, <double*>p_w2, h * c, m1w, m2w)
            add_penalty_gradient(<double*>p_db2, <double*>p_b2, c, m1b, m2b)
    return total, correct
