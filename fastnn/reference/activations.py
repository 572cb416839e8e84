"""Activations of the book (Ch22 versions): ReLU, Softmax, Sigmoid, Linear; Tanh, LeakyReLU and GELU
beyond the book.

All take inputs of shape (n_samples, n_units) and keep the input dtype. forward/backward store
``output``/``dinputs`` on the object and return None; ``predictions`` turns outputs into the values
the accuracy compares with the labels.
"""
from __future__ import annotations

import math

import numpy as np


class Activation_ReLU:
    """``output = max(0, inputs)``; the gradient is 0 where inputs <= 0."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: (n_samples, n_units) -> self.output: same shape. ``training`` is ignored."""
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues: (n_samples, n_units) -> self.dinputs: a copy of dvalues, 0 where inputs <= 0."""
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """outputs: (n_samples, n_units) -> the same array."""
        return outputs


class Activation_Softmax:
    """Row-wise softmax, ``exp(x - max) / sum(exp(x - max))``; outputs sum to 1 per sample."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: (n_samples, n_classes) -> self.output: probabilities, same shape."""
        self.inputs = inputs
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues: (n_samples, n_classes) -> self.dinputs: same shape.

        The book's per-sample loop: row i of dinputs is ``(diag(s) - s s^T) @ dvalues[i]`` where
        s is row i of ``self.output``. (The Model bypasses this with the combined softmax/CCE
        gradient when the loss is categorical cross-entropy.)
        """
        self.dinputs = np.empty_like(dvalues)
        for index, (single_output, single_dvalues) in enumerate(zip(self.output, dvalues)):
            single_output = single_output.reshape(-1, 1)
            jacobian_matrix = np.diagflat(single_output) - np.matmul(single_output, single_output.T)
            self.dinputs[index] = np.matmul(jacobian_matrix, single_dvalues)

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """outputs: (n_samples, n_classes) -> class ids (n_samples,), the argmax of each row."""
        return np.argmax(outputs, axis=1)


class Activation_Sigmoid:
    """``output = 1 / (1 + exp(-inputs))``, as the book writes it (large negative inputs overflow
    ``exp`` with a RuntimeWarning and give 0, which is the correct limit)."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: (n_samples, n_outputs) -> self.output: values in [0, 1], same shape."""
        self.inputs = inputs
        self.output = 1 / (1 + np.exp(-inputs))

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues: (n_samples, n_outputs) -> self.dinputs = dvalues * (1 - output) * output."""
        self.dinputs = dvalues * (1 - self.output) * self.output

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """outputs: (n_samples, n_outputs) -> int array of the same shape, 1 where output > 0.5."""
        return (outputs > 0.5) * 1


class Activation_Linear:
    """Identity: ``output`` is the inputs object itself; used for regression outputs."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: (n_samples, n_outputs) -> self.output (the same object)."""
        self.inputs = inputs
        self.output = inputs

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues: (n_samples, n_outputs) -> self.dinputs, a copy of dvalues."""
        self.dinputs = dvalues.copy()

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """outputs: (n_samples, n_outputs) -> the same array."""
        return outputs


class Activation_Tanh:
    """``output = tanh(inputs)``; the gradient is ``1 - output**2`` (beyond the book)."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: any shape -> self.output: same shape. ``training`` is ignored."""
        self.inputs = inputs
        self.output = np.tanh(inputs)

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues: the output's shape -> self.dinputs = dvalues * (1 - output**2)."""
        self.dinputs = dvalues * (1 - self.output ** 2)

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """outputs -> the same array."""
        return outputs


class Activation_LeakyReLU:
    """``output = x if x > 0 else alpha * x``, alpha in the data's dtype (beyond the book)."""

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: any shape -> self.output: same shape and dtype."""
        self.inputs = inputs
        self.output = np.where(inputs > 0, inputs, inputs * inputs.dtype.type(self.alpha))

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues -> self.dinputs = dvalues where inputs > 0, else alpha * dvalues."""
        self.dinputs = np.where(self.inputs > 0, dvalues, dvalues * dvalues.dtype.type(self.alpha))

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return outputs


_erf = np.vectorize(math.erf, otypes=[np.float64])  # NumPy has no erf; math.erf is libm's


class Activation_GELU:
    """``x * Phi(x)`` (approximate="none", Phi the standard normal CDF) or the tanh approximation
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (approximate="tanh"), and the exact
    derivative of each; computed in float64 and rounded to the data's dtype (beyond the book)."""

    def __init__(self, approximate: str = "none") -> None:
        self.approximate = approximate

    def _inner(self, x: np.ndarray) -> np.ndarray:
        return math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: any shape -> self.output: same shape and dtype."""
        self.inputs = inputs
        x = inputs.astype(np.float64)
        if self.approximate == "tanh":
            y = 0.5 * x * (1 + np.tanh(self._inner(x)))
        else:
            y = 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        self.output = y.astype(inputs.dtype)

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues -> self.dinputs = dvalues * GELU'(inputs)."""
        x = self.inputs.astype(np.float64)
        if self.approximate == "tanh":
            t = np.tanh(self._inner(x))
            slope = 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x ** 2)
        else:
            slope = 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)
        self.dinputs = (dvalues * slope).astype(dvalues.dtype)

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return outputs
