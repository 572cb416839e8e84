# Categorical accuracy straight from class scores: the number of rows whose argmax (the first
# maximum, as np.argmax) equals the label. Used by _accuracy.pyx and _fused_head.pyx; no .pyx sits
# behind this file: everything here is inline.
from cython cimport floating

from _labels cimport label_t


cdef inline Py_ssize_t _argmax_matches(const floating* scores, const label_t* labels, Py_ssize_t n_samples,
                                       Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i, j, best, correct = 0
    cdef const floating* row
    cdef floating top, v
    cdef bint take
    for i in range(n_samples):
        row = scores + i * n_classes
        best = 0
        top = row[0]
        for j in range(1, n_classes):
            # The running maximum stays in a register and both updates are selects (x86's maxss and
            # cmov): a branch on the comparison mispredicts on every new maximum of real scores.
            # A NaN counts as the maximum, the first one winning, as in np.argmax: it replaces a
            # number (v != v) and nothing replaces it (top != top makes both tests false).
            v = row[j]
            take = v > top or (v != v and top == top)
            best = j if take else best
            top = v if take else top
        correct += best == labels[i]
    return correct
