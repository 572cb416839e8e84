"""Every backward of fastnn.reference against central finite differences, in float64.

Each check builds a scalar objective ``L`` whose gradient the backward claims to compute: for
layers and activations ``L = sum(output * G)`` with a fixed random ``G`` (so the incoming gradient
is ``G``), for losses ``L = mean(forward(y_pred, y))`` (what ``Loss.calculate`` returns).
Points are chosen away from kinks (ReLU at 0, |.| at 0, the clipping bounds).
"""
import numpy as np
import pytest

import fastnn.reference as ref

import _book
from _numeric import numerical_gradient


def assert_gradient(analytic, numeric):
    assert analytic.shape == numeric.shape
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def check_backward(layer, inputs, G, parameters=(), penalty=lambda: 0.0):
    """``L = sum(layer.output * G) + penalty()``: the layer's dinputs (and d<name> of each of
    `parameters`) after backward(G) against the finite differences of L."""
    def objective():
        layer.forward(inputs)
        return np.sum(layer.output * G) + penalty()

    objective()
    layer.backward(G)
    for name in parameters:
        assert_gradient(getattr(layer, "d" + name), numerical_gradient(objective, getattr(layer, name)))
    assert_gradient(layer.dinputs, numerical_gradient(objective, inputs))


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def away_from_zero(rng, shape, margin=0.1):
    values = rng.uniform(margin, 1.5, size=shape)
    return values * rng.choice([-1.0, 1.0], size=shape)


# --- Layers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("regularizers", [
    dict(),
    dict(weight_regularizer_l1=0.03, bias_regularizer_l1=0.02),
    dict(weight_regularizer_l2=0.05, bias_regularizer_l2=0.04),
    dict(weight_regularizer_l1=0.03, weight_regularizer_l2=0.05,
         bias_regularizer_l1=0.02, bias_regularizer_l2=0.04),
], ids=["plain", "l1", "l2", "l1+l2"])
def test_dense_gradients(rng, regularizers):
    layer = ref.Layer_Dense(4, 3, dtype=np.float64, **regularizers)
    layer.weights = away_from_zero(rng, (4, 3), margin=0.05)
    layer.biases = away_from_zero(rng, (1, 3), margin=0.05)  # L1 is not differentiable at 0
    inputs = rng.standard_normal((5, 4))
    G = rng.standard_normal((5, 3))
    loss = ref.Loss()
    check_backward(layer, inputs, G, ("weights", "biases"), lambda: loss.regularization_loss(layer))


def test_dropout_gradient_with_a_fixed_mask(rng):
    layer = ref.Layer_Dropout(0.3)
    inputs = rng.standard_normal((6, 5))
    G = rng.standard_normal((6, 5))
    np.random.seed(1)
    layer.forward(inputs, training=True)
    mask = layer.binary_mask
    layer.backward(G)

    def objective():
        return np.sum(inputs * mask * G)

    assert_gradient(layer.dinputs, numerical_gradient(objective, inputs))


# --- Activations -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [ref.Activation_ReLU, ref.Activation_Sigmoid,
                                 ref.Activation_Softmax, ref.Activation_Linear])
def test_activation_gradients(rng, cls):
    inputs = away_from_zero(rng, (6, 4))
    check_backward(cls(), inputs, rng.standard_normal((6, 4)))


def test_softmax_backward_is_the_jacobian_product(rng):
    softmax = ref.Activation_Softmax()
    softmax.forward(rng.standard_normal((5, 4)))
    dvalues = rng.standard_normal((5, 4))
    softmax.backward(dvalues)
    s = softmax.output
    # J_i = diag(s_i) - s_i s_i^T, so J_i @ d_i = s_i * (d_i - <s_i, d_i>).
    expected = s * (dvalues - np.sum(s * dvalues, axis=1, keepdims=True))
    np.testing.assert_allclose(softmax.dinputs, expected, rtol=1e-12, atol=1e-15)


# --- Losses ------------------------------------------------------------------------------------

def _probabilities(rng, shape):
    p = rng.uniform(0.2, 1.0, size=shape)
    return p / np.sum(p, axis=1, keepdims=True)


def _loss_case(name, rng):
    if name == "cce-sparse":
        return ref.Loss_CategoricalCrossentropy(), _probabilities(rng, (6, 4)), rng.integers(0, 4, 6)
    if name == "cce-onehot":
        return ref.Loss_CategoricalCrossentropy(), _probabilities(rng, (6, 4)), np.eye(4)[rng.integers(0, 4, 6)]
    if name == "bce":
        return ref.Loss_BinaryCrossentropy(), rng.uniform(0.05, 0.95, (6, 3)), rng.integers(0, 2, (6, 3)).astype(float)
    if name == "mse":
        return ref.Loss_MeanSquaredError(), rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    if name == "mae":
        y_pred = rng.standard_normal((6, 3))
        return ref.Loss_MeanAbsoluteError(), y_pred, y_pred + away_from_zero(rng, (6, 3))
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["cce-sparse", "cce-onehot", "bce", "mse", "mae"])
def test_loss_gradients(rng, name):
    loss, y_pred, y_true = _loss_case(name, rng)

    def objective():
        return np.mean(loss.forward(y_pred, y_true))

    loss.backward(y_pred, y_true)
    assert_gradient(loss.dinputs, numerical_gradient(objective, y_pred))


@pytest.mark.parametrize("labels", ["sparse", "onehot"])
def test_combined_softmax_cce_gradient(rng, labels):
    logits = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    y_true = y if labels == "sparse" else np.eye(4)[y]
    combined = ref.Activation_Softmax_Loss_CategoricalCrossentropy()

    def objective():
        return combined.forward(logits, y_true)  # the Ch9-17 forward returns the mean loss

    objective()
    combined.backward(combined.output, y_true)
    assert_gradient(combined.dinputs, numerical_gradient(objective, logits))

    # The same as Softmax.backward applied to the CCE gradient (what the fused path replaces).
    softmax = ref.Activation_Softmax()
    softmax.forward(logits)
    cce = ref.Loss_CategoricalCrossentropy()
    cce.backward(softmax.output, y_true)
    softmax.backward(cce.dinputs)
    np.testing.assert_allclose(combined.dinputs, softmax.dinputs, rtol=1e-10, atol=1e-14)


def test_whole_network_gradient_through_model_backward(rng):
    """Model.backward chains dinputs through every layer: check dweights of the first layer."""
    layers = [ref.Layer_Dense(3, 5, weight_regularizer_l2=0.01, dtype=np.float64), ref.Activation_Sigmoid(),
              ref.Layer_Dense(5, 4, dtype=np.float64), ref.Activation_Softmax()]
    model = _book.build_model(ref, layers, loss=ref.Loss_CategoricalCrossentropy(), accuracy=ref.Accuracy_Categorical())
    first = model.layers[0]
    first.weights = rng.standard_normal((3, 5))
    X = rng.standard_normal((7, 3))
    y = rng.integers(0, 4, 7)

    def objective():
        output = model.forward(X, training=True)
        data_loss, regularization_loss = model.loss.calculate(output, y, include_regularization=True)
        return data_loss + regularization_loss

    output = model.forward(X, training=True)
    model.backward(output, y)
    assert_gradient(first.dweights, numerical_gradient(objective, first.weights))
