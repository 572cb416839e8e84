"""Convolutional layers in plain NumPy: Layer_Conv2D, Layer_MaxPool2D, Layer_Flatten and
Layer_GlobalAveragePool2D.

The oracle for fastnn's compiled versions (fastnn/conv.py, src_pyx/_conv.pyx): every formula is
written the obvious way, with Python loops over the kernel (or pooling window) offsets and one
NumPy expression per offset, so it can be checked by reading. Same names, constructor arguments,
attributes and initialisation as the compiled classes.

Layout: NCHW (batch, channels, height, width), as PyTorch.

- Kernel sizes, strides and paddings are ints (both axes) or (height, width) pairs; padding
  "same" (stride 1) adds k - 1 rows in all, (k - 1) // 2 above and the rest below (columns alike:
  the extra one of an even kernel on the right), as PyTorch.
- Conv2D: weights (out_channels, in_channels, kh, kw), biases (out_channels,);
  ``output[n, o, i, j] = biases[o] + sum_{c, a, b} weights[o, c, a, b] * xp[n, c, i*sh + a, j*sw + b]``
  where ``xp`` is the zero-padded input. Output size ``(H + top + bottom - kh) // sh + 1`` (PyTorch's
  floor rule: rows and columns the last window does not reach are ignored).
- MaxPool2D: the input padded with -inf; output size as Conv2D's. Ties: the first maximum of the
  window in row-major order wins (``np.argmax``) among the window's positions inside the input
  (padding never wins, as in PyTorch, even against -inf), and a NaN in a window is its maximum
  (the first NaN wins), so NaN propagates as in PyTorch. backward adds each output's gradient to
  the input position that won; with overlapping windows (stride < pool_size) one input can win
  several windows and receives the sum.
- Flatten: (N, C, H, W) -> (N, C*H*W), C order.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._core.config import resolve_dtype
from .layers import _Trainable, _initial_weights

__all__ = ["Layer_Conv2D", "Layer_MaxPool2D", "Layer_Flatten", "Layer_GlobalAveragePool2D"]


def _pair(value) -> tuple[int, int]:
    """An int k (NumPy's too) as (k, k); a (height, width) pair as it is."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _sides(padding, kernel_size) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding; "same": k - 1 in all, the larger half after."""
    if padding == "same":
        (kh, kw) = _pair(kernel_size)
        return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2
    (ph, pw) = _pair(padding)
    return ph, ph, pw, pw


def _windows(x: np.ndarray, kernel_size, stride, padding, fill) -> np.ndarray:
    """windows[n, c, i, j, a, b] = xp[n, c, i*sh + a, j*sw + b], xp the input padded with `fill`."""
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    top, bottom, left, right = _sides(padding, kernel_size)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    windows = np.empty((*x.shape[:2], oh, ow, kh, kw), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            windows[..., a, b] = xp[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw]
    return windows


class Layer_Conv2D(_Trainable):
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``) on NCHW inputs.

    weights: (out_channels, in_channels, kh, kw), drawn from NumPy's global RNG as
    ``np.random.standard_normal(shape) * sqrt(2 / (in_channels * kh * kw))`` (He initialisation, the
    default ``weight_init="he"``, suited to ReLU networks: the output variance neither grows nor
    shrinks with depth; "glorot" and "book" as Layer_Dense's); biases: (out_channels,) zeros. The
    regularisation strengths work as in Layer_Dense.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, weight_regularizer_l1: float = 0, weight_regularizer_l2: float = 0,
                 bias_regularizer_l1: float = 0, bias_regularizer_l2: float = 0,
                 *, weight_init: str = "he", dtype: npt.DTypeLike | None = None) -> None:
        dtype = resolve_dtype(dtype)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        kh, kw = _pair(kernel_size)
        shape = (out_channels, in_channels, kh, kw)
        self.weights = _initial_weights(weight_init, shape, in_channels * kh * kw, out_channels * kh * kw, dtype)
        self.biases = np.zeros(out_channels, dtype=dtype)
        self.weight_regularizer_l1 = weight_regularizer_l1
        self.weight_regularizer_l2 = weight_regularizer_l2
        self.bias_regularizer_l1 = bias_regularizer_l1
        self.bias_regularizer_l2 = bias_regularizer_l2

    def forward(self, inputs: npt.ArrayLike, training: bool = True) -> None:
        """inputs (N, in_channels, H, W) -> output (N, out_channels, OH, OW).

        im2col: ``columns[n, i, j, c, a, b] = xp[n, c, i*sh + a, j*sw + b]``, so every output
        position is one row of ``columns`` and the convolution is one matrix product with the
        weights seen as (out_channels, in_channels*kh*kw)."""
        self.inputs = np.asarray(inputs, dtype=self.weights.dtype)
        windows = _windows(self.inputs, self.kernel_size, self.stride, self.padding, 0)
        n, c, oh, ow, kh, kw = windows.shape
        self.columns = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
        output = np.matmul(self.columns, self.weights.reshape(self.out_channels, -1).T)
        self.output = output.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2) \
            + self.biases.reshape(1, -1, 1, 1)

    def backward(self, dvalues: npt.ArrayLike) -> None:
        """dvalues (N, out_channels, OH, OW) -> dweights, dbiases (regularisation included, as
        Layer_Dense) and dinputs (N, in_channels, H, W)."""
        dvalues = np.asarray(dvalues, dtype=self.weights.dtype)
        n, c, h, w = self.inputs.shape
        (kh, kw), (sh, sw) = _pair(self.kernel_size), _pair(self.stride)
        top, bottom, left, right = _sides(self.padding, self.kernel_size)
        _, _, oh, ow = dvalues.shape
        # one row per output position, as the rows of self.columns
        drows = dvalues.transpose(0, 2, 3, 1).reshape(n * oh * ow, self.out_channels)
        self.dweights = np.matmul(drows.T, self.columns).reshape(self.weights.shape)
        self.dbiases = dvalues.sum(axis=(0, 2, 3), dtype=np.float64).astype(self.weights.dtype)
        self._add_regularization_gradients()
        # col2im: each column entry goes back to the input position it was copied from (summed)
        dcolumns = np.matmul(drows, self.weights.reshape(self.out_channels, -1))
        dcolumns = dcolumns.reshape(n, oh, ow, c, kh, kw)
        dxp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=self.weights.dtype)
        for a in range(kh):
            for b in range(kw):
                dxp[:, :, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] += \
                    dcolumns[..., a, b].transpose(0, 3, 1, 2)
        self.dinputs = dxp[:, :, top:top + h, left:left + w].copy()


class Layer_MaxPool2D:
    """Max pooling over pool_size windows moved by stride (default: pool_size; 1 with
    padding="same"), the input padded with -inf by `padding`."""

    def __init__(self, pool_size=2, stride=None, padding=0) -> None:
        self.pool_size = pool_size
        self.stride = (1 if padding == "same" else pool_size) if stride is None else stride
        self.padding = padding

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs (N, C, H, W) -> output (N, C, OH, OW); ``argmax`` (N, C, OH, OW) holds the
        winning position of each window as a flat index ``h * W + w`` into its (H, W) plane."""
        self.inputs = inputs
        n, c, h, w = inputs.shape
        geometry = (self.pool_size, self.stride, self.padding)
        windows = _windows(inputs, *geometry, -np.inf)
        oh, ow, kh, kw = windows.shape[2:]
        windows = windows.reshape(n, c, oh, ow, kh * kw)            # each window in row-major order
        inside = _windows(np.ones((1, 1, h, w)), *geometry, 0).reshape(1, 1, oh, ow, kh * kw) > 0
        best = np.argmax(windows, axis=-1)  # first maximum; a NaN counts as the maximum
        # a window whose maximum is -inf: its first position inside the input, not the padding
        best = np.where(np.take_along_axis(inside, best[..., None], axis=-1)[..., 0], best,
                        np.argmax(inside, axis=-1))
        self.output = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
        (sh, sw), (top, _, left, _) = _pair(self.stride), _sides(self.padding, self.pool_size)
        rows = np.arange(oh).reshape(-1, 1) * sh - top + best // kw
        cols = np.arange(ow).reshape(1, -1) * sw - left + best % kw
        self.argmax = rows * w + cols

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues (N, C, OH, OW) -> dinputs (N, C, H, W): each gradient goes to its window's
        winner (summed where one input wins several windows)."""
        n, c, h, w = self.inputs.shape
        planes = np.zeros((n, c, h * w), dtype=dvalues.dtype)
        index_n, index_c = np.indices((n, c))
        np.add.at(planes, (index_n[..., None], index_c[..., None], self.argmax.reshape(n, c, -1)),
                  dvalues.reshape(n, c, -1))
        self.dinputs = planes.reshape(n, c, h, w)


class Layer_GlobalAveragePool2D:
    """(N, C, H, W) -> (N, C), each plane's mean (in float64, rounded to the dtype); backward
    spreads dvalues / (H * W) over the plane (beyond the book)."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        self.inputs = inputs
        self.output = inputs.mean(axis=(2, 3), dtype=np.float64).astype(inputs.dtype)

    def backward(self, dvalues: np.ndarray) -> None:
        h, w = self.inputs.shape[2:]
        self.dinputs = np.broadcast_to((dvalues / (h * w))[:, :, None, None], self.inputs.shape).copy()


class Layer_Flatten:
    """(N, C, H, W) -> (N, C*H*W) in C order (any N-D input -> (N, rest))."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        self.inputs = inputs
        self.output = inputs.reshape(inputs.shape[0], int(np.prod(inputs.shape[1:])))

    def backward(self, dvalues: np.ndarray) -> None:
        self.dinputs = dvalues.reshape(self.inputs.shape)
