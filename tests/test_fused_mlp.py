"""Model.train's compiled plan (fastnn/_plan.py, src_pyx/_fused_mlp.pyx.tp) against the per-layer
protocol it replaces, float32 and float64.

What is exact and what is not (the tolerance below, FUSED_BOUND):
- EXACT: the dropout mask (the fast mode's generator, element for element: the accuracy counts and
  the RNG's state after a step agree), which steps run where, the layers' attributes after a train
  call against what each layer computes from the inputs the plan left it, a run in several train
  calls against one call, the baseline and AVX2 builds, 1 and 2 BLAS threads.
- FUSED_BOUND: the plan's Dense products and gradient sums are plain loops in another order than
  BLAS's; each gradient entry is a sum of n_samples products (itself made of sums of H or K
  products), so the two computations differ by at most a few times (n_samples + H + K) * eps times
  the sum of the absolute values of the terms. The loss, from the same logits up to that rounding,
  agrees within the same bound relative to its value.
"""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastnn
from fastnn import _ext, _plan
from fastnn._ext import _buildinfo, _fused_mlp

import _book
from _plans import (assert_a_non_finite_loss_stops_before_the_update, blas_products, assert_allocates_nothing, assert_same_runs,
                    count_taken_steps, plan_switched_off, several_calls_and_one, with_and_without_plan)


def eps(dtype):
    return float(np.finfo(dtype).eps)


def network(dtype, n_inputs=2, hidden=64, classes=3, dropout=0.1, mode="fast", l1=0.0, l2=5e-4, seed=0):
    np.random.seed(seed)
    layers = [fastnn.Layer_Dense(n_inputs, hidden, weight_regularizer_l1=l1, weight_regularizer_l2=l2,
                                 bias_regularizer_l1=l1, bias_regularizer_l2=l2, dtype=dtype),
              fastnn.Activation_ReLU()]
    if dropout:
        layers.append(fastnn.Layer_Dropout(dropout, mode=mode))
    layers += [fastnn.Layer_Dense(hidden, classes, dtype=dtype), fastnn.Activation_Softmax()]
    model = _book.build_model(fastnn, layers, loss=fastnn.Loss_CategoricalCrossentropy(),
                              optimizer=fastnn.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
                              accuracy=fastnn.Accuracy_Categorical())
    # Biases away from 0, so the bias terms of the products matter.
    for layer in model.trainable_layers:
        layer.biases[...] = np.random.default_rng(seed).standard_normal(layer.biases.shape) * 0.01
    return model


def data(n, n_inputs, classes, dtype, labels=np.int64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_inputs)).astype(dtype), rng.integers(0, classes, n).astype(labels)


def plan_of(model):
    return _plan.compile_plan(model, callbacks=False, augment=None)


def one_step(model, X, y, fused: bool):
    """(data_loss, reg_loss, accuracy) of one step's gradients, on the plan or per layer, after
    np.random.seed(7); the RNG state after it."""
    model.loss.new_pass()
    model.accuracy.new_pass()
    np.random.seed(7)
    result = plan_of(model).gradients(X, y, 1, 0) if fused else model._gradients(X, y, 1, 0)
    return result, np.random.get_state()[1].copy()


def assert_fused_bound(actual, expected, magnitude, terms, dtype, what):
    """FUSED_BOUND: |actual - expected| <= 4 * terms * eps * magnitude (magnitude: the sum of the
    absolute values of the terms, or an upper bound of it)."""
    bound = 4 * terms * eps(dtype) * np.asarray(magnitude, np.float64)
    diff = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    assert np.all(diff <= bound), f"{what}: FUSED_BOUND exceeded by {np.max(diff - bound)}"


SHAPES = [(300, 2, 64, 3), (97, 1, 37, 2), (64, 3, 8, 4), (33, 5, 100, 5), (5, 16, 9, 16), (1, 2, 512, 3)]


@pytest.mark.parametrize("labels", [np.uint8, np.int32, np.int64], ids=["u8", "i32", "i64"])
@pytest.mark.parametrize("dropout", [0.0, 0.1], ids=["plain", "dropout"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_one_step_equals_the_per_layer_path(dtype, shape, dropout, labels):
    n, k, h, c = shape
    X, y = data(n, k, c, dtype, labels)
    fused, per_layer = network(dtype, k, h, c, dropout, l1=1e-3), network(dtype, k, h, c, dropout, l1=1e-3)
    (f_loss, f_reg, f_acc), f_rng = one_step(fused, X, y, True)
    (p_loss, p_reg, p_acc), p_rng = one_step(per_layer, X, y, False)
    np.testing.assert_array_equal(f_rng, p_rng)          # EXACT: one draw, at the same point
    assert f_reg == p_reg and f_acc == p_acc             # EXACT (same weights; same masks and argmax here)
    assert abs(f_loss - p_loss) <= 4 * (h + k) * eps(dtype) * max(1.0, abs(p_loss)), (f_loss, p_loss)
    d1, d2 = per_layer.layers[0], per_layer.layers[-2]
    hidden = per_layer.layers[-3].output                  # after ReLU (and dropout)
    dz = per_layer.layers[1].dinputs                      # the gradient at the first Dense's output
    dl = per_layer.layers[-1].dinputs                     # at the logits
    terms = n + h + k
    a = lambda m: np.abs(m.astype(np.float64))
    # The first layer: X.T @ dz and the column sums of dz (and through dz, everything above it).
    grad_size = a(X).T @ (a(dl) @ a(d2.weights).T) * (1 / (1 - dropout)) + a(X).T @ a(dz)
    assert_fused_bound(fused.layers[0].dweights, d1.dweights, grad_size + 4 * np.abs(d1.weights) * (1e-3 + 1e-3), terms,
                       dtype, "dweights1")
    bias_size = np.ones((1, n)) @ (a(dl) @ a(d2.weights).T) * (1 / (1 - dropout)) + np.sum(a(dz), axis=0, keepdims=True)
    assert_fused_bound(fused.layers[0].dbiases, d1.dbiases, bias_size + 4 * np.abs(d1.biases) * 2e-3, terms, dtype,
                       "dbiases1")
    assert_fused_bound(fused.layers[-2].dweights, d2.dweights, a(hidden).T @ a(dl) + a(hidden).T @ np.full(dl.shape, 1 / n)
                       + 4 * np.abs(d2.weights) * 2e-3, terms, dtype, "dweights2")
    assert_fused_bound(fused.layers[-2].dbiases, d2.dbiases, np.ones((1, n)) @ (a(dl) + 1 / n) + 4 * np.abs(d2.biases) * 2e-3,
                       terms, dtype, "dbiases2")


def test_float64_gradients_agree_to_rounding():
    """The bound above is loose; in float64 the plan and the per-layer path agree to ~1e-15."""
    X, y = data(3000, 2, 3, np.float64)
    fused, per_layer = network(np.float64, 2, 512, 3), network(np.float64, 2, 512, 3)
    one_step(fused, X, y, True)
    one_step(per_layer, X, y, False)
    for i in (0, -2):
        for name in ("dweights", "dbiases"):
            np.testing.assert_allclose(fused.layers[i].__dict__[name], per_layer.layers[i].__dict__[name],
                                       rtol=1e-11, atol=1e-17)


def train_both(dtype, epochs=5, batch_size=None, **options):
    X, y = data(600, 2, 3, dtype)
    fused, per_layer = network(dtype, hidden=128, **options), network(dtype, hidden=128, **options)
    np.random.seed(3)
    a = fused.train(X, y, epochs=epochs, batch_size=batch_size, verbose="silent")
    np.random.seed(3)
    with plan_switched_off():
        b = per_layer.train(X, y, epochs=epochs, batch_size=batch_size, verbose="silent")
    return fused, per_layer, a, b, X


@pytest.mark.parametrize("batch_size", [None, 128])
def test_training_follows_the_per_layer_path(dtype, batch_size):
    fused, per_layer, a, b, X = train_both(dtype, batch_size=batch_size)
    rtol = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(a.loss, b.loss, rtol=rtol)
    np.testing.assert_allclose(a.accuracy, b.accuracy, atol=0.01)
    for p, q in zip(fused.trainable_layers, per_layer.trainable_layers):
        np.testing.assert_allclose(p.weights, q.weights, rtol=0, atol=1e-9 if dtype == np.float64 else 2e-3)


@pytest.mark.parametrize("dropout", [0.0, 0.1], ids=["plain", "dropout"])
def test_the_last_step_leaves_the_books_attributes(dtype, dropout):
    """The last step of a train call also writes every layer's attributes: chained as the book
    chains them, each what its layer's call computes from its inputs, and (loosely) what the
    per-layer path leaves."""
    fused, per_layer, _, _, X = train_both(dtype, epochs=3, dropout=dropout)
    dense1, relu, *middle, dense2, softmax = fused.layers
    np.testing.assert_array_equal(dense1.inputs, X)
    assert relu.inputs is dense1.output and softmax.inputs is dense2.output
    np.testing.assert_array_equal(relu.output, np.where(dense1.output <= 0, 0, dense1.output))
    grad = dense2.dinputs
    if middle:
        drop, = middle
        assert drop.inputs is relu.output and dense2.inputs is drop.output
        assert drop.binary_mask.shape == (len(X), 128) and drop.binary_mask.dtype == dtype
        np.testing.assert_array_equal(drop.output, relu.output * drop.binary_mask)
        np.testing.assert_array_equal(drop.dinputs, dense2.dinputs * drop.binary_mask)
        grad = drop.dinputs
    else:
        assert dense2.inputs is relu.output
    np.testing.assert_array_equal(relu.dinputs, np.where(dense1.output <= 0, 0, grad))
    check = fastnn.Activation_Softmax()
    check.forward(dense2.output)
    np.testing.assert_array_equal(softmax.output, check.output)
    assert softmax.dinputs is fused.softmax_classifier_output.dinputs
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=0, atol=1e-2)
    for a, b in zip(fused.layers, per_layer.layers):
        for name in ("output", "dinputs"):
            if name in b.__dict__ and not (a is dense1 and name == "dinputs"):
                np.testing.assert_allclose(a.__dict__[name], b.__dict__[name], **tol, err_msg=f"{a!r}.{name}")


def test_every_step_runs_on_the_plan_and_the_last_keeps_the_attributes(monkeypatch):
    calls = []
    real = _fused_mlp.hidden_step
    monkeypatch.setattr(_fused_mlp, "hidden_step", lambda *args: calls.append(args[-1] is not None) or real(*args))
    model = network(np.float32)
    X, y = data(100, 2, 3, np.float32)
    model.train(X, y, epochs=3, batch_size=30, verbose="silent")    # 4 steps per epoch
    assert calls == [False] * 11 + [True]


def test_training_in_several_calls_equals_one_call(dtype):
    X, y = data(200, 2, 3, dtype)
    assert_same_runs(several_calls_and_one(lambda: network(dtype), X, y, batch_size=64))


@pytest.mark.parametrize("change", ["book dropout", "one-hot labels", "subclass", "wide inputs", "callback",
                                    "two hidden layers"])
def test_other_models_take_the_per_layer_path(change, monkeypatch):
    """Each of these takes the per-layer path for every step (the kernel takes no step: it is not
    called, or refuses having done nothing), so the run is bit-identical to one with the plan
    switched off (with NumPy's products in both: where the GEMM plan would take these models,
    tests/test_gemm_plan.py compares it)."""
    calls = count_taken_steps(monkeypatch, _fused_mlp, "hidden_step")

    class MyDense(fastnn.Layer_Dense):
        pass

    def build():
        model = network(np.float32, n_inputs=20 if change == "wide inputs" else 2,
                        mode="book" if change == "book dropout" else "fast")
        if change == "subclass":
            model.layers[0].__class__ = MyDense
        if change == "two hidden layers":
            model.layers[3:3] = [fastnn.Layer_Dense(64, 64), fastnn.Activation_ReLU()]
            model.finalize()
        return model

    X, y = data(90, 20 if change == "wide inputs" else 2, 3, np.float32)
    target = np.eye(3, dtype=np.float32)[y] if change == "one-hot labels" else y
    class EpochEnd(fastnn.Callback):
        def on_epoch_end(self, run, logs):
            pass

    callbacks = [EpochEnd()] if change == "callback" else None
    with blas_products():  # the other models' Dense products: NumPy's in both runs
        runs = with_and_without_plan(build, X, target, epochs=3, batch_size=40, callbacks=callbacks)
    assert not calls
    assert_same_runs(runs)


def test_a_non_finite_loss_stops_before_the_update():
    X, y = data(50, 2, 3, np.float32)
    X[3, 0] = np.inf
    assert_a_non_finite_loss_stops_before_the_update(network(np.float32), X, y)


def test_independent_of_the_thread_count(dtype):
    X, y = data(500, 2, 3, dtype)
    results = []
    for threads in (1, 2):
        model = network(dtype, hidden=96)
        with threadpool_limits(threads):
            one_step(model, X, y, True)
        results.append([model.layers[i].__dict__[name].copy() for i in (0, -2) for name in ("dweights", "dbiases")])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_buffers_are_reused():
    model = network(np.float32)
    X, y = data(64, 2, 3, np.float32)
    plan = plan_of(model)
    plan.gradients(X, y, 1, 0)
    kept = [model.layers[i].__dict__[name] for i in (0, -2) for name in ("dweights", "dbiases")]
    scratch = dict(plan.scratch)
    plan.gradients(X, y, 1, 1)
    assert all(a is model.layers[i].__dict__[name] for a, (i, name) in
               zip(kept, [(i, name) for i in (0, -2) for name in ("dweights", "dbiases")]))
    assert all(plan.scratch[key] is value for key, value in scratch.items())


@pytest.mark.skipif(not (_buildinfo.cpu_has_avx2() and _ext._is_built("_fused_mlp_avx2")), reason="no AVX2 build")
def test_baseline_and_avx2_builds_identical(dtype):
    import importlib
    X, y = data(200, 3, 4, dtype)
    results = []
    for module in (_ext.BASELINE["_fused_mlp"], importlib.import_module("fastnn._ext._fused_mlp_avx2")):
        model = network(dtype, 3, 77, 4)
        d1, d2 = model.layers[0].__dict__, model.layers[-2].__dict__
        total, correct = module.hidden_step(d1, d2, {}, X, y, 0.9, lambda: 12345)
        results.append([total, correct] + [d[name].copy() for d in (d1, d2) for name in ("dweights", "dbiases")])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_refused_arrays_change_nothing_and_draw_nothing():
    model = network(np.float32)
    d1, d2 = model.layers[0].__dict__, model.layers[-2].__dict__
    X, y = data(20, 2, 3, np.float32)
    draws = []
    for args in [(X.astype(np.float64), y), (np.asfortranarray(np.ones((20, 2), np.float32)), y),
                 (X, y.astype(np.float32)), (X, y + 3), (X[:0], y[:0]), (X, y[:10])]:
        assert _fused_mlp.hidden_step(d1, d2, {}, *args, 0.9, lambda: draws.append(1) or 1) is None
    assert not draws and "dweights" not in d1 and "dweights" not in d2


def test_a_planned_step_allocates_no_array(dtype):
    """After warm-up, a step on the plan (kernel, loss and accuracy sums, Adam) allocates no array:
    tracemalloc sees no growth and no transient peak of the size of one (n,) or (K, H) array."""
    model = network(dtype, hidden=256)
    X, y = data(2048, 2, 3, dtype)
    step = plan_of(model).train_step(last_epoch=10 ** 9, last_step=0)
    model.loss.new_pass()
    model.accuracy.new_pass()
    assert_allocates_nothing(lambda i: step(X, y, 1, i))
