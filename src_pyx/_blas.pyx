"""GEMM through NumPy's BLAS, callable without the GIL from every kernel module.

Three calling conventions are supported, because NumPy builds differ in how they expose BLAS:
  CBLAS64  row-major CBLAS with 64-bit integers (NumPy's bundled scipy-openblas64: PyPI wheels)
  CBLAS32  row-major CBLAS with 32-bit integers (a system or conda CBLAS, Accelerate)
  FORTRAN  column-major Fortran BLAS with 32-bit integers (scipy.linalg.cython_blas, a fallback)
fastnn/_gemm.py decides which one applies and calls set_backend() once, at import.
"""
from libc.stdint cimport int64_t, int32_t, uintptr_t
from cython cimport floating

cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112

ctypedef void (*sgemm64_t)(int order, int ta, int tb, int64_t m, int64_t n, int64_t k,
                           float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                           float beta, float* c, int64_t ldc) noexcept nogil
ctypedef void (*dgemm64_t)(int order, int ta, int tb, int64_t m, int64_t n, int64_t k,
                           double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
                           double beta, double* c, int64_t ldc) noexcept nogil
ctypedef void (*sgemm32_t)(int order, int ta, int tb, int32_t m, int32_t n, int32_t k,
                           float alpha, const float* a, int32_t lda, const float* b, int32_t ldb,
                           float beta, float* c, int32_t ldc) noexcept nogil
ctypedef void (*dgemm32_t)(int order, int ta, int tb, int32_t m, int32_t n, int32_t k,
                           double alpha, const double* a, int32_t lda, const double* b, int32_t ldb,
                           double beta, double* c, int32_t ldc) noexcept nogil
ctypedef void (*sgemv64_t)(int order, int ta, int64_t m, int64_t n, float alpha, const float* a, int64_t lda,
                           const float* x, int64_t incx, float beta, float* y, int64_t incy) noexcept nogil
ctypedef void (*dgemv64_t)(int order, int ta, int64_t m, int64_t n, double alpha, const double* a, int64_t lda,
                           const double* x, int64_t incx, double beta, double* y, int64_t incy) noexcept nogil
ctypedef void (*sgemv32_t)(int order, int ta, int32_t m, int32_t n, float alpha, const float* a, int32_t lda,
                           const float* x, int32_t incx, float beta, float* y, int32_t incy) noexcept nogil
ctypedef void (*dgemv32_t)(int order, int ta, int32_t m, int32_t n, double alpha, const double* a, int32_t lda,
                           const double* x, int32_t incx, double beta, double* y, int32_t incy) noexcept nogil
ctypedef void (*sgemmf_t)(char* ta, char* tb, int32_t* m, int32_t* n, int32_t* k,
                          float* alpha, float* a, int32_t* lda, float* b, int32_t* ldb,
                          float* beta, float* c, int32_t* ldc) noexcept nogil
ctypedef void (*dgemmf_t)(char* ta, char* tb, int32_t* m, int32_t* n, int32_t* k,
                          double* alpha, double* a, int32_t* lda, double* b, int32_t* ldb,
                          double* beta, double* c, int32_t* ldc) noexcept nogil

cdef int _kind = 0            # 0 = not set, 1 = CBLAS64, 2 = CBLAS32, 3 = FORTRAN
cdef void* _sgemm = NULL
cdef void* _dgemm = NULL
cdef void* _sgemv = NULL      # optional (0: a one-row or one-column product stays a gemm)
cdef void* _dgemv = NULL
_backend_name = None

KINDS = {"CBLAS64": 1, "CBLAS32": 2, "FORTRAN": 3}


def set_backend(str kind, uintptr_t sgemm_address, uintptr_t dgemm_address, str name,
                uintptr_t sgemv_address=0, uintptr_t dgemv_address=0):
    """Install the BLAS entry points (called once by fastnn.backend.blas at import). The gemv pair
    is optional (CBLAS kinds only): with it, a product whose output is one row or one column (and
    whose inner dimension is above 1) goes to gemv, as NumPy's dot and matmul send it, so it has
    their bits and skips gemm's packing of the whole matrix."""
    global _kind, _sgemm, _dgemm, _sgemv, _dgemv, _backend_name
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if sgemm_address == 0 or dgemm_address == 0:
        raise ValueError("BLAS function addresses must be non-zero")
    if (sgemv_address == 0) != (dgemv_address == 0):
        raise ValueError("give both gemv addresses or neither")
    _sgemm = <void*>sgemm_address
    _dgemm = <void*>dgemm_address
    _sgemv = <void*>sgemv_address if kind != "FORTRAN" else NULL
    _dgemv = <void*>dgemv_address if kind != "FORTRAN" else NULL
    _kind = KINDS[kind]
    _backend_name = name


def has_gemv():
    """Whether one-row and one-column products go to BLAS gemv (see set_backend)."""
    return _sgemv != NULL


def backend():
    """(kind, description) of the installed BLAS, or None before set_backend()."""
    if _kind == 0:
        return None
    return ({v: k for k, v in KINDS.items()}[_kind], _backend_name)


cdef enum:
    _GEMV_STACK = 4096     # values: a one-row or one-column C with beta == 1 up to this long


cdef inline bint _gemv(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       floating alpha, const floating* a, Py_ssize_t lda,
                       const floating* b, Py_ssize_t ldb,
                       floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """C (m, n) with m == 1 or n == 1, k > 1, as gemv: one row of C is op(B).T @ (A's row), one
    column op(A) @ (B's column), the matrix in its stored orientation (the calls NumPy makes: the
    same bits as np.dot and np.matmul, tested). beta == 0 zeroes C first, so NaN there never
    survives, as with gemm. beta == 1 (the Dense forward's bias, folded in) computes the product
    apart and then adds C to it, so each value is (the product) + C as gemm and NumPy's
    `x @ w + b` round it, not gemv's running sum from C. False, doing nothing, for any other beta
    or a longer C with beta == 1: the caller runs gemm."""
    cdef int ta
    cdef const floating* mat
    cdef const floating* vec
    cdef Py_ssize_t rows, cols, ld, incv, incy, length, i
    cdef floating product[_GEMV_STACK]
    cdef floating* y = c
    cdef Py_ssize_t incr
    if m == 1:                 # C's row = op(B).T @ x, x = op(A)'s row
        vec = a
        incv = lda if trans_a else 1
        mat = b
        ld = ldb
        if trans_b:            # B stored (n, k): y = B @ x
            ta, rows, cols = NO_TRANS, n, k
        else:                  # B stored (k, n): y = B.T @ x
            ta, rows, cols = TRANS, k, n
        incy = 1
        length = n
    else:                      # C's column = op(A) @ v, v = op(B)'s column
        vec = b
        incv = 1 if trans_b else ldb
        mat = a
        ld = lda
        if trans_a:            # A stored (k, m): y = A.T @ v
            ta, rows, cols = TRANS, k, m
        else:                  # A stored (m, k): y = A @ v
            ta, rows, cols = NO_TRANS, m, k
        incy = ldc
        length = m
    if beta == 1:
        if length > _GEMV_STACK:
            return False
        y = product
        incr = incy
        incy = 1
    elif beta != 0:
        return False
    for i in range(length):
        y[i * incy] = 0
    if _kind == 1:
        if floating is float:
            (<sgemv64_t>_sgemv)(ROW_MAJOR, ta, rows, cols, alpha, mat, ld, vec, incv, 0, y, incy)
        else:
            (<dgemv64_t>_dgemv)(ROW_MAJOR, ta, rows, cols, alpha, mat, ld, vec, incv, 0, y, incy)
    else:
        if floating is float:
            (<sgemv32_t>_sgemv)(ROW_MAJOR, ta, <int32_t>rows, <int32_t>cols, alpha, mat, <int32_t>ld, vec,
                                <int32_t>incv, 0, y, <int32_t>incy)
        else:
            (<dgemv32_t>_dgemv)(ROW_MAJOR, ta, <int32_t>rows, <int32_t>cols, alpha, mat, <int32_t>ld, vec,
                                <int32_t>incv, 0, y, <int32_t>incy)
    if beta == 1:
        for i in range(length):
            c[i * incr] = product[i] + c[i * incr]
    return True


cdef void sgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                float alpha, const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb,
                float beta, float* c, Py_ssize_t ldc) noexcept nogil:
    _gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef void dgemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                double alpha, const double* a, Py_ssize_t lda, const double* b, Py_ssize_t ldb,
                double beta, double* c, Py_ssize_t ldc) noexcept nogil:
    _gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       floating alpha, const floating* a, Py_ssize_t lda,
                       const floating* b, Py_ssize_t ldb,
                       floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    cdef int ta = TRANS if trans_a else NO_TRANS
    cdef int tb = TRANS if trans_b else NO_TRANS
    cdef char fa, fb
    cdef int32_t fm, fn, fk, flda, fldb, fldc
    if m == 0 or n == 0:
        return
    if k == 0:
        # BLAS leaves C untouched for k == 0 only when beta == 1; make the empty sum explicit.
        _scale(m, n, beta, c, ldc)
        return
    if k > 1 and (m == 1 or n == 1) and _sgemv != NULL and _gemv(trans_a, trans_b, m, n, k, alpha, a, lda,
                                                                    b, ldb, beta, c, ldc):
        return
    if _kind == 1:
        if floating is float:
            (<sgemm64_t>_sgemm)(ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        else:
            (<dgemm64_t>_dgemm)(ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    elif _kind == 2:
        if floating is float:
            (<sgemm32_t>_sgemm)(ROW_MAJOR, ta, tb, <int32_t>m, <int32_t>n, <int32_t>k, alpha,
                                a, <int32_t>lda, b, <int32_t>ldb, beta, c, <int32_t>ldc)
        else:
            (<dgemm32_t>_dgemm)(ROW_MAJOR, ta, tb, <int32_t>m, <int32_t>n, <int32_t>k, alpha,
                                a, <int32_t>lda, b, <int32_t>ldb, beta, c, <int32_t>ldc)
    else:
        # Column-major BLAS sees each row-major matrix as its transpose: C^T = op(B)^T op(A)^T.
        fa = b'T' if trans_b else b'N'
        fb = b'T' if trans_a else b'N'
        fm = <int32_t>n
        fn = <int32_t>m
        fk = <int32_t>k
        flda = <int32_t>ldb
        fldb = <int32_t>lda
        fldc = <int32_t>ldc
        if floating is float:
            (<sgemmf_t>_sgemm)(&fa, &fb, &fm, &fn, &fk, &alpha, <float*>b, &flda, <float*>a, &fldb,
                               &beta, c, &fldc)
        else:
            (<dgemmf_t>_dgemm)(&fa, &fb, &fm, &fn, &fk, &alpha, <double*>b, &flda, <double*>a, &fldb,
                               &beta, c, &fldc)


cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static int fnn_cpu_avx512f(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
    }
    #else
    static int fnn_cpu_avx512f(void) { return 0; }   /* the kernels are not compiled here */
    #endif
    """
    int fnn_cpu_avx512f() noexcept nogil

cdef bint _small_cpu = fnn_cpu_avx512f()     # set once at import, before any kernel can run
cdef bint _small_enabled = True


cdef bint small_gemm_on() noexcept nogil:
    return _small_cpu and _small_enabled


def set_small_gemm(bint enabled):
    """Whether fastnn's float32 AVX-512 GEMM kernels (Conv2D's products, the compiled regression
    step's) may run (True, the default, on a CPU with AVX-512) instead of NumPy's BLAS (False; for
    the tests and benchmarks that compare the two). Returns the previous setting."""
    global _small_enabled
    cdef bint before = _small_enabled
    _small_enabled = enabled
    return before


def small_gemm_available():
    """Whether this CPU (and this build) runs fastnn's AVX-512 GEMM kernels."""
    return bool(_small_cpu)


cdef inline void _scale(Py_ssize_t m, Py_ssize_t n, floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(m):
        for j in range(n):
            c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]


cimport numpy as cnp
cnp.import_array()


cdef int chain_shapes(a, b, out, bint trans_a, bint trans_b, Py_ssize_t* m, Py_ssize_t* k,
                      Py_ssize_t* n) except -1:
    m[0] = a.shape[1] if trans_a else a.shape[0]
    k[0] = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    n[0] = b.shape[0] if trans_b else b.shape[1]
    if k[0] != kb or out.shape[0] != m[0] or out.shape[1] != n[0]:
        raise ValueError(f"shapes do not chain: op(a) is ({m[0]}, {k[0]}), op(b) is ({kb}, {n[0]}), "
                         f"out is ({out.shape[0]}, {out.shape[1]})")
    return 0


def gemm_into(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None,
              bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out, where op transposes when asked.

    a, b, out: C-contiguous 2-D arrays of one dtype, float32 or float64; op(a) is (m, k), op(b) is
    (k, n) and out is (m, n). This entry point is for fastnn._gemm (tests, benchmarks); kernels
    call gemm() from C. Returns out.
    """
    cdef int typenum = cnp.PyArray_TYPE(out)
    cdef cnp.ndarray arr
    for arr, name in ((a, "a"), (b, "b"), (out, "out")):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {arr.ndim}-D")
        if cnp.PyArray_TYPE(arr) != typenum or typenum not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
            raise TypeError(f"a, b and out must share one dtype, float32 or float64; got "
                            f"{a.dtype}, {b.dtype}, {out.dtype}")
        if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    cdef Py_ssize_t m, k, n
    chain_shapes(a, b, out, trans_a, trans_b, &m, &k, &n)
    if _kind == 0:
        raise RuntimeError("no BLAS backend installed; import fastnn first")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _gemm(trans_a, trans_b, m, n, k, <float>alpha, <float*>cnp.PyArray_DATA(a), a.shape[1],
                  <float*>cnp.PyArray_DATA(b), b.shape[1], <float>beta, <float*>cnp.PyArray_DATA(out), n)
        else:
            _gemm(trans_a, trans_b, m, n, k, alpha, <double*>cnp.PyArray_DATA(a), a.shape[1],
                  <double*>cnp.PyArray_DATA(b), b.shape[1], beta, <double*>cnp.PyArray_DATA(out), n)
    return out
