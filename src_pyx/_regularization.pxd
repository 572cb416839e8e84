# The book's L1/L2 regularisation of one parameter array, forward and backward side by side.
# Shared by _losses.pyx (the penalty added to the loss) and by _dense.pyx and _conv.pyx (its
# gradient added to dweights/dbiases). No .pyx sits behind this file: everything here is inline.
from libc.math cimport fabs
from cython cimport floating


# Forward: l1 * sum|x| + l2 * sum x^2, each term only when its coefficient is > 0 (no factor 1/2,
# as the book), accumulated in double.

cdef inline double _abs_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(n):
        total += fabs(x[i])
    return total


cdef inline double _square_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(n):
        total += <double>x[i] * x[i]
    return total


cdef inline double penalty(const floating* x, Py_ssize_t n, double l1, double l2) noexcept nogil:
    cdef double total = 0
    if l1 > 0:
        total += l1 * _abs_sum(x, n)
    if l2 > 0:
        total += l2 * _square_sum(x, n)
    return total


# Backward: grad += l1 * sign(x) (+1 at exactly 0, as the book), then grad += 2 * l2 * x, in the
# book's order, with the coefficients rounded to the parameter dtype as NumPy does with a Python float.

cdef inline void add_penalty_gradient(floating* grad, const floating* x, Py_ssize_t n,
                                      double l1, double l2) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating c1 = <floating>l1
    cdef floating c2 = <floating>(2 * l2)
    if l1 > 0:
        for i in range(n):
            grad[i] += c1 * (<floating>-1 if x[i] < 0 else <floating>1)
    if l2 > 0:
        for i in range(n):
            grad[i] += c2 * x[i]
