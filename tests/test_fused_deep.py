"""Model.train's compiled plan for the regression pattern (fastnn/_plan.py RegressionPlan,
src_pyx/_fused_deep.pyx: Dense-ReLU-Dense-ReLU-Dense-Linear, mean squared error, regression
accuracy; the book's Ch17 sine network) against the per-layer protocol it replaces, float32 and
float64.

What is exact and what is not (DEEP_BOUND below):
- EXACT: which steps run where; the regularisation loss; a run in several train calls against one
  call; 1, 2 and 3 threads; the baseline and AVX2 builds; the layers' attributes after a train call
  against the per-layer forward and backward on the last step's weights and batch.
- DEEP_BOUND: the plan's thin products are plain loops, its middle products run on chunks of rows,
  and its gradients are summed chunk by chunk: each gradient entry is a sum of n products of
  values that are themselves sums of H1, H2 or K products, so the plan and the per-layer path
  differ by at most a few times (n + H1 + H2 + K) * eps times the sum of the absolute values of
  the terms (the `magnitudes` below: the same computation on absolute values).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastnn
from fastnn import _ext, _plan
from fastnn._ext import _blas, _buildinfo, _fused_deep

import _book
from _plans import (assert_a_non_finite_loss_stops_before_the_update, blas_products, assert_allocates_nothing, assert_same_runs,
                    count_taken_steps, plan_switched_off, several_calls_and_one, with_and_without_plan)
from _thread_counts import assert_identical, at_thread_counts


def eps(dtype):
    return float(np.finfo(dtype).eps)


def network(dtype, k=1, h1=64, h2=64, c=1, l1=0.0, l2=0.0, seed=0, head=fastnn.Activation_Linear,
            loss=fastnn.Loss_MeanSquaredError):
    np.random.seed(seed)
    reg = dict(weight_regularizer_l1=l1, weight_regularizer_l2=l2, bias_regularizer_l1=l1, bias_regularizer_l2=l2)
    layers = [fastnn.Layer_Dense(k, h1, dtype=dtype, **reg), fastnn.Activation_ReLU(),
              fastnn.Layer_Dense(h1, h2, dtype=dtype, **reg), fastnn.Activation_ReLU(),
              fastnn.Layer_Dense(h2, c, dtype=dtype, **reg), head()]
    model = _book.build_model(fastnn, layers, loss=loss(),
                              optimizer=fastnn.Optimizer_Adam(learning_rate=0.005, decay=1e-3),
                              accuracy=fastnn.Accuracy_Regression())
    # Weights as the book's sine network has them after a few steps: large enough that every
    # layer's products matter; biases away from 0, so the bias terms do too.
    rng = np.random.default_rng(seed)
    for layer in model.trainable_layers:
        layer.weights[...] = rng.standard_normal(layer.weights.shape) * (1.5 / np.sqrt(layer.weights.shape[0]))
        layer.biases[...] = rng.standard_normal(layer.biases.shape) * 0.1
    return model


def data(n, k, c, dtype, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, k)).astype(dtype)
    return X, np.sin(3 * X.sum(axis=1, keepdims=True) + np.arange(c)).astype(dtype)


def plan_of(model):
    if model.accuracy.precision is None:
        model.accuracy.precision = 0.05
    plan = _plan.compile_plan(model, callbacks=False, augment=None)
    assert isinstance(plan, _plan.RegressionPlan)
    return plan


def one_step(model, X, y, fused: bool, precision=0.05):
    """(data_loss, reg_loss, accuracy) of one step's gradients, on the plan or per layer."""
    model.loss.new_pass()
    model.accuracy.new_pass()
    model.accuracy.precision = precision
    return plan_of(model).gradients(X, y, 1, 0) if fused else model._gradients(X, y, 1, 0)


def magnitudes(model, X, y):
    """The per-layer step on absolute values (float64): for each gradient, the sum of the
    absolute values of its terms, the forward's rounding carried into the loss gradient."""
    a = lambda m: np.abs(np.asarray(m, np.float64))
    d1, relu1, d2, relu2, d3, _ = model.layers
    n, c = y.shape
    mask1, mask2 = relu1.output > 0, relu2.output > 0
    r1 = a(X) @ a(d1.weights) + a(d1.biases)
    r2 = (r1 * mask1) @ a(d2.weights) + a(d2.biases)
    p = (r2 * mask2) @ a(d3.weights) + a(d3.biases)
    dout = 2 * (a(y) + p) / c / n
    g2 = (dout @ a(d3.weights).T) * mask2
    g1 = (g2 @ a(d2.weights).T) * mask1
    ones = np.ones((1, n))
    return {"p": p, "dweights3": (r2 * mask2).T @ dout, "dbiases3": ones @ dout,
            "dweights2": (r1 * mask1).T @ g2, "dbiases2": ones @ g2,
            "dweights1": a(X).T @ g1, "dbiases1": ones @ g1}


def assert_deep_bound(actual, expected, magnitude, terms, dtype, what):
    """DEEP_BOUND: |actual - expected| <= 8 * terms * eps * magnitude."""
    bound = 8 * terms * eps(dtype) * np.asarray(magnitude, np.float64)
    diff = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    assert np.all(diff <= bound), f"{what}: DEEP_BOUND exceeded by {np.max(diff - bound)}"


# (n, K, H1, H2, C): the sine network; one chunk, part of one, several with a short last one;
# odd widths (no whole 8-lane block); the widest thin sides; more rows than MAX_CHUNKS chunks.
SHAPES = [(1000, 1, 64, 64, 1), (1, 1, 64, 64, 1), (129, 3, 37, 21, 2), (300, 16, 8, 100, 16),
          (257, 2, 130, 7, 3), (9000, 1, 16, 16, 1)]


@pytest.fixture(params=[True, False], ids=["own-gemm", "blas-gemm"])
def gemm_kernels(request):
    """The plan's float32 middle GEMMs in fastnn's AVX-512 kernels (where the CPU has them) and
    in NumPy's BLAS: the same bound holds for both."""
    before = _blas.set_small_gemm(request.param)
    yield request.param
    _blas.set_small_gemm(before)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_one_step_equals_the_per_layer_path(dtype, shape, gemm_kernels):
    n, k, h1, h2, c = shape
    X, y = data(n, k, c, dtype)
    fused, per_layer = network(dtype, k, h1, h2, c, l1=1e-3, l2=5e-4), network(dtype, k, h1, h2, c, l1=1e-3, l2=5e-4)
    f_loss, f_reg, f_acc = one_step(fused, X, y, True)
    p_loss, p_reg, p_acc = one_step(per_layer, X, y, False)
    assert f_reg == p_reg                                   # EXACT: the same weights
    size = magnitudes(per_layer, X, y)
    terms = n + h1 + h2 + k
    p = per_layer.layers[-1].output.astype(np.float64)
    forward = 8 * (h1 + h2 + k) * eps(dtype) * size["p"]    # the outputs' rounding
    loss_bound = np.mean(np.sum(2 * np.abs(y - p) * forward + forward ** 2, axis=1) / c) + 8 * n * eps(dtype) * p_loss
    assert abs(f_loss - p_loss) <= loss_bound, (f_loss, p_loss, loss_bound)
    # Accuracy: only outputs within their rounding of the precision may be counted differently.
    near = np.count_nonzero(np.abs(np.abs(p - y) - 0.05) <= forward)
    assert abs(f_acc - p_acc) * y.size <= near, (f_acc, p_acc, near)
    for i, layer in zip((0, 2, 4), ("1", "2", "3")):
        mine, theirs = fused.layers[i], per_layer.layers[i]
        penalty = 4 * (np.abs(theirs.weights) * 2e-3 + 2e-3)
        assert_deep_bound(mine.dweights, theirs.dweights, size["dweights" + layer] + penalty, terms, dtype,
                          "dweights" + layer)
        assert_deep_bound(mine.dbiases, theirs.dbiases, size["dbiases" + layer] + penalty.max(), terms, dtype,
                          "dbiases" + layer)
        assert mine.dweights.dtype == dtype and mine.dweights.shape == theirs.dweights.shape
        assert mine.dbiases.dtype == dtype and mine.dbiases.shape == theirs.dbiases.shape


def test_float64_gradients_agree_to_rounding():
    """The bound above is loose; in float64 the plan and the per-layer path agree to ~1e-13."""
    X, y = data(1000, 1, 1, np.float64)
    fused, per_layer = network(np.float64), network(np.float64)
    one_step(fused, X, y, True)
    one_step(per_layer, X, y, False)
    for i in (0, 2, 4):
        for name in ("dweights", "dbiases"):
            np.testing.assert_allclose(fused.layers[i].__dict__[name], per_layer.layers[i].__dict__[name],
                                       rtol=1e-10, atol=1e-15)


def train_both(dtype, epochs=5, batch_size=None, n=600, **options):
    X, y = data(n, 1, 1, dtype)
    fused, per_layer = network(dtype, **options), network(dtype, **options)
    a = fused.train(X, y, epochs=epochs, batch_size=batch_size, verbose="silent")
    with plan_switched_off():
        b = per_layer.train(X, y, epochs=epochs, batch_size=batch_size, verbose="silent")
    return fused, per_layer, a, b, X, y


@pytest.mark.parametrize("batch_size", [None, 128])
def test_training_follows_the_per_layer_path(dtype, batch_size):
    fused, per_layer, a, b, _, _ = train_both(dtype, batch_size=batch_size, l2=5e-4)
    rtol = 1e-9 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(a.loss, b.loss, rtol=rtol)
    np.testing.assert_allclose(a.accuracy, b.accuracy, atol=0.01)
    for p, q in zip(fused.trainable_layers, per_layer.trainable_layers):
        np.testing.assert_allclose(p.weights, q.weights, rtol=0, atol=1e-9 if dtype == np.float64 else 1e-3)


def test_the_book_log_keeps_its_form(capsys):
    model = network(np.float32)
    X, y = data(200, 1, 1, np.float32)
    model.train(X, y, epochs=2, print_every=1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0].split(":")[0] for line in lines] == ["epoch", "step", "training"] * 2
    assert lines[-1].startswith("training, acc: ") and "data_loss: " in lines[-1] and "lr: " in lines[-1]


def test_the_last_step_leaves_the_per_layer_attributes(dtype):
    """After a train call every layer's book attributes are what the per-layer forward and backward
    compute on the last step's batch and weights, bit for bit; dweights and dbiases are the plan's
    (the gradients the update used)."""
    X, y = data(300, 1, 1, dtype)
    model = network(dtype)
    model.train(X, y, epochs=2, batch_size=100, verbose="silent")
    replay = copy.deepcopy(model)
    model.train(X, y, epochs=1, batch_size=100, verbose="silent")
    plan = plan_of(replay)
    for step in range(2):   # the epoch's first two steps, on the plan
        assert plan.gradients(X[100 * step:100 * step + 100], y[100 * step:100 * step + 100], 1, step) is not None
        replay._update(None)
    check = copy.deepcopy(replay)
    check.backward(check.forward(X[200:], training=True), y[200:])
    compared = 0
    for mine, theirs in zip(model.layers, check.layers):
        for name in ("inputs", "output", "dinputs"):
            if name in theirs.__dict__:
                np.testing.assert_array_equal(mine.__dict__[name], theirs.__dict__[name], err_msg=f"{mine!r}.{name}")
                compared += 1
    assert compared == 17    # inputs and output of six layers, dinputs of five (the first has none)
    np.testing.assert_array_equal(model.loss.dinputs, check.loss.dinputs)
    assert plan.gradients(X[200:], y[200:], 1, 2) is not None    # the last step's gradients, on the plan
    for i in (0, 2, 4):
        for name in ("dweights", "dbiases"):
            np.testing.assert_array_equal(model.layers[i].__dict__[name], replay.layers[i].__dict__[name])


def test_every_step_runs_on_the_plan(monkeypatch):
    calls = []
    real = _fused_deep.regression_step
    monkeypatch.setattr(_fused_deep, "regression_step", lambda *args: calls.append(1) or real(*args))
    monkeypatch.setattr(fastnn.Model, "_gradients", lambda *args: pytest.fail("a step took the per-layer path"))
    model = network(np.float32)
    X, y = data(100, 1, 1, np.float32)
    model.train(X, y, epochs=3, batch_size=30, verbose="silent")    # 4 steps per epoch
    assert len(calls) == 12


def test_training_in_several_calls_equals_one_call(dtype):
    X, y = data(200, 1, 1, dtype)
    assert_same_runs(several_calls_and_one(lambda: network(dtype), X, y, batch_size=64))


@pytest.mark.parametrize("change", ["mean absolute error", "sigmoid output", "subclass", "wide inputs",
                                    "wide outputs", "dropout", "three hidden layers", "callback"])
def test_other_models_take_the_per_layer_path(change, monkeypatch):
    """Each of these takes the per-layer path for every step (the kernel takes no step: it is not
    called, or refuses having done nothing), so the run is bit-identical to one with the plan
    switched off (with NumPy's products in both: where the GEMM plan would take these models,
    tests/test_gemm_plan.py compares it)."""
    calls = count_taken_steps(monkeypatch, _fused_deep, "regression_step")

    class MyDense(fastnn.Layer_Dense):
        pass

    k = 17 if change == "wide inputs" else 1
    c = 17 if change == "wide outputs" else 1

    def build():
        options = {}
        if change == "mean absolute error":
            options["loss"] = fastnn.Loss_MeanAbsoluteError
        if change == "sigmoid output":
            options["head"] = fastnn.Activation_Sigmoid
        model = network(np.float32, k=k, c=c, **options)
        if change == "subclass":
            model.layers[2].__class__ = MyDense
        if change == "dropout":
            model.layers[2:2] = [fastnn.Layer_Dropout(0.1, mode="fast")]
            model.finalize()
        if change == "three hidden layers":
            model.layers[2:2] = [fastnn.Layer_Dense(64, 64), fastnn.Activation_ReLU()]
            model.finalize()
        return model

    X, y = data(90, k, c, np.float32)
    callbacks = None
    if change == "callback":
        class EpochEnd(fastnn.Callback):
            def on_epoch_end(self, run, logs):
                pass
        callbacks = [EpochEnd()]
    with blas_products():  # the other models' Dense products: NumPy's in both runs
        runs = with_and_without_plan(build, X, y, epochs=3, batch_size=40, callbacks=callbacks)
    assert not calls
    assert_same_runs(runs)


def test_no_plan_with_callbacks_or_augmentation():
    """No compiled regression step with callbacks or augmentation (at most the GEMM plan, which
    tests/test_gemm_plan.py covers)."""
    model = network(np.float32)
    for plan in (_plan.compile_plan(model, callbacks=True, augment=None),
                 _plan.compile_plan(model, callbacks=False, augment=fastnn.Augmentation_CropFlip(1, False))):
        assert plan is None or type(plan) is _plan.GemmPlan


def test_a_non_finite_loss_stops_before_the_update():
    X, y = data(50, 1, 1, np.float32)
    X[3, 0] = np.inf
    assert_a_non_finite_loss_stops_before_the_update(network(np.float32), X, y)


def test_independent_of_the_thread_count(dtype):
    X, y = data(1000, 2, 2, dtype)
    model = network(dtype, k=2, h1=48, h2=40, c=2)
    plan = plan_of(model)
    layers = [model.layers[i].__dict__ for i in (0, 2, 4)]

    def run():
        total, correct = plan.gradients(X, y, 1, 0)[::2]
        return [np.array(total), np.array(correct)] + [d[name] for d in layers for name in ("dweights", "dbiases")]
    assert_identical(at_thread_counts([1, 0, 2, 3], run))


def test_buffers_are_reused():
    model = network(np.float32)
    X, y = data(300, 1, 1, np.float32)
    plan = plan_of(model)
    names = [(i, name) for i in (0, 2, 4) for name in ("dweights", "dbiases")]
    plan.gradients(X, y, 1, 0)
    kept = [model.layers[i].__dict__[name] for i, name in names]
    scratch = dict(plan.scratch)
    plan.gradients(X, y, 1, 1)
    assert all(a is model.layers[i].__dict__[name] for a, (i, name) in zip(kept, names))
    assert scratch and all(plan.scratch[key] is value for key, value in scratch.items())


@pytest.mark.skipif(not (_buildinfo.cpu_has_avx2() and _ext._is_built("_fused_deep_avx2")), reason="no AVX2 build")
def test_baseline_and_avx2_builds_identical(dtype):
    import importlib
    X, y = data(300, 3, 2, dtype)
    results = []
    for module in (_ext.BASELINE["_fused_deep"], importlib.import_module("fastnn._ext._fused_deep_avx2")):
        model = network(dtype, 3, 77, 45, 2, l1=1e-3, l2=1e-3)
        states = [model.layers[i].__dict__ for i in (0, 2, 4)]
        total, correct = module.regression_step(*states, {}, X, y, 0.05)
        results.append([total, correct] + [d[name].copy() for d in states for name in ("dweights", "dbiases")])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_refused_arrays_change_nothing():
    model = network(np.float32, k=2, c=2)
    states = [model.layers[i].__dict__ for i in (0, 2, 4)]
    X, y = data(20, 2, 2, np.float32)
    for args in [(X.astype(np.float64), y), (np.asfortranarray(np.ones((20, 2), np.float32)), y),
                 (X, y.astype(np.float64)), (X, y[:, :1]), (X[:, :1], y), (X[:0], y[:0]), (X, y[:10]),
                 (X, y.ravel()), (X.tolist(), y)]:
        assert _fused_deep.regression_step(*states, {}, *args, 0.05) is None
    assert not any("dweights" in state for state in states)
    states[1]["weights"] = np.asfortranarray(states[1]["weights"])
    assert _fused_deep.regression_step(*states, {}, X, y, 0.05) is None
    assert not any("dweights" in state for state in states)


def test_a_planned_step_allocates_no_array(dtype):
    """After warm-up, a step on the plan (kernel, loss and accuracy sums, Adam) allocates no array:
    tracemalloc sees no growth and no transient peak of the size of one (n,) or (H1, H2) array."""
    model = network(dtype, h1=128, h2=128)
    X, y = data(2048, 1, 1, dtype)
    model.accuracy.precision = 0.01
    step = plan_of(model).train_step(last_epoch=10 ** 9, last_step=0)
    model.loss.new_pass()
    model.accuracy.new_pass()
    assert_allocates_nothing(lambda i: step(X, y, 1, i))


def test_the_sine_recipe_reaches_the_books_accuracy():
    """The book's Ch17 run on the plan: sine_data, 1-64-64-1 with the chapter's 0.1 * randn
    initial weights, Adam(0.005, decay 1e-3); the book reports 0.970 train accuracy after 10,000
    epochs, the plan gets past 0.9 in 3,000."""
    from fastnn.datasets import sine_data
    np.random.seed(0)
    X, y = sine_data()
    layers = [fastnn.Layer_Dense(1, 64), fastnn.Activation_ReLU(), fastnn.Layer_Dense(64, 64), fastnn.Activation_ReLU(),
              fastnn.Layer_Dense(64, 1), fastnn.Activation_Linear()]
    for dense in layers[::2]:
        dense.weights *= 10
    model = _book.build_model(fastnn, layers, loss=fastnn.Loss_MeanSquaredError(),
                              optimizer=fastnn.Optimizer_Adam(learning_rate=0.005, decay=1e-3),
                              accuracy=fastnn.Accuracy_Regression())
    assert isinstance(_plan.compile_plan(model, callbacks=False, augment=None), _plan.RegressionPlan)
    history = model.train(X, y, epochs=3000, verbose="silent")
    assert history.accuracy[-1] > 0.9, history.accuracy[-1]
