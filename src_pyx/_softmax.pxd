# Softmax forward, shared by Activation_Softmax (_activations.pyx) and the Model's fused softmax +
# cross-entropy step (_losses.pyx), so both paths give bit-identical outputs.
from libc.math cimport exp
from cython cimport floating

from _common cimport fastnn_expf


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return fastnn_expf(x)
    else:
        return exp(x)


cdef inline floating _row_max(const floating* x, Py_ssize_t n) noexcept nogil:
    # Four running maxima, so the comparisons do not wait on each other.
    cdef floating m0 = x[0], m1 = x[0], m2 = x[0], m3 = x[0], v
    cdef Py_ssize_t j = 0
    while j + 4 <= n:
        m0 = x[j] if x[j] > m0 else m0
        m1 = x[j + 1] if x[j + 1] > m1 else m1
        m2 = x[j + 2] if x[j + 2] > m2 else m2
        m3 = x[j + 3] if x[j + 3] > m3 else m3
        j += 4
    while j < n:
        m0 = x[j] if x[j] > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


cdef inline double _row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    # Four double accumulators: the order of a sum is fixed without -ffast-math, so one
    # accumulator would make every add wait for the previous one.
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j = 0
    while j + 4 <= n:
        s0 += x[j]
        s1 += x[j + 1]
        s2 += x[j + 2]
        s3 += x[j + 3]
        j += 4
    while j < n:
        s0 += x[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


# Three passes so the exponentials run as one long vectorised loop over the whole matrix (with few
# classes, per-row loops would spend their time starting and stopping): shift each row by its max,
# exponentiate everything, divide each row by its sum.
cdef inline void _softmax_forward(const floating* inputs, floating* output, Py_ssize_t n_samples,
                                  Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating row_max, denominator
    cdef const floating* x
    cdef floating* out
    for i in range(n_samples):
        x = inputs + i * n_classes
        out = output + i * n_classes
        row_max = _row_max(x, n_classes)
        for j in range(n_classes):
            out[j] = x[j] - row_max
    for i in range(n_samples * n_classes):
        output[i] = _exp(output[i])
    for i in range(n_samples):
        out = output + i * n_classes
        denominator = <floating>_row_sum(out, n_classes)
        for j in range(n_classes):
            out[j] = out[j] / denominator
