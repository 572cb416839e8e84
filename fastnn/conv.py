"""Convolutional layers in the book's style: Layer_Conv2D, Layer_MaxPool2D, Layer_Flatten.

Same protocol as Layer_Dense: ``forward(inputs, training=True)`` stores ``inputs``/``output``,
``backward(dvalues)`` stores ``dinputs`` (and ``dweights``/``dbiases``), both return None. Inputs
are NCHW: (n_samples, channels, height, width), as PyTorch. The arithmetic runs in compiled
kernels (src_pyx/_conv.pyx, _pool.pyx); a Layer_Conv2D has ``weights``/``biases``, so ``Model``
trains it, the optimizers update it and ``Loss.regularization_loss`` includes it, unchanged.

Buffers: ``output``, ``dinputs``, ``dweights``, ``dbiases``, ``argmax`` (and the im2col scratch
``_columns``/``_dcolumns``) are reused while their shape stays the same, so they are valid until
that layer's next call, like NumPy's ``out=`` (docs/kernels.md). Layer_Flatten hands out views:
its ``output`` is its input reshaped (the previous layer's buffer) and its ``dinputs`` the
incoming gradient reshaped; nothing is copied unless the input is not C-contiguous.

How the convolution is computed (src_pyx/_conv.pyx and _threads.pyx have the details and the
measurements):
- im2col + GEMM per sample: the columns of one sample (C*k*k x OH*OW) stay in cache for the GEMM
  that reads them; the GEMM is NumPy's BLAS called from C (fastnn's one GEMM, _blas.pxd). A 1x1
  kernel with stride 1 and no padding skips im2col.
- Threads: the batch can be split over OpenMP threads while NumPy's OpenBLAS is pinned to one
  thread (one sample's GEMMs are too small for OpenBLAS to split well). By default this happens
  only while NumPy's BLAS is itself limited to one thread, because OpenBLAS's idle workers
  busy-wait after every Dense-layer GEMM and fight an OpenMP team for the cores (a LeNet step
  went from 10.0 to 16.1 ms on 2 cores). So, to train a CNN on a few cores, limit BLAS to one
  thread: ``threadpoolctl.threadpool_limits(1, "blas")`` or ``OPENBLAS_NUM_THREADS=1``; the conv
  kernels then use the cores (LeNet step 10.4 -> 7.3 ms, a 32/64-channel MNIST CNN 59 -> 35 ms).
  ``set_num_threads(n)`` forces n threads; results never depend on the thread count (fixed
  chunks, summed in order). With a BLAS other than NumPy's OpenBLAS (which fastnn cannot pin)
  the loop is serial and BLAS threads the GEMMs.
"""
from __future__ import annotations

import math

import numpy as np

from .backend.threads import get_num_threads, set_num_threads  # noqa: F401 (public here too)
from ._core import config as _config, arrays as _arrays, messages as _messages
from ._core.constraints import SIZE, Int, Optional
from ._core.spec import declare
from ._ext import _conv, _pool
from .layers import REGULARIZERS


_CONV_GEOMETRY = {"in_channels": SIZE, "out_channels": SIZE, "kernel_size": SIZE, "stride": SIZE, "padding": Int(0)}


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
         params={**_CONV_GEOMETRY, **REGULARIZERS},
         saved={**_CONV_GEOMETRY, **REGULARIZERS},
         parameters=lambda a, d: {"weights": (a["out_channels"], a["in_channels"], a["kernel_size"], a["kernel_size"]),
                                  "biases": (a["out_channels"],)},
         parameters_only_backward=True)
class Layer_Conv2D:
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``) on NCHW inputs.

    ``output[n, o, i, j] = biases[o] + sum_{c, a, b} weights[o, c, a, b] * xp[n, c, i*s + a, j*s + b]``
    where ``xp`` is the input zero-padded by ``padding`` on each side of both spatial axes and ``s``
    the stride. Output size per axis: ``(size + 2*padding - kernel_size) // stride + 1``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the inputs and of the output.
    kernel_size : int
        Square kernels: weights have shape (out_channels, in_channels, kernel_size, kernel_size),
        as PyTorch's ``Conv2d.weight``.
    stride : int >= 1, padding : int >= 0
        Step between windows and zero padding added to each side of height and width.
    weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2 : float
        L1/L2 penalty coefficients (>= 0), as Layer_Dense.
    dtype : float32 or float64, optional (keyword only)
        Parameter dtype; default ``fastnn.default_dtype()``. Inputs of another dtype are converted
        once per call.

    Notes
    -----
    Initialisation: He normal, ``np.random.standard_normal(weights.shape) * sqrt(2 / (in_channels *
    kernel_size**2))`` drawn from NumPy's global RNG at construction (identical in
    ``fastnn.reference``; unaffected by ``nnfs.init()``). The book's ``0.01 * randn`` keeps the
    activations of a deep ReLU stack shrinking by about 10x per layer; He's scale keeps their variance
    constant with depth, so conv stacks train from the first step. Biases are zeros of shape
    ``(out_channels,)``: PyTorch's shape (``conv.bias``), so weights move between the two without
    reshaping; the book's ``(1, n)`` row exists to broadcast over Dense outputs, which does not
    apply to NCHW (the optimizers and the regularisation loss treat parameters as flat arrays).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, weight_regularizer_l1: float = 0, weight_regularizer_l2: float = 0,
                 bias_regularizer_l1: float = 0, bias_regularizer_l2: float = 0, *, dtype=None) -> None:
        (self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
         *regularizers) = Layer_Conv2D._spec.check(locals())
        dtype = _config.resolve_dtype(dtype)
        k = self.kernel_size
        scale = math.sqrt(2.0 / (self.in_channels * k * k))
        shape = (self.out_channels, self.in_channels, k, k)
        # The weights are drawn as float64 first: refuse sizes that cannot be (a MemoryError, or
        # NumPy's "array is too big", would not name the arguments).
        _arrays.check_fits(math.prod(shape), 8, "out_channels * in_channels * kernel_size**2", "Layer_Conv2D",
                           f"the {shape} weight array")
        # standard_normal: the stream behind np.random.randn, untouched by nnfs.init().
        self.weights = (np.random.standard_normal(shape) * scale).astype(dtype)
        self.biases = np.zeros(self.out_channels, dtype=dtype)
        (self.weight_regularizer_l1, self.weight_regularizer_l2,
         self.bias_regularizer_l1, self.bias_regularizer_l2) = regularizers

    # Scratch: im2col columns (one per thread), per-chunk partial gradients and bias sums. Rebuilt
    # on demand, so copies and pickles leave them out.
    _SCRATCH = ("_columns", "_dcolumns", "_partial_dweights", "_bias_sums")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._SCRATCH}

    def __repr__(self) -> str:
        return (f"Layer_Conv2D({self.in_channels}, {self.out_channels}, {self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dtype={getattr(self.weights, 'dtype', '?')})")

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
        """Replace weights (out_channels, in_channels, k, k) and biases (out_channels,). Arrays
        already in the layer's form are kept as given (no copy, as the book); others are
        converted once. A (1, out_channels) biases row is accepted and flattened."""
        where = "Layer_Conv2D.set_parameters"
        dtype = weights.dtype if isinstance(weights, np.ndarray) and weights.dtype in (np.float32, np.float64) \
            else self.weights.dtype
        weights = _arrays.as_float_array(weights, "weights", dtype, where, ndim=4)
        biases = _arrays.as_float_array(biases, "biases", dtype, where)
        k = self.kernel_size
        expected = (self.out_channels, self.in_channels, k, k)
        if weights.shape != expected:
            raise ValueError(f"{where}: weights must have shape {expected} (out_channels, in_channels, "
                             f"kernel_size, kernel_size), got {weights.shape}")
        if biases.shape == (1, self.out_channels):
            biases = biases.reshape(self.out_channels)
        if biases.shape != (self.out_channels,):
            raise ValueError(f"{where}: biases must have shape ({self.out_channels},), got {biases.shape}")
        self.weights = weights
        self.biases = biases


@declare("layer", params={"pool_size": SIZE, "stride": Optional(SIZE)},
         saved={"pool_size": SIZE, "stride": SIZE})
class Layer_MaxPool2D:
    """Max pooling over ``pool_size`` x ``pool_size`` windows moved by ``stride`` (default:
    ``pool_size``, non-overlapping), without padding; output size per axis
    ``(size - pool_size) // stride + 1``.

    forward also stores ``argmax`` (N, C, OH, OW, int32): each window's winner as the flat index
    ``h * W + w`` into its (H, W) plane. Ties go to the first maximum of the window in row-major
    order; a NaN is a window's maximum (the first NaN wins), so NaN propagates as in PyTorch.
    backward adds each gradient to its window's winner (summed where overlapping windows share one).
    Float32 and float64 inputs keep their dtype; other real data is converted to
    ``fastnn.default_dtype()``.
    """

    def __init__(self, pool_size: int = 2, stride: int | None = None) -> None:
        self.pool_size, stride = Layer_MaxPool2D._spec.check(locals())
        self.stride = self.pool_size if stride is None else stride

    def __repr__(self) -> str:
        return f"Layer_MaxPool2D({self.pool_size}, stride={self.stride})"

    def forward(self, inputs, training: bool = True) -> None:
        """inputs (N, C, H, W) -> self.output (N, C, OH, OW) and self.argmax."""
        status = _pool.pool_forward(self.__dict__, inputs)
        if status:
            if status != _pool.CONVERT:
                raise _pool_error(status, self.__dict__)
            inputs = _arrays.pool_input(inputs, "inputs", self.pool_size, "Layer_MaxPool2D.forward")
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
