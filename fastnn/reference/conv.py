"""Convolutional layers in plain NumPy: Layer_Conv2D, Layer_MaxPool2D, Layer_Flatten.

The oracle for fastnn's compiled versions (fastnn/conv.py, src_pyx/_conv.pyx): every formula is
written the obvious way, with Python loops over the kernel (or pooling window) offsets and one
NumPy expression per offset, so it can be checked by reading. Same names, constructor arguments,
attributes and initialisation as the compiled classes.

Layout: NCHW (batch, channels, height, width), as PyTorch.

- Conv2D: weights (out_channels, in_channels, k, k), biases (out_channels,);
  ``output[n, o, i, j] = biases[o] + sum_{c, a, b} weights[o, c, a, b] * xp[n, c, i*s + a, j*s + b]``
  where ``xp`` is the input zero-padded by ``padding`` on each side of both spatial axes and
  ``s`` the stride. Output size ``(H + 2*padding - k) // stride + 1`` (PyTorch's floor rule: rows
  and columns the last window does not reach are ignored).
- MaxPool2D: no padding; output size ``(H - pool_size) // stride + 1``. Ties: the first maximum
  of the window in row-major order wins (``np.argmax``), and a NaN in a window is its maximum
  (the first NaN wins), so NaN propagates as in PyTorch. backward adds each output's gradient to
  the input position that won; with overlapping windows (stride < pool_size) one input can win
  several windows and receives the sum.
- Flatten: (N, C, H, W) -> (N, C*H*W), C order.
"""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .._core.config import resolve_dtype
from .layers import _Trainable

__all__ = ["Layer_Conv2D", "Layer_MaxPool2D", "Layer_Flatten"]


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis (PyTorch's floor rule)."""
    return (size + 2 * padding - kernel_size) // stride + 1


class Layer_Conv2D(_Trainable):
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``) on NCHW inputs.

    weights: (out_channels, in_channels, kernel_size, kernel_size), drawn from NumPy's global RNG
    as ``np.random.standard_normal(shape) * sqrt(2 / (in_channels * kernel_size**2))`` (He
    initialisation, suited to ReLU networks: the output variance neither grows nor shrinks with
    depth); biases: (out_channels,) zeros. The regularisation strengths work as in Layer_Dense.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, weight_regularizer_l1: float = 0, weight_regularizer_l2: float = 0,
                 bias_regularizer_l1: float = 0, bias_regularizer_l2: float = 0,
                 *, dtype: npt.DTypeLike | None = None) -> None:
        dtype = resolve_dtype(dtype)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        scale = math.sqrt(2.0 / (in_channels * kernel_size * kernel_size))
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weights = (np.random.standard_normal(shape) * scale).astype(dtype)
        self.biases = np.zeros(out_channels, dtype=dtype)
        self.weight_regularizer_l1 = weight_regularizer_l1
        self.weight_regularizer_l2 = weight_regularizer_l2
        self.bias_regularizer_l1 = bias_regularizer_l1
        self.bias_regularizer_l2 = bias_regularizer_l2

    def _padded(self, inputs: np.ndarray) -> np.ndarray:
        p = self.padding
        return np.pad(inputs, ((0, 0), (0, 0), (p, p), (p, p)))

    def _window(self, a: int, b: int, oh: int, ow: int) -> tuple:
        """Index of the padded input seen at kernel offset (a, b) by every output position."""
        s = self.stride
        return (slice(None), slice(None), slice(a, a + s * (oh - 1) + 1, s), slice(b, b + s * (ow - 1) + 1, s))

    def forward(self, inputs: npt.ArrayLike, training: bool = True) -> None:
        """inputs (N, in_channels, H, W) -> output (N, out_channels, OH, OW).

        im2col: ``columns[n, i, j, c, a, b] = xp[n, c, i*s + a, j*s + b]``, so every output
        position is one row of ``columns`` and the convolution is one matrix product with the
        weights seen as (out_channels, in_channels*k*k)."""
        self.inputs = np.asarray(inputs, dtype=self.weights.dtype)
        n, c, h, w = self.inputs.shape
        k = self.kernel_size
        oh = conv_output_size(h, k, self.stride, self.padding)
        ow = conv_output_size(w, k, self.stride, self.padding)
        xp = self._padded(self.inputs)
        columns = np.empty((n, oh, ow, c, k, k), dtype=self.weights.dtype)
        for a in range(k):
            for b in range(k):
                columns[..., a, b] = xp[self._window(a, b, oh, ow)].transpose(0, 2, 3, 1)
        self.columns = columns.reshape(n * oh * ow, c * k * k)
        output = np.matmul(self.columns, self.weights.reshape(self.out_channels, -1).T)
        self.output = output.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2) \
            + self.biases.reshape(1, -1, 1, 1)

    def backward(self, dvalues: npt.ArrayLike) -> None:
        """dvalues (N, out_channels, OH, OW) -> dweights, dbiases (regularisation included, as
        Layer_Dense) and dinputs (N, in_channels, H, W)."""
        dvalues = np.asarray(dvalues, dtype=self.weights.dtype)
        n, c, h, w = self.inputs.shape
        k, p = self.kernel_size, self.padding
        _, _, oh, ow = dvalues.shape
        # one row per output position, as the rows of self.columns
        drows = dvalues.transpose(0, 2, 3, 1).reshape(n * oh * ow, self.out_channels)
        self.dweights = np.matmul(drows.T, self.columns).reshape(self.weights.shape)
        self.dbiases = dvalues.sum(axis=(0, 2, 3), dtype=np.float64).astype(self.weights.dtype)
        self._add_regularization_gradients()
        # col2im: each column entry goes back to the input position it was copied from (summed)
        dcolumns = np.matmul(drows, self.weights.reshape(self.out_channels, -1))
        dcolumns = dcolumns.reshape(n, oh, ow, c, k, k)
        dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=self.weights.dtype)
        for a in range(k):
            for b in range(k):
                dxp[self._window(a, b, oh, ow)] += dcolumns[..., a, b].transpose(0, 3, 1, 2)
        self.dinputs = dxp[:, :, p:p + h, p:p + w].copy()


class Layer_MaxPool2D:
    """Max pooling over pool_size x pool_size windows moved by stride (default: pool_size)."""

    def __init__(self, pool_size: int = 2, stride: int | None = None) -> None:
        self.pool_size = pool_size
        self.stride = pool_size if stride is None else stride

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs (N, C, H, W) -> output (N, C, OH, OW); ``argmax`` (N, C, OH, OW) holds the
        winning position of each window as a flat index ``h * W + w`` into its (H, W) plane."""
        self.inputs = inputs
        n, c, h, w = inputs.shape
        p, s = self.pool_size, self.stride
        oh = (h - p) // s + 1
        ow = (w - p) // s + 1
        # windows[..., a * p + b] = inputs[n, c, i*s + a, j*s + b]: the window in row-major order
        windows = np.empty((n, c, oh, ow, p * p), dtype=inputs.dtype)
        for a in range(p):
            for b in range(p):
                windows[..., a * p + b] = inputs[:, :, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s]
        best = np.argmax(windows, axis=-1)  # first maximum; a NaN counts as the maximum
        self.output = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
        rows = np.arange(oh).reshape(-1, 1) * s + best // p
        cols = np.arange(ow).reshape(1, -1) * s + best % p
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


class Layer_Flatten:
    """(N, C, H, W) -> (N, C*H*W) in C order (any N-D input -> (N, rest))."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        self.inputs = inputs
        self.output = inputs.reshape(inputs.shape[0], int(np.prod(inputs.shape[1:])))

    def backward(self, dvalues: np.ndarray) -> None:
        self.dinputs = dvalues.reshape(self.inputs.shape)
