"""The fuzzing machinery shared by test_fuzz.py and the contract suite (importable through
pyproject's pytest `pythonpath`): example budgets, the hypothesis runner, plain-argument
strategies, and the property every fuzzed call must keep."""
from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _state import snapshot

QUICK = 40          # examples per test in the default run
CAMPAIGN = 800      # examples per test under -m slow
OUTCOMES: collections.Counter = collections.Counter()   # (entry, outcome) -> calls
EXAMPLES: collections.Counter = collections.Counter()   # test -> generated examples


def budgets():
    return pytest.mark.parametrize("budget", [
        pytest.param(QUICK, id="quick"),
        pytest.param(CAMPAIGN, id="campaign", marks=pytest.mark.slow),
    ])


def run_fuzz(body, budget):
    """Run body(data) under hypothesis with `budget` examples."""
    profile = settings(
        max_examples=budget, deadline=None, database=None, derandomize=budget == QUICK,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example],
    )
    def counted(data):
        EXAMPLES[body.__qualname__.split(".")[0]] += 1
        body(data)
    profile(given(st.data())(counted))()


def report():
    """Print the outcome counts (run with -s to see them); write them as JSON where
    FASTNN_FUZZ_REPORT names a file."""
    examples, calls = sum(EXAMPLES.values()), sum(OUTCOMES.values())
    by_entry = collections.defaultdict(dict)
    for (entry, outcome), count in sorted(OUTCOMES.items()):
        by_entry[entry][outcome] = count
    lines = [f"fuzz: {examples} generated examples ({dict(EXAMPLES)}), {calls} calls checked"]
    lines += [f"  {entry}: {counts}" for entry, counts in by_entry.items()]
    print("\n" + "\n".join(lines))
    path = os.environ.get("FASTNN_FUZZ_REPORT")
    if path:
        pathlib.Path(path).write_text(json.dumps({"examples": examples, "per_test": EXAMPLES, "calls": calls,
                                                  "entries": by_entry}, indent=1))


# Plain (non-array) arguments: every kind of number and non-number a user might pass.
PLAIN = st.one_of(
    st.integers(-3, 12), st.integers(2 ** 40, 2 ** 80), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1), st.booleans(), st.none(), st.text(max_size=3), st.complex_numbers(max_magnitude=2),
    st.sampled_from([np.float32(0.5), np.float64(0.1), np.int64(3), np.uint8(2), np.bool_(True), np.float16(0.9),
                     Fraction(1, 3), Decimal("0.5"), np.array(0.5), np.array([1]), [1], (2,), b"1", 10 ** 400,
                     1e308, -0.0, np.int64(-2), np.float64("nan")]),
)


def check_call(entry, subject, call, valid, argument_names, limits=None):
    """Call; a valid argument must be accepted, an invalid one refused with the promised error
    naming the argument, and a refused call must change nothing. Returns True when accepted.
    limits: a regex for the refusals a valid argument may still meet (limits beyond each
    argument's own rules, such as sizes whose product does not fit in memory)."""
    before = snapshot(subject)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            call()
    except (TypeError, ValueError) as exc:
        OUTCOMES[(entry, f"refused {type(exc).__name__}")] += 1
        message = str(exc)
        if valid and limits and re.search(limits, message):
            argument_names = limits
        else:
            assert not valid, f"{entry}: a valid argument was refused: {message}"
        assert re.search(argument_names, message), f"{entry}: {message!r} does not name {argument_names!r}"
        assert snapshot(subject) == before, f"{entry}: the refused call changed the object or the RNG"
        return False
    OUTCOMES[(entry, "accepted")] += 1
    assert valid, f"{entry}: an invalid argument was accepted"
    return True
