"""Conv2D and MaxPool2D backward against central finite differences over geometries, and a small
CNN end to end, in float64, for the compiled classes and for fastnn.reference (every declared
class, Flatten included, is also checked on its case's data by tests/contract/test_gradients.py).

The objective is ``L = sum(output * G)`` with a fixed random ``G`` (so the incoming gradient is
``G``), plus the layer's regularisation loss where it has one.
"""
import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

from _numeric import numerical_gradient


def assert_gradient(analytic, numeric):
    assert analytic.shape == numeric.shape
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


@pytest.fixture
def rng():
    return np.random.default_rng(20240609)


@pytest.fixture(params=["fastnn", "reference"])
def nn(request):
    return fastnn if request.param == "fastnn" else ref


@pytest.mark.parametrize("geometry", [
    (2, 3, 3, 1, 1, 5, 6),
    (3, 2, 3, 2, 0, 7, 6),
    (1, 2, 5, 3, 2, 8, 7),
    (2, 2, 1, 1, 0, 4, 3),
    (2, 2, 2, 2, 1, 5, 5),
], ids=lambda g: "c{}o{}k{}s{}p{}_{}x{}".format(*g))
@pytest.mark.parametrize("regularized", [False, True], ids=["plain", "l2"])
def test_conv2d_gradients(nn, rng, geometry, regularized):
    c, o, k, s, p, h, w = geometry
    kwargs = dict(weight_regularizer_l2=0.05, bias_regularizer_l2=0.04) if regularized else {}
    layer = nn.Layer_Conv2D(c, o, k, stride=s, padding=p, dtype=np.float64, **kwargs)
    layer.biases = rng.standard_normal(o)
    inputs = rng.standard_normal((2, c, h, w))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    G = rng.standard_normal((2, o, oh, ow))
    loss = nn.Loss()

    def objective():
        layer.forward(inputs)
        return float(np.sum(layer.output * G)) + float(loss.regularization_loss(layer))

    objective()
    layer.backward(G)
    dinputs, dweights, dbiases = layer.dinputs.copy(), layer.dweights.copy(), layer.dbiases.copy()
    assert_gradient(dinputs, numerical_gradient(objective, inputs))
    assert_gradient(dweights, numerical_gradient(objective, layer.weights))
    assert_gradient(dbiases, numerical_gradient(objective, layer.biases))


@pytest.mark.parametrize("pool_size, stride", [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_maxpool2d_gradients(nn, rng, pool_size, stride):
    # distinct values at least 0.01 apart: the maximum of every window is stable under +-H
    inputs = rng.permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) * 0.01
    layer = nn.Layer_MaxPool2D(pool_size, stride)
    layer.forward(inputs)
    G = rng.standard_normal(layer.output.shape)

    def objective():
        layer.forward(inputs)
        return float(np.sum(layer.output * G))

    objective()
    layer.backward(G)
    dinputs = layer.dinputs.copy()
    assert_gradient(dinputs, numerical_gradient(objective, inputs))


def test_small_cnn_gradients_end_to_end(nn, rng):
    """Conv -> ReLU -> MaxPool -> Flatten -> Dense -> softmax cross-entropy: the whole chain's
    input gradient and first-layer weight gradient against finite differences."""
    np.random.seed(5)
    conv = nn.Layer_Conv2D(2, 3, 3, padding=1, dtype=np.float64, weight_regularizer_l2=0.01)
    relu = nn.Activation_ReLU()
    pool = nn.Layer_MaxPool2D(2)
    flat = nn.Layer_Flatten()
    dense = nn.Layer_Dense(3 * 3 * 3, 4, dtype=np.float64)
    dense.weights *= 10
    head = nn.Activation_Softmax_Loss_CategoricalCrossentropy()
    loss = nn.Loss()
    conv.biases = rng.uniform(0.5, 1.0, size=3)  # keeps the ReLU inputs away from 0
    inputs = rng.permutation(4 * 2 * 6 * 6).reshape(4, 2, 6, 6) * 0.01
    y = np.array([0, 3, 1, 2])

    def objective():
        conv.forward(inputs)
        relu.forward(conv.output)
        pool.forward(relu.output)
        flat.forward(pool.output)
        dense.forward(flat.output)
        return float(head.forward(dense.output, y)) + float(loss.regularization_loss(conv))

    objective()
    # the loss clips probabilities to [1e-7, 1 - 1e-7]: stay clear of that, or the finite
    # differences see a flat loss where the (unclipped) analytic gradient is not zero
    true_class = head.output[np.arange(4), y]
    assert np.all((true_class > 1e-4) & (true_class < 1 - 1e-4))
    head.backward(head.output, y)
    dense.backward(head.dinputs)
    flat.backward(dense.dinputs)
    pool.backward(flat.dinputs)
    relu.backward(pool.dinputs)
    conv.backward(relu.dinputs)
    dinputs, dweights = conv.dinputs.copy(), conv.dweights.copy()
    assert_gradient(dinputs, numerical_gradient(objective, inputs))
    assert_gradient(dweights, numerical_gradient(objective, conv.weights))
