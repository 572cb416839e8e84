"""fastnn.Model beyond the book's log: history, verbose modes, shuffle, plots, the NaN
guard, the checks made before any work, evaluate, predict, one-layer and loss-less models, and the
binary/regression paths against fastnn.reference."""
import re
import sys

import numpy as np
import pytest
from nnfs.datasets import sine_data, spiral_data

import fastnn
from _models import mlp
import fastnn.reference as ref
from fastnn.history import FIELDS, History
from fastnn.plotting import plot_history

from _layers import Recorder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NUMBER = re.compile(r"\d+\.\d{3}(?!\d)")


pytestmark = pytest.mark.usefixtures("seeded")  # every test starts from np.random.seed(0)


def classifier(lib=fastnn, hidden=16, dropout=None, optimizer=None, dtype=None, classes=3, first=None):
    model = lib.Model()
    if first is not None:
        model.add(first)
    model.add(lib.Layer_Dense(2, hidden, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4, dtype=dtype))
    model.add(lib.Activation_ReLU())
    if dropout is not None:
        model.add(lib.Layer_Dropout(dropout, **({"mode": "book"} if lib is fastnn else {})))
    model.add(lib.Layer_Dense(hidden, classes, dtype=dtype))
    model.add(lib.Activation_Softmax())
    model.set(loss=lib.Loss_CategoricalCrossentropy(),
              optimizer=optimizer or lib.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
              accuracy=lib.Accuracy_Categorical())
    model.finalize()
    return model


def parameters_copy(model):
    return [(w.copy(), b.copy()) for w, b in model.get_parameters()]


def assert_parameters_equal(model, expected):
    for (w, b), (w0, b0) in zip(model.get_parameters(), expected):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)


# --- History ------------------------------------------------------------------------------------


def test_train_returns_a_history_with_every_field_per_epoch(capsys):
    X, y = spiral_data(100, 3)
    X_val, y_val = spiral_data(50, 3)
    model = classifier(dropout=0.1)
    capsys.readouterr()
    history = model.train(X, y, epochs=4, batch_size=128, print_every=100, validation_data=(X_val, y_val))
    log = capsys.readouterr().out.splitlines()
    assert isinstance(history, History) and len(history) == 4 and history.epochs == [1, 2, 3, 4]
    assert list(history) == list(FIELDS)
    for name in FIELDS:
        assert len(history[name]) == 4 and getattr(history, name) == history[name]
        assert all(isinstance(v, float) for v in history[name]), name
    for i in range(4):
        assert history.loss[i] == history.data_loss[i] + history.reg_loss[i]
        assert history.seconds[i] > 0
    # The history holds the numbers the log prints (training and validation lines of each epoch).
    training = [line for line in log if line.startswith("training")]
    validation = [line for line in log if line.startswith("validation")]
    assert len(training) == len(validation) == 4
    for i in range(4):
        acc, loss, data_loss, reg_loss = map(float, NUMBER.findall(training[i]))
        assert (acc, loss, data_loss, reg_loss) == tuple(round(v, 3) for v in (
            history.accuracy[i], history.loss[i], history.data_loss[i], history.reg_loss[i]))
        assert training[i].endswith(f"lr: {history.learning_rate[i]}")
        assert tuple(map(float, NUMBER.findall(validation[i]))) == (
            round(history.val_accuracy[i], 3), round(history.val_loss[i], 3))
    assert history.learning_rate[-1] == model.optimizer.current_learning_rate
    assert history.as_dict()["loss"] == history.loss and history.as_dict()["loss"] is not history.loss
    assert "4 epochs" in repr(history)


def test_history_without_validation_data_has_none_there():
    X, y = spiral_data(50, 3)
    history = classifier().train(X, y, epochs=2, verbose=False)
    assert history.val_loss == [None, None] and history.val_accuracy == [None, None]
    assert len(history.loss) == 2


# --- verbose modes ------------------------------------------------------------------------------


def test_progress_mode_shows_a_tqdm_bar_on_stderr_and_nothing_on_stdout(capsys):
    pytest.importorskip("tqdm")
    X, y = spiral_data(100, 3)
    model = classifier()
    capsys.readouterr()
    model.train(X, y, epochs=2, batch_size=32, verbose="progress", validation_data=(X, y))
    out, err = capsys.readouterr()
    assert out == ""
    assert "epoch 1/2" in err and "epoch 2/2" in err
    assert "/10" in err and "step/s" in err            # the bar: 10 steps of 32 samples, a rate
    assert re.search(r"epoch 2/2: acc \d\.\d{3}, loss \d\.\d{3}, lr ", err)
    assert "validation: acc" in err


@pytest.mark.parametrize("verbose", ["silent", False, 0, None])
def test_silent_mode_prints_nothing(verbose, capsys):
    X, y = spiral_data(50, 3)
    model = classifier()
    capsys.readouterr()
    history = model.train(X, y, epochs=2, batch_size=64, validation_data=(X, y), verbose=verbose)
    result = model.evaluate(X, y, verbose=verbose)
    assert capsys.readouterr() == ("", "")
    assert len(history) == 2 and len(result) == 2


def test_book_mode_is_the_default_and_true(capsys):
    X, y = spiral_data(50, 3)
    classifier().train(X, y, epochs=1)
    default = capsys.readouterr().out
    np.random.seed(0)
    X, y = spiral_data(50, 3)
    classifier().train(X, y, epochs=1, verbose=True)
    assert capsys.readouterr().out == default and default.startswith("epoch: 1\nstep: 0, acc: ")


def test_an_unknown_verbose_value_is_refused_before_any_work(capsys):
    X, y = spiral_data(50, 3)
    model = classifier()
    before = parameters_copy(model)
    with pytest.raises(ValueError, match="verbose must be 'book'"):
        model.train(X, y, verbose="loud")
    assert_parameters_equal(model, before)
    assert capsys.readouterr().out == ""


def test_progress_without_tqdm_says_how_to_install_it(monkeypatch):
    X, y = spiral_data(50, 3)
    model = classifier()
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"pip install \"fastnn\[progress\]\""):
        model.train(X, y, epochs=1, verbose="progress")


# --- shuffle ------------------------------------------------------------------------------------


def recorded_run(shuffle, seed, X, y):
    recorder = Recorder()
    np.random.seed(1)
    model = classifier(first=recorder)
    np.random.seed(seed)
    model.train(X, y, epochs=3, batch_size=40, shuffle=shuffle, verbose=False)
    return recorder.batches, parameters_copy(model)


def test_shuffle_reorders_every_epoch_reproducibly_under_np_random_seed():
    X, y = spiral_data(50, 3)
    X = X.astype(np.float32)
    batches, parameters = recorded_run(True, 7, X, y)
    again, parameters_again = recorded_run(True, 7, X, y)
    other, _ = recorded_run(True, 8, X, y)
    # One np.random.permutation(n) per epoch from the global RNG, batches taken in that order.
    np.random.seed(7)
    expected = []
    for _ in range(3):
        order = np.random.permutation(len(X))
        expected += [X[order][start:start + 40] for start in range(0, len(X), 40)]
    assert len(batches) == len(expected) == 3 * 4
    for got, want in zip(batches, expected):
        np.testing.assert_array_equal(got, want)
    for a, b in zip(batches, again):
        np.testing.assert_array_equal(a, b)
    for (w, b), (w2, b2) in zip(parameters, parameters_again):
        np.testing.assert_array_equal(w, w2)
    assert any(not np.array_equal(a, b) for a, b in zip(batches, other))
    # Every epoch sees every sample once.
    for epoch in range(3):
        seen = np.concatenate(batches[epoch * 4:(epoch + 1) * 4])
        assert sorted(map(tuple, seen)) == sorted(map(tuple, X))


def test_without_shuffle_batches_are_the_books_consecutive_slices():
    X, y = spiral_data(50, 3)
    X = X.astype(np.float32)
    state = np.random.get_state()
    batches, _ = recorded_run(False, 7, X, y)
    slices = [X[start:start + 40] for start in range(0, len(X), 40)] * 3
    for got, want in zip(batches, slices):
        np.testing.assert_array_equal(got, want)
    np.random.set_state(state)


def test_shuffle_changes_the_training_but_not_the_data():
    X, y = spiral_data(50, 3)
    X_before, y_before = X.copy(), y.copy()
    _, plain = recorded_run(False, 7, X, y)
    _, shuffled = recorded_run(True, 7, X, y)
    assert not np.array_equal(plain[0][0], shuffled[0][0])
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


# --- plots --------------------------------------------------------------------------------------


def test_history_plot_writes_a_png_headless(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = spiral_data(50, 3)
    history = classifier().train(X, y, epochs=5, validation_data=(X, y), verbose=False)
    path = tmp_path / "history.png"
    assert history.plot(path, title="spiral") == path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000          # two panels with axes, lines and legends, not an empty canvas
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[:2] == (400, 1000)
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10
    other = tmp_path / "direct.png"
    plot_history(history, other)
    assert other.read_bytes().startswith(PNG_SIGNATURE)


def test_history_plot_without_matplotlib_raises_a_clear_import_error(tmp_path, monkeypatch):
    X, y = spiral_data(50, 3)
    history = classifier().train(X, y, epochs=1, verbose=False)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"matplotlib.*pip install \"fastnn\[plot\]\""):
        history.plot(tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


def test_a_one_epoch_history_plot_shows_its_points_on_whole_epochs():
    pytest.importorskip("matplotlib")
    X, y = spiral_data(50, 3)
    history = classifier().train(X, y, epochs=1, validation_data=(X, y), verbose=False)
    figure = history.figure(title="one epoch")
    assert len(figure.axes) == 2
    for axes in figure.axes:
        lines = axes.get_lines()
        assert [line.get_label() for line in lines][0].startswith("training")
        assert len(lines) == 2 and all(line.get_marker() not in (None, "", "None") for line in lines)
        assert all(len(line.get_xdata()) == 1 for line in lines)
        ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
        assert ticks == [1.0], ticks


def test_epoch_ticks_are_whole_numbers():
    pytest.importorskip("matplotlib")
    X, y = spiral_data(50, 3)
    history = classifier().train(X, y, epochs=3, verbose=False)
    for axes in history.figure().axes:
        ticks = axes.get_xticks()
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def test_a_long_history_is_drawn_without_markers():
    pytest.importorskip("matplotlib")
    from fastnn.plotting import MARKERS_UP_TO

    X, y = spiral_data(20, 3)
    history = classifier().train(X, y, epochs=MARKERS_UP_TO + 1, verbose=False)
    assert all(line.get_marker() in (None, "", "None") for axes in history.figure().axes for line in axes.get_lines())


def test_plot_adds_png_to_a_path_without_suffix_and_returns_what_it_wrote(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    X, y = spiral_data(20, 3)
    history = classifier().train(X, y, epochs=2, verbose=False)
    monkeypatch.chdir(tmp_path)
    assert history.plot("h") == "h.png" and (tmp_path / "h.png").read_bytes().startswith(PNG_SIGNATURE)
    assert not (tmp_path / "h").exists()
    assert history.plot(tmp_path / "g") == tmp_path / "g.png" and (tmp_path / "g.png").is_file()
    svg = history.plot(str(tmp_path / "h.svg"))
    assert svg == str(tmp_path / "h.svg") and b"<svg" in (tmp_path / "h.svg").read_bytes()[:500]


def test_plot_without_a_path_shows_the_figure(monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.pyplot as pyplot

    matplotlib.use("Agg")  # what a headless machine picks by itself
    shown = []
    monkeypatch.setattr(pyplot, "show", lambda *a, **k: shown.append([len(f.axes) for f in map(pyplot.figure,
                                                                                                pyplot.get_fignums())]))
    X, y = spiral_data(20, 3)
    history = classifier().train(X, y, epochs=2, verbose=False)
    try:
        assert history.plot(title="shown") is None
        assert shown == [[2]]
    finally:
        pyplot.close("all")


def test_plotting_an_empty_history_is_refused(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="empty"):
        plot_history(History(), tmp_path / "h.png")


# --- NaN guard ----------------------------------------------------------------------------------


def test_nan_in_the_inputs_stops_at_the_first_step_before_any_update():
    X, y = spiral_data(50, 3)
    X[17, 1] = np.nan
    model = classifier(dropout=0.1)
    before = parameters_copy(model)
    with pytest.raises(FloatingPointError, match=r"loss became nan .* epoch 1, step 0; the weights were not updated"):
        model.train(X, y, epochs=3, verbose=False)
    assert_parameters_equal(model, before)
    assert model.optimizer.iterations == 0
    assert not hasattr(model.layers[0], "weight_cache")


def test_an_exploding_learning_rate_stops_with_the_epoch_and_step_and_no_update():
    """SGD with lr 1e25 on a regression: the loss overflows to inf at some step; the error names it
    and the weights are those after the steps before it (a rerun of those steps matches exactly)."""
    X, y = sine_data(200)

    def regression():
        return mlp(fastnn, (1, 8, 1), "Activation_Linear", fastnn.Loss_MeanSquaredError(),
                   fastnn.Optimizer_SGD(learning_rate=1e25), fastnn.Accuracy_Regression(), seed=3)

    model = regression()
    with pytest.raises(FloatingPointError) as info:
        model.train(X, y, epochs=20, batch_size=50, verbose=False)
    epoch, step = map(int, re.search(r"at epoch (\d+), step (\d+)", str(info.value)).groups())
    assert "the weights were not updated by this step" in str(info.value)
    assert (epoch, step) > (1, 0)
    done = (epoch - 1) * 4 + step
    assert model.optimizer.iterations == done
    rerun = regression()
    if epoch > 1:
        rerun.train(X, y, epochs=epoch - 1, batch_size=50, verbose=False)
    if step:
        rerun.train(X[:step * 50], y[:step * 50], epochs=1, batch_size=50, verbose=False)
    assert rerun.optimizer.iterations == done
    assert_parameters_equal(model, parameters_copy(rerun))


# --- checks before any work -----------------------------------------------------------------------


def bad_inputs():
    X, y = spiral_data(20, 3)
    return {
        "length": (X, y[:-1], None, ValueError, "X and y must have the same number of samples, got 60 and 59"),
        "label range": (X, np.where(y == 2, 3, y), None, ValueError, r"y must be class ids in \[0, 3\)"),
        "negative label": (X, y.astype(np.int64) - 1, None, ValueError, r"class ids in \[0, 3\)"),
        "fractional float labels": (X, y + 0.5, None, TypeError, "y must be whole-number class ids"),
        "one-hot width": (X, np.eye(4)[y], None, ValueError, r"one-hot of shape \(60, 3\)"),
        "X features": (X[:, :1], y, None, ValueError, r"shape \(n_samples, 2\)"),
        "X one sample": (X[0], y[:1], None, ValueError, "reshape"),
        "X not numbers": (X.astype(str), y, None, TypeError, "X must be an array of real numbers"),
        "validation X shape": (X, y, (np.hstack([X, X]), y), ValueError,
                               r"X_val must have samples shaped like X's \(2,\), got \(4,\)"),
        "validation lengths": (X, y, (X, y[:10]), ValueError, "X_val and y_val must have the same number"),
        "validation labels": (X, y, (X, y + 3), ValueError, r"y_val must be class ids in \[0, 3\)"),
        "validation not a pair": (X, y, (X,), ValueError, r"validation_data must be a pair \(X_val, y_val\)"),
    }


@pytest.mark.parametrize("case", list(bad_inputs()))
def test_model_checks_the_data_before_any_work(case, capsys):
    X, y, validation_data, error, message = bad_inputs()[case]
    model = classifier(dropout=0.1)
    before = parameters_copy(model)
    state = np.random.get_state()
    capsys.readouterr()
    with pytest.raises(error, match=message):
        model.train(X, y, epochs=2, validation_data=validation_data)
    assert capsys.readouterr().out == ""                       # not even "epoch: 1"
    assert_parameters_equal(model, before)
    assert model.optimizer.iterations == 0 and not hasattr(model.layers[0], "weight_cache")
    assert all(a == b if not isinstance(a, np.ndarray) else np.array_equal(a, b)
               for a, b in zip(np.random.get_state(), state))  # no dropout mask was drawn


def test_whole_number_float_labels_train_exactly_like_int_labels(capsys):
    """The book would crash on float class ids (they index an array); fastnn converts whole numbers
    once (where the book crashes and the intent is clear, fastnn works)."""
    X, y = spiral_data(50, 3)
    logs = []
    for labels in (y, y.astype(np.float64)):
        np.random.seed(5)
        model = classifier()
        capsys.readouterr()
        model.train(X, labels, epochs=2)
        logs.append((capsys.readouterr().out, parameters_copy(model)))
    assert logs[0][0] == logs[1][0]
    for (w, b), (w2, b2) in zip(logs[0][1], logs[1][1]):
        np.testing.assert_array_equal(w, w2)


def test_train_and_evaluate_need_finalize_and_set():
    X, y = spiral_data(20, 3)
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 3))
    model.add(fastnn.Activation_Softmax())
    with pytest.raises(ValueError, match=r"call model.finalize\(\) first"):
        model.train(X, y)
    with pytest.raises(ValueError, match=r"call model.finalize\(\) first"):
        model.predict(X)
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    with pytest.raises(ValueError, match=r"the model has no optimizer; call model.set\(optimizer=...\)"):
        model.train(X, y)
    model.evaluate(X, y, verbose=False)          # evaluation needs no optimizer
    model.set(loss=fastnn.Loss_MeanSquaredError(), optimizer=fastnn.Optimizer_SGD())
    with pytest.raises(ValueError, match=r"the loss changed after finalize\(\)"):
        model.train(X, y)
    with pytest.raises(ValueError, match="the model has no layers"):
        fastnn.Model().finalize()


@pytest.mark.parametrize("argument, value, error", [
    ("epochs", 0, ValueError), ("epochs", 1.5, TypeError), ("batch_size", 0, ValueError),
    ("batch_size", True, TypeError), ("print_every", -1, ValueError)])
def test_bad_training_arguments_are_refused(argument, value, error):
    X, y = spiral_data(20, 3)
    model = classifier()
    before = parameters_copy(model)
    with pytest.raises(error, match=argument):
        model.train(X, y, **{argument: value})
    assert_parameters_equal(model, before)


# --- evaluate and predict -----------------------------------------------------------------------


def test_evaluate_returns_loss_and_accuracy_and_prints_the_book_line(capsys):
    X, y = spiral_data(100, 3)
    model = classifier(dropout=0.1)
    model.train(X, y, epochs=20, verbose=False)
    X_val, y_val = spiral_data(40, 3)
    state = np.random.get_state()
    capsys.readouterr()
    loss, accuracy = model.evaluate(X_val, y_val)
    assert capsys.readouterr().out == f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}\n"
    assert isinstance(loss, float) and isinstance(accuracy, float)
    probabilities = model.predict(X_val).astype(np.float64)
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    assert loss == pytest.approx(float(np.mean(-np.log(clipped[np.arange(len(y_val)), y_val]))), rel=1e-6)
    assert accuracy == np.mean(np.argmax(probabilities, axis=1) == y_val)
    batched = model.evaluate(X_val, y_val, batch_size=7, verbose=False)
    assert batched[1] == accuracy and batched[0] == pytest.approx(loss, rel=1e-6)
    one_hot = model.evaluate(X_val, np.eye(3)[y_val], verbose=False)
    assert one_hot == pytest.approx((loss, accuracy), rel=1e-6)
    for a, b in zip(np.random.get_state(), state):    # evaluation draws no dropout masks
        assert np.array_equal(a, b)


def test_evaluate_matches_the_reference_line(capsys):
    X, y = spiral_data(60, 3)
    lines = []
    for lib in (fastnn, ref):
        np.random.seed(2)
        model = classifier(lib, dtype=np.float64)
        model.train(X, y, epochs=3, verbose=False) if lib is fastnn else model.train(X, y, epochs=3)
        capsys.readouterr()
        model.evaluate(X, y, batch_size=50)
        lines.append(capsys.readouterr().out)
    assert lines[0] == lines[1] and lines[0].startswith("validation, acc: ")


def test_predict_returns_a_fresh_array_and_handles_batch_sizes():
    X, y = spiral_data(100, 3)
    model = classifier(dropout=0.1)
    model.train(X, y, epochs=5, verbose=False)
    first = model.predict(X)
    assert first.shape == (300, 3) and first.dtype == np.float32
    assert not np.shares_memory(first, model.layers[-1].output)
    expected = first.copy()
    first[:] = -1                                       # the caller owns the array
    second = model.predict(X)
    np.testing.assert_array_equal(second, expected)
    for batch_size in (7, 128, 300, 1000):
        np.testing.assert_array_equal(model.predict(X, batch_size=batch_size), expected)
    # A one-row batch is a matrix-vector product (gemv, as NumPy computes it: np.dot's bits), whose
    # sums may round their last bit differently from the same row inside a larger batch.
    np.testing.assert_allclose(model.predict(X, batch_size=1), expected, rtol=1e-5, atol=1e-7)
    split = model.predict(X, batch_size=299)                # 299 rows, then one
    np.testing.assert_array_equal(split[:299], expected[:299])
    np.testing.assert_allclose(split[299:], expected[299:], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict(X[:1]), expected[:1], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.predict(X.tolist()), expected)
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(X, batch_size=0)
    with pytest.raises(ValueError, match=r"reshape one sample with x.reshape\(1, -1\)"):
        model.predict(X[0])
    classes = model.output_layer_activation.predictions(model.predict(X))
    assert classes.shape == (300,)


def test_predict_matches_the_reference():
    """Same weights, same GEMMs; the compiled softmax rounds its last bit differently sometimes."""
    X, y = spiral_data(50, 3)
    predictions = []
    for lib in (fastnn, ref):
        np.random.seed(4)
        model = classifier(lib, dtype=np.float64)
        predictions.append(model.predict(X, batch_size=64))
    np.testing.assert_allclose(*predictions, rtol=4 * np.finfo(np.float64).eps, atol=0)


# --- unusual models -----------------------------------------------------------------------------


def one_layer_regression(lib):
    model = lib.Model()
    model.add(lib.Layer_Dense(1, 1, dtype=np.float64))
    model.set(loss=lib.Loss_MeanSquaredError(), optimizer=lib.Optimizer_SGD(learning_rate=0.5),
              accuracy=lib.Accuracy_Regression())
    model.finalize()
    return model


def test_a_one_layer_model_trains_like_the_reference(capsys):
    """The book's finalize fails with one layer (IndexError); fastnn links it to the loss."""
    X = np.linspace(-1, 1, 64).reshape(-1, 1)
    y = 3 * X + 0.5
    logs = []
    for lib in (fastnn, ref):
        np.random.seed(0)
        model = one_layer_regression(lib)
        assert model.layers[0].next is model.loss and model.trainable_layers == [model.layers[0]]
        capsys.readouterr()
        model.train(X, y, epochs=50, print_every=10)
        logs.append(capsys.readouterr().out)
        assert model.layers[0].weights[0, 0] == pytest.approx(3, abs=0.01)
        assert model.layers[0].biases[0, 0] == pytest.approx(0.5, abs=0.01)
    assert logs[0] == logs[1]


def test_a_model_without_a_loss_finalizes_and_predicts():
    X, _ = spiral_data(20, 3)
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 8))
    model.add(fastnn.Activation_ReLU())
    model.add(fastnn.Layer_Dense(8, 3))
    model.add(fastnn.Activation_Softmax())
    model.finalize()
    assert model.layers[-1].next is None and model.softmax_classifier_output is None
    out = model.predict(X)
    assert out.shape == (60, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"the model has no loss / optimizer / accuracy; call model.set\("):
        model.train(X, np.zeros(60, dtype=int))
    with pytest.raises(ValueError, match="the model has no loss"):
        model.evaluate(X, np.zeros(60, dtype=int))


def test_a_model_ending_in_a_dense_layer_uses_its_raw_outputs(capsys):
    X, y = sine_data(100)
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(1, 16))
    model.add(fastnn.Activation_ReLU())
    model.add(fastnn.Layer_Dense(16, 1))
    model.set(loss=fastnn.Loss_MeanSquaredError(), optimizer=fastnn.Optimizer_Adam(learning_rate=0.01),
              accuracy=fastnn.Accuracy_Regression())
    model.finalize()
    history = model.train(X, y, epochs=30, verbose=False)
    assert history.loss[-1] < history.loss[0]


def binary_model(lib):
    model = lib.Model()
    model.add(lib.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4, dtype=np.float64))
    model.add(lib.Activation_ReLU())
    model.add(lib.Layer_Dense(64, 1, dtype=np.float64))
    model.add(lib.Activation_Sigmoid())
    model.set(loss=lib.Loss_BinaryCrossentropy(), optimizer=lib.Optimizer_Adam(decay=5e-7),
              accuracy=lib.Accuracy_Categorical(binary=True))
    model.finalize()
    return model


def regression_model(lib):
    model = lib.Model()
    model.add(lib.Layer_Dense(1, 64, dtype=np.float64))
    model.add(lib.Activation_ReLU())
    model.add(lib.Layer_Dense(64, 64, dtype=np.float64))
    model.add(lib.Activation_ReLU())
    model.add(lib.Layer_Dense(64, 1, dtype=np.float64))
    model.add(lib.Activation_Linear())
    model.set(loss=lib.Loss_MeanSquaredError(), optimizer=lib.Optimizer_Adam(learning_rate=0.005, decay=1e-3),
              accuracy=lib.Accuracy_Regression())
    model.finalize()
    return model


def test_binary_model_log_equals_the_reference(capsys):
    """The ch18-text binary example (Sigmoid + BCE, binary accuracy), float64, 30 epochs."""
    logs = []
    for lib in (fastnn, ref):
        np.random.seed(0)
        X, y = spiral_data(samples=100, classes=2)
        X_test, y_test = spiral_data(samples=100, classes=2)
        y, y_test = y.reshape(-1, 1), y_test.reshape(-1, 1)
        model = binary_model(lib)
        capsys.readouterr()
        model.train(X, y, validation_data=(X_test, y_test), epochs=30, print_every=10)
        logs.append(capsys.readouterr().out)
    assert logs[0] == logs[1] and logs[0].count("validation, acc") == 30


def test_regression_model_log_equals_the_reference(capsys):
    """The ch18-text regression example (Linear + MSE, regression accuracy), float64, 30 epochs."""
    logs = []
    for lib in (fastnn, ref):
        np.random.seed(0)
        X, y = sine_data()
        model = regression_model(lib)
        capsys.readouterr()
        model.train(X, y, epochs=30, batch_size=250, print_every=2)
        logs.append(capsys.readouterr().out)
    assert logs[0] == logs[1] and logs[0].count("step: ") == 30 * 3


def test_fused_softmax_head_matches_the_separate_calls_bit_for_bit():
    """Model._train_step's fused softmax + cross-entropy + accuracy head (one compiled call) gives
    the same log, weights and layer attributes as the separate calls it replaces."""
    import fastnn as nn
    from fastnn.datasets import spiral_data

    def run(fused: bool):
        np.random.seed(0)
        X, y = spiral_data(samples=50, classes=3)
        model = mlp(nn, (2, 16, 3), "Activation_Softmax", nn.Loss_CategoricalCrossentropy(),
                    nn.Optimizer_Adam(learning_rate=0.05), nn.Accuracy_Categorical())
        if not fused:
            model._fused_head = lambda X, y: None
        history = model.train(X, y, epochs=30, batch_size=40, verbose=False)
        return model, history

    fused, h1 = run(True)
    plain, h2 = run(False)
    assert h1.as_dict()["loss"] == h2.as_dict()["loss"] and h1.accuracy == h2.accuracy
    for a, b in zip(fused.layers, plain.layers):
        for name in ("output", "dinputs", "weights", "dweights"):
            if hasattr(b, name):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(fused.softmax_classifier_output.dinputs, plain.softmax_classifier_output.dinputs)


# --- repr ---------------------------------------------------------------------------------------


def test_optimizers_losses_and_accuracies_have_readable_reprs():
    assert repr(fastnn.Optimizer_Adam(learning_rate=0.05, decay=5e-5)) == \
        "Optimizer_Adam(learning_rate=0.05, decay=5e-05, epsilon=1e-07, beta_1=0.9, beta_2=0.999)"
    assert repr(fastnn.Optimizer_SGD(momentum=0.9)) == "Optimizer_SGD(learning_rate=1.0, decay=0.0, momentum=0.9)"
    assert repr(fastnn.Optimizer_RMSprop()) == "Optimizer_RMSprop(learning_rate=0.001, decay=0.0, epsilon=1e-07, rho=0.9)"
    assert repr(fastnn.Optimizer_Adagrad()) == "Optimizer_Adagrad(learning_rate=1.0, decay=0.0, epsilon=1e-07)"
    assert repr(fastnn.Loss_CategoricalCrossentropy()) == "Loss_CategoricalCrossentropy()"
    assert repr(fastnn.Loss_MeanSquaredError()) == "Loss_MeanSquaredError()"
    assert repr(fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()) == \
        "Activation_Softmax_Loss_CategoricalCrossentropy()"
    assert repr(fastnn.Accuracy_Categorical(binary=True)) == "Accuracy_Categorical(binary=True)"
    assert repr(fastnn.Accuracy_Regression()) == "Accuracy_Regression()"
    assert repr(fastnn.Activation_ReLU()) == "Activation_ReLU()"
    for obj in (fastnn.Optimizer_Adam(), fastnn.Loss_BinaryCrossentropy(), fastnn.Accuracy_Categorical()):
        assert "object at 0x" not in repr(obj) and "object at 0x" not in str(obj)


def test_a_repr_shows_the_current_hyper_parameters_and_evaluates_back():
    adam = fastnn.Optimizer_Adam(learning_rate=0.01)
    adam.learning_rate = 0.02
    assert "learning_rate=0.02" in repr(adam)
    again = eval(repr(adam), vars(fastnn))
    assert type(again) is fastnn.Optimizer_Adam and repr(again) == repr(adam)


def test_model_repr_lists_layers_loss_optimizer_and_accuracy():
    model = classifier(dropout=0.1)
    text = repr(model)
    assert text.startswith("Model([Layer_Dense(2, 16, dtype=float32), Activation_ReLU(), Layer_Dropout(0.1")
    assert "loss=Loss_CategoricalCrossentropy()" in text
    assert "optimizer=Optimizer_Adam(learning_rate=" in text and "accuracy=Accuracy_Categorical(binary=False)" in text
    assert "object at 0x" not in text
    assert repr(fastnn.Model()) == "Model([])"


@pytest.mark.parametrize("batch_size", [None, 16])
def test_predict_refusing_x_names_it_and_leaves_the_layers_as_they_were(batch_size):
    """Model.predict checks X in its first batch's pass: a 3-D X is refused with a message naming
    X (and, in batches, the batch tried), and every layer keeps the attributes and the buffer
    contents of the predict before it."""
    np.random.seed(0)
    model = fastnn.Model()
    for layer in (fastnn.Layer_Dense(2, 8), fastnn.Activation_ReLU(), fastnn.Layer_Dense(8, 3),
                  fastnn.Activation_Softmax()):
        model.add(layer)
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    X = np.random.standard_normal((40, 2)).astype(np.float32)
    first = model.predict(X)
    before = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(layer).items()}
              for layer in model.layers]
    tried = "X" if batch_size is None else r"its first batch, X\[:16\]"
    with pytest.raises(ValueError, match=rf"Model.predict: X \(40, 2, 1\) does not fit the model \(tried on {tried}\)"):
        model.predict(X[:, :, None], batch_size=batch_size)
    for layer, state in zip(model.layers, before):
        assert vars(layer).keys() == state.keys()
        for key, value in state.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(vars(layer)[key], value, err_msg=f"{layer!r}.{key}")
    np.testing.assert_array_equal(model.predict(X, batch_size=batch_size), first)
