# The one place fastnn's kernels call GEMM. The BLAS is NumPy's own, so fastnn adds
# no second thread pool: fastnn/_gemm.py finds NumPy's sgemm/dgemm and hands their addresses to
# _blas.set_backend() at import.
#
# Row-major, like NumPy: C[m, n] = alpha * op(A) @ op(B) + beta * C, where op(A) is (m, k) and
# op(B) is (k, n). lda/ldb/ldc are the row strides, in elements, of the arrays as stored.
from cython cimport floating

cdef void sgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                float alpha, const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb,
                float beta, float* c, Py_ssize_t ldc) noexcept nogil
cdef void dgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                double alpha, const double* a, Py_ssize_t lda, const double* b, Py_ssize_t ldb,
                double beta, double* c, Py_ssize_t ldc) noexcept nogil
# Whether fastnn's float32 AVX-512 GEMM kernels (_smallgemm.pxd) may run: the CPU has AVX-512 (and
# the compiler built them), and set_small_gemm() has not switched them off. The one probe and the
# one switch for every module that includes the kernels.
cdef bint small_gemm_on() noexcept nogil
# The (m, k, n) of out = op(a) @ op(b) for 2-D arrays, or ValueError naming the three shapes.
cdef int chain_shapes(a, b, out, bint trans_a, bint trans_b, Py_ssize_t* m, Py_ssize_t* k,
                      Py_ssize_t* n) except -1


cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      floating alpha, const floating* a, Py_ssize_t lda,
                      const floating* b, Py_ssize_t ldb,
                      floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        dgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
