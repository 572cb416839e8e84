"""Losses of the book (Ch22 versions, plus the Ch9-17 members user code still calls).

Shapes: predictions ``y_pred``/``dvalues`` are (n_samples, n_outputs). Labels ``y_true`` are
sparse class ids (n_samples,) or one-hot (n_samples, n_classes) for categorical cross-entropy,
and (n_samples, n_outputs) for the binary and regression losses. ``forward`` returns the per-sample
losses (n_samples,); ``backward`` stores ``dinputs`` (n_samples, n_outputs). Float labels are
converted to the prediction dtype, so float32 predictions give float32 losses and gradients.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np
import numpy.typing as npt

from .activations import Activation_Softmax

if TYPE_CHECKING:
    from .layers import Layer_Dense


def _as_targets(y_true: npt.ArrayLike, like: np.ndarray) -> np.ndarray:
    """Dense targets (n_samples, n_outputs) in the dtype of the predictions ``like``."""
    return np.asarray(y_true, dtype=like.dtype)


class Loss:
    """Base class: the mean loss, its accumulation over a pass, and the regularisation loss.

    Subclasses define ``forward(y_pred, y_true) -> (n_samples,)`` and ``backward(dvalues, y_true)``.
    """

    def regularization_loss(self, layer: Layer_Dense | None = None) -> float:
        """Sum of ``l1 * sum|p|`` and ``l2 * sum p**2`` over the weights and biases.

        With ``layer`` (the Ch14-17 call ``loss.regularization_loss(dense1)``): that layer's terms.
        Without (Ch18+): over ``self.trainable_layers`` (set by ``remember_trainable_layers``).
        Only non-zero strengths contribute; returns the int 0 when nothing does (as the book).
        """
        layers = self.trainable_layers if layer is None else [layer]
        regularization_loss = 0
        for trainable in layers:
            if trainable.weight_regularizer_l1 > 0:
                regularization_loss += trainable.weight_regularizer_l1 * np.sum(np.abs(trainable.weights))
            if trainable.weight_regularizer_l2 > 0:
                regularization_loss += trainable.weight_regularizer_l2 * np.sum(trainable.weights * trainable.weights)
            if trainable.bias_regularizer_l1 > 0:
                regularization_loss += trainable.bias_regularizer_l1 * np.sum(np.abs(trainable.biases))
            if trainable.bias_regularizer_l2 > 0:
                regularization_loss += trainable.bias_regularizer_l2 * np.sum(trainable.biases * trainable.biases)
        return regularization_loss

    def remember_trainable_layers(self, trainable_layers: list[Layer_Dense]) -> None:
        """Store the layers ``regularization_loss()`` sums over (the Model's trainable layers)."""
        self.trainable_layers = trainable_layers

    @overload
    def calculate(self, output: np.ndarray, y: npt.ArrayLike, *,
                  include_regularization: Literal[False] = False) -> float: ...
    @overload
    def calculate(self, output: np.ndarray, y: npt.ArrayLike, *,
                  include_regularization: Literal[True]) -> tuple[float, float]: ...

    def calculate(self, output: np.ndarray, y: npt.ArrayLike, *,
                  include_regularization: bool = False) -> float | tuple[float, float]:
        """Mean loss of one batch; output: (n_samples, n_outputs), y: labels as described above.

        Adds the batch to the pass accumulators (which start at zero when ``new_pass`` was never
        called). Returns ``data_loss``, or ``(data_loss, regularization_loss())`` when asked.
        """
        sample_losses = self.forward(output, y)
        data_loss = np.mean(sample_losses)
        if not hasattr(self, "accumulated_sum"):
            self.new_pass()
        self.accumulated_sum += np.sum(sample_losses)
        self.accumulated_count += len(sample_losses)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    @overload
    def calculate_accumulated(self, *, include_regularization: Literal[False] = False) -> float: ...
    @overload
    def calculate_accumulated(self, *, include_regularization: Literal[True]) -> tuple[float, float]: ...

    def calculate_accumulated(self, *, include_regularization: bool = False) -> float | tuple[float, float]:
        """Mean loss over every sample since ``new_pass``; optionally with the regularisation loss,
        recomputed now from the current weights."""
        data_loss = self.accumulated_sum / self.accumulated_count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self) -> None:
        """Reset the accumulators (``accumulated_sum``, ``accumulated_count``) to 0."""
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Loss_CategoricalCrossentropy(Loss):
    """``-log(p[correct class])``, predictions clipped to [1e-7, 1 - 1e-7]."""

    def forward(self, y_pred: np.ndarray, y_true: npt.ArrayLike) -> np.ndarray:
        """y_pred: (n_samples, n_classes) probabilities; y_true: (n_samples,) class ids or
        (n_samples, n_classes) one-hot. Returns the per-sample losses (n_samples,).

        Other label ranks raise ValueError (the book raises UnboundLocalError)."""
        samples = len(y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        y_true = np.asarray(y_true)
        if y_true.ndim == 1:
            correct_confidences = y_pred_clipped[range(samples), y_true]
        elif y_true.ndim == 2:
            correct_confidences = np.sum(y_pred_clipped * _as_targets(y_true, y_pred), axis=1)
        else:
            raise ValueError(
                "y_true must be class ids (n_samples,) or one-hot (n_samples, n_classes), "
                f"got shape {y_true.shape}")
        return -np.log(correct_confidences)

    def backward(self, dvalues: np.ndarray, y_true: npt.ArrayLike) -> None:
        """dvalues: (n_samples, n_classes) predicted probabilities; y_true as in forward.
        Sets dinputs = -y_one_hot / dvalues / n_samples (no clipping, as the book)."""
        samples = len(dvalues)
        labels = len(dvalues[0])
        y_true = np.asarray(y_true)
        if y_true.ndim == 1:
            y_true = np.eye(labels, dtype=dvalues.dtype)[y_true]
        self.dinputs = -_as_targets(y_true, dvalues) / dvalues / samples


class Activation_Softmax_Loss_CategoricalCrossentropy():
    """Softmax followed by categorical cross-entropy, with their fused gradient
    ``(softmax - one_hot) / n_samples``.

    Offers both book versions: the Ch9-17 ``forward(inputs, y_true)`` that returns the loss (with
    ``self.activation`` and ``self.loss``), and the Ch18+ ``backward(dvalues, y_true)`` the Model
    uses.
    """

    def __init__(self) -> None:
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs: np.ndarray, y_true: npt.ArrayLike) -> float:
        """inputs: (n_samples, n_classes) logits; y_true: (n_samples,) or one-hot.
        Sets self.output (the softmax probabilities) and returns the mean loss."""
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues: np.ndarray, y_true: npt.ArrayLike) -> None:
        """dvalues: (n_samples, n_classes), the softmax *outputs*; y_true: (n_samples,) class ids
        or one-hot (turned into class ids). Sets dinputs (n_samples, n_classes), the gradient of
        the mean loss w.r.t. the softmax inputs."""
        samples = len(dvalues)
        y_true = np.asarray(y_true)
        if y_true.ndim == 2:
            y_true = np.argmax(y_true, axis=1)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


class Loss_BinaryCrossentropy(Loss):
    """Mean over the outputs of ``-(y log p + (1 - y) log(1 - p))``, p clipped to [1e-7, 1 - 1e-7]."""

    def forward(self, y_pred: np.ndarray, y_true: npt.ArrayLike) -> np.ndarray:
        """y_pred: (n_samples, n_outputs) in [0, 1]; y_true: 0/1 labels of the same shape.
        Returns the per-sample losses (n_samples,)."""
        y_true = _as_targets(y_true, y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        sample_losses = -(y_true * np.log(y_pred_clipped) + (1 - y_true) * np.log(1 - y_pred_clipped))
        return np.mean(sample_losses, axis=-1)

    def backward(self, dvalues: np.ndarray, y_true: npt.ArrayLike) -> None:
        """dvalues: (n_samples, n_outputs) predictions; y_true: same shape. Sets dinputs
        = -(y / p - (1 - y) / (1 - p)) / n_outputs / n_samples, p clipped as in forward."""
        samples = len(dvalues)
        outputs = len(dvalues[0])
        y_true = _as_targets(y_true, dvalues)
        clipped_dvalues = np.clip(dvalues, 1e-7, 1 - 1e-7)
        self.dinputs = -(y_true / clipped_dvalues - (1 - y_true) / (1 - clipped_dvalues)) / outputs / samples


class Loss_MeanSquaredError(Loss):
    """L2 loss: mean over the outputs of ``(y - p)**2``."""

    def forward(self, y_pred: np.ndarray, y_true: npt.ArrayLike) -> np.ndarray:
        """y_pred, y_true: (n_samples, n_outputs). Returns the per-sample losses (n_samples,)."""
        y_true = _as_targets(y_true, y_pred)
        return np.mean((y_true - y_pred) ** 2, axis=-1)

    def backward(self, dvalues: np.ndarray, y_true: npt.ArrayLike) -> None:
        """dvalues, y_true: (n_samples, n_outputs). Sets dinputs = -2 (y - p) / n_outputs / n_samples."""
        samples = len(dvalues)
        outputs = len(dvalues[0])
        y_true = _as_targets(y_true, dvalues)
        self.dinputs = -2 * (y_true - dvalues) / outputs / samples


class Loss_MeanAbsoluteError(Loss):
    """L1 loss: mean over the outputs of ``|y - p|``.

    Deviation from the book: the gradient is ``-sign(y - p)``, the derivative of the loss. The book
    writes ``+sign(y - p)``, which makes gradient descent climb the loss.
    """

    def forward(self, y_pred: np.ndarray, y_true: npt.ArrayLike) -> np.ndarray:
        """y_pred, y_true: (n_samples, n_outputs). Returns the per-sample losses (n_samples,)."""
        y_true = _as_targets(y_true, y_pred)
        return np.mean(np.abs(y_true - y_pred), axis=-1)

    def backward(self, dvalues: np.ndarray, y_true: npt.ArrayLike) -> None:
        """dvalues, y_true: (n_samples, n_outputs). Sets dinputs = -sign(y - p) / n_outputs / n_samples."""
        samples = len(dvalues)
        outputs = len(dvalues[0])
        y_true = _as_targets(y_true, dvalues)
        self.dinputs = -np.sign(y_true - dvalues) / outputs / samples
