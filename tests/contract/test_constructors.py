"""Every declared constructor parameter accepts what its constraint promises and refuses the rest,
derived from the declaration (``Spec.params``: Real, Int, Choice, Bool, Optional; see
fastnn/_core/constraints.py) rather than listed by hand:

- values the constraint accepts (its closed ends, the inside, ints for reals, NumPy scalars)
  construct the object in fastnn and in fastnn.reference, and the attribute the file format
  saves under the parameter's name holds the value;
- values it refuses (other types, NaN and infinities, each side of every bound, huge ints such as
  2**70 and 10**400) raise TypeError for a wrong type and ValueError for a wrong value, with a
  message "<Class>: <parameter> must be ...", never an OverflowError or a MemoryError, and
  without drawing from NumPy's global RNG;
- the case's `invalid` arguments (sizes whose product does not fit in memory) are refused too;
- a fuzz campaign (hypothesis) sets any subset of the parameters to arbitrary plain values and
  checks the outcome against an oracle written from the constraints' documented meaning (an
  argument the oracle accepts may only meet the refusals of the case's `invalid` entries).
"""
from __future__ import annotations

import math
import numbers
import os
import pathlib

import numpy as np
import pytest
from hypothesis import strategies as st

import fastnn.reference as ref
from fastnn._core.constraints import Bool, Choice, Int, Optional, Pair, Path, Real

from cases import cases
from contract.harness import build

from _fuzz import PLAIN, budgets, check_call, run_fuzz
from _state import snapshot

WITH_PARAMS = [case for case in cases() if case.spec.params]


def verdict(constraint, value):
    """The oracle: None when `constraint` accepts value, else the error type it must raise."""
    if isinstance(constraint, Optional):
        return None if value is None else verdict(constraint.inner, value)
    if isinstance(constraint, Bool):
        return None if isinstance(value, (bool, np.bool_)) else TypeError
    if isinstance(constraint, Choice):
        return None if isinstance(value, str) and value in constraint.options else ValueError
    if isinstance(constraint, Pair):
        if isinstance(value, str):
            return None if value in constraint.options else (ValueError if constraint.options else TypeError)
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                return ValueError
            return next((error for error in (verdict(constraint.item, v) for v in value) if error), None)
        return verdict(constraint.item, value)
    if isinstance(constraint, Path):
        if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
            return TypeError
        return None if os.fspath(value) not in ("", b"") else ValueError
    if isinstance(value, (bool, np.bool_)):
        return TypeError
    if isinstance(constraint, Int):
        if not isinstance(value, numbers.Integral):
            return TypeError
        return None if constraint.low <= int(value) <= constraint.high else ValueError
    if isinstance(constraint, Real):
        if not isinstance(value, numbers.Real):
            return TypeError
        try:
            number = float(value)
        except OverflowError:
            return ValueError
        low, high = constraint.low, constraint.high
        if not math.isfinite(number):
            return ValueError
        if low is not None and (number < low or (constraint.low_open and number == low)):
            return ValueError
        if high is not None and (number > high or (constraint.high_open and number == high)):
            return ValueError
        return None
    raise AssertionError(f"no oracle for {constraint!r}")


def accepted(constraint) -> list:
    """Values inside the constraint: its closed ends, the inside, other number types."""
    if isinstance(constraint, Optional):
        return [None, *accepted(constraint.inner)]
    if isinstance(constraint, Bool):
        return [True, False, np.True_]
    if isinstance(constraint, Choice):
        return list(constraint.options)
    if isinstance(constraint, Path):
        return ["model.fnn", pathlib.Path("folder") / "model.fnn", "~/model.fnn"]
    if isinstance(constraint, Int):
        return [constraint.low, constraint.low + 1, np.int64(constraint.low + 2)]
    if isinstance(constraint, Pair):
        low = constraint.item.low
        return [*accepted(constraint.item), (low, low + 1), [low + 1, low], (np.int64(low + 2), low),
                *constraint.options]
    low = 0.0 if constraint.low is None else constraint.low
    high = low + 4.0 if constraint.high is None else constraint.high
    inside = low + (high - low) / 4
    values = [inside, np.float32(inside), np.float64(low + (high - low) / 2), high - (high - low) / 1000]
    if not constraint.low_open:
        values.append(low)
    if not constraint.high_open and constraint.high is not None:
        values.append(high)
    whole = int(math.floor(low)) + 1                  # an int is a real number too
    if constraint.high is None or whole < constraint.high:
        values.append(whole)
    return values


def refused(constraint) -> list:
    """(value, error type) outside the constraint: other types, non-finite and huge numbers, and
    each side of every bound."""
    if isinstance(constraint, Optional):
        return [(v, e) for v, e in refused(constraint.inner) if v is not None]
    if isinstance(constraint, Bool):
        return [(1, TypeError), (0, TypeError), ("yes", TypeError), (None, TypeError), (1.0, TypeError)]
    if isinstance(constraint, Choice):
        first = constraint.options[0]
        return [("nonsense", ValueError), (first.upper(), ValueError), (5, ValueError), (None, ValueError),
                ([first], ValueError)]
    if isinstance(constraint, Pair):
        low, high = constraint.item.low, constraint.item.high
        singles = [(v, e) for v, e in refused(constraint.item) if not isinstance(v, (str, list))]
        return singles + [("nonsense", ValueError if constraint.options else TypeError), ((low,), ValueError),
                          ([low], ValueError), ((low, low, low), ValueError), ((low, float(low)), TypeError),
                          ((True, low), TypeError), ((low, low - 1), ValueError), ([high + 1, low], ValueError),
                          ((low, 2 ** 70), ValueError), ((None, None), TypeError)]
    if isinstance(constraint, Path):
        return [("", ValueError), (b"model.fnn", TypeError), (3, TypeError),
                (None, TypeError), (1.5, TypeError), (["model.fnn"], TypeError)]
    common = [("1", TypeError), (None, TypeError), (True, TypeError), (np.bool_(False), TypeError),
              (1j, TypeError), ([1], TypeError), (np.array([1]), TypeError)]
    if isinstance(constraint, Int):
        low, high = constraint.low, constraint.high
        values = common + [(float(low + 1), TypeError), (low - 1, ValueError), (np.int64(low - 1), ValueError),
                           (high + 1, ValueError), (2 ** 70, ValueError), (-2 ** 70, ValueError)]
        return values
    values = common + [(math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
                       (10 ** 400, ValueError), (-(10 ** 400), ValueError)]
    if constraint.low is not None:
        values.append((constraint.low - 1, ValueError))
        if constraint.low_open:
            values.append((constraint.low, ValueError))
    if constraint.high is not None:
        values.append((constraint.high + 1, ValueError))
        if constraint.high_open:
            values.append((constraint.high, ValueError))
    return values


def test_the_oracle_agrees_with_the_value_lists():
    """accepted() and refused() are what the oracle says, for every declared constraint."""
    for case in WITH_PARAMS:
        for constraint in case.spec.params.values():
            for value in accepted(constraint):
                assert verdict(constraint, value) is None, (constraint, value)
            for value, error in refused(constraint):
                assert verdict(constraint, value) is error, (constraint, value)


def stored_as_given(case, parameter) -> bool:
    """The file format saves the parameter under its own name with the same constraint: the
    constructor keeps the value (Dropout's rate, kept as 1 - rate, and MaxPool's default stride are
    saved otherwise)."""
    return case.spec.saved.get(parameter) is case.spec.params[parameter]


def as_stored(value):
    """What a constructor keeps of an accepted argument: a (height, width) list as a tuple."""
    return tuple(value) if isinstance(value, list) else value


PARAMETERS = [(case, parameter) for case in WITH_PARAMS for parameter in case.spec.params]
INVALID = [(case, kwargs, error, message) for case in cases() for kwargs, error, message in case.invalid]


@pytest.mark.parametrize("case, parameter", PARAMETERS, ids=[f"{c.name}-{p}" for c, p in PARAMETERS])
def test_accepted_values_construct_both_packages(case, parameter):
    for value in accepted(case.spec.params[parameter]):
        kwargs = {**case.kwargs, parameter: value}
        fast = build(case, kwargs=kwargs)
        slow = build(case, ref, kwargs=kwargs)
        if stored_as_given(case, parameter):
            assert getattr(fast, parameter) == as_stored(value) == as_stored(getattr(slow, parameter)), value
            if isinstance(value, (float, np.floating)):
                assert type(getattr(fast, parameter)) is type(value), f"{value!r}: a real keeps its type"


@pytest.mark.parametrize("case, parameter", PARAMETERS, ids=[f"{c.name}-{p}" for c, p in PARAMETERS])
def test_refused_values_raise_the_promised_error(case, parameter):
    for value, error in refused(case.spec.params[parameter]):
        kwargs = {**case.kwargs, parameter: value}
        before = snapshot(None)
        with pytest.raises(error, match=rf"^{case.name}: {parameter} must be ") as info:
            build(case, kwargs=kwargs, seed=None)
        assert type(info.value) is error, f"{value!r}: {type(info.value).__name__}"
        assert snapshot(None) == before, f"{value!r}: a refused constructor drew from NumPy's global RNG"


@pytest.mark.parametrize("case, kwargs, error, message", INVALID,
                         ids=[f"{c.name}-{'-'.join(map(str, k.values()))}" for c, k, _, _ in INVALID])
def test_arguments_whose_combination_is_refused(case, kwargs, error, message):
    before = snapshot(None)
    with pytest.raises(error, match=message):
        build(case, kwargs=kwargs, seed=None)
    assert snapshot(None) == before


@budgets()
@pytest.mark.parametrize("case", WITH_PARAMS, ids=[c.name for c in WITH_PARAMS])
def test_constructors_fuzzed(case, budget):
    params = case.spec.params

    def body(data):
        kwargs = dict(case.kwargs)
        for parameter in params:
            if data.draw(st.booleans(), label=f"set {parameter}"):
                kwargs[parameter] = data.draw(PLAIN, label=parameter)
        first_refused = next(((p, verdict(params[p], kwargs[p])) for p in params
                              if p in kwargs and verdict(params[p], kwargs[p])), None)
        made = {}

        def call():
            made["object"] = build(case, kwargs=kwargs, seed=None)

        names = f"{case.name}: {first_refused[0]} must be" if first_refused else "|".join(params)
        limits = "|".join(f"(?:{message})" for _, _, message in case.invalid) or None
        if check_call(f"{case.name}()", None, call, first_refused is None, names, limits):
            for parameter, value in kwargs.items():
                if stored_as_given(case, parameter):
                    assert getattr(made["object"], parameter) == as_stored(value)

    run_fuzz(body, budget)
