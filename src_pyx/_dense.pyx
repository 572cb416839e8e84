"""Layer_Dense kernels: forward (GEMM + bias) and backward (two GEMMs, bias column sums and the
L1/L2 regularisation gradients), each one call on the layer's state dict.

Shapes: inputs (n_samples, n_inputs), weights (n_inputs, n_neurons), biases (1, n_neurons),
output and dvalues (n_samples, n_neurons).
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memcpy
cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, is_float_typenum, ready, ready2, reuse2
from _regularization cimport add_penalty_gradient
from cython.parallel cimport prange
from fastnn._ext._blas cimport gemm, small_gemm_on
from fastnn._ext._threads cimport threads_for_work
from _smallgemm cimport fnn_sgemm_nn_range_avx512

include "_status.pxi"


# ---------------------------------------------------------------------------------------------
# fastnn's own products (float32, CPUs with AVX-512, _smallgemm.pxd), for Model.train, evaluate
# and predict only.
#
# Everywhere else every product is NumPy's BLAS call, with NumPy's bits (below). Those three
# switch this thread to fastnn's own kernels (fastnn/_plan.py's GemmPlan and own_products,
# through own_gemm()): the same products, summed over the inner dimension in order in blocks of 256, one
# fused multiply-add per term, so they differ from BLAS's by float rounding only (a GEMM's error
# bound) and never depend on the thread count: C is split into ranges of rows and 32-column
# panels, each computed whole by one thread. Where NumPy's OpenBLAS runs its AVX2 kernels on an
# AVX-512 CPU (OPENBLAS_CORETYPE=Haswell, or a CPU it does not know) they are about twice as
# fast; against OpenBLAS's own AVX-512 kernels, within about 10% either way.
cdef extern from *:
    """
    static __thread int fnn_dense_own_gemm = 0;   /* per thread: Model.train's steps */
    static int fnn_dense_get_own(void) { return fnn_dense_own_gemm; }
    static void fnn_dense_set_own(int on) { fnn_dense_own_gemm = on; }
    """
    int fnn_dense_get_own() noexcept nogil
    void fnn_dense_set_own(int on) noexcept nogil


def own_gemm(bint enabled):
    """Whether this thread's float32 Dense products run in fastnn's own AVX-512 kernels (True)
    or in NumPy's BLAS (False, the default); returns the previous setting. Model.train switches
    it on around each step's forward and backward passes, evaluate and predict around theirs
    (fastnn/_plan.py)."""
    cdef bint before = fnn_dense_get_own()
    fnn_dense_set_own(enabled)
    return before


cdef inline int _own(int typenum, Py_ssize_t work) noexcept:
    """0: BLAS; else fastnn's kernels, on up to that many threads (`work` multiply-adds)."""
    if typenum == cnp.NPY_FLOAT32 and fnn_dense_get_own() and small_gemm_on():
        return threads_for_work(work, 1 << 30)
    return 0


cdef enum:
    _PANEL = 32          # the kernels' column panel


cdef void _own_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t a_rs,
                       Py_ssize_t a_ks, const float* b, bint b_trans, bint accumulate, float* c,
                       int n_threads) noexcept nogil:
    """C (m, n) = op(A) @ B (+ C), C contiguous; op(A)[i, q] = a[i*a_rs + q*a_ks]; B (k, n) is
    b, contiguous, or with b_trans the transpose of b (n, k), contiguous.
    Split over up to n_threads OpenMP threads by ranges of rows and panels; the values do not
    depend on the split."""
    cdef Py_ssize_t panels = (n + _PANEL - 1) // _PANEL
    # Items: every panel, times enough blocks of rows (multiples of 8) for two items per thread.
    cdef Py_ssize_t blocks = 1
    if panels < 2 * n_threads:
        blocks = (2 * n_threads + panels - 1) // panels
    cdef Py_ssize_t rows = (((m + blocks - 1) // blocks) + 7) // 8 * 8
    if rows < 8:
        rows = 8
    blocks = (m + rows - 1) // rows
    if blocks * panels < n_threads:
        n_threads = <int>(blocks * panels)
    if n_threads <= 1:
        fnn_sgemm_nn_range_avx512(n, k, a, a_rs, a_ks, b, k if b_trans else n, b_trans, accumulate, c, n, 0, m, 0,
                                  panels)
        return
    cdef Py_ssize_t item, i0
    for item in prange(blocks * panels, num_threads=n_threads, schedule="static"):
        i0 = (item // panels) * rows
        fnn_sgemm_nn_range_avx512(n, k, a, a_rs, a_ks, b, k if b_trans else n, b_trans, accumulate, c, n, i0,
                                  min(i0 + rows, m),
                                  item % panels, item % panels + 1)


# ---------------------------------------------------------------------------------------------
# Forward: output = inputs @ weights + biases, bit-identical to NumPy's
# `np.matmul(inputs, weights) + biases` on the same BLAS (for one-row or one-column products NumPy
# uses gemv/dot instead: last-bit differences there).
#
# With beta = 0 BLAS first clears the output and then accumulates into it; writing the bias rows
# there instead and passing beta = 1 saves the separate bias pass. The sum is the same,
# round(acc + bias), as long as BLAS accumulates the whole inner dimension in registers before
# touching the output, which OpenBLAS does for k up to its block depth (GEMM_Q, 256 or more on
# every x86-64 kernel). Longer inner dimensions take the plain order: GEMM, then the bias pass.
cdef enum:
    BIAS_IN_GEMM_MAX_INPUTS = 256


cdef inline void _fill_rows(floating* output, const floating* row, Py_ssize_t n_samples,
                            Py_ssize_t n_neurons) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n_samples):
        memcpy(output + i * n_neurons, row, n_neurons * sizeof(floating))


cdef inline void _add_row(floating* output, const floating* row, Py_ssize_t n_samples,
                          Py_ssize_t n_neurons) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n_samples):
        for j in range(n_neurons):
            output[i * n_neurons + j] += row[j]


cdef inline void _dense_forward(const floating* inputs, const floating* weights, const floating* biases,
                                floating* output, Py_ssize_t n_samples, Py_ssize_t n_inputs,
                                Py_ssize_t n_neurons, int own) noexcept nogil:
    # own (float32 only): 0 for BLAS, else fastnn's kernels on up to `own` threads.
    if floating is float:
        if own:     # the bias rows first, the product added to them: round(sum + bias) for K <= 256
            if n_inputs <= BIAS_IN_GEMM_MAX_INPUTS:
                _fill_rows(output, biases, n_samples, n_neurons)
                _own_product(n_samples, n_neurons, n_inputs, inputs, n_inputs, 1, weights, False, True, output, own)
            else:
                _own_product(n_samples, n_neurons, n_inputs, inputs, n_inputs, 1, weights, False, False, output, own)
                _add_row(output, biases, n_samples, n_neurons)
            return
    if n_inputs <= BIAS_IN_GEMM_MAX_INPUTS:
        _fill_rows(output, biases, n_samples, n_neurons)
        gemm(False, False, n_samples, n_neurons, n_inputs, <floating>1, inputs, n_inputs,
             weights, n_neurons, <floating>1, output, n_neurons)
    else:
        gemm(False, False, n_samples, n_neurons, n_inputs, <floating>1, inputs, n_inputs,
             weights, n_neurons, <floating>0, output, n_neurons)
        _add_row(output, biases, n_samples, n_neurons)


# ---------------------------------------------------------------------------------------------
# Backward:
#   dweights = inputs.T @ dvalues (+ l1 * sign(weights), + 2 * l2 * weights)
#   dbiases  = column sums of dvalues (+ the same terms on the biases)
#   dinputs  = dvalues @ weights.T
# The regularisation terms are _regularization.pxd's add_penalty_gradient (the book's sign(), +1
# at exactly 0; L1 then L2).

# Column sums accumulate in double, one row at a time so memory is read in order.
cdef inline void _column_sums(const floating* dvalues, floating* dbiases, double* accumulator,
                              Py_ssize_t n_samples, Py_ssize_t n_neurons) noexcept nogil:
    cdef Py_ssize_t i, j
    for j in range(n_neurons):
        accumulator[j] = 0
    for i in range(n_samples):
        for j in range(n_neurons):
            accumulator[j] += dvalues[i * n_neurons + j]
    for j in range(n_neurons):
        dbiases[j] = <floating>accumulator[j]


cdef inline void _dense_backward(const floating* dvalues, const floating* inputs, const floating* weights,
                                 const floating* biases, floating* dweights, floating* dbiases,
                                 floating* dinputs, double* accumulator,
                                 Py_ssize_t n_samples, Py_ssize_t n_inputs, Py_ssize_t n_neurons,
                                 double l1w, double l2w, double l1b, double l2b, int own) noexcept nogil:
    # own (float32 only): 0 for BLAS, else fastnn's kernels on up to `own` threads (dinputs
    # through B = weights.T, which the kernels gather from weights).
    if floating is float:
        if own:
            _own_product(n_inputs, n_neurons, n_samples, inputs, 1, n_inputs, dvalues, False, False, dweights, own)
    if floating is double or not own:
        gemm(True, False, n_inputs, n_neurons, n_samples, <floating>1, inputs, n_inputs,
             dvalues, n_neurons, <floating>0, dweights, n_neurons)
    add_penalty_gradient(dweights, weights, n_inputs * n_neurons, l1w, l2w)
    _column_sums(dvalues, dbiases, accumulator, n_samples, n_neurons)
    add_penalty_gradient(dbiases, biases, n_neurons, l1b, l2b)
    if dinputs == NULL:
        return
    if floating is float:
        if own:
            _own_product(n_samples, n_inputs, n_neurons, dvalues, n_neurons, 1, weights, True, False, dinputs, own)
            return
    gemm(False, True, n_samples, n_inputs, n_neurons, <floating>1, dvalues, n_neurons,
         weights, n_neurons, <floating>0, dinputs, n_inputs)


# ---------------------------------------------------------------------------------------------
# Entry points. Each returns a status (_status.pxi): OK; CONVERT, changing nothing, when the data
# argument is not in the exact form below; BAD_WEIGHTS or BAD_BIASES when the layer's parameters
# are not; NO_FORWARD from backward without a matching forward.

cdef inline int _check_parameters(dict state) noexcept:
    """weights (n_inputs, n_neurons) and biases (1, n_neurons): one float dtype, C order."""
    weights = state.get("weights")
    biases = state.get("biases")
    if not (ready(weights, cnp.NPY_FLOAT32) or ready(weights, cnp.NPY_FLOAT64)):
        return BAD_WEIGHTS
    cdef cnp.ndarray w = <cnp.ndarray>weights
    if w.ndim != 2 or not ready2(biases, cnp.PyArray_TYPE(w), w.shape[1]) or (<cnp.ndarray>biases).shape[0] != 1:
        return BAD_BIASES
    return OK


def forward(dict state, object inputs):
    """Dense forward on a layer's __dict__: sets `inputs` and `output`.

    CONVERT when `inputs` is not already a C-contiguous (n_samples, n_inputs) array of the
    weights' dtype."""
    cdef int status = _check_parameters(state)
    if status != OK:
        return status
    cdef cnp.ndarray weights = state["weights"]
    cdef cnp.ndarray biases = state["biases"]
    cdef int typenum = cnp.PyArray_TYPE(weights)
    cdef Py_ssize_t n_inputs = weights.shape[0], n_neurons = weights.shape[1]
    if not ready2(inputs, typenum, n_inputs):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef Py_ssize_t n_samples = x.shape[0]
    cdef cnp.ndarray output = reuse2(state, "output", n_samples, n_neurons, typenum, x, weights)
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_out = data(output)
    cdef int own = _own(typenum, n_samples * n_inputs * n_neurons)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _dense_forward(<float*>p_x, <float*>p_w, <float*>p_b, <float*>p_out, n_samples, n_inputs, n_neurons, own)
        else:
            _dense_forward(<double*>p_x, <double*>p_w, <double*>p_b, <double*>p_out, n_samples, n_inputs, n_neurons, 0)
    state["inputs"] = x
    return _OK


cdef enum:
    _STACK_SUMS = 1024   # 8 KiB of stack: every layer of the book and of test_networks.py


def backward(dict state, object dvalues, bint want_dinputs=True):
    """Dense backward on a layer's __dict__: sets `dweights`, `dbiases` and (unless
    want_dinputs is False) `dinputs`, from `dvalues` and the `inputs` of the last forward.

    CONVERT when `dvalues` is not already a C-contiguous (n_samples, n_neurons) array of the
    weights' dtype with the forward's n_samples."""
    cdef int status = _check_parameters(state)
    if status != OK:
        return status
    cdef cnp.ndarray weights = state["weights"]
    cdef cnp.ndarray biases = state["biases"]
    cdef int typenum = cnp.PyArray_TYPE(weights)
    cdef Py_ssize_t n_inputs = weights.shape[0], n_neurons = weights.shape[1]
    inputs = state.get("inputs")
    if not ready2(inputs, typenum, n_inputs):
        return NO_FORWARD
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef Py_ssize_t n_samples = x.shape[0]
    if not ready2(dvalues, typenum, n_neurons) or (<cnp.ndarray>dvalues).shape[0] != n_samples:
        return CONVERT
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    cdef double l1w = state.get("weight_regularizer_l1", 0)
    cdef double l2w = state.get("weight_regularizer_l2", 0)
    cdef double l1b = state.get("bias_regularizer_l1", 0)
    cdef double l2b = state.get("bias_regularizer_l2", 0)
    cdef cnp.ndarray dweights = reuse2(state, "dweights", n_inputs, n_neurons, typenum, dv, x)
    cdef cnp.ndarray dbiases = reuse2(state, "dbiases", 1, n_neurons, typenum, dv, None)
    cdef cnp.ndarray dinputs
    cdef void* p_dx = NULL
    if want_dinputs:
        dinputs = reuse2(state, "dinputs", n_samples, n_inputs, typenum, dv, weights)
        p_dx = data(dinputs)
    # Scratch row for the column sums in double: on the stack for up to _STACK_SUMS neurons, so a
    # training step allocates nothing; a wider layer borrows heap memory, freed below.
    cdef double stack_sums[_STACK_SUMS]
    cdef double* p_acc = stack_sums
    if n_neurons > _STACK_SUMS:
        p_acc = <double*>PyMem_Malloc(n_neurons * sizeof(double))
        if p_acc == NULL:
            raise MemoryError()
    cdef void* p_dv = data(dv)
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_dw = data(dweights)
    cdef void* p_db = data(dbiases)
    cdef int own = _own(typenum, n_samples * n_inputs * n_neurons)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _dense_backward(<float*>p_dv, <float*>p_x, <float*>p_w, <float*>p_b, <float*>p_dw,
                            <float*>p_db, <float*>p_dx, p_acc, n_samples, n_inputs, n_neurons,
                            l1w, l2w, l1b, l2b, own)
        else:
            _dense_backward(<double*>p_dv, <double*>p_x, <double*>p_w, <double*>p_b, <double*>p_dw,
                            <double*>p_db, <double*>p_dx, p_acc, n_samples, n_inputs, n_neurons,
                            l1w, l2w, l1b, l2b, 0)
    if p_acc != stack_sums:
        PyMem_Free(p_acc)
    return _OK
