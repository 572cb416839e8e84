# The argument forms of the loss, accuracy and fused-head kernels (_losses, _accuracy, _fused_head):
# float predictions and class-id labels. No .pyx sits behind this file: everything here is inline.
#
# Class ids are uint8, int32 or int64 (np.intp), the label_t specialisations; an entry point reads
# the kind of a labels array at run time (label_kind) and the templates' dispatch() picks the
# specialisation from it (src_pyx/_templates.py).
from libc.stdint cimport int32_t, int64_t, uint8_t

cimport numpy as cnp

from _common cimport ready_float

ctypedef fused label_t:
    uint8_t
    int32_t
    int64_t


cdef enum:
    NOT_LABELS = 0
    U8 = 1
    I32 = 2
    I64 = 3


cdef inline bint float_matrix(object x) noexcept:
    """x is a ready (see _common.pxd) float32/float64 2-D array with at least one column."""
    return ready_float(x) and (<cnp.ndarray>x).ndim == 2 and (<cnp.ndarray>x).shape[1] > 0


cdef inline int label_kind(object y, Py_ssize_t n_samples) noexcept:
    """U8, I32 or I64 when y is a C-contiguous 1-D array of n_samples integers of that width in
    native byte order, else NOT_LABELS."""
    if not cnp.PyArray_CheckExact(y):
        return NOT_LABELS
    cdef cnp.ndarray a = <cnp.ndarray>y
    if a.ndim != 1 or a.shape[0] != n_samples or not cnp.PyArray_ISCARRAY_RO(a):
        return NOT_LABELS
    cdef int typenum = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(a)
    if cnp.PyTypeNum_ISUNSIGNED(typenum) and size == 1:
        return U8
    if cnp.PyTypeNum_ISSIGNED(typenum) and size == 4:
        return I32
    if cnp.PyTypeNum_ISSIGNED(typenum) and size == 8:
        return I64
    return NOT_LABELS


cdef inline bint _in_range(const label_t* y, Py_ssize_t n, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if y[i] < 0 or y[i] >= n_classes:
            return False
    return True


cdef inline bint labels_in_range(int kind, const void* y, Py_ssize_t n, Py_ssize_t n_classes) noexcept nogil:
    """Every one of the n class ids of this kind (not NOT_LABELS) lies in [0, n_classes)."""
    if kind == U8:
        return _in_range(<const uint8_t*>y, n, n_classes)
    if kind == I32:
        return _in_range(<const int32_t*>y, n, n_classes)
    return _in_range(<const int64_t*>y, n, n_classes)
