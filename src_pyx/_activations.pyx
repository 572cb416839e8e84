"""Activation kernels: ReLU, Sigmoid, Softmax, Linear and Tanh, each backward next to its forward.

Two entry points, forward() and backward(), run one activation on an object's state dict (see
_common.pxd). Shapes: inputs/output/dvalues/dinputs are (n_samples, n_neurons) for Softmax and any
shape for the elementwise ReLU, Sigmoid, Linear and Tanh, which see flat arrays of `n` elements.
"""
from libc.math cimport tanh, tanhf
from libc.string cimport memcpy

cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, ready_float, ready_like, reuse_like
from _softmax cimport _exp, _softmax_forward


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
        if floating is float:
            output[i] = tanhf(inputs[i])
        else:
            output[i] = tanh(inputs[i])


cdef inline void _tanh_backward(const floating* dvalues, const floating* output, floating* dinputs,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    for i in range(n):
        dinputs[i] = dvalues[i] * (one - output[i] * output[i])


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
# Entry points. The activation kinds are C constants of this module and, being cpdef, its
# Python attributes as well: fastnn/activations.py passes _activations.RELU etc.

cpdef enum:
    RELU = 0
    SIGMOID = 1
    SOFTMAX = 2
    LINEAR = 3
    TANH = 4


def forward(int kind, dict state, object inputs):
    """Forward of ReLU, Sigmoid, Softmax or Tanh (the kind constants) on an object's __dict__: sets `inputs` and
    `output`. False, changing nothing, when inputs is not a C-contiguous float32/float64 array
    (2-D for Softmax)."""
    if not ready_float(inputs):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if kind == SOFTMAX and x.ndim != 2:
        return False
    cdef cnp.ndarray output = reuse_like(state, "output", x, x, None)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t rows = x.shape[0] if x.ndim > 0 else 1
    cdef Py_ssize_t columns = n // rows if rows > 0 else 0
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    with nogil:
        if kind == RELU:
            if f32:
                _relu_forward(<float*>p_x, <float*>p_out, n)
            else:
                _relu_forward(<double*>p_x, <double*>p_out, n)
        elif kind == SIGMOID:
            if f32:
                _sigmoid_forward(<float*>p_x, <float*>p_out, n)
            else:
                _sigmoid_forward(<double*>p_x, <double*>p_out, n)
        elif kind == TANH:
            if f32:
                _tanh_forward(<float*>p_x, <float*>p_out, n)
            else:
                _tanh_forward(<double*>p_x, <double*>p_out, n)
        elif columns > 0:
            if f32:
                _softmax_forward(<float*>p_x, <float*>p_out, rows, columns)
            else:
                _softmax_forward(<double*>p_x, <double*>p_out, rows, columns)
    state["inputs"] = x
    return True


def backward(int kind, dict state, object dvalues):
    """Backward of ReLU, Sigmoid, Softmax, Linear or Tanh (the kind constants) on an object's __dict__: sets
    `dinputs`. False, changing nothing, when dvalues is not a C-contiguous array of the forward's
    shape and dtype."""
    cdef object saved = state.get("output" if kind == SIGMOID or kind == SOFTMAX or kind == TANH else "inputs")
    if not ready_float(saved) or not ready_like(dvalues, <cnp.ndarray>saved):
        return False
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues, s = <cnp.ndarray>saved
    cdef cnp.ndarray dinputs = reuse_like(state, "dinputs", dv, dv, s)
    cdef bint f32 = cnp.PyArray_TYPE(dv) == cnp.NPY_FLOAT32
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dv)
    cdef Py_ssize_t rows = dv.shape[0] if dv.ndim > 0 else 1
    cdef Py_ssize_t columns = n // rows if rows > 0 else 0
    cdef void* p_dv = data(dv)
    cdef void* p_s = data(s)
    cdef void* p_dx = data(dinputs)
    cdef size_t nbytes = cnp.PyArray_NBYTES(dv)
    with nogil:
        if kind == RELU:
            if f32:
                _relu_backward(<float*>p_dv, <float*>p_s, <float*>p_dx, n)
            else:
                _relu_backward(<double*>p_dv, <double*>p_s, <double*>p_dx, n)
        elif kind == SIGMOID:
            if f32:
                _sigmoid_backward(<float*>p_dv, <float*>p_s, <float*>p_dx, n)
            else:
                _sigmoid_backward(<double*>p_dv, <double*>p_s, <double*>p_dx, n)
        elif kind == TANH:
            if f32:
                _tanh_backward(<float*>p_dv, <float*>p_s, <float*>p_dx, n)
            else:
                _tanh_backward(<double*>p_dv, <double*>p_s, <double*>p_dx, n)
        elif kind == SOFTMAX:
            if f32:
                _softmax_backward(<float*>p_dv, <float*>p_s, <float*>p_dx, rows, columns)
            else:
                _softmax_backward(<double*>p_dv, <double*>p_s, <double*>p_dx, rows, columns)
        else:
            # Linear: the identity's gradient is dvalues itself (copied, as the book does).
            memcpy(p_dx, p_dv, nbytes)
    return True
