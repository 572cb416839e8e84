"""spiral_data, vertical_data and sine_data: the arrays of ``nnfs.datasets``, whatever nnfs.init() did.

The draws come from NumPy's global legacy RNG in nnfs's order and amount (``samples`` normals per class
for the spiral, ``2 * samples`` per class for the vertical data, none for the sine). They are taken with
``np.random.standard_normal``, the stream behind ``np.random.randn``, because ``nnfs.init()`` replaces
``np.random.randn`` (and ``np.zeros``): calling the functions by their own names with explicit dtypes keeps
the result the same whether or not the user called ``nnfs.init()``.

float32 (the default) reproduces the arithmetic nnfs does after ``nnfs.init()``: every normal is rounded
to float32 before it is used, and X is float32. float64 reproduces nnfs without ``init()``.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._core.config import resolve_dtype
from .._core import checks as _checks

# Labels are uint8, as in nnfs, so at most 256 classes fit.
_MAX_CLASSES = 256


def _normals(samples: int, dtype: np.dtype) -> np.ndarray:
    """``samples`` standard normals from the global RNG, as ``np.random.randn`` gives them under nnfs.

    After nnfs.init(), randn's float64 draws are cast to float32 (and any arithmetic on them stays
    float32); without it they stay float64.
    """
    return np.random.standard_normal(samples).astype(dtype, copy=False)


def _empty_classification(samples, classes, dtype):
    """Validated (samples, classes, dtype) and zero X (samples * classes, 2) and uint8 y, as the
    2-D class-block generators of nnfs allocate them."""
    samples = _checks.positive_int(samples, "samples")
    classes = _checks.positive_int(classes, "classes", maximum=_MAX_CLASSES)
    dtype = resolve_dtype(dtype)
    _checks.check_fits(samples * classes * 2, dtype.itemsize, "samples * classes", None, "X")
    return samples, classes, dtype, np.zeros((samples * classes, 2), dtype=dtype), np.zeros(samples * classes, dtype=np.uint8)


def spiral_data(samples: int, classes: int, *, dtype: DTypeLike | None = None
                ) -> tuple[NDArray[np.floating], NDArray[np.uint8]]:
    """Spiral classification data, identical to ``nnfs.datasets.spiral_data``.

    Class ``k`` fills rows ``k*samples`` to ``(k+1)*samples - 1`` with an arm of the spiral:
    radius ``linspace(0, 1, samples)``, angle ``linspace(4k, 4(k+1), samples) + 0.2 * normal``, point
    ``(r sin(2.5 t), r cos(2.5 t))``. Draws ``samples`` normals per class from NumPy's global RNG.

    Parameters
    ----------
    samples : int
        Points per class (>= 1).
    classes : int
        Number of classes (1 to 256).
    dtype : None, "float32" or "float64"
        dtype of X; None means fastnn's default (float32 unless ``fastnn.init(dtype=...)`` changed it).
        float32 gives exactly the array nnfs returns after ``nnfs.init()`` for the same seed; float64
        exactly the array nnfs returns without ``init()``.

    Returns
    -------
    X : ndarray, shape (samples * classes, 2), the given dtype
    y : ndarray, shape (samples * classes,), uint8, class ids 0 .. classes-1 in contiguous blocks
    """
    samples, classes, dt, X, y = _empty_classification(samples, classes, dtype)
    radius = np.linspace(0.0, 1, samples)
    scale = dt.type(0.2)
    for class_number in range(classes):
        rows = slice(samples * class_number, samples * (class_number + 1))
        # float32 case: (float32 normals * float32 0.2) promoted to float64 by the float64 linspace,
        # which is what nnfs computes after init(); float64 case: plain float64.
        angle = np.linspace(class_number * 4, (class_number + 1) * 4, samples) + _normals(samples, dt) * scale
        X[rows, 0] = radius * np.sin(angle * 2.5)
        X[rows, 1] = radius * np.cos(angle * 2.5)
        y[rows] = class_number
    return X, y


def vertical_data(samples: int, classes: int, *, dtype: DTypeLike | None = None
                  ) -> tuple[NDArray[np.floating], NDArray[np.uint8]]:
    """Vertical-stripes classification data, identical to ``nnfs.datasets.vertical_data``.

    Class ``k`` fills rows ``k*samples`` to ``(k+1)*samples - 1`` with points
    ``(0.1 * normal + k/3, 0.1 * normal + 0.5)``. Draws ``2 * samples`` normals per class from NumPy's
    global RNG (all x coordinates of the class, then all y coordinates).

    Parameters
    ----------
    samples : int
        Points per class (>= 1).
    classes : int
        Number of classes (1 to 256).
    dtype : None, "float32" or "float64"
        dtype of X; None means fastnn's default (float32). float32 gives exactly what nnfs returns
        after ``nnfs.init()``, float64 exactly what it returns without ``init()``.

    Returns
    -------
    X : ndarray, shape (samples * classes, 2), the given dtype
    y : ndarray, shape (samples * classes,), uint8, class ids 0 .. classes-1 in contiguous blocks
    """
    samples, classes, dt, X, y = _empty_classification(samples, classes, dtype)
    scale = dt.type(0.1)
    for class_number in range(classes):
        rows = slice(samples * class_number, samples * (class_number + 1))
        X[rows, 0] = _normals(samples, dt) * scale + dt.type(class_number / 3)
        X[rows, 1] = _normals(samples, dt) * scale + dt.type(0.5)
        y[rows] = class_number
    return X, y


def sine_data(samples: int = 1000, *, dtype: DTypeLike | None = None) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Sine regression data, the values of ``nnfs.datasets.sine_data``; draws nothing from the RNG.

    ``X = arange(samples) / samples`` (evenly spaced over [0, 1)) and ``y = sin(2 pi X)``, both computed
    in float64 and then given the requested dtype.

    nnfs returns float64 arrays here whether or not ``nnfs.init()`` was called (``np.arange`` is not
    patched), so the default is float64 too: the same arrays as nnfs in both cases. A float32 model
    converts them once when training starts.

    Parameters
    ----------
    samples : int
        Number of points (>= 1), 1000 by default.
    dtype : None, "float32" or "float64"
        dtype of X and y; None means float64, as nnfs.

    Returns
    -------
    X : ndarray, shape (samples, 1), the given dtype
    y : ndarray, shape (samples, 1), the given dtype
    """
    samples = _checks.positive_int(samples, "samples")
    dt = np.dtype(np.float64) if dtype is None else resolve_dtype(dtype)
    _checks.check_fits(samples, 8, "samples", None, "X")
    X = np.arange(samples).reshape(-1, 1) / samples
    y = np.sin(2 * np.pi * X).reshape(-1, 1)
    return X.astype(dt, copy=False), y.astype(dt, copy=False)
