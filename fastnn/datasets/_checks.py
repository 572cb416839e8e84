"""Argument checks for fastnn.datasets: each error names the argument and what it got."""
from __future__ import annotations

import operator
import os
import pathlib
from typing import Tuple, Union

import numpy as np
from numpy.typing import NDArray

PathArg = Union[str, os.PathLike]
"""A path argument: a str or an os.PathLike (pathlib.Path)."""

FourArrays = Tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]
"""(X_train, y_train, X_test, y_test), all uint8."""


def positive_int(value, name: str, *, maximum: int | None = None) -> int:
    """``value`` as a Python int when it is an integer >= 1 (and <= maximum); TypeError/ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive int, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {number}")
    return number


def optional_path(value, name: str) -> pathlib.Path | None:
    """None, or ``value`` (str or os.PathLike) as an absolute-or-relative Path with ~ expanded."""
    if value is None:
        return None
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike path, got {type(value).__name__} {value!r}")
    text = os.fspath(value)
    if isinstance(text, bytes) or text == "":
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    return pathlib.Path(text).expanduser()


def path(value, name: str) -> pathlib.Path:
    """``value`` (str or os.PathLike, required) as a Path with ~ expanded."""
    if value is None:
        raise TypeError(f"{name} must be a str or os.PathLike path, got None")
    return optional_path(value, name)


def flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def choice(value, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        allowed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def image_size(value, name: str = "image_size") -> tuple[int, int] | None:
    """None, or a (height, width) pair of positive ints."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"{name} must be None or a (height, width) pair of positive ints, got {value!r}")
    height, width = value
    return (positive_int(height, f"{name}[0] (height)"), positive_int(width, f"{name}[1] (width)"))
