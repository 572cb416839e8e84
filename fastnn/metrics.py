"""Classification metrics (not in the book): the confusion matrix and per-class precision, recall
and accuracy, from class ids or from scores.

    classes = model.predict_classes(X_test)
    matrix = fastnn.metrics.confusion_matrix(y_test, classes)       # (n_classes, n_classes)
    fastnn.metrics.recall(y_test, classes)                          # (n_classes,)

``y_true`` and ``y_pred`` may each be class ids (n_samples,) or one row per sample
(n_samples, n_classes): one-hot targets, probabilities or scores, turned into ids by argmax.
``n_classes`` defaults to the row length of a 2-D argument, else the largest id + 1.
"""
from __future__ import annotations

import numpy as np

from ._core import checks as _checks

__all__ = ["confusion_matrix", "precision", "recall", "accuracy"]


def _class_ids(values, name: str, where: str) -> tuple[np.ndarray, int | None]:
    """(ids (n_samples,) int64, the class count a 2-D argument implies or None)."""
    if not isinstance(values, np.ndarray):
        values = np.asarray(values)
    if values.ndim == 2:
        if values.shape[1] < 1 or values.dtype.kind not in "biuf":
            raise _checks.fail(where, name, "class ids (n_samples,) or rows of scores (n_samples, n_classes)",
                               _checks.describe(values))
        return np.argmax(values, axis=1).astype(np.int64), values.shape[1]
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise _checks.fail(where, name, "class ids (n_samples,) or rows of scores (n_samples, n_classes)",
                           _checks.describe(values), TypeError if values.dtype.kind not in "biuf" else ValueError)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        raise _checks.fail(where, name, "whole-number class ids", "non-integer values")
    ids = values.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise _checks.fail(where, name, "class ids >= 0", f"{int(ids.min())}")
    return ids, None


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: entry [i, j] is the number of samples of class i
    (y_true) predicted as class j (y_pred); rows sum to the class sizes, columns to the
    prediction counts."""
    where = "confusion_matrix"
    true, true_classes = _class_ids(y_true, "y_true", where)
    pred, pred_classes = _class_ids(y_pred, "y_pred", where)
    if len(true) != len(pred):
        raise ValueError(f"{where}: y_true and y_pred must have the same number of samples, got {len(true)} and "
                         f"{len(pred)}")
    if not len(true):
        raise ValueError(f"{where}: y_true and y_pred hold no samples")
    largest = int(max(true.max(), pred.max())) + 1
    if n_classes is None:
        n_classes = max(c for c in (true_classes, pred_classes, largest) if c is not None)
    else:
        n_classes = _checks.positive_int(n_classes, "n_classes", where)
        if largest > n_classes:
            raise ValueError(f"{where}: class id {largest - 1} is not below n_classes={n_classes}")
    for name, classes in (("y_true", true_classes), ("y_pred", pred_classes)):
        if classes is not None and classes != n_classes:
            raise ValueError(f"{where}: {name} has rows of {classes} classes, not {n_classes}")
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(hits: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """hits / counts as float64, 0 where counts is 0."""
    return np.divide(hits, counts, out=np.zeros(len(hits)), where=counts > 0)


def precision(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(n_classes,): of the samples predicted as each class, the fraction that belong to it
    (0 for a class never predicted)."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    return _ratio(np.diag(matrix), matrix.sum(axis=0))


def recall(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(n_classes,): of the samples of each class, the fraction predicted as it: the accuracy on
    that class's own samples (0 for a class with no samples)."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    return _ratio(np.diag(matrix), matrix.sum(axis=1))


def accuracy(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """(n_classes,): the one-vs-rest accuracy of each class, (TP + TN) / n_samples: the fraction of
    all samples on which "is it this class?" is answered right. (recall() is the accuracy on the
    class's own samples.)"""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    n = matrix.sum()
    tp = np.diag(matrix)
    wrong = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * tp      # false positives + false negatives
    return (n - wrong) / n
