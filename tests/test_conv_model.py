"""Convolutional networks train through fastnn.Model with every optimizer, agree with the same
network built from fastnn.reference, and keep their parameters through get/set_parameters."""
import contextlib
import copy
import io
import pickle

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref


def bars(n, size=8, seed=0):
    """A tiny image task: (n, 1, size, size) noisy images of a horizontal bar, a vertical bar, a
    diagonal or a square, at random positions; labels 0-3."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 0.3, size=(n, 1, size, size))
    y = np.arange(n) % 4
    for i, label in enumerate(y):
        r, c = rng.integers(1, size - 4, size=2)
        if label == 0:
            X[i, 0, r, c:c + 4] += 1.5
        elif label == 1:
            X[i, 0, r:r + 4, c] += 1.5
        elif label == 2:
            X[i, 0, np.arange(4) + r, np.arange(4) + c] += 1.5
        else:
            X[i, 0, r:r + 2, c:c + 2] += 1.5
    return X, y


def small_cnn(nn, optimizer, dtype=None):
    """Conv-ReLU-MaxPool-Conv-ReLU-MaxPool-Flatten-Dense-ReLU-Dense-Softmax on 1x8x8 images."""
    kw = {} if dtype is None else {"dtype": dtype}
    model = nn.Model()
    model.add(nn.Layer_Conv2D(1, 6, 3, padding=1, **kw))
    model.add(nn.Activation_ReLU())
    model.add(nn.Layer_MaxPool2D(2))
    model.add(nn.Layer_Conv2D(6, 8, 3, padding=1, weight_regularizer_l2=1e-4, **kw))
    model.add(nn.Activation_ReLU())
    model.add(nn.Layer_MaxPool2D(2))
    model.add(nn.Layer_Flatten())
    model.add(nn.Layer_Dense(8 * 2 * 2, 32, **kw))
    model.add(nn.Activation_ReLU())
    model.add(nn.Layer_Dense(32, 4, **kw))
    model.add(nn.Activation_Softmax())
    model.set(loss=nn.Loss_CategoricalCrossentropy(), optimizer=optimizer, accuracy=nn.Accuracy_Categorical())
    model.finalize()
    return model


OPTIMIZERS = {
    "sgd": lambda nn: nn.Optimizer_SGD(learning_rate=0.3),
    "sgd-momentum": lambda nn: nn.Optimizer_SGD(learning_rate=0.05, decay=1e-3, momentum=0.9),
    "adagrad": lambda nn: nn.Optimizer_Adagrad(learning_rate=0.05),
    "rmsprop": lambda nn: nn.Optimizer_RMSprop(learning_rate=0.005),
    "adam": lambda nn: nn.Optimizer_Adam(learning_rate=0.005),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_small_cnn_trains_with_every_optimizer(name):
    X, y = bars(256)
    X_val, y_val = bars(128, seed=1)
    np.random.seed(0)
    model = small_cnn(fastnn, OPTIMIZERS[name](fastnn))
    history = model.train(X, y, epochs=12, batch_size=32, verbose=False, shuffle=True)
    losses, accuracies = history["loss"], history["accuracy"]
    assert losses[-1] < 0.6 * losses[0], losses
    assert accuracies[-1] > 0.85 and accuracies[-1] > accuracies[0] + 0.3, accuracies
    val_loss, val_accuracy = model.evaluate(X_val, y_val, verbose=False)
    assert val_accuracy > 0.8
    conv = model.layers[0]
    assert conv.weights.dtype == np.float32 and conv.dweights.shape == conv.weights.shape
    state = {"sgd": [], "sgd-momentum": ["weight_momentums"], "adagrad": ["weight_cache"],
             "rmsprop": ["weight_cache"], "adam": ["weight_momentums", "weight_cache"]}[name]
    for attribute in state:
        assert getattr(conv, attribute).shape == conv.weights.shape
        assert getattr(conv, attribute.replace("weight", "bias")).shape == (6,)


def test_cnn_matches_the_reference_model_step_by_step():
    """The same float64 network from the same seed, trained with the same batches: the compiled
    and the reference Model follow the same trajectory."""
    X, y = bars(96)
    models = []
    for nn in (fastnn, ref):
        np.random.seed(42)
        models.append(small_cnn(nn, nn.Optimizer_Adam(learning_rate=0.01), dtype=np.float64))
    logs = []
    for model in models:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            model.train(X, y, epochs=3, batch_size=16, print_every=2)  # the book's log
        logs.append(buffer.getvalue())
    assert logs[0] == logs[1]
    for (w_fast, b_fast), (w_ref, b_ref) in zip(models[0].get_parameters(), models[1].get_parameters()):
        np.testing.assert_allclose(w_fast, w_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(b_fast, b_ref, rtol=1e-8, atol=1e-10)


def test_cnn_parameters_round_trip_and_copies():
    X, y = bars(64)
    np.random.seed(1)
    model = small_cnn(fastnn, fastnn.Optimizer_Adam(learning_rate=0.01))
    model.train(X, y, epochs=2, batch_size=16, verbose=False)
    predictions = model.predict(X)
    parameters = model.get_parameters()
    assert [w.shape for w, _ in parameters] == [(6, 1, 3, 3), (8, 6, 3, 3), (32, 32), (32, 4)]
    assert [b.shape for _, b in parameters] == [(6,), (8,), (1, 32), (1, 4)]
    saved = [(w.copy(), b.copy()) for w, b in parameters]

    np.random.seed(2)
    other = small_cnn(fastnn, fastnn.Optimizer_Adam())
    assert not np.allclose(other.predict(X), predictions)
    other.set_parameters(saved)
    np.testing.assert_array_equal(other.predict(X), predictions)
    with pytest.raises(ValueError, match=r"weights must have shape \(6, 1, 3, 3\)"):
        other.set_parameters([(np.zeros((6, 1, 5, 5)), b) if i == 0 else (w, b) for i, (w, b) in enumerate(saved)])

    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(clone.predict(X), predictions)
        clone.train(X, y, epochs=1, batch_size=16, verbose=False)  # keeps training (optimizer state)


def test_cnn_prints_the_book_log(capsys):
    X, y = bars(32)
    np.random.seed(3)
    model = small_cnn(fastnn, fastnn.Optimizer_Adam())
    model.train(X, y, epochs=1, batch_size=16, print_every=1, validation_data=(X, y))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "epoch: 1" and out[1].startswith("step: 0, acc: ")
    assert out[-2].startswith("training, acc: ") and out[-1].startswith("validation, acc: ")


def test_cnn_first_layer_and_the_model_input_checks():
    np.random.seed(4)
    model = small_cnn(fastnn, fastnn.Optimizer_Adam())
    X, y = bars(8)
    with pytest.raises(ValueError, match=r"Layer_Conv2D.forward: inputs must be 4-D"):
        model.predict(X.reshape(8, 64))
    with pytest.raises(ValueError, match="in_channels=1"):
        model.predict(np.repeat(X, 3, axis=1))
