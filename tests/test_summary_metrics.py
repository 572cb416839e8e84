"""Model.summary (shapes and parameter counts before any training, the layers untouched, the
reference's table), Model.predict_classes and fastnn.metrics (against fastnn.reference.metrics
and by hand)."""
import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from fastnn import metrics

from _book import build_model
from _state import snapshot


def cnn(lib, channels=1, side=28, classes=10):
    model = lib.Model()
    flat = 16 * (side // 4) ** 2
    for layer in (lib.Layer_Conv2D(channels, 8, 3, padding=1), lib.Activation_ReLU(), lib.Layer_MaxPool2D(2),
                  lib.Layer_Conv2D(8, 16, 3, padding=1), lib.Activation_ReLU(), lib.Layer_MaxPool2D(2),
                  lib.Layer_Flatten(), lib.Layer_Dropout(0.2), lib.Layer_Dense(flat, 32), lib.Activation_ReLU(),
                  lib.Layer_Dense(32, classes), lib.Activation_Softmax()):
        model.add(layer)
    return model


def mlp(lib):
    model = lib.Model()
    for layer in (lib.Layer_Dense(4, 8), lib.Activation_Tanh(), lib.Layer_Dense(8, 3), lib.Activation_Softmax()):
        model.add(layer)
    return model


def test_cnn_summary_before_training(capsys):
    model = cnn(fastnn)
    text = model.summary()
    assert capsys.readouterr().out == text + "\n"
    lines = text.splitlines()
    assert lines[0] == ("Model: 12 layers, input (1, 28, 28) per sample (Layer_Conv2D's in_channels, smallest "
                        "square image that fits)")
    assert lines[1].split() == ["#", "layer", "output", "shape", "parameters"]
    rows = [line.split(None, 2) for line in lines[3:15]]
    assert [row[1] for row in rows] == [type(layer).__name__ for layer in model.layers]
    assert lines[3].split() == ["0", "Layer_Conv2D", "(8,", "28,", "28)", "80"]
    assert "(16, 7, 7)" in lines[8] and "(784,)" in lines[9] and lines[11].endswith("25,120")
    total = sum(layer.weights.size + layer.biases.size for layer in model.layers if hasattr(layer, "weights"))
    assert f"trainable parameters: {total:,}" in lines
    assert lines[-1] == f"parameter memory: {total * 4 / 1024:.1f} KiB (float32)"
    assert repr(text) == text and isinstance(text, str)


def test_summary_shapes_are_the_forward_pass_shapes():
    model = cnn(fastnn, channels=3, side=20)
    text = model.summary((3, 20, 20))
    model.finalize()
    model.forward(np.zeros((2, 3, 20, 20), np.float32), training=False)
    for line, layer in zip(text.splitlines()[3:], model.layers):
        assert str(layer.output.shape[1:]) in line


def test_summary_touches_nothing():
    model = cnn(fastnn, side=12)
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    X = np.random.default_rng(0).standard_normal((4, 1, 12, 12)).astype(np.float32)
    model.train(X, np.arange(4) % 10, epochs=1, verbose="silent")
    before = snapshot(model)
    model.summary()
    model.summary((1, 13, 13))
    assert snapshot(model) == before


@pytest.mark.parametrize("build, shape", [(cnn, None), (cnn, (1, 29, 29)), (mlp, None), (mlp, (4,))])
def test_summary_is_the_references(build, shape, capsys):
    assert build(fastnn).summary(shape) == build(ref).summary(shape)


def test_mlp_summary_from_the_first_dense():
    text = mlp(fastnn).summary()
    assert text.splitlines()[0] == "Model: 4 layers, input (4,) per sample (Layer_Dense's n_inputs)"
    assert "trainable parameters: 67" in text and "parameter memory: 268 B (float32)" in text


def test_summary_of_a_float64_model_and_an_undeclared_layer():
    class Double:
        def forward(self, inputs, training=True):
            self.output = np.concatenate([inputs, inputs], axis=1)

        def backward(self, dvalues):
            pass

    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(3, 5, dtype=np.float64))
    model.add(Double())
    model.add(fastnn.Layer_Dense(10, 2, dtype=np.float64))
    text = model.summary()
    assert "Double" in text and "(10,)" in text and "(float64)" in text and "trainable parameters: 42" in text


@pytest.mark.parametrize("make, shape, error, match", [
    (lambda: fastnn.Model(), None, ValueError, "the model has no layers"),
    (lambda: cnn(fastnn), (1, 32, 32), ValueError,
     r"layers\[8\] \(Layer_Dense\) does not take samples of shape \(1024,\)"),
    (lambda: cnn(fastnn), (2, 28, 28), ValueError, r"layers\[0\] \(Layer_Conv2D\) does not take samples"),
    (lambda: cnn(fastnn), (1, 0, 28), ValueError, r"input_shape\[1\] must be a positive int"),
    (lambda: cnn(fastnn), "28x28", TypeError, "input_shape must be the shape of one sample"),
    (lambda: mlp(fastnn), (5,), ValueError, r"layers\[0\] \(Layer_Dense\) does not take samples of shape \(5,\)"),
])
def test_summary_errors(make, shape, error, match):
    with pytest.raises(error, match=match):
        make().summary(shape)


def test_summary_asks_for_a_shape_it_cannot_find():
    model = fastnn.Model()
    model.add(fastnn.Activation_ReLU())
    with pytest.raises(ValueError, match="the first layer, Activation_ReLU, does not give the input shape"):
        model.summary()
    convolutional = fastnn.Model()
    convolutional.add(fastnn.Layer_Conv2D(1, 2, 3))
    convolutional.add(fastnn.Layer_MaxPool2D(2))
    with pytest.raises(ValueError, match=r"not fixed by the layers after it; pass input_shape"):
        convolutional.summary()
    assert "(2, 3, 3)" in convolutional.summary((1, 8, 8))


def test_summary_counts_the_running_statistics_as_other_state():
    model = fastnn.Model()
    for layer in (fastnn.Layer_Conv2D(1, 4, 3), fastnn.Layer_BatchNorm(4), fastnn.Activation_ReLU(),
                  fastnn.Layer_Flatten(), fastnn.Layer_Dense(4 * 6 * 6, 2)):
        model.add(layer)
    text = model.summary((1, 8, 8))
    assert "Layer_BatchNorm" in text and "(4, 6, 6)" in text
    assert "trainable parameters: 338" in text and "other state (running statistics): 8" in text
    slow = ref.Model()
    for layer in (ref.Layer_Conv2D(1, 4, 3), ref.Layer_BatchNorm(4), ref.Activation_ReLU(), ref.Layer_Flatten(),
                  ref.Layer_Dense(4 * 6 * 6, 2)):
        slow.add(layer)
    assert slow.summary((1, 8, 8)) == text


# --- predict_classes -------------------------------------------------------------------------------

def trained(lib, last, loss, n_out, y):
    np.random.seed(0)
    model = build_model(lib, [lib.Layer_Dense(4, n_out), getattr(lib, last)()], loss=getattr(lib, loss)(),
                        optimizer=lib.Optimizer_Adam(learning_rate=0.05),
                        accuracy=lib.Accuracy_Categorical(**({"binary": True} if last == "Activation_Sigmoid" else {})))
    X = np.random.default_rng(1).standard_normal((30, 4)).astype(np.float32)
    return model, X


def test_predict_classes_of_a_softmax_model():
    model, X = trained(fastnn, "Activation_Softmax", "Loss_CategoricalCrossentropy", 3, None)
    classes = model.predict_classes(X, batch_size=7)
    assert classes.shape == (30,) and classes.dtype.kind == "i"
    np.testing.assert_array_equal(classes, np.argmax(model.predict(X), axis=1))
    slow, _ = trained(ref, "Activation_Softmax", "Loss_CategoricalCrossentropy", 3, None)
    np.testing.assert_array_equal(slow.predict_classes(X), classes)


def test_predict_classes_of_sigmoid_models():
    one, X = trained(fastnn, "Activation_Sigmoid", "Loss_BinaryCrossentropy", 1, None)
    assert one.predict_classes(X).shape == (30,)
    np.testing.assert_array_equal(one.predict_classes(X), (one.predict(X)[:, 0] > 0.5).astype(int))
    many, X = trained(fastnn, "Activation_Sigmoid", "Loss_BinaryCrossentropy", 3, None)
    assert many.predict_classes(X).shape == (30, 3)


def test_predict_classes_of_a_regression_is_refused():
    model, X = trained(fastnn, "Activation_Linear", "Loss_MeanSquaredError", 1, None)
    with pytest.raises(ValueError, match="ends in Activation_Linear, whose predictions are not classes"):
        model.predict_classes(X)


# --- metrics --------------------------------------------------------------------------------------

def test_confusion_matrix_by_hand():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    matrix = metrics.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.dtype == np.int64
    np.testing.assert_allclose(metrics.precision(y_true, y_pred), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(metrics.recall(y_true, y_pred), [0.5, 1.0, 2 / 3])
    np.testing.assert_allclose(metrics.accuracy(y_true, y_pred), [4 / 6, 5 / 6, 5 / 6])
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, n_classes=4)[3], [0, 0, 0, 0])
    assert metrics.precision(y_true, y_pred, 4)[3] == 0 and metrics.recall(y_true, y_pred, 4)[3] == 0


def test_metrics_take_one_hot_rows_and_scores_and_match_the_reference():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 5, 300)
    scores = rng.random((300, 5))
    scores[np.arange(300), y_true] += rng.random(300) * 0.6
    one_hot = np.eye(5)[y_true]
    for name in ("confusion_matrix", "precision", "recall", "accuracy"):
        fast = getattr(metrics, name)(one_hot, scores)
        np.testing.assert_array_equal(fast, getattr(metrics, name)(y_true, scores.argmax(axis=1)))
        np.testing.assert_allclose(fast, getattr(ref.metrics, name)(one_hot, scores), rtol=1e-15)
    matrix = metrics.confusion_matrix(y_true, scores)
    assert matrix.sum() == 300 and np.array_equal(matrix.sum(axis=1), np.bincount(y_true, minlength=5))


@pytest.mark.parametrize("args, error, match", [
    (([0, 1], [0]), ValueError, "same number of samples, got 2 and 1"),
    (([], []), ValueError, "hold no samples"),
    (([0, -1], [0, 1]), ValueError, "y_true must be class ids >= 0"),
    (([0, 1.5], [0, 1]), ValueError, "y_true must be whole-number class ids"),
    ((["a", "b"], [0, 1]), TypeError, "y_true must be class ids"),
    (([0, 3], [0, 1], 3), ValueError, "class id 3 is not below n_classes=3"),
    ((np.eye(3), np.eye(4)[:3]), ValueError, "y_true has rows of 3 classes, not 4"),
    (([[[0]]], [0]), ValueError, "y_true must be class ids"),
    (([0, 1], [0, 1], 0), ValueError, "n_classes must be a positive int"),
])
def test_metric_refusals(args, error, match):
    with pytest.raises(error, match=match):
        metrics.confusion_matrix(*args)


def test_the_readme_shows_what_summary_prints():
    """The README's CNN example and the table it shows under it."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## A convolutional network"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1).rstrip("\n")
    layers = re.search(r"for layer in (\[.*?\]):", code, re.S).group(1)
    model = fastnn.Model()
    for layer in eval(layers, vars(fastnn)):
        model.add(layer)
    assert model.summary() == shown
