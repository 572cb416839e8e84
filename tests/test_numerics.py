"""Numerical safety (docs/numerics.md): extreme logits keep softmax and the losses
finite, sigmoid and the log losses raise no floating-point warnings, the book's clipping holds at
exactly 0 and 1, a float64 value that float32 cannot hold is refused instead of becoming inf, and a
NaN or inf born inside training stops Model.train at the step where it appears.

Every block below runs with warnings turned into errors and NumPy's floating-point errors raised
(`strict()`): a warning anywhere in fastnn's Python code or in the NumPy calls it makes fails the
test. (Kernel arithmetic in C raises no Python warnings at all; what is checked there is the
values.) Tests of single kernels at extreme inputs are in test_kernels.py (sigmoid at +-1e4,
softmax with large inputs); these go through the chains and the Model.
"""
from __future__ import annotations

import contextlib
import re
import warnings

import numpy as np
import pytest

import fastnn
from _models import mlp
import fastnn.reference as ref
from fastnn.datasets import spiral_data

EXTREMES = (1e4, 1e4 * 3, 3e38)  # 3e38 is finite in float32 (max 3.4e38)


@contextlib.contextmanager
def strict():
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        yield


def extreme_logits(dtype, scale, n=64, classes=5, seed=0):
    """Rows mixing +-scale, 0 and ordinary values, with ties of the maximum and rows of one value."""
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-scale, scale, 0.0, 1.5, -2.0]), size=(n, classes)).astype(dtype)
    x[0] = scale            # all equal: uniform probabilities
    x[1] = -scale
    x[2] = [scale, scale, -scale, -scale, 0][:classes]
    return x


@pytest.mark.parametrize("scale", EXTREMES)
def test_softmax_and_categorical_crossentropy_stay_finite_for_extreme_logits(dtype, scale):
    x = extreme_logits(dtype, scale)
    y = np.random.default_rng(1).integers(0, x.shape[1], len(x))
    onehot = np.eye(x.shape[1], dtype=dtype)[y]
    with strict():
        combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
        loss = combined.forward(x, y)
        combined.backward(combined.output, y)
        softmax, cce = fastnn.Activation_Softmax(), fastnn.Loss_CategoricalCrossentropy()
        softmax.forward(x)
        per_sample = cce.forward(softmax.output, onehot)
        cce.backward(np.clip(softmax.output, 1e-7, 1), y)
        softmax.backward(cce.dinputs)
    for name, value in [("softmax", combined.output), ("combined dinputs", combined.dinputs),
                        ("per-sample losses", per_sample), ("cce dinputs", cce.dinputs),
                        ("softmax dinputs", softmax.dinputs)]:
        assert np.all(np.isfinite(value)), f"{name} is not finite"
    assert np.isfinite(loss)
    np.testing.assert_allclose(combined.output.sum(axis=1), 1, rtol=x.shape[1] * 4 * np.finfo(dtype).eps)
    # The loss can be no more than -log(1e-7) (the book's clip): 16.12 per sample.
    assert 0 <= loss <= -np.log(np.float64(np.float32(1e-7))) + 1e-5
    np.testing.assert_array_equal(combined.output[0], np.full(x.shape[1], 1 / x.shape[1], dtype))
    # Same values as the reference (whose softmax also subtracts the row max; no NaN there either).
    r = ref.Activation_Softmax()
    with np.errstate(under="ignore", over="ignore"):   # -3e38 - 3e38 = -inf, exp(-inf) = 0: as fastnn
        r.forward(x)
    np.testing.assert_allclose(combined.output, r.output, rtol=16 * np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("scale", EXTREMES)
def test_sigmoid_and_binary_crossentropy_chain_at_extreme_logits(dtype, scale):
    """Sigmoid saturates to exactly 0 and 1; BCE clips them, so the loss and both gradients stay
    finite, and nothing warns (the book's 1 / (1 + exp(-x)) warns 'overflow in exp')."""
    x = np.array([[-scale, scale, 0, -1], [scale, -scale, 50, -50]], dtype)
    y = np.array([[1, 0, 1, 0], [1, 0, 0, 1]], dtype)
    with strict():
        sigmoid, bce = fastnn.Activation_Sigmoid(), fastnn.Loss_BinaryCrossentropy()
        sigmoid.forward(x)
        loss = bce.calculate(sigmoid.output, y)
        bce.backward(sigmoid.output, y)
        sigmoid.backward(bce.dinputs)
    assert sigmoid.output[0, 0] == 0 and sigmoid.output[0, 1] == 1
    assert np.isfinite(loss) and np.all(np.isfinite(bce.dinputs)) and np.all(np.isfinite(sigmoid.dinputs))
    # Worst case per output: -log(1e-7) = 16.12 (the prediction is clipped, not 0).
    assert loss <= 16.2


@pytest.mark.parametrize("name", ["Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy"])
def test_log_losses_clip_exact_zeros_and_ones_like_the_book(dtype, name):
    """Probabilities of exactly 0 and 1 give the book's clipped values (-log(1e-7), -log(1 - (1 - 1e-7)))
    in the data's dtype, equal to the reference's, with no warning."""
    p = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype)
    if name == "Loss_CategoricalCrossentropy":
        y = np.array([0, 0, 1])
    else:
        y = np.array([[1, 0], [0, 1], [1, 1]], dtype)
    a, b = getattr(fastnn, name)(), getattr(ref, name)()
    with strict():
        got = a.forward(p, y)
    expected = b.forward(p, y)
    assert np.all(np.isfinite(got))
    rtol = 8 * float(np.finfo(dtype).eps)   # ULPS (test_kernels.py): two implementations of log
    np.testing.assert_allclose(got, expected, rtol=rtol)
    low = -np.log(np.float64(dtype.type(1e-7)))                        # -log(clip(0))
    high = -np.log(1 - np.float64(dtype.type(1) - dtype.type(1e-7)))   # -log(1 - clip(1))
    first = low if name == "Loss_CategoricalCrossentropy" else (low + high) / 2
    assert float(got[0]) == pytest.approx(first, rel=rtol)


def test_backward_of_the_log_losses_at_exact_zeros_is_finite_where_the_target_is_zero(dtype):
    """CCE's gradient is -y/p: at p == 0 with y == 0 the book computes -0/0 = NaN; fastnn gives 0
    (the gradient of 0 * log p). BCE clips p first, so p == 0 or 1 give finite gradients."""
    p = np.array([[0.0, 1.0], [1.0, 0.0]], dtype)
    with strict():
        cce = fastnn.Loss_CategoricalCrossentropy()
        cce.backward(p, np.array([1, 0]))
        bce = fastnn.Loss_BinaryCrossentropy()
        bce.backward(p, np.array([[0, 1], [1, 0]], dtype))
    assert np.all(np.isfinite(cce.dinputs)) and np.all(np.isfinite(bce.dinputs))


@pytest.mark.parametrize("name", ["Loss_MeanSquaredError", "Loss_MeanAbsoluteError"])
def test_regression_losses_accumulate_in_double(name):
    """float32 predictions of 1e18: each squared error (1e36) fits float32 and the sum over a batch,
    accumulated in double, does not overflow (a float32 sum of 1000 such terms would be 1e39 = inf)."""
    p = np.full((1000, 1), 1e18, np.float32)
    y = np.zeros((1000, 1), np.float32)
    with strict():
        loss = getattr(fastnn, name)().calculate(p, y)
    assert np.isfinite(loss)
    assert loss == pytest.approx(1e36 if name == "Loss_MeanSquaredError" else 1e18, rel=1e-6)


def test_float64_values_beyond_float32_are_refused_not_turned_into_inf():
    """A float32 layer given float64 data that float32 cannot hold: converting would give inf (and
    NumPy a RuntimeWarning); fastnn refuses it naming the argument. NaN and inf given as such pass
    through (they are the caller's values, and the Model's guard reports them)."""
    layer = fastnn.Layer_Dense(2, 3)
    with strict(), pytest.raises(ValueError, match=r"inputs must be within float32's range .* up to 1e\+39"):
        layer.forward(np.array([[1e39, 0.0]]))
    with strict():
        layer.forward(np.array([[np.inf, 0.0], [np.nan, 1.0], [3e38, -3e38]]))
    assert np.isinf(layer.output[0]).all() and np.isnan(layer.output[1]).all()


def test_model_trains_without_warnings_on_saturating_inputs():
    """Inputs of +-1e4 saturate a sigmoid output layer; the binary model trains, the loss stays
    finite and nothing warns."""
    X, y = spiral_data(50, 2)
    X = (X * 1e4).astype(np.float32)
    y = y.reshape(-1, 1)
    model = mlp(fastnn, (2, 16, 1), "Activation_Sigmoid", fastnn.Loss_BinaryCrossentropy(),
                fastnn.Optimizer_Adam(learning_rate=0.01), fastnn.Accuracy_Categorical(binary=True), seed=0)
    model.layers[0].weights *= 100          # logits of order 1e4 and more
    with strict():
        history = model.train(X, y, epochs=5, batch_size=32, verbose=False)
        loss, _ = model.evaluate(X, y, verbose=False)
    assert np.all(np.isfinite(history.loss)) and np.isfinite(loss)


# --- the NaN guard ------------------------------------------------------------------------------


def regression_model(learning_rate=0.01, optimizer=None):
    return mlp(fastnn, (1, 8, 1), "Activation_Linear", fastnn.Loss_MeanSquaredError(),
               optimizer or fastnn.Optimizer_SGD(learning_rate=learning_rate), fastnn.Accuracy_Regression(), seed=3)


def test_a_nan_born_inside_training_stops_at_its_step_and_names_it():
    """Finite float32 data whose batch 3 of epoch 2 holds values that overflow inside the network
    (3e38 * weights + ... = inf, then inf - inf = NaN in the loss): train stops at exactly that
    step, says so, and the weights are those after the steps before it."""
    X = np.linspace(0, 1, 200, dtype=np.float32).reshape(-1, 1)
    y = np.sin(2 * np.pi * X)
    poisoned = X.copy()
    batch, step = 25, 3
    poisoned[step * batch + 4] = 3e38            # finite in float32
    model = regression_model()
    model.train(X, y, epochs=1, batch_size=batch, verbose=False)        # epoch 1 with clean data
    # Epoch 1 of this call is the poisoned one: X for the next call.
    before = [(w.copy(), b.copy()) for w, b in model.get_parameters()]
    with strict(), pytest.raises(FloatingPointError) as info:
        model.train(poisoned, y, epochs=2, batch_size=batch, verbose=False)
    message = str(info.value)
    expected = rf"loss became (nan|inf) .* at epoch 1, step {step}; the weights were not updated"
    assert re.search(expected, message), message
    assert model.optimizer.iterations == 8 + step
    rerun = regression_model()
    rerun.train(X, y, epochs=1, batch_size=batch, verbose=False)
    rerun.train(poisoned[:step * batch], y[:step * batch], epochs=1, batch_size=batch, verbose=False)
    for (w, b), (w2, b2) in zip(model.get_parameters(), rerun.get_parameters()):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    assert any(not np.array_equal(w, w0) for (w, _), (w0, _) in zip(model.get_parameters(), before))


def test_weights_that_overflow_to_inf_are_caught_at_the_next_step():
    """SGD with an enormous learning rate: a finite step writes inf into the weights; the next
    forward pass makes the loss non-finite and the guard names that epoch and step, before the
    update that would spread NaN further."""
    X = np.linspace(0, 1, 64, dtype=np.float32).reshape(-1, 1)
    y = np.sin(2 * np.pi * X) * 1e3
    model = regression_model(learning_rate=1e36)
    with strict(), pytest.raises(FloatingPointError, match=r"at epoch \d+, step \d+") as info:
        model.train(X, y, epochs=50, batch_size=16, verbose=False)
    epoch, step = map(int, re.search(r"at epoch (\d+), step (\d+)", str(info.value)).groups())
    assert model.optimizer.iterations == (epoch - 1) * 4 + step


def test_a_regularisation_loss_that_overflows_is_caught_too():
    """The guard checks data_loss and reg_loss: a float64 weight of 1e200 with an L2 penalty makes
    the regularisation loss inf (its square overflows a double)."""
    X = np.linspace(0, 1, 32).reshape(-1, 1)
    y = np.sin(X)
    np.random.seed(0)
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(1, 1, weight_regularizer_l2=1.0, dtype=np.float64))
    model.add(fastnn.Activation_Linear())
    model.set(loss=fastnn.Loss_MeanSquaredError(), optimizer=fastnn.Optimizer_SGD(learning_rate=1e-3),
              accuracy=fastnn.Accuracy_Regression())
    model.finalize()
    model.layers[0].weights[0, 0] = 1e200       # its square overflows a double
    with pytest.raises(FloatingPointError, match=r"reg_loss inf\) at epoch 1, step 0"):
        model.train(X, y, epochs=1, verbose=False)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_accuracy_takes_a_nan_as_the_maximum_like_np_argmax(dtype):
    # np.argmax returns the first NaN of a row; the book's Accuracy_Categorical compares that
    # index with the label, so a NaN score decides the row whatever the numbers around it are.
    nan = np.nan
    scores = np.array([[0.1, nan, 0.9], [nan, 0.5, 0.2], [0.3, 0.6, nan], [0.2, nan, nan],
                       [0.7, 0.1, 0.2], [nan, nan, nan], [0.1, 0.2, 0.3], [0.5, nan, 0.9]], dtype=dtype)
    for y in (np.array([1, 0, 2, 1, 0, 0, 2, 1]), np.array([2, 1, 1, 2, 0, 1, 2, 2]), np.zeros(8, np.int64)):
        book = ref.Accuracy_Categorical().calculate(np.argmax(scores, axis=1), y)
        # the Model's path for a softmax output: the argmax and the comparison in one kernel
        assert fastnn.Accuracy_Categorical()._calculate_from_scores(scores, y) == book
