"""Layer_Conv2D and Layer_MaxPool2D kernels, each forward and backward one call on the layer's
state dict (the calling convention of _common.pxd).

Layout NCHW. Conv2D: weights (O, C, k, k), biases (O,), output (N, O, OH, OW).

Conv2D runs sample by sample through im2col and the one GEMM (fastnn._ext._blas):
  columns (C*k*k, OH*OW)   columns[(c*k + a)*k + b, i*OW + j] = xpad[c, i*s + a, j*s + b]
  forward   output[n] (O, OH*OW) = weights (O, C*k*k) @ columns, then + biases per row
  backward  dweights += dvalues[n] (O, OH*OW) @ columns.T     (GEMM, beta = 1 within a chunk)
            dcolumns  = weights.T @ dvalues[n]                 then col2im into dinputs[n]
            dbiases   = sums of dvalues over n, i, j           (in double)
The columns of one sample stay in cache between im2col and the GEMM that reads them; they are
rebuilt in backward rather than kept from forward (N times less memory, and rebuilding costs about
what reading them back from memory would). A 1x1 kernel with stride 1 and no padding needs no
im2col at all: the input plane is the column matrix.

Threads: OpenMP over the batch (samples in forward, 8 fixed chunks in backward, both scheduled
dynamically), each thread running whole samples (im2col, GEMM, bias, col2im), with NumPy's BLAS
pinned to one thread meanwhile. By default the batch is split only while NumPy's BLAS is itself
limited to one thread: OpenBLAS's idle workers busy-wait after the Dense layers' GEMMs and an
OpenMP team then fights them for the cores. Measured on the 2-core machine, float32, batch 128:
  conv fw+bw, 32->64 k5 14x14 (batch 64): 1 thread 53 ms, OpenBLAS-threaded GEMMs 91 ms,
                                           OpenMP 2 threads 28 ms
  LeNet training step:   BLAS 2 threads: serial conv 10.0 ms, OpenMP conv 16.1 ms (the fight)
                         BLAS 1 thread:  serial conv 10.4 ms, OpenMP conv  7.3 ms
  MNIST CNN (32/64 ch):  BLAS 2 threads: serial 59 ms, OpenMP 54 ms; BLAS 1 thread: OpenMP 35 ms
(OMP_WAIT_POLICY=PASSIVE also ends the fight, but it must be set before the process starts.)

MaxPool2D: one pass per (H, W) plane; argmax holds the winner of each window as the flat index
h * W + w into its plane (int32). Ties go to the first maximum of the window in row-major order,
a NaN is a window's maximum (the first NaN wins), as fastnn.reference and PyTorch.
"""
from libc.string cimport memcpy, memset
cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport prange, threadid

from _common cimport data, is_float_typenum, ready, reuse
from _regularization cimport add_penalty_gradient
from fastnn._ext._blas cimport gemm

from _openmp_helpers cimport omp_get_max_threads

from fastnn import _validation


# ---------------------------------------------------------------------------------------------
# Threads. The batch is split over OpenMP threads only when NumPy's BLAS can be pinned to one
# thread meanwhile (fastnn/conv.py hands over OpenBLAS's get/set_num_threads at import): calling
# a multi-threaded OpenBLAS from inside an OpenMP region oversubscribes the cores (and OpenBLAS
# warns that it may hang). The serial loop pins BLAS to one thread as well: OpenBLAS splits one
# sample's small GEMMs badly (conv 32->64, k5, 14x14, batch 64: 53 ms on one thread, 91 ms on
# two). Without the pin functions (a BLAS other than NumPy's OpenBLAS) the loop is serial and
# the GEMMs use BLAS's own threads. By default the split is only used while BLAS itself runs on
# one thread (see _threads_for_work for why and the figures).

ctypedef void (*set_threads_t)(int) noexcept nogil
ctypedef int (*get_threads_t)() noexcept nogil
cdef set_threads_t _blas_set_threads = NULL
cdef get_threads_t _blas_get_threads = NULL
cdef int _max_threads = 0          # 0: OpenMP's default (omp_get_max_threads()); see set_num_threads
# Below this many multiply-adds per thread the batch is not split: a chosen threshold, about
# 45 us of GEMM per thread, several times what waking a thread costs.
cdef Py_ssize_t _MIN_WORK_PER_THREAD = 2000000


def set_blas_thread_functions(size_t set_address, size_t get_address):
    """Install BLAS's set_num_threads(int) / get_num_threads() (0, 0 removes them)."""
    global _blas_set_threads, _blas_get_threads
    if (set_address == 0) != (get_address == 0):
        raise ValueError("give both addresses or neither")
    _blas_set_threads = <set_threads_t>set_address
    _blas_get_threads = <get_threads_t>get_address


def set_num_threads(int n):
    """Threads for the loop over samples: 0 = automatic (OpenMP's count, OMP_NUM_THREADS or the
    cores, while NumPy's BLAS is on one thread; else 1: see _threads_for_work), 1 = serial,
    n = n threads. Batches too small to pay for a thread (fewer samples or chunks than threads,
    or under _MIN_WORK_PER_THREAD multiply-adds per thread) use fewer."""
    global _max_threads
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _max_threads = n


def set_min_work_per_thread(Py_ssize_t work):
    """The split threshold in multiply-adds per thread (tests lower it to 1 to split tiny
    batches); returns the previous value."""
    global _MIN_WORK_PER_THREAD
    if work < 1:
        raise ValueError(f"work must be >= 1, got {work}")
    previous = _MIN_WORK_PER_THREAD
    _MIN_WORK_PER_THREAD = work
    return previous


def num_threads():
    """(setting, threads a large batch would use now, whether BLAS can be pinned)."""
    return _max_threads, _threads_for_work(1 << 40, 1 << 20), _blas_get_threads != NULL


cdef int _threads_for_work(Py_ssize_t work, Py_ssize_t n_items) noexcept:
    """Threads for `work` multiply-adds spread over n_items samples or chunks.

    Automatic (set_num_threads(0), the default): OpenMP's thread count, but only while NumPy's
    BLAS runs on one thread. When BLAS has several threads, its idle workers busy-wait after each
    GEMM of the Dense layers and an OpenMP team fights them for the cores: on the 2-core machine a
    LeNet training step took 16.1 ms with 2 OpenMP threads against 10.0 ms serial (BLAS on 2
    threads), while with BLAS on 1 thread the OpenMP conv made the step faster (10.4 -> 7.3 ms; a
    32/64-channel MNIST CNN 59 -> 35 ms). An explicit set_num_threads(n) is obeyed as given."""
    if _blas_get_threads == NULL:
        return 1
    cdef int n = _max_threads
    if n == 0:
        n = omp_get_max_threads()
        if _blas_get_threads() > 1:
            n = 1
    if n > n_items:
        n = <int>n_items
    if work // _MIN_WORK_PER_THREAD < n:
        n = <int>(work // _MIN_WORK_PER_THREAD)
    return n if n > 1 else 1


cdef inline int _blas_threads_pin() noexcept nogil:
    cdef int n = 0
    if _blas_get_threads != NULL:
        n = _blas_get_threads()
        if n > 1:
            _blas_set_threads(1)
    return n


cdef inline void _blas_threads_restore(int n) noexcept nogil:
    if n > 1:
        _blas_set_threads(n)



# ---------------------------------------------------------------------------------------------
# Geometry of one convolution.

cdef struct Geometry:
    Py_ssize_t n          # samples
    Py_ssize_t c, h, w    # input channels and plane
    Py_ssize_t o          # output channels
    Py_ssize_t k, s, p    # kernel size, stride, padding
    Py_ssize_t oh, ow     # output plane
    Py_ssize_t ckk        # c * k * k: rows of the column matrix
    Py_ssize_t ohw        # oh * ow: its columns
    bint direct           # 1x1 kernel, stride 1, no padding: the input is the column matrix


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
# (col2im).

cdef inline void _im2col(const floating* x, floating* columns, const Geometry* g) noexcept nogil:
    cdef Py_ssize_t c, a, b, i, j, ih, j0, j1, i0, i1
    cdef Py_ssize_t k = g.k, s = g.s, p = g.p, w = g.w, ow = g.ow
    cdef floating* row
    cdef floating* dst
    cdef const floating* src
    for c in range(g.c):
        for a in range(k):
            _valid_range(a - p, g.h, g.oh, s, &i0, &i1)
            for b in range(k):
                row = columns + ((c * k + a) * k + b) * g.ohw
                _valid_range(b - p, w, ow, s, &j0, &j1)
                if i0 > 0:
                    memset(row, 0, i0 * ow * sizeof(floating))
                if i1 < g.oh:
                    memset(row + i1 * ow, 0, (g.oh - i1) * ow * sizeof(floating))
                for i in range(i0, i1):
                    ih = i * s - p + a
                    dst = row + i * ow
                    src = x + (c * g.h + ih) * w     # input row; column j reads src[j*s + b - p]
                    for j in range(j0):
                        dst[j] = 0
                    if s == 1:
                        memcpy(dst + j0, src + (j0 + b - p), (j1 - j0) * sizeof(floating))
                    else:
                        for j in range(j0, j1):
                            dst[j] = src[j * s + b - p]
                    for j in range(j1, ow):
                        dst[j] = 0


cdef inline void _col2im(const floating* columns, floating* dx, const Geometry* g) noexcept nogil:
    """dx (C, H, W) = the sum of every column entry at the input position it was copied from."""
    cdef Py_ssize_t c, a, b, i, j, ih, j0, j1, i0, i1
    cdef Py_ssize_t k = g.k, s = g.s, p = g.p, w = g.w, ow = g.ow
    cdef const floating* row
    cdef const floating* src
    cdef floating* dst
    memset(dx, 0, g.c * g.h * w * sizeof(floating))
    for c in range(g.c):
        for a in range(k):
            _valid_range(a - p, g.h, g.oh, s, &i0, &i1)
            for b in range(k):
                row = columns + ((c * k + a) * k + b) * g.ohw
                _valid_range(b - p, w, ow, s, &j0, &j1)
                for i in range(i0, i1):
                    ih = i * s - p + a
                    src = row + i * ow
                    dst = dx + (c * g.h + ih) * w    # input row; column j goes to dst[j*s + b - p]
                    if s == 1:
                        for j in range(j0, j1):
                            dst[j + b - p] += src[j]
                    else:
                        for j in range(j0, j1):
                            dst[j * s + b - p] += src[j]


# ---------------------------------------------------------------------------------------------
# Conv2D forward and backward over the whole batch.

cdef inline void _conv_forward(const floating* x, const floating* weights, const floating* biases,
                               floating* output, floating* columns, const Geometry* g,
                               Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Samples [first, stop): output[n] = weights @ im2col(x[n]) + biases."""
    cdef Py_ssize_t n, o, j
    cdef Py_ssize_t in_size = g.c * g.h * g.w, out_size = g.o * g.ohw
    cdef const floating* cols
    cdef floating* out
    cdef floating bias
    for n in range(first, stop):
        if g.direct:
            cols = x + n * in_size
        else:
            _im2col(x + n * in_size, columns, g)
            cols = columns
        out = output + n * out_size
        gemm(False, False, g.o, g.ohw, g.ckk, <floating>1, weights, g.ckk, cols, g.ohw,
             <floating>0, out, g.ohw)
        for o in range(g.o):
            bias = biases[o]
            for j in range(g.ohw):
                out[o * g.ohw + j] += bias


cdef inline void _conv_backward(const floating* dvalues, const floating* x, const floating* weights,
                                floating* dweights, double* bias_sums, floating* dinputs,
                                floating* columns, floating* dcolumns, const Geometry* g,
                                Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Samples [first, stop): dweights = sum of dvalues[n] @ im2col(x[n]).T (overwritten, zeros
    for an empty range), bias_sums[o] = sum of dvalues[n, o] (in double), and unless dinputs
    is NULL dinputs[n] = col2im(weights.T @ dvalues[n])."""
    cdef Py_ssize_t n, o, j
    cdef Py_ssize_t in_size = g.c * g.h * g.w, out_size = g.o * g.ohw
    cdef const floating* cols
    cdef const floating* dv
    cdef double total
    for o in range(g.o):
        bias_sums[o] = 0
    if stop <= first:
        memset(dweights, 0, g.o * g.ckk * sizeof(floating))
    for n in range(first, stop):
        dv = dvalues + n * out_size
        if g.direct:
            cols = x + n * in_size
        else:
            _im2col(x + n * in_size, columns, g)
            cols = columns
        gemm(False, True, g.o, g.ckk, g.ohw, <floating>1, dv, g.ohw, cols, g.ohw,
             <floating>(0 if n == first else 1), dweights, g.ckk)
        for o in range(g.o):
            total = 0
            for j in range(g.ohw):
                total += dv[o * g.ohw + j]
            bias_sums[o] += total
        if dinputs != NULL:
            if g.direct:
                gemm(True, False, g.ckk, g.ohw, g.o, <floating>1, weights, g.ckk, dv, g.ohw,
                     <floating>0, dinputs + n * in_size, g.ohw)
            else:
                gemm(True, False, g.ckk, g.ohw, g.o, <floating>1, weights, g.ckk, dv, g.ohw,
                     <floating>0, dcolumns, g.ohw)
                _col2im(dcolumns, dinputs + n * in_size, g)


cdef inline void _conv_backward_finish(floating* dweights, const floating* partial_dweights,
                                       floating* dbiases, const double* bias_sums,
                                       const floating* weights, const floating* biases,
                                       Py_ssize_t n_chunks, const Geometry* g,
                                       double l1w, double l2w, double l1b, double l2b) noexcept nogil:
    """dweights (chunk 0's sum) += the other chunks' sums, in chunk order; dbiases from the
    chunks' double sums; then the regularisation terms."""
    cdef Py_ssize_t c, i, o
    cdef Py_ssize_t size = g.o * g.ckk
    cdef double total
    if n_chunks == 0:
        memset(dweights, 0, size * sizeof(floating))
    for c in range(n_chunks - 1):
        for i in range(size):
            dweights[i] += partial_dweights[c * size + i]
    for o in range(g.o):
        total = 0
        for c in range(n_chunks):
            total += bias_sums[c * g.o + o]
        dbiases[o] = <floating>total
    add_penalty_gradient(dweights, weights, size, l1w, l2w)
    add_penalty_gradient(dbiases, biases, g.o, l1b, l2b)


# Drivers. The batch is cut into a fixed number of chunks that depends on the batch size only;
# each chunk sums its own dweights (and bias sums), and the chunk sums are added in chunk order.
# So results do not depend on the thread count or on which thread ran which chunk, and threads
# can take samples/chunks dynamically: on a busy machine a thread that shares its core with
# another process does less of the work instead of holding everyone up. Each thread has its own
# im2col scratch. NumPy's BLAS is pinned to one thread throughout (when it can be): one sample's
# GEMMs are too small to split well (OpenBLAS on two threads ran them 1.7x slower than on one).

cdef enum:
    _MAX_CHUNKS = 8


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n_samples) noexcept nogil:
    return n_samples if n_samples < _MAX_CHUNKS else _MAX_CHUNKS


cdef void _forward_threads(const floating* x, const floating* weights, const floating* biases,
                           floating* output, floating* columns, const Geometry* g,
                           int n_threads) noexcept nogil:
    cdef Py_ssize_t n
    cdef Py_ssize_t scratch = g.ckk * g.ohw
    cdef int saved = _blas_threads_pin()
    if n_threads <= 1:
        _conv_forward(x, weights, biases, output, columns, g, 0, g.n)
    else:
        for n in prange(g.n, num_threads=n_threads, schedule="dynamic", chunksize=1):
            _conv_forward(x, weights, biases, output, columns + threadid() * scratch, g, n, n + 1)
    _blas_threads_restore(saved)


cdef void _backward_threads(const floating* dvalues, const floating* x, const floating* weights,
                            const floating* biases, floating* dweights, floating* partial_dweights,
                            floating* dbiases, double* bias_sums, floating* dinputs,
                            floating* columns, floating* dcolumns, const Geometry* g, int n_threads,
                            double l1w, double l2w, double l1b, double l2b) noexcept nogil:
    cdef Py_ssize_t c, t
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    cdef Py_ssize_t scratch = g.ckk * g.ohw
    cdef Py_ssize_t size = g.o * g.ckk
    cdef int saved = _blas_threads_pin()
    if n_threads <= 1:
        for c in range(n_chunks):
            _conv_backward(dvalues, x, weights, dweights if c == 0 else partial_dweights + (c - 1) * size,
                           bias_sums + c * g.o, dinputs, columns, dcolumns, g,
                           (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
    else:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            t = threadid()
            _conv_backward(dvalues, x, weights, dweights if c == 0 else partial_dweights + (c - 1) * size,
                           bias_sums + c * g.o, dinputs, columns + t * scratch,
                           NULL if dcolumns == NULL else dcolumns + t * scratch, g,
                           (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
    _blas_threads_restore(saved)
    _conv_backward_finish(dweights, partial_dweights, dbiases, bias_sums, weights, biases,
                          n_chunks, g, l1w, l2w, l1b, l2b)


# ---------------------------------------------------------------------------------------------
# Conv2D entry points.

cdef int _conv_parameters(dict state, Geometry* g) except -1:
    """Fill g's kernel fields from the layer's weights/biases/stride/padding, or raise the error
    that explains why they cannot be used. Returns the dtype's typenum."""
    weights = state.get("weights")
    biases = state.get("biases")
    stride = state.get("stride")
    padding = state.get("padding")
    cdef cnp.ndarray w
    if not (ready(weights, cnp.NPY_FLOAT32) or ready(weights, cnp.NPY_FLOAT64)) or (<cnp.ndarray>weights).ndim != 4:
        raise _validation.conv_parameter_error("weights", state)
    w = <cnp.ndarray>weights
    if (w.shape[2] != w.shape[3] or w.shape[0] != state.get("out_channels")
            or w.shape[1] != state.get("in_channels") or w.shape[2] != state.get("kernel_size")
            or w.shape[0] == 0 or w.shape[1] == 0 or w.shape[2] == 0):
        raise _validation.conv_parameter_error("weights", state)
    if not ready(biases, cnp.PyArray_TYPE(w)) or (<cnp.ndarray>biases).ndim != 1 \
            or (<cnp.ndarray>biases).shape[0] != w.shape[0]:
        raise _validation.conv_parameter_error("biases", state)
    if type(stride) is not int or stride < 1:
        raise _validation.conv_parameter_error("stride", state)
    if type(padding) is not int or padding < 0:
        raise _validation.conv_parameter_error("padding", state)
    g.o = w.shape[0]
    g.c = w.shape[1]
    g.k = w.shape[2]
    g.s = stride
    g.p = padding
    g.ckk = g.c * g.k * g.k
    return cnp.PyArray_TYPE(w)


cdef bint _conv_input(object inputs, int typenum, Geometry* g) noexcept:
    """inputs is a ready (N, C, H, W) array that the kernel fits in (after padding): fill g."""
    if not ready(inputs, typenum):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if x.ndim != 4 or x.shape[1] != g.c or x.shape[2] < 1 or x.shape[3] < 1:
        return False
    if x.shape[2] + 2 * g.p < g.k or x.shape[3] + 2 * g.p < g.k:
        return False
    g.n = x.shape[0]
    g.h = x.shape[2]
    g.w = x.shape[3]
    g.oh = (g.h + 2 * g.p - g.k) // g.s + 1
    g.ow = (g.w + 2 * g.p - g.k) // g.s + 1
    g.ohw = g.oh * g.ow
    g.direct = g.k == 1 and g.s == 1 and g.p == 0
    return True


cdef cnp.ndarray _scratch(dict state, str name, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2, int typenum):
    """A scratch buffer of the layer (e.g. each thread's im2col columns), reused while its shape
    stays the same."""
    cdef cnp.npy_intp dims[3]
    dims[0] = n0
    dims[1] = n1
    dims[2] = n2
    return reuse(state, name, 3, dims, typenum, None, None)


def conv_forward(dict state, object inputs):
    """Conv2D forward on a layer's __dict__: sets `inputs` and `output` (N, O, OH, OW).

    Returns False, changing nothing, when `inputs` is not already a C-contiguous (N, C, H, W)
    array of the weights' dtype with the layer's C and a plane the kernel fits in."""
    cdef Geometry g
    cdef int typenum = _conv_parameters(state, &g)
    if not _conv_input(inputs, typenum, &g):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray weights = state["weights"]
    cdef cnp.ndarray biases = state["biases"]
    cdef cnp.npy_intp dims[4]
    dims[0] = g.n
    dims[1] = g.o
    dims[2] = g.oh
    dims[3] = g.ow
    cdef cnp.ndarray output = reuse(state, "output", 4, dims, typenum, x, weights)
    cdef int n_threads = _threads_for_work(g.n * g.o * g.ckk * g.ohw, g.n)
    cdef void* p_cols = NULL
    if not g.direct:
        p_cols = data(_scratch(state, "_columns", n_threads, g.ckk, g.ohw, typenum))
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_out = data(output)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _forward_threads(<float*>p_x, <float*>p_w, <float*>p_b, <float*>p_out, <float*>p_cols, &g,
                             n_threads)
        else:
            _forward_threads(<double*>p_x, <double*>p_w, <double*>p_b, <double*>p_out, <double*>p_cols, &g,
                             n_threads)
    state["inputs"] = x
    return True


def conv_backward(dict state, object dvalues, bint want_dinputs=True):
    """Conv2D backward on a layer's __dict__: sets `dweights`, `dbiases` and (unless
    want_dinputs is False) `dinputs`, from `dvalues` and the `inputs` of the last forward.

    Returns False, changing nothing, when `dvalues` is not already a C-contiguous array of the
    weights' dtype with the forward's output shape."""
    cdef Geometry g
    cdef int typenum = _conv_parameters(state, &g)
    inputs = state.get("inputs")
    if not _conv_input(inputs, typenum, &g):
        raise _validation.missing_forward("Layer_Conv2D", "inputs")
    if not ready(dvalues, typenum):
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    if (dv.ndim != 4 or dv.shape[0] != g.n or dv.shape[1] != g.o or dv.shape[2] != g.oh
            or dv.shape[3] != g.ow):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray weights = state["weights"]
    cdef cnp.ndarray biases = state["biases"]
    cdef double l1w = state.get("weight_regularizer_l1", 0)
    cdef double l2w = state.get("weight_regularizer_l2", 0)
    cdef double l1b = state.get("bias_regularizer_l1", 0)
    cdef double l2b = state.get("bias_regularizer_l2", 0)
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    cdef int n_threads = _threads_for_work(g.n * g.o * g.ckk * g.ohw, n_chunks)
    cdef cnp.ndarray dweights = reuse(state, "dweights", 4, cnp.PyArray_DIMS(weights), typenum, dv, x)
    cdef cnp.ndarray dbiases = reuse(state, "dbiases", 1, cnp.PyArray_DIMS(biases), typenum, dv, None)
    cdef void* p_dx = NULL
    cdef void* p_dcols = NULL
    cdef void* p_cols = NULL
    cdef void* p_partial = NULL
    if want_dinputs:
        p_dx = data(reuse(state, "dinputs", 4, cnp.PyArray_DIMS(x), typenum, dv, weights))
        if not g.direct:
            p_dcols = data(_scratch(state, "_dcolumns", n_threads, g.ckk, g.ohw, typenum))
    if not g.direct:
        p_cols = data(_scratch(state, "_columns", n_threads, g.ckk, g.ohw, typenum))
    if n_chunks > 1:
        p_partial = data(_scratch(state, "_partial_dweights", n_chunks - 1, g.o, g.ckk, typenum))
    # Bias sums in double, one row per chunk: a scratch buffer of the layer like the columns.
    cdef double* p_sums = <double*>data(_scratch(state, "_bias_sums", n_chunks, g.o, 1, cnp.NPY_FLOAT64))
    cdef void* p_dv = data(dv)
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_dw = data(dweights)
    cdef void* p_db = data(dbiases)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _backward_threads(<float*>p_dv, <float*>p_x, <float*>p_w, <float*>p_b, <float*>p_dw,
                              <float*>p_partial, <float*>p_db, p_sums, <float*>p_dx, <float*>p_cols,
                              <float*>p_dcols, &g, n_threads, l1w, l2w, l1b, l2b)
        else:
            _backward_threads(<double*>p_dv, <double*>p_x, <double*>p_w, <double*>p_b, <double*>p_dw,
                              <double*>p_partial, <double*>p_db, p_sums, <double*>p_dx, <double*>p_cols,
                              <double*>p_dcols, &g, n_threads, l1w, l2w, l1b, l2b)
    return True


# ---------------------------------------------------------------------------------------------
# MaxPool2D.

cdef inline bint _is_better(floating v, floating best) noexcept nogil:
    """v replaces the running maximum: strictly greater (so ties keep the first), or a NaN when
    best is not one (np.argmax's rule: the first NaN is the maximum)."""
    return v > best or (v != v and best == best)


cdef inline floating _larger(floating v, floating best) noexcept nogil:
    # The form x86's maxss/maxps compute, so compilers emit no branch.
    return v if v > best else best


cdef inline void _pool_plane_exact(const floating* plane, floating* output, int* argmax,
                                   Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t pool,
                                   Py_ssize_t s) noexcept nogil:
    """The row-major scan of every window with the full rule (NaN included). Used for planes
    that hold a NaN: the fast paths below assume none, and branches on unpredictable
    comparisons (real data) would make this scan several times slower than they are."""
    cdef Py_ssize_t i, j, a, b, top, left, where
    cdef const floating* row
    cdef floating best, v
    for i in range(oh):
        top = i * s
        for j in range(ow):
            left = j * s
            where = top * w + left
            best = plane[where]
            for a in range(pool):
                row = plane + (top + a) * w + left
                for b in range(pool):
                    v = row[b]
                    if _is_better(v, best):
                        best = v
                        where = (top + a) * w + left + b
            output[i * ow + j] = best
            argmax[i * ow + j] = <int>where


cdef inline bint _pool2_plane(const floating* plane, floating* output, int* argmax,
                              Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """pool_size 2, stride 2 (the common case), assuming no NaN; returns whether one was seen.
    A tournament, (0 vs 1) and (2 vs 3) then the winners, picks the element the row-major scan
    picks (a tie keeps the earlier one); selects are arithmetic, so there are no branches."""
    cdef Py_ssize_t i, j
    cdef const floating* r0
    cdef const floating* r1
    cdef floating v0, v1, v2, v3, m01, m23
    cdef int i01, i23, t, top
    cdef bint nan = False
    for i in range(oh):
        top = <int>(2 * i * w)
        r0 = plane + top
        r1 = r0 + w
        for j in range(ow):
            v0 = r0[2 * j]
            v1 = r0[2 * j + 1]
            v2 = r1[2 * j]
            v3 = r1[2 * j + 1]
            nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
            i01 = <int>(2 * j) + (v1 > v0)
            m01 = _larger(v1, v0)
            i23 = <int>(w + 2 * j) + (v3 > v2)
            m23 = _larger(v3, v2)
            t = m23 > m01
            output[i * ow + j] = _larger(m23, m01)
            argmax[i * ow + j] = top + i01 + (i23 - i01) * t
    return nan


cdef inline bint _pool_plane(const floating* plane, floating* output, int* argmax,
                             Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t pool,
                             Py_ssize_t s) noexcept nogil:
    """Any pool_size and stride, assuming no NaN (returns whether one was seen). For each row of
    windows the offsets (a, b) are visited in row-major order, each across the whole row of
    windows: the windows' running maxima (kept in the output row) do not wait on each other,
    and the winner is updated with arithmetic selects, not branches."""
    cdef Py_ssize_t i, j, a, b, top
    cdef const floating* row
    cdef floating* best
    cdef int* where
    cdef floating v
    cdef int t, here
    cdef bint nan = False
    for i in range(oh):
        top = i * s
        best = output + i * ow
        where = argmax + i * ow
        row = plane + top * w
        for j in range(ow):
            best[j] = row[j * s]
            where[j] = <int>(top * w + j * s)
        for a in range(pool):
            row = plane + (top + a) * w
            for b in range(pool):
                here = <int>((top + a) * w + b)
                for j in range(ow):
                    v = row[j * s + b]
                    nan |= v != v
                    t = v > best[j]
                    best[j] = _larger(v, best[j])
                    where[j] += (here + <int>(j * s) - where[j]) * t
    return nan


cdef inline void _pool_forward(const floating* x, floating* output, int* argmax, Py_ssize_t planes,
                               Py_ssize_t h, Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow,
                               Py_ssize_t pool, Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t q
    cdef const floating* plane
    cdef bint nan
    for q in range(planes):
        plane = x + q * h * w
        if pool == 2 and s == 2:
            nan = _pool2_plane(plane, output, argmax, w, oh, ow)
        else:
            nan = _pool_plane(plane, output, argmax, w, oh, ow, pool, s)
        if nan:
            _pool_plane_exact(plane, output, argmax, w, oh, ow, pool, s)
        output += oh * ow
        argmax += oh * ow


cdef inline bint _pool_backward(const floating* dvalues, const int* argmax, floating* dinputs,
                                Py_ssize_t planes, Py_ssize_t hw, Py_ssize_t ohw) noexcept nogil:
    """Scatter-add each gradient to its window's winner. False if an index is out of its plane
    (argmax was changed by hand): nothing is written out of bounds."""
    cdef Py_ssize_t q, j
    cdef int where
    cdef bint ok = True
    memset(dinputs, 0, planes * hw * sizeof(floating))
    for q in range(planes):
        for j in range(ohw):
            where = argmax[j]
            if where < 0 or where >= hw:
                ok = False
            else:
                dinputs[where] += dvalues[j]
        dvalues += ohw
        argmax += ohw
        dinputs += hw
    return ok


cdef int _pool_geometry(dict state, Py_ssize_t* pool, Py_ssize_t* stride) except -1:
    pool_size = state.get("pool_size")
    s = state.get("stride")
    if type(pool_size) is not int or pool_size < 1 or type(s) is not int or s < 1:
        raise _validation.pool_parameter_error(state)
    pool[0] = pool_size
    stride[0] = s
    return 0


cdef bint _pool_input(object inputs, Py_ssize_t pool) noexcept:
    if not (ready(inputs, cnp.NPY_FLOAT32) or ready(inputs, cnp.NPY_FLOAT64)):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    return (x.ndim == 4 and x.shape[2] >= pool and x.shape[3] >= pool
            and x.shape[2] * x.shape[3] <= 2147483647)


def pool_forward(dict state, object inputs):
    """MaxPool2D forward on a layer's __dict__: sets `inputs`, `output` (N, C, OH, OW) and
    `argmax` (N, C, OH, OW, int32: the winner's flat index in its (H, W) plane).

    Returns False, changing nothing, when `inputs` is not already a C-contiguous float32/float64
    (N, C, H, W) array with H and W at least pool_size."""
    cdef Py_ssize_t pool, s
    _pool_geometry(state, &pool, &s)
    if not _pool_input(inputs, pool):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3]
    cdef cnp.npy_intp dims[4]
    dims[0] = x.shape[0]
    dims[1] = x.shape[1]
    dims[2] = (h - pool) // s + 1
    dims[3] = (w - pool) // s + 1
    cdef cnp.ndarray output = reuse(state, "output", 4, dims, typenum, x, None)
    cdef cnp.ndarray argmax = reuse(state, "argmax", 4, dims, cnp.NPY_INT32, None, None)
    cdef Py_ssize_t planes = dims[0] * dims[1]
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    cdef int* p_arg = <int*>data(argmax)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _pool_forward(<float*>p_x, <float*>p_out, p_arg, planes, h, w, dims[2], dims[3], pool, s)
        else:
            _pool_forward(<double*>p_x, <double*>p_out, p_arg, planes, h, w, dims[2], dims[3], pool, s)
    state["inputs"] = x
    return True


def pool_backward(dict state, object dvalues):
    """MaxPool2D backward on a layer's __dict__: sets `dinputs` (the forward inputs' shape).

    Returns False, changing nothing, when `dvalues` is not already a C-contiguous array of the
    inputs' dtype with the forward's output shape."""
    cdef Py_ssize_t pool, s
    _pool_geometry(state, &pool, &s)
    inputs = state.get("inputs")
    argmax = state.get("argmax")
    if not _pool_input(inputs, pool) or not ready(argmax, cnp.NPY_INT32):
        raise _validation.missing_forward("Layer_MaxPool2D", "argmax")
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray arg = <cnp.ndarray>argmax
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t oh = (h - pool) // s + 1, ow = (w - pool) // s + 1
    if (arg.ndim != 4 or arg.shape[0] != x.shape[0] or arg.shape[1] != x.shape[1]
            or arg.shape[2] != oh or arg.shape[3] != ow):
        raise _validation.missing_forward("Layer_MaxPool2D", "argmax")
    if not ready(dvalues, typenum):
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    if dv.ndim != 4 or dv.shape[0] != x.shape[0] or dv.shape[1] != x.shape[1] or dv.shape[2] != oh \
            or dv.shape[3] != ow:
        return False
    cdef cnp.ndarray dinputs = reuse(state, "dinputs", 4, cnp.PyArray_DIMS(x), typenum, dv, None)
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1]
    cdef void* p_dv = data(dv)
    cdef int* p_arg = <int*>data(arg)
    cdef void* p_dx = data(dinputs)
    cdef bint ok
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            ok = _pool_backward(<float*>p_dv, p_arg, <float*>p_dx, planes, h * w, oh * ow)
        else:
            ok = _pool_backward(<double*>p_dv, p_arg, <double*>p_dx, planes, h * w, oh * ow)
    if not ok:
        raise ValueError("Layer_MaxPool2D.backward: argmax holds positions outside the input planes; "
                         "it was changed after forward(). Run forward() again.")
    return True
