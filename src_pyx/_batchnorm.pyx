"""Layer_BatchNorm kernels, forward and backward each one call on the layer's state dict (the
calling convention of _common.pxd).

Inputs (N, F, ...) are seen as (N, F, S), S the product of the axes after the features (1 for
(N, F), H * W for NCHW): feature (channel) c is normalised over its M = N * S values. Every
statistic and every element is computed in double and rounded once to the data's dtype:

  forward, training  mean = sum(x) / M; var = sum((x - mean)^2) / M       (two passes, as PyTorch)
                     running_mean = (1 - momentum) * running_mean + momentum * mean
                     running_var  = (1 - momentum) * running_var + momentum * var * M / (M - 1)
  forward, eval      mean, var = running_mean, running_var
  both               inv_std = 1 / sqrt(var + epsilon); y = (x - mean) * (gamma * inv_std) + beta
  backward           dbeta = sum(dy); dgamma = inv_std * sum(dy * (x - mean))   (one pass)
                     dx = gamma * inv_std * (dy - dbeta / M - xhat * dgamma / M)  (batch statistics)
                     dx = gamma * inv_std * dy                                    (running statistics)

`_mean` and `_inv_std` (float64, (F,)) keep the statistics a forward used and `_batch` whether
they were the batch's, for the backward that follows; `_sums` (float64, (3, F)) is scratch. The
passes walk the data in memory order: for (N, F) inputs along each row across the features (a
loop compilers vectorise), for (N, F, S) along each channel's S values.
"""
from libc.math cimport sqrt
cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from cython.parallel cimport prange

from _common cimport data, ready, reuse, same_shape
from fastnn._ext._threads cimport threads_for_work

include "_status.pxi"

# The thread policy (_threads.pyx) counts work in multiply-adds of GEMM; a memory-bound pass over
# one element counts as this many (a whole forward or backward is a few passes).
cdef Py_ssize_t _PASS_WORK = 8


# ---------------------------------------------------------------------------------------------
# The passes. x, dy: (n, f, s) in C order; per-feature arrays have f entries.

# A channel's S values of one sample are summed in _LANES interleaved partial sums (value k into
# partial k % _LANES, the partials then added in a fixed tree): one running double sum is a chain of
# dependent additions, one per 4 cycles, which bounded the NCHW passes; independent partials run
# at the adders' throughput and vectorise. The order is fixed, so the results still do not depend
# on the thread count or on the build (-ffp-contract=off in the AVX2 variant).
cdef enum:
    _LANES = 8        # the step of the loops below is written as the literal 8 (Cython needs one)


cdef inline double _plane_sum(const floating* v, Py_ssize_t s, double centre, bint square) noexcept nogil:
    """The sum of (v[k] - centre), squared where asked, over k < s."""
    cdef double p[_LANES]
    cdef double d
    cdef Py_ssize_t k, j, full = s - s % _LANES
    for j in range(_LANES):
        p[j] = 0
    if square:
        for k in range(0, full, 8):
            for j in range(_LANES):
                d = v[k + j] - centre
                p[j] += d * d
        for k in range(full, s):
            d = v[k] - centre
            p[k - full] += d * d
    else:
        for k in range(0, full, 8):
            for j in range(_LANES):
                p[j] += v[k + j] - centre
        for k in range(full, s):
            p[k - full] += v[k] - centre
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))


cdef inline void _plane_gradient_sums(const floating* dy, const floating* x, Py_ssize_t s, double centre,
                                      double* sum_dy, double* sum_dyx) noexcept nogil:
    """sum_dy = the sum of dy[k], sum_dyx = the sum of dy[k] * (x[k] - centre), over k < s."""
    cdef double a[_LANES]
    cdef double b[_LANES]
    cdef Py_ssize_t k, j, full = s - s % _LANES
    for j in range(_LANES):
        a[j] = 0
        b[j] = 0
    for k in range(0, full, 8):
        for j in range(_LANES):
            a[j] += dy[k + j]
            b[j] += dy[k + j] * (x[k + j] - centre)
    for k in range(full, s):
        a[k - full] += dy[k]
        b[k - full] += dy[k] * (x[k] - centre)
    sum_dy[0] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    sum_dyx[0] = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]))


cdef inline void _sum(const floating* x, Py_ssize_t n, Py_ssize_t f, Py_ssize_t s, Py_ssize_t c0, Py_ssize_t c1,
                      const double* centre, double* sums, bint square) noexcept nogil:
    """sums[c] = the sum over feature c in [c0, c1) of (x - centre[c]), squared where asked."""
    cdef Py_ssize_t i, c, k
    cdef const floating* v
    cdef double d, total
    for c in range(c0, c1):
        sums[c] = 0
    for i in range(n):
        v = x + i * f * s
        if s == 1:
            for c in range(c0, c1):
                d = v[c] - centre[c]
                sums[c] += d * d if square else d
        else:
            for c in range(c0, c1):
                sums[c] += _plane_sum(v + c * s, s, centre[c], square)


cdef inline void _normalize(const floating* x, floating* out, Py_ssize_t n, Py_ssize_t f, Py_ssize_t s,
                            Py_ssize_t c0, Py_ssize_t c1, const double* mean, const double* scale, const floating* beta) noexcept nogil:
    """out = scale[c] * (x - mean[c]) + beta[c] per element of feature c, rounded once."""
    cdef Py_ssize_t i, c, k, at
    for i in range(n):
        if s == 1:
            for c in range(c0, c1):
                at = i * f + c
                out[at] = <floating>(scale[c] * (x[at] - mean[c]) + beta[c])
        else:
            for c in range(c0, c1):
                at = (i * f + c) * s
                for k in range(at, at + s):
                    out[k] = <floating>(scale[c] * (x[k] - mean[c]) + beta[c])


cdef inline void _input_gradient(const floating* dy, const floating* x, floating* dx, Py_ssize_t n, Py_ssize_t f,
                                 Py_ssize_t s, Py_ssize_t c0, Py_ssize_t c1, const double* mean, const double* slope, const double* dy_mean,
                                 const double* x_slope) noexcept nogil:
    """dx = slope[c] * (dy - dy_mean[c]) - x_slope[c] * (x - mean[c]) per element of feature c."""
    cdef Py_ssize_t i, c, k, at
    for i in range(n):
        if s == 1:
            for c in range(c0, c1):
                at = i * f + c
                dx[at] = <floating>(slope[c] * (dy[at] - dy_mean[c]) - x_slope[c] * (x[at] - mean[c]))
        else:
            for c in range(c0, c1):
                at = (i * f + c) * s
                for k in range(at, at + s):
                    dx[k] = <floating>(slope[c] * (dy[k] - dy_mean[c]) - x_slope[c] * (x[k] - mean[c]))


cdef inline void _gradient_sums(const floating* dy, const floating* x, Py_ssize_t n, Py_ssize_t f, Py_ssize_t s,
                                Py_ssize_t c0, Py_ssize_t c1, const double* mean, double* sum_dy, double* sum_dyx) noexcept nogil:
    """One pass: sum_dy[c] = sum(dy), sum_dyx[c] = sum(dy * (x - mean[c])) over feature c."""
    cdef Py_ssize_t i, c, k, at
    cdef double a, b
    for c in range(c0, c1):
        sum_dy[c] = 0
        sum_dyx[c] = 0
    for i in range(n):
        if s == 1:
            for c in range(c0, c1):
                at = i * f + c
                sum_dy[c] += dy[at]
                sum_dyx[c] += dy[at] * (x[at] - mean[c])
        else:
            for c in range(c0, c1):
                at = (i * f + c) * s
                _plane_gradient_sums(dy + at, x + at, s, mean[c], &a, &b)
                sum_dy[c] += a
                sum_dyx[c] += b


cdef void _forward(const floating* x, floating* out, Py_ssize_t n, Py_ssize_t f, Py_ssize_t s,
                   Py_ssize_t c0, Py_ssize_t c1, const floating* gamma, const floating* beta, floating* running_mean, floating* running_var,
                   double* mean, double* inv_std, double* scale, bint training, double momentum,
                   double epsilon) noexcept nogil:
    cdef Py_ssize_t c
    cdef double m = <double>(n * s), var
    if training:
        for c in range(c0, c1):
            scale[c] = 0                       # the centre of the first pass
        _sum(x, n, f, s, c0, c1, scale, mean, False)
        for c in range(c0, c1):
            mean[c] = mean[c] / m
        _sum(x, n, f, s, c0, c1, mean, inv_std, True)
    for c in range(c0, c1):
        if training:
            var = inv_std[c] / m
            running_mean[c] = <floating>((1 - momentum) * running_mean[c] + momentum * mean[c])
            running_var[c] = <floating>((1 - momentum) * running_var[c] + momentum * (var * m / (m - 1)))
        else:
            mean[c] = running_mean[c]
            var = running_var[c]
        inv_std[c] = 1 / sqrt(var + epsilon)
        scale[c] = gamma[c] * inv_std[c]
    _normalize(x, out, n, f, s, c0, c1, mean, scale, beta)


cdef void _backward(const floating* dy, const floating* x, floating* dx, floating* dgamma, floating* dbeta,
                    Py_ssize_t n, Py_ssize_t f, Py_ssize_t s, Py_ssize_t c0, Py_ssize_t c1, const floating* gamma, const double* mean,
                    const double* inv_std, double* sums, bint batch) noexcept nogil:
    cdef Py_ssize_t c
    cdef double m = <double>(n * s), g
    cdef double* sum_dy = sums
    cdef double* sum_dyx = sums + f
    cdef double* slope = sums + 2 * f
    _gradient_sums(dy, x, n, f, s, c0, c1, mean, sum_dy, sum_dyx)
    for c in range(c0, c1):
        g = sum_dyx[c] * inv_std[c]            # sum(dy * xhat)
        dbeta[c] = <floating>sum_dy[c]
        dgamma[c] = <floating>g
        slope[c] = gamma[c] * inv_std[c]
        if batch:
            sum_dy[c] = sum_dy[c] / m           # the mean of dy, subtracted
            sum_dyx[c] = slope[c] * inv_std[c] * g / m
        else:
            sum_dy[c] = 0
            sum_dyx[c] = 0
    _input_gradient(dy, x, dx, n, f, s, c0, c1, mean, slope, sum_dy, sum_dyx)


# ---------------------------------------------------------------------------------------------
# Drivers: the features of NCHW data (s > 1) are split over OpenMP threads, one channel at a
# time, scheduled dynamically. Every channel's statistics and elements are computed by one thread
# in the serial order, so the results do not depend on the thread count. (N, F) data stays serial:
# its passes run along each row across the features.

cdef void _forward_threads(const floating* x, floating* out, Py_ssize_t n, Py_ssize_t f, Py_ssize_t s,
                           const floating* gamma, const floating* beta, floating* running_mean,
                           floating* running_var, double* mean, double* inv_std, double* scale, bint training,
                           double momentum, double epsilon, int n_threads) noexcept nogil:
    cdef Py_ssize_t c
    if n_threads <= 1 or s == 1:
        _forward(x, out, n, f, s, 0, f, gamma, beta, running_mean, running_var, mean, inv_std, scale, training,
                 momentum, epsilon)
        return
    for c in prange(f, num_threads=n_threads, schedule="dynamic", chunksize=1):
        _forward(x, out, n, f, s, c, c + 1, gamma, beta, running_mean, running_var, mean, inv_std, scale,
                 training, momentum, epsilon)


cdef void _backward_threads(const floating* dy, const floating* x, floating* dx, floating* dgamma,
                            floating* dbeta, Py_ssize_t n, Py_ssize_t f, Py_ssize_t s, const floating* gamma,
                            const double* mean, const double* inv_std, double* sums, bint batch,
                            int n_threads) noexcept nogil:
    cdef Py_ssize_t c
    if n_threads <= 1 or s == 1:
        _backward(dy, x, dx, dgamma, dbeta, n, f, s, 0, f, gamma, mean, inv_std, sums, batch)
        return
    for c in prange(f, num_threads=n_threads, schedule="dynamic", chunksize=1):
        _backward(dy, x, dx, dgamma, dbeta, n, f, s, c, c + 1, gamma, mean, inv_std, sums, batch)


# Entry points. Each returns a status (_status.pxi): OK; CONVERT, changing nothing, when the data
# argument is not in the exact form below; BAD_WEIGHTS / BAD_BIASES / BAD_STATISTICS /
# BAD_SETTING when the layer's scale, shift, running statistics or momentum and epsilon cannot be
# used (replaced by hand); ONE_VALUE from a training forward with one value per feature (no
# variance to normalise with, as PyTorch refuses); NO_FORWARD from backward without its forward.

cdef bint _vector(object a, int typenum, Py_ssize_t f, bint writeable) noexcept:
    return (ready(a, typenum) and (<cnp.ndarray>a).ndim == 1 and (<cnp.ndarray>a).shape[0] == f
            and (not writeable or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)))


cdef int _layer(dict state, int* typenum, Py_ssize_t* f, double* momentum, double* epsilon,
                bint writes_statistics) except -1:
    """The layer's arrays and settings usable: OK (filling the dtype, feature count and
    settings), or the status that says which is not."""
    weights = state.get("weights")
    if not ((ready(weights, cnp.NPY_FLOAT32) or ready(weights, cnp.NPY_FLOAT64))
            and (<cnp.ndarray>weights).ndim == 1 and (<cnp.ndarray>weights).shape[0] > 0):
        return BAD_WEIGHTS
    typenum[0] = cnp.PyArray_TYPE(<cnp.ndarray>weights)
    f[0] = (<cnp.ndarray>weights).shape[0]
    if not _vector(state.get("biases"), typenum[0], f[0], False):
        return BAD_BIASES
    if not (_vector(state.get("running_mean"), typenum[0], f[0], writes_statistics)
            and _vector(state.get("running_var"), typenum[0], f[0], writes_statistics)):
        return BAD_STATISTICS
    try:
        momentum[0] = state["momentum"]
        epsilon[0] = state["epsilon"]
    except (KeyError, TypeError, ValueError, OverflowError):
        return BAD_SETTING
    if not (0 <= momentum[0] <= 1 and 0 < epsilon[0] < 1e308):
        return BAD_SETTING
    return OK


cdef bint _features_input(object x, int typenum, Py_ssize_t f) noexcept:
    return ready(x, typenum) and (<cnp.ndarray>x).ndim >= 2 and (<cnp.ndarray>x).shape[1] == f


cdef double* _doubles(dict state, str name, Py_ssize_t rows, Py_ssize_t f):
    """The float64 scratch `name` of the layer, (f,) for one row, else (rows, f); reused while
    its shape stays."""
    cdef cnp.npy_intp dims[2]
    dims[0] = rows
    dims[1] = f
    if rows == 1:
        return <double*>data(reuse(state, name, 1, &dims[1], cnp.NPY_FLOAT64, None, None))
    return <double*>data(reuse(state, name, 2, dims, cnp.NPY_FLOAT64, None, None))


def forward(dict state, object inputs, bint training):
    """BatchNorm forward on a layer's __dict__: sets `inputs`, `output` (the inputs' shape),
    `_mean`, `_inv_std` and `_batch`; in training also updates `running_mean` and `running_var`
    in place. CONVERT when inputs is not a C-contiguous (N, F, ...) array of the weights' dtype."""
    cdef int typenum
    cdef Py_ssize_t f
    cdef double momentum, epsilon
    cdef int status = _layer(state, &typenum, &f, &momentum, &epsilon, training)
    if status != OK:
        return status
    if not _features_input(inputs, typenum, f):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef Py_ssize_t n = x.shape[0], size = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t s = size // (n * f) if n > 0 else 1
    if training and n * s < 2:
        return ONE_VALUE
    cdef cnp.ndarray output = reuse(state, "output", x.ndim, cnp.PyArray_DIMS(x), typenum, x, None)
    cdef double* mean = _doubles(state, "_mean", 1, f)
    cdef double* inv_std = _doubles(state, "_inv_std", 1, f)
    cdef double* scale = _doubles(state, "_sums", 3, f)
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    cdef void* p_g = data(<cnp.ndarray>state["weights"])
    cdef void* p_b = data(<cnp.ndarray>state["biases"])
    cdef void* p_rm = data(<cnp.ndarray>state["running_mean"])
    cdef void* p_rv = data(<cnp.ndarray>state["running_var"])
    cdef int n_threads = threads_for_work(_PASS_WORK * size, f)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _forward_threads(<float*>p_x, <float*>p_out, n, f, s, <float*>p_g, <float*>p_b, <float*>p_rm,
                             <float*>p_rv, mean, inv_std, scale, training, momentum, epsilon, n_threads)
        else:
            _forward_threads(<double*>p_x, <double*>p_out, n, f, s, <double*>p_g, <double*>p_b, <double*>p_rm,
                             <double*>p_rv, mean, inv_std, scale, training, momentum, epsilon, n_threads)
    state["inputs"] = x
    state["_batch"] = training
    return _OK


def backward(dict state, object dvalues):
    """BatchNorm backward on a layer's __dict__: sets `dweights`, `dbiases` (F,) and `dinputs`
    (the inputs' shape), from the statistics the last forward used. CONVERT when dvalues is not
    a C-contiguous array of the inputs' shape and dtype."""
    cdef int typenum
    cdef Py_ssize_t f
    cdef double momentum, epsilon
    cdef int status = _layer(state, &typenum, &f, &momentum, &epsilon, False)
    if status != OK:
        return status
    inputs = state.get("inputs")
    batch = state.get("_batch")
    if (not _features_input(inputs, typenum, f) or type(batch) is not bool
            or not _vector(state.get("_mean"), cnp.NPY_FLOAT64, f, False)
            or not _vector(state.get("_inv_std"), cnp.NPY_FLOAT64, f, False)):
        return NO_FORWARD
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if not ready(dvalues, typenum) or not same_shape(<cnp.ndarray>dvalues, x):
        return CONVERT
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    cdef Py_ssize_t n = x.shape[0], size = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t s = size // (n * f) if n > 0 else 1
    cdef cnp.ndarray gamma = <cnp.ndarray>state["weights"]
    cdef void* p_dw = data(reuse(state, "dweights", 1, cnp.PyArray_DIMS(gamma), typenum, dv, None))
    cdef void* p_db = data(reuse(state, "dbiases", 1, cnp.PyArray_DIMS(gamma), typenum, dv, None))
    cdef void* p_dx = data(reuse(state, "dinputs", x.ndim, cnp.PyArray_DIMS(x), typenum, dv, x))
    cdef double* sums = _doubles(state, "_sums", 3, f)
    cdef double* mean = <double*>data(<cnp.ndarray>state["_mean"])
    cdef double* inv_std = <double*>data(<cnp.ndarray>state["_inv_std"])
    cdef bint from_batch = batch
    cdef void* p_dv = data(dv)
    cdef void* p_x = data(x)
    cdef void* p_g = data(gamma)
    cdef int n_threads = threads_for_work(_PASS_WORK * size, f)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _backward_threads(<float*>p_dv, <float*>p_x, <float*>p_dx, <float*>p_dw, <float*>p_db, n, f, s,
                              <float*>p_g, mean, inv_std, sums, from_batch, n_threads)
        else:
            _backward_threads(<double*>p_dv, <double*>p_x, <double*>p_dx, <double*>p_dw, <double*>p_db, n, f, s,
                              <double*>p_g, mean, inv_std, sums, from_batch, n_threads)
    return _OK
