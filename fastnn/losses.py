"""Losses with the book's names and protocol, on compiled kernels (src_pyx/_losses.pyx.tp).

``forward(y_pred, y_true)`` returns the per-sample losses (n_samples,); ``calculate`` returns
their mean (accumulated across calls for the epoch figures) and, on request, the regularisation
loss; ``backward(dvalues, y_true)`` stores ``dinputs``. Sums accumulate in double.

Label forms, as the book: categorical targets are class ids (n_samples,) or one-hot rows
(n_samples, n_classes); binary and regression targets have the predictions' shape (a 1-D binary
target of length n_samples is taken as the column the book makes with ``y.reshape(-1, 1)``).
"""
from __future__ import annotations

import numpy as np

from ._core import arrays as _arrays
from ._core.spec import declare
from ._core.describe import constructor_repr
from ._ext import _losses
from .activations import Activation_Softmax


def _layer_penalty(layer) -> float:
    """The L1/L2 penalty of one trainable layer (0 when it has no positive coefficient)."""
    state = getattr(layer, "__dict__", None)
    if state is not None:  # plain objects (every layer here): one dict, no attribute machinery
        l1w = state.get("weight_regularizer_l1", 0)
        l2w = state.get("weight_regularizer_l2", 0)
        l1b = state.get("bias_regularizer_l1", 0)
        l2b = state.get("bias_regularizer_l2", 0)
    else:
        l1w = getattr(layer, "weight_regularizer_l1", 0)
        l2w = getattr(layer, "weight_regularizer_l2", 0)
        l1b = getattr(layer, "bias_regularizer_l1", 0)
        l2b = getattr(layer, "bias_regularizer_l2", 0)
    if not (l1w > 0 or l2w > 0 or l1b > 0 or l2b > 0):
        return 0
    value = _losses.regularization_loss(layer.weights, layer.biases, l1w, l2w, l1b, l2b)
    if value is None:  # parameters in an unusual form (e.g. a user's own layer): plain NumPy
        w = np.asarray(layer.weights, dtype=np.float64)
        b = np.asarray(layer.biases, dtype=np.float64)
        value = 0.0
        if l1w > 0:
            value += l1w * np.sum(np.abs(w))
        if l2w > 0:
            value += l2w * np.sum(w * w)
        if l1b > 0:
            value += l1b * np.sum(np.abs(b))
        if l2b > 0:
            value += l2b * np.sum(b * b)
        value = float(value)
    return value


@declare("loss", saveable=False)
class Loss:
    """Base class: regularisation loss, mean loss with accumulation over a pass (an epoch)."""

    __repr__ = constructor_repr

    def regularization_loss(self, layer=None):
        """Sum of the L1/L2 penalties: of `layer` (Ch14-17 call) or of every trainable layer
        remembered by ``remember_trainable_layers`` (Ch18+ call). 0 when there is none."""
        if layer is not None:
            return _layer_penalty(layer)
        layers = self.__dict__.get("trainable_layers")
        if layers is None:
            raise ValueError(f"{type(self).__name__}.regularization_loss: pass a layer, or call "
                             f"remember_trainable_layers() first (Model.finalize does)")
        total = 0
        for trainable in layers:
            total += _layer_penalty(trainable)
        return total

    def remember_trainable_layers(self, trainable_layers) -> None:
        """The layers regularization_loss() sums over (set by Model.finalize)."""
        self.trainable_layers = trainable_layers

    def _sample_loss_sum(self, output, y) -> tuple[float, int]:
        """(sum of the per-sample losses, n_samples). Subclasses use a kernel; a user's own
        subclass that only defines forward() gets this generic version."""
        losses = np.asarray(self.forward(output, y))
        return float(np.sum(losses, dtype=np.float64)), len(losses)

    def calculate(self, output, y, *, include_regularization: bool = False):
        """Mean loss of this batch; added to the pass's accumulated sum and count (which start at
        zero when new_pass() was never called, as chapters 5-17 need). With
        include_regularization=True: (data_loss, regularization_loss())."""
        total, count = self._sample_loss_sum(output, y)
        if count == 0:
            raise ValueError(f"{type(self).__name__}.calculate: got an empty batch (0 samples)")
        # Everything that can fail runs before the accumulators change.
        regularization = self.regularization_loss() if include_regularization else None
        data_loss = self._accumulate(total, count)
        if not include_regularization:
            return data_loss
        return data_loss, regularization

    def _accumulate(self, total: float, count: int) -> float:
        """Add one batch (sum of its per-sample losses, count) to the pass; its mean loss."""
        state = self.__dict__
        state["accumulated_sum"] = state.get("accumulated_sum", 0) + total
        state["accumulated_count"] = state.get("accumulated_count", 0) + count
        return total / count

    def calculate_accumulated(self, *, include_regularization: bool = False):
        """Mean loss over everything since new_pass(); the regularisation loss is computed now,
        from the current weights."""
        count = self.__dict__.get("accumulated_count", 0)
        if count == 0:
            raise ValueError(f"{type(self).__name__}.calculate_accumulated: nothing accumulated; "
                             f"call calculate() after new_pass()")
        data_loss = self.accumulated_sum / count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self) -> None:
        """Reset the accumulated sum and count (start of an epoch or evaluation)."""
        self.accumulated_sum = 0
        self.accumulated_count = 0

    # --- shared argument handling -------------------------------------------------------------
    def _predictions(self, y_pred, method: str) -> np.ndarray:
        return _arrays.predictions(y_pred, "dvalues" if method == "backward" else "y_pred",
                                       f"{type(self).__name__}.{method}")


@declare("loss", fused="categorical_crossentropy")
class Loss_CategoricalCrossentropy(Loss):
    """-log of the predicted probability of the true class, probabilities clipped to
    [1e-7, 1 - 1e-7]. y_true: class ids (n_samples,) or one-hot (n_samples, n_classes)."""

    def _run(self, y_pred, y_true, per_sample: bool, method: str = "forward"):
        # labels_ready also checks one-hot rows can be logged (finite, non-negative, one positive
        # weight): the kernel alone would return -log(0) = inf or NaN for them.
        if not _losses.labels_ready(y_pred, y_true):
            y_pred = self._predictions(y_pred, method)
            y_true = _arrays.class_labels(y_true, y_pred.shape[0], y_pred.shape[1],
                                              f"{type(self).__name__}.{method}", onehot_dtype=y_pred.dtype,
                                              weights_for_log=True)
        return _losses.cce(y_pred, y_true, per_sample)

    def forward(self, y_pred, y_true) -> np.ndarray:
        """y_pred: (n_samples, n_classes) probabilities -> per-sample losses (n_samples,)."""
        return self._run(y_pred, y_true, True)[1]

    def _sample_loss_sum(self, output, y):
        return self._run(output, y, False, "calculate")[0], len(output)

    def backward(self, dvalues, y_true) -> None:
        """dinputs = -y_true / dvalues / n_samples (no clipping, as the book)."""
        if not _losses.cce_backward(self.__dict__, dvalues, y_true):
            dvalues = self._predictions(dvalues, "backward")
            y_true = _arrays.class_labels(y_true, dvalues.shape[0], dvalues.shape[1],
                                              f"{type(self).__name__}.backward", onehot_dtype=dvalues.dtype)
            _losses.cce_backward(self.__dict__, dvalues, y_true)


class _ElementwiseLoss(Loss):
    """Losses whose targets have the predictions' shape: BCE, MSE, MAE."""

    _KIND = -1

    def _run(self, y_pred, y_true, per_sample: bool, method: str = "forward"):
        result = _losses.elementwise(self._KIND, y_pred, y_true, per_sample)
        if result is None:
            y_pred = self._predictions(y_pred, method)
            y_true = _arrays.targets_like(y_true, y_pred, f"{type(self).__name__}.{method}")
            result = _losses.elementwise(self._KIND, y_pred, y_true, per_sample)
        return result

    def forward(self, y_pred, y_true) -> np.ndarray:
        """y_pred, y_true: (n_samples, n_outputs) -> per-sample losses (n_samples,), the mean over
        outputs."""
        return self._run(y_pred, y_true, True)[1]

    def _sample_loss_sum(self, output, y):
        total = self._run(output, y, False, "calculate")[0]
        return total, len(output)

    def backward(self, dvalues, y_true) -> None:
        """dvalues, y_true: (n_samples, n_outputs) -> self.dinputs."""
        if not _losses.elementwise_backward(self._KIND, self.__dict__, dvalues, y_true):
            dvalues = self._predictions(dvalues, "backward")
            y_true = _arrays.targets_like(y_true, dvalues, f"{type(self).__name__}.backward")
            _losses.elementwise_backward(self._KIND, self.__dict__, dvalues, y_true)


@declare("loss")
class Loss_BinaryCrossentropy(_ElementwiseLoss):
    """-(y log p + (1 - y) log(1 - p)) averaged over outputs, p clipped to [1e-7, 1 - 1e-7]."""

    _KIND = _losses.BCE


@declare("loss", fused="mean_squared_error")
class Loss_MeanSquaredError(_ElementwiseLoss):
    """mean((y - p)^2) over outputs."""

    _KIND = _losses.MSE


@declare("loss")
class Loss_MeanAbsoluteError(_ElementwiseLoss):
    """mean(|y - p|) over outputs. The gradient is -sign(y - p) / n_outputs / n_samples: the book's
    sign is wrong (descending it climbs the loss); fastnn fixes it (a documented deviation)."""

    _KIND = _losses.MAE


@declare("loss", saveable=False)
class Activation_Softmax_Loss_CategoricalCrossentropy:
    """Softmax followed by categorical cross-entropy, with the cheap combined gradient.

    Both book versions in one class: the Ch9-17 ``forward(inputs, y_true)`` runs the softmax
    (``self.output``) and returns the mean loss through ``self.loss``; the Ch18+ Model only calls
    ``backward(dvalues, y_true)`` with the softmax output as dvalues:
    ``dinputs = (dvalues - one_hot(y_true)) / n_samples``.
    """

    __repr__ = constructor_repr

    def __init__(self) -> None:
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        """inputs: (n_samples, n_classes) logits -> self.output (softmax); returns the mean loss."""
        # The labels are checked before the softmax overwrites anything (one C call when inputs and
        # labels are already in the kernels' form).
        if not _losses.labels_ready(inputs, y_true):
            where = "Activation_Softmax_Loss_CategoricalCrossentropy.forward"
            inputs = _arrays.predictions(inputs, "inputs", where)
            y_true = _arrays.class_labels(y_true, inputs.shape[0], inputs.shape[1], where,
                                              onehot_dtype=inputs.dtype, weights_for_log=True)
        n_samples = inputs.shape[0]
        if n_samples == 0:
            raise ValueError("Activation_Softmax_Loss_CategoricalCrossentropy.forward: inputs must hold at "
                             f"least one sample, got shape {inputs.shape}")
        self.activation.forward(inputs)
        output = self.output = self.activation.output
        loss = self.loss
        if type(loss) is Loss_CategoricalCrossentropy:
            # What loss.calculate(output, y_true) does, without re-checking the checked labels.
            result = _losses.cce(output, y_true, False)
            if result is not None:
                return loss._accumulate(result[0], n_samples)
        return loss.calculate(output, y_true)

    def backward(self, dvalues, y_true) -> None:
        """dvalues: the softmax output (n_samples, n_classes) -> self.dinputs."""
        if not _losses.softmax_cce_backward(self.__dict__, dvalues, y_true):
            where = "Activation_Softmax_Loss_CategoricalCrossentropy.backward"
            dvalues = _arrays.predictions(dvalues, "dvalues", where)
            y_true = _arrays.class_labels(y_true, dvalues.shape[0], dvalues.shape[1], where,
                                              onehot_dtype=dvalues.dtype)
            _losses.softmax_cce_backward(self.__dict__, dvalues, y_true)
