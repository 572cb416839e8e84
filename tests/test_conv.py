"""Layer_Conv2D, Layer_MaxPool2D and Layer_Flatten: what is particular to them. Against
fastnn.reference in float32 and float64 over geometries (strides, padding, odd sizes, kernel
1/3/5, batch 1, empty batches, ties, NaN, overlapping windows), thread counts, initialisation,
parameters, and the geometry-specific errors.

Parity on the cases' data, gradients, buffers, user arrays, copies, argument validation,
signatures and model-file round trips are contract tests (tests/contract/, tests/test_parity.py),
as for every declared class."""
import itertools
import pickle

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from fastnn._ext import _threads
from _thread_counts import assert_identical, at_thread_counts


def assert_close(got, want, dtype):
    """Same shape and dtype; values within the rounding of a different summation order."""
    assert got.shape == want.shape
    assert got.dtype == want.dtype == dtype
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
    tol = 3e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def conv_pair(dtype, *args, seed=7, **kwargs):
    """The compiled and the reference layer, built from the same RNG state."""
    np.random.seed(seed)
    fast = fastnn.Layer_Conv2D(*args, dtype=dtype, **kwargs)
    np.random.seed(seed)
    slow = ref.Layer_Conv2D(*args, dtype=dtype, **kwargs)
    return fast, slow


def run_both(fast, slow, x, rng, dtype):
    """forward + backward of both layers on x and one random gradient; compares everything."""
    fast.forward(x)
    slow.forward(x)
    assert_close(fast.output, slow.output, dtype)
    dvalues = rng.standard_normal(slow.output.shape).astype(dtype)
    fast.backward(dvalues)
    slow.backward(dvalues)
    assert_close(fast.dinputs, slow.dinputs, dtype)
    assert_close(fast.dweights, slow.dweights, dtype)
    assert_close(fast.dbiases, slow.dbiases, dtype)


# --- Conv2D against the reference -------------------------------------------------------------

GEOMETRIES = [  # (in_channels, out_channels, kernel_size, stride, padding, height, width)
    (c, o, k, s, p, h, w)
    for (k, s, p), (c, o, h, w) in zip(
        itertools.product([1, 3, 5], [1, 2, 3], [0, 1, 2]),
        itertools.cycle([(3, 4, 9, 11), (2, 5, 7, 7), (1, 3, 8, 13), (4, 2, 11, 6), (5, 6, 10, 9)]))
    if h + 2 * p >= k and w + 2 * p >= k
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "c{}o{}k{}s{}p{}_{}x{}".format(*g))
def test_conv_matches_reference(dtype, rng, geometry, conv_threads):
    c, o, k, s, p, h, w = geometry
    fast, slow = conv_pair(dtype, c, o, k, stride=s, padding=p)
    biases = rng.standard_normal(o).astype(dtype)
    fast.biases, slow.biases = biases.copy(), biases.copy()
    for n in (1, 5):
        run_both(fast, slow, rng.standard_normal((n, c, h, w)).astype(dtype), rng, dtype)


@pytest.mark.parametrize("shape, k, s, p", [
    ((1, 1, 1, 1), 1, 1, 0),          # a single pixel
    ((2, 1, 1, 1), 3, 1, 1),          # kernel bigger than the input, padding makes it fit
    ((3, 2, 2, 9), 2, 1, 0),          # even kernel
    ((2, 3, 5, 5), 5, 1, 0),          # kernel the size of the input: 1x1 output
    ((2, 2, 13, 3), 3, 3, 2),         # stride larger than the input width
    ((2, 2, 9, 9), 3, 5, 0),          # stride larger than the kernel: input pixels skipped
    ((1, 2, 6, 7), 1, 2, 1),          # 1x1 kernel with stride and padding (not the direct path)
    ((3, 7, 4, 5), 1, 1, 0),          # 1x1 direct path (no im2col)
])
def test_conv_edge_geometries(dtype, rng, shape, k, s, p, conv_threads):
    n, c, h, w = shape
    fast, slow = conv_pair(dtype, c, 3, k, s, p)
    run_both(fast, slow, rng.standard_normal(shape).astype(dtype), rng, dtype)


def test_conv_results_do_not_depend_on_the_thread_count(rng, dtype):
    """The batch is cut into chunks that depend on the batch size only, and the chunks' dweights
    are added in chunk order: serial, 2 threads and more threads than cores give the same bits."""
    x = rng.standard_normal((37, 8, 12, 12)).astype(dtype)
    dvalues = rng.standard_normal((37, 16, 12, 12)).astype(dtype)

    def run():
        np.random.seed(3)
        layer = fastnn.Layer_Conv2D(8, 16, 3, padding=1, dtype=dtype, weight_regularizer_l1=1e-3)
        layer.forward(x)
        layer.backward(dvalues)
        return layer.output, layer.dinputs, layer.dweights, layer.dbiases

    assert_identical(at_thread_counts((1, 0, 2, 3, 5), run))


def test_conv_thread_setting():
    before = _threads.num_threads()[0]
    try:
        _threads.set_num_threads(1)
        assert _threads.num_threads()[:2] == (1, 1)
        _threads.set_num_threads(0)
        with pytest.raises(ValueError):
            _threads.set_num_threads(-1)
    finally:
        _threads.set_num_threads(before)


def test_conv_empty_batch(dtype):
    fast, slow = conv_pair(dtype, 2, 3, 3, padding=1)
    x = np.zeros((0, 2, 5, 5), dtype=dtype)
    fast.forward(x)
    slow.forward(x)
    assert fast.output.shape == slow.output.shape == (0, 3, 5, 5)
    fast.backward(np.zeros((0, 3, 5, 5), dtype=dtype))
    np.testing.assert_array_equal(fast.dweights, np.zeros_like(fast.weights))
    np.testing.assert_array_equal(fast.dbiases, np.zeros_like(fast.biases))
    assert fast.dinputs.shape == x.shape


# --- Conv2D construction and parameters ---------------------------------------------------------

def test_conv_init_is_he_normal_and_matches_reference(dtype):
    fast, slow = conv_pair(dtype, 16, 32, 3, seed=11)
    np.testing.assert_array_equal(fast.weights, slow.weights)
    np.random.seed(11)
    expected = (np.random.standard_normal((32, 16, 3, 3)) * np.sqrt(2 / (16 * 9))).astype(dtype)
    np.testing.assert_array_equal(fast.weights, expected)
    assert fast.weights.dtype == fast.biases.dtype == dtype
    assert fast.biases.shape == (32,) and not fast.biases.any()
    assert abs(fast.weights.std() / np.sqrt(2 / 144) - 1) < 0.05


def test_conv_init_draws_in_construction_order_and_ignores_nnfs_patch(monkeypatch):
    np.random.seed(0)
    a = fastnn.Layer_Conv2D(1, 2, 3)
    b = fastnn.Layer_Conv2D(2, 2, 3)
    np.random.seed(0)
    first = np.random.standard_normal((2, 1, 3, 3))
    second = np.random.standard_normal((2, 2, 3, 3))
    np.testing.assert_array_equal(a.weights, (first * np.sqrt(2 / 9)).astype(np.float32))
    np.testing.assert_array_equal(b.weights, (second * np.sqrt(2 / 18)).astype(np.float32))
    nnfs = pytest.importorskip("nnfs")
    for module, name in ((np, "dot"), (np, "zeros"), (np, "eye"), (np.random, "randn")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored on teardown
    nnfs.init()  # patches np.random.randn, np.dot, np.zeros, np.eye; the conv layers use none of them
    np.random.seed(0)
    patched = fastnn.Layer_Conv2D(1, 2, 3)
    np.testing.assert_array_equal(patched.weights, a.weights)
    patched.forward(np.ones((1, 1, 4, 4)))
    assert patched.output.dtype == np.float32


def test_conv_default_dtype_follows_fastnn_init():
    try:
        fastnn.init(random_seed=None, dtype="float64")
        assert fastnn.Layer_Conv2D(1, 1, 1).weights.dtype == np.float64
    finally:
        fastnn.init(random_seed=None, dtype="float32")
    assert fastnn.Layer_Conv2D(1, 1, 1).weights.dtype == np.float32


def test_conv_attributes_and_repr():
    layer = fastnn.Layer_Conv2D(3, 4, 5, stride=2, padding=1, weight_regularizer_l2=1e-4)
    assert (layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding) == (3, 4, 5, 2, 1)
    assert layer.weight_regularizer_l2 == 1e-4 and layer.weight_regularizer_l1 == 0
    assert "Layer_Conv2D(3, 4, 5, stride=2, padding=1" in repr(layer)
    assert not hasattr(layer, "output") and not hasattr(layer, "weight_momentums")


def test_conv_parameters_round_trip(dtype, rng):
    layer = fastnn.Layer_Conv2D(2, 3, 3, dtype=dtype)
    weights, biases = layer.get_parameters()
    assert weights is layer.weights and biases is layer.biases
    new_w = rng.standard_normal((3, 2, 3, 3)).astype(dtype)
    new_b = rng.standard_normal(3).astype(dtype)
    layer.set_parameters(new_w, new_b)
    assert layer.weights is new_w and layer.biases is new_b  # no copy, as the book
    layer.set_parameters(new_w.tolist(), new_b.reshape(1, 3))  # converted; (1, O) row accepted
    assert layer.weights.dtype == dtype and layer.biases.shape == (3,)
    np.testing.assert_array_equal(layer.weights, new_w)
    with pytest.raises(ValueError, match=r"weights must have shape \(3, 2, 3, 3\)"):
        layer.set_parameters(np.zeros((3, 2, 5, 5)), new_b)
    with pytest.raises(ValueError, match=r"biases must have shape \(3,\)"):
        layer.set_parameters(new_w, np.zeros(4))
    with pytest.raises(ValueError, match="4-D"):
        layer.set_parameters(np.zeros((3, 18)), new_b)
    with pytest.raises(TypeError, match="weights"):
        layer.set_parameters(np.array([["a"]]), new_b)


def test_conv_scratch_is_not_copied(rng):
    """Copies and pickles leave the scratch out (rebuilt on demand): they stay small."""
    import copy

    layer = fastnn.Layer_Conv2D(2, 3, 3)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    layer.forward(x)
    layer.backward(np.ones_like(layer.output))
    assert {"_columns", "_shifted"} & set(vars(layer))
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert not set(fastnn.Layer_Conv2D._SCRATCH) & set(vars(clone))
        clone.forward(x)
        np.testing.assert_array_equal(clone.output, layer.output)


# --- Conv2D validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, error, match", [
    ((1, 1, 3.0), {}, TypeError, "kernel_size must be a positive int or a pair of positive ints, got float"),
    ((1, 1, (3,)), {}, ValueError, r"kernel_size must be .*, got tuple \(3,\)"),
    ((1, 1, 3), {"padding": "valid"}, ValueError,
     "padding must be a non-negative int, a pair of non-negative ints or 'same', got 'valid'"),
    ((1, 1, 3), {"padding": "same", "stride": (1, 2)}, ValueError,
     r"stride must be 1 with padding='same' \(the output keeps the input's size\), got \(1, 2\)"),
    ((1, 1, 3), {"dtype": np.int32}, TypeError, "dtype"),
])
def test_conv_constructor_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fastnn.Layer_Conv2D(*args, **kwargs)


@pytest.mark.parametrize("x, error, match", [
    (np.zeros((2, 3, 8)), ValueError, r"4-D \(n_samples, 3, height, width\).*x\[:, None\]"),
    (np.zeros((2, 2, 8, 8)), ValueError, "in_channels=3.*2 channels"),
    (np.zeros((2, 3, 2, 8)), ValueError, r"at least 5 x 5 after padding.*2 x 8 plane \(4 x 10 padded\)"),
    (np.zeros((2, 3, 8, 0)), ValueError, "non-empty"),
])
def test_conv_forward_errors(x, error, match):
    layer = fastnn.Layer_Conv2D(3, 2, 5, padding=1)
    with pytest.raises(error, match=match):
        layer.forward(x)
    assert "output" not in vars(layer)  # nothing changed


def test_conv_inconsistent_parameters_are_reported(rng):
    layer = fastnn.Layer_Conv2D(2, 3, 3)
    x = rng.standard_normal((1, 2, 5, 5))
    layer.weights = np.zeros((3, 2, 5, 5), dtype=np.float32)  # replaced by hand, not set_parameters
    with pytest.raises(ValueError, match=r"inconsistent \(weights\).*set_parameters"):
        layer.forward(x)
    layer = fastnn.Layer_Conv2D(2, 3, 3)
    layer.biases = np.zeros((1, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"inconsistent \(biases\)"):
        layer.forward(x)
    layer = fastnn.Layer_Conv2D(2, 3, 3)
    layer.weights = layer.weights.astype(np.float64)
    with pytest.raises(ValueError, match=r"inconsistent \(biases\)"):
        layer.forward(x)
    layer = fastnn.Layer_Conv2D(2, 3, 3)
    layer.stride = 0
    with pytest.raises(ValueError, match=r"inconsistent \(stride\)"):
        layer.forward(x)
    layer = fastnn.Layer_Conv2D(2, 3, 3)
    layer.padding = 1.5
    with pytest.raises(ValueError, match=r"inconsistent \(padding\)"):
        layer.forward(x)


# --- MaxPool2D -------------------------------------------------------------------------------------

def pool_both(dtype, x, pool_size, stride, rng, padding=0):
    fast = fastnn.Layer_MaxPool2D(pool_size, stride, padding)
    slow = ref.Layer_MaxPool2D(pool_size, stride, padding)
    fast.forward(x)
    slow.forward(x)
    np.testing.assert_array_equal(fast.output, slow.output)
    assert fast.output.dtype == x.dtype
    np.testing.assert_array_equal(fast.argmax, slow.argmax)
    dvalues = rng.standard_normal(slow.output.shape).astype(dtype)
    fast.backward(dvalues)
    slow.backward(dvalues)
    # same additions in the same order (output positions row-major): bit-identical
    np.testing.assert_array_equal(fast.dinputs, slow.dinputs)
    assert fast.dinputs.dtype == dtype
    return fast


@pytest.mark.parametrize("pool_size, stride", [(2, None), (2, 1), (3, None), (3, 2), (2, 3), (1, 1), (4, 2)])
@pytest.mark.parametrize("shape", [(1, 1, 7, 9), (3, 2, 8, 8), (2, 3, 5, 11)])
def test_maxpool_matches_reference(dtype, rng, pool_size, stride, shape):
    pool_both(dtype, rng.standard_normal(shape).astype(dtype), pool_size, stride, rng)


@pytest.mark.parametrize("pool_size, stride", [(2, 2), (3, 1), (3, 2)])
def test_maxpool_ties_take_the_first_in_row_major_order(dtype, rng, pool_size, stride):
    x = rng.integers(0, 3, size=(2, 3, 9, 10)).astype(dtype)  # many ties
    pool_both(dtype, x, pool_size, stride, rng)
    flat = np.zeros((1, 1, 4, 4), dtype=dtype)  # all equal: every window's first element
    layer = pool_both(dtype, flat, pool_size, 1, rng)
    expected = [[r * 4 + c for c in range(layer.output.shape[3])] for r in range(layer.output.shape[2])]
    np.testing.assert_array_equal(layer.argmax[0, 0], expected)


def test_maxpool_nan_and_infinities(dtype, rng):
    x = rng.standard_normal((2, 2, 6, 6)).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 0, 1] = np.nan      # two NaNs in one window: the first (row-major) wins
    x[1, 1, 2, 3] = np.inf
    x[1, 0, :2, :2] = -np.inf
    for pool_size, stride in ((2, 2), (3, 1)):
        layer = pool_both(dtype, x, pool_size, stride, rng)
        assert np.isnan(layer.output[0, 0, 0, 0])
    layer = fastnn.Layer_MaxPool2D(2)
    layer.forward(x)
    assert layer.argmax[0, 0, 0, 0] == 1 and layer.output[1, 0, 0, 0] == -np.inf


def test_maxpool_overlapping_windows_sum_their_gradients(dtype):
    x = np.zeros((1, 1, 3, 3), dtype=dtype)
    x[0, 0, 1, 1] = 5  # the centre wins all four 2x2 windows of stride 1
    layer = fastnn.Layer_MaxPool2D(2, 1)
    layer.forward(x)
    layer.backward(np.array([[[[1, 2], [3, 4]]]], dtype=dtype))
    expected = np.zeros((3, 3), dtype=dtype)
    expected[1, 1] = 10
    np.testing.assert_array_equal(layer.dinputs[0, 0], expected)


def test_maxpool_keeps_float_dtypes_and_converts_others(rng):
    layer = fastnn.Layer_MaxPool2D()
    layer.forward(rng.integers(0, 9, size=(1, 1, 4, 4)))
    assert layer.output.dtype == np.float32
    layer.forward(np.asfortranarray(rng.standard_normal((2, 2, 4, 4))))
    assert layer.output.dtype == np.float64 and layer.inputs.flags.c_contiguous
    layer.backward(np.ones((2, 2, 2, 2), dtype=np.float32))  # gradient converted to the inputs' dtype
    assert layer.dinputs.dtype == np.float64
    assert layer.argmax.dtype == np.int32


def test_maxpool_forward_and_backward_errors(rng):
    layer = fastnn.Layer_MaxPool2D(3)
    with pytest.raises(ValueError, match=r"at least 3 x 3.*2 x 9 plane"):
        layer.forward(np.zeros((1, 1, 2, 9)))
    layer.forward(rng.standard_normal((1, 2, 6, 6)))
    layer.pool_size = 0
    with pytest.raises(ValueError, match="pool_size and stride must be ints >= 1 or .*pairs"):
        layer.forward(np.zeros((1, 1, 3, 3)))
    layer = fastnn.Layer_MaxPool2D(2)
    layer.forward(rng.standard_normal((1, 1, 4, 4)))
    layer.argmax[0, 0, 0, 0] = 99  # changed by hand: refused, nothing written out of bounds
    with pytest.raises(ValueError, match="argmax holds positions outside"):
        layer.backward(np.ones((1, 1, 2, 2)))


# --- Flatten -----------------------------------------------------------------------------------------

def test_flatten_converts_what_it_must(rng):
    layer = fastnn.Layer_Flatten()
    x = np.asfortranarray(rng.standard_normal((2, 3, 4)))
    layer.forward(x)
    np.testing.assert_array_equal(layer.output, x.reshape(2, 12))
    layer.forward(rng.integers(0, 5, size=(2, 2, 2)))
    assert layer.output.dtype == np.float32
    layer.backward(np.ones((2, 4), dtype=np.float64).tolist())
    assert layer.dinputs.shape == (2, 2, 2) and layer.dinputs.dtype == np.float32
    layer.forward(np.zeros((0, 3, 2)))
    assert layer.output.shape == (0, 6)
    layer.backward(np.zeros((0, 6)))
    assert layer.dinputs.shape == (0, 3, 2)


def test_flatten_errors():
    layer = fastnn.Layer_Flatten()
    with pytest.raises(ValueError, match="at least 2-D"):
        layer.forward(np.zeros(5))


# --- Threads -----------------------------------------------------------------------------------------

def test_public_thread_setting():
    import fastnn.conv

    before = _threads.num_threads()[0]
    try:
        fastnn.conv.set_num_threads(1)
        assert fastnn.conv.get_num_threads() == 1
        fastnn.conv.set_num_threads(0)
        assert fastnn.conv.get_num_threads() >= 1
        with pytest.raises(ValueError, match="non-negative"):
            fastnn.conv.set_num_threads(-2)
        with pytest.raises(TypeError):
            fastnn.conv.set_num_threads(1.5)
    finally:
        _threads.set_num_threads(before)


def test_blas_thread_count_is_restored_after_a_threaded_conv(rng):
    """The kernels pin NumPy's OpenBLAS to one thread while they run and restore it after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _threads.num_threads()[2]:
        pytest.skip("NumPy's BLAS is not an OpenBLAS fastnn can pin")
    x = rng.standard_normal((16, 4, 10, 10)).astype(np.float32)
    layer = fastnn.Layer_Conv2D(4, 8, 3, padding=1)
    before = _threads.num_threads()[0]
    threshold = _threads.set_min_work_per_thread(1)
    try:
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            for threads in (1, 2):
                _threads.set_num_threads(threads)
                layer.forward(x)
                layer.backward(np.ones_like(layer.output))
                counts = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["internal_api"] == "openblas"]
                assert counts and all(c == 2 for c in counts)
    finally:
        _threads.set_min_work_per_thread(threshold)
        _threads.set_num_threads(before)


def test_automatic_threads_are_openmps_count_whatever_the_blas_count():
    """By default the conv kernels split the batch over OpenMP's thread count. With OpenBLAS
    running its threads on fastnn's OpenMP team (the shared team) that holds whatever BLAS's own
    count; without it, only while BLAS is on one thread (its own workers would fight the team)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastnn._ext import _buildinfo

    if not _threads.num_threads()[2]:
        pytest.skip("NumPy's BLAS is not an OpenBLAS fastnn can pin")
    before = _threads.num_threads()[0]
    shared = _threads.shared_team()
    try:
        _threads.set_num_threads(0)
        for shared_team in (True, False):
            _threads.set_shared_team(shared_team)
            with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
                assert _threads.num_threads()[1] == (_buildinfo.openmp_max_threads() if shared_team else 1)
            with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
                assert _threads.num_threads()[1] == _buildinfo.openmp_max_threads()
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            _threads.set_num_threads(3)
            assert _threads.num_threads()[1] == 3
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            assert _threads.num_threads()[1] == 3  # an explicit count is obeyed
    finally:
        _threads.set_shared_team(shared)
        _threads.set_num_threads(before)
