"""Comparing models and the objects in them before and after a model file (shared by
test_serialization.py and the contract suite; importable through pyproject's pytest `pythonpath`)."""
import numpy as np

import fastnn

TRANSIENT = {"inputs", "output", "dinputs", "dweights", "dbiases", "binary_mask", "argmax", "prev", "next",
             "accumulated_sum", "accumulated_count", "trainable_layers"}


def saved_state(obj):
    """The attributes a file keeps: everything but batch data, links, accumulators and private
    scratch (rebuilt on demand)."""
    return {k: v for k, v in vars(obj).items() if k not in TRANSIENT and not k.startswith("_")}


def assert_same_object(a, b):
    assert type(a) is type(b)
    sa, sb = saved_state(a), saved_state(b)
    assert sa.keys() == sb.keys(), type(a).__name__
    for key, value in sa.items():
        other = sb[key]
        assert type(value) is type(other), (type(a).__name__, key)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and value.shape == other.shape
            assert value.flags.c_contiguous and other.flags.c_contiguous and other.flags.writeable
            np.testing.assert_array_equal(value, other)
        else:
            assert value == other, (type(a).__name__, key)


def assert_same_model(a, b):
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers):
        assert_same_object(x, y)
    for name in ("loss", "accuracy", "optimizer"):
        assert (name in vars(a)) == (name in vars(b))
        if name in vars(a):
            assert_same_object(getattr(a, name), getattr(b, name))


def assert_finalized(model):
    assert isinstance(model.input_layer, fastnn.Layer_Input)
    assert model.trainable_layers == [layer for layer in model.layers if hasattr(layer, "weights")]
    assert model.layers[0].prev is model.input_layer
    for before, after in zip(model.layers, model.layers[1:]):
        assert before.next is after and after.prev is before
    assert model.layers[-1].next is vars(model).get("loss")
    assert model.output_layer_activation is model.layers[-1]
    if "loss" in vars(model):
        assert model.loss.trainable_layers is model.trainable_layers


def rng_state_unchanged(state):
    return all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(np.random.get_state(), state))


def mlp(lib, sizes, output, loss, optimizer, accuracy, *, seed=None, first=None):
    """A finalized ``lib.Model`` of Dense layers of `sizes` with ReLU between them and the
    activation class named `output` last (built after ``np.random.seed(seed)`` when a seed is
    given; `first`: keyword arguments of the first Dense layer)."""
    import numpy as np

    if seed is not None:
        np.random.seed(seed)
    model = lib.Model()
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        model.add(lib.Layer_Dense(n_in, n_out, **(first or {} if i == 0 else {})))
        model.add(lib.Activation_ReLU() if i < len(sizes) - 2 else getattr(lib, output)())
    model.set(loss=loss, optimizer=optimizer, accuracy=accuracy)
    model.finalize()
    return model
