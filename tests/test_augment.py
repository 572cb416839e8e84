"""Augmentation_CropFlip: the compiled kernel (src_pyx/_augment.pyx) against fastnn.reference's
NumPy version given the same draws, the draws themselves (NumPy's global RNG, in the documented
order), the reused buffer, the refusals, and its use inside Model.train (per batch, the data set
untouched, a run reproduced by np.random.seed and equal to the reference Model's)."""
import contextlib
import io

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from fastnn._ext import _augment

from _book import build_model
from _state import snapshot

SHAPES = [(5, 1, 6, 6), (4, 3, 5, 7), (1, 2, 1, 9), (3, 1, 8, 2)]
SETTINGS = [(2, True), (1, False), (0, True), (3, True), (12, True)]   # 12: shifts past the whole image


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("padding, flip", SETTINGS)
def test_kernel_matches_the_reference_for_the_same_draws(shape, padding, flip, dtype):
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    before = x.copy()
    np.random.seed(7)
    fast = fastnn.Augmentation_CropFlip(padding, flip)
    got = fast(x).copy()
    after_fast = np.random.get_state()[2]
    np.random.seed(7)
    slow = ref.Augmentation_CropFlip(padding, flip)
    want = slow(x)
    assert np.random.get_state()[2] == after_fast          # the same number of draws
    assert got.dtype == want.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(x, before)                # the inputs are not changed


def test_given_draws_are_applied_as_documented(dtype):
    x = np.arange(2 * 1 * 3 * 4, dtype=dtype).reshape(2, 1, 3, 4) + 1
    aug = fastnn.Augmentation_CropFlip(padding=1, flip=True)
    rows, cols, flips = np.array([0, 2]), np.array([1, 0]), np.array([False, True])
    out = aug.apply(x, (rows, cols, flips))
    # sample 0: shifted down by one row (row offset 0 = one padding row on top), columns unchanged
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8]])
    # sample 1: shifted up one row and right one column (col offset 0), then mirrored
    shifted = np.array([[0, 17, 18, 19], [0, 21, 22, 23], [0, 0, 0, 0]], dtype)
    np.testing.assert_array_equal(out[1, 0], shifted[:, ::-1])
    np.testing.assert_array_equal(out, ref.Augmentation_CropFlip(1, True).apply(x, (rows, cols, flips)))


def test_draws_are_numpys_global_rng_in_the_documented_order():
    np.random.seed(11)
    rows, cols, flips = fastnn.Augmentation_CropFlip(3, True).draw(50)
    np.random.seed(11)
    assert np.array_equal(rows, np.random.randint(0, 7, 50))
    assert np.array_equal(cols, np.random.randint(0, 7, 50))
    assert np.array_equal(flips, np.random.random_sample(50) < 0.5)
    assert rows.min() >= 0 and rows.max() <= 6 and 0 < flips.sum() < 50
    assert fastnn.Augmentation_CropFlip(0, True).draw(4)[:2] == (None, None)
    assert fastnn.Augmentation_CropFlip(2, False).draw(4)[2] is None


def test_the_buffer_is_reused_and_sized_for_the_largest_batch():
    aug = fastnn.Augmentation_CropFlip(2)
    x = np.random.default_rng(0).standard_normal((8, 1, 5, 5)).astype(np.float32)
    first = aug(x)
    buffer = aug._buffer
    assert aug(x) is not x and aug._buffer is buffer
    small = aug(x[:3])
    assert small.shape == (3, 1, 5, 5) and np.shares_memory(small, buffer) and aug._buffer is buffer
    assert first.base is buffer or first is buffer
    aug(x.astype(np.float64))                                # another dtype: a new buffer
    assert aug._buffer.dtype == np.float64
    old = aug._buffer
    assert not np.shares_memory(aug(old), old)                # never written over its own input


@pytest.mark.parametrize("kwargs, error, match", [
    ({"padding": 0, "flip": False}, ValueError, "would change nothing"),
    ({"padding": -1}, ValueError, "padding must be a non-negative int"),
    ({"padding": 2.0}, TypeError, "padding must be"),
    ({"flip": 1}, TypeError, "flip must be True or False"),
])
def test_constructor_refusals(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastnn.Augmentation_CropFlip(**kwargs)


@pytest.mark.parametrize("inputs, match", [
    (np.zeros((4, 5, 5), np.float32), r"inputs must be a batch of images \(n_samples, channels, height, width\)"),
    (np.zeros((0, 1, 5, 5), np.float32), "at least one sample"),
    (np.array([["a"]]), "inputs must be an array of real numbers"),
])
def test_bad_inputs_are_refused(inputs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        fastnn.Augmentation_CropFlip(2)(inputs)


@pytest.mark.parametrize("draws, match", [
    ((np.array([0, 5]), np.array([0, 0]), np.array([True, False])), r"rows must be an int array of length 2 with values in \[0, 4\]"),
    ((np.array([0, 1]), np.array([0, -1]), np.array([True, False])), "cols must be"),
    ((np.array([0]), np.array([0, 1]), np.array([True, False])), "rows must be"),
    ((np.array([0, 1]), np.array([0, 1]), np.array([1, 0])), "flips must be a bool array of length 2"),
    ((np.array([0.0, 1.0]), np.array([0, 1]), np.array([True, False])), "rows must be"),
    ((np.array([0, 1]), np.array([0, 1])), "draws must be a tuple"),
])
def test_bad_draws_are_refused_before_anything_is_written(draws, match):
    aug = fastnn.Augmentation_CropFlip(2)
    x = np.ones((2, 1, 4, 4), np.float32)
    with pytest.raises((TypeError, ValueError), match=match):
        aug.apply(x, draws)
    assert "_buffer" not in vars(aug) and "output" not in vars(aug)


def test_flip_only_refuses_offsets():
    with pytest.raises(ValueError, match="rows must be None"):
        fastnn.Augmentation_CropFlip(0, True).apply(np.ones((2, 1, 3, 3)), (np.array([0, 0]), None, None))


def test_the_kernel_refuses_what_it_cannot_read():
    x = np.zeros((2, 1, 3, 3), np.float32)
    out = np.empty_like(x)
    intp = np.zeros(2, np.intp)
    assert _augment.crop_flip(x.astype(np.float16), out, None, None, None, 0) == _augment.CONVERT
    assert _augment.crop_flip(x, out[:1], None, None, None, 0) == _augment.BAD_OUTPUT
    assert _augment.crop_flip(x, x, None, None, None, 0) == _augment.BAD_OUTPUT
    assert _augment.crop_flip(x, out, intp + 3, intp, None, 1) == _augment.BAD_DRAWS
    assert _augment.crop_flip(x, out, intp, None, None, 1) == _augment.BAD_DRAWS
    assert _augment.crop_flip(x, out, None, None, np.zeros(3, bool), 0) == _augment.BAD_DRAWS
    assert _augment.crop_flip(x, out, intp, intp, np.zeros(2, bool), 1) == _augment.OK


# --- inside Model.train ---------------------------------------------------------------------------

def cnn(lib, seed=0):
    np.random.seed(seed)
    return build_model(lib, [lib.Layer_Conv2D(1, 3, 3, padding=1), lib.Activation_ReLU(), lib.Layer_MaxPool2D(2),
                             lib.Layer_Flatten(), lib.Layer_Dense(3 * 4 * 4, 3), lib.Activation_Softmax()],
                       loss=lib.Loss_CategoricalCrossentropy(), optimizer=lib.Optimizer_Adam(learning_rate=0.01),
                       accuracy=lib.Accuracy_Categorical())


def images(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def test_train_augments_each_batch_and_leaves_the_data_alone():
    X, y = images()
    X_before = X.copy()
    seen = []

    class Record(fastnn.Callback):
        def on_step_begin(self, run):
            seen.append(np.random.get_state()[2])

    model = cnn(fastnn)
    model.train(X, y, epochs=2, batch_size=16, verbose="silent", augment=fastnn.Augmentation_CropFlip(2),
                callbacks=[Record()])
    np.testing.assert_array_equal(X, X_before)
    assert len(seen) == 6 and len(set(seen)) == 6           # fresh draws every step
    # the first layer saw augmented batches, not the data
    assert not np.array_equal(model.layers[0].inputs, X[32:])


def test_a_seeded_augmented_run_is_reproduced_and_matches_the_reference():
    X, y = images()
    out = {}
    for name, lib in (("fast", fastnn), ("fast again", fastnn), ("reference", ref)):
        model = cnn(lib)
        np.random.seed(5)
        with contextlib.redirect_stdout(io.StringIO()) as log:
            model.train(X, y, epochs=3, batch_size=16, augment=lib.Augmentation_CropFlip(1, True))
        out[name] = (log.getvalue(), model.layers[4].weights.copy())
    assert out["fast"][0] == out["fast again"][0]
    np.testing.assert_array_equal(out["fast"][1], out["fast again"][1])
    # The same draws, the same batches: the logs agree to the printed digits.
    assert out["fast"][0].splitlines()[:3] == out["reference"][0].splitlines()[:3]
    np.testing.assert_allclose(out["fast"][1], out["reference"][1], rtol=1e-4, atol=1e-6)


def test_augment_with_shuffle_gathers_batches_without_copying_the_set():
    X, y = images(48)
    model = cnn(fastnn)
    np.random.seed(2)
    history = model.train(X, y, epochs=2, batch_size=16, verbose="silent", shuffle=True,
                          augment=fastnn.Augmentation_CropFlip(1))
    # the same run by hand: the epoch's permutation, then each batch's draws
    manual = cnn(fastnn)
    np.random.seed(2)
    aug = fastnn.Augmentation_CropFlip(1)
    for epoch in range(2):
        order = np.random.permutation(48)
        for step in range(3):
            rows = order[step * 16:(step + 1) * 16]
            manual.train(aug(X[rows]), y[rows], epochs=1, verbose="silent")
    np.testing.assert_array_equal(model.layers[4].weights, manual.layers[4].weights)
    assert len(history) == 2


def test_a_function_as_augment():
    X, y = images()
    model = cnn(fastnn)
    model.train(X, y, epochs=1, batch_size=20, verbose="silent", augment=lambda batch: batch[:, :, ::-1, :] * 1)
    with pytest.raises(ValueError, match=r"augment must return an array of the batch's shape \(20, 1, 8, 8\)"):
        cnn(fastnn).train(X, y, epochs=1, batch_size=20, verbose="silent", augment=lambda batch: batch[:5])


@pytest.mark.parametrize("augment, error, match", [
    (fastnn.Augmentation_CropFlip, TypeError, "augment must be an augmentation object"),
    ("crop", TypeError, "augment must be an augmentation object"),
])
def test_train_refuses_what_is_no_augmentation(augment, error, match):
    X, y = images()
    model = cnn(fastnn)
    before = snapshot(model)
    with pytest.raises(error, match=match):
        model.train(X, y, epochs=1, verbose="silent", augment=augment)
    assert snapshot(model) == before


def test_train_refuses_image_augmentation_of_flat_data():
    model = build_model(fastnn, [fastnn.Layer_Dense(4, 2), fastnn.Activation_Softmax()],
                        loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_SGD(),
                        accuracy=fastnn.Accuracy_Categorical())
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"needs image data \(n_samples, channels, height, width\), got X of shape \(6, 4\)"):
        model.train(np.zeros((6, 4)), np.zeros(6, int), verbose="silent", augment=fastnn.Augmentation_CropFlip())
    assert snapshot(model) == before
