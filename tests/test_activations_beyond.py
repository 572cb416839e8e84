"""Activation_LeakyReLU and Activation_GELU beyond what the contract suite checks of every class:
the rule at exactly 0 and for NaN (the contract's inputs keep away from the kink), the choice of
formula, and the state a user may break by hand after construction."""
import math

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

from _state import assert_refused_and_unchanged


def test_leaky_relu_at_zero_and_nan_is_the_references(dtype):
    """x = 0 (and -0.0) takes the slope branch: output alpha * 0, gradient alpha * dvalues;
    NaN stays NaN forward and takes the slope branch backward, as PyTorch's leaky_relu."""
    x = np.array([[0.0, -0.0, np.nan, 2.0, -2.0]], dtype)
    d = np.array([[1.0, -3.0, 5.0, 7.0, 11.0]], dtype)
    fast, slow = fastnn.Activation_LeakyReLU(0.25), ref.Activation_LeakyReLU(0.25)
    for layer in (fast, slow):
        layer.forward(x)
        layer.backward(d)
    np.testing.assert_array_equal(fast.output, slow.output)
    np.testing.assert_array_equal(fast.dinputs, slow.dinputs)
    np.testing.assert_array_equal(fast.dinputs, np.array([[0.25, -0.75, 1.25, 7, 2.75]], dtype))
    assert np.signbit(fast.output[0, 1]) and np.isnan(fast.output[0, 2])


def test_leaky_relu_slope_is_rounded_to_the_data_dtype():
    x = np.full((1, 3), -1.0, np.float32)
    layer = fastnn.Activation_LeakyReLU(0.1)
    layer.forward(x)
    assert layer.output[0, 0] == -np.float32(0.1)
    layer.forward(x.astype(np.float64))
    assert layer.output[0, 0] == -0.1


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_formula_is_the_chosen_one(approximate):
    """Against the two forms written with Python's math module, point by point."""
    points = [-3.0, -1.0, 0.0, 0.5, 2.0]
    erf_form = [0.5 * x * (1 + math.erf(x / math.sqrt(2))) for x in points]
    tanh_form = [0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))) for x in points]
    layer = fastnn.Activation_GELU(approximate)
    layer.forward(np.array([points]))
    want, other = (erf_form, tanh_form) if approximate == "none" else (tanh_form, erf_form)
    np.testing.assert_allclose(layer.output[0], want, rtol=1e-14, atol=1e-16)
    assert np.max(np.abs(layer.output[0] - other)) > 1e-4


def test_gelu_approximate_changed_by_hand_is_refused():
    def build():
        layer = fastnn.Activation_GELU()
        layer.forward(np.ones((2, 3), np.float32))
        layer.approximate = "sigmoid"
        return layer, lambda: layer.forward(np.zeros((2, 3), np.float32))
    assert_refused_and_unchanged(build, ValueError, r"Activation_GELU: approximate must be 'none' or 'tanh', "
                                 r"got 'sigmoid' \(changed after construction\)", ".")


def test_leaky_relu_alpha_changed_by_hand_is_refused_before_any_write():
    def build():
        layer = fastnn.Activation_LeakyReLU()
        layer.forward(np.ones((2, 3), np.float32))
        layer.alpha = "steep"
        return layer, lambda: layer.forward(np.zeros((2, 3), np.float32))
    assert_refused_and_unchanged(build, TypeError, "real number", ".")


def test_reprs_name_the_parameters():
    assert repr(fastnn.Activation_LeakyReLU(0.2)) == "Activation_LeakyReLU(alpha=0.2)"
    assert repr(fastnn.Activation_GELU("tanh")) == "Activation_GELU(approximate='tanh')"
