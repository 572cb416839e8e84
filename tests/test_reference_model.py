"""fastnn.reference.Model and chapter-style usage.

Model paths (categorical, binary, regression) train and their loss goes down; the training log has
the book's structure; finalize/save/load/parameters behave as the book; code written for chapters
9-17 (manual loops) runs; the documented deviations are pinned.
"""
import copy
import pickle
import re

import numpy as np
import pytest
from nnfs.datasets import sine_data, spiral_data, vertical_data

import fastnn.reference as ref

import _book
from _layers import Recorder

LINE_KINDS = [("epoch", re.compile(r"epoch: \d+")),
              ("step", re.compile(r"step: (\d+), acc: \d+\.\d{3}, loss: \d+\.\d{3} \(data_loss: \d+\.\d{3}, "
                                  r"reg_loss: \d+\.\d{3}\), lr: \S+")),
              ("training", re.compile(r"training, acc: \d+\.\d{3}, loss: \d+\.\d{3} \(data_loss: \d+\.\d{3}, "
                                      r"reg_loss: \d+\.\d{3}\), lr: \S+")),
              ("validation", re.compile(r"validation, acc: \d+\.\d{3}, loss: \d+\.\d{3}"))]


def line_kinds(log):
    kinds = []
    for line in log.splitlines():
        for kind, pattern in LINE_KINDS:
            match = pattern.fullmatch(line)
            if match:
                kinds.append(kind if kind != "step" else f"step {match.group(1)}")
                break
        else:
            raise AssertionError(f"unexpected log line {line!r}")
    return kinds


def mean_loss(model, X, y):
    """Data loss of the model's current predictions (touches no accumulator)."""
    return float(np.mean(model.loss.forward(model.predict(X), y)))


@pytest.fixture
def seeded():
    np.random.seed(0)


def spiral_classifier(dropout=True):
    layers = [ref.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4), ref.Activation_ReLU()]
    if dropout:
        layers.append(ref.Layer_Dropout(0.1))
    layers += [ref.Layer_Dense(64, 3), ref.Activation_Softmax()]
    return _book.build_model(ref, layers, loss=ref.Loss_CategoricalCrossentropy(),
                             optimizer=ref.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
                             accuracy=ref.Accuracy_Categorical())


# --- finalize ----------------------------------------------------------------------------------

def test_new_model_has_only_the_books_attributes():
    model = ref.Model()
    assert model.layers == [] and model.softmax_classifier_output is None
    for name in ("loss", "optimizer", "accuracy", "input_layer", "trainable_layers"):
        assert not hasattr(model, name)
    loss = ref.Loss_MeanSquaredError()
    model.set(loss=loss)
    model.set(optimizer=ref.Optimizer_SGD())  # None arguments leave the others alone
    assert model.loss is loss and not hasattr(model, "accuracy")


def test_finalize_links_the_layers(seeded):
    model = spiral_classifier()
    dense1, relu, dropout, dense2, softmax = model.layers
    assert isinstance(model.input_layer, ref.Layer_Input)
    assert dense1.prev is model.input_layer and dense1.next is relu
    assert relu.prev is dense1 and dropout.next is dense2
    assert softmax.prev is dense2 and softmax.next is model.loss
    assert model.output_layer_activation is softmax
    assert model.trainable_layers == [dense1, dense2]
    assert model.loss.trainable_layers is model.trainable_layers
    assert isinstance(model.softmax_classifier_output, ref.Activation_Softmax_Loss_CategoricalCrossentropy)


@pytest.mark.parametrize("last, loss", [
    (ref.Activation_Sigmoid, ref.Loss_CategoricalCrossentropy),
    (ref.Activation_Softmax, ref.Loss_BinaryCrossentropy),
])
def test_fused_gradient_only_for_softmax_with_cce(last, loss):
    model = _book.build_model(ref, [ref.Layer_Dense(2, 3), last()], loss=loss())
    assert model.softmax_classifier_output is None


# --- The three Model paths ---------------------------------------------------------------------

def test_categorical_path_uses_the_fused_backward_and_learns(seeded, capsys):
    X, y = spiral_data(samples=100, classes=3)
    X_test, y_test = spiral_data(samples=50, classes=3)
    model = spiral_classifier()

    def softmax_backward_must_not_run(dvalues):
        raise AssertionError("the Model must use the combined softmax/CCE gradient")

    model.layers[-1].backward = softmax_backward_must_not_run
    before = mean_loss(model, X, y)
    model.train(X, y, epochs=150, print_every=100, validation_data=(X_test, y_test))
    after = mean_loss(model, X, y)
    assert after < before - 0.2
    assert model.layers[-1].dinputs is model.softmax_classifier_output.dinputs
    assert line_kinds(capsys.readouterr().out) == ["epoch", "step 0", "training", "validation"] * 150
    assert model.optimizer.iterations == 150


def test_binary_path_learns(seeded, capsys):
    X, y = spiral_data(samples=100, classes=2)
    y = y.reshape(-1, 1)
    layers = [ref.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4), ref.Activation_ReLU(),
              ref.Layer_Dense(64, 1), ref.Activation_Sigmoid()]
    model = _book.build_model(ref, layers, loss=ref.Loss_BinaryCrossentropy(),
                              optimizer=ref.Optimizer_Adam(learning_rate=0.01, decay=5e-7),
                              accuracy=ref.Accuracy_Categorical(binary=True))
    before = mean_loss(model, X, y)
    model.train(X, y, epochs=100, print_every=100)
    assert mean_loss(model, X, y) < before - 0.05
    assert model.accuracy.calculate_accumulated() > 0.55
    assert model.output_layer_activation.predictions(model.predict(X)).shape == (200, 1)


def test_regression_path_learns(seeded, capsys):
    X, y = sine_data(samples=200)
    layers = [ref.Layer_Dense(1, 64), ref.Activation_ReLU(), ref.Layer_Dense(64, 64), ref.Activation_ReLU(),
              ref.Layer_Dense(64, 1), ref.Activation_Linear()]
    model = _book.build_model(ref, layers, loss=ref.Loss_MeanSquaredError(),
                              optimizer=ref.Optimizer_Adam(learning_rate=0.005, decay=1e-3),
                              accuracy=ref.Accuracy_Regression())
    before = mean_loss(model, X, y)
    model.train(X, y, epochs=100, print_every=100)
    assert mean_loss(model, X, y) < 0.5 * before
    assert model.accuracy.precision == np.std(y) / 250  # set once from the training labels
    model.evaluate(X[:50], y[:50] * 10)
    assert model.accuracy.precision == np.std(y) / 250  # evaluate does not re-initialise it


# --- The log -----------------------------------------------------------------------------------

def test_batched_log_structure_and_print_every(seeded, capsys):
    X, y = vertical_data(samples=34, classes=3)  # 102 samples, batches of 32: 4 steps, the last has 6
    model = spiral_classifier()
    model.train(X, y, epochs=2, batch_size=32, print_every=2, validation_data=(X, y))
    log = capsys.readouterr().out
    epoch = ["step 0", "step 2", "step 3", "training", "validation"]
    assert line_kinds(log) == ["epoch"] + epoch + ["epoch"] + epoch
    assert model.optimizer.iterations == 8
    lines = log.splitlines()
    assert lines[0] == "epoch: 1" and lines[6] == "epoch: 2"
    # lr printed with plain {} (the float repr): the step uses the decayed rate of its iteration
    assert lines[2].endswith(f", lr: {0.05 * (1.0 / (1.0 + 5e-5 * 2))}")
    assert lines[9].endswith(f", lr: {0.05 * (1.0 / (1.0 + 5e-5 * 7))}")


def test_training_line_recomputes_the_regularization_loss_after_the_updates(seeded, capsys):
    X, y = spiral_data(samples=50, classes=3)
    model = spiral_classifier(dropout=False)
    model.layers[0].weight_regularizer_l2 = 0.05
    reg_before = model.loss.regularization_loss()
    model.train(X, y, epochs=1)
    step_line, training_line = capsys.readouterr().out.splitlines()[1:3]
    reg_after = model.loss.regularization_loss()
    assert f"{reg_before:.3f}" != f"{reg_after:.3f}"
    assert f"reg_loss: {reg_before:.3f})" in step_line  # computed in the step, before the update
    assert f"reg_loss: {reg_after:.3f})" in training_line  # recomputed after it
    accumulated = model.loss.calculate_accumulated()
    assert f"data_loss: {accumulated:.3f}," in training_line
    assert f"acc: {model.accuracy.calculate_accumulated():.3f}," in training_line


def test_evaluate_prints_one_line_without_dropout_or_rng(seeded, capsys):
    X, y = spiral_data(samples=50, classes=3)
    model = spiral_classifier()
    model.train(X, y, epochs=2)
    capsys.readouterr()
    state = np.random.get_state()[1].copy()
    assert model.evaluate(X, y) is None
    model.evaluate(X, y, batch_size=7)
    first, second = capsys.readouterr().out.splitlines()
    assert first == second and line_kinds(first) == ["validation"]
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_predict_batches_and_returns_a_new_array(seeded):
    X, _ = spiral_data(samples=40, classes=3)
    model = spiral_classifier()
    whole = model.predict(X)
    assert whole.shape == (120, 3) and whole.dtype == np.float32
    assert whole is not model.layers[-1].output
    np.testing.assert_allclose(model.predict(X, batch_size=32), whole, rtol=1e-6)
    np.testing.assert_array_equal(model.output_layer_activation.predictions(whole), np.argmax(whole, axis=1))


# --- Parameters, save and load -----------------------------------------------------------------

def test_parameters_round_trip(seeded, tmp_path):
    X, y = spiral_data(samples=30, classes=3)
    model = spiral_classifier()
    model.train(X, y, epochs=3, print_every=100)
    parameters = model.get_parameters()
    assert [p for pair in parameters for p in pair] == [model.layers[0].weights, model.layers[0].biases,
                                                        model.layers[3].weights, model.layers[3].biases]
    assert parameters[0][0] is model.layers[0].weights
    path = tmp_path / "spiral.parms"
    model.save_parameters(path)
    other = spiral_classifier()  # different random weights
    assert not np.array_equal(other.predict(X), model.predict(X))
    other.load_parameters(path)
    np.testing.assert_array_equal(other.predict(X), model.predict(X))
    third = spiral_classifier()
    third.set_parameters(parameters)
    assert third.layers[0].weights is model.layers[0].weights  # assigned, not copied


def test_save_and_load_the_whole_model(seeded, tmp_path, capsys):
    X, y = spiral_data(samples=30, classes=3)
    model = spiral_classifier()
    model.train(X, y, epochs=2, print_every=100)
    path = tmp_path / "spiral.model"
    model.save(path)
    assert hasattr(model.layers[0], "inputs") and model.loss.accumulated_count  # the original is untouched
    loaded = ref.Model.load(path)
    assert isinstance(loaded, ref.Model)
    for layer in loaded.layers:
        for name in ("inputs", "output", "dinputs", "dweights", "dbiases"):
            assert name not in vars(layer)
    assert "output" not in vars(loaded.input_layer) and "dinputs" not in vars(loaded.loss)
    assert loaded.loss.accumulated_sum == 0 and loaded.accuracy.accumulated_count == 0
    assert hasattr(loaded.layers[0], "weight_cache")  # optimizer state is kept, as in the book
    assert hasattr(loaded.layers[2], "binary_mask")  # and so is the dropout mask
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    loaded.train(X, y, epochs=1)  # and it can go on training
    assert loaded.optimizer.iterations == 3


def test_deepcopy_and_pickle_of_a_finalized_model(seeded, capsys):
    X, y = spiral_data(samples=30, classes=3)
    model = spiral_classifier()
    model.set(optimizer=ref.Optimizer_SGD(learning_rate=0.5, momentum=0.9))
    model.train(X, y, epochs=2, print_every=100)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone.predict(X), model.predict(X))
        assert clone.layers[0].next is clone.layers[1]  # links are copied as links
        assert clone.loss.trainable_layers[0] is clone.layers[0]


# --- Deviations --------------------------------------------------------------------------------

def test_one_layer_model_trains(seeded, capsys):
    """Deviations: the book's finalize raises IndexError with one layer, and a model ending in a
    Layer_Dense has no predictions(); here the raw output is used, as Activation_Linear would."""
    X = np.linspace(-1, 1, 64).reshape(-1, 1)
    y = 2 * X + 1
    model = _book.build_model(ref, [ref.Layer_Dense(1, 1)], loss=ref.Loss_MeanSquaredError(),
                              optimizer=ref.Optimizer_Adam(learning_rate=0.1), accuracy=ref.Accuracy_Regression())
    layer = model.layers[0]
    assert layer.prev is model.input_layer and layer.next is model.loss
    assert model.output_layer_activation is layer and model.trainable_layers == [layer]
    model.train(X, y, epochs=300, print_every=100)
    np.testing.assert_allclose(layer.weights, [[2]], atol=0.05)
    np.testing.assert_allclose(layer.biases, [[1]], atol=0.05)
    assert line_kinds(capsys.readouterr().out)[-3:] == ["epoch", "step 0", "training"]


def test_inference_only_model_without_a_loss(seeded, tmp_path):
    trained = spiral_classifier()
    path = tmp_path / "spiral.parms"
    trained.save_parameters(path)
    model = ref.Model()
    for layer in (ref.Layer_Dense(2, 64), ref.Activation_ReLU(), ref.Layer_Dropout(0.1),
                  ref.Layer_Dense(64, 3), ref.Activation_Softmax()):
        model.add(layer)
    model.finalize()  # the book raises AttributeError (no loss was set)
    assert model.layers[-1].next is None and model.softmax_classifier_output is None
    model.load_parameters(path)
    X, y = spiral_data(samples=10, classes=3)
    np.testing.assert_array_equal(model.predict(X), trained.predict(X))
    model.save(tmp_path / "inference.model")
    np.testing.assert_array_equal(ref.Model.load(tmp_path / "inference.model").predict(X), trained.predict(X))
    with pytest.raises(ValueError, match=r"model\.set\(loss=\.\.\., optimizer=\.\.\., accuracy=\.\.\.\)"):
        model.train(X, y)
    with pytest.raises(ValueError, match=r"model\.set\(loss=\.\.\., accuracy=\.\.\.\)"):
        model.evaluate(X, y)
    model.set(loss=ref.Loss_CategoricalCrossentropy(), accuracy=ref.Accuracy_Categorical())
    with pytest.raises(ValueError, match=r"no optimizer: call model\.set\(optimizer=\.\.\.\)"):
        model.train(X, y)


# --- Chapter-style code ------------------------------------------------------------------------

def test_ch10_manual_loop(seeded, capsys):
    X, y = spiral_data(samples=100, classes=3)
    layers = [ref.Layer_Dense(2, 64), ref.Activation_ReLU(), ref.Layer_Dense(64, 3)]
    loss_activation = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = ref.Optimizer_Adam(learning_rate=0.05, decay=5e-7)
    losses = []
    for epoch in range(201):
        rate = optimizer.current_learning_rate
        output, loss, _ = _book.chapter_step(layers, loss_activation, optimizer, X, y)
        accuracy = np.mean(np.argmax(output, axis=1) == y)
        if not epoch % 100:
            print(f"epoch: {epoch}, acc: {accuracy:.3f}, loss: {loss:.3f}, lr: {rate}")
        losses.append(loss)
    assert losses[0] == pytest.approx(np.log(3), abs=1e-3)
    assert losses[-1] < 0.8
    assert capsys.readouterr().out.splitlines()[0].startswith("epoch: 0, acc: ")
    # Ch11: validation on fresh data through the same objects
    X_test, y_test = spiral_data(samples=100, classes=3)
    assert _book.loss_forward(loss_activation, _book.forward(layers, X_test), y_test)[1] < 1.0


def test_ch14_to_ch17_loop_with_regularization_and_dropout(seeded):
    X, y = spiral_data(samples=100, classes=3)
    dropout1 = ref.Layer_Dropout(0.1)
    layers = [ref.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4), ref.Activation_ReLU(),
              dropout1, ref.Layer_Dense(64, 3)]  # Ch15: dropout1.forward(inputs), no training argument: always drops
    loss_activation = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = ref.Optimizer_Adam(learning_rate=0.02, decay=5e-7)
    totals = []
    for epoch in range(101):
        _, data_loss, regularization_loss = _book.chapter_step(layers, loss_activation, optimizer, X, y,
                                                               regularization=True)
        totals.append(data_loss + regularization_loss)
    assert regularization_loss > 0 and totals[-1] < totals[0] - 0.1
    assert dropout1.rate == 0.9 and np.mean(dropout1.binary_mask == 0) == pytest.approx(0.1, abs=0.02)


def test_ch18_model_calls(seeded, capsys):
    """Ch18: set() with all three required keywords and train() without batch_size."""
    X, y = spiral_data(samples=50, classes=3)
    layers = [ref.Layer_Dense(2, 32), ref.Activation_ReLU(), ref.Layer_Dense(32, 3), ref.Activation_Softmax()]
    model = _book.build_model(ref, layers, loss=ref.Loss_CategoricalCrossentropy(),
                              optimizer=ref.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
                              accuracy=ref.Accuracy_Categorical())
    model.train(X, y, epochs=3, print_every=1, validation_data=(X, y))
    assert line_kinds(capsys.readouterr().out) == ["epoch", "step 0", "training", "validation"] * 3
    confidences = model.predict(X[:5])
    assert model.output_layer_activation.predictions(confidences).shape == (5,)


def test_mae_model_descends(seeded, capsys):
    """With the book's MAE sign this run would climb; the fixed sign makes the loss go down."""
    X, y = sine_data(samples=100)
    layers = [ref.Layer_Dense(1, 32), ref.Activation_ReLU(), ref.Layer_Dense(32, 1), ref.Activation_Linear()]
    model = _book.build_model(ref, layers, loss=ref.Loss_MeanAbsoluteError(),
                              optimizer=ref.Optimizer_Adam(learning_rate=0.01), accuracy=ref.Accuracy_Regression())
    before = mean_loss(model, X, y)
    model.train(X, y, epochs=50, print_every=100)
    assert mean_loss(model, X, y) < before - 0.1


def _shuffled_batches(lib, X, y, shuffle):
    recorder = Recorder()
    np.random.seed(3)
    model = lib.Model()
    for layer in (recorder, lib.Layer_Dense(2, 8), lib.Activation_ReLU(), lib.Layer_Dense(8, 3),
                  lib.Activation_Softmax()):
        model.add(layer)
    model.set(loss=lib.Loss_CategoricalCrossentropy(), optimizer=lib.Optimizer_Adam(learning_rate=0.01),
              accuracy=lib.Accuracy_Categorical())
    model.finalize()
    np.random.seed(11)
    model.train(X, y, epochs=2, batch_size=32, print_every=100, shuffle=shuffle)
    return recorder.batches


def test_shuffle_takes_the_same_batches_as_fastnn(capsys):
    """train(..., shuffle=True) is beyond the book; it is the same per-epoch permutation as
    fastnn's Model, so a script using it runs on both and trains on the same batches."""
    import fastnn

    X, y = spiral_data(samples=40, classes=3)
    X = X.astype(np.float32)
    reference = _shuffled_batches(ref, X, y, True)
    compiled = _shuffled_batches(fastnn, X, y, True)
    assert len(reference) == len(compiled) == 2 * 4
    for a, b in zip(reference, compiled):
        np.testing.assert_array_equal(a, b)
    plain = _shuffled_batches(ref, X, y, False)
    np.testing.assert_array_equal(plain[0], X[:32])
    assert not np.array_equal(reference[0], plain[0])
    for epoch in range(2):  # each epoch sees every sample once
        seen = np.concatenate(reference[epoch * 4:(epoch + 1) * 4])
        assert sorted(map(tuple, seen)) == sorted(map(tuple, X))
