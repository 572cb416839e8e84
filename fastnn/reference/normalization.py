"""Layer_BatchNorm in plain NumPy (beyond the book): the oracle for fastnn's compiled version.

Inputs (N, F, ...): feature f (axis 1) is normalised over the N * (further axes) values it has.
Statistics and arithmetic in float64, results rounded to the parameters' dtype. PyTorch's
semantics: the biased batch variance normalises, the unbiased one moves the running variance.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._core.config import resolve_dtype

__all__ = ["Layer_BatchNorm"]


class Layer_BatchNorm:
    """``weights * (x - mean) / sqrt(var + epsilon) + biases`` per feature; weights (ones) and
    biases (zeros) of shape (F,) are trainable, running_mean (zeros) and running_var (ones) are
    updated by each training forward: ``running = (1 - momentum) * running + momentum * batch``."""

    # No L1/L2 penalty (what Loss.regularization_loss reads of a trainable layer).
    weight_regularizer_l1 = weight_regularizer_l2 = bias_regularizer_l1 = bias_regularizer_l2 = 0

    def __init__(self, n_features: int, momentum: float = 0.1, epsilon: float = 1e-5,
                 *, dtype: npt.DTypeLike | None = None) -> None:
        dtype = resolve_dtype(dtype)
        self.momentum = momentum
        self.epsilon = epsilon
        self.weights = np.ones(n_features, dtype=dtype)
        self.biases = np.zeros(n_features, dtype=dtype)
        self.running_mean = np.zeros(n_features, dtype=dtype)
        self.running_var = np.ones(n_features, dtype=dtype)

    def _per_feature(self, values: np.ndarray, ndim: int) -> np.ndarray:
        """(F,) values shaped to broadcast along axis 1 of an ndim-D input."""
        return values.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, inputs: npt.ArrayLike, training: bool = True) -> None:
        """inputs (N, F, ...) -> output, the same shape and the parameters' dtype."""
        dtype = self.weights.dtype
        self.inputs = np.asarray(inputs, dtype=dtype)
        x = self.inputs.astype(np.float64)
        axes = (0, *range(2, x.ndim))
        if training:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            m = x.size // x.shape[1]
            self.running_mean = ((1 - self.momentum) * self.running_mean + self.momentum * mean).astype(dtype)
            self.running_var = ((1 - self.momentum) * self.running_var
                                + self.momentum * (var * m / (m - 1))).astype(dtype)
        else:
            mean, var = self.running_mean.astype(np.float64), self.running_var.astype(np.float64)
        self.batch_statistics = training
        self.inv_std = 1 / np.sqrt(var + self.epsilon)
        self.xhat = (x - self._per_feature(mean, x.ndim)) * self._per_feature(self.inv_std, x.ndim)
        self.output = (self._per_feature(self.weights, x.ndim) * self.xhat
                       + self._per_feature(self.biases, x.ndim)).astype(dtype)

    def backward(self, dvalues: npt.ArrayLike) -> None:
        """dvalues (the output's shape) -> dweights, dbiases (F,) and dinputs (the inputs' shape):
        through the batch statistics after a training forward, through fixed ones otherwise."""
        dtype = self.weights.dtype
        dy = np.asarray(dvalues, dtype=dtype).astype(np.float64)
        axes = (0, *range(2, dy.ndim))
        self.dbiases = dy.sum(axis=axes).astype(dtype)
        self.dweights = (dy * self.xhat).sum(axis=axes).astype(dtype)
        slope = self._per_feature(self.weights * self.inv_std, dy.ndim)
        if self.batch_statistics:
            # d/dx of gamma * (x - mean(x)) / std(x) + beta, the batch's mean and variance moving with x
            dy = (dy - dy.mean(axis=axes, keepdims=True)
                  - self.xhat * (dy * self.xhat).mean(axis=axes, keepdims=True))
        self.dinputs = (slope * dy).astype(dtype)

    def get_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, biases): the live arrays."""
        return self.weights, self.biases

    def set_parameters(self, weights: np.ndarray, biases: np.ndarray) -> None:
        """Assign weights and biases (F,) as given, without copying."""
        self.weights = weights
        self.biases = biases
