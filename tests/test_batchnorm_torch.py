"""Layer_BatchNorm against torch.nn.BatchNorm1d / BatchNorm2d (skipped when torch is not
installed): outputs and the three gradients in training and in inference mode, and the running
statistics over several training steps, for (N, F) and NCHW inputs in float32 and float64.

Tolerance: |fastnn - torch| <= TOL[dtype] * (|torch| + max |torch|). fastnn computes every
statistic and element in float64 and rounds once; torch computes the statistics in float64 and
the elements in the dtype, so float32 results differ by a few float32 roundings."""
import numpy as np
import pytest

import fastnn

torch = pytest.importorskip("torch")

TOL = {np.dtype(np.float32): 4 * np.finfo(np.float32).eps, np.dtype(np.float64): 16 * np.finfo(np.float64).eps}


def assert_near(got, want, dtype, what):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape and got.dtype == want.dtype == dtype, what
    a, b = got.astype(np.float64), want.astype(np.float64)
    bound = TOL[dtype] * (np.abs(b) + np.abs(b).max())
    assert np.all(np.abs(a - b) <= bound), f"{what}: {np.max(np.abs(a - b) / bound):.3g} of the bound"


def twins(dtype, shape, rng, momentum=0.1, epsilon=1e-5):
    """(fastnn layer, torch module) with the same random scale and shift."""
    features = shape[1]
    layer = fastnn.Layer_BatchNorm(features, momentum=momentum, epsilon=epsilon, dtype=dtype)
    module = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        features, eps=epsilon, momentum=momentum, dtype=torch.float32 if dtype == np.float32 else torch.float64)
    layer.weights[...] = rng.uniform(0.5, 1.5, features)
    layer.biases[...] = rng.standard_normal(features)
    with torch.no_grad():
        module.weight.copy_(torch.tensor(layer.weights))
        module.bias.copy_(torch.tensor(layer.biases))
    return layer, module


SHAPES = [(16, 5), (3, 4, 6, 5), (1, 3, 4, 4), (7, 2, 1, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_training_steps_match_torch(dtype, rng, shape):
    layer, module = twins(dtype, shape, rng, momentum=0.2, epsilon=1e-3)
    for i in range(3):
        x = (rng.standard_normal(shape) * 3 + i).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        module.train(True)
        module.zero_grad()
        xt = torch.tensor(x, requires_grad=True)
        yt = module(xt)
        yt.backward(torch.tensor(g))
        layer.forward(x)
        layer.backward(g)
        assert_near(layer.output, yt, dtype, "output")
        assert_near(layer.dinputs, xt.grad, dtype, "dinputs")
        assert_near(layer.dweights, module.weight.grad, dtype, "dweights")
        assert_near(layer.dbiases, module.bias.grad, dtype, "dbiases")
        assert_near(layer.running_mean, module.running_mean, dtype, f"running_mean after step {i}")
        assert_near(layer.running_var, module.running_var, dtype, f"running_var after step {i}")


@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: "x".join(map(str, s)))
def test_inference_matches_torch_eval(dtype, rng, shape):
    """After training steps: the running statistics normalise, and backward is the affine map's."""
    layer, module = twins(dtype, shape, rng)
    for _ in range(4):
        x = (rng.standard_normal(shape) * 2 - 1).astype(dtype)
        module.train(True)
        module(torch.tensor(x))
        layer.forward(x)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    module.eval()
    module.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(g))
    layer.forward(x, training=False)
    layer.backward(g)
    assert_near(layer.output, yt, dtype, "output")
    assert_near(layer.dinputs, xt.grad, dtype, "dinputs")
    assert_near(layer.dweights, module.weight.grad, dtype, "dweights")
    assert_near(layer.dbiases, module.bias.grad, dtype, "dbiases")
    assert_near(layer.running_mean, module.running_mean, dtype, "running_mean unchanged by inference")


def test_parameters_move_between_torch_and_fastnn(rng):
    """weight, bias, running_mean and running_var drop in as they are: (F,) arrays, as torch's."""
    module = torch.nn.BatchNorm2d(3)
    module.train(True)
    module(torch.randn(4, 3, 5, 5) * 2 + 1)
    with torch.no_grad():
        module.weight.uniform_(0.5, 2.0)
    layer = fastnn.Layer_BatchNorm(3)
    layer.set_parameters(module.weight.detach().numpy(), module.bias.detach().numpy())
    layer.running_mean[...] = module.running_mean.numpy()
    layer.running_var[...] = module.running_var.numpy()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    layer.forward(x, training=False)
    module.eval()
    assert_near(layer.output, module(torch.tensor(x)), np.dtype(np.float32), "output")
