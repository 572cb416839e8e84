# Categorical accuracy straight from class scores: the number of rows whose argmax (the first
# maximum, as np.argmax) equals the label. Used by _accuracy.pyx and _fused_head.pyx; no .pyx sits
# behind this file: everything here is inline.
from cython cimport floating

from _labels cimport label_t


cdef inline Py_ssize_t _argmax_matches(const floating* scores, const label_t* labels, Py_ssize_t n_samples,
                                       Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j, best, correct = 0
    cdef const floating* row
    for i in range(n_samples):
        row = scores + i * n_classes
        best = 0
        for j in range(1, n_classes):
            if row[j] > row[best]:
                best = j
        correct += best == labels[i]
    return correct
