"""The Model's compiled training step for two wide hidden layers between thin ones, with a linear
output and mean squared error (the book's Ch17 sine regression network)::

    Dense(K, H1) -> ReLU -> Dense(H1, H2) -> ReLU -> Dense(H2, C) -> Activation_Linear,
    Loss_MeanSquaredError, Accuracy_Regression

Shapes: X (n, K), targets (n, C), weights1 (K, H1), biases1 (1, H1), weights2 (H1, H2), biases2
(1, H2), weights3 (H2, C), biases3 (1, C); K and C at most MAX_THIN. The gradients go into the
Dense layers' state dicts under the book's names (``dweights``, ``dbiases``), regularisation
terms included.

The batch goes in fixed chunks of rows (CHUNK_ROWS of them; more for large batches, so that there
are at most MAX_CHUNKS). For each chunk:

1. row by row, the thin first layer and its ReLU into a (rows, H1) buffer a1;
2. the middle product a1 @ weights2 as one GEMM into a (rows, H2) buffer;
3. row by row, its bias and ReLU, the thin head (the outputs, their squared errors, the accuracy
   count, the loss gradient, the head's weight and bias gradients) and the gradient back through
   the head and the second ReLU, written over the same buffer;
4. the middle layer's weight gradient a1.T @ g2 and the gradient at its inputs g2 @ weights2.T as
   two GEMMs;
5. row by row, the first ReLU's gradient and the first layer's weight and bias gradients.

Three (rows, H) buffers per thread, all in the second-level cache; the per-layer path writes and
reads about twelve (n, H) arrays and makes some thirty Python calls a step.

Threads: the chunks go over fastnn's OpenMP team (scheduled dynamically), NumPy's BLAS pinned to
one thread meanwhile, as in _conv; how many threads is _threads' policy. Every chunk sums its
gradients, loss and count into its own partials, which are added in chunk order afterwards, so
the result does not depend on the thread count.

Agreement with the per-layer path: the ReLUs, the squared errors, the loss gradient
(-2 (y - p) / C / n), the accuracy comparison (|p - y| < precision) and the bias sums in double
are the same formulas in the same order. The thin products are plain loops (products summed in
input order, then the bias; the head's in eight interleaved partial sums), the middle GEMMs run on
a chunk of rows at a time (in float32 on AVX-512 CPUs, fastnn's own kernels, _smallgemm.pxd; the
gradient at the middle layer's inputs as g2 @ weights2.T with weights2 transposed once a step),
and the weight gradients and the loss are summed chunk by chunk; so the
numbers differ from the per-layer path by float rounding (tests/test_fused_deep.py states and
checks the bound). Bias gradients accumulate in double, as the per-layer kernel's.
"""
from libc.math cimport fabs
from libc.string cimport memset
cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport prange, threadid

from _common cimport data, ready2, reuse2
from _regularization cimport add_penalty_gradient
from _smallgemm cimport small_gemm
from fastnn._ext._blas cimport gemm, small_gemm_on
from fastnn._ext._threads cimport blas_threads_pin, blas_threads_restore, threads_for_work

# The thin sides: at most MAX_THIN inputs and outputs (a row's outputs live on the stack).
cpdef enum:
    MAX_THIN = 16

cdef enum:
    CHUNK_ROWS = 128      # rows per chunk: three (128, 64) float32 buffers are 96 KB
    MAX_CHUNKS = 64       # more rows per chunk past 64 * 128 rows (bounds the partials' memory)


cdef struct _Dims:
    Py_ssize_t n, k, h1, h2, c, rows
    double precision


cdef inline bint _own_kernels(const floating* dtype_of) noexcept nogil:
    """Whether the middle products run in fastnn's AVX-512 kernels (float32, where they run);
    NumPy's BLAS otherwise, as in the per-layer path."""
    if floating is float:
        return small_gemm_on()
    return False


cdef inline floating _dot8(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """sum a[j] * b[j] in eight interleaved partial sums combined pairwise (a fixed order, which
    the compiler vectorises the same way in every build)."""
    cdef floating s[8]
    cdef Py_ssize_t j, l, m = n - n % 8
    for l in range(8):
        s[l] = 0
    for j in range(0, m, 8):
        for l in range(8):
            s[l] = s[l] + a[j + l] * b[j + l]
    for l in range(4):
        s[l] = s[l] + s[l + 4]
    s[0] = s[0] + s[2]
    s[1] = s[1] + s[3]
    s[0] = s[0] + s[1]
    for j in range(m, n):
        s[0] = s[0] + a[j] * b[j]
    return s[0]


cdef inline void _combine(floating* out, const floating* coefficients, const floating* rows, Py_ssize_t count,
                          Py_ssize_t width) noexcept nogil:
    """out = coefficients @ rows (count, width): the products summed in row order, each a
    vectorisable pass over the width."""
    cdef Py_ssize_t j, q
    for j in range(width):
        out[j] = coefficients[0] * rows[j]
    for q in range(1, count):
        for j in range(width):
            out[j] = out[j] + coefficients[q] * rows[q * width + j]


cdef void _chunk(const floating* X, const floating* Y, const floating* w1, const floating* b1,
                 const floating* w2, const floating* w2t, const floating* b2, const floating* w3t,
                 const floating* b3,
                 floating* a1, floating* g2, floating* d1, floating* dh, floating* pw1, double* pb1, floating* pw2,
                 double* pb2, floating* pw3t, double* pb3, double* loss, Py_ssize_t* hits,
                 const _Dims* d, Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    """Rows i0:i1 (the module docstring's steps 1-5), weights2 also transposed (w2t, (H2, H1)), with
    the thread's buffers a1 (rows, H1), g2
    (rows, H2), d1 (rows, H1) and dh (H2): their gradient sums into the partials pw1
    (K, H1), pb1 (H1), pw2 (H1, H2), pb2 (H2), pw3t (C, H2: weights3's gradient transposed), pb3
    (C), their loss sum into loss[0] and their count of close outputs into hits[0]."""
    cdef Py_ssize_t k = d.k, h1 = d.h1, h2 = d.h2, c = d.c, m = i1 - i0
    cdef Py_ssize_t r, i, j, q
    cdef floating v, out, y, g, zero = 0
    cdef floating minus_two = -2, outputs = <floating>c, nf = <floating>d.n
    cdef floating dl[MAX_THIN]
    cdef floating* row
    cdef const floating* x
    cdef double row_loss, total = 0
    cdef Py_ssize_t close = 0
    memset(pw1, 0, k * h1 * sizeof(floating))
    memset(pb1, 0, h1 * sizeof(double))
    memset(pb2, 0, h2 * sizeof(double))
    memset(pw3t, 0, c * h2 * sizeof(floating))
    memset(pb3, 0, c * sizeof(double))
    # 1. a1 = relu(x @ weights1 + biases1), products in input order, then the bias.
    for r in range(m):
        row = a1 + r * h1
        _combine(row, X + (i0 + r) * k, w1, k, h1)
        for j in range(h1):
            v = row[j] + b1[j]
            row[j] = zero if v <= 0 else v
    # 2. the middle product (its bias comes in step 3).
    small_gemm(False, False, m, h2, h1, <floating>1, a1, h1, w2, h2, <floating>0, g2, h2)
    # 3. per row: the second ReLU, the head, and the gradient back to the middle layer's output.
    for r in range(m):
        i = i0 + r
        row = g2 + r * h2
        for j in range(h2):
            v = row[j] + b2[j]
            row[j] = zero if v <= 0 else v
        row_loss = 0
        for q in range(c):
            out = _dot8(row, w3t + q * h2, h2) + b3[q]
            y = Y[i * c + q]
            v = y - out
            row_loss += v * v
            close += fabs(out - y) < d.precision
            g = ((minus_two * (y - out)) / outputs) / nf
            dl[q] = g
            pb3[q] += g
        row_loss = row_loss / c
        total += <floating>row_loss
        if c == 1:  # the same operations as below, in one vectorisable pass
            g = dl[0]
            for j in range(h2):
                v = row[j]
                pw3t[j] = pw3t[j] + v * g
                v = zero if v <= 0 else g * w3t[j]
                row[j] = v
                pb2[j] += v
            continue
        for q in range(c):
            for j in range(h2):
                pw3t[q * h2 + j] = pw3t[q * h2 + j] + row[j] * dl[q]
        _combine(dh, <const floating*>dl, w3t, c, h2)
        for j in range(h2):
            row[j] = zero if row[j] <= 0 else dh[j]
        for j in range(h2):
            pb2[j] += row[j]
    # 4. the middle layer's weight gradient and the gradient at its inputs.
    small_gemm(True, False, h1, h2, m, <floating>1, a1, h1, g2, h2, <floating>0, pw2, h2)
    if _own_kernels(w2):    # g2 @ weights2.T as a product with weights2 transposed: the kernels' fast form
        small_gemm(False, False, m, h1, h2, <floating>1, g2, h2, w2t, h1, <floating>0, d1, h1)
    else:
        gemm(False, True, m, h1, h2, <floating>1, g2, h2, w2, h2, <floating>0, d1, h1)
    # 5. per row: the first ReLU's gradient, the first layer's gradients.
    for r in range(m):
        x = X + (i0 + r) * k
        row = d1 + r * h1
        if k == 1:  # the same operations as below, in one vectorisable pass
            v = x[0]
            for j in range(h1):
                g = zero if a1[r * h1 + j] <= 0 else row[j]
                row[j] = g
                pb1[j] += g
                pw1[j] = pw1[j] + v * g
            continue
        for j in range(h1):
            row[j] = zero if a1[r * h1 + j] <= 0 else row[j]
        for j in range(h1):
            pb1[j] += row[j]
        for q in range(k):
            for j in range(h1):
                pw1[q * h1 + j] = pw1[q * h1 + j] + x[q] * row[j]
    loss[0] = total
    hits[0] = close


cdef void _step(const floating* X, const floating* Y, const floating* w1, const floating* b1,
                const floating* w2, const floating* b2, const floating* w3, const floating* b3,
                floating* dw1, floating* db1, floating* dw2, floating* db2, floating* dw3, floating* db3,
                floating* buffers, floating* partials, double* sums, Py_ssize_t* counts, const _Dims* d,
                int n_threads, double* loss_sum, Py_ssize_t* correct) noexcept nogil:
    # buffers: w3t (C, H2), w2t (H2, H1), then per thread a1 (rows, H1), g2 (rows, H2), d1 (rows, H1),
    # dh (H2).
    # partials, per chunk: pw1 (K, H1), pw2 (H1, H2), pw3t (C, H2); sums, per chunk: pb1 (H1),
    # pb2 (H2), pb3 (C), the loss; counts, per chunk: the close outputs.
    cdef Py_ssize_t k = d.k, h1 = d.h1, h2 = d.h2, c = d.c, rows = d.rows
    cdef Py_ssize_t n_chunks = (d.n + rows - 1) // rows
    cdef Py_ssize_t per_thread = rows * (2 * h1 + h2) + h2
    cdef Py_ssize_t fsize = k * h1 + h1 * h2 + c * h2, dsize = h1 + h2 + c + 1
    cdef Py_ssize_t ch, t, j, q
    cdef floating* w3t = buffers
    cdef floating* w2t = buffers + c * h2
    cdef floating* mine
    cdef floating* part
    cdef double* s
    cdef double total
    cdef Py_ssize_t hits
    for q in range(c):
        for j in range(h2):
            w3t[q * h2 + j] = w3[j * c + q]
    if _own_kernels(w2):    # only the AVX-512 kernels read weights2 transposed
        for j in range(h2):
            for q in range(h1):
                w2t[j * h1 + q] = w2[q * h2 + j]
    buffers = buffers + c * h2 + h2 * h1
    cdef int saved = blas_threads_pin()
    if n_threads <= 1:
        for ch in range(n_chunks):
            part = partials + ch * fsize
            s = sums + ch * dsize
            _chunk(X, Y, w1, b1, w2, <const floating*>w2t, b2, <const floating*>w3t, b3, buffers, buffers + rows * h1,
                   buffers + rows * (h1 + h2), buffers + rows * (2 * h1 + h2), part, s, part + k * h1, s + h1, part + k * h1 + h1 * h2,
                   s + h1 + h2, s + h1 + h2 + c, counts + ch, d, ch * rows, min(d.n, (ch + 1) * rows))
    else:
        for ch in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            t = threadid()
            mine = buffers + t * per_thread
            part = partials + ch * fsize
            s = sums + ch * dsize
            _chunk(X, Y, w1, b1, w2, <const floating*>w2t, b2, <const floating*>w3t, b3, mine, mine + rows * h1,
                   mine + rows * (h1 + h2), mine + rows * (2 * h1 + h2), part, s, part + k * h1, s + h1, part + k * h1 + h1 * h2,
                   s + h1 + h2, s + h1 + h2 + c, counts + ch, d, ch * rows, min(d.n, (ch + 1) * rows))
    blas_threads_restore(saved)
    # The partials, added in chunk order.
    cdef double acc
    for j in range(k * h1):
        dw1[j] = partials[j]
    for j in range(h1 * h2):
        dw2[j] = partials[k * h1 + j]
    for q in range(c):
        for j in range(h2):
            dw3[j * c + q] = partials[k * h1 + h1 * h2 + q * h2 + j]
    for ch in range(1, n_chunks):
        part = partials + ch * fsize
        for j in range(k * h1):
            dw1[j] = dw1[j] + part[j]
        for j in range(h1 * h2):
            dw2[j] = dw2[j] + part[k * h1 + j]
        for q in range(c):
            for j in range(h2):
                dw3[j * c + q] = dw3[j * c + q] + part[k * h1 + h1 * h2 + q * h2 + j]
    for j in range(h1 + h2 + c):
        acc = 0
        for ch in range(n_chunks):
            acc += sums[ch * dsize + j]
        if j < h1:
            db1[j] = <floating>acc
        elif j < h1 + h2:
            db2[j - h1] = <floating>acc
        else:
            db3[j - h1 - h2] = <floating>acc
    total = 0
    hits = 0
    for ch in range(n_chunks):
        total += sums[ch * dsize + h1 + h2 + c]
        hits += counts[ch]
    loss_sum[0] = total
    correct[0] = hits


cdef inline bint _dense_ready(dict state, int typenum, Py_ssize_t n_inputs):
    w = state.get("weights")
    b = state.get("biases")
    return (ready2(w, typenum, -1) and (<cnp.ndarray>w).shape[0] == n_inputs
            and ready2(b, typenum, (<cnp.ndarray>w).shape[1]) and (<cnp.ndarray>b).shape[0] == 1)


cdef inline void _penalties(dict state, int typenum, void* dw, void* w, Py_ssize_t nw, void* db, void* b,
                            Py_ssize_t nb):
    cdef double l1w = state.get("weight_regularizer_l1", 0), l2w = state.get("weight_regularizer_l2", 0)
    cdef double l1b = state.get("bias_regularizer_l1", 0), l2b = state.get("bias_regularizer_l2", 0)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            add_penalty_gradient(<float*>dw, <float*>w, nw, l1w, l2w)
            add_penalty_gradient(<float*>db, <float*>b, nb, l1b, l2b)
        else:
            add_penalty_gradient(<double*>dw, <double*>w, nw, l1w, l2w)
            add_penalty_gradient(<double*>db, <double*>b, nb, l1b, l2b)


def regression_step(dict dense1, dict dense2, dict dense3, dict scratch, object X, object y,
                    double precision):
    """One training step's forward, loss, accuracy count and backward (see the module docstring):
    sets the three Dense layers' `dweights` and `dbiases` (regularisation gradients included) and
    returns (sum of the per-sample losses, number of outputs within `precision` of their target).
    `scratch`: a dict the caller keeps, whose buffers are reused from step to step.

    None, having changed nothing, when the arrays are not in the forms this kernel reads: X a
    C-contiguous (n, K) array of the weights' dtype with n >= 1, y a C-contiguous (n, C) array of
    that dtype, K and C at most MAX_THIN; the caller takes the per-layer path then."""
    w1o = dense1.get("weights")
    if not (ready2(w1o, cnp.NPY_FLOAT32, -1) or ready2(w1o, cnp.NPY_FLOAT64, -1)):
        return None
    cdef cnp.ndarray w1 = <cnp.ndarray>w1o
    cdef int typenum = cnp.PyArray_TYPE(w1)
    cdef _Dims d
    d.k = w1.shape[0]
    d.h1 = w1.shape[1]
    if not _dense_ready(dense1, typenum, d.k) or not _dense_ready(dense2, typenum, d.h1):
        return None
    d.h2 = (<cnp.ndarray>dense2["weights"]).shape[1]
    if not _dense_ready(dense3, typenum, d.h2):
        return None
    cdef cnp.ndarray b1 = dense1["biases"], w2 = dense2["weights"], b2 = dense2["biases"]
    cdef cnp.ndarray w3 = dense3["weights"], b3 = dense3["biases"]
    d.c = w3.shape[1]
    if d.k > MAX_THIN or d.c > MAX_THIN or d.h1 == 0 or d.h2 == 0 or d.c == 0:
        return None
    if not ready2(X, typenum, d.k) or not ready2(y, typenum, d.c):
        return None
    cdef cnp.ndarray x = <cnp.ndarray>X, targets = <cnp.ndarray>y
    d.n = x.shape[0]
    if d.n == 0 or targets.shape[0] != d.n:
        return None
    d.precision = precision
    d.rows = max(<Py_ssize_t>CHUNK_ROWS, (d.n + MAX_CHUNKS - 1) // MAX_CHUNKS)
    cdef Py_ssize_t n_chunks = (d.n + d.rows - 1) // d.rows
    cdef int n_threads = threads_for_work(d.n * d.h1 * d.h2 * 3, n_chunks)
    cdef cnp.ndarray dw1 = reuse2(dense1, "dweights", d.k, d.h1, typenum, x, w1)
    cdef cnp.ndarray db1 = reuse2(dense1, "dbiases", 1, d.h1, typenum, b1, None)
    cdef cnp.ndarray dw2 = reuse2(dense2, "dweights", d.h1, d.h2, typenum, w2, None)
    cdef cnp.ndarray db2 = reuse2(dense2, "dbiases", 1, d.h2, typenum, b2, None)
    cdef cnp.ndarray dw3 = reuse2(dense3, "dweights", d.h2, d.c, typenum, w3, None)
    cdef cnp.ndarray db3 = reuse2(dense3, "dbiases", 1, d.c, typenum, b3, None)
    cdef cnp.ndarray buffers = reuse2(scratch, "buffers", 1, d.c * d.h2 + d.h2 * d.h1 + n_threads * (d.rows * (2 * d.h1 + d.h2) + d.h2),
                                      typenum, None, None)
    cdef cnp.ndarray partials = reuse2(scratch, "partials", n_chunks, d.k * d.h1 + d.h1 * d.h2 + d.c * d.h2,
                                       typenum, None, None)
    cdef cnp.ndarray sums = reuse2(scratch, "sums", n_chunks, d.h1 + d.h2 + d.c + 1, cnp.NPY_FLOAT64, None, None)
    cdef cnp.ndarray counts = reuse2(scratch, "counts", 1, n_chunks, cnp.NPY_INTP, None, None)
    cdef void* p_x = data(x)
    cdef void* p_y = data(targets)
    cdef void* p_w1 = data(w1)
    cdef void* p_b1 = data(b1)
    cdef void* p_w2 = data(w2)
    cdef void* p_b2 = data(b2)
    cdef void* p_w3 = data(w3)
    cdef void* p_b3 = data(b3)
    cdef void* p_dw1 = data(dw1)
    cdef void* p_db1 = data(db1)
    cdef void* p_dw2 = data(dw2)
    cdef void* p_db2 = data(db2)
    cdef void* p_dw3 = data(dw3)
    cdef void* p_db3 = data(db3)
    cdef void* p_buf = data(buffers)
    cdef void* p_part = data(partials)
    cdef double* p_sums = <double*>data(sums)
    cdef Py_ssize_t* p_counts = <Py_ssize_t*>data(counts)
    cdef double total = 0
    cdef Py_ssize_t correct = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _step(<float*>p_x, <float*>p_y, <float*>p_w1, <float*>p_b1, <float*>p_w2, <float*>p_b2, <float*>p_w3,
                  <float*>p_b3, <float*>p_dw1, <float*>p_db1, <float*>p_dw2, <float*>p_db2, <float*>p_dw3,
                  <float*>p_db3, <float*>p_buf, <float*>p_part, p_sums, p_counts, &d, n_threads, &total, &correct)
        else:
            _step(<double*>p_x, <double*>p_y, <double*>p_w1, <double*>p_b1, <double*>p_w2, <double*>p_b2,
                  <double*>p_w3, <double*>p_b3, <double*>p_dw1, <double*>p_db1, <double*>p_dw2, <double*>p_db2,
                  <double*>p_dw3, <double*>p_db3, <double*>p_buf, <double*>p_part, p_sums, p_counts, &d,
                  n_threads, &total, &correct)
    _penalties(dense1, typenum, p_dw1, p_w1, d.k * d.h1, p_db1, p_b1, d.h1)
    _penalties(dense2, typenum, p_dw2, p_w2, d.h1 * d.h2, p_db2, p_b2, d.h2)
    _penalties(dense3, typenum, p_dw3, p_w3, d.h2 * d.c, p_db3, p_b3, d.c)
    return total, correct
