"""fastnn._core.constraints.Pair: "an int or a pair of ints" (kernel sizes, strides, paddings), with
its optional strings ("same"). What it returns, what it refuses and with which error; the
declarations' other constraints are exercised through every constructor in
tests/contract/test_constructors.py."""
import re

import numpy as np
import pytest

from fastnn._core.constraints import MAX_SIZE, Pair

SIZE_PAIR = Pair(1)
PADDING = Pair(0, options=("same",))


@pytest.mark.parametrize("constraint, value, expected", [
    (SIZE_PAIR, 3, 3),
    (SIZE_PAIR, np.int64(3), 3),
    (SIZE_PAIR, (3, 5), (3, 5)),
    (SIZE_PAIR, [2, np.int32(7)], (2, 7)),          # a list or NumPy ints: a tuple of Python ints
    (SIZE_PAIR, (MAX_SIZE, 1), (MAX_SIZE, 1)),
    (PADDING, 0, 0),
    (PADDING, (0, 2), (0, 2)),
    (PADDING, "same", "same"),
])
def test_accepted_values_come_back_in_plain_form(constraint, value, expected):
    got = constraint(value, "kernel_size", "Layer_X")
    assert got == expected and type(got) is type(expected)
    if isinstance(got, tuple):
        assert all(type(v) is int for v in got)


@pytest.mark.parametrize("constraint, value, error, message", [
    (SIZE_PAIR, 0, ValueError, r"kernel_size must be a positive int or a pair of positive ints, got 0$"),
    (SIZE_PAIR, -1, ValueError, "got -1"),
    (SIZE_PAIR, 3.0, TypeError, "got float 3.0"),
    (SIZE_PAIR, True, TypeError, "got the bool True"),
    (SIZE_PAIR, None, TypeError, "got None"),
    (SIZE_PAIR, "same", TypeError, "got 'same'"),         # no strings where none is an option
    (SIZE_PAIR, np.array([3, 3]), TypeError, "got ndarray"),
    (SIZE_PAIR, (3,), ValueError, r"got tuple \(3,\)"),
    (SIZE_PAIR, [3, 3, 3], ValueError, r"got list \[3, 3, 3\]"),
    (SIZE_PAIR, (3, 0), ValueError, r"got tuple \(3, 0\)"),
    (SIZE_PAIR, (3, 2.0), TypeError, r"got tuple \(3, 2.0\)"),
    (SIZE_PAIR, (np.True_, 2), TypeError, "got tuple"),
    (SIZE_PAIR, MAX_SIZE + 1, ValueError, f"kernel_size must be at most {MAX_SIZE}, got {MAX_SIZE + 1}"),
    (SIZE_PAIR, (2, 2 ** 70), ValueError, f"kernel_size must be at most {MAX_SIZE}"),
    (PADDING, -1, ValueError, "padding must be a non-negative int, a pair of non-negative ints or 'same', got -1"),
    (PADDING, "valid", ValueError, "got 'valid'"),
    (PADDING, "SAME", ValueError, "got 'SAME'"),
    (PADDING, (1, -1), ValueError, r"got tuple \(1, -1\)"),
])
def test_refused_values_name_the_argument(constraint, value, error, message):
    name = "padding" if constraint is PADDING else "kernel_size"
    with pytest.raises(error, match=rf"^Layer_X: {name} must be ") as info:
        constraint(value, name, "Layer_X")
    assert type(info.value) is error
    assert re.search(message, str(info.value)), str(info.value)


def test_the_description_says_what_is_accepted():
    assert str(SIZE_PAIR) == "a positive int or a pair of positive ints"
    assert str(PADDING) == "a non-negative int, a pair of non-negative ints or 'same'"
    assert repr(SIZE_PAIR) == "Pair(a positive int or a pair of positive ints)"
