"""spiral_data / vertical_data / sine_data against nnfs.datasets, with and without nnfs.init()."""
import nnfs
import numpy as np
import pytest
from nnfs.datasets import sine_data as nnfs_sine_data
from nnfs.datasets import spiral_data as nnfs_spiral_data
from nnfs.datasets import vertical_data as nnfs_vertical_data

import fastnn._core.config
from fastnn.datasets import sine_data, spiral_data, vertical_data

PATCHED_BY_NNFS = ((np, "dot"), (np, "zeros"), (np, "eye"), (np.random, "randn"))
ORIGINALS = {name: getattr(owner, name) for owner, name in PATCHED_BY_NNFS}

PAIRS = [(spiral_data, nnfs_spiral_data), (vertical_data, nnfs_vertical_data)]
PAIR_IDS = ["spiral", "vertical"]
SIZES = [(100, 3), (1, 1), (2, 2), (7, 5), (1000, 2), (33, 256)]


def numpy_is_unpatched():
    return all(getattr(owner, name) is ORIGINALS[name] for owner, name in PATCHED_BY_NNFS)


@pytest.fixture(autouse=True)
def _numpy_never_stays_patched():
    assert numpy_is_unpatched(), "numpy was left patched by an earlier test"
    yield
    assert numpy_is_unpatched(), "numpy was left patched by this test"


@pytest.fixture
def nnfs_initialized(monkeypatch):
    """nnfs.init() for the duration of one test; monkeypatch puts numpy's functions back afterwards."""
    for owner, name in PATCHED_BY_NNFS:
        monkeypatch.setattr(owner, name, getattr(owner, name))  # recorded now, restored at teardown
    nnfs.init()
    assert np.random.randn is not ORIGINALS["randn"] and np.zeros is not ORIGINALS["zeros"]
    yield


def draw(function, *args, seed, **kwargs):
    """function(*args) after np.random.seed(seed), and the next number the global RNG gives after it."""
    np.random.seed(seed)
    result = function(*args, **kwargs)
    return result, np.random.random()


def assert_same(ours, theirs):
    (X, y), (X_ref, y_ref) = ours, theirs
    assert X.dtype == X_ref.dtype and X.shape == X_ref.shape
    assert y.dtype == y_ref.dtype == np.uint8 and y.shape == y_ref.shape
    assert np.array_equal(X, X_ref), f"max difference {np.max(np.abs(X.astype(float) - X_ref))}"
    assert np.array_equal(y, y_ref)


@pytest.mark.parametrize("samples,classes", SIZES)
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_float64_is_nnfs_without_init(ours, theirs, samples, classes):
    result, after = draw(ours, samples, classes, dtype="float64", seed=7)
    expected, expected_after = draw(theirs, samples, classes, seed=7)
    assert expected[0].dtype == np.float64
    assert_same(result, expected)
    assert after == expected_after, "the RNG was not left where nnfs leaves it"


@pytest.mark.parametrize("samples,classes", SIZES)
@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_default_is_nnfs_after_init(ours, theirs, samples, classes, nnfs_initialized):
    result, after = draw(ours, samples, classes, seed=7)
    expected, expected_after = draw(theirs, samples, classes, seed=7)
    assert expected[0].dtype == np.float32
    assert_same(result, expected)
    assert after == expected_after


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=PAIR_IDS)
def test_float32_needs_the_float32_arithmetic(ours, theirs, nnfs_initialized):
    """Rounding float64 results to float32 is not enough: the test above would catch a shortcut."""
    np.random.seed(0)
    expected = theirs(300, 3)[0]
    np.random.seed(0)
    rounded = ours(300, 3, dtype="float64")[0].astype(np.float32)
    assert not np.array_equal(rounded, expected)


@pytest.mark.parametrize("ours", [spiral_data, vertical_data], ids=PAIR_IDS)
def test_same_arrays_with_and_without_nnfs_init(ours, request):
    before = {dtype: draw(ours, 50, 4, dtype=dtype, seed=3) for dtype in (None, "float32", "float64")}
    request.getfixturevalue("nnfs_initialized")
    assert not numpy_is_unpatched()
    for dtype, ((X, y), after) in before.items():
        (X2, y2), after2 = draw(ours, 50, 4, dtype=dtype, seed=3)
        assert X.dtype == X2.dtype and np.array_equal(X, X2) and np.array_equal(y, y2)
        assert after == after2


def test_sine_values_and_dtypes_in_both_modes(request):
    for mode in ("plain", "init"):
        if mode == "init":
            request.getfixturevalue("nnfs_initialized")
        for samples in (1, 3, 1000, 1234):
            X_ref, y_ref = nnfs_sine_data(samples)
            assert X_ref.dtype == y_ref.dtype == np.float64  # nnfs: float64 even after init()
            X64, y64 = sine_data(samples, dtype="float64")
            assert X64.dtype == y64.dtype == np.float64
            assert np.array_equal(X64, X_ref) and np.array_equal(y64, y_ref)
            X_default, y_default = sine_data(samples)  # float64 by default: identical to nnfs
            assert np.array_equal(X_default, X_ref) and X_default.dtype == np.float64
            assert np.array_equal(y_default, y_ref) and y_default.dtype == np.float64
            X32, y32 = sine_data(samples, dtype="float32")
            assert X32.dtype == y32.dtype == np.float32 and X32.shape == y32.shape == (samples, 1)
            assert np.array_equal(X32, X_ref.astype(np.float32)) and np.array_equal(y32, y_ref.astype(np.float32))
    assert sine_data()[0].shape == (1000, 1) == nnfs_sine_data()[0].shape


def test_sine_draws_nothing():
    np.random.seed(5)
    sine_data(100)
    after = np.random.random()
    np.random.seed(5)
    assert np.random.random() == after


def test_a_book_sequence_consumes_the_rng_like_nnfs(nnfs_initialized):
    """Datasets built one after another, then a weight matrix, as a book script does."""
    np.random.seed(0)
    ours = [spiral_data(samples=100, classes=3), vertical_data(samples=50, classes=2), spiral_data(17, 4)]
    weights = np.random.standard_normal((2, 64))
    np.random.seed(0)
    theirs = [nnfs_spiral_data(samples=100, classes=3), nnfs_vertical_data(samples=50, classes=2),
              nnfs_spiral_data(17, 4)]
    weights_ref = np.random.randn(2, 64)
    for a, b in zip(ours, theirs):
        assert_same(a, b)
    assert np.array_equal(weights.astype(np.float32), weights_ref)


def test_default_dtype_follows_fastnn_default(monkeypatch):
    monkeypatch.setattr(fastnn._core.config, "_default_dtype", np.dtype(np.float64))
    result, _ = draw(spiral_data, 20, 3, seed=1)
    expected, _ = draw(nnfs_spiral_data, 20, 3, seed=1)
    assert_same(result, expected)
    assert sine_data(10)[0].dtype == np.float64


def test_spiral_shape_of_the_data():
    np.random.seed(0)
    X, y = spiral_data(samples=100, classes=3)
    assert X.shape == (300, 2) and y.shape == (300,)
    assert np.array_equal(y, np.repeat(np.arange(3, dtype=np.uint8), 100))
    assert np.all(X[[0, 100, 200]] == 0)  # every arm starts at the origin (radius 0)
    assert np.all(np.abs(X) <= 1)


def test_vertical_shape_of_the_data():
    np.random.seed(0)
    X, y = vertical_data(samples=1000, classes=3)
    for k in range(3):
        assert abs(X[y == k, 0].mean() - k / 3) < 0.01
        assert abs(X[y == k, 1].mean() - 0.5) < 0.01


def test_keyword_names_are_the_book_api():
    np.random.seed(0)
    X, y = spiral_data(samples=5, classes=2)
    assert X.shape == (10, 2)
    X, y = vertical_data(samples=5, classes=2)
    assert X.shape == (10, 2)
    assert sine_data(samples=5)[0].shape == (5, 1)
    assert spiral_data(np.int64(3), np.uint8(2))[0].shape == (6, 2)


@pytest.mark.parametrize("function", [spiral_data, vertical_data], ids=PAIR_IDS)
@pytest.mark.parametrize("samples,classes,error,word", [
    (0, 3, ValueError, "samples"), (-5, 3, ValueError, "samples"), (2.0, 3, TypeError, "samples"),
    ("10", 3, TypeError, "samples"), (True, 3, TypeError, "samples"), (None, 3, TypeError, "samples"),
    (10, 0, ValueError, "classes"), (10, 257, ValueError, "classes"), (10, 1.5, TypeError, "classes"),
])
def test_generator_arguments_are_checked(function, samples, classes, error, word):
    with pytest.raises(error, match=word):
        function(samples, classes)


@pytest.mark.parametrize("samples,error", [(0, ValueError), (2.5, TypeError), ("5", TypeError)])
def test_sine_arguments_are_checked(samples, error):
    with pytest.raises(error, match="samples"):
        sine_data(samples)


@pytest.mark.parametrize("dtype", ["int32", np.float16, "float128x", object])
def test_dtype_is_checked(dtype):
    with pytest.raises(TypeError, match="dtype"):
        spiral_data(3, 2, dtype=dtype)
    with pytest.raises(TypeError, match="dtype"):
        sine_data(3, dtype=dtype)


def test_bad_arguments_draw_nothing():
    np.random.seed(9)
    with pytest.raises(ValueError):
        spiral_data(10, 300)
    after = np.random.random()
    np.random.seed(9)
    assert np.random.random() == after
