"""Misuse that used to end in a raw error or a silent wrong value: concurrent use of one model,
layers changed after finalize(), classes passed instead of instances, masked arrays, integers no
kernel can index with, here or in a model file."""
from __future__ import annotations

import json
import threading
import zipfile

import numpy as np
import pytest

import fastnn
from _models import mlp
from fastnn.datasets import spiral_data


def _classifier(seed=0, hidden=32):
    return mlp(fastnn, (2, hidden, 3), "Activation_Softmax", fastnn.Loss_CategoricalCrossentropy(),
               fastnn.Optimizer_Adam(learning_rate=0.02), fastnn.Accuracy_Categorical(), seed=seed)


# --- one model, several threads -------------------------------------------------------------------


def test_concurrent_predict_on_one_model_gives_every_caller_its_own_correct_result():
    model = _classifier()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((int(rng.integers(1, 64)), 2)).astype(np.float32) for _ in range(16)]
    expected = [model.predict(x) for x in inputs]
    wrong, errors = [], []

    def worker(k):
        try:
            for i in range(200):
                j = (k + i) % len(inputs)
                if not np.array_equal(model.predict(inputs[j]), expected[j]):
                    wrong.append(j)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not wrong, (errors[:3], len(wrong))


def test_training_while_another_thread_predicts_does_not_mix_their_buffers():
    model = _classifier()
    X, y = spiral_data(100, 3)
    probe = X[:7].copy()
    results, errors = [], []

    def predictor():
        try:
            for _ in range(50):
                out = model.predict(probe)
                results.append(out.shape == (7, 3) and np.allclose(out.sum(axis=1), 1, atol=1e-5))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=predictor)
    thread.start()
    model.train(X, y, epochs=20, verbose=False)
    thread.join()
    assert not errors and all(results) and len(results) == 50


# --- layers changed after finalize -----------------------------------------------------------------


@pytest.mark.parametrize("change", ["append", "replace", "reorder"])
def test_layers_changed_after_finalize_are_refused_with_a_clear_error(change):
    model = _classifier()
    X, y = spiral_data(20, 3)
    if change == "append":
        model.add(fastnn.Activation_Linear())
    elif change == "replace":
        model.layers[1] = fastnn.Activation_ReLU()
    else:
        model.layers[0], model.layers[1] = model.layers[1], model.layers[0]
    for call in (lambda: model.predict(X), lambda: model.train(X, y, verbose=False), lambda: model.evaluate(X, y)):
        with pytest.raises(ValueError, match=r"not linked as finalize\(\) linked it.*call model.finalize\(\) again"):
            call()
    model.finalize()
    assert model.predict(X).shape[0] == len(X)


def test_a_layer_shared_by_two_models_is_refused_by_the_first():
    first = _classifier()
    second = fastnn.Model()
    for layer in first.layers:
        second.add(layer)
    second.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
               accuracy=fastnn.Accuracy_Categorical())
    second.finalize()
    X, _ = spiral_data(10, 3)
    second.predict(X)
    with pytest.raises(ValueError, match="also in another model"):
        first.predict(X)


# --- classes instead of instances ------------------------------------------------------------------


@pytest.mark.parametrize("slot, cls", [("loss", fastnn.Loss_CategoricalCrossentropy),
                                       ("optimizer", fastnn.Optimizer_Adam),
                                       ("accuracy", fastnn.Accuracy_Categorical)])
def test_a_class_passed_to_set_is_refused_before_any_work(slot, cls):
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 3))
    with pytest.raises(TypeError, match=rf"{slot} must be an instance, got the class {cls.__name__} itself; "
                                        rf"write {cls.__name__}\(...\) with parentheses"):
        model.set(**{slot: cls})
    assert slot not in vars(model)


def test_a_class_passed_to_add_is_refused():
    with pytest.raises(TypeError, match=r"layer must be an instance, got the class Activation_ReLU"):
        fastnn.Model().add(fastnn.Activation_ReLU)
    with pytest.raises(TypeError, match=r"layer must have a forward\(\) method"):
        fastnn.Model().add(42)


def test_set_checks_every_argument_before_setting_any():
    model = fastnn.Model()
    with pytest.raises(TypeError, match="optimizer"):
        model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam)
    assert "loss" not in vars(model)


# --- masked arrays -----------------------------------------------------------------------------------


def test_masked_arrays_are_refused_instead_of_losing_their_mask():
    model = _classifier()
    X, y = spiral_data(10, 3)
    masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    for call in (lambda: model.predict(masked), lambda: model.train(masked, y, verbose=False),
                 lambda: fastnn.Layer_Dense(2, 3).forward(masked),
                 lambda: fastnn.Activation_ReLU().forward(masked),
                 lambda: model.train(X, np.ma.masked_array(y), verbose=False)):
        with pytest.raises(TypeError, match="masked arrays are not supported"):
            call()


# --- integers beyond what the kernels index -------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: fastnn.Layer_Conv2D(1, 2, 3, stride=2 ** 70),
    lambda: fastnn.Layer_Conv2D(1, 2, 3, padding=2 ** 62),
    lambda: fastnn.Layer_MaxPool2D(pool_size=2 ** 70),
    lambda: fastnn.Layer_MaxPool2D(2, stride=2 ** 40),
    lambda: fastnn.Layer_Dense(2 ** 40, 2),
], ids=["conv-stride", "conv-padding", "pool-size", "pool-stride", "dense"])
def test_huge_integers_are_refused_by_the_constructors(make):
    with pytest.raises(ValueError, match=r"must be at most 2147483647"):
        make()


def _edit_model_file(path, edit):
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    document = json.loads(members["model.json"])
    edit(document)
    members["model.json"] = json.dumps(document).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["optimizer"]["attributes"].update(iterations=10 ** 400), "iterations must be at most"),
    (lambda d: d["layers"][0]["attributes"].update(stride=2 ** 70), "stride must be at most"),
    (lambda d: d["layers"][0]["attributes"].update(padding=2 ** 62), "padding must be at most"),
    (lambda d: d["layers"][1]["attributes"].update(pool_size=2 ** 70), "pool_size must be at most"),
])
def test_huge_integers_in_a_model_file_are_refused_at_load(tmp_path, edit, message):
    model = fastnn.Model()
    model.add(fastnn.Layer_Conv2D(1, 2, 3))
    model.add(fastnn.Layer_MaxPool2D(2))
    model.add(fastnn.Layer_Flatten())
    model.add(fastnn.Layer_Dense(2 * 3 * 3, 2))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_SGD(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    path = tmp_path / "m"
    model.save(path)
    _edit_model_file(path, edit)
    with pytest.raises(fastnn.io.ModelFileError, match=message):
        fastnn.Model.load(path)


# --- edge numerics --------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: fastnn.Optimizer_Adam(epsilon=1e-50),
                                  lambda: fastnn.Optimizer_RMSprop(epsilon=1e-50),
                                  lambda: fastnn.Optimizer_Adagrad(epsilon=1e-50)], ids=["adam", "rmsprop", "adagrad"])
def test_an_epsilon_that_rounds_to_zero_in_float32_is_refused_at_the_first_update(make):
    optimizer = make()
    layer = fastnn.Layer_Dense(3, 2)
    layer.dweights = np.zeros_like(layer.weights)
    layer.dbiases = np.zeros_like(layer.biases)
    with pytest.raises(ValueError, match=r"epsilon 1e-50 rounds to 0 in float32.*NaN"):
        optimizer.update_params(layer)
    assert not hasattr(layer, "weight_cache")            # refused before any state was created
    wide = fastnn.Layer_Dense(3, 2, dtype=np.float64)   # representable in float64: fine
    wide.dweights = np.zeros_like(wide.weights)
    wide.dbiases = np.zeros_like(wide.biases)
    optimizer.update_params(wide)
    assert np.all(np.isfinite(wide.weights))


@pytest.mark.parametrize("rate", [0.99999, 1 - 1e-6])
def test_a_drop_rate_the_fast_mask_cannot_represent_is_refused(rate):
    with pytest.raises(ValueError, match=r"fast mask .* off; use mode='book'"):
        fastnn.Layer_Dropout(rate)
    layer = fastnn.Layer_Dropout(rate, mode="book")      # the book's binomial mask is exact
    layer.forward(np.ones((4, 4), np.float32))
    fast = fastnn.Layer_Dropout(0.5)
    fast.rate = 1 - rate                                  # the attribute changed by hand: refused too
    with pytest.raises(ValueError, match="fast mask"):
        fast.forward(np.ones((4, 4), np.float32))


def test_high_but_representable_drop_rates_still_work():
    layer = fastnn.Layer_Dropout(0.999)
    np.random.seed(0)
    layer.forward(np.ones((1000, 1000), np.float32))
    kept = np.count_nonzero(layer.output) / layer.output.size
    assert abs(kept - 0.001) < 0.0003
