"""Layer_Conv2D and Layer_MaxPool2D against PyTorch's conv2d / max_pool2d and their autograd
gradients (skipped when torch is not installed)."""
import numpy as np
import pytest

import fastnn

torch = pytest.importorskip("torch")
F = torch.nn.functional


def tolerance(dtype, scale):
    tol = 1e-5 if dtype == np.float32 else 1e-12
    return dict(rtol=tol, atol=tol * max(scale, 1.0))


@pytest.mark.parametrize("geometry", [
    (3, 8, 3, 1, 1, 12, 12, 4),
    (1, 6, 5, 1, 2, 28, 28, 2),
    (4, 5, 3, 2, 0, 11, 9, 3),
    (2, 3, 5, 3, 2, 13, 10, 1),
    (6, 4, 1, 1, 0, 7, 7, 2),
    (3, 2, 2, 2, 1, 8, 5, 2),
], ids=lambda g: "c{}o{}k{}s{}p{}_{}x{}_n{}".format(*g))
def test_conv2d_matches_torch(dtype, rng, geometry):
    c, o, k, s, p, h, w, n = geometry
    compare_conv_with_torch(fastnn.Layer_Conv2D(c, o, k, stride=s, padding=p, dtype=dtype),
                            rng.standard_normal((n, c, h, w)).astype(dtype), rng, stride=s, padding=p)


def compare_conv_with_torch(layer, x, rng, *, stride, padding):
    """The layer's output and its three gradients (shape, dtype and values) against
    torch.nn.functional.conv2d with the same weights, random biases and random dvalues."""
    dtype = x.dtype
    layer.biases = rng.standard_normal(layer.biases.shape).astype(dtype)
    layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.weights, requires_grad=True)
    bt = torch.tensor(layer.biases, requires_grad=True)
    yt = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    want = yt.detach().numpy()
    np.testing.assert_allclose(layer.output, want, **tolerance(dtype, np.abs(want).max()))
    g = rng.standard_normal(want.shape).astype(dtype)
    yt.backward(torch.tensor(g))
    layer.backward(g)
    for got, want in ((layer.dinputs, xt.grad), (layer.dweights, wt.grad), (layer.dbiases, bt.grad)):
        want = want.numpy()
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **tolerance(dtype, np.abs(want).max()))


@pytest.mark.parametrize("pool_size, stride", [(2, None), (3, 2), (2, 1), (3, 3)])
def test_maxpool2d_matches_torch(dtype, rng, pool_size, stride):
    x = rng.standard_normal((3, 4, 11, 9)).astype(dtype)  # continuous values: no ties
    layer = fastnn.Layer_MaxPool2D(pool_size, stride)
    layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.max_pool2d(xt, pool_size, stride)
    np.testing.assert_array_equal(layer.output, yt.detach().numpy())
    g = rng.standard_normal(layer.output.shape).astype(dtype)
    yt.backward(torch.tensor(g))
    layer.backward(g)
    # overlapping windows sum in a possibly different order
    np.testing.assert_allclose(layer.dinputs, xt.grad.numpy(), **tolerance(dtype, 4.0))


def test_maxpool2d_return_indices_match_torch_for_distinct_values(rng):
    x = rng.standard_normal((2, 3, 8, 8))
    layer = fastnn.Layer_MaxPool2D(2)
    layer.forward(x)
    _, indices = F.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(layer.argmax, indices.numpy())


def test_conv2d_weights_load_from_a_torch_module(rng):
    """The parameter layout is PyTorch's: a Conv2d's weight and bias drop in as they are."""
    conv = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1)
    layer = fastnn.Layer_Conv2D(3, 5, 3, stride=2, padding=1)
    layer.set_parameters(conv.weight.detach().numpy(), conv.bias.detach().numpy())
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    layer.forward(x)
    want = conv(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(layer.output, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size, stride, padding", [
    ((3, 5), (1, 2), (1, 2)),
    ((2, 1), (2, 1), (0, 0)),
    (2, 1, "same"),
    ((4, 3), 1, "same"),
    ((1, 4), (1, 1), "same"),
], ids=lambda v: str(v).replace(" ", ""))
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_conv2d_pairs_and_same_match_torch(dtype, rng, kernel_size, stride, padding):
    """torch's padding="same" puts an even kernel's extra row below and column right: so does
    fastnn's (outputs and all three gradients agree)."""
    compare_conv_with_torch(fastnn.Layer_Conv2D(3, 4, kernel_size, stride=stride, padding=padding, dtype=dtype),
                            rng.standard_normal((2, 3, 9, 8)).astype(dtype), rng, stride=stride, padding=padding)


@pytest.mark.parametrize("pool_size, stride, padding", [
    ((3, 2), (2, 1), (1, 1)),
    (3, 1, 1),
    ((2, 4), (2, 3), (1, 2)),
    (2, None, "same"),
    ((3, 4), None, "same"),
], ids=lambda v: str(v).replace(" ", ""))
def test_maxpool2d_pairs_and_padding_match_torch(dtype, rng, pool_size, stride, padding):
    """Explicit padding against torch's max_pool2d (its indices too); "same", which torch's
    max_pool2d lacks, against max_pool2d of the input padded with -inf on the sides conv2d's
    "same" pads."""
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    if padding != "same":          # (the -inf padded by hand would tie with -inf inputs and win)
        x[0, 0, :2, :3] = -np.inf  # torch's own padding never wins a window, even one of -inf
    layer = fastnn.Layer_MaxPool2D(pool_size, stride, padding)
    layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    if padding == "same":
        kh, kw = (pool_size, pool_size) if isinstance(pool_size, int) else pool_size
        padded = F.pad(xt, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), value=-np.inf)
        yt = F.max_pool2d(padded, pool_size, 1)
    else:
        yt, indices = F.max_pool2d(xt, pool_size, stride, padding, return_indices=True)
        np.testing.assert_array_equal(layer.argmax, indices.numpy())
    np.testing.assert_array_equal(layer.output, yt.detach().numpy())
    g = rng.standard_normal(layer.output.shape).astype(dtype)
    yt.backward(torch.tensor(g))
    layer.backward(g)
    np.testing.assert_allclose(layer.dinputs, xt.grad.numpy(), **tolerance(dtype, 4.0))


def test_global_average_pool_matches_torch(dtype, rng):
    x = rng.standard_normal((3, 5, 7, 6)).astype(dtype)
    layer = fastnn.Layer_GlobalAveragePool2D()
    layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.adaptive_avg_pool2d(xt, 1).flatten(1)
    np.testing.assert_allclose(layer.output, yt.detach().numpy(), **tolerance(dtype, 1.0))
    g = rng.standard_normal(layer.output.shape).astype(dtype)
    yt.backward(torch.tensor(g))
    layer.backward(g)
    assert layer.dinputs.shape == x.shape and layer.dinputs.dtype == x.dtype
    np.testing.assert_allclose(layer.dinputs, xt.grad.numpy(), **tolerance(dtype, 1.0))
