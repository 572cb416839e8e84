"""Activation_LeakyReLU and Activation_GELU against PyTorch's leaky_relu and gelu and their autograd
gradients, in float32 and float64 (skipped when torch is not installed).

LeakyReLU is the same IEEE operations as PyTorch's: bit-identical, NaN and the point 0 included.
GELU: both compute the same formula, with different erf/tanh/exp implementations, so results
agree to `GELU_BOUND` epsilons of the largest value (the tanh form's gradient rounds
``1 - tanh(u)**2`` where tanh(u) is near 1, so it gets the wider bound)."""
import numpy as np
import pytest

import fastnn

torch = pytest.importorskip("torch")
F = torch.nn.functional

GELU_BOUND = {"output": 4, "dinputs": 32}


def points(dtype, rng, n=20000):
    x = (rng.standard_normal(n) * 4).astype(dtype)
    x[:8] = [0, -0.0, 30, -30, 1e-30, -1e-30, 9, -9]
    return x.reshape(40, -1)


def with_torch(activation, x, g, function):
    """(fastnn output, dinputs), (torch output, x.grad) for the gradient g."""
    activation.forward(x)
    activation.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = function(xt)
    yt.backward(torch.tensor(g))
    return (activation.output, activation.dinputs), (yt.detach().numpy(), xt.grad.numpy())


@pytest.mark.parametrize("alpha", [0.01, 0.2, 0.0, 1.0])
def test_leaky_relu_is_bit_identical_to_torch(dtype, rng, alpha):
    x = points(dtype, rng)
    x[0, 8] = np.nan
    g = rng.standard_normal(x.shape).astype(dtype)
    got, want = with_torch(fastnn.Activation_LeakyReLU(alpha), x, g, lambda t: F.leaky_relu(t, alpha))
    for a, b, name in zip(got, want, ("output", "dinputs")):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(dtype, rng, approximate):
    x = points(dtype, rng)
    g = rng.standard_normal(x.shape).astype(dtype)
    got, want = with_torch(fastnn.Activation_GELU(approximate), x, g, lambda t: F.gelu(t, approximate=approximate))
    eps = np.finfo(dtype).eps
    for a, b, name in zip(got, want, ("output", "dinputs")):
        assert a.dtype == b.dtype == np.dtype(dtype)
        a, b = a.astype(np.float64), b.astype(np.float64)
        bound = GELU_BOUND[name] * eps * (np.abs(b) + np.abs(b).max())
        assert np.all(np.abs(a - b) <= bound), f"{name}: {np.max(np.abs(a - b) / bound):.3g} of the bound"


def test_gelu_forms_differ_where_torch_says_they_do(rng):
    """A check of the check: the exact form and the tanh form are different functions."""
    x = points(np.float64, rng)
    exact, approximated = fastnn.Activation_GELU(), fastnn.Activation_GELU("tanh")
    exact.forward(x)
    approximated.forward(x)
    difference = np.max(np.abs(exact.output - approximated.output))
    want = torch.max(torch.abs(F.gelu(torch.tensor(x)) - F.gelu(torch.tensor(x), approximate="tanh"))).item()
    assert difference > 1e-4 and difference == pytest.approx(want, rel=1e-6)
