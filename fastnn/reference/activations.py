"""Activations of the book (Ch22 versions): ReLU, Softmax, Sigmoid, Linear; Tanh beyond the book.

All take inputs of shape (n_samples, n_units) and keep the input dtype. forward/backward store
``output``/``dinputs`` on the object and return None; ``predictions`` turns outputs into the values
the accuracy compares with the labels.
"""
from __future__ import annotations

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
