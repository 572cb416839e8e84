"""fastnn.Model prints the book's training log, line for line, as fastnn.reference does.

The Ch18 spiral script and the Ch19 Fashion-MNIST recipe (docs/compatibility.md) run with ``fastnn`` (dropout
in book mode, so both draw the same ``np.random.binomial`` masks) and with ``fastnn.reference`` (the
book's classes in plain NumPy), from the same seed and data; the captured logs are compared as strings.
BLAS runs on one thread (tests/conftest.py), so GEMMs are bit-identical between the two.

What is exact and why (investigated, see test_ch18_float32_log_diverges_only_after_epoch_10):

* float64: the whole log is identical for as long as we ran it (60 epochs of Ch18; 20 here).
* float32 (the book's dtype): identical for the first 10 epochs of Ch18 (5 checked here) and for the
  whole small Ch19 run. From epoch 11 of Ch18 the third decimal starts to differ. Cause: fastnn's
  kernels accumulate bias-gradient column sums and loss sums in double (docs/numerics.md) where NumPy sums
  float32 pairwise, and its softmax rounds differently, so after the very first step the gradients
  differ by float32 rounding (dbiases by ~3e-7, softmax outputs by 1-2 ulp). Adam's first steps divide
  each gradient by its own magnitude (m_hat / sqrt(v_hat) ~ sign(g)), which turns those rounding
  differences on near-zero gradients into weight differences of ~1e-5 after step 1, and the lr-0.05
  spiral run is chaotic: the difference grows to ~1e-3 in the weights by epoch 10 and shows in the
  printed third decimal from epoch 11 (0.03 apart by epoch 30). Neither side is "wrong"; the float64
  runs, where rounding is 2^29 times smaller, stay identical.
"""
import functools
import gzip
import re

import numpy as np
import pytest
from nnfs.datasets import spiral_data

import fastnn
import fastnn.reference as ref
from fastnn._core import config as _config

# Verified live with the book's Ch22 classes (the first lines of the Ch18 run).
BOOK_CH18_FIRST_LINES = [
    "epoch: 1",
    "step: 0, acc: 0.354, loss: 1.099 (data_loss: 1.099, reg_loss: 0.000), lr: 0.05",
    "training, acc: 0.354, loss: 1.101 (data_loss: 1.099, reg_loss: 0.002), lr: 0.05",
    "validation, acc: 0.407, loss: 1.087",
    "epoch: 2",
]
LINE = re.compile(
    r"epoch: \d+|"
    r"step: \d+, acc: \d+\.\d{3}, loss: \d+\.\d{3} \(data_loss: \d+\.\d{3}, reg_loss: \d+\.\d{3}\), lr: \S+|"
    r"training, acc: \d+\.\d{3}, loss: \d+\.\d{3} \(data_loss: \d+\.\d{3}, reg_loss: \d+\.\d{3}\), lr: \S+|"
    r"validation, acc: \d+\.\d{3}, loss: \d+\.\d{3}")


@pytest.fixture
def restore_globals():
    """Tests here seed the global RNG and may change fastnn's defaults: put both back."""
    state = np.random.get_state()
    defaults = (_config._default_dtype, _config._dropout_mode)
    yield
    np.random.set_state(state)
    _config._default_dtype, _config._dropout_mode = defaults


def ch18_run(lib, epochs, dtype=None, capsys=None, **dropout_kwargs):
    """The Ch18 script: np.random.seed(0), spiral 1000x3 and a 100x3 test set, Dense(2, 512, L2
    5e-4/5e-4), ReLU, Dropout(0.1), Dense(512, 3), Softmax, CCE, Adam(0.05, decay 5e-5), categorical
    accuracy, validation data, print_every=100. Returns the log lines and the model."""
    np.random.seed(0)
    X, y = spiral_data(samples=1000, classes=3)
    X_test, y_test = spiral_data(samples=100, classes=3)
    model = lib.Model()
    model.add(lib.Layer_Dense(2, 512, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4, dtype=dtype))
    model.add(lib.Activation_ReLU())
    model.add(lib.Layer_Dropout(0.1, **dropout_kwargs))
    model.add(lib.Layer_Dense(512, 3, dtype=dtype))
    model.add(lib.Activation_Softmax())
    model.set(loss=lib.Loss_CategoricalCrossentropy(),
              optimizer=lib.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
              accuracy=lib.Accuracy_Categorical())
    model.finalize()
    capsys.readouterr()
    model.train(X, y, validation_data=(X_test, y_test), epochs=epochs, print_every=100)
    return capsys.readouterr().out.splitlines(), model


def assert_same_log(ours, theirs):
    assert len(ours) == len(theirs)
    for number, (a, b) in enumerate(zip(ours, theirs)):
        assert LINE.fullmatch(a), f"line {number}: not a book log line: {a!r}"
        assert a == b, f"line {number} differs:\n fastnn:    {a}\n reference: {b}"


def test_ch18_float32_log_equals_the_reference_and_the_book(restore_globals, capsys):
    ours, model = ch18_run(fastnn, 5, capsys=capsys, mode="book")
    theirs, _ = ch18_run(ref, 5, capsys=capsys)
    assert model.layers[0].weights.dtype == np.float32
    assert_same_log(ours, theirs)
    assert len(ours) == 5 * 4
    assert ours[:5] == BOOK_CH18_FIRST_LINES
    assert ours[5].endswith("lr: 0.049997500124993745")


def test_ch18_float64_log_equals_the_reference_for_20_epochs(restore_globals, capsys):
    ours, model = ch18_run(fastnn, 20, np.float64, capsys=capsys, mode="book")
    theirs, reference = ch18_run(ref, 20, np.float64, capsys=capsys)
    assert_same_log(ours, theirs)
    for a, b in zip(model.trainable_layers, reference.trainable_layers):
        np.testing.assert_allclose(a.weights, b.weights, rtol=0, atol=1e-11)


def test_book_dropout_mode_through_fastnn_init(restore_globals, capsys):
    """fastnn.init(dropout_mode="book") makes the book's masks the default: same log as above."""
    fastnn.init(dropout_mode="book")
    ours, model = ch18_run(fastnn, 2, capsys=capsys)
    assert model.layers[2].mode == "book"
    theirs, _ = ch18_run(ref, 2, capsys=capsys)
    assert ours == theirs


def test_fast_dropout_mode_gives_another_but_reproducible_log(restore_globals, capsys):
    """The default (fast) masks are not the book's, so the log differs after the first step, but
    the same seed gives the same log."""
    first, _ = ch18_run(fastnn, 2, capsys=capsys, mode="fast")
    second, _ = ch18_run(fastnn, 2, capsys=capsys, mode="fast")
    book, _ = ch18_run(fastnn, 2, capsys=capsys, mode="book")
    assert first == second
    assert first != book
    assert first[0] == book[0] == "epoch: 1"


def test_ch18_float32_log_diverges_only_after_epoch_10(restore_globals, capsys):
    """The investigation behind the module docstring: the float32 logs are identical for 10 epochs;
    afterwards the lines keep their structure and learning rates, and the numbers stay close."""
    ours, _ = ch18_run(fastnn, 30, capsys=capsys, mode="book")
    theirs, _ = ch18_run(ref, 30, capsys=capsys)
    assert ours[:40] == theirs[:40]
    number = re.compile(r"\d+\.\d{3}(?!\d)")
    for a, b in zip(ours, theirs):
        assert number.sub("#", a) == number.sub("#", b)   # same structure and the same lr text
        for x, y in zip(number.findall(a), number.findall(b)):
            assert abs(float(x) - float(y)) <= 0.05


# --- Ch19: Fashion-MNIST ------------------------------------------------------------------------


def read_idx(path, offset, count=None, item_size=1):
    """An IDX file (gz) as uint8: images after a 16-byte header, labels after an 8-byte one."""
    with gzip.open(path, "rb") as f:
        data = f.read(offset + count * item_size) if count is not None else f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=offset)


@functools.lru_cache(maxsize=1)
def _fashion_slice(folder):
    X = read_idx(folder / "train-images-idx3-ubyte.gz", 16, 1000, 784).reshape(-1, 28, 28)
    y = read_idx(folder / "train-labels-idx1-ubyte.gz", 8, 1000)
    X_test = read_idx(folder / "t10k-images-idx3-ubyte.gz", 16, 500, 784).reshape(-1, 28, 28)
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz", 8, 500)
    return X, y, X_test, y_test


@pytest.fixture
def fashion_slice(shared_datasets):
    """1000 training and 500 test images of Fashion-MNIST (uint8, (n, 28, 28)) and their labels."""
    folder = shared_datasets / "fashion-mnist"
    if not folder.is_dir():
        pytest.skip(f"Fashion-MNIST not found in {shared_datasets}")
    return _fashion_slice(folder)


def ch19_run(lib, data, dtype, capsys, epochs=2):
    """The Ch19 recipe on a slice: shuffle the training set once with np.random.shuffle on an index
    array, scale to [-1, 1] and flatten, Dense(784,128) ReLU Dense(128,128) ReLU Dense(128,10)
    Softmax, CCE, Adam(decay=1e-3), batch 128, print_every=100, validation on the test slice."""
    X, y, X_test, y_test = data
    np.random.seed(0)
    keys = np.array(range(X.shape[0]))
    np.random.shuffle(keys)
    X, y = X[keys], y[keys]
    X = (X.reshape(X.shape[0], -1).astype(np.float32) - 127.5) / 127.5
    X_test = (X_test.reshape(X_test.shape[0], -1).astype(np.float32) - 127.5) / 127.5
    model = lib.Model()
    model.add(lib.Layer_Dense(X.shape[1], 128, dtype=dtype))
    model.add(lib.Activation_ReLU())
    model.add(lib.Layer_Dense(128, 128, dtype=dtype))
    model.add(lib.Activation_ReLU())
    model.add(lib.Layer_Dense(128, 10, dtype=dtype))
    model.add(lib.Activation_Softmax())
    model.set(loss=lib.Loss_CategoricalCrossentropy(), optimizer=lib.Optimizer_Adam(decay=1e-3),
              accuracy=lib.Accuracy_Categorical())
    model.finalize()
    capsys.readouterr()
    model.train(X, y, validation_data=(X_test, y_test), epochs=epochs, batch_size=128, print_every=100)
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_ch19_fashion_mnist_log_equals_the_reference(fashion_slice, dtype, restore_globals, capsys):
    ours = ch19_run(fastnn, fashion_slice, dtype, capsys)
    theirs = ch19_run(ref, fashion_slice, dtype, capsys)
    assert_same_log(ours, theirs)
    # 1000 samples in batches of 128: steps 0..7 (the last one partial); print_every=100 prints
    # step 0 and the last step.
    steps = [line.split(",")[0] for line in ours if line.startswith("step")]
    assert steps == ["step: 0", "step: 7"] * 2
    assert ours[0] == "epoch: 1" and ours[1].endswith("lr: 0.001")
    assert ours[2].endswith("lr: 0.00099304865938431")   # 1 / (1 + 1e-3 * 7) * 0.001
