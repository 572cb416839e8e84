"""Activation kernels: ReLU, Sigmoid, Softmax and Linear, each backward next to its forward.

Every entry point takes C-contiguous float32 or float64 arrays of one dtype that the Python layer
(fastnn/activations.py) has validated, and writes into the caller's (reused) output buffer.
Shapes: inputs/outputs/dvalues/dinputs are (n_samples, n_neurons); elementwise kernels see them
as flat arrays of `n` elements.
"""
from libc.math cimport exp, expf
from libc.string cimport memcpy

cimport numpy as cnp
from cython cimport floating

from _common cimport data, is_f32, require, require_like


# ---------------------------------------------------------------------------------------------
# ReLU: output = max(0, x). The book's np.maximum(0, x) lets NaN through, and so does this loop
# (NaN <= 0 is false), so a NaN is never hidden.

cdef inline void _relu_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        output[i] = 0 if inputs[i] <= 0 else inputs[i]


# The book copies dvalues and zeroes it where inputs <= 0: the gradient at exactly 0 is 0.
cdef inline void _relu_backward(const floating* dvalues, const floating* inputs, floating* dinputs,
                                Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dinputs[i] = 0 if inputs[i] <= 0 else dvalues[i]


def relu_forward(cnp.ndarray inputs, cnp.ndarray output):
    """output[...] = max(0, inputs), elementwise."""
    require_like(inputs, output)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(inputs)
    cdef bint f32 = is_f32(inputs)
    cdef void* p_inputs = data(inputs)
    cdef void* p_output = data(output)
    with nogil:
        if f32:
            _relu_forward(<float*>p_inputs, <float*>p_output, n)
        else:
            _relu_forward(<double*>p_inputs, <double*>p_output, n)


def relu_backward(cnp.ndarray dvalues, cnp.ndarray inputs, cnp.ndarray dinputs):
    """dinputs[...] = dvalues where inputs > 0, else 0."""
    require_like(dvalues, inputs)
    require_like(dvalues, dinputs)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dvalues)
    cdef bint f32 = is_f32(dvalues)
    cdef void* p_dvalues = data(dvalues)
    cdef void* p_inputs = data(inputs)
    cdef void* p_dinputs = data(dinputs)
    with nogil:
        if f32:
            _relu_backward(<float*>p_dvalues, <float*>p_inputs, <float*>p_dinputs, n)
        else:
            _relu_backward(<double*>p_dvalues, <double*>p_inputs, <double*>p_dinputs, n)


# ---------------------------------------------------------------------------------------------
# Sigmoid: 1 / (1 + exp(-x)). For x < 0 the equal form exp(x) / (1 + exp(x)) is used, so exp never
# overflows (the book's form warns "overflow in exp" for large negative x and returns 0, which
# this form returns too once exp(x) underflows).

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline void _sigmoid_forward(const floating* inputs, floating* output, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, e
    for i in range(n):
        x = inputs[i]
        if x >= 0:
            output[i] = 1 / (1 + _exp(-x))
        else:
            e = _exp(x)
            output[i] = e / (1 + e)


# Same operation order as the book: dvalues * (1 - output) * output.
cdef inline void _sigmoid_backward(const floating* dvalues, const floating* output, floating* dinputs,
                                   Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dinputs[i] = dvalues[i] * (1 - output[i]) * output[i]


def sigmoid_forward(cnp.ndarray inputs, cnp.ndarray output):
    """output[...] = 1 / (1 + exp(-inputs)), elementwise, without overflow."""
    require_like(inputs, output)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(inputs)
    cdef bint f32 = is_f32(inputs)
    cdef void* p_inputs = data(inputs)
    cdef void* p_output = data(output)
    with nogil:
        if f32:
            _sigmoid_forward(<float*>p_inputs, <float*>p_output, n)
        else:
            _sigmoid_forward(<double*>p_inputs, <double*>p_output, n)


def sigmoid_backward(cnp.ndarray dvalues, cnp.ndarray output, cnp.ndarray dinputs):
    """dinputs[...] = dvalues * (1 - output) * output, where output is the forward's result."""
    require_like(dvalues, output)
    require_like(dvalues, dinputs)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(dvalues)
    cdef bint f32 = is_f32(dvalues)
    cdef void* p_dvalues = data(dvalues)
    cdef void* p_output = data(output)
    cdef void* p_dinputs = data(dinputs)
    with nogil:
        if f32:
            _sigmoid_backward(<float*>p_dvalues, <float*>p_output, <float*>p_dinputs, n)
        else:
            _sigmoid_backward(<double*>p_dvalues, <double*>p_output, <double*>p_dinputs, n)


# ---------------------------------------------------------------------------------------------
# Softmax over each row of (n_samples, n_classes): shift by the row max (so exp never overflows),
# exponentiate, divide by the row sum. The sum accumulates in double.

cdef inline void _softmax_row(const floating* x, floating* out, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating row_max = x[0]
    cdef double total = 0
    for j in range(1, n_classes):
        if x[j] > row_max:
            row_max = x[j]
    for j in range(n_classes):
        out[j] = _exp(x[j] - row_max)
        total += out[j]
    cdef floating denominator = <floating>total
    for j in range(n_classes):
        out[j] = out[j] / denominator


cdef inline void _softmax_forward(const floating* inputs, floating* output, Py_ssize_t n_samples,
                                  Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n_samples):
        _softmax_row(inputs + i * n_classes, output + i * n_classes, n_classes)


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


def softmax_forward(cnp.ndarray inputs, cnp.ndarray output):
    """Row-wise softmax of a 2-D (n_samples, n_classes) array into output."""
    require_like(inputs, output)
    require(inputs.ndim == 2 and output.ndim == 2, "softmax needs 2-D arrays")
    cdef Py_ssize_t n = inputs.shape[0], c = inputs.shape[1]
    if c == 0:
        return
    cdef bint f32 = is_f32(inputs)
    cdef void* p_inputs = data(inputs)
    cdef void* p_output = data(output)
    with nogil:
        if f32:
            _softmax_forward(<float*>p_inputs, <float*>p_output, n, c)
        else:
            _softmax_forward(<double*>p_inputs, <double*>p_output, n, c)


def softmax_backward(cnp.ndarray dvalues, cnp.ndarray output, cnp.ndarray dinputs):
    """dinputs = the softmax Jacobian (from output) applied to each row of dvalues."""
    require_like(dvalues, output)
    require_like(dvalues, dinputs)
    require(dvalues.ndim == 2, "softmax needs 2-D arrays")
    cdef Py_ssize_t n = dvalues.shape[0], c = dvalues.shape[1]
    cdef bint f32 = is_f32(dvalues)
    cdef void* p_dvalues = data(dvalues)
    cdef void* p_output = data(output)
    cdef void* p_dinputs = data(dinputs)
    with nogil:
        if f32:
            _softmax_backward(<float*>p_dvalues, <float*>p_output, <float*>p_dinputs, n, c)
        else:
            _softmax_backward(<double*>p_dvalues, <double*>p_output, <double*>p_dinputs, n, c)


# ---------------------------------------------------------------------------------------------
# Linear: the forward is the identity (the book hands back the same object); the backward copies.

def copy_into(cnp.ndarray source, cnp.ndarray destination):
    """destination[...] = source (same dtype, size, C order): Linear's backward."""
    require_like(source, destination)
    cdef size_t nbytes = cnp.PyArray_NBYTES(source)
    cdef void* p_destination = data(destination)
    cdef void* p_source = data(source)
    with nogil:
        memcpy(p_destination, p_source, nbytes)
