"""A comparable picture of an object's state, to prove that a refused call changed nothing
(shared by test_validation.py, test_fuzz.py and the contract suite; importable through pyproject's
pytest `pythonpath`)."""
import math
import os
import re

import numpy as np
import pytest

import fastnn


def _walk(value, seen):
    """A comparable picture of value and of every fastnn object reachable from it."""
    if isinstance(value, np.ndarray):
        return ("array", id(value), value.dtype.str, value.shape, value.strides, value.flags.writeable,
                value.tobytes() if value.size < 10 ** 6 else id(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_walk(v, seen) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _walk(v, seen)) for k, v in value.items())))
    if type(value).__module__.startswith("fastnn") and hasattr(value, "__dict__"):
        if id(value) in seen:
            return ("seen", id(value))
        seen.add(id(value))
        return (type(value).__name__, id(value), _walk(vars(value), seen))
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return ("value", type(value).__name__, repr(value))


def snapshot(subject):
    """The state of `subject` (arrays by identity and content, fastnn objects recursively) and of
    NumPy's global RNG."""
    state = np.random.get_state()
    return _walk(subject, set()), (state[0], state[1].tobytes(), state[2:])


def describe_difference(before, after, path="subject"):
    """The first place where two snapshots differ (for a readable failure)."""
    if type(before) is not type(after) or not isinstance(before, tuple):
        return path if before != after else None
    if len(before) != len(after):
        return path
    for i, (a, b) in enumerate(zip(before, after)):
        if a != b:
            inner = describe_difference(a, b, f"{path}[{i}]")
            return inner or path
    return None


def assert_refused_and_unchanged(build, error, names, folder):
    """build() -> (subject, call): the call must raise `error` with a message matching the regex
    `names`, and change nothing: not the subject (deep snapshot), not NumPy's global RNG, not
    fastnn's defaults, not the files in `folder` (the current directory of the call)."""
    def config():
        return fastnn.default_dtype(), fastnn.dropout_mode()

    np.random.seed(1234)
    subject, call = build()
    before = snapshot(subject), config(), sorted(os.listdir(folder))
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert re.search(names, message), f"message {message!r} does not match {names!r}"
    after = snapshot(subject), config(), sorted(os.listdir(folder))
    assert after[1] == before[1], "fastnn's defaults changed"
    assert after[2] == before[2], "a file was written"
    assert after[0][1] == before[0][1], "NumPy's global RNG was used by a refused call"
    difference = describe_difference(before[0][0], after[0][0])
    assert difference is None, f"the refused call changed {difference}"


def on(factory, method, *args, **kwargs):
    """A row's build() for the refusal tables: (factory(), its method called with the arguments)."""
    def build():
        obj = factory()
        return obj, lambda: getattr(obj, method)(*args, **kwargs)
    return build
