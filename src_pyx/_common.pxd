# Shared declarations for every kernel module. No .pyx sits behind this file, so cimporting it
# costs nothing at run time.
#
# Conventions (style-anchors.md §2):
# - kernels are `cdef inline ... noexcept nogil` loops over raw pointers, one per formula, each
#   backward next to its forward;
# - the `def` entry points take ndarrays that the Python layer has already validated (dtype,
#   C order, shapes); they only pick the float32 or float64 instantiation and release the GIL.
cimport numpy as cnp
from cython cimport floating

cnp.import_array()


cdef inline bint is_f32(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef inline void* data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


cdef inline int require(bint ok, str what) except -1:
    """Safety net behind the Python layer's validation: a kernel entry point refuses arrays whose
    dtype, order or size would make it read or write out of bounds."""
    if not ok:
        raise ValueError("fastnn internal error: " + what + " (please report this)")
    return 0


cdef inline int require_like(cnp.ndarray a, cnp.ndarray b) except -1:
    """a and b: same dtype (float32/float64), same number of elements, both C-contiguous."""
    require(cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b)
            and (cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64),
            "dtype mismatch")
    require(cnp.PyArray_SIZE(a) == cnp.PyArray_SIZE(b), "size mismatch")
    require(cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b), "not C-contiguous")
    return 0
