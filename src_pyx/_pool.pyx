"""Layer_MaxPool2D kernels, forward and backward each one call on the layer's state dict (the
calling convention of _common.pxd). Layout NCHW.

One pass per (H, W) plane; argmax holds the winner of each window as the flat index h * W + w
into its plane (int32). Ties go to the first maximum of the window in row-major order, a NaN is a
window's maximum (the first NaN wins), as fastnn.reference and PyTorch.
"""
from libc.string cimport memset
cimport numpy as cnp
cnp.import_array()
from cython cimport floating

from _common cimport data, ready, reuse

include "_status.pxi"


cdef inline bint _is_better(floating v, floating best) noexcept nogil:
    """v replaces the running maximum: strictly greater (so ties keep the first), or a NaN when
    best is not one (np.argmax's rule: the first NaN is the maximum)."""
    return v > best or (v != v and best == best)


cdef inline floating _larger(floating v, floating best) noexcept nogil:
    # The form x86's maxss/maxps compute, so compilers emit no branch.
    return v if v > best else best


cdef inline void _pool_plane_exact(const floating* plane, floating* output, int* argmax,
                                   Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t pool,
                                   Py_ssize_t s) noexcept nogil:
    """The row-major scan of every window with the full rule (NaN included). Used for planes
    that hold a NaN: the fast paths below assume none, and branches on unpredictable
    comparisons (real data) would make this scan several times slower than they are."""
    cdef Py_ssize_t i, j, a, b, top, left, where
    cdef const floating* row
    cdef floating best, v
    for i in range(oh):
        top = i * s
        for j in range(ow):
            left = j * s
            where = top * w + left
            best = plane[where]
            for a in range(pool):
                row = plane + (top + a) * w + left
                for b in range(pool):
                    v = row[b]
                    if _is_better(v, best):
                        best = v
                        where = (top + a) * w + left + b
            output[i * ow + j] = best
            argmax[i * ow + j] = <int>where


cdef inline bint _pool2_plane(const floating* plane, floating* output, int* argmax,
                              Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """pool_size 2, stride 2 (the common case), assuming no NaN; returns whether one was seen.
    A tournament, (0 vs 1) and (2 vs 3) then the winners, picks the element the row-major scan
    picks (a tie keeps the earlier one); selects are arithmetic, so there are no branches."""
    cdef Py_ssize_t i, j
    cdef const floating* r0
    cdef const floating* r1
    cdef floating v0, v1, v2, v3, m01, m23
    cdef int i01, i23, t, top
    cdef bint nan = False
    for i in range(oh):
        top = <int>(2 * i * w)
        r0 = plane + top
        r1 = r0 + w
        for j in range(ow):
            v0 = r0[2 * j]
            v1 = r0[2 * j + 1]
            v2 = r1[2 * j]
            v3 = r1[2 * j + 1]
            nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
            i01 = <int>(2 * j) + (v1 > v0)
            m01 = _larger(v1, v0)
            i23 = <int>(w + 2 * j) + (v3 > v2)
            m23 = _larger(v3, v2)
            t = m23 > m01
            output[i * ow + j] = _larger(m23, m01)
            argmax[i * ow + j] = top + i01 + (i23 - i01) * t
    return nan


cdef inline bint _pool_plane(const floating* plane, floating* output, int* argmax,
                             Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t pool,
                             Py_ssize_t s) noexcept nogil:
    """Any pool_size and stride, assuming no NaN (returns whether one was seen). For each row of
    windows the offsets (a, b) are visited in row-major order, each across the whole row of
    windows: the windows' running maxima (kept in the output row) do not wait on each other,
    and the winner is updated with arithmetic selects, not branches."""
    cdef Py_ssize_t i, j, a, b, top
    cdef const floating* row
    cdef floating* best
    cdef int* where
    cdef floating v
    cdef int t, here
    cdef bint nan = False
    for i in range(oh):
        top = i * s
        best = output + i * ow
        where = argmax + i * ow
        row = plane + top * w
        for j in range(ow):
            best[j] = row[j * s]
            where[j] = <int>(top * w + j * s)
        for a in range(pool):
            row = plane + (top + a) * w
            for b in range(pool):
                here = <int>((top + a) * w + b)
                for j in range(ow):
                    v = row[j * s + b]
                    nan |= v != v
                    t = v > best[j]
                    best[j] = _larger(v, best[j])
                    where[j] += (here + <int>(j * s) - where[j]) * t
    return nan


cdef inline void _pool_forward(const floating* x, floating* output, int* argmax, Py_ssize_t planes,
                               Py_ssize_t h, Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow,
                               Py_ssize_t pool, Py_ssize_t s) noexcept nogil:
    cdef Py_ssize_t q
    cdef const floating* plane
    cdef bint nan
    for q in range(planes):
        plane = x + q * h * w
        if pool == 2 and s == 2:
            nan = _pool2_plane(plane, output, argmax, w, oh, ow)
        else:
            nan = _pool_plane(plane, output, argmax, w, oh, ow, pool, s)
        if nan:
            _pool_plane_exact(plane, output, argmax, w, oh, ow, pool, s)
        output += oh * ow
        argmax += oh * ow


cdef inline bint _pool_backward(const floating* dvalues, const int* argmax, floating* dinputs,
                                Py_ssize_t planes, Py_ssize_t hw, Py_ssize_t ohw) noexcept nogil:
    """Scatter-add each gradient to its window's winner. False if an index is out of its plane
    (argmax was changed by hand): nothing is written out of bounds."""
    cdef Py_ssize_t q, j
    cdef int where
    cdef bint ok = True
    memset(dinputs, 0, planes * hw * sizeof(floating))
    for q in range(planes):
        for j in range(ohw):
            where = argmax[j]
            if where < 0 or where >= hw:
                ok = False
            else:
                dinputs[where] += dvalues[j]
        dvalues += ohw
        argmax += ohw
        dinputs += hw
    return ok


# ---------------------------------------------------------------------------------------------
# Entry points. Each returns a status (_status.pxi): OK; CONVERT, changing nothing, when the data
# argument is not in the exact form below; BAD_POOL when the layer's pool_size or stride is not an
# int >= 1; from backward, NO_FORWARD without a matching forward and BAD_ARGMAX when argmax was
# changed after it.

cdef int _pool_geometry(dict state, Py_ssize_t* pool, Py_ssize_t* stride) except -1:
    pool_size = state.get("pool_size")
    s = state.get("stride")
    if type(pool_size) is not int or pool_size < 1 or type(s) is not int or s < 1:
        return BAD_POOL
    pool[0] = pool_size
    stride[0] = s
    return OK


cdef bint _pool_input(object inputs, Py_ssize_t pool) noexcept:
    if not (ready(inputs, cnp.NPY_FLOAT32) or ready(inputs, cnp.NPY_FLOAT64)):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    return (x.ndim == 4 and x.shape[2] >= pool and x.shape[3] >= pool
            and x.shape[2] * x.shape[3] <= 2147483647)


def pool_forward(dict state, object inputs):
    """MaxPool2D forward on a layer's __dict__: sets `inputs`, `output` (N, C, OH, OW) and
    `argmax` (N, C, OH, OW, int32: the winner's flat index in its (H, W) plane).

    CONVERT when `inputs` is not already a C-contiguous float32/float64 (N, C, H, W) array with H
    and W at least pool_size."""
    cdef Py_ssize_t pool, s
    cdef int status = _pool_geometry(state, &pool, &s)
    if status != OK:
        return status
    if not _pool_input(inputs, pool):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3]
    cdef cnp.npy_intp dims[4]
    dims[0] = x.shape[0]
    dims[1] = x.shape[1]
    dims[2] = (h - pool) // s + 1
    dims[3] = (w - pool) // s + 1
    cdef cnp.ndarray output = reuse(state, "output", 4, dims, typenum, x, None)
    cdef cnp.ndarray argmax = reuse(state, "argmax", 4, dims, cnp.NPY_INT32, None, None)
    cdef Py_ssize_t planes = dims[0] * dims[1]
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    cdef int* p_arg = <int*>data(argmax)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _pool_forward(<float*>p_x, <float*>p_out, p_arg, planes, h, w, dims[2], dims[3], pool, s)
        else:
            _pool_forward(<double*>p_x, <double*>p_out, p_arg, planes, h, w, dims[2], dims[3], pool, s)
    state["inputs"] = x
    return _OK


def pool_backward(dict state, object dvalues):
    """MaxPool2D backward on a layer's __dict__: sets `dinputs` (the forward inputs' shape).

    CONVERT when `dvalues` is not already a C-contiguous array of the inputs' dtype with the
    forward's output shape."""
    cdef Py_ssize_t pool, s
    cdef int status = _pool_geometry(state, &pool, &s)
    if status != OK:
        return status
    inputs = state.get("inputs")
    argmax = state.get("argmax")
    if not _pool_input(inputs, pool) or not ready(argmax, cnp.NPY_INT32):
        return NO_FORWARD
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray arg = <cnp.ndarray>argmax
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t oh = (h - pool) // s + 1, ow = (w - pool) // s + 1
    if (arg.ndim != 4 or arg.shape[0] != x.shape[0] or arg.shape[1] != x.shape[1]
            or arg.shape[2] != oh or arg.shape[3] != ow):
        return NO_FORWARD
    if not ready(dvalues, typenum):
        return CONVERT
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    if dv.ndim != 4 or dv.shape[0] != x.shape[0] or dv.shape[1] != x.shape[1] or dv.shape[2] != oh \
            or dv.shape[3] != ow:
        return CONVERT
    cdef cnp.ndarray dinputs = reuse(state, "dinputs", 4, cnp.PyArray_DIMS(x), typenum, dv, None)
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1]
    cdef void* p_dv = data(dv)
    cdef int* p_arg = <int*>data(arg)
    cdef void* p_dx = data(dinputs)
    cdef bint ok
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            ok = _pool_backward(<float*>p_dv, p_arg, <float*>p_dx, planes, h * w, oh * ow)
        else:
            ok = _pool_backward(<double*>p_dv, p_arg, <double*>p_dx, planes, h * w, oh * ow)
    return _OK if ok else BAD_ARGMAX
