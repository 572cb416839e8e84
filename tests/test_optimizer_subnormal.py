"""Optimizer state never stays subnormal (slow arithmetic); normal values match the reference exactly."""
import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

TINY = {np.float32: np.finfo(np.float32).tiny, np.float64: np.finfo(np.float64).tiny}


def _layers(dtype):
    np.random.seed(3)
    ours = fastnn.Layer_Dense(4, 5, dtype=dtype)
    np.random.seed(3)
    theirs = ref.Layer_Dense(4, 5, dtype=dtype)
    return ours, theirs


@pytest.mark.parametrize("make", [
    lambda: (fastnn.Optimizer_Adam(), ref.Optimizer_Adam(), ("weight_momentums", "weight_cache")),
    lambda: (fastnn.Optimizer_RMSprop(), ref.Optimizer_RMSprop(), ("weight_cache",)),
    lambda: (fastnn.Optimizer_SGD(momentum=0.5), ref.Optimizer_SGD(momentum=0.5), ("weight_momentums",)),
], ids=["adam", "rmsprop", "sgd-momentum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decaying_state_is_flushed_to_zero_not_subnormal(make, dtype):
    optimizer, reference, names = make()
    ours, theirs = _layers(dtype)
    tiny = TINY[dtype]
    for layer in (ours, theirs):
        layer.dweights = np.zeros_like(layer.weights)
        layer.dweights[0] = 0.5   # one row with a real gradient: it must match the reference exactly
        layer.dbiases = np.zeros_like(layer.biases)
    optimizer.update_params(ours)
    with np.errstate(all="ignore"):
        reference.update_params(theirs)
    for name in names:
        getattr(ours, name)[1:] = 1.0005 * tiny  # normal, one decay step above the subnormals
        getattr(theirs, name)[1:] = 1.0005 * tiny
    for _ in range(3):
        optimizer.iterations += 1
        reference.iterations += 1
        optimizer.update_params(ours)
        with np.errstate(all="ignore"):
            reference.update_params(theirs)
    for name in names:
        state, expected = getattr(ours, name), getattr(theirs, name)
        assert not np.any((state != 0) & (np.abs(state) < tiny)), f"{name} holds subnormal values"
        assert np.any(expected[1:] != 0) and np.all(np.abs(expected[1:]) < tiny)  # the reference does not flush
        assert np.all(state[1:] == 0)
        np.testing.assert_array_equal(state[0], expected[0])
    np.testing.assert_array_equal(ours.weights[0], theirs.weights[0])
