"""Activation kernels: ReLU, Sigmoid, Softmax, Linear, Tanh, LeakyReLU and GELU (exact and tanh
form), each backward next to its forward.

Two entry points, forward() and backward(), run one activation on an object's state dict (see
_common.pxd). Shapes: inputs/output/dvalues/dinputs are (n_samples, n_neurons) for Softmax and any
shape for the elementwise others, which see flat arrays of `n` elements.
"""
from libc.math cimport erf, tanh, tanhf
from libc.string cimport memcpy

cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport prange

from _common cimport data, fastnn_erff, ready_float, ready_like, reuse_like
from _softmax cimport _exp, _softmax_forward
from fastnn._ext._threads cimport threads_for_work

# The activation kinds: C constants of this module and, being cpdef, its Python attributes as
# well: fastnn/activations.py passes _activations.RELU etc.
cpdef enum:
    RELU = 0
    SIGMOID = 1
    SOFTMAX = 2
    LINEAR = 3
    TANH = 4
    LEAKY_RELU = 5
    GELU = 6          # the exact form, with erf
    GELU_TANH = 7     # the tanh approximation


# erf: fastnn_erff (_common.pxd, a vectorisable polynomial) for float32, libm's erf for float64.
cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return fastnn_erff(x)
    else:
        return erf(x)


# tanh(u) and 1 - tanh(u)^2 of the GELU tanh form. float32: from e = exp(-2|u|) (the vectorisable
# fastnn_expf, never overflowing), tanh|u| = (1 - e) / (1 + e) and 1 - tanh^2 = 4e / (1 + e)^2,
# which does not cancel where tanh nears 1; float64: libm's tanh and PyTorch's 1 - tanh^2.
cdef inline floating _gelu_tanh(floating u) noexcept nogil:
    cdef floating e, one = 1, two = 2
    if floating is float:
        e = _exp(-two * (u if u >= 0 else -u))
        return ((one - e) / (one + e)) if u >= 0 else -((one - e) / (one + e))
    else:
        return tanh(u)


cdef inline floating _gelu_sech2(floating u, floating t) noexcept nogil:
    cdef floating e, one = 1, two = 2, four = 4
    if floating is float:
        e = _exp(-two * (u if u >= 0 else -u))
        return four * e / ((one + e) * (one + e))
    else:
        return one - t * t


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


# ---------------------------------------------------------------------------------------------
# ReLU: output = max(0, x). The book's np.maximum(0, x) lets NaN through, and so does this loop
# (NaN <= 0 is false), so a NaN is never hidden.

cdef inline void _relu_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x
    for i in range(n):
        x = inputs[i]
        output[i] = 0 if x <= 0 else x


# The book copies dvalues and zeroes it where inputs <= 0: the gradient at exactly 0 is 0.
cdef inline void _relu_backward(const floating* dvalues, const floating* inputs, floating* dinputs,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, d
    for i in range(n):
        # Both loads before the select, so the compiler may vectorise it (a load inside one
        # branch cannot be speculated).
        x = inputs[i]
        d = dvalues[i]
        dinputs[i] = 0 if x <= 0 else d


# ---------------------------------------------------------------------------------------------
# Sigmoid: 1 / (1 + exp(-x)). For x < 0 the equal form exp(x) / (1 + exp(x)) is used, so exp never
# overflows (the book's form warns "overflow in exp" for large negative x and returns 0, which
# this form returns too once exp(x) underflows).

cdef inline void _sigmoid_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, e
    cdef floating one = 1  # typed: a bare 1 would make Cython compute in double
    for i in range(n):
        # e = exp(-|x|) <= 1, so nothing overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below.
        # One division with a selected numerator keeps the loop branch-free and vectorised.
        x = inputs[i]
        e = _exp(-x if x >= 0 else x)
        output[i] = (one if x >= 0 else e) / (one + e)


# Same operation order as the book: dvalues * (1 - output) * output, in the data's dtype. The
# constant is typed: Cython writes an integer literal in a floating expression as a C double
# (1.0), which would evaluate the whole float32 expression in double and round once at the end.
cdef inline void _sigmoid_backward(const floating* dvalues, const floating* output, floating* dinputs,
                                   Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    for i in range(n):
        dinputs[i] = dvalues[i] * (one - output[i]) * output[i]


# ---------------------------------------------------------------------------------------------
# Tanh: libm's tanh in the data's dtype (tanhf for float32); the gradient from the output, as the
# reference and PyTorch: dvalues * (1 - output^2), in the data's dtype.

cdef inline void _tanh_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        output[i] = _tanh(inputs[i])


cdef inline void _tanh_backward(const floating* dvalues, const floating* output, floating* dinputs,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    for i in range(n):
        dinputs[i] = dvalues[i] * (one - output[i] * output[i])


# ---------------------------------------------------------------------------------------------
# LeakyReLU: PyTorch's x > 0 ? x : x * alpha and, backward, dvalues > 0 ? ... : dvalues * alpha, with
# alpha rounded to the data's dtype first; NaN takes the alpha branch and stays NaN.

cdef inline void _leaky_relu_forward(const floating* inputs, floating* output, Py_ssize_t n,
                                     floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x
    for i in range(n):
        x = inputs[i]
        output[i] = x if x > 0 else x * alpha


cdef inline void _leaky_relu_backward(const floating* dvalues, const floating* inputs, floating* dinputs,
                                      Py_ssize_t n, floating alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, d
    for i in range(n):
        x = inputs[i]
        d = dvalues[i]
        dinputs[i] = d if x > 0 else d * alpha


# ---------------------------------------------------------------------------------------------
# GELU, PyTorch's formulas, operation order and constants, in the data's dtype (float32: erf and
# tanh from vectorisable polynomials, above):
#   exact   y = x * 0.5 * (1 + erf(x / sqrt 2))
#           dy/dx = 0.5 * (1 + erf(x / sqrt 2)) + x * exp(-x^2 / 2) / sqrt(2 pi)
#   tanh    u = sqrt(2 / pi) * (x + 0.044715 x^3),  y = 0.5 * x * (1 + tanh u)
#           dy/dx = 0.5 * (1 + tanh u) + 0.5 * x * (1 - tanh^2 u) * sqrt(2 / pi) * (1 + 3 * 0.044715 x^2)

cdef inline void _gelu_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, half = 0.5, one = 1, alpha = 0.70710678118654752440
    for i in range(n):
        x = inputs[i]
        output[i] = x * half * (one + _erf(x * alpha))


cdef inline void _gelu_backward(const floating* dvalues, const floating* inputs, floating* dinputs,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, cdf, pdf, half = 0.5, one = 1
    cdef floating alpha = 0.70710678118654752440, beta = 0.39894228040143267794
    for i in range(n):
        x = inputs[i]
        cdf = half * (one + _erf(x * alpha))
        pdf = beta * _exp(x * x * -half)
        dinputs[i] = dvalues[i] * (cdf + x * pdf)


cdef inline void _gelu_tanh_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, inner, half = 0.5, one = 1, beta = 0.79788456080286535588, kappa = 0.044715
    for i in range(n):
        x = inputs[i]
        inner = beta * (x + kappa * (x * x * x))
        output[i] = half * x * (one + _gelu_tanh(inner))


cdef inline void _gelu_tanh_backward(const floating* dvalues, const floating* inputs, floating* dinputs,
                                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, x_sq, u, t, half = 0.5, one = 1, three = 3
    cdef floating beta = 0.79788456080286535588, kappa = 0.044715
    for i in range(n):
        x = inputs[i]
        x_sq = x * x
        u = beta * (x + kappa * (x_sq * x))
        t = _gelu_tanh(u)
        dinputs[i] = dvalues[i] * (half * (one + t) + half * x * _gelu_sech2(u, t) * (beta * (one + three * kappa * x_sq)))


# ---------------------------------------------------------------------------------------------
# Softmax forward: _softmax.pxd (shared with the fused softmax + cross-entropy step in _losses).

# The book multiplies each row of dvalues by the Jacobian diag(s) - s s^T. Written out, row i of
# dinputs is s * (d - dot(s, d)): the same value in O(n_classes) instead of O(n_classes^2).
cdef inline void _softmax_backward(const floating* dvalues, const floating* output, floating* dinputs,
                                   Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef double dot
    cdef const floating* s
    cdef const floating* d
    for i in range(n_samples):
        s = output + i * n_classes
        d = dvalues + i * n_classes
        dot = 0
        for j in range(n_classes):
            dot += <double>s[j] * d[j]
        for j in range(n_classes):
            dinputs[i * n_classes + j] = <floating>(s[j] * (d[j] - dot))


# =============================================================================================
# One kind on raw pointers of one dtype; the entry points below pick the dtype.

cdef inline void _forward(int kind, const floating* x, floating* out, Py_ssize_t n, Py_ssize_t rows,
                          Py_ssize_t columns, floating alpha) noexcept nogil:
    if kind == RELU:
        _relu_forward(x, out, n)
    elif kind == SIGMOID:
        _sigmoid_forward(x, out, n)
    elif kind == TANH:
        _tanh_forward(x, out, n)
    elif kind == LEAKY_RELU:
        _leaky_relu_forward(x, out, n, alpha)
    elif kind == GELU:
        _gelu_forward(x, out, n)
    elif kind == GELU_TANH:
        _gelu_tanh_forward(x, out, n)
    elif columns > 0:
        _softmax_forward(x, out, rows, columns)


cdef inline void _backward(int kind, const floating* dv, const floating* saved, floating* dx, Py_ssize_t n,
                           Py_ssize_t rows, Py_ssize_t columns, floating alpha) noexcept nogil:
    if kind == RELU:
        _relu_backward(dv, saved, dx, n)
    elif kind == SIGMOID:
        _sigmoid_backward(dv, saved, dx, n)
    elif kind == TANH:
        _tanh_backward(dv, saved, dx, n)
    elif kind == LEAKY_RELU:
        _leaky_relu_backward(dv, saved, dx, n, alpha)
    elif kind == GELU:
        _gelu_backward(dv, saved, dx, n)
    elif kind == GELU_TANH:
        _gelu_tanh_backward(dv, saved, dx, n)
    elif kind == SOFTMAX:
        _softmax_backward(dv, saved, dx, rows, columns)
    else:
        # Linear: the identity's gradient is dvalues itself (copied, as the book does).
        memcpy(dx, dv, n * sizeof(floating))


# Large arrays of the elementwise kinds are split into chunks over the OpenMP team (the thread
# policy of _threads.pyx, which counts work in GEMM multiply-adds: one value's pass counts as
# _PASS_WORK; a CNN's convolution outputs are millions of values). Every value gets the same
# formula whichever thread runs it. Softmax runs on the calling thread.
cdef enum:
    _PASS_WORK = 8
    _CHUNK = 65536          # values per chunk: a multiple of any vector width


cdef inline int _threads_for(int kind, Py_ssize_t n) noexcept:
    if kind == SOFTMAX or n <= _CHUNK:
        return 1
    return threads_for_work(_PASS_WORK * n, (n + _CHUNK - 1) // _CHUNK)


cdef void _forward_threads(int kind, const floating* x, floating* out, Py_ssize_t n, Py_ssize_t rows,
                           Py_ssize_t columns, floating alpha, int n_threads) noexcept nogil:
    cdef Py_ssize_t c, start
    if n_threads <= 1:
        _forward(kind, x, out, n, rows, columns, alpha)
        return
    for c in prange((n + _CHUNK - 1) // _CHUNK, num_threads=n_threads, schedule="static"):
        start = c * _CHUNK
        _forward(kind, x + start, out + start, n - start if n - start < _CHUNK else _CHUNK, 0, 0, alpha)


cdef void _backward_threads(int kind, const floating* dv, const floating* saved, floating* dx, Py_ssize_t n,
                            Py_ssize_t rows, Py_ssize_t columns, floating alpha, int n_threads) noexcept nogil:
    cdef Py_ssize_t c, start
    if n_threads <= 1:
        _backward(kind, dv, saved, dx, n, rows, columns, alpha)
        return
    for c in prange((n + _CHUNK - 1) // _CHUNK, num_threads=n_threads, schedule="static"):
        start = c * _CHUNK
        _backward(kind, dv + start, saved + start, dx + start, n - start if n - start < _CHUNK else _CHUNK,
                  0, 0, alpha)


# =============================================================================================
# Entry points. LeakyReLU reads its slope from the object's `alpha`.

def forward(int kind, dict state, object inputs):
    """Forward of one activation (the kind constants) on an object's __dict__: sets `inputs` and
    `output`. False, changing nothing, when inputs is not a C-contiguous float32/float64 array
    (2-D for Softmax)."""
    if not ready_float(inputs):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if kind == SOFTMAX and x.ndim != 2:
        return False
    cdef double alpha = state["alpha"] if kind == LEAKY_RELU else 0
    cdef cnp.ndarray output = reuse_like(state, "output", x, x, None)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t rows = x.shape[0] if x.ndim > 0 else 1
    cdef Py_ssize_t columns = n // rows if rows > 0 else 0
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    cdef int n_threads = _threads_for(kind, n)
    with nogil:
        if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
            _forward_threads(kind, <float*>p_x, <float*>p_out, n, rows, columns, <float>alpha, n_threads)
        else:
            _forward_threads(kind, <double*>p_x, <double*>p_out, n, rows, columns, alpha, n_threads)
    state["inputs"] = x
    return True


def backward(int kind, dict state, object dvalues):
    """Backward of one activation (the kind constants) on an object's __dict__: sets `dinputs`.
    False, changing nothing, when dvalues is not a C-contiguous array of the forward's shape and
    dtype."""
    cdef object saved = state.get("output" if kind == SIGMOID or kind == SOFTMAX or kind == TANH else "inputs")
    if not ready_float(saved) or not ready_like(dvalues, <cnp.ndarray>saved):
        return False
    cdef double alpha = state["alpha"] if kind == LEAKY_RELU else 0
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues, s = <cnp.ndarray>saved
    cdef cnp.ndarray dinputs = reuse_like(state, "dinputs", dv, dv, s)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dv)
    cdef Py_ssize_t rows = dv.shape[0] if dv.ndim > 0 else 1
    cdef Py_ssize_t columns = n // rows if rows > 0 else 0
    cdef void* p_dv = data(dv)
    cdef void* p_s = data(s)
    cdef void* p_dx = data(dinputs)
    cdef int n_threads = _threads_for(kind, n)
    with nogil:
        if cnp.PyArray_TYPE(dv) == cnp.NPY_FLOAT32:
            _backward_threads(kind, <float*>p_dv, <float*>p_s, <float*>p_dx, n, rows, columns, <float>alpha,
                              n_threads)
        else:
            _backward_threads(kind, <double*>p_dv, <double*>p_s, <double*>p_dx, n, rows, columns, alpha,
                              n_threads)
    return True
