"""The classification metrics of fastnn.metrics in plain NumPy (not in the book): the oracle
they are checked against. No argument checks."""
from __future__ import annotations

import numpy as np


def _ids(values):
    values = np.asarray(values)
    if values.ndim == 2:
        return values.argmax(axis=1), values.shape[1]
    return values.astype(int), None


def confusion_matrix(y_true, y_pred, n_classes=None) -> np.ndarray:
    """[i, j]: the samples of class i predicted as j."""
    true, a = _ids(y_true)
    pred, b = _ids(y_pred)
    if n_classes is None:
        n_classes = max(int(true.max()) + 1, int(pred.max()) + 1, a or 0, b or 0)
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def precision(y_true, y_pred, n_classes=None) -> np.ndarray:
    """Per class: right among those predicted as it."""
    m = confusion_matrix(y_true, y_pred, n_classes)
    predicted = m.sum(axis=0)
    return np.array([m[c, c] / predicted[c] if predicted[c] else 0.0 for c in range(len(m))])


def recall(y_true, y_pred, n_classes=None) -> np.ndarray:
    """Per class: right among its samples."""
    m = confusion_matrix(y_true, y_pred, n_classes)
    actual = m.sum(axis=1)
    return np.array([m[c, c] / actual[c] if actual[c] else 0.0 for c in range(len(m))])


def accuracy(y_true, y_pred, n_classes=None) -> np.ndarray:
    """Per class: one-vs-rest accuracy."""
    m = confusion_matrix(y_true, y_pred, n_classes)
    total = m.sum()
    result = []
    for c in range(len(m)):
        tp = m[c, c]
        tn = total - m[c, :].sum() - m[:, c].sum() + tp
        result.append((tp + tn) / total)
    return np.array(result)
