"""Conv2D's float32 GEMM kernels in AVX-512 (src_pyx/_smallgemm.pxd): op(A) @ B and A @ B.T
against an exact product within a GEMM's error bound, on every edge of their tiles (rows, columns,
the k tail), row strides, accumulation, no write outside C, a value's bits independent of the tile
it falls in; the switch; and the convolution with and without them. Skipped where the CPU has no
AVX-512 (the BLAS path the kernels fall back to is what the rest of the suite tests there)."""
import numpy as np
import pytest

import fastnn
from fastnn._ext import _blas, _conv
from _thread_counts import assert_identical, at_thread_counts

pytestmark = pytest.mark.skipif(not _blas.small_gemm_available(), reason="the CPU has no AVX-512")

EPS = 2.0 ** -24

# (m, n, k): the NN kernel's tiles are 8 rows x 32 columns, the NT kernel's 4 x 4 over k in steps
# of 16; each size below, on, one off and one past those edges, and the shapes Conv2D passes.
SHAPES = [
    (1, 1, 1), (8, 32, 16), (7, 31, 15), (9, 33, 17), (16, 64, 32), (17, 65, 1), (3, 5, 0),
    (64, 245, 32),    # Winograd forward, mnist-c2 (O, P, C)
    (32, 245, 64),    # Winograd dinputs (C, P, O)
    (64, 32, 245),    # Winograd dweights (O, C, P)
    (16, 100, 150),   # LeNet's second layer, im2col forward (O, OH*OW, C*5*5)
    (150, 16, 100),   # and its dweights (C*5*5, O, OH*OW)
    (5, 200, 3), (2, 3, 300),
]


def operands(rng, m, n, k, trans_a, trans_b, pad=0):
    """a, b as the kernels read them (op(a) is (m, k), op(b) is (k, n)), each a view into a wider
    array when pad > 0 (row stride larger than the row), and op(a), op(b) in float64."""
    def matrix(rows, cols):
        wide = rng.standard_normal((rows, cols + pad)).astype(np.float32)
        return wide[:, :cols]
    a = matrix(k, m) if trans_a else matrix(m, k)
    b = matrix(n, k) if trans_b else matrix(k, n)
    return a, b, (a.T if trans_a else a).astype(np.float64), (b.T if trans_b else b).astype(np.float64)


def bound(a64, b64):
    """A GEMM's error bound: k * 2^-24 * (|A| @ |B|), k at least 1."""
    return max(a64.shape[1], 1) * EPS * (np.abs(a64) @ np.abs(b64))


FORMS = [pytest.param(False, False, id="A@B"), pytest.param(True, False, id="A.T@B"),
         pytest.param(False, True, id="A@B.T")]


@pytest.mark.parametrize("trans_a, trans_b", FORMS)
@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("accumulate", [False, True])
def test_kernels_are_within_a_gemms_error_bound(rng, m, n, k, trans_a, trans_b, accumulate):
    a, b, a64, b64 = operands(rng, m, n, k, trans_a, trans_b)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    out = c0.copy() if accumulate else np.full((m, n), np.nan, np.float32)   # beta = 0 ignores C
    assert _conv.small_gemm_into(a, b, out, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate) is out
    want = a64 @ b64 + (c0 if accumulate else 0)
    slack = bound(a64, b64) + (np.abs(want) * EPS if accumulate else 0) + 1e-30
    assert np.all(np.abs(out - want) <= slack)


def test_the_bound_is_not_vacuous(rng):
    """The bound is tight enough to catch a wrong term: one product dropped breaks it."""
    a, b, a64, b64 = operands(rng, 16, 40, 33, False, False)
    out = np.empty((16, 40), np.float32)
    _conv.small_gemm_into(a, b, out)
    wrong = a64 @ b64 - a64[:, :1] @ b64[:1, :]
    assert np.any(np.abs(out - wrong) > bound(a64, b64))


@pytest.mark.parametrize("trans_a, trans_b", FORMS)
def test_row_strides_and_no_write_outside_c(rng, trans_a, trans_b):
    """Operands and C as views of wider arrays (leading dimensions larger than the rows): the same
    values as from compact copies, bit for bit, and C's padding columns untouched (the masked edge
    stores write inside the rows only)."""
    m, n, k = 13, 37, 21
    a, b, _, _ = operands(rng, m, n, k, trans_a, trans_b, pad=7)
    wide = np.full((m, n + 9), 7.5, np.float32)
    out = wide[:, :n]
    _conv.small_gemm_into(a, b, out, trans_a=trans_a, trans_b=trans_b)
    compact = np.empty((m, n), np.float32)
    _conv.small_gemm_into(np.ascontiguousarray(a), np.ascontiguousarray(b), compact,
                          trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_array_equal(out, compact)
    assert np.all(wide[:, n:] == 7.5)


@pytest.mark.parametrize("trans_a, trans_b", FORMS)
def test_a_value_does_not_depend_on_its_tile(rng, trans_a, trans_b):
    """Each value is summed over k in one order whatever tile it falls in: the product of a block
    starting off the tile grid (rows 3.., columns 5..) gives the full product's bits there. This is
    what makes Conv2D's results independent of how work is split."""
    m, n, k = 29, 70, 45
    a, b, _, _ = operands(rng, m, n, k, trans_a, trans_b)
    full = np.empty((m, n), np.float32)
    _conv.small_gemm_into(a, b, full, trans_a=trans_a, trans_b=trans_b)
    sub_a = a[:, 3:] if trans_a else a[3:]
    sub_b = b[5:] if trans_b else b[:, 5:]
    part = np.empty((m - 3, n - 5), np.float32)
    _conv.small_gemm_into(sub_a, sub_b, part, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_array_equal(part, full[3:, 5:])


def test_the_switch_turns_the_kernels_off_and_restores():
    a = np.ones((2, 2), np.float32)
    out = np.empty((2, 2), np.float32)
    assert _blas.set_small_gemm(False) is True
    try:
        with pytest.raises(RuntimeError, match="cannot run"):
            _conv.small_gemm_into(a, a, out)
    finally:
        assert _blas.set_small_gemm(True) is False
    np.testing.assert_array_equal(_conv.small_gemm_into(a, a, out), [[2, 2], [2, 2]])


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.ones((2, 2)), np.ones((2, 2), np.float32), np.empty((2, 2), np.float32)), {}, TypeError, "a must be a 2-D float32"),
    ((np.ones((2, 2), np.float32), np.ones(2, np.float32), np.empty((2, 2), np.float32)), {}, TypeError, "b must be a 2-D float32"),
    ((np.ones((2, 3), np.float32), np.ones((2, 2), np.float32), np.empty((2, 2), np.float32)), {}, ValueError, "do not chain"),
    ((np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.empty((2, 2), np.float32)),
     {"trans_a": True, "trans_b": True}, ValueError, "both"),
    ((np.ones((2, 4), np.float32)[:, ::2], np.ones((2, 2), np.float32), np.empty((2, 2), np.float32)), {},
     ValueError, "unit stride"),
])
def test_the_test_entry_validates(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        _conv.small_gemm_into(*args, **kwargs)


def test_read_only_out_is_refused():
    out = np.empty((2, 2), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _conv.small_gemm_into(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), out)


# Both Conv2D paths: Winograd (3x3 stride 1, 16 input channels) and im2col (5x5; 3x3 stride 2).
LAYERS = [(16, 24, 3, 1, 1, 9), (6, 16, 5, 1, 0, 14), (8, 12, 3, 2, 1, 11)]


def run_layer(layer, x, dy):
    layer.forward(x)
    layer.backward(dy)
    return [a.copy() for a in (layer.output, layer.dinputs, layer.dweights, layer.dbiases)]


@pytest.mark.parametrize("c, o, k, stride, padding, size", LAYERS)
def test_convolution_agrees_with_the_blas_path(rng, c, o, k, stride, padding, size):
    """The same float32 layer with the kernels and with NumPy's BLAS: the same results up to the
    two GEMMs' rounding (a GEMM's error bound over the layer's operand sizes), dbiases (no GEMM)
    bit for bit; the BLAS path is checked against the reference and PyTorch elsewhere."""
    layer = fastnn.Layer_Conv2D(c, o, k, stride=stride, padding=padding, dtype=np.float32)
    x = rng.standard_normal((7, c, size, size)).astype(np.float32)
    layer.forward(x)
    dy = rng.standard_normal(layer.output.shape).astype(np.float32)
    with_kernels = run_layer(layer, x, dy)
    assert _blas.set_small_gemm(False) is True
    try:
        with_blas = run_layer(layer, x, dy)
    finally:
        _blas.set_small_gemm(True)
    for got, want in zip(with_kernels[:3], with_blas[:3]):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * scale)
    np.testing.assert_array_equal(with_kernels[3], with_blas[3])


@pytest.mark.parametrize("c, o, k, stride, padding, size", LAYERS)
def test_convolution_with_the_kernels_does_not_depend_on_the_thread_count(rng, c, o, k, stride, padding, size):
    x = rng.standard_normal((37, c, size, size)).astype(np.float32)

    def run():
        layer = fastnn.Layer_Conv2D(c, o, k, stride=stride, padding=padding, dtype=np.float32)
        layer.weights[...] = np.random.default_rng(1).standard_normal(layer.weights.shape)
        layer.forward(x)
        return run_layer(layer, x, np.ones_like(layer.output) * 0.5 + layer.output * 0.1)

    assert_identical(at_thread_counts((1, 0, 2, 3), run))


# The shifted-plane path (float32 stride-1 layers off the Winograd path): padded and unpadded,
# square and not, odd "same" padding, a one-column output, one channel.
SHIFTED = [
    ((6, 16, 5), {}, (9, 14, 14)),                          # LeNet's second layer
    ((1, 6, 5), {"padding": 2}, (5, 28, 28)),               # LeNet's first
    ((1, 32, 3), {"padding": 1}, (4, 28, 28)),              # the MNIST CNN's first
    ((3, 5, (2, 4)), {"padding": "same"}, (3, 7, 9)),       # even kernel: the extra zero below/right
    ((4, 7, (3, 5)), {"padding": (0, 1)}, (11, 6, 5)),      # a 3-column output
    ((2, 3, (1, 3)), {}, (2, 4, 3)),                        # a one-column output
    ((5, 2, 3), {"padding": 3}, (3, 2, 2)),                 # padding larger than the plane
]


def run_paths(layer, x, dy, shifted):
    before = _conv.set_shifted_planes(shifted)
    try:
        results = run_layer(layer, x, dy)
        taken = "_shifted" in vars(layer)
    finally:
        _conv.set_shifted_planes(before)
    for name in layer._SCRATCH:
        vars(layer).pop(name, None)
    return results, taken


@pytest.mark.parametrize("args, kwargs, shape", SHIFTED)
def test_shifted_planes_give_im2cols_bits(rng, args, kwargs, shape):
    """Against im2col with the same kernels: output and dinputs the same bits (each value the same
    sum in the same order, the dropped positions adding exact zeros), dbiases too; dweights sums
    over the extended positions, so within a GEMM's bound of an exact product instead."""
    layer = fastnn.Layer_Conv2D(*args, dtype=np.float32, **kwargs)
    x = rng.standard_normal((shape[0], args[0]) + shape[1:]).astype(np.float32)
    layer.forward(x)
    dy = rng.standard_normal(layer.output.shape).astype(np.float32)
    (out, dx, dw, db), taken = run_paths(layer, x, dy, True)
    assert taken
    (out0, dx0, dw0, db0), taken0 = run_paths(layer, x, dy, False)
    assert not taken0
    np.testing.assert_array_equal(out, out0)
    np.testing.assert_array_equal(dx, dx0)
    np.testing.assert_array_equal(db, db0)
    k = out.shape[0] * out.shape[2] * out.shape[3]      # terms of each dweights sum
    absolute = fastnn.Layer_Conv2D(*args, dtype=np.float64, **kwargs)   # sum |x| |dy| of each
    absolute.forward(np.abs(x).astype(np.float64))
    absolute.backward(np.abs(dy).astype(np.float64))
    assert np.all(np.abs(dw.astype(np.float64) - dw0) <= 2 * k * EPS * absolute.dweights + 1e-30)


def test_shifted_planes_are_float32_stride_1_only(rng):
    for kwargs, dtype, taken in (({}, np.float32, True), ({"stride": 2}, np.float32, False),
                                 ({}, np.float64, False)):
        layer = fastnn.Layer_Conv2D(2, 3, 5, dtype=dtype, **kwargs)
        layer.forward(rng.standard_normal((2, 2, 11, 11)).astype(dtype))
        layer.backward(np.ones_like(layer.output))
        assert ("_shifted" in vars(layer)) == taken, (kwargs, dtype)
