"""Buffers and user arrays, for every declared layer, loss and the combined softmax/cross-entropy.

- The arrays a call leaves on the object (``output``, ``dinputs``, ``dweights``, masks, scratch)
  are buffers: the same objects while the shape stays the same, new ones (sharing no memory with
  the old) when it changes, kept when only the batch size changed and their shape did not; after
  a shape change and back the results equal a fresh object's. They never share memory with the
  arguments, except the case's `views` (Flatten's reshapes, Linear's and Layer_Input's output),
  which must.
- A class fed its own output (or gradient) computes what a copy of it computes on a copy.
- User arrays come as they are (float64, strided, Fortran, read-only, big-endian, lists, ints,
  bools, unaligned, structured fields, subclasses): converted once, the result equals the
  reference's on the converted data, and the user's array is never modified.
"""
import copy

import numpy as np
import pytest

from cases import cases, ids
from contract.harness import (USER_ARRAY_KINDS, assert_close, buffer_names, build, data, exercise, forward, kept_dtype,
                              pair, parameter_names, state_names, user_arrays)

BUFFERED = [case for protocol in ("layer", "loss", "combined") for case in cases(protocol, setups=True)]
LAYERS = cases("layer", setups=True)
CONVERTING = [case for case in cases("layer") if case.checks_inputs]
LOSSES = cases("loss")


def arguments(made):
    return [value for key, value in made.items() if key in ("x", "y", "d") and isinstance(value, np.ndarray)]


def buffers(case, obj, made):
    """The arrays obj keeps that are its own buffers: not its inputs, parameters or declared
    state, not the case's views. Checks on the way that views are views and buffers are not."""
    own = {}
    for name, value in vars(obj).items():
        if not isinstance(value, np.ndarray) or name == "inputs" or name in state_names(case, obj):
            continue
        shares = any(np.shares_memory(value, a) for a in arguments(made))
        if name in case.views:
            assert shares, f"{case.label}.{name} should be a view of the arguments"
            continue
        assert not shares, f"{case.label}.{name} shares memory with an argument"
        own[name] = value
    for view in case.views:
        assert view in vars(obj), f"{case.label} has no {view}"
    return own


@pytest.mark.parametrize("case", BUFFERED, ids=ids(BUFFERED))
def test_buffers_are_reused_while_the_shape_stays_and_replaced_when_it_changes(case):
    obj = build(case)
    full = data(case, np.float32)
    exercise(case, obj, full)
    first = buffers(case, obj, full)
    assert first or case.views, f"{case.label} keeps no array at all"
    exercise(case, obj, full)
    for name, array in buffers(case, obj, full).items():
        assert array is first[name], f"{case.label}.{name} was not reused"
    short = data(case, np.float32, seed=1, batch=case.inputs[0] - 1)
    exercise(case, obj, short)
    for name, array in buffers(case, obj, short).items():
        if array.shape == first[name].shape:
            assert array is first[name], f"{case.label}.{name} has the same shape: kept"
        else:
            assert not np.shares_memory(array, first[name]), f"{case.label}.{name}: a new shape, a new buffer"
    again = exercise(case, obj, full)
    fresh = exercise(case, build(case), full)
    for name in set(fresh) - set(buffer_names(case, obj)):   # (running statistics carry their history)
        np.testing.assert_array_equal(again[name], fresh[name], err_msg=f"{case.label} {name} after a shape change")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", LAYERS + LOSSES, ids=ids(LAYERS + LOSSES))
def test_fed_its_own_output_and_gradient(case, dtype):
    """No kernel writes into an array it still reads: forward(own output) and backward(own
    dinputs) give, bit for bit, what a copy of the object gives for copies of them."""
    obj = build(case, dtype=dtype)
    made = data(case, dtype)
    exercise(case, obj, made)
    if case.protocol == "loss":
        twin, fed = copy.deepcopy(obj), obj.dinputs.copy()
        obj.backward(obj.dinputs, made["y"])
        twin.backward(fed, made["y"])
        np.testing.assert_array_equal(obj.dinputs, twin.dinputs)
        return
    if case.backward and np.shape(obj.dinputs) == np.shape(obj.output):
        twin, fed = copy.deepcopy(obj), obj.dinputs.copy()
        obj.backward(obj.dinputs)
        twin.backward(fed)
        for name in ("dinputs", *(f"d{p}" for p in parameter_names(case, obj))):
            np.testing.assert_array_equal(getattr(obj, name), getattr(twin, name), err_msg=name)
    if np.shape(obj.output) == np.shape(made["x"]):
        twin, fed = copy.deepcopy(obj), np.array(obj.output, copy=True)
        forward(case, obj, obj.output)
        forward(case, twin, fed)
        np.testing.assert_array_equal(obj.output, twin.output)


@pytest.mark.parametrize("kind", USER_ARRAY_KINDS)
@pytest.mark.parametrize("case", CONVERTING, ids=ids(CONVERTING))
def test_layers_take_user_arrays(case, kind):
    base = data(case, np.float64)["x"]
    x = user_arrays(base)[kind]
    before = np.array(x, copy=True)
    fast, slow = pair(case, np.float32)
    dtype = fast.weights.dtype if parameter_names(case, fast) else kept_dtype(x)
    converted = np.ascontiguousarray(np.asarray(x), dtype=dtype)
    forward(case, fast, x)
    forward(case, slow, converted)
    assert fast.output.dtype == dtype, f"{kind}: computed in {fast.output.dtype}"
    assert_close(fast.output, slow.output, case.rtol, dtype, f"{case.label} output of {kind}",
                 case.atol)
    if "inputs" in vars(fast):
        np.testing.assert_array_equal(fast.inputs, converted)
        assert fast.inputs.dtype == dtype
        if "output" not in case.views:               # a view keeps a float array as it came
            assert fast.inputs.flags.c_contiguous
    if case.backward:
        gradient = np.asfortranarray(np.random.default_rng(1).standard_normal(fast.output.shape))  # float64, F order
        fast.backward(gradient)
        slow.backward(gradient.astype(dtype))
        assert fast.dinputs.dtype == dtype
        names = ["dinputs", *(f"d{name}" for name in parameter_names(case, fast))]
        for name in names:
            assert_close(getattr(fast, name), getattr(slow, name), case.rtol, dtype, f"{case.label} {name} of {kind}",
                         case.atol)
    np.testing.assert_array_equal(np.asarray(x), before)
    if isinstance(x, np.ndarray):
        assert x.flags.writeable == (kind != "readonly")


@pytest.mark.parametrize("case", CONVERTING, ids=ids(CONVERTING))
def test_a_ready_array_is_kept_without_copying(case):
    """An input already in the kernels' form (C-contiguous, the computing dtype) is stored as it
    is: the book stores a reference, no copy."""
    obj = build(case)
    x = data(case, np.float32)["x"]
    forward(case, obj, x)
    if "inputs" in vars(obj):
        assert obj.inputs is x


@pytest.mark.parametrize("kind", ["float64", "strided", "fortran", "readonly", "bigendian32", "list"])
@pytest.mark.parametrize("case", LOSSES, ids=ids(LOSSES))
def test_losses_take_user_arrays(case, kind):
    made = data(case, np.float64)
    p, y = user_arrays(made["x"])[kind], made["y"]
    y = y[::1] if y.ndim == 1 else np.asfortranarray(y)            # the targets: Fortran order
    p_before, y_before = np.array(p, copy=True), y.copy()
    converted = np.ascontiguousarray(np.asarray(p), dtype=kept_dtype(p))
    fast, slow = pair(case, np.float32)
    assert_close(fast.forward(p, y), slow.forward(converted, np.ascontiguousarray(y)), case.rtol, converted.dtype,
                 f"{case.label} forward of {kind}")
    fast.backward(p, y)
    slow.backward(converted, np.ascontiguousarray(y))
    assert_close(fast.dinputs, slow.dinputs, case.rtol, converted.dtype, f"{case.label} dinputs of {kind}")
    assert fast.dinputs.dtype == converted.dtype
    np.testing.assert_array_equal(np.asarray(p), p_before)
    np.testing.assert_array_equal(y, y_before)
