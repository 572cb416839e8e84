"""Layer_Conv2D's Winograd F(2x2, 3x3) path (stride-1 3x3 kernels with at least 8 input channels):
which layers take it, its error bound (docs/kernels.md) checked output by output against an exact
convolution, agreement with fastnn.reference, PyTorch and the im2col path, the same bits at any
thread count, and its scratch (kept, reused, bounded, left out of copies)."""
import pickle

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fastnn
import fastnn.reference as ref
from fastnn._ext import _conv
from _thread_counts import assert_identical, at_thread_counts

# The transforms of F(2x2, 3x3) (_winograd.pxd).
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)

# (batch, in_channels, out_channels, height, width, padding): odd and even planes, planes smaller
# than a tile, every padding form, batches that fill neither a block of tiles nor the 8 chunks.
GEOMETRIES = [
    (3, 8, 8, 12, 12, 1),
    (5, 9, 10, 7, 9, 0),
    (2, 16, 5, 11, 6, "same"),
    (1, 8, 9, 5, 3, 2),
    (13, 12, 16, 14, 14, 1),
    (2, 8, 8, 3, 3, 0),
    (3, 8, 3, 4, 13, 3),
    (4, 10, 7, 1, 1, 1),
    (17, 8, 12, 9, 10, (1, 2)),
    (2, 8, 4, 6, 2, (2, 1)),
]


def padded(x, padding):
    if padding == "same":
        padding = 1
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def exact_conv(x, w, b, padding):
    """The convolution in extended precision (long double: 64-bit significands on x86, so
    effectively exact against float64's 53), its gradients for dvalues dy."""
    xp = padded(x.astype(np.longdouble), padding)
    windows = sliding_window_view(xp, (3, 3), axis=(2, 3))        # (N, C, OH, OW, 3, 3)
    y = np.einsum("ncijab,ocab->noij", windows, w.astype(np.longdouble)) + b.astype(np.longdouble)[:, None, None]
    return y, windows


def exact_gradients(x, w, dy, padding):
    xp = padded(x.astype(np.longdouble), padding)
    windows = sliding_window_view(xp, (3, 3), axis=(2, 3))
    dyl = dy.astype(np.longdouble)
    dw = np.einsum("ncijab,noij->ocab", windows, dyl)
    dxp = np.zeros_like(xp)
    oh, ow = dy.shape[2:]
    for a in range(3):
        for c in range(3):
            dxp[:, :, a:a + oh, c:c + ow] += np.einsum("noij,oc->ncij", dyl, w[:, :, a, c].astype(np.longdouble))
    ph = (xp.shape[2] - x.shape[2]) // 2
    pw = (xp.shape[3] - x.shape[3]) // 2
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dyl.sum(axis=(0, 2, 3))


def tiles(plane, oh, ow, size):
    """|values| of the 4x4 input patches (size 4, plane: the padded input) or of the 2x2 tiles
    (size 2, plane: an output gradient) of every 2x2 output tile, zeros past the plane:
    (..., TH, TW, size, size)."""
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    need_h, need_w = 2 * th + size - 2, 2 * tw + size - 2
    full = np.zeros(plane.shape[:-2] + (need_h, need_w))
    h, w = min(plane.shape[-2], need_h), min(plane.shape[-1], need_w)
    full[..., :h, :w] = np.abs(plane[..., :h, :w])
    view = sliding_window_view(full, (size, size), axis=(-2, -1))
    return view[..., ::2, ::2, :, :]


def winograd_bounds(x, w, b, dy, padding, dtype):
    """First-order bounds on the Winograd path's rounding errors (docs/kernels.md), per value of
    output, dinputs and dweights: k * u * (the absolute-value form of the algorithm), k the most
    roundings on a path through it (transforms, the GEMMs' sums, the block and chunk sums)."""
    u = np.finfo(dtype).eps / 2
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = dy.shape[2:]
    xp = padded(x.astype(np.float64), padding)
    d = tiles(xp, oh, ow, 4)                                       # (N, C, TH, TW, 4, 4)
    v = np.einsum("kr,nctjrq,lq->nctjkl", np.abs(BT), d, np.abs(BT))
    uw = np.einsum("ka,ocab,lb->ockl", np.abs(G), np.abs(w.astype(np.float64)), np.abs(G))
    m = np.einsum("ockl,nctjkl->notjkl", uw, v)
    yb = np.einsum("rk,notjkl,ql->notjrq", np.abs(AT), m, np.abs(AT))  # (N, O, TH, TW, 2, 2)
    th, tw = yb.shape[2:4]
    yb = yb.transpose(0, 1, 2, 4, 3, 5).reshape(n, o, 2 * th, 2 * tw)[:, :, :oh, :ow]
    out = (c + 12) * u * (yb + np.abs(b.astype(np.float64))[:, None, None])

    g = tiles(dy.astype(np.float64), oh, ow, 2)                    # (N, O, TH, TW, 2, 2)
    dm = np.einsum("rk,notjrq,ql->notjkl", np.abs(AT), g, np.abs(AT))
    dv = np.einsum("ockl,notjkl->nctjkl", uw, dm)
    dd = np.einsum("kr,nctjkl,lq->nctjrq", np.abs(BT), dv, np.abs(BT))  # (N, C, TH, TW, 4, 4)
    dxp = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    for r in range(4):
        for q in range(4):
            dxp[:, :, r:r + 2 * th:2, q:q + 2 * tw:2] += dd[..., r, q]
    ph = (xp.shape[2] - h) // 2
    pw = (xp.shape[3] - wd) // 2
    dx = (o + 14) * u * dxp[:, :, ph:ph + h, pw:pw + wd]

    du = np.einsum("notjkl,nctjkl->ockl", dm, v)
    dwb = np.einsum("ka,ockl,lb->ocab", np.abs(G), du, np.abs(G))
    dw = (n * th * tw + 16) * u * dwb
    return out, dx, dw


def winograd_layer(dtype, c, o, padding, seed=11, **kwargs):
    np.random.seed(seed)
    layer = fastnn.Layer_Conv2D(c, o, 3, padding=padding, dtype=dtype, **kwargs)
    layer.biases = np.random.standard_normal(o).astype(dtype)
    return layer


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "n{}c{}o{}_{}x{}_p{}".format(*g))
def test_winograd_is_within_its_error_bound(dtype, rng, geometry, conv_threads):
    n, c, o, h, w, padding = geometry
    layer = winograd_layer(dtype, c, o, padding)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    layer.forward(x)
    assert "_winograd" in vars(layer) and "_columns" not in vars(layer)  # the path under test
    dy = rng.standard_normal(layer.output.shape).astype(dtype)
    layer.backward(dy)
    y, _ = exact_conv(x, layer.weights, layer.biases, padding)
    dx, dw, db = exact_gradients(x, layer.weights, dy, padding)
    bound_y, bound_dx, bound_dw = winograd_bounds(x, layer.weights, layer.biases, dy, padding, dtype)
    for name, got, want, bound in (("output", layer.output, y, bound_y), ("dinputs", layer.dinputs, dx, bound_dx),
                                   ("dweights", layer.dweights, dw, bound_dw)):
        assert got.shape == want.shape and got.dtype == dtype
        error = np.abs(got.astype(np.longdouble) - want)
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        assert np.all(error <= bound), f"{name}{worst}: error {error[worst]:.3g} > bound {bound[worst]:.3g}"
    # dbiases are plain sums of dvalues, as on the im2col path
    np.testing.assert_allclose(layer.dbiases, db.astype(np.float64), rtol=0,
                               atol=(n * dy[0, 0].size + 8) * np.finfo(dtype).eps * float(np.abs(dy).sum(axis=(0, 2, 3)).max()))


def test_the_bound_is_not_vacuous(rng):
    """The errors measured are a sizeable fraction of the bound in float32 (a bound orders of
    magnitude too loose would pass a broken transform too), and far below the values."""
    layer = winograd_layer(np.float32, 32, 64, 1)
    x = rng.standard_normal((8, 32, 14, 14)).astype(np.float32)
    layer.forward(x)
    y, _ = exact_conv(x, layer.weights, layer.biases, 1)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    bound, _, _ = winograd_bounds(x, layer.weights, layer.biases, dy, 1, np.float32)
    ratio = float(np.max(np.abs(layer.output - y) / bound))
    assert 1e-3 < ratio < 1
    assert np.max(bound) < 1e-4 * np.max(np.abs(y))


@pytest.mark.parametrize("geometry", GEOMETRIES[:6], ids=lambda g: "n{}c{}o{}_{}x{}_p{}".format(*g))
def test_winograd_matches_the_reference(dtype, rng, geometry):
    n, c, o, h, w, padding = geometry
    np.random.seed(5)
    fast = fastnn.Layer_Conv2D(c, o, 3, padding=padding, dtype=dtype, weight_regularizer_l2=1e-3,
                               bias_regularizer_l1=1e-3)
    np.random.seed(5)
    slow = ref.Layer_Conv2D(c, o, 3, padding=padding, dtype=dtype, weight_regularizer_l2=1e-3,
                            bias_regularizer_l1=1e-3)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    fast.forward(x)
    slow.forward(x)
    dy = rng.standard_normal(slow.output.shape).astype(dtype)
    fast.backward(dy)
    slow.backward(dy)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for got, want in ((fast.output, slow.output), (fast.dinputs, slow.dinputs), (fast.dweights, slow.dweights),
                      (fast.dbiases, slow.dbiases)):
        assert got.shape == want.shape and got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(float(np.abs(want).max()), 1.0))


@pytest.mark.parametrize("geometry", [(4, 8, 16, 9, 11, 1), (3, 32, 64, 14, 14, 1), (2, 12, 5, 7, 6, 0),
                                      (5, 8, 8, 10, 7, "same"), (2, 9, 4, 5, 8, (2, 1))],
                         ids=lambda g: "n{}c{}o{}_{}x{}_p{}".format(*g))
def test_winograd_matches_torch(dtype, rng, geometry):
    pytest.importorskip("torch")
    from test_conv_torch import compare_conv_with_torch

    n, c, o, h, w, padding = geometry
    layer = fastnn.Layer_Conv2D(c, o, 3, padding=padding, dtype=dtype)
    compare_conv_with_torch(layer, rng.standard_normal((n, c, h, w)).astype(dtype), rng, stride=1, padding=padding)
    assert "_winograd" in vars(layer)


def test_winograd_agrees_with_im2col(dtype, rng):
    """The two paths of one layer on the same data: within the Winograd bound of each other (the
    im2col path's own rounding is far smaller), and the switch restores the default."""
    layer = winograd_layer(dtype, 16, 24, 1)
    x = rng.standard_normal((21, 16, 10, 9)).astype(dtype)
    dy = rng.standard_normal((21, 24, 10, 9)).astype(dtype)
    results = {}
    assert _conv.set_winograd(False) is True
    try:
        for enabled in (False, True):
            _conv.set_winograd(enabled)
            layer.forward(x)
            layer.backward(dy)
            results[enabled] = [a.copy() for a in (layer.output, layer.dinputs, layer.dweights, layer.dbiases)]
    finally:
        _conv.set_winograd(True)
    assert {"_columns", "_shifted"} & set(vars(layer)) and "_winograd" in vars(layer)
    bounds = winograd_bounds(x, layer.weights, layer.biases, dy, 1, dtype)
    for got, want, bound in zip(results[True][:3], results[False][:3], bounds):
        assert np.all(np.abs(got.astype(np.float64) - want) <= 2 * bound)
    np.testing.assert_array_equal(results[True][3], results[False][3])   # dbiases: the same sums


def test_winograd_results_do_not_depend_on_the_thread_count(rng, dtype):
    """Blocks of samples fixed by the geometry, the 8 backward chunks fixed by the batch size and
    their dU added in chunk order: serial, 2 threads and more threads than cores give the same
    bits (37 samples: neither the blocks nor the chunks divide the batch)."""
    x = rng.standard_normal((37, 16, 9, 11)).astype(dtype)
    dvalues = rng.standard_normal((37, 24, 9, 11)).astype(dtype)

    def run():
        layer = winograd_layer(dtype, 16, 24, 1, weight_regularizer_l1=1e-3)
        layer.forward(x)
        layer.backward(dvalues)
        assert "_winograd" in vars(layer)
        return layer.output, layer.dinputs, layer.dweights, layer.dbiases

    assert_identical(at_thread_counts((1, 0, 2, 3, 5), run))


@pytest.mark.parametrize("c, o, k, stride, padding, winograd", [
    (8, 16, 3, 1, 1, True),
    (8, 1, 3, 1, 0, True),          # any number of output channels
    (7, 16, 3, 1, 1, False),        # too few input channels
    (1, 32, 3, 1, 1, False),        # a first layer
    (8, 16, 3, 2, 1, False),        # stride 2
    (8, 16, (3, 1), 1, 0, False),   # not 3x3
    (8, 16, 5, 1, 2, False),
])
def test_which_layers_take_the_winograd_path(rng, c, o, k, stride, padding, winograd):
    layer = fastnn.Layer_Conv2D(c, o, k, stride=stride, padding=padding)
    layer.forward(rng.standard_normal((2, c, 8, 8)).astype(np.float32))
    layer.backward(np.ones_like(layer.output))
    assert ("_winograd" in vars(layer)) == winograd
    assert bool({"_columns", "_shifted"} & set(vars(layer))) == (not winograd)


def test_winograd_empty_batch_takes_the_im2col_path(dtype):
    layer = fastnn.Layer_Conv2D(8, 4, 3, padding=1, dtype=dtype)
    layer.forward(np.zeros((0, 8, 5, 5), dtype=dtype))
    layer.backward(np.zeros((0, 4, 5, 5), dtype=dtype))
    np.testing.assert_array_equal(layer.dweights, np.zeros_like(layer.weights))
    assert layer.dinputs.shape == (0, 8, 5, 5)


def test_winograd_parameters_only_backward_gives_the_same_gradients(rng, dtype):
    layer = winograd_layer(dtype, 8, 8, 1)
    x = rng.standard_normal((11, 8, 7, 7)).astype(dtype)
    layer.forward(x)
    dy = rng.standard_normal(layer.output.shape).astype(dtype)
    layer.backward(dy)
    full = layer.dweights.copy(), layer.dbiases.copy(), layer.dinputs.copy()
    layer._backward_parameters_only(dy)
    np.testing.assert_array_equal(layer.dweights, full[0])
    np.testing.assert_array_equal(layer.dbiases, full[1])
    np.testing.assert_array_equal(layer.dinputs, full[2])       # left as the last full backward made it


def test_winograd_scratch_is_reused_bounded_and_not_copied(rng):
    """Training steps allocate nothing (the layer keeps its scratch while the shapes stay), the
    scratch of mnist's second convolution stays a few MB, and copies and pickles leave it out."""
    layer = fastnn.Layer_Conv2D(32, 64, 3, padding=1)
    x = rng.standard_normal((128, 32, 14, 14)).astype(np.float32)
    dy = rng.standard_normal((128, 64, 14, 14)).astype(np.float32)
    layer.forward(x)
    layer.backward(dy)
    kept = {name: vars(layer)[name] for name in ("_winograd", "_winograd_weights", "_winograd_partial")}
    for _ in range(2):
        layer.forward(x)
        layer.backward(dy)
        for name, array in kept.items():
            assert vars(layer)[name] is array
    assert kept["_winograd"].nbytes <= 4 * 2 ** 20 * kept["_winograd"].shape[0]
    assert sum(a.nbytes for a in kept.values()) < 16 * 2 ** 20
    for clone in (pickle.loads(pickle.dumps(layer)), __import__("copy").deepcopy(layer)):
        assert not set(kept) & set(vars(clone))
        clone.forward(x)
        np.testing.assert_array_equal(clone.output, layer.output)
