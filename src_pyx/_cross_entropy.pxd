# The cross-entropy kernels: categorical cross-entropy (sparse and one-hot labels) and its
# backward, the backward of softmax + categorical cross-entropy, and the clipping and log that
# binary cross-entropy shares with them. Used by _losses.pyx and _fused_head.pyx; no .pyx sits
# behind this file: everything here is inline.
#
# Per-element values are computed in the data's dtype, in the book's order of operations; sums
# accumulate in double. Constants inside per-element formulas are typed (`<floating>1`): Cython
# writes an integer literal in a floating expression as a C double (1.0), which would evaluate a
# float32 formula in double and round once at the end, not as NumPy does.
from libc.math cimport log, logf
from cython cimport floating

from _labels cimport label_t


# The book clips probabilities to [1e-7, 1 - 1e-7] before taking logs.
cdef inline floating _clip(floating p) noexcept nogil:
    cdef floating low = <floating>1e-7
    cdef floating high = <floating>(1 - 1e-7)
    if p < low:
        return low
    if p > high:
        return high
    return p


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


# ---------------------------------------------------------------------------------------------
# Categorical cross-entropy: loss_i = -log(clip(p_i[y_i])) (sparse) or
# -log(sum_j clip(p_ij) * y_ij) (one-hot).

cdef inline double _cce_sparse(const floating* y_pred, const label_t* y_true, floating* losses,
                               Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating loss
    cdef double total = 0
    for i in range(n_samples):
        loss = -_log(_clip(y_pred[i * n_classes + y_true[i]]))
        if losses != NULL:
            losses[i] = loss
        total += loss
    return total


cdef inline double _cce_onehot(const floating* y_pred, const floating* y_true, floating* losses,
                               Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating confidence, loss
    cdef double total = 0
    for i in range(n_samples):
        confidence = 0
        for j in range(n_classes):
            confidence = confidence + _clip(y_pred[i * n_classes + j]) * y_true[i * n_classes + j]
        loss = -_log(confidence)
        if losses != NULL:
            losses[i] = loss
        total += loss
    return total


# The book: dinputs = -y_true / dvalues / n_samples (one-hot; sparse labels go through np.eye),
# with no clipping. Entries whose target is 0 get 0 here even where dvalues is 0 (the book's
# -0/0 would be NaN there; the gradient of -0*log(p) is 0).
cdef inline void _cce_backward_sparse(const floating* dvalues, const label_t* y_true, floating* dinputs,
                                      Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating n = <floating>n_samples
    cdef floating minus_one = -1
    for i in range(n_samples * n_classes):
        dinputs[i] = 0
    for i in range(n_samples):
        j = i * n_classes + y_true[i]
        dinputs[j] = (minus_one / dvalues[j]) / n


cdef inline void _cce_backward_onehot(const floating* dvalues, const floating* y_true, floating* dinputs,
                                      Py_ssize_t n_samples, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating n = <floating>n_samples
    cdef floating y, d
    for i in range(n_samples * n_classes):
        y = y_true[i]
        d = dvalues[i]
        dinputs[i] = 0 if y == 0 else (-y / d) / n


# ---------------------------------------------------------------------------------------------
# Softmax + categorical cross-entropy, fused. Backward from the softmax output:
# dinputs = (softmax - onehot(y)) / n_samples, as the book's copy, subtract 1, divide.

cdef inline void _softmax_cce_backward_sparse(const floating* dvalues, const label_t* y_true,
                                              floating* dinputs, Py_ssize_t n_samples,
                                              Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating n = <floating>n_samples
    for i in range(n_samples):
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dvalues[i * n_classes + j]
        dinputs[i * n_classes + y_true[i]] -= 1
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dinputs[i * n_classes + j] / n


# One-hot targets: the book takes their argmax (the first maximum, as np.argmax), here row by row
# inside the loop, so no label array is allocated per call.
cdef inline void _softmax_cce_backward_onehot(const floating* dvalues, const floating* y_true,
                                              floating* dinputs, Py_ssize_t n_samples,
                                              Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j, best
    cdef floating n = <floating>n_samples
    for i in range(n_samples):
        best = 0
        for j in range(1, n_classes):
            if y_true[i * n_classes + j] > y_true[i * n_classes + best]:
                best = j
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dvalues[i * n_classes + j]
        dinputs[i * n_classes + best] -= 1
        for j in range(n_classes):
            dinputs[i * n_classes + j] = dinputs[i * n_classes + j] / n
