"""A comparable picture of an object's state, to prove that a refused call changed nothing
(shared by test_validation.py and test_fuzz.py; importable through pyproject's pytest `pythonpath`)."""
import math

import numpy as np


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
