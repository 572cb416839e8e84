"""fastnn.reference reproduces the book's printed numbers.

The book runs under ``nnfs.init()``, which patches NumPy globally (np.dot computes in float64 and
returns float32; np.zeros/np.eye/np.random.randn default to float32) and seeds the global RNG with
0. The ``nnfs_init`` fixture below protects those four names with ``monkeypatch`` first, so NumPy is
restored after each test whatever happens.

Where the book's float64 ``np.dot`` and our float32 ``np.matmul`` round differently, the test says
so and uses a tolerance derived from float32 rounding; everything else is compared exactly.
"""
import re

import nnfs
import numpy as np
import pytest
from nnfs.datasets import spiral_data

import fastnn
import fastnn.reference as ref

import _book

F32_EPS = float(np.finfo(np.float32).eps)
_NUMPY_ORIGINALS = (np.dot, np.zeros, np.eye, np.random.randn)


@pytest.fixture(autouse=True)
def _numpy_is_never_left_patched():
    """Every test here starts and ends with NumPy unpatched."""
    assert (np.dot, np.zeros, np.eye, np.random.randn) == _NUMPY_ORIGINALS
    yield
    assert (np.dot, np.zeros, np.eye, np.random.randn) == _NUMPY_ORIGINALS


@pytest.fixture
def nnfs_init(monkeypatch):
    """A function that runs ``nnfs.init()``; the patched names and the RNG state are restored on teardown."""
    monkeypatch.setattr(np, "dot", np.dot)
    monkeypatch.setattr(np, "zeros", np.zeros)
    monkeypatch.setattr(np, "eye", np.eye)
    monkeypatch.setattr(np.random, "randn", np.random.randn)
    state = np.random.get_state()

    def init(**kwargs):
        nnfs.init(**kwargs)

    yield init
    np.random.set_state(state)


# --- Chapter 3: Dense(2, 3) on spiral 100x3 ----------------------------------------------------

CH3_FIRST_ROWS = np.array([
    [0.0000000e+00, 0.0000000e+00, 0.0000000e+00],
    [-1.0475188e-04, 1.1395361e-04, -4.7983500e-05],
    [-2.7414842e-04, 3.1729150e-04, -8.6921798e-05],
    [-4.2188365e-04, 5.2666257e-04, -5.5912682e-05],
    [-5.7707680e-04, 7.1401405e-04, -8.9430439e-05],
], dtype=np.float32)


def test_ch3_dense_output_first_rows(nnfs_init):
    nnfs_init()
    X, _ = spiral_data(samples=100, classes=3)
    dense1 = ref.Layer_Dense(2, 3)
    dense1.forward(X)
    assert dense1.output.dtype == np.float32
    out = dense1.output[:5]
    # 14 of the 15 printed values are reproduced exactly. Element [1, 0] is one float32 ulp away:
    # the book's np.dot (patched by nnfs) computes x0*w0 + x1*w1 in float64 and rounds once, our
    # float32 matmul rounds each product; the book prints -1.0475188e-04, we get -1.04751874e-04.
    ulps = np.abs(out.view(np.int32).astype(np.int64) - CH3_FIRST_ROWS.view(np.int32))
    assert ulps.max() <= 1
    assert np.count_nonzero(ulps) <= 1
    np.testing.assert_array_equal(out[0], 0.0)  # the first spiral point is the origin


def test_ch3_weights_are_the_books_bit_for_bit(nnfs_init):
    """Our weights come from the same RNG stream as the book's ``0.01 * np.random.randn(...)``."""
    nnfs_init()
    book_weights = 0.01 * np.random.randn(2, 512)  # the patched randn: float32
    np.random.seed(0)
    layer = ref.Layer_Dense(2, 512)
    assert layer.weights.dtype == book_weights.dtype == np.float32
    np.testing.assert_array_equal(layer.weights, book_weights)
    assert layer.biases.dtype == np.float32 and layer.biases.shape == (1, 512)
    np.testing.assert_array_equal(layer.biases, 0)


def test_weights_without_nnfs_init_float64_match_plain_numpy():
    np.random.seed(3)
    expected = 0.01 * np.random.randn(4, 5)
    after = np.random.randn()
    np.random.seed(3)
    layer = ref.Layer_Dense(4, 5, dtype=np.float64)
    np.testing.assert_array_equal(layer.weights, expected)
    assert np.random.randn() == after  # consumed exactly n_inputs * n_neurons normals


# --- Chapter 5: one forward pass and the loss --------------------------------------------------

def test_ch5_loss(nnfs_init):
    nnfs_init()
    X, y = spiral_data(samples=100, classes=3)
    layers = [ref.Layer_Dense(2, 3), ref.Activation_ReLU(), ref.Layer_Dense(3, 3), ref.Activation_Softmax()]
    output, loss = _book.loss_forward(ref.Loss_CategoricalCrossentropy(), _book.forward(layers, X), y)
    assert isinstance(loss, np.float32)
    assert str(loss) == "1.0986104"  # exact, as printed by the book
    np.testing.assert_allclose(output[:5], 1 / 3, atol=3e-6)


# --- Chapter 9: gradients of the two-layer network ---------------------------------------------

def test_ch9_gradients(nnfs_init):
    nnfs_init()
    X, y = spiral_data(samples=100, classes=3)
    layers = dense1, activation1, dense2 = [ref.Layer_Dense(2, 3), ref.Activation_ReLU(), ref.Layer_Dense(3, 3)]
    loss_activation = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
    output, loss = _book.loss_forward(loss_activation, _book.forward(layers, X), y)
    assert str(loss) == "1.0986104"
    accuracy = np.mean(np.argmax(output, axis=1) == y)
    assert f"{accuracy:.2f}" == "0.34"
    _book.backward(layers, loss_activation, output, y)

    book_dbiases2 = np.array([[-1.0729185e-05, -9.4610732e-06, 2.0027859e-05]], dtype=np.float32)
    np.testing.assert_array_equal(dense2.dbiases, book_dbiases2)  # exact

    book_dbiases1 = np.array([[-3.60553473e-04, 9.66117223e-05, -1.03671395e-04]], dtype=np.float32)
    # The first two are exact. The third is 16 float32 ulps off (we get -1.0367128e-04): it sums 300
    # entries of activation1.dinputs whose float32 rounding differs between the book's float64
    # np.dot and our float32 matmul, and the sum cancels (sum |terms| = 1.34e-3, 13x the result).
    # Recomputed with nnfs's float64 dot the book's digits come back exactly; the exact float64
    # value is -1.036715e-04, between the two. Tolerance: float32 rounding of the summed terms.
    np.testing.assert_array_equal(dense1.dbiases[0, :2], book_dbiases1[0, :2])
    tolerance = 2 * F32_EPS * np.sum(np.abs(activation1.dinputs), axis=0)
    assert np.all(np.abs(dense1.dbiases[0] - book_dbiases1[0]) <= tolerance)
    assert dense1.dbiases.dtype == dense2.dbiases.dtype == np.float32


# --- Chapter 18 model: the log, character for character ----------------------------------------

# The first five lines were verified live with the book's classes. The other seven come from
# running the book's Ch22 classes unchanged under nnfs.init() in this environment (numpy 2.4.6,
# one BLAS thread); that run also reproduces the book's epoch-100 figures exactly.
# Our float32 matmul (and float32 dropout products) reproduce all twelve lines; the runs part in
# the third decimal from epoch 8 on (first differing line: epoch 8's validation line, the book
# prints "acc: 0.337, loss: 1.106", we print "acc: 0.333, loss: 1.105"): training is chaotic.
CH18_LOG = [
    "epoch: 1",
    "step: 0, acc: 0.354, loss: 1.099 (data_loss: 1.099, reg_loss: 0.000), lr: 0.05",
    "training, acc: 0.354, loss: 1.101 (data_loss: 1.099, reg_loss: 0.002), lr: 0.05",
    "validation, acc: 0.407, loss: 1.087",
    "epoch: 2",
    "step: 0, acc: 0.427, loss: 1.081 (data_loss: 1.079, reg_loss: 0.002), lr: 0.049997500124993745",
    "training, acc: 0.427, loss: 1.082 (data_loss: 1.079, reg_loss: 0.003), lr: 0.049997500124993745",
    "validation, acc: 0.360, loss: 1.249",
    "epoch: 3",
    "step: 0, acc: 0.355, loss: 1.237 (data_loss: 1.234, reg_loss: 0.003), lr: 0.04999500049995001",
    "training, acc: 0.355, loss: 1.237 (data_loss: 1.234, reg_loss: 0.004), lr: 0.04999500049995001",
    "validation, acc: 0.347, loss: 1.206",
]


def ch18_spiral_model(nnfs_init):
    """The Ch18 script (run with the Ch22 classes): nnfs.init(), the training and test spirals, the
    512-unit model with L2 and dropout, Adam(0.05, decay 5e-5), categorical accuracy."""
    nnfs_init()
    X, y = spiral_data(samples=1000, classes=3)
    X_test, y_test = spiral_data(samples=100, classes=3)
    return _book.ch18_model(ref), (X, y), (X_test, y_test)


def test_ch18_spiral_model_log(nnfs_init, capsys):
    model, (X, y), validation_data = ch18_spiral_model(nnfs_init)
    assert model.train(X, y, validation_data=validation_data, epochs=3, print_every=100) is None
    assert capsys.readouterr().out.splitlines() == CH18_LOG


def test_ch18_spiral_model_after_100_epochs_is_near_the_book(nnfs_init, capsys):
    """The book at epoch 100: training acc 0.720 loss 0.719, validation acc 0.757 loss 0.627.
    We print training acc 0.717 loss 0.715, validation acc 0.757 loss 0.621 (see CH18_LOG).
    About 3 s."""
    model, (X, y), validation_data = ch18_spiral_model(nnfs_init)
    model.train(X, y, validation_data=validation_data, epochs=100, print_every=100)
    training, validation = capsys.readouterr().out.splitlines()[-2:]
    numbers = [float(v) for v in re.findall(r"\d+\.\d{3}(?!\d)", training + " " + validation)]
    train_acc, train_loss, _, _, val_acc, val_loss = numbers
    assert abs(train_acc - 0.720) < 0.02 and abs(train_loss - 0.719) < 0.02
    assert abs(val_acc - 0.757) < 0.02 and abs(val_loss - 0.627) < 0.02


# --- Learning-rate decay: the book's final lr values -------------------------------------------

def _lr_after(optimizer, steps):
    """current_learning_rate used by the last of ``steps`` optimizer steps (no real training)."""
    for _ in range(steps):
        _book.update(optimizer, [])
    return optimizer.current_learning_rate


@pytest.mark.parametrize("learning_rate, decay, steps, expected", [
    (0.05, 5e-5, 10000, "0.03333444448148271"),       # Ch15 / Ch18 spiral, 10000 epochs
    (0.001, 1e-3, 4690, "0.00017577781683951485"),    # Ch19 Fashion-MNIST, 10 epochs x 469 steps
    (0.05, 5e-7, 10000, "0.04975126853296942"),       # Ch11, printed at epoch 10000
    (0.02, 5e-7, 10000, "0.019900507413187767"),      # Ch14
    (0.001, 5e-7, 10000, "0.0009950253706593885"),    # Ch16 (Adam's default lr)
    (0.005, 1e-3, 10000, "0.00045458678061641964"),   # Ch17 regression (our §8 run)
])
def test_adam_decay_final_learning_rate(learning_rate, decay, steps, expected):
    optimizer = ref.Optimizer_Adam(learning_rate=learning_rate, decay=decay)
    assert str(_lr_after(optimizer, steps)) == expected
    assert optimizer.iterations == steps


def test_decay_sequence_uses_iterations_before_increment():
    for cls in (ref.Optimizer_SGD, ref.Optimizer_Adagrad, ref.Optimizer_RMSprop, ref.Optimizer_Adam):
        optimizer = cls(learning_rate=0.05, decay=5e-5)
        assert optimizer.current_learning_rate == 0.05
        printed = [str(_lr_after(optimizer, 1)) for _ in range(3)]
        assert printed == ["0.05", "0.049997500124993745", "0.04999500049995001"]


def test_no_decay_keeps_the_given_learning_rate_object():
    optimizer = ref.Optimizer_SGD()
    assert str(_lr_after(optimizer, 5)) == "1.0"
    assert optimizer.iterations == 5


# --- Same results with and without nnfs.init() -------------------------------------------------

def _explicit_data():
    rng = np.random.default_rng(2024)
    X = rng.standard_normal((96, 2))
    y_class = (X[:, 0] * X[:, 1] > 0).astype(np.uint8) + (X[:, 0] > 1).astype(np.uint8)
    y_binary = (X[:, :1] > 0).astype(np.uint8)
    y_regression = np.sin(X[:, :1])
    return X, y_class, y_binary, y_regression


def _train_configs(kind):
    """(model, X, y) for one of the model kinds; built from the global RNG in the book's order."""
    X, y_class, y_binary, y_regression = _explicit_data()
    if kind == "categorical":
        layers = [ref.Layer_Dense(2, 16, weight_regularizer_l1=1e-4, weight_regularizer_l2=5e-4,
                                  bias_regularizer_l1=1e-4, bias_regularizer_l2=5e-4),
                  ref.Activation_ReLU(), ref.Layer_Dropout(0.1), ref.Layer_Dense(16, 3), ref.Activation_Softmax()]
        parts = dict(loss=ref.Loss_CategoricalCrossentropy(), accuracy=ref.Accuracy_Categorical(),
                     optimizer=ref.Optimizer_Adam(learning_rate=0.05, decay=5e-5))
        y = y_class
    elif kind == "binary":
        layers = [ref.Layer_Dense(2, 16), ref.Activation_ReLU(), ref.Layer_Dense(16, 1), ref.Activation_Sigmoid()]
        parts = dict(loss=ref.Loss_BinaryCrossentropy(), accuracy=ref.Accuracy_Categorical(binary=True),
                     optimizer=ref.Optimizer_SGD(learning_rate=0.5, decay=1e-3, momentum=0.9))
        y = y_binary
    elif kind == "regression":
        layers = [ref.Layer_Dense(2, 16), ref.Activation_ReLU(), ref.Layer_Dense(16, 1), ref.Activation_Linear()]
        parts = dict(loss=ref.Loss_MeanSquaredError(), accuracy=ref.Accuracy_Regression(),
                     optimizer=ref.Optimizer_RMSprop(learning_rate=0.01))
        y = y_regression
    else:  # mae + adagrad + softmax-free classifier head
        layers = [ref.Layer_Dense(2, 8), ref.Activation_Sigmoid(), ref.Layer_Dense(8, 1), ref.Activation_Linear()]
        parts = dict(loss=ref.Loss_MeanAbsoluteError(), accuracy=ref.Accuracy_Regression(),
                     optimizer=ref.Optimizer_Adagrad(learning_rate=0.1))
        y = y_regression
    return _book.build_model(ref, layers, **parts), X, y


def _run(kind, capsys):
    np.random.seed(11)
    model, X, y = _train_configs(kind)
    model.train(X, y, epochs=3, batch_size=32, print_every=2, validation_data=(X, y))
    predictions = model.predict(X, batch_size=40)
    log = capsys.readouterr().out
    return [p.copy() for pair in model.get_parameters() for p in pair], predictions, log


@pytest.fixture
def default_dtype(dtype):
    """fastnn's default parameter dtype set to ``dtype`` for one test, then restored."""
    previous = fastnn.default_dtype()
    fastnn.init(random_seed=None, dtype=dtype)
    yield dtype
    fastnn.init(random_seed=None, dtype=previous)


@pytest.mark.parametrize("kind", ["categorical", "binary", "regression", "mae"])
def test_results_do_not_depend_on_nnfs_init(kind, default_dtype, nnfs_init, capsys):
    plain_parameters, plain_predictions, plain_log = _run(kind, capsys)
    nnfs_init()
    patched_parameters, patched_predictions, patched_log = _run(kind, capsys)
    assert np.dot is not _NUMPY_ORIGINALS[0]  # the second run really was under the patch
    assert patched_log == plain_log
    for plain, patched in zip(plain_parameters, patched_parameters):
        assert plain.dtype == patched.dtype == default_dtype
        np.testing.assert_array_equal(plain, patched)
    np.testing.assert_array_equal(plain_predictions, patched_predictions)


def test_sparse_cce_backward_and_softmax_backward_do_not_depend_on_nnfs_init(nnfs_init):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((7, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=7)
    dvalues = rng.standard_normal((7, 4)).astype(np.float32)

    def compute():
        softmax = ref.Activation_Softmax()
        softmax.forward(logits)
        softmax.backward(dvalues)
        loss = ref.Loss_CategoricalCrossentropy()
        loss.backward(softmax.output, y)
        return softmax.dinputs, loss.dinputs

    plain = compute()
    nnfs_init(default_dtype="float64")  # np.eye would now default to float64
    patched = compute()
    for a, b in zip(plain, patched):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
