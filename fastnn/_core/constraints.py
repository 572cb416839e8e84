"""Declarative constraints on hyper-parameters and saved attributes.

A class declares each constructor parameter and each attribute its model files store with one of
these (``fastnn._core.spec``); the same object checks the constructor's argument and the value a
model file holds, so the two can never disagree. Calling a constraint returns the value (ints
as Python ints, reals unchanged) or raises the ``TypeError`` / ``ValueError`` of
``fastnn._core.checks`` that names the argument; ``str(constraint)`` says what it accepts.

Integers are bounded (``MAX_SIZE`` for sizes, ``MAX_COUNT`` for counters): a value no kernel could
index with is refused where it is given, not later as an ``OverflowError``.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import checks

__all__ = ["Constraint", "Real", "Int", "Pair", "Choice", "Bool", "Optional", "Path", "MAX_SIZE", "MAX_COUNT"]

MAX_SIZE = 2 ** 31 - 1   # sizes, strides, paddings: what a C int in the kernels can index
MAX_COUNT = 2 ** 63 - 1  # counters (an optimizer's iterations)


class Constraint:
    """Base class: ``constraint(value, name, where) -> value``; ``str()`` describes it."""

    def __call__(self, value, name: str, where: str | None = None):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"


class Real(Constraint):
    """A finite real number (not a bool) in [low, high], ends open where asked."""

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __call__(self, value, name: str, where: str | None = None):
        return checks.real(value, name, where, low=self.low, high=self.high, low_open=self.low_open,
                           high_open=self.high_open)

    def __str__(self) -> str:
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + (")" if self.high_open else "]")
        return f"a real number in {lo}, {hi}"


class Int(Constraint):
    """An int (Python or NumPy integer; never a bool or a float) in [low, high]."""

    def __init__(self, low: int = 1, high: int = MAX_SIZE) -> None:
        self.low, self.high = low, high

    def __call__(self, value, name: str, where: str | None = None) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise checks.fail(where, name, str(self), checks.describe(value), TypeError)
        number = int(value)
        if number < self.low:
            raise checks.fail(where, name, str(self), repr(number))
        if number > self.high:
            raise checks.fail(where, name, f"at most {self.high}", repr(number))
        return number

    def __str__(self) -> str:
        kind = {0: "a non-negative int", 1: "a positive int"}.get(self.low, f"an int >= {self.low}")
        return kind if self.high in (MAX_SIZE, MAX_COUNT) else f"{kind} at most {self.high}"


class Pair(Constraint):
    """An int in [low, high] or a pair of them (a tuple or list of two: height, width), or one of
    a few strings where `options` names them. Returns the int, a tuple of two Python ints or the
    string. Kernel sizes, strides and paddings: ``3``, ``(3, 5)``, ``"same"``."""

    def __init__(self, low: int = 1, high: int = MAX_SIZE, *, options: tuple[str, ...] = ()) -> None:
        self.item = Int(low, high)
        self.options = options

    def _fail(self, name, where, got, error=ValueError) -> Exception:
        return checks.fail(where, name, str(self), got, error)

    def _int(self, value, name, where, got=None) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise self._fail(name, where, got or checks.describe(value), TypeError)
        number = int(value)
        got = got or repr(number)
        if number < self.item.low:
            raise self._fail(name, where, got)
        if number > self.item.high:
            raise checks.fail(where, name, f"at most {self.item.high}", got)
        return number

    def __call__(self, value, name: str, where: str | None = None):
        if isinstance(value, str):
            if value in self.options:
                return value
            raise self._fail(name, where, repr(value), ValueError if self.options else TypeError)
        if isinstance(value, (tuple, list)):
            got = f"{type(value).__name__} {value!r}"
            if len(value) != 2:
                raise self._fail(name, where, got)
            return tuple(self._int(v, name, where, got) for v in value)
        return self._int(value, name, where)

    def __str__(self) -> str:
        one = str(Int(self.item.low))                  # "a positive int"
        many = one.split(" ", 1)[1] + "s"               # "positive ints"
        if self.options:
            return f"{one}, a pair of {many} or " + " or ".join(repr(o) for o in self.options)
        return f"{one} or a pair of {many}"


class Choice(Constraint):
    """One of a few strings."""

    def __init__(self, *options: str) -> None:
        self.options = options

    def __call__(self, value, name: str, where: str | None = None) -> str:
        return checks.choice(value, name, self.options, where)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


class Bool(Constraint):
    """True or False (NumPy's bools too)."""

    def __call__(self, value, name: str, where: str | None = None) -> bool:
        return checks.flag(value, name, where)

    def __str__(self) -> str:
        return "True or False"


class Path(Constraint):
    """A file path: a non-empty str or os.PathLike (not bytes, not an int); returned as a
    pathlib.Path with ~ expanded. Nothing is read or written."""

    def __call__(self, value, name: str, where: str | None = None):
        return checks.path(value, name, where)

    def __str__(self) -> str:
        return "a non-empty str or os.PathLike path"


class Optional(Constraint):
    """None, or what `inner` accepts."""

    def __init__(self, inner: Constraint) -> None:
        self.inner = inner

    def __call__(self, value, name: str, where: str | None = None):
        return None if value is None else self.inner(value, name, where)

    def __str__(self) -> str:
        return f"None or {self.inner}"


# The constraints the declarations share.
NON_NEGATIVE = Real(0.0)
POSITIVE = Real(0.0, low_open=True)
UNIT = Real(0.0, 1.0, high_open=True)       # [0, 1): momentum, rho, beta_1, beta_2, a drop rate
SIZE = Int(1)                                # sizes, kernel sizes, strides
SIZE_PAIR = Pair(1)                          # kernel sizes, strides: 3 or (3, 5)
COUNT = Int(0, MAX_COUNT)                    # an optimizer's iterations
