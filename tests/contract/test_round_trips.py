"""Every saveable declared class goes through a model file (fastnn.Model.save / Model.load, the safe
format) and comes back the same, in float32 and float64.

Each case is put in a small trained model: a layer in front of a Dense head (with a Flatten
between where its output has more than two axes), a loss under its `head` activation with the
accuracy for its targets, an accuracy with its `loss`, an optimizer on the default classifier.
After save and load: every saved attribute, parameter and piece of optimizer state is equal (and
of the same type), the model is finalized as a fresh one would be, the accumulators start at zero,
loading drew nothing from NumPy's global RNG, predictions are bit-identical and evaluation equal,
and one more epoch of training ends in the same place in both.
"""
import copy
import math

import numpy as np
import pytest

import fastnn

from cases import CASES, cases, ids
from contract.harness import build, fill, state_names, targets

from _models import assert_finalized, assert_same_model, rng_state_unchanged

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
SAVEABLE = cases(saveable=True, setups=True)
N_SAMPLES, BATCH = 16, 8


def accuracy_for(loss_case):
    """The accuracy case that scores this loss's targets."""
    scored = [case for case in cases("accuracy", setups=True) if case.targets == loss_case.targets]
    return scored[0] if scored else next(c for c in cases("accuracy", setups=True) if c.loss == loss_case.name)


def loss_for(accuracy_case):
    """The loss case this accuracy trains with, with the accuracy's targets."""
    setups = CASES[accuracy_case.loss].setups()
    return next((case for case in setups if case.targets == accuracy_case.targets), setups[0])


def roles(case):
    """(layer case or None, loss case, accuracy case, optimizer case) of the model holding case."""
    default_loss, default_optimizer = cases("loss")[0], cases("optimizer")[0]
    if case.spec.kind == "layer":
        return case, default_loss, accuracy_for(default_loss), default_optimizer
    if case.spec.kind == "loss":
        return None, case, accuracy_for(case), default_optimizer
    if case.spec.kind == "accuracy":
        return None, loss_for(case), case, default_optimizer
    if case.spec.kind == "optimizer":
        return None, default_loss, accuracy_for(default_loss), case
    raise AssertionError(f"{case.label}: a saveable {case.spec.kind}?")


def network(case, dtype):
    """(finalized model holding case, X, y)."""
    layer_case, loss_case, accuracy_case, optimizer_case = roles(case)
    rng = np.random.default_rng(5)
    np.random.seed(7)
    model = fastnn.Model()
    if layer_case is not None:
        X = fill(layer_case.values, (N_SAMPLES, *layer_case.inputs[1:]), rng, dtype)
        layer = build(layer_case, dtype=dtype, seed=None)
        model.add(layer)
        probe = copy.deepcopy(layer)
        probe.forward(X, False)
        if np.ndim(probe.output) > 2:
            model.add(fastnn.Layer_Flatten())
        features = math.prod(np.shape(probe.output)[1:])
    else:
        features = 4
        X = fill("normal", (N_SAMPLES, features), rng, dtype)
    outputs = loss_case.inputs[1]
    model.add(fastnn.Layer_Dense(features, outputs, dtype=dtype))
    model.add(build(CASES[loss_case.head], seed=None))
    y = targets(loss_case, rng, (N_SAMPLES, outputs), dtype)
    model.set(loss=build(loss_case, seed=None), optimizer=build(optimizer_case, seed=None),
              accuracy=build(accuracy_case, seed=None))
    model.finalize()
    return model, X, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SAVEABLE, ids=ids(SAVEABLE))
def test_a_model_file_gives_the_same_model_back(case, dtype, tmp_path):
    model, X, y = network(case, dtype)
    model.train(X, y, epochs=2, batch_size=BATCH, verbose=False)
    holders = [*model.layers, model.loss, model.accuracy, model.optimizer]
    assert any(type(obj) is case.spec.cls for obj in holders), f"{case.label} is not in the model"
    path = tmp_path / "model.fastnn"
    state = np.random.get_state()
    model.save(path)
    loaded = fastnn.Model.load(path)
    assert rng_state_unchanged(state), "loading drew from NumPy's global RNG"
    assert_same_model(model, loaded)
    assert_finalized(loaded)
    assert type(loaded.softmax_classifier_output) is type(model.softmax_classifier_output)
    for obj in (loaded.loss, loaded.accuracy):          # reset, as the book's save does
        assert obj.accumulated_sum == 0 and obj.accumulated_count == 0
    expected = model.predict(X)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    assert loaded.predict(X).dtype == expected.dtype == np.dtype(dtype)
    assert loaded.evaluate(X, y, verbose=False) == model.evaluate(X, y, verbose=False)
    for m in (model, loaded):                            # training goes on from the saved state
        np.random.seed(3)
        m.train(X, y, epochs=1, batch_size=BATCH, verbose=False)
    assert_same_model(model, loaded)


@pytest.mark.parametrize("case", SAVEABLE, ids=ids(SAVEABLE))
def test_the_format_saves_every_attribute_the_constructor_sets(case):
    """If a constructor gains an attribute, the format must learn it too (this test fails): a new
    object holds exactly its declared saved attributes, parameters and buffers."""
    obj = build(case)
    assert set(vars(obj)) == set(case.spec.saved) | set(state_names(case, obj)), case.label
