"""Layer_Conv2D kernels, forward and backward each one call on the layer's state dict (the
calling convention of _common.pxd).

Layout NCHW. Conv2D: weights (O, C, kh, kw), biases (O,), output (N, O, OH, OW); kernel size,
stride and padding per axis (_im2col.pxd: Geometry, window()).

Conv2D runs sample by sample through im2col and the one GEMM (fastnn._ext._blas):
  columns (C*kh*kw, OH*OW)  columns[(c*kh + a)*kw + b, i*OW + j] = xpad[c, i*sh + a, j*sw + b]
  forward   output[n] (O, OH*OW) = weights (O, C*kh*kw) @ columns, then + biases per row
  backward  dweights += dvalues[n] (O, OH*OW) @ columns.T     (GEMM, beta = 1 within a chunk)
            dcolumns  = weights.T @ dvalues[n]                 then col2im into dinputs[n]
            dbiases   = sums of dvalues over n, i, j           (in double)
The columns of one sample stay in cache between im2col and the GEMM that reads them; they are
rebuilt in backward rather than kept from forward (N times less memory, and rebuilding costs about
what reading them back from memory would). A 1x1 kernel with stride 1 and no padding needs no
im2col at all: the input plane is the column matrix.

Threads: OpenMP over the batch (samples in forward, 8 fixed chunks in backward, both scheduled
dynamically), each thread running whole samples (im2col, GEMM, bias, col2im), with NumPy's BLAS
pinned to one thread meanwhile; how many threads, and when, is fastnn._ext._threads' policy.

Stride-1 3x3 kernels with at least 8 input channels run Winograd F(2x2, 3x3) instead
(_winograd.pxd; the rule: _use_winograd): 16 GEMMs (O, C) @ (C, P) per block of samples, P the
block's 2x2 output tiles, 2.25x fewer multiplies; forward over fixed blocks, backward over the same
8 fixed chunks, so the same bits at any thread count. Its rounding differs from im2col's; to first
order in the unit roundoff u, each output obeys
    |y_computed - y| <= (C + 12) u [|A^T| (sum_c (|G||g_c||G^T|) . (|B^T||d_c||B|)) |A| + |bias|]
(at most (C + 12) u (64 sum_c max|g_c| max|d_c| + |bias|)), and dinputs and dweights the bounds
of docs/kernels.md; tests/test_conv_winograd.py checks them value by value.
"""
from libc.string cimport memset
cimport numpy as cnp
cnp.import_array()
from cython cimport floating
from cython.parallel cimport prange, threadid

from _common cimport data, ready, reuse
from _im2col cimport (BAD_WINDOW_PADDING, BAD_WINDOW_STRIDE, Geometry, _col2im, _im2col, copy_row, fits_plane,
                      window)
from _regularization cimport add_penalty_gradient
from _winograd cimport (Tiles, input_gradient_transform, input_transform, output_gradient_transform,
                        output_transform, tiles_of, weights_gradient, weights_transform)
from _smallgemm cimport (fnn_add_rows_avx512, fnn_sgemm_nn_avx512, fnn_sgemm_nn_rows_avx512, fnn_sgemm_nt_avx512,
                        fnn_sgemm_nt_rows_avx512, small_gemm)
from fastnn._ext._blas cimport chain_shapes, gemm, small_gemm_on
from fastnn._ext._threads cimport blas_threads_pin, blas_threads_restore, threads_for_work

include "_status.pxi"


# ---------------------------------------------------------------------------------------------
# Conv2D forward and backward over the whole batch, one sample per GEMM. (The columns of several
# samples side by side, one wider GEMM for the group, did not pay: mnist-c2 and cifar-c2 within
# 2% either way on one thread, lenet-c2 15% and the first layers 2x slower from the extra copy of
# the product; and OpenBLAS splits those wider GEMMs over 2 threads worse than two OpenMP threads
# running a sample each: 35 ms against 22 ms for mnist-c2.)

cdef inline double _plane_sum(const floating* v, Py_ssize_t n) noexcept nogil:
    """The sum of v[0:n] in double, in four interleaved partial sums (so it vectorises)."""
    cdef double t0 = 0, t1 = 0, t2 = 0, t3 = 0
    cdef Py_ssize_t j, m = n - n % 4
    for j in range(0, m, 4):
        t0 += v[j]
        t1 += v[j + 1]
        t2 += v[j + 2]
        t3 += v[j + 3]
    for j in range(m, n):
        t0 += v[j]
    return (t0 + t1) + (t2 + t3)


cdef inline void _conv_forward(const floating* x, const floating* weights, const floating* biases,
                               floating* output, floating* columns, const Geometry* g,
                               Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Samples [first, stop): output[n] = weights @ im2col(x[n]) + biases."""
    cdef Py_ssize_t n, o, j
    cdef Py_ssize_t in_size = g.c * g.h * g.w, out_size = g.o * g.ohw
    cdef const floating* cols
    cdef floating* out
    cdef floating bias
    for n in range(first, stop):
        if g.direct:
            cols = x + n * in_size
        else:
            _im2col(x + n * in_size, columns, g.ohw, g)
            cols = columns
        out = output + n * out_size
        small_gemm(False, False, g.o, g.ohw, g.ckk, <floating>1, weights, g.ckk, cols, g.ohw,
                   <floating>0, out, g.ohw)
        for o in range(g.o):
            bias = biases[o]
            for j in range(g.ohw):
                out[o * g.ohw + j] += bias


cdef inline void _conv_backward(const floating* dvalues, const floating* x, const floating* weights,
                                floating* dweights_t, double* bias_sums, floating* dinputs,
                                floating* columns, floating* dcolumns, const Geometry* g,
                                Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Samples [first, stop): dweights_t (C*kh*kw, O) = the sum of im2col(x[n]) @ dvalues[n].T
    (overwritten, zeros for an empty range), bias_sums[o] = sum of dvalues[n, o] (in double), and
    unless dinputs is NULL dinputs[n] = col2im(weights.T @ dvalues[n])."""
    cdef Py_ssize_t n, o
    cdef Py_ssize_t in_size = g.c * g.h * g.w, out_size = g.o * g.ohw
    cdef const floating* cols
    cdef const floating* dv
    for o in range(g.o):
        bias_sums[o] = 0
    if stop <= first:
        memset(dweights_t, 0, g.o * g.ckk * sizeof(floating))
    for n in range(first, stop):
        dv = dvalues + n * out_size
        if g.direct:
            cols = x + n * in_size
        else:
            _im2col(x + n * in_size, columns, g.ohw, g)
            cols = columns
        # dweights.T += columns @ dvalues[n].T: OpenBLAS runs this orientation about 1.2x faster
        # than dvalues[n] @ columns.T (mnist-c2's shapes, one thread: 95-99 against 79-83 GFLOP/s).
        small_gemm(False, True, g.ckk, g.o, g.ohw, <floating>1, cols, g.ohw, dv, g.ohw,
                   <floating>(0 if n == first else 1), dweights_t, g.o)
        for o in range(g.o):
            bias_sums[o] += _plane_sum(dv + o * g.ohw, g.ohw)
        if dinputs != NULL:
            if g.direct:
                small_gemm(True, False, g.ckk, g.ohw, g.o, <floating>1, weights, g.ckk, dv, g.ohw,
                           <floating>0, dinputs + n * in_size, g.ohw)
            else:
                small_gemm(True, False, g.ckk, g.ohw, g.o, <floating>1, weights, g.ckk, dv, g.ohw,
                           <floating>0, dcolumns, g.ohw)
                _col2im(dcolumns, g.ohw, dinputs + n * in_size, g)


cdef inline void _conv_backward_finish(floating* dweights, const floating* partial_t,
                                       floating* dbiases, const double* bias_sums,
                                       const floating* weights, const floating* biases,
                                       Py_ssize_t n_chunks, const Geometry* g,
                                       double l1w, double l2w, double l1b, double l2b) noexcept nogil:
    """dweights (O, C*kh*kw) = the chunks' transposed sums (partial_t: n_chunks x (C*kh*kw, O))
    added in chunk order; dbiases from the chunks' double sums; then the regularisation terms."""
    cdef Py_ssize_t c, r, o
    cdef Py_ssize_t size = g.o * g.ckk
    cdef double total
    cdef floating acc
    for o in range(g.o):
        for r in range(g.ckk):
            acc = partial_t[r * g.o + o] if n_chunks > 0 else 0
            for c in range(1, n_chunks):
                acc = acc + partial_t[c * size + r * g.o + o]
            dweights[o * g.ckk + r] = acc
    for o in range(g.o):
        total = 0
        for c in range(n_chunks):
            total += bias_sums[c * g.o + o]
        dbiases[o] = <floating>total
    add_penalty_gradient(dweights, weights, size, l1w, l2w)
    add_penalty_gradient(dbiases, biases, g.o, l1b, l2b)


# ---------------------------------------------------------------------------------------------
# The shifted-plane path: float32 stride-1 convolutions off the Winograd path (5x5 kernels, first
# layers) when the AVX-512 GEMM kernels run (_smallgemm.pxd). With stride 1, row (c, a, b) of the
# column matrix is the (zero-padded) input plane c read from offset a * WP + b, if the output is
# computed over the padded plane's width WP instead of OW: position p = i * WP + j of that
# "extended" output reads element p + a * WP + b of the plane, and the WP - OW positions past each
# output row are computed and dropped. So the GEMM kernels read their rows in place (a table of K
# row offsets) and no column matrix is written: forward, extended = weights @ rows, then the output
# rows are copied out with the bias; dweights.T += rows @ dvalues_ext.T, dvalues spread to the
# extended width with zeros in the dropped positions; dinputs: dcolumns_ext = weights.T @
# dvalues_ext, each of its K rows added into the plane at its offset (long contiguous rows instead
# of col2im's OW-long pieces), the dropped positions adding zeros. Extended width N_EXT =
# (OH - 1) * WP + OW, so the last row read ends at the plane's last element. Measured on LeNet's
# second layer (6 -> 16 channels, 5x5, 14x14, batch 128; forward + backward, one thread): see
# docs/kernels.md. Each output, dcolumns and dinputs value is the im2col path's sum in the same
# order (the same bits); dweights sums over the extended positions, so its lanes and bits differ.

cdef bint _shifted_enabled = True


def set_shifted_planes(bint enabled):
    """Whether float32 stride-1 convolutions off the Winograd path may take the shifted-plane path
    (True, the default, where the AVX-512 GEMM kernels run; False: im2col, for the tests and
    benchmarks that compare the two). Returns the previous setting."""
    global _shifted_enabled
    cdef bint before = _shifted_enabled
    _shifted_enabled = enabled
    return before


cdef inline bint _shifted(const Geometry* g) noexcept nogil:
    return _shifted_enabled and g.sh == 1 and g.sw == 1 and not g.direct and small_gemm_on()


cdef inline bint _padded(const Geometry* g) noexcept nogil:
    return g.pt != 0 or g.pb != 0 or g.pl != 0 or g.pr != 0


cdef inline Py_ssize_t _wp(const Geometry* g) noexcept nogil:
    return g.w + g.pl + g.pr


cdef inline Py_ssize_t _padded_plane(const Geometry* g) noexcept nogil:
    return (g.h + g.pt + g.pb) * _wp(g)


cdef inline Py_ssize_t _n_ext(const Geometry* g) noexcept nogil:
    return (g.oh - 1) * _wp(g) + g.ow


cdef inline Py_ssize_t _shifted_scratch(const Geometry* g) noexcept nogil:
    """A thread's scratch on the shifted path, forward or backward: the padded sample and the
    padded dinputs (when there is padding), the extended output or dvalues, dcolumns_ext."""
    cdef Py_ssize_t padded = g.c * _padded_plane(g) if _padded(g) else 0
    return 2 * padded + g.o * _n_ext(g) + g.ckk * _n_ext(g)


cdef inline void _shifted_offsets(const Geometry* g, Py_ssize_t* offsets) noexcept nogil:
    cdef Py_ssize_t c, a, b
    for c in range(g.c):
        for a in range(g.kh):
            for b in range(g.kw):
                offsets[(c * g.kh + a) * g.kw + b] = c * _padded_plane(g) + a * _wp(g) + b


cdef inline const float* _padded_sample(const float* x, float* xp, const Geometry* g) noexcept nogil:
    """Sample x (C, H, W) zero-padded into xp (C, HP, WP); x itself when there is no padding."""
    cdef Py_ssize_t c, i, wp = _wp(g), plane = _padded_plane(g)
    if not _padded(g):
        return x
    memset(xp, 0, g.c * plane * sizeof(float))
    for c in range(g.c):
        for i in range(g.h):
            copy_row(xp + c * plane + (i + g.pt) * wp + g.pl, x + (c * g.h + i) * g.w, g.w)
    return xp


cdef inline void _shifted_forward(const float* x, const float* weights, const float* biases,
                                  float* output, float* scratch, const Py_ssize_t* offsets,
                                  const Geometry* g, Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Samples [first, stop): output[n] = weights @ im2col(x[n]) + biases, on the extended width."""
    cdef Py_ssize_t n, o, i, j
    cdef Py_ssize_t wp = _wp(g), n_ext = _n_ext(g), in_size = g.c * g.h * g.w, out_size = g.o * g.ohw
    cdef float* xp = scratch
    cdef float* ext = scratch + (g.c * _padded_plane(g) if _padded(g) else 0)
    cdef const float* src
    cdef float* out
    cdef float bias
    for n in range(first, stop):
        src = _padded_sample(x + n * in_size, xp, g)
        fnn_sgemm_nn_rows_avx512(g.o, n_ext, g.ckk, weights, g.ckk, 1, src, 0, offsets, 0, ext, n_ext)
        out = output + n * out_size
        for o in range(g.o):
            bias = biases[o]
            for i in range(g.oh):
                for j in range(g.ow):
                    out[(o * g.oh + i) * g.ow + j] = ext[o * n_ext + i * wp + j] + bias


cdef inline void _shifted_backward(const float* dvalues, const float* x, const float* weights,
                                   float* dweights_t, double* bias_sums, float* dinputs, float* scratch,
                                   const Py_ssize_t* offsets, const Geometry* g,
                                   Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """_conv_backward's results for samples [first, stop), on the extended width."""
    cdef Py_ssize_t n, o, i, j, c
    cdef Py_ssize_t wp = _wp(g), n_ext = _n_ext(g), plane = _padded_plane(g)
    cdef Py_ssize_t in_size = g.c * g.h * g.w, out_size = g.o * g.ohw
    cdef Py_ssize_t padded = g.c * plane if _padded(g) else 0
    cdef float* xp = scratch
    cdef float* dve = scratch + padded
    cdef float* dce = dve + g.o * n_ext
    cdef float* dxp = dce + g.ckk * n_ext
    cdef const float* src
    cdef const float* dv
    cdef float* target
    for o in range(g.o):
        bias_sums[o] = 0
    if stop <= first:
        memset(dweights_t, 0, g.o * g.ckk * sizeof(float))
    for n in range(first, stop):
        dv = dvalues + n * out_size
        for o in range(g.o):
            bias_sums[o] += _plane_sum(dv + o * g.ohw, g.ohw)
            for i in range(g.oh):
                copy_row(dve + o * n_ext + i * wp, dv + (o * g.oh + i) * g.ow, g.ow)
                if i < g.oh - 1:
                    for j in range(g.ow, wp):
                        dve[o * n_ext + i * wp + j] = 0
        src = _padded_sample(x + n * in_size, xp, g)
        fnn_sgemm_nt_rows_avx512(g.ckk, g.o, n_ext, src, 0, offsets, dve, n_ext, n != first, dweights_t, g.o)
        if dinputs != NULL:
            fnn_sgemm_nn_avx512(g.ckk, n_ext, g.o, weights, 1, g.ckk, dve, n_ext, 0, dce, n_ext)
            target = dxp if padded else dinputs + n * in_size
            memset(target, 0, g.c * plane * sizeof(float))
            fnn_add_rows_avx512(target, offsets, dce, g.ckk, n_ext)
            if padded:
                for c in range(g.c):
                    for i in range(g.h):
                        copy_row(dinputs + n * in_size + (c * g.h + i) * g.w,
                                 dxp + c * plane + (i + g.pt) * wp + g.pl, g.w)


# Drivers. The batch is cut into a fixed number of chunks that depends on the batch size only;
# each chunk sums its own dweights (and bias sums), and the chunk sums are added in chunk order.
# So results do not depend on the thread count or on which thread ran which chunk, and threads
# can take samples/chunks dynamically: on a busy machine a thread that shares its core with
# another process does less of the work instead of holding everyone up. Each thread has its own
# im2col scratch. NumPy's BLAS is pinned to one thread throughout (when it can be): one sample's
# GEMMs are too small to split well (OpenBLAS on two threads ran them 1.7x slower than on one).

cdef enum:
    _MAX_CHUNKS = 8


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n_samples) noexcept nogil:
    return n_samples if n_samples < _MAX_CHUNKS else _MAX_CHUNKS


cdef void _forward_threads(const floating* x, const floating* weights, const floating* biases,
                           floating* output, floating* columns, const Py_ssize_t* offsets, const Geometry* g,
                           int n_threads) noexcept nogil:
    """The forward over the batch: the shifted-plane path when offsets is not NULL (float32),
    im2col otherwise; `columns` is the threads' scratch."""
    cdef Py_ssize_t n
    cdef Py_ssize_t scratch = _shifted_scratch(g) if offsets != NULL else g.ckk * g.ohw
    cdef int saved = blas_threads_pin()
    if floating is float:
        if offsets != NULL:
            if n_threads <= 1:
                _shifted_forward(x, weights, biases, output, columns, offsets, g, 0, g.n)
            else:
                for n in prange(g.n, num_threads=n_threads, schedule="dynamic", chunksize=1):
                    _shifted_forward(x, weights, biases, output, columns + threadid() * scratch, offsets, g, n, n + 1)
            blas_threads_restore(saved)
            return
    if n_threads <= 1:
        _conv_forward(x, weights, biases, output, columns, g, 0, g.n)
    else:
        for n in prange(g.n, num_threads=n_threads, schedule="dynamic", chunksize=1):
            _conv_forward(x, weights, biases, output, columns + threadid() * scratch, g, n, n + 1)
    blas_threads_restore(saved)


cdef void _backward_threads(const floating* dvalues, const floating* x, const floating* weights,
                            const floating* biases, floating* dweights, floating* partial_t,
                            floating* dbiases, double* bias_sums, floating* dinputs,
                            floating* columns, floating* dcolumns, const Py_ssize_t* offsets,
                            const Geometry* g, int n_threads,
                            double l1w, double l2w, double l1b, double l2b) noexcept nogil:
    """The backward over the batch in its fixed chunks: the shifted-plane path when offsets is not
    NULL (float32; `columns` is then all the threads' scratch), im2col otherwise."""
    cdef Py_ssize_t c, t
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    cdef Py_ssize_t scratch = g.ckk * g.ohw
    cdef Py_ssize_t size = g.o * g.ckk
    cdef Py_ssize_t shifted = _shifted_scratch(g) if offsets != NULL else 0
    cdef int saved = blas_threads_pin()
    if floating is float:
        if offsets != NULL:
            if n_threads <= 1:
                for c in range(n_chunks):
                    _shifted_backward(dvalues, x, weights, partial_t + c * size, bias_sums + c * g.o, dinputs,
                                      columns, offsets, g, (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
            else:
                for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
                    _shifted_backward(dvalues, x, weights, partial_t + c * size, bias_sums + c * g.o, dinputs,
                                      columns + threadid() * shifted, offsets, g,
                                      (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
            blas_threads_restore(saved)
            _conv_backward_finish(dweights, partial_t, dbiases, bias_sums, weights, biases,
                                  n_chunks, g, l1w, l2w, l1b, l2b)
            return
    if n_threads <= 1:
        for c in range(n_chunks):
            _conv_backward(dvalues, x, weights, partial_t + c * size, bias_sums + c * g.o, dinputs,
                           columns, dcolumns, g, (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
    else:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            t = threadid()
            _conv_backward(dvalues, x, weights, partial_t + c * size, bias_sums + c * g.o, dinputs,
                           columns + t * scratch, NULL if dcolumns == NULL else dcolumns + t * scratch,
                           g, (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
    blas_threads_restore(saved)
    _conv_backward_finish(dweights, partial_t, dbiases, bias_sums, weights, biases,
                          n_chunks, g, l1w, l2w, l1b, l2b)


# ---------------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) (_winograd.pxd) for stride-1 3x3 kernels with enough input channels
# (_use_winograd). The batch is cut into blocks of samples whose size depends on the geometry only
# (_wino_block_samples: at most _WINO_TILES tiles, at least one sample), so one block's 16 GEMMs
# are (O, C) @ (C, P) with P a few hundred tiles, and a thread's scratch (V and M, 16 * (C + O) * P
# values, and one plane's phase arrays) stays a few hundred kB to a few MB (1.5 MB for mnist-c2). Forward: blocks run dynamically over the threads, each
# writing its own samples' outputs. Backward: the same 8 fixed chunks as im2col, each cut into
# blocks run in order, each chunk summing its own dU; the chunk sums are added in chunk order. So
# the results do not depend on the thread count either.

cdef enum:
    _WINO_TILES = 256          # tiles in one block of samples, at most (or one sample's)
    _WINO_VALUES = 1 << 20     # values of V and M for one block, at most (or one sample's)
    _WINO_MIN_CHANNELS = 8     # input channels, at least, for the Winograd path


cdef bint _winograd_enabled = True


def set_winograd(bint enabled):
    """Whether the Winograd path may be used (True, the default; False: im2col everywhere, for the
    tests and benchmarks that compare the two). Returns the previous setting."""
    global _winograd_enabled
    cdef bint before = _winograd_enabled
    _winograd_enabled = enabled
    return before


def small_gemm_into(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None,
                    bint trans_a=False, bint trans_b=False, bint accumulate=False):
    """out = op(a) @ op(b) (+ out when accumulate) through the AVX-512 kernels alone, for the
    tests: op(a) (m, k) is a, or a.T with trans_a; op(b) (k, n) is b, or b.T with trans_b (not
    both); all float32, 2-D, with unit stride along their rows (any row stride: views of a larger
    array are how the tests reach the leading dimensions). Raises RuntimeError where the kernels
    cannot run. Returns out."""
    cdef cnp.ndarray arr
    for arr, name in ((a, "a"), (b, "b"), (out, "out")):
        if arr.ndim != 2 or cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32:
            raise TypeError(f"{name} must be a 2-D float32 array, got {arr.ndim}-D {arr.dtype}")
        if arr.size and (arr.strides[1] != 4 or arr.strides[0] % 4 != 0 or arr.strides[0] < 4 * arr.shape[1]):
            raise ValueError(f"{name} must have unit stride along its rows")
    if trans_a and trans_b:
        raise ValueError("trans_a and trans_b cannot both be set: the kernels do not cover op(a) @ op(b) "
                         "with both transposed")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    cdef Py_ssize_t m, k, n
    chain_shapes(a, b, out, trans_a, trans_b, &m, &k, &n)
    cdef Py_ssize_t lda = a.strides[0] // 4, ldb = b.strides[0] // 4, ldc = out.strides[0] // 4
    if not small_gemm_on():
        raise RuntimeError("the AVX-512 GEMM kernels cannot run here (no AVX-512, or switched off)")
    cdef bint done
    cdef const float* pa = <float*>cnp.PyArray_DATA(a)
    cdef const float* pb = <float*>cnp.PyArray_DATA(b)
    cdef float* pc = <float*>cnp.PyArray_DATA(out)
    with nogil:
        if trans_b:
            done = fnn_sgemm_nt_avx512(m, n, k, pa, lda, pb, ldb, accumulate, pc, ldc)
        else:
            done = fnn_sgemm_nn_avx512(m, n, k, pa, 1 if trans_a else lda, lda if trans_a else 1,
                                       pb, ldb, accumulate, pc, ldc)
    if not done:
        raise RuntimeError("the AVX-512 GEMM kernels are not compiled in this build")
    return out


cdef inline bint _use_winograd(const Geometry* g) noexcept nogil:
    """The fixed rule for the Winograd path: a 3x3 stride-1 kernel, at least _WINO_MIN_CHANNELS
    input channels, a non-empty batch. (Measured on one thread, fw+bw against im2col, in one
    process: 0.4-0.75x from 8 input channels up, any output channels, planes 2x2 to 28x28; with
    fewer input channels the transforms of many output planes outweigh the short GEMMs: 1 -> 32
    channels 1.9x, 4 -> 32 1.2x, 2 -> 16 1.1x, though 4 -> 4 0.64x.)"""
    return (_winograd_enabled and g.kh == 3 and g.kw == 3 and g.sh == 1 and g.sw == 1 and g.n > 0
            and g.c >= _WINO_MIN_CHANNELS)


cdef inline Py_ssize_t _wino_block_samples(const Geometry* g, const Tiles* tl) noexcept nogil:
    """Samples a block: _WINO_TILES tiles at most, and V and M (16 * (C + O) values a tile) at
    most _WINO_VALUES values; one sample at least (whose V and M, about 4 * (C + O) * OH*OW
    values, are about the size of the im2col path's two column matrices, 18 * C * OH*OW)."""
    cdef Py_ssize_t tiles = _WINO_VALUES // (16 * (g.c + g.o))
    if tiles > _WINO_TILES:
        tiles = _WINO_TILES
    cdef Py_ssize_t s = tiles // tl.t
    if s < 1:
        s = 1
    return s if s < g.n else g.n


cdef inline Py_ssize_t _skew(Py_ssize_t n) noexcept nogil:
    """The distance between the 16 matrices of V or M: n rounded up to 16 values, plus 16. (With
    n a multiple of 4 kB, e.g. cifar-c2's 32 channels x 256 tiles, the transforms' 16 streams all
    fell in the same cache sets: Winograd ran 1.9x slower than im2col there.)"""
    return (n + 15) // 16 * 16 + 16


cdef inline Py_ssize_t _wino_scratch(const Geometry* g, const Tiles* tl, Py_ssize_t block) noexcept nogil:
    """A thread's scratch: V (16, C, P), M (16, O, P) and the transforms' work area for one
    plane, P = block * T."""
    return 16 * (_skew(g.c * block * tl.t) + _skew(g.o * block * tl.t)) + tl.work


cdef inline void _wino_inputs(const floating* x, floating* v, floating* plane, const Geometry* g,
                              const Tiles* tl, Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """V (16, C, P) of samples [n0, n1), P = (n1 - n0) * T."""
    cdef Py_ssize_t s, c
    cdef Py_ssize_t p = (n1 - n0) * tl.t, hw = g.h * g.w
    for s in range(n1 - n0):
        for c in range(g.c):
            input_transform(x + ((n0 + s) * g.c + c) * hw, g.h, g.w, g.pt, g.pl, plane,
                            v + c * p + s * tl.t, _skew(g.c * p), tl)


cdef inline void _wino_forward(const floating* x, const floating* u, const floating* biases,
                               floating* output, floating* scratch, const Geometry* g, const Tiles* tl,
                               Py_ssize_t block, Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """Samples [n0, n1) (at most `block`): output = Winograd convolution + biases."""
    cdef Py_ssize_t s, o, xi
    cdef Py_ssize_t p = (n1 - n0) * tl.t
    cdef Py_ssize_t vs = _skew(g.c * p), ms = _skew(g.o * p)
    cdef floating* v = scratch
    cdef floating* m = v + 16 * _skew(g.c * block * tl.t)
    cdef floating* plane = m + 16 * _skew(g.o * block * tl.t)
    _wino_inputs(x, v, plane, g, tl, n0, n1)
    for xi in range(16):
        small_gemm(False, False, g.o, p, g.c, <floating>1, u + xi * g.o * g.c, g.c, v + xi * vs, p,
                   <floating>0, m + xi * ms, p)
    for s in range(n1 - n0):
        for o in range(g.o):
            output_transform(m + o * p + s * tl.t, ms, biases[o], output + ((n0 + s) * g.o + o) * g.ohw,
                             g.oh, g.ow, plane, tl)


cdef inline void _wino_backward(const floating* dvalues, const floating* x, const floating* u,
                                floating* du, double* bias_sums, floating* dinputs, floating* scratch,
                                const Geometry* g, const Tiles* tl, Py_ssize_t block,
                                Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Samples [first, stop), in blocks of at most `block`: du (16, O, C) = the sum of
    dM @ V.T (overwritten, zeros for an empty range), bias_sums[o] = sum of dvalues[n, o] (in
    double), and unless dinputs is NULL dinputs[n] = the adjoint transform of U.T @ dM."""
    cdef Py_ssize_t n, o, s, c, xi, b, n0, n1, p, vs, ms
    cdef Py_ssize_t length = stop - first
    cdef Py_ssize_t n_blocks = (length + block - 1) // block
    cdef Py_ssize_t hw = g.h * g.w
    cdef floating* v = scratch
    cdef floating* dm = v + 16 * _skew(g.c * block * tl.t)
    cdef floating* plane = dm + 16 * _skew(g.o * block * tl.t)
    for o in range(g.o):
        bias_sums[o] = 0
    if length <= 0:
        memset(du, 0, 16 * g.o * g.c * sizeof(floating))
        return
    for n in range(first, stop):
        for o in range(g.o):
            bias_sums[o] += _plane_sum(dvalues + (n * g.o + o) * g.ohw, g.ohw)
    for b in range(n_blocks):
        n0 = first + (length * b) // n_blocks
        n1 = first + (length * (b + 1)) // n_blocks
        p = (n1 - n0) * tl.t
        vs = _skew(g.c * p)
        ms = _skew(g.o * p)
        _wino_inputs(x, v, plane, g, tl, n0, n1)
        for s in range(n1 - n0):
            for o in range(g.o):
                output_gradient_transform(dvalues + ((n0 + s) * g.o + o) * g.ohw, g.oh, g.ow,
                                          dm + o * p + s * tl.t, ms, plane, tl)
        for xi in range(16):
            small_gemm(False, True, g.o, g.c, p, <floating>1, dm + xi * ms, p, v + xi * vs, p,
                       <floating>(0 if b == 0 else 1), du + xi * g.o * g.c, g.c)
        if dinputs != NULL:
            for xi in range(16):     # dV, over V (no longer needed)
                small_gemm(True, False, g.c, p, g.o, <floating>1, u + xi * g.o * g.c, g.c, dm + xi * ms, p,
                           <floating>0, v + xi * vs, p)
            for s in range(n1 - n0):
                for c in range(g.c):
                    input_gradient_transform(v + c * p + s * tl.t, vs, dinputs + ((n0 + s) * g.c + c) * hw,
                                             g.h, g.w, g.pt, g.pl, plane, tl)


cdef void _wino_forward_threads(const floating* x, const floating* weights, const floating* biases,
                                floating* output, floating* u, floating* scratch, const Geometry* g,
                                const Tiles* tl, Py_ssize_t block, int n_threads) noexcept nogil:
    cdef Py_ssize_t b
    cdef Py_ssize_t n_blocks = (g.n + block - 1) // block
    cdef Py_ssize_t size = _wino_scratch(g, tl, block)
    weights_transform(weights, u, g.o, g.c)
    cdef int saved = blas_threads_pin()
    if n_threads <= 1:
        for b in range(n_blocks):
            _wino_forward(x, u, biases, output, scratch, g, tl, block, b * block,
                          (b + 1) * block if (b + 1) * block < g.n else g.n)
    else:
        for b in prange(n_blocks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            _wino_forward(x, u, biases, output, scratch + threadid() * size, g, tl, block, b * block,
                          (b + 1) * block if (b + 1) * block < g.n else g.n)
    blas_threads_restore(saved)


cdef void _wino_backward_threads(const floating* dvalues, const floating* x, const floating* weights,
                                 const floating* biases, floating* dweights, floating* u,
                                 floating* partial, floating* dbiases, double* bias_sums,
                                 floating* dinputs, floating* scratch, const Geometry* g,
                                 const Tiles* tl, Py_ssize_t block, int n_threads,
                                 double l1w, double l2w, double l1b, double l2b) noexcept nogil:
    cdef Py_ssize_t c, i, o
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    cdef Py_ssize_t size = _wino_scratch(g, tl, block)
    cdef Py_ssize_t usize = 16 * g.o * g.c
    cdef double total
    weights_transform(weights, u, g.o, g.c)
    cdef int saved = blas_threads_pin()
    if n_threads <= 1:
        for c in range(n_chunks):
            _wino_backward(dvalues, x, u, partial + c * usize, bias_sums + c * g.o, dinputs, scratch,
                           g, tl, block, (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
    else:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            _wino_backward(dvalues, x, u, partial + c * usize, bias_sums + c * g.o, dinputs,
                           scratch + threadid() * size, g, tl, block,
                           (g.n * c) // n_chunks, (g.n * (c + 1)) // n_chunks)
    blas_threads_restore(saved)
    for c in range(1, n_chunks):        # the chunks' dU added in chunk order, into chunk 0's
        for i in range(usize):
            partial[i] = partial[i] + partial[c * usize + i]
    weights_gradient(partial, dweights, g.o, g.c)
    for o in range(g.o):
        total = 0
        for c in range(n_chunks):
            total += bias_sums[c * g.o + o]
        dbiases[o] = <floating>total
    add_penalty_gradient(dweights, weights, g.o * g.ckk, l1w, l2w)
    add_penalty_gradient(dbiases, biases, g.o, l1b, l2b)


# ---------------------------------------------------------------------------------------------
# Conv2D entry points. Each returns a status (_status.pxi): OK; CONVERT, changing nothing, when the
# data argument is not in the exact form below; BAD_WEIGHTS, BAD_BIASES, BAD_STRIDE or BAD_PADDING
# when the layer's parameters are not usable; NO_FORWARD from backward without a matching forward.

cdef int _conv_parameters(dict state, Geometry* g, int* typenum) except -1:
    """Fill g's kernel fields and typenum (the dtype's) from the layer's weights, biases,
    kernel_size, stride and padding and return OK, or the status that says which cannot be used."""
    weights = state.get("weights")
    biases = state.get("biases")
    cdef int unusable = window(state.get("kernel_size"), state.get("stride"), state.get("padding"), g)
    if unusable == BAD_WINDOW_STRIDE:
        return BAD_STRIDE
    if unusable == BAD_WINDOW_PADDING:
        return BAD_PADDING
    cdef cnp.ndarray w
    if unusable or not (ready(weights, cnp.NPY_FLOAT32) or ready(weights, cnp.NPY_FLOAT64)) \
            or (<cnp.ndarray>weights).ndim != 4:
        return BAD_WEIGHTS
    w = <cnp.ndarray>weights
    if (w.shape[0] != state.get("out_channels") or w.shape[1] != state.get("in_channels")
            or w.shape[2] != g.kh or w.shape[3] != g.kw or w.shape[0] == 0 or w.shape[1] == 0):
        return BAD_WEIGHTS
    if not ready(biases, cnp.PyArray_TYPE(w)) or (<cnp.ndarray>biases).ndim != 1 \
            or (<cnp.ndarray>biases).shape[0] != w.shape[0]:
        return BAD_BIASES
    g.o = w.shape[0]
    g.c = w.shape[1]
    g.ckk = g.c * g.kh * g.kw
    typenum[0] = cnp.PyArray_TYPE(w)
    return OK


cdef bint _conv_input(object inputs, int typenum, Geometry* g) noexcept:
    """inputs is a ready (N, C, H, W) array that the kernel fits in (after padding): fill g."""
    if not ready(inputs, typenum):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    if x.ndim != 4 or x.shape[1] != g.c or not fits_plane(g, x.shape[2], x.shape[3]):
        return False
    g.n = x.shape[0]
    g.direct = g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.pt == 0 and g.pl == 0
    return True


cdef cnp.ndarray _scratch(dict state, str name, Py_ssize_t n0, Py_ssize_t n1, Py_ssize_t n2, int typenum):
    """A scratch buffer of the layer (e.g. each thread's im2col columns), reused while its shape
    stays the same."""
    cdef cnp.npy_intp dims[3]
    dims[0] = n0
    dims[1] = n1
    dims[2] = n2
    return reuse(state, name, 3, dims, typenum, None, None)


cdef Py_ssize_t* _shifted_table(dict state, const Geometry* g) except NULL:
    """The shifted-plane path's K row offsets, in a scratch buffer of the layer."""
    cdef Py_ssize_t* offsets = <Py_ssize_t*>data(_scratch(state, "_shifted_offsets", 1, 1, g.ckk, cnp.NPY_INTP))
    _shifted_offsets(g, offsets)
    return offsets


def conv_forward(dict state, object inputs):
    """Conv2D forward on a layer's __dict__: sets `inputs` and `output` (N, O, OH, OW).

    CONVERT when `inputs` is not already a C-contiguous (N, C, H, W) array of the weights' dtype
    with the layer's C and a plane the kernel fits in."""
    cdef Geometry g
    cdef int typenum
    cdef int status = _conv_parameters(state, &g, &typenum)
    if status != OK:
        return status
    if not _conv_input(inputs, typenum, &g):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray weights = state["weights"]
    cdef cnp.ndarray biases = state["biases"]
    cdef cnp.npy_intp dims[4]
    dims[0] = g.n
    dims[1] = g.o
    dims[2] = g.oh
    dims[3] = g.ow
    cdef cnp.ndarray output = reuse(state, "output", 4, dims, typenum, x, weights)
    if _use_winograd(&g):
        _winograd_forward(state, x, weights, biases, output, &g, typenum)
        state["inputs"] = x
        return _OK
    cdef int n_threads = threads_for_work(g.n * g.o * g.ckk * g.ohw, g.n)
    cdef void* p_cols = NULL
    cdef Py_ssize_t* p_off = NULL
    if typenum == cnp.NPY_FLOAT32 and _shifted(&g):
        p_cols = data(_scratch(state, "_shifted", n_threads, _shifted_scratch(&g), 1, typenum))
        p_off = _shifted_table(state, &g)
    elif not g.direct:
        p_cols = data(_scratch(state, "_columns", n_threads, g.ckk, g.ohw, typenum))
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_out = data(output)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _forward_threads(<float*>p_x, <float*>p_w, <float*>p_b, <float*>p_out, <float*>p_cols, p_off, &g,
                             n_threads)
        else:
            _forward_threads(<double*>p_x, <double*>p_w, <double*>p_b, <double*>p_out, <double*>p_cols, NULL,
                             &g, n_threads)
    state["inputs"] = x
    return _OK


def conv_backward(dict state, object dvalues, bint want_dinputs=True):
    """Conv2D backward on a layer's __dict__: sets `dweights`, `dbiases` and (unless
    want_dinputs is False) `dinputs`, from `dvalues` and the `inputs` of the last forward.

    CONVERT when `dvalues` is not already a C-contiguous array of the weights' dtype with the
    forward's output shape."""
    cdef Geometry g
    cdef int typenum
    cdef int status = _conv_parameters(state, &g, &typenum)
    if status != OK:
        return status
    inputs = state.get("inputs")
    if not _conv_input(inputs, typenum, &g):
        return NO_FORWARD
    if not ready(dvalues, typenum):
        return CONVERT
    cdef cnp.ndarray dv = <cnp.ndarray>dvalues
    if (dv.ndim != 4 or dv.shape[0] != g.n or dv.shape[1] != g.o or dv.shape[2] != g.oh
            or dv.shape[3] != g.ow):
        return CONVERT
    cdef cnp.ndarray x = <cnp.ndarray>inputs
    cdef cnp.ndarray weights = state["weights"]
    cdef cnp.ndarray biases = state["biases"]
    cdef double l1w = state.get("weight_regularizer_l1", 0)
    cdef double l2w = state.get("weight_regularizer_l2", 0)
    cdef double l1b = state.get("bias_regularizer_l1", 0)
    cdef double l2b = state.get("bias_regularizer_l2", 0)
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    cdef int n_threads = threads_for_work(g.n * g.o * g.ckk * g.ohw, n_chunks)
    cdef cnp.ndarray dweights = reuse(state, "dweights", 4, cnp.PyArray_DIMS(weights), typenum, dv, x)
    cdef cnp.ndarray dbiases = reuse(state, "dbiases", 1, cnp.PyArray_DIMS(biases), typenum, dv, None)
    cdef cnp.ndarray dinputs = None
    if want_dinputs:
        dinputs = reuse(state, "dinputs", 4, cnp.PyArray_DIMS(x), typenum, dv, weights)
    if _use_winograd(&g):
        _winograd_backward(state, dv, x, weights, biases, dweights, dbiases, dinputs, &g, typenum,
                           l1w, l2w, l1b, l2b)
        return _OK
    cdef void* p_dx = NULL
    cdef void* p_dcols = NULL
    cdef void* p_cols = NULL
    cdef void* p_partial = NULL
    cdef Py_ssize_t* p_off = NULL
    if want_dinputs:
        p_dx = data(dinputs)
    if typenum == cnp.NPY_FLOAT32 and _shifted(&g):
        # the forward's thread count (over samples) is at least the backward's (over chunks): one buffer
        p_cols = data(_scratch(state, "_shifted", threads_for_work(g.n * g.o * g.ckk * g.ohw, g.n),
                               _shifted_scratch(&g), 1, typenum))
        p_off = _shifted_table(state, &g)
    elif not g.direct:
        if want_dinputs:
            p_dcols = data(_scratch(state, "_dcolumns", n_threads, g.ckk, g.ohw, typenum))
        p_cols = data(_scratch(state, "_columns", n_threads, g.ckk, g.ohw, typenum))
    if n_chunks > 0:   # each chunk's dweights, transposed: (C*kh*kw, O)
        p_partial = data(_scratch(state, "_partial_dweights", n_chunks, g.ckk, g.o, typenum))
    # Bias sums in double, one row per chunk: a scratch buffer of the layer like the columns.
    cdef double* p_sums = <double*>data(_scratch(state, "_bias_sums", n_chunks, g.o, 1, cnp.NPY_FLOAT64))
    cdef void* p_dv = data(dv)
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_dw = data(dweights)
    cdef void* p_db = data(dbiases)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _backward_threads(<float*>p_dv, <float*>p_x, <float*>p_w, <float*>p_b, <float*>p_dw,
                              <float*>p_partial, <float*>p_db, p_sums, <float*>p_dx, <float*>p_cols,
                              <float*>p_dcols, p_off, &g, n_threads, l1w, l2w, l1b, l2b)
        else:
            _backward_threads(<double*>p_dv, <double*>p_x, <double*>p_w, <double*>p_b, <double*>p_dw,
                              <double*>p_partial, <double*>p_db, p_sums, <double*>p_dx, <double*>p_cols,
                              <double*>p_dcols, NULL, &g, n_threads, l1w, l2w, l1b, l2b)
    return _OK


cdef int _wino_scratch_threads(const Geometry* g, Py_ssize_t block) noexcept:
    """Threads' scratch to keep: for the most threads forward (blocks) or backward (chunks) may
    use, so that the two passes share one buffer instead of reallocating it at every call."""
    cdef Py_ssize_t n_blocks = (g.n + block - 1) // block
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    return threads_for_work(g.n * g.o * g.ckk * g.ohw, n_blocks if n_blocks > n_chunks else n_chunks)


cdef int _winograd_forward(dict state, cnp.ndarray x, cnp.ndarray weights, cnp.ndarray biases,
                           cnp.ndarray output, Geometry* g, int typenum) except -1:
    cdef Tiles tl
    tiles_of(&tl, g.oh, g.ow)
    cdef Py_ssize_t block = _wino_block_samples(g, &tl)
    cdef int n_threads = threads_for_work(g.n * g.o * g.ckk * g.ohw, (g.n + block - 1) // block)
    cdef void* p_u = data(_scratch(state, "_winograd_weights", 16, g.o, g.c, typenum))
    cdef void* p_s = data(_scratch(state, "_winograd", _wino_scratch_threads(g, block),
                                   _wino_scratch(g, &tl, block), 1, typenum))
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_out = data(output)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _wino_forward_threads(<float*>p_x, <float*>p_w, <float*>p_b, <float*>p_out, <float*>p_u,
                                  <float*>p_s, g, &tl, block, n_threads)
        else:
            _wino_forward_threads(<double*>p_x, <double*>p_w, <double*>p_b, <double*>p_out, <double*>p_u,
                                  <double*>p_s, g, &tl, block, n_threads)
    return 0


cdef int _winograd_backward(dict state, cnp.ndarray dv, cnp.ndarray x, cnp.ndarray weights,
                            cnp.ndarray biases, cnp.ndarray dweights, cnp.ndarray dbiases,
                            object dinputs, Geometry* g, int typenum,
                            double l1w, double l2w, double l1b, double l2b) except -1:
    cdef Tiles tl
    tiles_of(&tl, g.oh, g.ow)
    cdef Py_ssize_t block = _wino_block_samples(g, &tl)
    cdef Py_ssize_t n_chunks = _n_chunks(g.n)
    cdef int n_threads = threads_for_work(g.n * g.o * g.ckk * g.ohw, n_chunks)
    cdef void* p_u = data(_scratch(state, "_winograd_weights", 16, g.o, g.c, typenum))
    cdef void* p_s = data(_scratch(state, "_winograd", _wino_scratch_threads(g, block),
                                   _wino_scratch(g, &tl, block), 1, typenum))
    cdef void* p_partial = data(_scratch(state, "_winograd_partial", n_chunks, 16 * g.o, g.c, typenum))
    cdef double* p_sums = <double*>data(_scratch(state, "_bias_sums", n_chunks, g.o, 1, cnp.NPY_FLOAT64))
    cdef void* p_dx = NULL if dinputs is None else data(<cnp.ndarray>dinputs)
    cdef void* p_dv = data(dv)
    cdef void* p_x = data(x)
    cdef void* p_w = data(weights)
    cdef void* p_b = data(biases)
    cdef void* p_dw = data(dweights)
    cdef void* p_db = data(dbiases)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _wino_backward_threads(<float*>p_dv, <float*>p_x, <float*>p_w, <float*>p_b, <float*>p_dw,
                                   <float*>p_u, <float*>p_partial, <float*>p_db, p_sums, <float*>p_dx,
                                   <float*>p_s, g, &tl, block, n_threads, l1w, l2w, l1b, l2b)
        else:
            _wino_backward_threads(<double*>p_dv, <double*>p_x, <double*>p_w, <double*>p_b, <double*>p_dw,
                                   <double*>p_u, <double*>p_partial, <double*>p_db, p_sums, <double*>p_dx,
                                   <double*>p_s, g, &tl, block, n_threads, l1w, l2w, l1b, l2b)
    return 0
