"""Argument checks and error messages: the primitives every public entry point uses.

Kernels run with bounds checks off, so the public entry points are the only guard between a
user's mistake and a crash or silent corruption. Each check either returns the value in the
exact form the caller needs or raises a ``TypeError`` / ``ValueError`` that names the argument,
what was expected and what was given.

Message shape: ``"<Owner>.<method>: <argument> must be <expected>, got <what came>"``; the
dataset functions (``where`` None) leave out the owner: ``"samples must be a positive int, got 0"``.

Rules every caller follows:
- check before changing anything: a rejected call leaves the object (weights, state, buffers,
  optimizer counters, accumulators, NumPy's global RNG) exactly as it was;
- the checks a training step pays for are O(1) (type, dtype, flags, shape); a pass over the data
  happens only when the data must be converted anyway or validated once per ``Model.train`` call;
- nothing is allocated before the size is known to fit in memory (``check_fits``).

This module imports nothing from fastnn: it is the bottom of the import graph.
"""
from __future__ import annotations

import functools
import math
import numbers
import operator
import os
import pathlib
from typing import Any, cast

import numpy as np

# dtype kinds that convert to float without losing meaning: bool, signed, unsigned, float.
NUMERIC_KINDS = "biuf"
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(x) -> str:
    """A short description of an argument for error messages: type, dtype and shape."""
    if isinstance(x, np.ndarray):
        return f"{type(x).__name__} of dtype {x.dtype} and shape {x.shape}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__} of length {len(x)}"
    if x is None:
        return "None"
    if isinstance(x, (bool, np.bool_)):
        return f"the bool {x!r}"
    if isinstance(x, (numbers.Number, str, bytes)):
        text = repr(x)
        return f"{type(x).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
    return type(x).__name__


def _message(where: str | None, name: str, expected: str, got: str) -> str:
    prefix = f"{where}: " if where else ""
    return f"{prefix}{name} must be {expected}, got {got}"


def fail(where: str | None, name: str, expected: str, got: str, error=ValueError) -> Exception:
    """The exception (not raised) for argument `name` of `where`: "<where>: <name> must be <expected>, got <got>"."""
    return error(_message(where, name, expected, got))


@functools.lru_cache(maxsize=None)
def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 1 << 62


def memory_limit() -> int:
    """The most bytes one conversion or parameter array may take: the machine's physical memory.
    (NumPy would attempt any size below its own overflow limit: a malloc that succeeds lazily and
    then gets the process killed when the pages are touched.)"""
    return _physical_memory()


def _gib(n_bytes: int) -> str:
    try:
        return f"{n_bytes / 2 ** 30:.3g} GiB"
    except OverflowError:  # more bytes than a float can count
        return f"about 10^{len(str(n_bytes)) - 10} GiB"


def check_fits(n_elements: int, itemsize: int, name: str, where: str | None, what: str) -> None:
    """ValueError when an array of n_elements * itemsize bytes (Python ints: no overflow) would
    not fit in memory. `what` says what the array is for."""
    need = int(n_elements) * int(itemsize)
    limit = memory_limit()
    if need > limit:
        raise fail(where, name, f"small enough to fit in memory ({what} would need {_gib(need)}; this "
                    f"machine has {_gib(limit)})", f"{n_elements} elements")


def positive_int(value, name: str, where: str | None = None, *, maximum: int | None = None) -> int:
    """value as a Python int when it is an integer >= 1 (and <= maximum): ints and NumPy integers,
    never bools or floats (2.0 is refused: a count is not a measurement)."""
    if isinstance(value, (bool, np.bool_)):
        raise fail(where, name, "a positive int", describe(value), TypeError)
    try:
        number = operator.index(value)
    except TypeError:
        raise fail(where, name, "a positive int", describe(value), TypeError) from None
    if number < 1:
        raise fail(where, name, "a positive int", repr(number))
    if maximum is not None and number > maximum:
        raise fail(where, name, f"at most {maximum}", repr(number))
    return number


def real(value, name: str, where: str | None, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in [low, high] (open ends where asked); bools, strings, arrays and
    complex numbers are refused with a TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise fail(where, name, "a real number", describe(value), TypeError)
    try:
        v = float(value)
    except (OverflowError, ValueError):  # a huge Fraction or int
        v = math.inf
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    interval = f"in {lo or '(-inf'}, {hi or 'inf)'}"
    if not math.isfinite(v):
        raise fail(where, name, f"finite, {interval}", repr(value))
    if low is not None and (v < low or (low_open and v == low)):
        raise fail(where, name, interval, repr(value))
    if high is not None and (v > high or (high_open and v == high)):
        raise fail(where, name, interval, repr(value))
    return cast(float, value)  # the value as given (a NumPy scalar stays one), checked


def non_negative(value, name: str, where: str) -> float:
    return real(value, name, where, low=0.0)


def flag(value, name: str, where: str | None = None) -> bool:
    """True or False (NumPy's bools too); 1, "yes" and None are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise fail(where, name, "True or False", describe(value), TypeError)
    return bool(value)


def choice(value, name: str, options: tuple[str, ...], where: str | None = None) -> str:
    if not isinstance(value, str) or value not in options:
        allowed = ", ".join(repr(o) for o in options)
        raise fail(where, name, f"one of {allowed}", repr(value))
    return value


def float_dtype(dtype, name: str = "dtype", where: str | None = None) -> np.dtype:
    """np.dtype for float32/float64 given anything np.dtype() accepts; TypeError otherwise."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        raise fail(where, name, "float32 or float64", repr(dtype), TypeError) from None
    if resolved not in FLOAT_DTYPES:
        raise fail(where, name, "float32 or float64", str(resolved), TypeError)
    return resolved


def path(value, name: str, where: str | None = None, *, optional: bool = False,
         expand: bool = True) -> pathlib.Path | str | None:
    """A file or folder argument: a str or os.PathLike (pathlib.Path), non-empty; a Path with ~
    expanded (expand=False: the path as a str, as open() would read it); None when optional.
    Bytes and ints are refused (open() would take an int as a file descriptor and close it
    afterwards)."""
    if value is None and optional:
        return None
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        got = "None" if value is None else f"{type(value).__name__} {value!r}"
        raise fail(where, name, "a str or os.PathLike path", got, TypeError)
    text = os.fspath(value)
    if isinstance(text, bytes) or text == "":
        raise fail(where, name, "a non-empty path", repr(value))
    return pathlib.Path(text).expanduser() if expand else text


def image_size(value, name: str = "image_size", where: str | None = None) -> tuple[int, int] | None:
    """None, or a (height, width) pair of positive ints."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise fail(where, name, "None or a (height, width) pair of positive ints", repr(value), TypeError)
    height, width = value
    return (positive_int(height, f"{name}[0] (height)", where), positive_int(width, f"{name}[1] (width)", where))


def non_negative_int(value, name: str, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise fail(where, name, "a non-negative int", describe(value), TypeError)
    if value < 0:
        raise fail(where, name, "a non-negative int", repr(value))
    return int(value)

