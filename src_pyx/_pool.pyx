"""Layer_MaxPool2D and Layer_GlobalAveragePool2D kernels, forward and backward each one call on
the layer's state dict (the calling convention of _common.pxd). Layout NCHW; window size, stride and padding per axis
(_im2col.pxd: Geometry, window()). Windows are clipped to the plane: padding never wins, as in
PyTorch (whose padding is -inf and whose scan starts from the first element inside the plane).

One pass per (H, W) plane; argmax holds the winner of each window as the flat index h * W + w
into its plane (int32). Ties go to the first maximum of the window in row-major order, a NaN is a
window's maximum (the first NaN wins), as fastnn.reference and PyTorch.
"""
from libc.string cimport memset
cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport prange

from _common cimport data, ready, reuse
from _im2col cimport WINDOW_OK, Geometry, fits_plane, window
from fastnn._ext._threads cimport threads_for_work

include "_status.pxi"


cdef inline bint _is_better(floating v, floating best) noexcept nogil:
    """v replaces the running maximum: strictly greater (so ties keep the first), or a NaN when
    best is not one (np.argmax's rule: the first NaN is the maximum)."""
    return v > best or (v != v and best == best)


cdef inline floating _larger(floating v, floating best) noexcept nogil:
    # The form x86's maxss/maxps compute, so compilers emit no branch.
    return v if v > best else best


cdef inline void _pool_exact(const floating* plane, floating* output, int* argmax, const Geometry* g,
                             Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """The windows of output rows [i0, i1) and columns [j0, j1), each scanned in row-major order
    over its part inside the plane (padding never wins), with the full rule (NaN included). Used
    for the windows that reach into the padding, and for planes that hold a NaN: the fast paths
    below assume none, and branches on unpredictable comparisons (real data) would make this scan
    several times slower than they are."""
    cdef Py_ssize_t i, j, r, c, r0, r1, c0, c1, where
    cdef floating best, v
    for i in range(i0, i1):
        r0 = i * g.sh - g.pt
        r1 = r0 + g.kh if r0 + g.kh < g.h else g.h
        r0 = r0 if r0 > 0 else 0
        for j in range(j0, j1):
            c0 = j * g.sw - g.pl
            c1 = c0 + g.kw if c0 + g.kw < g.w else g.w
            c0 = c0 if c0 > 0 else 0
            where = r0 * g.w + c0
            best = plane[where]
            for r in range(r0, r1):
                for c in range(c0, c1):
                    v = plane[r * g.w + c]
                    if _is_better(v, best):
                        best = v
                        where = r * g.w + c
            output[i * g.ow + j] = best
            argmax[i * g.ow + j] = <int>where


cdef inline bint _pool2_plane(const floating* plane, floating* output, int* argmax,
                              Py_ssize_t w, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """pool_size 2, stride 2, no padding (the common case), assuming no NaN; returns whether one
    was seen. A tournament, (0 vs 1) and (2 vs 3) then the winners, picks the element the
    row-major scan picks (a tie keeps the earlier one); selects are arithmetic, so there are no
    branches."""
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


cdef inline bint _pool_interior(const floating* plane, floating* output, int* argmax, const Geometry* g,
                                Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """The windows of output rows [i0, i1) and columns [j0, j1), which lie inside the plane, for
    any window and stride, assuming no NaN (returns whether one was seen). For each row of windows
    the offsets (a, b) are visited in row-major order, each across the whole row of windows: the
    windows' running maxima (kept in the output row) do not wait on each other, and the winner is
    updated with arithmetic selects, not branches."""
    cdef Py_ssize_t i, j, a, b, top
    cdef Py_ssize_t w = g.w, ow = g.ow, kh = g.kh, kw = g.kw, sh = g.sh, s = g.sw
    cdef Py_ssize_t n = j1 - j0, left = j0 * g.sw - g.pl
    cdef const floating* row
    cdef floating* best
    cdef int* where
    cdef floating v
    cdef int t, here
    cdef bint nan = False
    for i in range(i0, i1):
        top = i * sh - g.pt
        best = output + i * ow + j0
        where = argmax + i * ow + j0
        row = plane + top * w + left
        for j in range(n):
            best[j] = row[j * s]
            where[j] = <int>(top * w + left + j * s)
        for a in range(kh):
            row = plane + (top + a) * w + left
            for b in range(kw):
                here = <int>((top + a) * w + left + b)
                for j in range(n):
                    v = row[j * s + b]
                    nan |= v != v
                    t = v > best[j]
                    best[j] = _larger(v, best[j])
                    where[j] += (here + <int>(j * s) - where[j]) * t
    return nan


cdef inline void _inside(Py_ssize_t pad, Py_ssize_t size, Py_ssize_t k, Py_ssize_t s, Py_ssize_t out_size,
                         Py_ssize_t* first, Py_ssize_t* stop) noexcept nogil:
    """Output positions [first, stop) whose window (start i*s - pad, length k) lies inside [0, size)."""
    first[0] = (pad + s - 1) // s
    stop[0] = (size + pad - k) // s + 1 if size + pad >= k else 0
    if stop[0] > out_size:
        stop[0] = out_size
    if first[0] > stop[0]:
        first[0] = stop[0]


cdef inline void _pool_forward(const floating* x, floating* output, int* argmax, Py_ssize_t planes,
                               const Geometry* g) noexcept nogil:
    """Each plane: the windows inside it by a fast path, those reaching into the padding (a ring
    around them) by the clipped scan; the whole plane by the scan when it holds a NaN."""
    cdef Py_ssize_t q, i0, i1, j0, j1
    cdef const floating* plane
    cdef bint nan
    cdef bint two_by_two = (g.kh == 2 and g.kw == 2 and g.sh == 2 and g.sw == 2 and g.pt == 0 and g.pl == 0)
    _inside(g.pt, g.h, g.kh, g.sh, g.oh, &i0, &i1)
    _inside(g.pl, g.w, g.kw, g.sw, g.ow, &j0, &j1)
    for q in range(planes):
        plane = x + q * g.h * g.w
        if two_by_two:
            nan = _pool2_plane(plane, output, argmax, g.w, g.oh, g.ow)
        else:
            nan = _pool_interior(plane, output, argmax, g, i0, i1, j0, j1)
            _pool_exact(plane, output, argmax, g, 0, i0, 0, g.ow)
            _pool_exact(plane, output, argmax, g, i1, g.oh, 0, g.ow)
            _pool_exact(plane, output, argmax, g, i0, i1, 0, j0)
            _pool_exact(plane, output, argmax, g, i0, i1, j1, g.ow)
        if nan:
            _pool_exact(plane, output, argmax, g, 0, g.oh, 0, g.ow)
        output += g.ohw
        argmax += g.ohw


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


# Large batches split their planes over the OpenMP team (the thread policy of _threads.pyx, which
# counts work in GEMM multiply-adds: one input value's pass counts as _PASS_WORK), one contiguous
# range of planes a thread. A plane's results do not depend on which thread makes them.
cdef Py_ssize_t _PASS_WORK = 8


cdef void _pool_forward_threads(const floating* x, floating* output, int* argmax, Py_ssize_t planes,
                                const Geometry* g, int n_threads) noexcept nogil:
    cdef Py_ssize_t t, q0, q1
    if n_threads <= 1:
        _pool_forward(x, output, argmax, planes, g)
        return
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        q0 = planes * t // n_threads
        q1 = planes * (t + 1) // n_threads
        _pool_forward(x + q0 * g.h * g.w, output + q0 * g.ohw, argmax + q0 * g.ohw, q1 - q0, g)


cdef bint _pool_backward_threads(const floating* dvalues, const int* argmax, floating* dinputs,
                                 Py_ssize_t planes, Py_ssize_t hw, Py_ssize_t ohw, int n_threads) noexcept nogil:
    cdef Py_ssize_t t, q0, q1
    cdef int bad = 0
    if n_threads <= 1:
        return _pool_backward(dvalues, argmax, dinputs, planes, hw, ohw)
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        q0 = planes * t // n_threads
        q1 = planes * (t + 1) // n_threads
        bad += 0 if _pool_backward(dvalues + q0 * ohw, argmax + q0 * ohw, dinputs + q0 * hw, q1 - q0, hw, ohw) else 1
    return bad == 0


# ---------------------------------------------------------------------------------------------
# Entry points. Each returns a status (_status.pxi): OK; CONVERT, changing nothing, when the data
# argument is not in the exact form below; BAD_POOL when the layer's pool_size, stride or padding
# cannot be used (padding more than half the window would leave windows outside the plane, as
# PyTorch refuses); from backward, NO_FORWARD without a matching forward and BAD_ARGMAX when
# argmax was changed after it.

cdef int _pool_geometry(dict state, Geometry* g) except -1:
    if window(state.get("pool_size"), state.get("stride"), state.get("padding"), g) != WINDOW_OK:
        return BAD_POOL
    if 2 * g.pt > g.kh or 2 * g.pl > g.kw:
        return BAD_POOL
    return OK


cdef bint _pool_input(object inputs, Geometry* g) noexcept:
    if not (ready(inputs, cnp.NPY_FLOAT32) or ready(inputs, cnp.NPY_FLOAT64)):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    return (x.ndim == 4 and fits_plane(g, x.shape[2], x.shape[3])
            and x.shape[2] * x.shape[3] <= 2147483647)


def pool_forward(dict state, object inputs):
    """MaxPool2D forward on a layer's __dict__: sets `inputs`, `output` (N, C, OH, OW) and
    `argmax` (N, C, OH, OW, int32: the winner's flat index in its (H, W) plane).

    CONVERT when `inputs` is not already a C-contiguous float32/float64 (N, C, H, W) array whose
    padded plane holds a window."""
    cdef Geometry g
    cdef int status = _pool_geometry(state, &g)
    if status != OK:
        return status
    if not _pool_input(inputs, &g):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef cnp.npy_intp dims[4]
    dims[0] = x.shape[0]
    dims[1] = x.shape[1]
    dims[2] = g.oh
    dims[3] = g.ow
    cdef cnp.ndarray output = reuse(state, "output", 4, dims, typenum, x, None)
    cdef cnp.ndarray argmax = reuse(state, "argmax", 4, dims, cnp.NPY_INT32, None, None)
    cdef Py_ssize_t planes = dims[0] * dims[1]
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    cdef int* p_arg = <int*>data(argmax)
    cdef int n_threads = threads_for_work(_PASS_WORK * planes * g.h * g.w, planes)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _pool_forward_threads(<float*>p_x, <float*>p_out, p_arg, planes, &g, n_threads)
        else:
            _pool_forward_threads(<double*>p_x, <double*>p_out, p_arg, planes, &g, n_threads)
    state["inputs"] = x
    return _OK


def pool_backward(dict state, object dvalues):
    """MaxPool2D backward on a layer's __dict__: sets `dinputs` (the forward inputs' shape).

    CONVERT when `dvalues` is not already a C-contiguous array of the inputs' dtype with the
    forward's output shape."""
    cdef Geometry g
    cdef int status = _pool_geometry(state, &g)
    if status != OK:
        return status
    inputs = state.get("inputs")
    argmax = state.get("argmax")
    if not _pool_input(inputs, &g) or not ready(argmax, cnp.NPY_INT32):
        return NO_FORWARD
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray arg = <cnp.ndarray>argmax
    cdef int typenum = cnp.PyArray_TYPE(x)
    if (arg.ndim != 4 or arg.shape[0] != x.shape[0] or arg.shape[1] != x.shape[1]
            or arg.shape[2] != g.oh or arg.shape[3] != g.ow):
        return NO_FORWARD
    if not ready(dvalues, typenum):
        return CONVERT
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    if dv.ndim != 4 or dv.shape[0] != x.shape[0] or dv.shape[1] != x.shape[1] or dv.shape[2] != g.oh \
            or dv.shape[3] != g.ow:
        return CONVERT
    cdef cnp.ndarray dinputs = reuse(state, "dinputs", 4, cnp.PyArray_DIMS(x), typenum, dv, None)
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1]
    cdef void* p_dv = data(dv)
    cdef int* p_arg = <int*>data(arg)
    cdef void* p_dx = data(dinputs)
    cdef bint ok
    cdef int n_threads = threads_for_work(_PASS_WORK * planes * g.h * g.w, planes)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            ok = _pool_backward_threads(<float*>p_dv, p_arg, <float*>p_dx, planes, g.h * g.w, g.ohw, n_threads)
        else:
            ok = _pool_backward_threads(<double*>p_dv, p_arg, <double*>p_dx, planes, g.h * g.w, g.ohw, n_threads)
    return _OK if ok else BAD_ARGMAX


# ---------------------------------------------------------------------------------------------
# Global average pooling, (N, C, H, W) -> (N, C): each plane's mean (summed in double), and
# backward each gradient spread evenly over its plane, dvalues / (H * W) in the data's dtype.

cdef inline void _average_forward(const floating* x, floating* output, Py_ssize_t planes,
                                  Py_ssize_t hw) noexcept nogil:
    cdef Py_ssize_t q, j
    cdef double total
    for q in range(planes):
        total = 0
        for j in range(hw):
            total += x[q * hw + j]
        output[q] = <floating>(total / hw)


cdef inline void _average_backward(const floating* dvalues, floating* dinputs, Py_ssize_t planes,
                                   Py_ssize_t hw) noexcept nogil:
    cdef Py_ssize_t q, j
    cdef floating size = <floating>hw, share
    for q in range(planes):
        share = dvalues[q] / size
        for j in range(hw):
            dinputs[q * hw + j] = share


cdef bint _planes(object inputs) noexcept:
    """A ready float32/float64 (N, C, H, W) array with non-empty planes."""
    if not (ready(inputs, cnp.NPY_FLOAT32) or ready(inputs, cnp.NPY_FLOAT64)):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    return x.ndim == 4 and x.shape[2] > 0 and x.shape[3] > 0


def average_forward(dict state, object inputs):
    """GlobalAveragePool2D forward on a layer's __dict__: sets `inputs` and `output` (N, C).
    CONVERT, changing nothing, when inputs is not a C-contiguous float (N, C, H, W) array with
    non-empty planes."""
    if not _planes(inputs):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray output = reuse(state, "output", 2, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), x, None)
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1], hw = x.shape[2] * x.shape[3]
    cdef void* p_x = data(x)
    cdef void* p_out = data(output)
    with nogil:
        if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
            _average_forward(<float*>p_x, <float*>p_out, planes, hw)
        else:
            _average_forward(<double*>p_x, <double*>p_out, planes, hw)
    state["inputs"] = x
    return _OK


def average_backward(dict state, object dvalues):
    """GlobalAveragePool2D backward on a layer's __dict__: sets `dinputs` (the inputs' shape).
    NO_FORWARD without the inputs of a forward; CONVERT when dvalues is not a C-contiguous (N, C)
    array of their dtype."""
    inputs = state.get("inputs")
    if not _planes(inputs):
        return NO_FORWARD
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if not ready(dvalues, cnp.PyArray_TYPE(x)):
        return CONVERT
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    if dv.ndim != 2 or dv.shape[0] != x.shape[0] or dv.shape[1] != x.shape[1]:
        return CONVERT
    cdef cnp.ndarray dinputs = reuse(state, "dinputs", 4, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), dv, None)
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1], hw = x.shape[2] * x.shape[3]
    cdef void* p_dv = data(dv)
    cdef void* p_dx = data(dinputs)
    with nogil:
        if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
            _average_backward(<float*>p_dv, <float*>p_dx, planes, hw)
        else:
            _average_backward(<double*>p_dv, <double*>p_dx, planes, hw)
    return _OK
