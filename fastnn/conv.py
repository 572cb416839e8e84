"""Convolutional layers in the book's style: Layer_Conv2D, Layer_MaxPool2D, Layer_Flatten; and
Layer_GlobalAveragePool2D.

Same protocol as Layer_Dense: ``forward(inputs, training=True)`` stores ``inputs``/``output``,
``backward(dvalues)`` stores ``dinputs`` (and ``dweights``/``dbiases``), both return None. Inputs
are NCHW: (n_samples, channels, height, width), as PyTorch. The arithmetic runs in compiled
kernels (src_pyx/_conv.pyx, _pool.pyx); a Layer_Conv2D has ``weights``/``biases``, so ``Model``
trains it, the optimizers update it and ``Loss.regularization_loss`` includes it, unchanged.

Buffers: ``output``, ``dinputs``, ``dweights``, ``dbiases``, ``argmax`` (and the scratch named in
``Layer_Conv2D._SCRATCH``) are reused while their shape stays the same, so they are valid until
that layer's next call, like NumPy's ``out=`` (docs/kernels.md). Layer_Flatten hands out views:
its ``output`` is its input reshaped (the previous layer's buffer) and its ``dinputs`` the
incoming gradient reshaped; nothing is copied unless the input is not C-contiguous.

How the convolution is computed (src_pyx/_conv.pyx and _threads.pyx have the details and the
measurements):
- Winograd F(2x2, 3x3) for stride-1 3x3 kernels with at least 8 input channels (_winograd.pxd).
- float32 on a CPU with AVX-512: fastnn's own GEMM kernels (_smallgemm.pxd) for every product, and
  for the other stride-1 kernels the shifted-plane path: the GEMMs read the (padded) input planes
  in place, no column matrix written.
- Otherwise im2col + GEMM per sample: the columns of one sample (C*k*k x OH*OW) stay in cache for
  the GEMM that reads them; the GEMM is NumPy's BLAS called from C (_blas.pxd). A 1x1 kernel with
  stride 1 and no padding skips im2col.
- Threads: the batch is split over OpenMP threads, one sample per thread, while NumPy's OpenBLAS
  is pinned to one thread (one sample's GEMMs are too small for OpenBLAS to split well). No thread
  setting is needed: NumPy's OpenBLAS runs its own threaded GEMMs (the Dense layers') on the same
  OpenMP team (fastnn/_ext/_threads.pyx), so no busy-waiting OpenBLAS worker fights the conv
  loop for the cores, at default settings, inside ``Model.train`` or a hand-written loop, with or
  without threadpoolctl. ``set_num_threads(n)`` forces n threads; results never depend on the
  thread count (fixed chunks, summed in order). With a BLAS other than NumPy's OpenBLAS (which
  fastnn cannot pin) the loop is serial and BLAS threads the GEMMs; without OpenBLAS's
  caller-managed threading the batch is split only while BLAS is on one thread.
"""
from __future__ import annotations

import math

import numpy as np

from .backend.threads import get_num_threads, set_num_threads  # noqa: F401 (public here too)
from ._core import config as _config, arrays as _arrays, messages as _messages, windows as _windows
from ._core.constraints import SIZE, SIZE_PAIR, Optional, Pair
from ._core.spec import declare
from ._ext import _conv, _pool
from .layers import REGULARIZERS, WEIGHT_INIT, initial_weights


_PADDING = Pair(0, options=(_windows.SAME,))
_CONV_GEOMETRY = {"in_channels": SIZE, "out_channels": SIZE, "kernel_size": SIZE_PAIR, "stride": SIZE_PAIR,
                  "padding": _PADDING}


# The errors behind the conv and pool kernels' statuses other than OK and CONVERT.
_CONV_PARAMETER = {_conv.BAD_WEIGHTS: "weights", _conv.BAD_BIASES: "biases", _conv.BAD_STRIDE: "stride",
                   _conv.BAD_PADDING: "padding"}


def _conv_error(status: int, state: dict) -> Exception:
    if status == _conv.NO_FORWARD:
        return _messages.missing_forward("Layer_Conv2D", "inputs")
    return _messages.conv_parameter_error(_CONV_PARAMETER[status], state)


def _pool_error(status: int, state: dict) -> Exception:
    if status == _pool.NO_FORWARD:
        return _messages.missing_forward("Layer_MaxPool2D", "argmax")
    if status == _pool.BAD_ARGMAX:
        return ValueError("Layer_MaxPool2D.backward: argmax holds positions outside the input planes; "
                          "it was changed after forward(). Run forward() again.")
    return _messages.pool_parameter_error(state)




@declare("layer",
         params={**_CONV_GEOMETRY, **REGULARIZERS, "weight_init": WEIGHT_INIT},
         saved={**_CONV_GEOMETRY, **REGULARIZERS},
         parameters=lambda a, d: {"weights": (a["out_channels"], a["in_channels"], *_windows.pair(a["kernel_size"])),
                                  "biases": (a["out_channels"],)},
         parameters_only_backward=True)
class Layer_Conv2D:
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``) on NCHW inputs.

    ``output[n, o, i, j] = biases[o] + sum_{c, a, b} weights[o, c, a, b] * xp[n, c, i*sh + a, j*sw + b]``
    where ``xp`` is the input zero-padded and (sh, sw) the stride. Output size per axis:
    ``(size + padding before + padding after - kernel) // stride + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the inputs and of the output.
    kernel_size : int or (kh, kw)
        Weights have shape (out_channels, in_channels, kh, kw), as PyTorch's ``Conv2d.weight``; an
        int k means (k, k).
    stride : int >= 1 or (sh, sw)
        Step between windows along height and width.
    padding : int >= 0, (ph, pw) or "same"
        Zero rows added above and below (ph) and columns left and right (pw). "same" (stride 1
        only) keeps the input's height and width: kh - 1 rows in all, (kh - 1) // 2 above and the
        rest below, so an even kernel gets its extra row at the bottom (and column on the right),
        as PyTorch's ``padding="same"``.
    weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2 : float
        L1/L2 penalty coefficients (>= 0), as Layer_Dense.
    weight_init : "he", "glorot" or "book" (keyword only)
        The initial weights (below).
    dtype : float32 or float64, optional (keyword only)
        Parameter dtype; default ``fastnn.default_dtype()``. Inputs of another dtype are converted
        once per call.

    Notes
    -----
    Initialisation: one draw of ``np.random.standard_normal(weights.shape)`` from NumPy's global
    RNG at construction (identical in ``fastnn.reference``; unaffected by ``nnfs.init()``), scaled
    by He's ``sqrt(2 / (in_channels * kh * kw))`` (the default), Glorot's ``sqrt(2 / (fan_in +
    out_channels * kh * kw))`` or the book's 0.01 (as Layer_Dense's ``weight_init``). The book's
    ``0.01 * randn`` keeps the activations of a deep ReLU stack shrinking by about 10x per layer;
    He's scale keeps their variance constant with depth, so conv stacks train from the first step.
    Biases are zeros of shape
    ``(out_channels,)``: PyTorch's shape (``conv.bias``), so weights move between the two without
    reshaping; the book's ``(1, n)`` row exists to broadcast over Dense outputs, which does not
    apply to NCHW (the optimizers and the regularisation loss treat parameters as flat arrays).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 weight_regularizer_l1: float = 0, weight_regularizer_l2: float = 0,
                 bias_regularizer_l1: float = 0, bias_regularizer_l2: float = 0, *, weight_init: str = "he",
                 dtype=None) -> None:
        (self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
         *regularizers, weight_init) = Layer_Conv2D._spec.check(locals())
        _windows.check_same(self.padding, self.stride, "Layer_Conv2D")
        dtype = _config.resolve_dtype(dtype)
        kh, kw = _windows.pair(self.kernel_size)
        shape = (self.out_channels, self.in_channels, kh, kw)
        # The weights are drawn as float64 first: refuse sizes that cannot be (a MemoryError, or
        # NumPy's "array is too big", would not name the arguments).
        _arrays.check_fits(math.prod(shape), 8, "out_channels * in_channels * kh * kw", "Layer_Conv2D",
                           f"the {shape} weight array")
        self.weights = initial_weights(weight_init, shape, self.in_channels * kh * kw, self.out_channels * kh * kw,
                                       dtype)
        self.biases = np.zeros(self.out_channels, dtype=dtype)
        (self.weight_regularizer_l1, self.weight_regularizer_l2,
         self.bias_regularizer_l1, self.bias_regularizer_l2) = regularizers

    # Scratch: im2col columns (one per thread), per-chunk partial gradients and bias sums, the
    # Winograd path's transformed weights, per-thread transforms and per-chunk partial gradients,
    # and the shifted-plane path's per-thread buffers and row offsets. Rebuilt on demand, so
    # copies and pickles leave them out.
    _SCRATCH = ("_columns", "_dcolumns", "_partial_dweights", "_bias_sums", "_winograd_weights", "_winograd",
                "_winograd_partial", "_shifted", "_shifted_offsets")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._SCRATCH}

    def __repr__(self) -> str:
        return (f"Layer_Conv2D({self.in_channels}, {self.out_channels}, {self.kernel_size!r}, stride={self.stride!r}, "
                f"padding={self.padding!r}, dtype={getattr(self.weights, 'dtype', '?')})")

    def forward(self, inputs, training: bool = True) -> None:
        """inputs (N, in_channels, H, W) -> self.output (N, out_channels, OH, OW). `training` is
        accepted for the Ch18+ protocol and ignored."""
        status = _conv.conv_forward(self.__dict__, inputs)
        if status:
            if status != _conv.CONVERT:
                raise _conv_error(status, self.__dict__)
            inputs = _arrays.conv_input(inputs, "inputs", self.weights.dtype, self.in_channels,
                                            self.kernel_size, self.padding, "Layer_Conv2D.forward")
            if _conv.conv_forward(self.__dict__, inputs):  # pragma: no cover - a validation gap
                raise ValueError("fastnn internal error: Layer_Conv2D.forward refused checked inputs "
                                 "(please report this)")

    def backward(self, dvalues) -> None:
        """dvalues (N, out_channels, OH, OW) -> self.dweights (the weights' shape), self.dbiases
        (out_channels,), self.dinputs (the inputs' shape); regularisation gradients included."""
        status = _conv.conv_backward(self.__dict__, dvalues)
        if status:
            self._backward_converted(status, dvalues, True)

    def _backward_parameters_only(self, dvalues) -> None:
        """backward() without dinputs (for a first layer, whose dinputs nothing reads)."""
        status = _conv.conv_backward(self.__dict__, dvalues, False)
        if status:
            self._backward_converted(status, dvalues, False)

    def _backward_converted(self, status: int, dvalues, want_dinputs: bool) -> None:
        if status != _conv.CONVERT:
            raise _conv_error(status, self.__dict__)
        output = self.__dict__.get("output")
        if output is None or "inputs" not in self.__dict__:
            raise _messages.missing_forward("Layer_Conv2D", "inputs")
        dvalues = _arrays.gradient_input(dvalues, "dvalues", output, "Layer_Conv2D.backward")
        if _conv.conv_backward(self.__dict__, dvalues, want_dinputs):
            raise ValueError("Layer_Conv2D.backward: dvalues does not match the last forward pass "
                             f"(output shape {output.shape}); run forward() again")

    def get_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, biases): the live arrays, as the book."""
        return self.weights, self.biases

    def set_parameters(self, weights, biases) -> None:
        """Replace weights (out_channels, in_channels, kh, kw) and biases (out_channels,). Arrays
        already in the layer's form are kept as given (no copy, as the book); others are
        converted once. A (1, out_channels) biases row is accepted and flattened."""
        where = "Layer_Conv2D.set_parameters"
        dtype = weights.dtype if isinstance(weights, np.ndarray) and weights.dtype in (np.float32, np.float64) \
            else self.weights.dtype
        weights = _arrays.as_float_array(weights, "weights", dtype, where, ndim=4)
        biases = _arrays.as_float_array(biases, "biases", dtype, where)
        expected = (self.out_channels, self.in_channels, *_windows.pair(self.kernel_size))
        if weights.shape != expected:
            raise ValueError(f"{where}: weights must have shape {expected} (out_channels, in_channels, "
                             f"kernel height, kernel width), got {weights.shape}")
        if biases.shape == (1, self.out_channels):
            biases = biases.reshape(self.out_channels)
        if biases.shape != (self.out_channels,):
            raise ValueError(f"{where}: biases must have shape ({self.out_channels},), got {biases.shape}")
        self.weights = weights
        self.biases = biases


@declare("layer", params={"pool_size": SIZE_PAIR, "stride": Optional(SIZE_PAIR), "padding": _PADDING},
         saved={"pool_size": SIZE_PAIR, "stride": SIZE_PAIR, "padding": _PADDING}, file_defaults={"padding": 0})
class Layer_MaxPool2D:
    """Max pooling over ``pool_size`` windows moved by ``stride``; output size per axis
    ``(size + padding before + padding after - window) // stride + 1``.

    Parameters
    ----------
    pool_size : int or (kh, kw)
        The window (an int k means k x k).
    stride : int >= 1, (sh, sw) or None
        Step between windows; None: the window's size (non-overlapping), or 1 with padding="same".
    padding : int >= 0, (ph, pw) or "same"
        Rows added above and below, columns left and right, at most half the window (PyTorch's
        rule: every window overlaps the input). Padding never wins a window: each window's maximum
        is taken over its part inside the input, as PyTorch's -inf padding gives. "same" (stride 1)
        keeps the input's height and width, with the extra row of an even window at the bottom
        and the extra column on the right, as Conv2D's.

    forward also stores ``argmax`` (N, C, OH, OW, int32): each window's winner as the flat index
    ``h * W + w`` into its (H, W) plane. Ties go to the first maximum of the window in row-major
    order; a NaN is a window's maximum (the first NaN wins), so NaN propagates as in PyTorch.
    backward adds each gradient to its window's winner (summed where overlapping windows share one).
    Float32 and float64 inputs keep their dtype; other real data is converted to
    ``fastnn.default_dtype()``.
    """

    def __init__(self, pool_size: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] | str = 0) -> None:
        self.pool_size, stride, self.padding = Layer_MaxPool2D._spec.check(locals())
        if stride is None:
            stride = 1 if self.padding == _windows.SAME else self.pool_size
        _windows.check_same(self.padding, stride, "Layer_MaxPool2D")
        top, _, left, _ = _windows.paddings(self.padding, self.pool_size)
        kh, kw = _windows.pair(self.pool_size)
        if 2 * top > kh or 2 * left > kw:
            raise ValueError(f"Layer_MaxPool2D: padding must be at most half of pool_size (every window must "
                             f"overlap the input), got padding={self.padding!r} with pool_size={self.pool_size!r}")
        self.stride = stride

    def __repr__(self) -> str:
        return f"Layer_MaxPool2D({self.pool_size!r}, stride={self.stride!r}, padding={self.padding!r})"

    def forward(self, inputs, training: bool = True) -> None:
        """inputs (N, C, H, W) -> self.output (N, C, OH, OW) and self.argmax."""
        status = _pool.pool_forward(self.__dict__, inputs)
        if status:
            if status != _pool.CONVERT:
                raise _pool_error(status, self.__dict__)
            inputs = _arrays.pool_input(inputs, "inputs", self.pool_size, self.padding, "Layer_MaxPool2D.forward")
            if _pool.pool_forward(self.__dict__, inputs):  # pragma: no cover - a validation gap
                raise ValueError("fastnn internal error: Layer_MaxPool2D.forward refused checked inputs "
                                 "(please report this)")

    def backward(self, dvalues) -> None:
        """dvalues (N, C, OH, OW) -> self.dinputs (N, C, H, W)."""
        status = _pool.pool_backward(self.__dict__, dvalues)
        if status:
            self._backward_converted(status, dvalues)

    def _backward_converted(self, status: int, dvalues) -> None:
        if status == _pool.CONVERT:
            output = self.__dict__.get("output")
            if output is None:
                raise _messages.missing_forward("Layer_MaxPool2D", "argmax")
            dvalues = _arrays.gradient_input(dvalues, "dvalues", output, "Layer_MaxPool2D.backward")
            status = _pool.pool_backward(self.__dict__, dvalues)
            if status == _pool.CONVERT:
                raise ValueError("Layer_MaxPool2D.backward: dvalues does not match the last forward pass "
                                 f"(output shape {output.shape}); run forward() again")
        if status:
            raise _pool_error(status, self.__dict__)


@declare("layer")
class Layer_GlobalAveragePool2D:
    """(N, C, H, W) -> (N, C): the mean of each channel's plane (summed in double), as PyTorch's
    ``adaptive_avg_pool2d(x, 1)`` flattened; the usual head of a convolutional network before its
    last Dense layer, whatever the input's height and width. Beyond the book.

    backward spreads each gradient evenly over its plane: ``dinputs[n, c, h, w] = dvalues[n, c] /
    (H * W)`` in the data's dtype. Float32 and float64 inputs keep their dtype; other real data
    is converted to ``fastnn.default_dtype()``.
    """

    def __repr__(self) -> str:
        return "Layer_GlobalAveragePool2D()"

    def forward(self, inputs, training: bool = True) -> None:
        """inputs (N, C, H, W) -> self.output (N, C). `training` is accepted and ignored."""
        if _pool.average_forward(self.__dict__, inputs):
            inputs = _arrays.planes_input(inputs, "inputs", "Layer_GlobalAveragePool2D.forward")
            _pool.average_forward(self.__dict__, inputs)

    def backward(self, dvalues) -> None:
        """dvalues (N, C) -> self.dinputs (N, C, H, W), the forward inputs' shape and dtype."""
        status = _pool.average_backward(self.__dict__, dvalues)
        if status:
            if status == _pool.NO_FORWARD or "output" not in self.__dict__:
                raise _messages.missing_forward("Layer_GlobalAveragePool2D", "inputs")
            dvalues = _arrays.gradient_input(dvalues, "dvalues", self.output, "Layer_GlobalAveragePool2D.backward")
            _pool.average_backward(self.__dict__, dvalues)


@declare("layer")
class Layer_Flatten:
    """(N, C, H, W) -> (N, C*H*W) in C order (any (N, ...) input -> (N, rest)), between the
    convolutional part of a network and its Dense layers.

    No copy: ``output`` is a view of the inputs (converted to a C-contiguous float array first
    when they are not one) and ``dinputs`` a view of ``dvalues`` in the inputs' shape, so both
    share memory with the neighbouring layers' buffers and are valid until those layers' next calls.
    """

    def __repr__(self) -> str:
        return "Layer_Flatten()"

    def forward(self, inputs, training: bool = True) -> None:
        if not (type(inputs) is np.ndarray and inputs.ndim >= 2 and inputs.flags.c_contiguous
                and inputs.dtype in (np.float32, np.float64)):
            inputs = _arrays.flatten_input(inputs, "inputs", "Layer_Flatten.forward")
        self.inputs = inputs
        self.output = inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:]))

    def backward(self, dvalues) -> None:
        """dvalues (N, C*H*W) -> self.dinputs (N, C, H, W), the forward inputs' shape and dtype."""
        inputs = self.__dict__.get("inputs")
        if inputs is None:
            raise _messages.missing_forward("Layer_Flatten", "inputs")
        if not (type(dvalues) is np.ndarray and dvalues.dtype == inputs.dtype and dvalues.flags.c_contiguous
                and dvalues.shape == (inputs.shape[0], math.prod(inputs.shape[1:]))):
            dvalues = _arrays.gradient_input(dvalues, "dvalues", self.output, "Layer_Flatten.backward")
        self.dinputs = dvalues.reshape(inputs.shape)
