"""Accuracy metrics of the book (Ch22 versions)."""
from __future__ import annotations

import numpy as np


class Accuracy:
    """Base class: the mean of ``self.compare(predictions, y)`` and its accumulation over a pass.

    Subclasses define ``init(y)`` (called once by ``Model.train`` with the training labels) and
    ``compare(predictions, y) -> bool array``.
    """

    def calculate(self, predictions: np.ndarray, y: np.ndarray) -> np.floating:
        """Fraction of correct predictions in one batch; predictions and y: (n_samples,) or
        (n_samples, n_outputs). Adds the batch to the pass accumulators (which start at zero when
        ``new_pass`` was never called). As in the book, the count is ``len`` (rows)."""
        comparisons = self.compare(predictions, y)
        accuracy = np.mean(comparisons)
        if not hasattr(self, "accumulated_sum"):
            self.new_pass()
        self.accumulated_sum += np.sum(comparisons)
        self.accumulated_count += len(comparisons)
        return accuracy

    def calculate_accumulated(self) -> float:
        """Accuracy over every batch since ``new_pass``."""
        return self.accumulated_sum / self.accumulated_count

    def new_pass(self) -> None:
        """Reset the accumulators (``accumulated_sum``, ``accumulated_count``) to 0."""
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Accuracy_Categorical(Accuracy):
    """Exact-match accuracy. Categorical: predictions (n_samples,) class ids against class ids or
    one-hot labels. ``binary=True``: predictions (n_samples, n_outputs) of 0/1 against labels of the
    same shape (a 1-D y would broadcast, as in the book)."""

    def __init__(self, *, binary: bool = False) -> None:
        self.binary = binary

    def init(self, y: np.ndarray) -> None:
        """Nothing to prepare."""

    def compare(self, predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bool array ``predictions == y`` (one-hot y turned into class ids unless binary)."""
        if not self.binary and len(y.shape) == 2:
            y = np.argmax(y, axis=1)
        return predictions == y


class Accuracy_Regression(Accuracy):
    """A prediction counts as correct when within ``precision = std(y_train) / 250`` of the target."""

    def __init__(self) -> None:
        self.precision = None

    def init(self, y: np.ndarray, reinit: bool = False) -> None:
        """y: (n_samples, n_outputs). Sets ``precision = std(y) / 250`` if unset or ``reinit``."""
        if self.precision is None or reinit:
            self.precision = np.std(y) / 250

    def compare(self, predictions: np.ndarray, y: np.ndarray) -> np.ndarray:
        """predictions, y: (n_samples, n_outputs) -> bool array ``|predictions - y| < precision``."""
        return np.absolute(predictions - y) < self.precision
