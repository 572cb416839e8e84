# Shared declarations for every kernel module. No .pyx sits behind this file, so cimporting it
# costs nothing at run time.
#
# Conventions:
# - kernels are `cdef inline ... noexcept nogil` loops over raw pointers, one per formula, each
#   backward next to its forward, instantiated for float32 and float64 through `floating`;
# - a `def` entry point works on one object's state dict (`layer.__dict__`): it checks at C speed
#   that every array it touches has the dtype, order and shape its loop assumes, reuses the
#   object's output buffers while the shape stays the same, runs the loop without the GIL and
#   stores the results under the book's attribute names. An argument that needs converting or is
#   invalid makes it return False (the layer kernels: the status CONVERT, _status.pxi) before
#   anything changed; the Python method then asks fastnn._validation to convert it (or to raise
#   the error naming it) and calls again;
# - kernels import nothing from the Python package: where the object's own state cannot be used
#   (parameters replaced by hand, backward before forward) they return a status that says so, and
#   the Python method raises the error it stands for.
cimport numpy as cnp
from cython cimport floating



cdef inline bint is_f32(cnp.ndarray a) noexcept:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


cdef inline void* data(cnp.ndarray a) noexcept:
    return cnp.PyArray_DATA(a)


cdef inline bint is_float_typenum(int typenum) noexcept:
    return typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64


cdef inline bint ready(object x, int typenum) noexcept:
    """x is an exact ndarray of `typenum`, C-contiguous, aligned and in native byte order: a
    kernel may read it through a raw pointer."""
    if not cnp.PyArray_CheckExact(x):
        return False
    return cnp.PyArray_TYPE(<cnp.ndarray>x) == typenum and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>x)


cdef inline bint ready2(object x, int typenum, Py_ssize_t n_columns) noexcept:
    """ready(), 2-D, and `n_columns` columns (any column count when n_columns < 0)."""
    if not ready(x, typenum):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return a.ndim == 2 and (n_columns < 0 or a.shape[1] == n_columns)


cdef inline bint overlaps(cnp.ndarray a, object b) noexcept:
    """True when b is an ndarray whose memory range meets a's."""
    if b is None or not cnp.PyArray_Check(b):
        return False
    cdef char* a0 = <char*>cnp.PyArray_DATA(a)
    cdef char* b0 = <char*>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return a0 < b0 + nb and b0 < a0 + na


cdef inline cnp.ndarray reuse(dict state, str name, int ndim, cnp.npy_intp* dims, int typenum,
                              object avoid1, object avoid2):
    """The buffer stored under `name` when it has this shape and dtype, is writeable and shares no
    memory with avoid1/avoid2 (arrays the kernel reads); otherwise a new one, stored under `name`.

    Reusing buffers is what keeps the training loop allocation-free: a layer's `output`,
    `dinputs`, `dweights`... are valid until that object's next call, as with NumPy's `out=`."""
    cdef object buf = state.get(name)
    cdef cnp.ndarray a
    cdef int i
    cdef bint fits = False
    if buf is not None and cnp.PyArray_CheckExact(buf):
        a = <cnp.ndarray>buf
        if (a.ndim == ndim and cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY(a)
                and not overlaps(a, avoid1) and not overlaps(a, avoid2)):
            fits = True
            for i in range(ndim):
                if a.shape[i] != dims[i]:
                    fits = False
                    break
        if fits:
            return a
    a = cnp.PyArray_EMPTY(ndim, dims, typenum, 0)
    state[name] = a
    return a


cdef inline cnp.ndarray reuse2(dict state, str name, Py_ssize_t n0, Py_ssize_t n1, int typenum,
                               object avoid1, object avoid2):
    """reuse() for a 2-D (n0, n1) buffer."""
    cdef cnp.npy_intp dims[2]
    dims[0] = n0
    dims[1] = n1
    return reuse(state, name, 2, dims, typenum, avoid1, avoid2)


cdef inline cnp.ndarray reuse_like(dict state, str name, cnp.ndarray like, object avoid1, object avoid2):
    """reuse() for a buffer of like's shape and dtype."""
    return reuse(state, name, like.ndim, cnp.PyArray_DIMS(like), cnp.PyArray_TYPE(like), avoid1, avoid2)


cdef inline int require(bint ok, str what) except -1:
    """Last safety net behind the Python layer's validation: an entry point refuses arrays whose
    dtype, order or size would make it read or write out of bounds."""
    if not ok:
        raise ValueError("fastnn internal error: " + what + " (please report this)")
    return 0


cdef inline int require_like(cnp.ndarray a, cnp.ndarray b) except -1:
    """a and b: same float dtype, same number of elements, both C-contiguous."""
    require(cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b) and is_float_typenum(cnp.PyArray_TYPE(a)),
            "dtype mismatch")
    require(cnp.PyArray_SIZE(a) == cnp.PyArray_SIZE(b), "size mismatch")
    require(cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISCARRAY_RO(b), "not C-contiguous")
    return 0


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    if a.ndim != b.ndim:
        return False
    cdef int i
    for i in range(a.ndim):
        if a.shape[i] != b.shape[i]:
            return False
    return True


cdef inline bint ready_float(object x) noexcept:
    """ready() for float32 or float64."""
    return ready(x, cnp.NPY_FLOAT32) or ready(x, cnp.NPY_FLOAT64)


cdef inline bint ready_like(object x, cnp.ndarray like) noexcept:
    """ready() with like's dtype and shape."""
    return ready(x, cnp.PyArray_TYPE(like)) and same_shape(<cnp.ndarray>x, like)


# exp for float32 that compilers can vectorise (libm's expf is an opaque call, ~10x slower in a
# loop than NumPy's SIMD exp). Cephes' expf: exp(x) = 2^k exp(r) with k = round(x / ln 2) and
# |r| <= ln(2) / 2, a degree-6 polynomial for exp(r); relative error below 2 ulp on
# [-87.3, 88.3] (checked against exp in double by tests/test_fast_exp.py). Below -87.3 the result
# is flushed to 0 (exact would be a subnormal under 1.2e-38); above 88.3 it is inf; NaN stays NaN.
# The rounding uses the 1.5 * 2^23 trick, which needs no -ffast-math and no SSE4.1.
cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    #include <math.h>
    static inline float fastnn_expf(float x) {
        const float hi = 88.3762626647949f, lo = -87.3365447505531f;
        float xc = x > hi ? hi : (x < lo ? lo : x);
        float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
        float r = xc - kf * 0.693359375f;
        r = r - kf * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float y = p * (r * r) + r + 1.0f;
        int32_t bits = ((int32_t)kf + 127) << 23;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        y = y * scale;
        return x < lo ? 0.0f : (x > hi ? (float)INFINITY : y);
    }
    """
    float fastnn_expf(float x) noexcept nogil


# erf for float32 that compilers can vectorise (libm's erff is an opaque call, ~20x slower in a
# loop than a vectorised polynomial): for |x| < 1, x * P(x^2); for 1 <= |x| < 4, 1 - exp(-x^2) *
# Q(1 / |x|) with Q ~ erfc(a) exp(a^2), then the sign; +-1 beyond (erf(3.92) rounds to 1 in float32).
# P and Q are least-squares fits (degrees 6 and 9, relative error of the fits below 0.04 ulp)
# evaluated in float32: relative error below 1.5 ulp for |x| < 1, absolute below 1.2 ulp of 1
# beyond (tests/test_activations_beyond.py checks GELU over a dense grid). Branch-free selects;
# NaN stays NaN, +-inf gives +-1.
cdef extern from *:
    """
    static inline float fastnn_erff(float x) {
        float a = fabsf(x), z = x * x;
        float p = 7.923226803541183e-05f;
        p = p * z - 8.030958124436438e-04f;
        p = p * z + 5.190672818571329e-03f;
        p = p * z - 2.6855047792196274e-02f;
        p = p * z + 1.1283615231513977e-01f;
        p = p * z - 3.761262893676758e-01f;
        p = p * z + 1.128379225730896f;
        float t = 1.0f / (a > 1.0f ? a : 1.0f);
        float q = 3.299754858016968e-02f;
        q = q * t - 1.9198012351989746e-01f;
        q = q * t + 4.6679118275642395e-01f;
        q = q * t - 5.746723413467407e-01f;
        q = q * t + 2.694683372974396e-01f;
        q = q * t + 2.1377365291118622e-01f;
        q = q * t - 3.7013012170791626e-01f;
        q = q * t + 1.9304988905787468e-02f;
        q = q * t + 5.619171857833862e-01f;
        q = q * t + 1.1329776316415519e-04f;
        float large = 1.0f - fastnn_expf(-(a * a)) * q;
        large = a >= 4.0f ? 1.0f : large;
        large = x < 0.0f ? -large : large;
        return a < 1.0f ? x * p : large;
    }
    """
    float fastnn_erff(float x) noexcept nogil
