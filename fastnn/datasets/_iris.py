"""load_iris: Fisher's 150-sample Iris data, shipped inside the package (see data/README.md)."""
from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._core.config import resolve_dtype

IRIS_CLASSES: tuple[str, ...] = ("setosa", "versicolor", "virginica")
"""Species names; label ``k`` of :func:`load_iris` is ``IRIS_CLASSES[k]``."""

IRIS_FEATURES: tuple[str, ...] = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
"""Column names of X from :func:`load_iris` (centimetres)."""

_FILE = "iris.csv"
_N_SAMPLES = 150


def _read_rows() -> list[list[str]]:
    text = resources.files(__package__).joinpath("data").joinpath(_FILE).read_text(encoding="ascii")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [row for row in rows[1:] if row]
    if header != [*IRIS_FEATURES, "species"] or len(body) != _N_SAMPLES:
        raise RuntimeError(f"fastnn's shipped {_FILE} is damaged (header {header!r}, {len(body)} rows); "
                           "reinstall fastnn")
    return body


def load_iris(*, dtype: DTypeLike | None = None) -> tuple[NDArray[np.floating], NDArray[np.uint8]]:
    """Fisher's Iris data: 150 flowers, 4 measurements, 3 species (50 each), shipped with fastnn.

    Nothing is downloaded. The rows come in the customary order (50 setosa, then 50 versicolor, then
    50 virginica), so shuffle before splitting off a test set. The species names are the module
    constant ``IRIS_CLASSES`` (label ``k`` is ``IRIS_CLASSES[k]``) and the column names
    ``IRIS_FEATURES``. Source and licence (UCI Machine Learning Repository, CC BY 4.0; Fisher 1936):
    ``fastnn/datasets/data/README.md``.

    Parameters
    ----------
    dtype : None, "float32" or "float64"
        dtype of X; None means fastnn's default (float32).

    Returns
    -------
    X : ndarray, shape (150, 4), the given dtype
        Sepal length, sepal width, petal length, petal width, in centimetres.
    y : ndarray, shape (150,), uint8
        0 = setosa, 1 = versicolor, 2 = virginica.
    """
    dtype = resolve_dtype(dtype)
    rows = _read_rows()
    X = np.array([[float(value) for value in row[:4]] for row in rows], dtype=np.float64).astype(dtype)
    y = np.array([IRIS_CLASSES.index(row[4]) for row in rows], dtype=np.uint8)
    return X, y
