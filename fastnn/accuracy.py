"""Accuracy with the book's names and protocol: Accuracy, Accuracy_Categorical, Accuracy_Regression.

``calculate(predictions, y)`` returns this batch's accuracy and accumulates the count of correct
comparisons for the pass; ``calculate_accumulated()`` gives the pass's accuracy.
"""
from __future__ import annotations

import numpy as np

from ._core import arrays as _arrays
from ._core.constraints import NON_NEGATIVE, Bool, Optional
from ._core.spec import declare
from ._core.describe import constructor_repr
from ._ext import _accuracy


@declare("accuracy", saveable=False)
class Accuracy:
    """Base class: subclasses define compare(predictions, y) -> boolean array."""

    __repr__ = constructor_repr

    def calculate(self, predictions, y) -> float:
        """Mean of compare(predictions, y); accumulated for the pass (starting at zero when
        new_pass() was never called)."""
        comparisons = self.compare(predictions, y)
        count = len(comparisons)
        if count == 0:
            raise ValueError(f"{type(self).__name__}.calculate: got an empty batch (0 samples)")
        correct = int(np.count_nonzero(comparisons))
        self._accumulate(correct, count)
        return correct / comparisons.size

    def _accumulate(self, correct: int, count: int) -> None:
        state = self.__dict__
        state["accumulated_sum"] = state.get("accumulated_sum", 0) + correct
        state["accumulated_count"] = state.get("accumulated_count", 0) + count

    def calculate_accumulated(self) -> float:
        """Accuracy over everything since new_pass()."""
        count = self.__dict__.get("accumulated_count", 0)
        if count == 0:
            raise ValueError(f"{type(self).__name__}.calculate_accumulated: nothing accumulated; "
                             f"call calculate() after new_pass()")
        return self.accumulated_sum / count

    def new_pass(self) -> None:
        """Reset the accumulated counts (start of an epoch or evaluation)."""
        self.accumulated_sum = 0
        self.accumulated_count = 0


@declare("accuracy", params={"binary": Bool()}, saved={"binary": Bool()}, fused="categorical_accuracy")
class Accuracy_Categorical(Accuracy):
    """Share of predictions equal to the labels.

    binary=False: predictions are class ids (n_samples,) and y class ids or one-hot rows (reduced
    to their argmax). binary=True: predictions and y are (n_samples, n_outputs) 0/1 arrays; a 1-D
    y of length n_samples is taken as a column (the book would silently broadcast it to an
    (n, n) comparison)."""

    def __init__(self, *, binary: bool = False) -> None:
        self.binary, = Accuracy_Categorical._spec.check(locals())

    def init(self, y) -> None:
        """Nothing to prepare (book API)."""

    def _calculate_from_scores(self, scores, y):
        """calculate(argmax(scores), y) for class-id labels in one pass without the predictions
        array (the Model's path for a softmax output); None when scores/y are not in that form."""
        if self.binary:
            return None
        correct = _accuracy.argmax_matches(scores, y)
        if correct is None:
            return None
        count = len(y)
        if count == 0:
            raise ValueError(f"{type(self).__name__}.calculate: got an empty batch (0 samples)")
        self._accumulate(correct, count)
        return correct / count

    def compare(self, predictions, y) -> np.ndarray:
        predictions = np.asarray(predictions)
        y = np.asarray(y)
        where = "Accuracy_Categorical.compare"
        if not self.binary and y.ndim == 2:
            y = np.argmax(y, axis=1)
        if self.binary and y.ndim == 1 and predictions.ndim == 2 and predictions.shape == (len(y), 1):
            y = y.reshape(-1, 1)
        if predictions.shape != y.shape:
            raise ValueError(f"{where}: predictions and y must have the same shape, got "
                             f"{predictions.shape} and {y.shape}")
        return predictions == y


@declare("accuracy", saved={"precision": Optional(NON_NEGATIVE)}, fused="regression_accuracy")
class Accuracy_Regression(Accuracy):
    """Share of predictions within ``precision = std(y) / 250`` of the target (set by init)."""

    def __init__(self) -> None:
        self.precision = None

    def init(self, y, reinit: bool = False) -> None:
        """Set precision from the training targets (once, unless reinit)."""
        if self.precision is None or reinit:
            self.precision = np.std(_arrays.numeric_values(y, "y", "Accuracy_Regression.init")) / 250

    def compare(self, predictions, y) -> np.ndarray:
        if self.precision is None:
            raise ValueError("Accuracy_Regression.compare: call init(y) first to set the precision")
        predictions = np.asarray(predictions)
        y = np.asarray(y)
        if y.ndim == 1 and predictions.ndim == 2 and predictions.shape == (len(y), 1):
            y = y.reshape(-1, 1)
        if predictions.shape != y.shape:
            raise ValueError(f"Accuracy_Regression.compare: predictions and y must have the same shape, "
                             f"got {predictions.shape} and {y.shape}")
        return np.absolute(predictions - y) < self.precision
