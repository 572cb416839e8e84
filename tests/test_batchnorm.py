"""Layer_BatchNorm beyond the contract suite (which checks training-mode parity, gradients,
buffers, refusals and model files for every class): inference with the running statistics, the
running-statistics rule, the refusal of one-value training batches, state broken by hand, its
parameters in a Model, and a model whose predictions no longer depend on the batch."""
import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from fastnn._ext import _batchnorm

from contract.harness import assert_close
from _state import assert_refused_and_unchanged
from _thread_counts import assert_identical, at_thread_counts


def pair(dtype, n_features, **kwargs):
    fast, slow = fastnn.Layer_BatchNorm(n_features, dtype=dtype, **kwargs), ref.Layer_BatchNorm(n_features, dtype=dtype,
                                                                                                 **kwargs)
    rng = np.random.default_rng(3)
    scale, shift = rng.uniform(0.5, 2, n_features), rng.standard_normal(n_features)
    for layer in (fast, slow):
        layer.weights[...], layer.biases[...] = scale, shift
    return fast, slow


def compare(fast, slow, dtype, names):
    for name in names:
        assert_close(getattr(fast, name), getattr(slow, name), 4, dtype, name, atol=8)


@pytest.mark.parametrize("shape", [(12, 4), (3, 4, 5, 6), (6, 4, 7)], ids=["NF", "NCHW", "NCL"])
def test_inference_uses_the_running_statistics(dtype, rng, shape):
    """Training forwards move the running statistics as the reference's; an inference forward
    normalises with them (not with the batch), changes them not, and its backward is the
    reference's affine gradient."""
    fast, slow = pair(dtype, 4, momentum=0.25)
    for i in range(3):
        x = (rng.standard_normal(shape) * (i + 1) + i).astype(dtype)
        for layer in (fast, slow):
            layer.forward(x)
    compare(fast, slow, dtype, ["running_mean", "running_var"])
    before = fast.running_mean.copy(), fast.running_var.copy()
    x = rng.standard_normal((1, *shape[1:])).astype(dtype)        # one sample: fine in inference
    d = rng.standard_normal(x.shape).astype(dtype)
    for layer in (fast, slow):
        layer.forward(x, training=False)
        layer.backward(d)
    compare(fast, slow, dtype, ["output", "dinputs", "dweights", "dbiases"])
    np.testing.assert_array_equal(fast.running_mean, before[0])
    np.testing.assert_array_equal(fast.running_var, before[1])
    scale = fast.weights / np.sqrt(fast.running_var.astype(np.float64) + fast.epsilon)
    np.testing.assert_allclose(fast.dinputs, d * scale.reshape((1, -1) + (1,) * (len(shape) - 2)), rtol=1e-6)


def test_the_running_statistics_rule():
    """running = (1 - momentum) * running + momentum * batch, the batch's unbiased variance for
    running_var (its biased variance normalises the batch)."""
    x = np.array([[1.0, 10.0], [2.0, 20.0], [6.0, 60.0]])
    layer = fastnn.Layer_BatchNorm(2, momentum=0.5, dtype=np.float64)
    layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, 0.5 * 0 + 0.5 * np.array([3.0, 30.0]))
    np.testing.assert_allclose(layer.running_var, 0.5 * 1 + 0.5 * np.array([7.0, 700.0]))     # ddof=1
    np.testing.assert_allclose(layer.output[:, 0], (x[:, 0] - 3) / np.sqrt(14 / 3 + 1e-5))  # ddof=0
    frozen = fastnn.Layer_BatchNorm(2, momentum=0.0, dtype=np.float64)
    frozen.forward(x)
    np.testing.assert_array_equal(frozen.running_var, [1, 1])


def test_a_training_batch_of_one_value_per_feature_is_refused():
    def build():
        layer = fastnn.Layer_BatchNorm(3)
        layer.forward(np.random.default_rng(0).standard_normal((4, 3)))
        return layer, lambda: layer.forward(np.ones((1, 3), np.float32))
    assert_refused_and_unchanged(build, ValueError, r"Layer_BatchNorm.forward: inputs must be more than one value per "
                                 r"feature to train on .*got shape \(1, 3\)", ".")
    layer = fastnn.Layer_BatchNorm(3)
    layer.forward(np.ones((1, 3, 2, 1), np.float32))             # two values per channel: trains
    layer.forward(np.ones((1, 3), np.float32), training=False)   # inference takes one sample


@pytest.mark.parametrize("change, message", [
    (lambda l: setattr(l, "running_var", l.running_var.astype(np.float64)), r"inconsistent \(running_mean and running_var\)"),
    (lambda l: l.running_mean.setflags(write=False), r"inconsistent \(running_mean and running_var\).*writeable"),
    (lambda l: setattr(l, "momentum", "fast"), r"inconsistent \(momentum and epsilon\).*momentum 'fast'"),
    (lambda l: setattr(l, "epsilon", -1.0), r"inconsistent \(momentum and epsilon\)"),
    (lambda l: setattr(l, "weights", np.ones(5, np.float32)), r"inconsistent \(biases\)"),
    (lambda l: setattr(l, "weights", np.ones((1, 3), np.float32)), r"inconsistent \(weights\)"),
    (lambda l: setattr(l, "weights", np.float32(1)), r"inconsistent \(weights\).*shape \(n_features,\)"),
])
def test_state_broken_by_hand_is_refused_and_changes_nothing(change, message):
    def build():
        layer = fastnn.Layer_BatchNorm(3)
        layer.forward(np.random.default_rng(0).standard_normal((4, 3)))
        change(layer)
        return layer, lambda: layer.forward(np.ones((4, 3), np.float32))
    assert_refused_and_unchanged(build, ValueError, message, ".")


@pytest.mark.parametrize("x, message", [
    (np.ones((4, 5)), r"inputs must be \(n_samples, 3\) or \(n_samples, 3, \.\.\.\): n_features=3 on axis 1, got 2-D"),
    (np.ones(3), r"got 1-D array of shape \(3,\)"),
    (np.ones((2, 2, 3)), r"n_features=3 on axis 1, got 3-D array of shape \(2, 2, 3\)"),
])
def test_inputs_of_the_wrong_shape_name_the_feature_axis(x, message):
    with pytest.raises(ValueError, match=message):
        fastnn.Layer_BatchNorm(3).forward(x)


def test_backward_without_forward_and_with_its_statistics_gone():
    layer = fastnn.Layer_BatchNorm(2)
    with pytest.raises(RuntimeError, match=r"Layer_BatchNorm.backward: no `inputs` from a forward pass"):
        layer.backward(np.ones((3, 2), np.float32))
    layer.forward(np.ones((3, 2), np.float32) * [[1], [2], [3]])
    del layer._mean
    assert _batchnorm.backward(layer.__dict__, np.ones((3, 2), np.float32)) == _batchnorm.NO_FORWARD


def test_parameters_set_and_checked():
    layer = fastnn.Layer_BatchNorm(3, dtype=np.float64)
    weights, biases = np.full(3, 2.0), np.arange(3.0)
    layer.set_parameters(weights, biases)
    assert layer.weights is weights and layer.biases is biases      # no copy, as the book's layers
    layer.set_parameters([[1, 2, 3]], [0, 0, 1])                     # a (1, F) row, lists: converted
    assert layer.weights.shape == (3,) and layer.weights.dtype == np.float64
    with pytest.raises(ValueError, match=r"Layer_BatchNorm.set_parameters: biases must be of shape \(3,\)"):
        layer.set_parameters(weights, np.zeros(4))
    assert repr(fastnn.Layer_BatchNorm(3)) == "Layer_BatchNorm(3, momentum=0.1, epsilon=1e-05, dtype=float32)"


def _model(rng):
    np.random.seed(2)
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 16, weight_init="he"))
    model.add(fastnn.Layer_BatchNorm(16))
    model.add(fastnn.Activation_ReLU())
    model.add(fastnn.Layer_Dense(16, 3))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(learning_rate=0.02),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    return model


def test_a_model_with_batchnorm_trains_and_predicts_sample_by_sample(rng, tmp_path):
    from fastnn.datasets import spiral_data

    X, y = spiral_data(100, 3)
    model = _model(rng)
    assert model.layers[1] in model.trainable_layers           # its weights make it trainable
    history = model.train(X, y, epochs=60, batch_size=50, verbose=False)
    assert history.loss[-1] < 0.8 * history.loss[0]
    assert not np.array_equal(model.layers[1].running_mean, np.zeros(16))
    # inference normalises with the running statistics: a sample's prediction is its own
    np.testing.assert_allclose(model.predict(X[:1]), model.predict(X)[:1], rtol=1e-6)
    model.save(tmp_path / "bn.fastnn")
    loaded = fastnn.Model.load(tmp_path / "bn.fastnn")
    np.testing.assert_array_equal(loaded.layers[1].running_var, model.layers[1].running_var)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    parameters = model.get_parameters()
    assert parameters[1][0] is model.layers[1].weights
    other = _model(rng)
    other.set_parameters(parameters)
    np.testing.assert_array_equal(other.layers[1].weights, model.layers[1].weights)


@pytest.mark.parametrize("training", [True, False])
def test_channels_split_over_threads_give_the_serial_bits(dtype, rng, training):
    """NCHW channels run on OpenMP threads, one channel each (the same order within a channel):
    serial, 2 and 3 threads give the same bits, and match the reference."""
    x = (rng.standard_normal((6, 7, 5, 4)) * 3 + 1).astype(dtype)
    d = rng.standard_normal(x.shape).astype(dtype)

    def run():
        fast, slow = pair(dtype, 7)
        if not training:
            for layer in (fast, slow):
                layer.forward(x)
        fast.forward(x, training=training)
        slow.forward(x, training=training)
        fast.backward(d)
        slow.backward(d)
        compare(fast, slow, dtype, ("output", "dinputs", "dweights", "dbiases", "running_mean", "running_var"))
        return fast.output, fast.dinputs, fast.dweights, fast.running_var

    assert_identical(at_thread_counts((1, 2, 3), run))
