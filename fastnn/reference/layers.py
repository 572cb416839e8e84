"""Layers of the book (Ch22 versions): Layer_Dense, Layer_Dropout, Layer_Input.

Shapes: inputs (n_samples, n_inputs); Dense weights (n_inputs, n_neurons), biases (1, n_neurons);
output (n_samples, n_neurons). forward/backward store their results on the object and return None.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._core.config import resolve_dtype


def _l1_sign(param: np.ndarray) -> np.ndarray:
    """The book's L1 sub-gradient: +1 where param >= 0 (so +1 at exactly 0), -1 where param < 0."""
    return np.where(param < 0, -1, 1).astype(param.dtype)


class _Trainable:
    """What the book's trainable layers share: the L1/L2 terms of their parameter gradients, and
    get_parameters/set_parameters (the live arrays, no copies)."""

    def _add_regularization_gradients(self) -> None:
        """dweights/dbiases += the book's L1 (lambda * sign) and L2 (2 * lambda * value) terms."""
        if self.weight_regularizer_l1 > 0:
            self.dweights += self.weight_regularizer_l1 * _l1_sign(self.weights)
        if self.weight_regularizer_l2 > 0:
            self.dweights += 2 * self.weight_regularizer_l2 * self.weights
        if self.bias_regularizer_l1 > 0:
            self.dbiases += self.bias_regularizer_l1 * _l1_sign(self.biases)
        if self.bias_regularizer_l2 > 0:
            self.dbiases += 2 * self.bias_regularizer_l2 * self.biases

    def get_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, biases): the live arrays, not copies."""
        return self.weights, self.biases

    def set_parameters(self, weights: np.ndarray, biases: np.ndarray) -> None:
        """Assign weights and biases as given (the shapes the layer documents), without copying."""
        self.weights = weights
        self.biases = biases


class Layer_Dense(_Trainable):
    """Fully connected layer: ``output = inputs @ weights + biases``.

    weights: (n_inputs, n_neurons), drawn as ``0.01 * standard normal`` from NumPy's global RNG (the
    same stream as the book's ``np.random.randn(n_inputs, n_neurons)``); biases: (1, n_neurons) zeros.
    Chapter 17 of the book initialises with 0.1 instead of 0.01: multiply ``layer.weights`` by 10
    after construction to get its weights.

    The four regularisation strengths add ``l1 * sum|p|`` and ``l2 * sum p**2`` to the loss (see
    ``Loss.regularization_loss``) and their gradients to ``dweights``/``dbiases``.

    ``dtype`` (keyword-only, not in the book) is the parameter dtype; None means
    ``fastnn.default_dtype()`` (float32 unless ``fastnn.init(dtype=...)`` changed it). Inputs and
    incoming gradients are converted to it, so every array the layer produces has this dtype.
    """

    def __init__(self, n_inputs: int, n_neurons: int,
                 weight_regularizer_l1: float = 0, weight_regularizer_l2: float = 0,
                 bias_regularizer_l1: float = 0, bias_regularizer_l2: float = 0,
                 *, dtype: npt.DTypeLike | None = None) -> None:
        dtype = resolve_dtype(dtype)
        standard_normal = np.random.standard_normal((n_inputs, n_neurons)).astype(dtype)
        self.weights = 0.01 * standard_normal
        self.biases = np.zeros((1, n_neurons), dtype=dtype)
        self.weight_regularizer_l1 = weight_regularizer_l1
        self.weight_regularizer_l2 = weight_regularizer_l2
        self.bias_regularizer_l1 = bias_regularizer_l1
        self.bias_regularizer_l2 = bias_regularizer_l2

    def forward(self, inputs: npt.ArrayLike, training: bool = True) -> None:
        """inputs: (n_samples, n_inputs) -> self.output: (n_samples, n_neurons).

        Stores ``self.inputs`` (the inputs converted to the layer dtype; the caller's array itself
        when it already has that dtype). ``training`` is ignored.
        """
        self.inputs = np.asarray(inputs, dtype=self.weights.dtype)
        self.output = np.matmul(self.inputs, self.weights) + self.biases

    def backward(self, dvalues: npt.ArrayLike) -> None:
        """dvalues: (n_samples, n_neurons), the gradient of the loss w.r.t. ``self.output``.

        Sets dweights (n_inputs, n_neurons), dbiases (1, n_neurons), both including the
        regularisation gradients (L1 then L2, each only when its strength is > 0), and
        dinputs (n_samples, n_inputs), computed with the current (not yet updated) weights.
        """
        dvalues = np.asarray(dvalues, dtype=self.weights.dtype)
        self.dweights = np.matmul(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self._add_regularization_gradients()
        self.dinputs = np.matmul(dvalues, self.weights.T)



class Layer_Dropout:
    """Inverted dropout. ``Layer_Dropout(0.1)`` drops 10% of the units while training.

    Book quirk kept: the attribute ``rate`` holds the *keep* probability, ``1 - rate``.
    The mask is the book's ``np.random.binomial(1, keep, size=inputs.shape) / keep`` from NumPy's
    global RNG (float64); the output is cast back to the input dtype.
    """

    def __init__(self, rate: float) -> None:
        self.rate = 1 - rate

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: (n_samples, n_units) -> self.output: same shape and dtype.

        Training (the default, as in the book's Ch15-17 ``forward(inputs)``): draws
        ``self.binary_mask`` (float64, same shape) and multiplies. Otherwise: ``output`` is a copy
        of the inputs and ``binary_mask`` is left untouched.
        """
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = (inputs * self.binary_mask).astype(inputs.dtype)

    def backward(self, dvalues: np.ndarray) -> None:
        """dvalues: (n_samples, n_units) -> self.dinputs = dvalues * binary_mask, dvalues' dtype."""
        self.dinputs = (dvalues * self.binary_mask).astype(dvalues.dtype)


class Layer_Input:
    """The Model's first link: ``output`` is the model input itself (no copy). No backward."""

    def forward(self, inputs: np.ndarray, training: bool = True) -> None:
        """inputs: (n_samples, n_features) -> self.output (the same object)."""
        self.output = inputs
