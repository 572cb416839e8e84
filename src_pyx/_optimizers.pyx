"""Optimizer kernels: SGD (plain and with momentum), Adagrad, RMSprop and Adam.

One fused pass per parameter array updates the parameter and its state in place, with no
temporaries (the book's NumPy Adam makes about nine passes and four temporaries). Every formula
follows the book's order of operations with the hyper-parameters rounded to the parameter dtype,
as NumPy does with Python floats, so a float32 update matches the book's to the last bit or
nearly (sqrt and division are correctly rounded in both).

Parameters and their state may have any shape (Dense (n_inputs, n_neurons), Conv2D 4-D, biases
(1, n)): the loops see flat C-contiguous arrays of equal size and one dtype.
"""
from libc.float cimport DBL_MIN, FLT_MIN
from libc.math cimport sqrt, sqrtf

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from cython.parallel cimport prange

from _common cimport data, is_float_typenum, ready, same_shape
from fastnn._ext._threads cimport threads_for_work

include "_status.pxi"


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# State that decays geometrically (momentums with a zero gradient, caches of RMSprop and Adam)
# sinks into the subnormal range, where every multiply costs tens of cycles: measured, Adam on a
# 784x128 MNIST layer (whose border pixels are always 0) ran 5x slower there. Values below the
# smallest normal number (1.2e-38 in float32) are stored as 0 instead. Nothing else changes: such a
# value moves a weight by less than lr * 1e-38 / epsilon, and numbers above it are untouched.
cdef inline floating _flush(floating x) noexcept nogil:
    cdef floating tiny
    if floating is float:
        tiny = FLT_MIN
    else:
        tiny = DBL_MIN
    return 0 if (x < tiny and x > -tiny) else x


# SGD without momentum: param += -lr * grad
cdef inline void _sgd(floating* param, const floating* grad, Py_ssize_t n, double lr) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr)
    for i in range(n):
        param[i] += neg_lr * grad[i]


# SGD with momentum: update = momentum * m - lr * grad; m = update; param += update
cdef inline void _sgd_momentum(floating* param, const floating* grad, floating* momentums, Py_ssize_t n,
                               double lr, double momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating update
    cdef floating mu = <floating>momentum, rate = <floating>lr
    for i in range(n):
        update = _flush(mu * momentums[i] - rate * grad[i])
        momentums[i] = update
        param[i] += update


# Adagrad: cache += grad^2; param += -lr * grad / (sqrt(cache) + eps)
cdef inline void _adagrad(floating* param, const floating* grad, floating* cache, Py_ssize_t n,
                          double lr, double epsilon) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr), eps = <floating>epsilon
    for i in range(n):
        cache[i] += grad[i] * grad[i]
        param[i] += neg_lr * grad[i] / (_sqrt(cache[i]) + eps)


# RMSprop: cache = rho * cache + (1 - rho) * grad^2; param += -lr * grad / (sqrt(cache) + eps)
cdef inline void _rmsprop(floating* param, const floating* grad, floating* cache, Py_ssize_t n,
                          double lr, double epsilon, double rho) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr), eps = <floating>epsilon
    cdef floating r = <floating>rho, one_minus_r = <floating>(1 - rho)
    for i in range(n):
        cache[i] = _flush(r * cache[i] + one_minus_r * (grad[i] * grad[i]))
        param[i] += neg_lr * grad[i] / (_sqrt(cache[i]) + eps)


# float32 Adam on CPUs with AVX-512 (checked at run time; the function is compiled for it whatever
# the module's flags): the loop below with m / c1 and v / c2 computed as float(m * r1) and
# float(v * r2), r = 1 / c in double. The same bits as the divisions (see _quotient_in_double
# below); the divider, which bounds this loop, then runs one division and one square root per
# value instead of three divisions and a square root. In 512-bit registers the conversions to and
# from double cost less than the divisions they replace (in 256-bit ones they do not: measured, no
# gain, so the AVX2 and baseline builds keep the divisions). Returns 0 where the CPU (or the
# compiler) has no AVX-512: the caller then runs the loop below.
#
# _quotient_in_double: for float32 a and c with 0 < c <= 1, and r = 1 / c rounded to double,
# float(a * r) (the product rounded to double, then to float) is the float quotient a / c, bit for
# bit, when a is 0, a normal number, inf or NaN (Adam's flushed momentums and caches are):
# - the double product is within 2^-52 (relative) of the exact a / c: two roundings of 2^-53;
# - a / c is never exactly halfway between two floats (a float's odd 24-bit significand times
#   c's would have to be a 25-bit odd significand times c's, impossible), and when not exactly
#   halfway it is at least 2^-49 (relative) from every halfway point, because a - h * c, for a
#   halfway point h of 25 bits, is a multiple of the smaller of a's and h * c's last-bit weights;
# - so the double product lies on the same side of every halfway point as a / c, and rounding it
#   to float gives what rounding a / c does (round to nearest, the only mode fastnn runs in);
# - c <= 1 makes |a / c| >= |a|: no subnormal quotient, where halfway points have fewer bits and
#   the argument fails; overflow rounds alike (the threshold is a halfway point too); 0, inf and
#   NaN (the same NaN bits: float -> double -> float keeps a payload) give what division gives.
# tests/test_optimizers_quotient.py checks it on random and edge-case values against the divisions
# and the whole update against the formulas in NumPy float32 arithmetic.
cdef extern from *:
    """
    #include <math.h>
    #include <float.h>
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    /* Set once at import (fastnn_probe_avx512), before any thread can run an update. */
    static int fastnn_avx512_usable = 0;
    static void fastnn_probe_avx512(void) {
        __builtin_cpu_init();
        fastnn_avx512_usable = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                               && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
    }
    /* AVX-512 brings fused multiply-adds, which the compiler may not contract the products and sums
       into (the baseline build's flags do not say -ffp-contract=off): every rounding as written. */
    #if defined(__clang__)
    #define FASTNN_NO_CONTRACT
    #else
    #define FASTNN_NO_CONTRACT , optimize("fp-contract=off")
    #endif
    __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw") FASTNN_NO_CONTRACT))
    static void fastnn_adam_f32_avx512_loop(float* param, const float* grad, float* m, float* v, Py_ssize_t n,
                                            float neg_lr, float eps, float b1, float one_minus_b1, float b2,
                                            float one_minus_b2, double r1, double r2) {
        #if defined(__clang__)
        #pragma clang fp contract(off)
        #endif
        for (Py_ssize_t i = 0; i < n; i++) {
            float g = grad[i];
            float mi = b1 * m[i] + one_minus_b1 * g;
            float vi = b2 * v[i] + one_minus_b2 * (g * g);
            mi = (mi < FLT_MIN && mi > -FLT_MIN) ? 0.0f : mi;
            vi = (vi < FLT_MIN && vi > -FLT_MIN) ? 0.0f : vi;
            m[i] = mi;
            v[i] = vi;
            param[i] += neg_lr * (float)((double)mi * r1) / (sqrtf((float)((double)vi * r2)) + eps);
        }
    }
    static int fastnn_adam_f32_avx512(float* param, const float* grad, float* m, float* v, Py_ssize_t n,
                                      float neg_lr, float eps, float b1, float one_minus_b1, float b2,
                                      float one_minus_b2, double r1, double r2) {
        if (!fastnn_avx512_usable)
            return 0;
        fastnn_adam_f32_avx512_loop(param, grad, m, v, n, neg_lr, eps, b1, one_minus_b1, b2, one_minus_b2, r1, r2);
        return 1;
    }
    #else
    static void fastnn_probe_avx512(void) {}
    static int fastnn_adam_f32_avx512(float* param, const float* grad, float* m, float* v, Py_ssize_t n,
                                      float neg_lr, float eps, float b1, float one_minus_b1, float b2,
                                      float one_minus_b2, double r1, double r2) {
        return 0;
    }
    #endif
    """
    bint fastnn_adam_f32_avx512(float* param, const float* grad, float* m, float* v, Py_ssize_t n, float neg_lr,
                                float eps, float b1, float one_minus_b1, float b2, float one_minus_b2,
                                double r1, double r2) noexcept nogil
    void fastnn_probe_avx512() noexcept nogil

fastnn_probe_avx512()


# Adam, with t = iterations + 1 and the caller passing correction1 = 1 - beta_1**t and
# correction2 = 1 - beta_2**t:
#   m = beta_1 * m + (1 - beta_1) * grad         m_hat = m / correction1
#   v = beta_2 * v + (1 - beta_2) * grad^2       v_hat = v / correction2
#   param += -lr * m_hat / (sqrt(v_hat) + eps)   (eps after the square root, as the book)
cdef inline void _adam(floating* param, const floating* grad, floating* m, floating* v, Py_ssize_t n,
                       double lr, double epsilon, double beta_1, double beta_2,
                       double correction1, double correction2) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating>(-lr), eps = <floating>epsilon
    cdef floating b1 = <floating>beta_1, one_minus_b1 = <floating>(1 - beta_1)
    cdef floating b2 = <floating>beta_2, one_minus_b2 = <floating>(1 - beta_2)
    cdef floating c1 = <floating>correction1, c2 = <floating>correction2
    cdef floating g
    if floating is float:
        if 0 < c1 <= 1 and 0 < c2 <= 1 and fastnn_adam_f32_avx512(
                param, grad, m, v, n, neg_lr, eps, b1, one_minus_b1, b2, one_minus_b2,
                1.0 / <double>c1, 1.0 / <double>c2):
            return
    for i in range(n):
        g = grad[i]
        m[i] = _flush(b1 * m[i] + one_minus_b1 * g)
        v[i] = _flush(b2 * v[i] + one_minus_b2 * (g * g))
        param[i] += neg_lr * (m[i] / c1) / (_sqrt(v[i] / c2) + eps)


# =============================================================================================
# Entry points: one call per layer, on its __dict__ (weights/biases, their gradients and their
# state, under the book's names). Every array is checked before anything is written, so a
# rejected call leaves the layer as it was. The methods are C constants and (cpdef) Python
# attributes of this module: fastnn/optimizers.py passes _optimizers.ADAM etc.

cpdef enum:
    SGD = 0
    SGD_MOMENTUM = 1
    ADAGRAD = 2
    RMSPROP = 3
    ADAM = 4

# What update_layer returns (_status.pxi): OK, or the status of the first layer array that stopped
# it, nothing written: missing, or not of one float dtype and shape with its parameter in C order
# (writeable, but for a gradient). The caller builds the message (fastnn/optimizers.py, through
# fastnn._validation) from REFUSED[status]: the attribute's name and that of the parameter it must
# match (None for a parameter itself).
REFUSED = {
    BAD_WEIGHTS: ("weights", None),
    BAD_DWEIGHTS: ("dweights", "weights"),
    BAD_WEIGHT_MOMENTUMS: ("weight_momentums", "weights"),
    BAD_WEIGHT_CACHE: ("weight_cache", "weights"),
    BAD_BIASES: ("biases", None),
    BAD_DBIASES: ("dbiases", "biases"),
    BAD_BIAS_MOMENTUMS: ("bias_momentums", "biases"),
    BAD_BIAS_CACHE: ("bias_cache", "biases"),
}
_STATUS = {name: status for status, (name, _) in REFUSED.items()}

# Names of the state arrays each method keeps on the layer, for weights and for biases.
_STATE = {
    SGD: ((), ()),
    SGD_MOMENTUM: (("weight_momentums",), ("bias_momentums",)),
    ADAGRAD: (("weight_cache",), ("bias_cache",)),
    RMSPROP: (("weight_cache",), ("bias_cache",)),
    ADAM: (("weight_momentums", "weight_cache"), ("bias_momentums", "bias_cache")),
}


cdef str _check(dict layer, str param, str grad, tuple state):
    """None when layer[param], layer[grad] and each layer[state name] have the same float dtype,
    the same size and C order; else the name of the first that does not."""
    p = layer.get(param)
    if not (ready(p, cnp.NPY_FLOAT32) or ready(p, cnp.NPY_FLOAT64)) or not (<cnp.ndarray>p).flags.writeable:
        return param
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>p)
    for name in (grad,) + state:
        a = layer.get(name)
        if not ready(a, typenum) or not same_shape(<cnp.ndarray>a, <cnp.ndarray>p) or (
                name != grad and not (<cnp.ndarray>a).flags.writeable):
            return name
    return None


cdef void _apply(int method, int typenum, void* param, void* grad, void* s1, void* s2, Py_ssize_t n,
                 double lr, double epsilon, double a, double b, double c1, double c2) noexcept nogil:
    """One parameter array: a, b are momentum (SGD), rho (RMSprop) or beta_1, beta_2 (Adam)."""
    if typenum == cnp.NPY_FLOAT32:
        if method == SGD:
            _sgd(<float*>param, <float*>grad, n, lr)
        elif method == SGD_MOMENTUM:
            _sgd_momentum(<float*>param, <float*>grad, <float*>s1, n, lr, a)
        elif method == ADAGRAD:
            _adagrad(<float*>param, <float*>grad, <float*>s1, n, lr, epsilon)
        elif method == RMSPROP:
            _rmsprop(<float*>param, <float*>grad, <float*>s1, n, lr, epsilon, a)
        else:
            _adam(<float*>param, <float*>grad, <float*>s1, <float*>s2, n, lr, epsilon, a, b, c1, c2)
    else:
        if method == SGD:
            _sgd(<double*>param, <double*>grad, n, lr)
        elif method == SGD_MOMENTUM:
            _sgd_momentum(<double*>param, <double*>grad, <double*>s1, n, lr, a)
        elif method == ADAGRAD:
            _adagrad(<double*>param, <double*>grad, <double*>s1, n, lr, epsilon)
        elif method == RMSPROP:
            _rmsprop(<double*>param, <double*>grad, <double*>s1, n, lr, epsilon, a)
        else:
            _adam(<double*>param, <double*>grad, <double*>s1, <double*>s2, n, lr, epsilon, a, b, c1, c2)


# Large parameter arrays are updated in chunks split over OpenMP threads (the thread policy of
# _threads.pyx, which counts work in GEMM multiply-adds: one value's update counts as _VALUE_WORK,
# so a 1024x1024 layer takes two threads and MNIST's 784x128 one). Every value is updated by the
# same formula whichever thread runs it, so the results do not depend on the thread count. The
# update is bound by memory and the divider, both per core: measured on the 2-core VM, Adam on a
# 1024x1024 layer, 2 threads against 1: see the CHANGELOG.
cdef enum:
    _VALUE_WORK = 8
    _CHUNK = 65536          # values per chunk: a multiple of any vector width


cdef void _apply_threads(int method, int typenum, void* param, void* grad, void* s1, void* s2, Py_ssize_t n,
                         double lr, double epsilon, double a, double b, double c1, double c2,
                         int n_threads) noexcept nogil:
    cdef Py_ssize_t n_chunks = (n + _CHUNK - 1) // _CHUNK, c, start, length
    cdef Py_ssize_t size = 4 if typenum == cnp.NPY_FLOAT32 else 8
    if n_threads <= 1 or n_chunks <= 1:
        _apply(method, typenum, param, grad, s1, s2, n, lr, epsilon, a, b, c1, c2)
        return
    for c in prange(n_chunks, num_threads=n_threads, schedule="static"):
        start = c * _CHUNK
        length = n - start if n - start < _CHUNK else _CHUNK
        _apply(method, typenum, <char*>param + start * size, <char*>grad + start * size,
               NULL if s1 == NULL else <char*>s1 + start * size, NULL if s2 == NULL else <char*>s2 + start * size,
               length, lr, epsilon, a, b, c1, c2)


cdef inline void* _state_pointer(dict layer, tuple names, int i):
    return data(<cnp.ndarray>layer[names[i]]) if len(names) > i else NULL


def update_layer(int method, dict layer, double lr, double epsilon=0, double a=0, double b=0,
                 double correction1=1, double correction2=1):
    """Update layer['weights'] and layer['biases'] in place with `method` (SGD, SGD_MOMENTUM,
    ADAGRAD, RMSPROP or ADAM); see the kernels above for a, b, correction1/2. Returns OK, or the
    status of the array that stopped it (see REFUSED)."""
    if method < SGD or method > ADAM:
        raise ValueError(f"unknown optimizer method {method}")
    weight_state, bias_state = _STATE[method]
    refused = _check(layer, "weights", "dweights", weight_state)
    if refused is None:
        refused = _check(layer, "biases", "dbiases", bias_state)
    if refused is not None:
        return _STATUS[refused]
    cdef cnp.ndarray w = layer["weights"], dw = layer["dweights"]
    cdef cnp.ndarray bias = layer["biases"], db = layer["dbiases"]
    cdef int wt = cnp.PyArray_TYPE(w), bt = cnp.PyArray_TYPE(bias)
    cdef Py_ssize_t nw = cnp.PyArray_SIZE(w), nb = cnp.PyArray_SIZE(bias)
    cdef void* pw = data(w)
    cdef void* pdw = data(dw)
    cdef void* pw1 = _state_pointer(layer, weight_state, 0)
    cdef void* pw2 = _state_pointer(layer, weight_state, 1)
    cdef void* pb = data(bias)
    cdef void* pdb = data(db)
    cdef void* pb1 = _state_pointer(layer, bias_state, 0)
    cdef void* pb2 = _state_pointer(layer, bias_state, 1)
    cdef int n_threads = threads_for_work(nw * _VALUE_WORK, (nw + _CHUNK - 1) // _CHUNK)
    with nogil:
        _apply_threads(method, wt, pw, pdw, pw1, pw2, nw, lr, epsilon, a, b, correction1, correction2, n_threads)
        _apply(method, bt, pb, pdb, pb1, pb2, nb, lr, epsilon, a, b, correction1, correction2)
    return _OK
