"""Finite-difference gradient checks of the compiled Dense, activations, Dropout and losses, in float64.

Each backward is compared with central differences of a scalar objective: for layers and
activations f = sum(output * G) with a fixed random G (so backward(G) must return df/dinputs),
for losses the mean loss that `calculate` returns (so backward(dvalues, y) must return
d mean / d predictions), plus the regularisation loss for Dense with L1/L2.

Tolerance: tests/_numeric.py (check_gradient); the points are chosen away from kinks (ReLU and
MAE at 0, L1 at 0, the loss clips at 1e-7 and 1 - 1e-7) so the function is smooth within +-h.
Every declared class's backward is also checked on its case's data by
tests/contract/test_gradients.py; here: edge shapes, label forms, regularisers, a whole chain.
"""
import numpy as np
import pytest

import fastnn

from cases import cases

from _numeric import check_gradient as check, numerical_gradient

F64 = np.float64


def away_from(x, points, margin=1e-3):
    """Move entries of x that lie within `margin` of any of `points` by 0.1."""
    for p in points:
        close = np.abs(x - p) < margin
        x[close] = p + 0.1
    return x


@pytest.fixture
def rng64():
    return np.random.default_rng(2024)


# ---------------------------------------------------------------------------------------------
# Layer_Dense


REGULARIZERS = [
    {},
    dict(weight_regularizer_l1=0.01),
    dict(weight_regularizer_l2=0.02),
    dict(bias_regularizer_l1=0.03),
    dict(bias_regularizer_l2=0.04),
    dict(weight_regularizer_l1=0.01, weight_regularizer_l2=0.02, bias_regularizer_l1=0.03, bias_regularizer_l2=0.04),
]


@pytest.mark.parametrize("regularizers", REGULARIZERS, ids=lambda r: "+".join(sorted(r)) or "plain")
@pytest.mark.parametrize("shape", [(5, 4, 3), (1, 3, 1), (3, 1, 2)])
def test_dense(rng64, shape, regularizers):
    n, n_in, n_out = shape
    layer = fastnn.Layer_Dense(n_in, n_out, **regularizers, dtype=F64)
    # Weights and biases away from 0 (L1's kink) by more than h.
    layer.weights[...] = away_from(rng64.standard_normal((n_in, n_out)), [0.0])
    layer.biases[...] = away_from(rng64.standard_normal((1, n_out)), [0.0])
    x = rng64.standard_normal((n, n_in))
    G = rng64.standard_normal((n, n_out))
    loss = fastnn.Loss()

    def f():
        layer.forward(x)
        return np.sum(layer.output * G) + loss.regularization_loss(layer)

    f()
    layer.backward(G)
    dweights, dbiases, dinputs = layer.dweights.copy(), layer.dbiases.copy(), layer.dinputs.copy()
    check(dinputs, f, x, "dinputs")
    check(dweights, f, layer.weights, "dweights")
    check(dbiases, f, layer.biases, "dbiases")


# ---------------------------------------------------------------------------------------------
# Activations


# Layers whose output has their inputs' shape and that take no constructor parameters.
ACTIVATIONS = [case.name for case in cases("layer") if case.spec.keeps_features and not case.spec.params]


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(4, 5), (1, 3), (6, 1)])
def test_activation(rng64, name, shape):
    x = away_from(rng64.standard_normal(shape) * 2, [0.0])  # ReLU's kink at 0
    G = rng64.standard_normal(shape)
    act = getattr(fastnn, name)()

    def f():
        act.forward(x)
        return np.sum(act.output * G)

    f()
    act.backward(G)
    if not np.any(numerical_gradient(f, x)):
        # A constant output (Softmax of one class is 1): the gradient is exactly 0.
        np.testing.assert_array_equal(act.dinputs, 0)
        return
    check(act.dinputs.copy(), f, x, name)


def test_sigmoid_saturated_region(rng64):
    """Large |x|: the overflow-free sigmoid keeps its tiny but correct gradient."""
    x = np.array([[-30.0, -12.0, 12.0, 25.0]])
    act = fastnn.Activation_Sigmoid()
    G = np.ones_like(x)
    act.forward(x)
    act.backward(G)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(act.dinputs, s * (1 - s), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Dropout with a fixed mask (the same seed before every forward)


@pytest.mark.parametrize("mode", ["fast", "book"])
def test_dropout_with_a_fixed_mask(rng64, mode):
    x = rng64.standard_normal((6, 7))
    G = rng64.standard_normal((6, 7))
    d = fastnn.Layer_Dropout(0.3, mode=mode)

    def f():
        np.random.seed(5)
        d.forward(x)
        return np.sum(d.output * G)

    f()
    assert 0 < np.count_nonzero(d.binary_mask) < x.size
    d.backward(G)
    check(d.dinputs.copy(), f, x, mode)


# ---------------------------------------------------------------------------------------------
# Losses: the mean loss and its gradient


def predictions(rng, shape, low=0.05, high=0.95):
    return rng.uniform(low, high, shape)  # inside the clip range by far more than h


@pytest.mark.parametrize("labels", ["sparse", "onehot"])
@pytest.mark.parametrize("shape", [(6, 4), (1, 3), (5, 1)])
def test_categorical_crossentropy(rng64, shape, labels):
    n, c = shape
    p = predictions(rng64, shape)
    y = rng64.integers(0, c, n)
    if labels == "onehot":
        y = np.eye(c)[y]
    loss = fastnn.Loss_CategoricalCrossentropy()

    def f():
        return loss.calculate(p, y)

    loss.backward(p, y)
    check(loss.dinputs.copy(), f, p, labels)


@pytest.mark.parametrize("labels", ["uint8", "int64", "onehot"])
@pytest.mark.parametrize("shape", [(6, 4), (1, 3), (7, 2)])
def test_softmax_crossentropy_combined(rng64, shape, labels):
    n, c = shape
    z = rng64.standard_normal(shape) * 2
    y = rng64.integers(0, c, n)
    y = np.eye(c)[y] if labels == "onehot" else y.astype(labels)
    combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()

    def f():
        return combined.forward(z, y)  # Ch9-17: returns the mean loss

    f()
    combined.backward(combined.output.copy(), y)
    check(combined.dinputs.copy(), f, z, labels)


@pytest.mark.parametrize("shape", [(6, 3), (4, 1), (1, 2)])
@pytest.mark.parametrize("soft", [False, True], ids=["binary", "soft"])
def test_binary_crossentropy(rng64, shape, soft):
    p = predictions(rng64, shape)
    y = rng64.uniform(0, 1, shape) if soft else rng64.integers(0, 2, shape).astype(F64)
    loss = fastnn.Loss_BinaryCrossentropy()

    def f():
        return loss.calculate(p, y)

    loss.backward(p, y)
    check(loss.dinputs.copy(), f, p, "BCE")


@pytest.mark.parametrize("name", [case.name for case in cases("loss") if case.targets == "real"])
@pytest.mark.parametrize("shape", [(6, 3), (5, 1), (1, 4)])
def test_regression_losses(rng64, name, shape):
    y = rng64.standard_normal(shape)
    p = y + away_from(rng64.standard_normal(shape), [0.0])  # MAE's kink at p == y
    loss = getattr(fastnn, name)()

    def f():
        return loss.calculate(p, y)

    loss.backward(p, y)
    # For MAE this pins the fixed sign: the book's +sign(y - p) would fail here.
    check(loss.dinputs.copy(), f, p, name)


# ---------------------------------------------------------------------------------------------
# A whole network: backpropagation through the chain


def test_network_chain(rng64):
    np.random.seed(3)
    dense1 = fastnn.Layer_Dense(3, 8, weight_regularizer_l2=1e-2, bias_regularizer_l1=1e-2, dtype=F64)
    relu = fastnn.Activation_ReLU()
    drop = fastnn.Layer_Dropout(0.25)
    dense2 = fastnn.Layer_Dense(8, 4, weight_regularizer_l1=1e-2, dtype=F64)
    head = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    dense1.weights *= 100
    dense2.weights *= 30
    dense1.weights[...] = away_from(dense1.weights, [0.0])
    dense2.weights[...] = away_from(dense2.weights, [0.0])
    dense1.biases[...] = away_from(rng64.standard_normal((1, 8)), [0.0])
    x = rng64.standard_normal((10, 3))
    y = rng64.integers(0, 4, 10)

    def f():
        np.random.seed(9)
        dense1.forward(x)
        relu.forward(dense1.output)
        drop.forward(relu.output)
        dense2.forward(drop.output)
        data_loss = head.forward(dense2.output, y)
        return data_loss + head.loss.regularization_loss(dense1) + head.loss.regularization_loss(dense2)

    f()
    # ReLU inputs away from 0 at this point, or the difference would cross a kink; and no
    # probability near the loss's clip bounds, where the loss is flat but the fused gradient
    # (the gradient of the unclipped loss, as the book) is not.
    assert np.min(np.abs(dense1.output)) > 1e-3
    assert 1e-5 < head.output.min() and head.output.max() < 1 - 1e-5
    head.backward(head.output, y)
    dense2.backward(head.dinputs)
    drop.backward(dense2.dinputs)
    relu.backward(drop.dinputs)
    dense1.backward(relu.dinputs)
    check(dense1.dweights.copy(), f, dense1.weights, "dense1.dweights")
    check(dense1.dbiases.copy(), f, dense1.biases, "dense1.dbiases")
    check(dense2.dweights.copy(), f, dense2.weights, "dense2.dweights")
    check(dense1.dinputs.copy(), f, x, "dinputs")
