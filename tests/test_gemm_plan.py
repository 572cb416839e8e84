"""Model.train's GEMM plan (fastnn/_plan.py GemmPlan) and the switch behind it
(src_pyx/_dense.pyx `own_gemm`): for a float32 model that neither fused plan takes, on a CPU with
AVX-512, each step runs the per-layer protocol with this thread's Dense products in fastnn's own
AVX-512 kernels instead of NumPy's BLAS.

What is covered:
- which plan compile_plan chooses (the fused plans first, then GemmPlan; none for float64 models,
  book-mode dropout, callbacks, augmentation, subclasses of Layer_Dense, CPUs without AVX-512);
- the kernels' Dense forward and backward products against exact (float64) products within a
  GEMM's error bound (GEMM_BOUND below) on the edges of the K blocks, the bias-in-GEMM limit and
  the kernels' tiles, and the bias sums bit-identical to the BLAS path's;
- bits independent of the OpenMP thread count;
- the switch is per thread, off by default, and Model.train (and Model.predict and
  Model.evaluate, which compute with train's products) leave it as they found it, after a return
  and after a raise, so a layer's own forward outside them is NumPy's product, bit for bit;
- training on the plan against the same training on NumPy's products (TRAIN_TOLERANCE below), and
  bit-identical to the plan switched off when the kernels are switched off;
- the layers' attributes after a planned train, no scratch state on the layers (copies and
  pickles hold the layer's state only), and a planned step allocating no array.

GEMM_BOUND: the kernels sum the inner dimension k in order, in blocks of 256, one fused
multiply-add per term, and add each block's sum to C; a term goes through at most k roundings
(k + 1 in the forward, with the bias), so |computed - exact| <= k * 2**-24 * (|A| @ |B|) value by
value (forward: (k + 1) * 2**-24 * (|x| @ |w| + |b|)). SAFETY = 1.5 covers the float64 reference's
own rounding and the second-order term of the bound (k * u / (1 - k * u)); the bound is checked to
catch one missing term.

The tests that need the kernels to run are skipped on a CPU without AVX-512 (there every product is
NumPy's, as the rest of the suite tests).
"""
from __future__ import annotations

import contextlib
import copy
import pickle
import threading
from typing import Iterator

import numpy as np
import pytest

import fastnn
from fastnn import _plan
from fastnn._ext import _blas, _dense

import _book
from _plans import (assert_a_non_finite_loss_stops_before_the_update, assert_allocates_nothing, assert_same_runs,
                    blas_products, plan_switched_off, with_and_without_plan)
from _thread_counts import assert_identical, at_thread_counts

EPS = 2.0 ** -24
SAFETY = 1.5

needs_avx512 = pytest.mark.skipif(not _blas.small_gemm_available(),
                                  reason="the CPU has no AVX-512: fastnn's own Dense products never run")


@pytest.fixture(autouse=True)
def _switch_as_found() -> Iterator[None]:
    """Every test starts with this thread's switch off and the kernels on, and leaves both as
    it found them (whatever the test does)."""
    own = _dense.own_gemm(False)
    small = _blas.set_small_gemm(True)
    try:
        yield
    finally:
        _blas.set_small_gemm(small)
        _dense.own_gemm(own)


@contextlib.contextmanager
def own_products() -> Iterator[None]:
    """Inside: this thread's float32 Dense products in fastnn's own kernels."""
    previous = _dense.own_gemm(True)
    try:
        yield
    finally:
        _dense.own_gemm(previous)


def network(dtype=np.float32, n_inputs=20, hidden=32, classes=5, dropout=0.0, mode="fast", seed=0,
            dense=fastnn.Layer_Dense):
    """A Fashion-MNIST-like classifier, smaller: Dense(n_inputs, hidden)-ReLU-[Dropout]-
    Dense(hidden, hidden)-ReLU-Dense(hidden, classes)-Softmax, categorical cross-entropy, Adam,
    categorical accuracy (two hidden layers: neither fused plan takes it). Biases away from 0, so
    the bias terms of the products matter."""
    np.random.seed(seed)
    layers = [dense(n_inputs, hidden, dtype=dtype), fastnn.Activation_ReLU()]
    if dropout:
        layers.append(fastnn.Layer_Dropout(dropout, mode=mode))
    layers += [dense(hidden, hidden, dtype=dtype), fastnn.Activation_ReLU(), dense(hidden, classes, dtype=dtype),
               fastnn.Activation_Softmax()]
    model = _book.build_model(fastnn, layers, loss=fastnn.Loss_CategoricalCrossentropy(),
                              optimizer=fastnn.Optimizer_Adam(learning_rate=0.01, decay=1e-3),
                              accuracy=fastnn.Accuracy_Categorical())
    rng = np.random.default_rng(seed)
    for layer in model.trainable_layers:
        layer.biases[...] = rng.standard_normal(layer.biases.shape) * 0.01
    return model


def data(n, n_inputs, classes, dtype=np.float32, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_inputs)).astype(dtype), rng.integers(0, classes, n)


def plan_of(model):
    return _plan.compile_plan(model, callbacks=False, augment=None)


def dense_layer(rng, n_inputs, n_neurons):
    """A float32 Layer_Dense with standard normal weights and biases (values of both signs, so
    the products cancel and the bound's |A| @ |B| is not the result's size)."""
    layer = fastnn.Layer_Dense(n_inputs, n_neurons, dtype=np.float32)
    layer.weights[...] = rng.standard_normal(layer.weights.shape)
    layer.biases[...] = rng.standard_normal(layer.biases.shape)
    return layer


def forward_backward(layer, x, dvalues):
    """(output, dweights, dbiases, dinputs) of one forward and one backward, copied."""
    layer.forward(x)
    layer.backward(dvalues)
    return [layer.output.copy(), layer.dweights.copy(), layer.dbiases.copy(), layer.dinputs.copy()]


def assert_gemm_bound(actual, exact, magnitude, k, what):
    """GEMM_BOUND: |actual - exact| <= SAFETY * k * 2**-24 * magnitude, value by value."""
    bound = SAFETY * max(k, 1) * EPS * magnitude
    diff = np.abs(actual.astype(np.float64) - exact)
    assert actual.dtype == np.float32 and actual.shape == exact.shape, what
    assert np.all(diff <= bound), f"{what}: GEMM_BOUND exceeded by {np.max(diff - bound)} (k={k})"


# --- which plan ---------------------------------------------------------------------------------

@needs_avx512
@pytest.mark.parametrize("dropout", [0.0, 0.1], ids=["plain", "fast-dropout"])
def test_a_float32_model_that_no_fused_plan_takes_gets_the_gemm_plan(dropout):
    assert isinstance(plan_of(network(dropout=dropout)), _plan.GemmPlan)


@pytest.mark.parametrize("change", ["float64", "book-dropout", "subclass"])
def test_models_the_gemm_plan_leaves_alone(change):
    """float64 weights (the kernels are float32 only), book-mode dropout (a book run reproduces
    NumPy's numbers, products included) and subclasses of Layer_Dense (not the exact class) get no
    plan."""

    class MyDense(fastnn.Layer_Dense):
        pass

    model = network(np.float64 if change == "float64" else np.float32, dropout=0.1 if change == "book-dropout" else 0.0,
                    mode="book", dense=MyDense if change == "subclass" else fastnn.Layer_Dense)
    assert plan_of(model) is None


def test_callbacks_and_augmentation_get_no_fused_plan_but_the_gemm_plan():
    """Callbacks and augmentation rule out the fused plans (which write the layers' attributes
    on a train call's last step only) but not the GEMM plan, which writes them at every step:
    GemmPlan where the kernels run, else no plan."""
    spiral = fastnn.Model()
    for layer in (fastnn.Layer_Dense(2, 64), fastnn.Activation_ReLU(), fastnn.Layer_Dense(64, 3),
                  fastnn.Activation_Softmax()):
        spiral.add(layer)
    spiral.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
               accuracy=fastnn.Accuracy_Categorical())
    spiral.finalize()
    expected = _plan.GemmPlan if _blas.small_gemm_available() else type(None)
    for model in (network(), spiral):
        assert type(_plan.compile_plan(model, callbacks=True, augment=None)) is expected
        assert type(_plan.compile_plan(model, callbacks=False, augment=lambda batch: batch)) is expected
    assert type(_plan.compile_plan(spiral, callbacks=False, augment=None)) is _plan.HiddenLayerPlan


@needs_avx512
def test_callbacks_run_with_the_switch_off_and_see_every_steps_attributes():
    """With a callback, every step runs on the GEMM plan's products while the callback itself
    runs with the switch off, and at each step's end it finds the per-layer attributes of that
    step (the ReLU's output is max(0, its input) of this batch)."""
    X, y = data(100, 20, 5)
    model = network()
    seen: list[tuple[bool, int]] = []

    class Check(fastnn.Callback):
        def on_step_end(self, run, logs):
            relu = model.layers[1]
            np.testing.assert_array_equal(relu.output, np.maximum(0, model.layers[0].output))
            seen.append((_dense.own_gemm(False), len(relu.output)))

    model.train(X, y, epochs=2, batch_size=30, verbose="silent", callbacks=[Check()])
    assert seen == [(False, 30), (False, 30), (False, 30), (False, 10)] * 2


def test_the_fused_plans_still_take_their_patterns():
    """The spiral pattern gets HiddenLayerPlan and the sine pattern RegressionPlan, in float32
    too (the fused plans are tried first)."""
    hidden = _book.build_model(fastnn, [fastnn.Layer_Dense(2, 64, dtype=np.float32), fastnn.Activation_ReLU(),
                                        fastnn.Layer_Dense(64, 3, dtype=np.float32), fastnn.Activation_Softmax()],
                               loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
                               accuracy=fastnn.Accuracy_Categorical())
    sine = _book.build_model(fastnn, [fastnn.Layer_Dense(1, 64, dtype=np.float32), fastnn.Activation_ReLU(),
                                      fastnn.Layer_Dense(64, 64, dtype=np.float32), fastnn.Activation_ReLU(),
                                      fastnn.Layer_Dense(64, 1, dtype=np.float32), fastnn.Activation_Linear()],
                             loss=fastnn.Loss_MeanSquaredError(), optimizer=fastnn.Optimizer_Adam(),
                             accuracy=fastnn.Accuracy_Regression())
    assert type(plan_of(hidden)) is _plan.HiddenLayerPlan
    assert type(plan_of(sine)) is _plan.RegressionPlan


def test_no_gemm_plan_without_avx512(monkeypatch):
    """On a CPU without the kernels (simulated: small_gemm_available() False, read at each
    compile) the model gets no plan; the fused plans do not depend on it."""
    monkeypatch.setattr(_plan._blas, "small_gemm_available", lambda: False)
    assert plan_of(network()) is None
    spiral = _book.build_model(fastnn, [fastnn.Layer_Dense(2, 64, dtype=np.float32), fastnn.Activation_ReLU(),
                                        fastnn.Layer_Dense(64, 3, dtype=np.float32), fastnn.Activation_Softmax()],
                               loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
                               accuracy=fastnn.Accuracy_Categorical())
    assert type(plan_of(spiral)) is _plan.HiddenLayerPlan


# --- the products ---------------------------------------------------------------------------------

# (n_samples, n_inputs, n_neurons): each n_samples of {1, 7, 8, 9, 300} (the kernels' 8-row tiles),
# each n_inputs of {1, 2, 255, 256, 257, 600} (the K blocks of 256; the bias in the GEMM up to 256
# inputs, added after it beyond) and each n_neurons of {1, 3, 31, 32, 33, 100} (32-column panels)
# at least twice, in different company.
SHAPES = [(1, 1, 1), (7, 2, 3), (8, 255, 31), (9, 256, 32), (300, 257, 33), (300, 600, 100), (1, 600, 33),
          (9, 257, 100), (7, 256, 1), (8, 1, 100), (300, 2, 31), (9, 600, 3), (300, 255, 32), (1, 256, 100),
          (8, 257, 1), (7, 600, 32), (300, 1, 3), (1, 255, 31)]


@needs_avx512
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_products_are_within_a_gemms_error_bound(shape):
    """With the switch on: output, dweights and dinputs within GEMM_BOUND of the exact products;
    dbiases (column sums in double, no GEMM) bit-identical to the BLAS path's."""
    n, k, m = shape
    rng = np.random.default_rng(n * 1_000_000 + k * 1000 + m)
    layer = dense_layer(rng, k, m)
    x = rng.standard_normal((n, k)).astype(np.float32)
    dvalues = rng.standard_normal((n, m)).astype(np.float32)
    with own_products():
        output, dweights, dbiases, dinputs = forward_backward(layer, x, dvalues)
    x64, w64, b64, dv64 = (a.astype(np.float64) for a in (x, layer.weights, layer.biases, dvalues))
    ax, aw, ab, adv = np.abs(x64), np.abs(w64), np.abs(b64), np.abs(dv64)
    assert_gemm_bound(output, x64 @ w64 + b64, ax @ aw + ab, k + 1, "output")
    assert_gemm_bound(dweights, x64.T @ dv64, ax.T @ adv, n, "dweights")
    assert_gemm_bound(dinputs, dv64 @ w64.T, adv @ aw.T, m, "dinputs")
    np.testing.assert_array_equal(dbiases, forward_backward(layer, x, dvalues)[2])


@needs_avx512
def test_the_bound_catches_one_missing_term():
    """GEMM_BOUND is tight enough to catch a wrong result: the exact product less one term of the
    second K block (the 257th input) breaks it, so the test above would fail on a kernel that
    dropped or double-counted a block."""
    rng = np.random.default_rng(5)
    n, k, m = 9, 257, 33
    layer = dense_layer(rng, k, m)
    x = rng.standard_normal((n, k)).astype(np.float32)
    with own_products():
        layer.forward(x)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, layer.weights, layer.biases))
    exact = x64 @ w64 + b64
    wrong = exact - x64[:, 256:] @ w64[256:, :]
    bound = SAFETY * (k + 1) * EPS * (np.abs(x64) @ np.abs(w64) + np.abs(b64))
    assert np.all(np.abs(layer.output - exact) <= bound)
    assert np.any(np.abs(layer.output - wrong) > bound)


@needs_avx512
@pytest.mark.parametrize("shape", [(300, 257, 100), (13, 600, 65), (9, 3, 33), (64, 40, 32)],
                         ids=lambda s: "x".join(map(str, s)))
def test_products_independent_of_the_thread_count(shape):
    """With the switch on and tiny products split too: output, dweights, dbiases and dinputs
    bit-identical at 1, 2, 3 and the automatic number of threads."""
    n, k, m = shape
    rng = np.random.default_rng(7)
    layer = dense_layer(rng, k, m)
    x = rng.standard_normal((n, k)).astype(np.float32)
    dvalues = rng.standard_normal((n, m)).astype(np.float32)

    def run():
        with own_products():
            return forward_backward(layer, x, dvalues)
    assert_identical(at_thread_counts([1, 2, 3, 0], run))


def test_the_switch_is_per_thread_and_off_by_default():
    """A thread's own_gemm(True) leaves the other threads' switches alone (a new thread starts
    with it off whatever the thread that started it set), and while another thread has it on, this
    thread's Dense forward is NumPy's product, bit for bit (shapes of at least 2 x 2: NumPy uses
    gemv for one row or one column)."""
    seen: dict[str, bool] = {}
    switched_on, release = threading.Event(), threading.Event()

    def other():
        seen["initial"] = _dense.own_gemm(True)
        seen["set"] = _dense.own_gemm(True)
        switched_on.set()
        release.wait(30)

    worker = threading.Thread(target=other)
    worker.start()
    try:
        assert switched_on.wait(30)
        assert _dense.own_gemm(False) is False
        rng = np.random.default_rng(3)
        for n, k, m in [(7, 257, 33), (64, 20, 32), (2, 2, 2)]:
            layer = dense_layer(rng, k, m)
            x = rng.standard_normal((n, k)).astype(np.float32)
            layer.forward(x)
            np.testing.assert_array_equal(layer.output, np.matmul(x, layer.weights) + layer.biases)
    finally:
        release.set()
        worker.join()
    assert seen == {"initial": False, "set": True}

    with own_products():   # and the other way round: this thread's True is not a new thread's
        worker = threading.Thread(target=lambda: seen.update(initial=_dense.own_gemm(False)))
        worker.start()
        worker.join()
        assert seen["initial"] is False
        assert _dense.own_gemm(True) is True


# --- Model.train -----------------------------------------------------------------------------------

@needs_avx512
def test_every_planned_step_runs_with_the_switch_on_and_train_restores_it():
    """Model.train on the GEMM plan: every step's forward and backward see the switch on; after
    train returns, it is as train found it (off, then on)."""
    X, y = data(100, 20, 5)
    for before in (False, True):
        model = network()
        states: list[bool] = []
        per_layer = model._gradients

        def spy(*args):
            states.append(_dense.own_gemm(True))   # the state during the step (left as it was)
            return per_layer(*args)
        model._gradients = spy       # what GemmPlan wraps
        _dense.own_gemm(before)
        model.train(X, y, epochs=2, batch_size=30, verbose="silent")     # 4 steps per epoch
        assert _dense.own_gemm(False) is before
        assert states == [True] * 8


@needs_avx512
@pytest.mark.parametrize("before", [False, True], ids=["off", "on"])
def test_a_raising_train_restores_the_switch(before):
    """A non-finite loss stops training before the update (as per layer), and the switch is as
    train found it."""
    X, y = data(50, 20, 5)
    X[3, 0] = np.inf
    model = network()
    assert isinstance(plan_of(model), _plan.GemmPlan)
    _dense.own_gemm(before)
    assert_a_non_finite_loss_stops_before_the_update(model, X, y)
    assert _dense.own_gemm(False) is before


@needs_avx512
def test_products_after_train_are_numpys_again():
    """After a planned train, a hand-written forward of each trained Dense layer is NumPy's
    `np.matmul(x, w) + b`, bit for bit."""
    X, y = data(200, 20, 5)
    model = network()
    model.train(X, y, epochs=2, batch_size=64, verbose="silent")
    x = X[:17]
    for layer in model.trainable_layers:
        layer.forward(x)
        np.testing.assert_array_equal(layer.output, np.matmul(x, layer.weights) + layer.biases)
        x = np.maximum(0, layer.output)


@needs_avx512
@pytest.mark.parametrize("before", [False, True], ids=["off", "on"])
def test_predict_and_evaluate_use_the_kernels_and_restore_the_switch(before):
    """Model.predict and Model.evaluate compute with the products train uses (fastnn's kernels
    for a GemmPlan model: predict's output is the forward pass on the kernels, bit for bit), and
    leave the switch as they found it."""
    X, y = data(90, 20, 5)
    model = network()
    for layer in model.trainable_layers:   # logits large enough that the products' last bits show
        layer.weights *= 30                # in predict's output (here, a third of it differs from BLAS's)
    with own_products():
        expected = model.forward(X, training=False).copy()
    _dense.own_gemm(before)
    np.testing.assert_array_equal(model.predict(X, batch_size=40), expected)
    assert _dense.own_gemm(before) is before
    model.evaluate(X, y, verbose="silent")
    assert _dense.own_gemm(False) is before


@pytest.mark.parametrize("n_inputs, dropout", [(20, 0.0), (20, 0.1), (300, 0.0), (300, 0.1)],
                         ids=["20", "20-dropout", "300", "300-dropout"])
def test_training_follows_numpys_products(n_inputs, dropout):
    """TRAIN_TOLERANCE: the planned run against the same run on NumPy's products (3 epochs of
    6 batches). Every product differs by float rounding only (GEMM_BOUND), so the gradients agree
    to about k * 2**-24 relative to their terms, and Adam turns them into steps of at most
    learning_rate each: the epoch losses agree to rtol 1e-4 and the weights (of size about 0.2)
    to atol 2e-4, ten times the largest difference seen. The runs need not be bit-identical (they
    are not, on AVX-512)."""
    X, y = data(350, n_inputs, 5)
    runs = []
    for numpy_products in (False, True):
        model = network(n_inputs=n_inputs, dropout=dropout)
        if _blas.small_gemm_available():
            assert isinstance(plan_of(model), _plan.GemmPlan)
        np.random.seed(3)
        with blas_products() if numpy_products else contextlib.nullcontext():
            history = model.train(X, y, epochs=3, batch_size=64, verbose="silent")
        runs.append((history.loss, [layer.weights.copy() for layer in model.trainable_layers]))
    (loss_a, weights_a), (loss_b, weights_b) = runs
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-4)
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-4)


def test_with_the_kernels_off_the_plan_changes_nothing():
    """With fastnn's kernels switched off (NumPy's products, as on a CPU without AVX-512), the
    run on the GEMM plan is bit-identical to the run with the plan switched off."""
    X, y = data(150, 20, 5)
    if _blas.small_gemm_available():
        assert isinstance(plan_of(network(dropout=0.1)), _plan.GemmPlan)
    with blas_products():
        runs = with_and_without_plan(lambda: network(dropout=0.1), X, y, epochs=3, batch_size=64)
    assert_same_runs(runs)


@needs_avx512
def test_the_layers_attributes_after_a_planned_train():
    """After a planned train every layer holds the last step's attributes, chained as the book
    chains them: each ReLU's output and dinputs exactly what it computes from its neighbours', the
    softmax's output that of its input, each Dense layer's gradients within GEMM_BOUND of the
    products of the inputs and dvalues it was left (no regulariser) and its dbiases the column
    sums of those dvalues; and close to what the per-layer path on NumPy's products leaves."""
    X, y = data(120, 20, 5)
    model = network()
    np.random.seed(3)
    model.train(X, y, epochs=2, verbose="silent")
    dense1, relu1, dense2, relu2, dense3, softmax = model.layers
    np.testing.assert_array_equal(dense1.inputs, X)
    assert relu1.inputs is dense1.output and dense2.inputs is relu1.output
    assert relu2.inputs is dense2.output and dense3.inputs is relu2.output and softmax.inputs is dense3.output
    for relu, after in ((relu1, dense2), (relu2, dense3)):
        np.testing.assert_array_equal(relu.output, np.maximum(0, relu.inputs))
        np.testing.assert_array_equal(relu.dinputs, np.where(relu.inputs <= 0, 0, after.dinputs))
    check = fastnn.Activation_Softmax()
    check.forward(dense3.output)
    np.testing.assert_array_equal(softmax.output, check.output)
    for layer, dvalues in ((dense1, relu1.dinputs), (dense2, relu2.dinputs), (dense3, softmax.dinputs)):
        x64, dv64 = layer.inputs.astype(np.float64), dvalues.astype(np.float64)
        assert_gemm_bound(layer.dweights, x64.T @ dv64, np.abs(x64).T @ np.abs(dv64), len(x64), "dweights")
        np.testing.assert_allclose(layer.dbiases, dv64.sum(axis=0, keepdims=True), rtol=1e-6, atol=1e-12)
    reference = network()
    np.random.seed(3)
    with blas_products():
        reference.train(X, y, epochs=2, verbose="silent")
    for a, b in zip(model.layers, reference.layers, strict=True):
        for name in ("output", "dinputs"):
            if name in b.__dict__:
                np.testing.assert_allclose(a.__dict__[name], b.__dict__[name], rtol=1e-3, atol=1e-6,
                                           err_msg=f"{a!r}.{name}")


@needs_avx512
def test_copies_and_pickles_after_the_kernels_hold_the_layers_state_only(tmp_path):
    """A backward on the kernels leaves the layer the attributes the BLAS path leaves (no scratch
    such as a transposed copy of the weights in its __dict__; any the layer declares in _SCRATCH
    stays out of copies); copies, deep copies, pickles and a model saved as a pickle hold exactly
    the layer's state, and compute the same bits on the kernels."""
    rng = np.random.default_rng(11)
    layer = dense_layer(rng, 20, 40)
    x = rng.standard_normal((16, 20)).astype(np.float32)
    dvalues = rng.standard_normal((16, 40)).astype(np.float32)
    blas = copy.deepcopy(layer)
    forward_backward(blas, x, dvalues)
    with own_products():
        expected = forward_backward(layer, x, dvalues)
    scratch = set(getattr(fastnn.Layer_Dense, "_SCRATCH", ()))
    assert set(layer.__dict__) - scratch == set(blas.__dict__)
    for other in (copy.copy(layer), copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert set(other.__dict__) == set(blas.__dict__) and "_weights_t" not in other.__dict__
        np.testing.assert_array_equal(other.weights, layer.weights)
        with own_products():
            got = forward_backward(other, x, dvalues)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)

    model = network()
    X, y = data(60, 20, 5)
    model.train(X, y, epochs=1, verbose="silent")
    path = tmp_path / "model.pkl"
    model.save(path, format="pickle")
    loaded = fastnn.Model.load(path, allow_pickle=True)
    for kept in (copy.deepcopy(model), loaded):
        assert not any(scratch & set(layer.__dict__) or "_weights_t" in layer.__dict__ for layer in kept.layers)
        np.testing.assert_array_equal(kept.predict(X), model.predict(X))


@needs_avx512
def test_a_planned_step_allocates_no_array():
    """After warm-up, a step on the GEMM plan (the per-layer forward and backward on the kernels,
    the loss and accuracy sums, Adam) allocates no array."""
    model = network(n_inputs=64, hidden=128)
    X, y = data(512, 64, 5)
    plan = plan_of(model)
    assert isinstance(plan, _plan.GemmPlan)
    step = plan.train_step(last_epoch=10 ** 9, last_step=0)
    model.loss.new_pass()
    model.accuracy.new_pass()
    assert_allocates_nothing(lambda i: step(X, y, 1, i))
