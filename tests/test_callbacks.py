"""Model.train's callbacks and validation_split: the hooks (order, arguments, counts, only the
overridden ones), stop_training, Callback_EarlyStopping (stops, restores the best epoch's layers),
Callback_ModelCheckpoint (atomic safe-format files of the best epoch), the last-fraction split,
the same decisions in fastnn.reference, and every refusal made before anything changes."""
import contextlib
import io
import os

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

from fastnn.callbacks import TrainingRun

from _book import build_model
from _state import snapshot


def mlp(lib=fastnn, seed=0, dropout=False):
    np.random.seed(seed)
    layers = [lib.Layer_Dense(2, 32, dtype=np.float64), lib.Activation_ReLU()]
    layers += [lib.Layer_Dropout(0.1)] if dropout else []
    layers += [lib.Layer_Dense(32, 3, dtype=np.float64), lib.Activation_Softmax()]
    return build_model(lib, layers, loss=lib.Loss_CategoricalCrossentropy(),
                       optimizer=lib.Optimizer_Adam(learning_rate=0.05), accuracy=lib.Accuracy_Categorical())


def data(n=90, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)


class Recorder(fastnn.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, run):
        self.calls.append(("train_begin", run.epoch, run.epochs, run.steps_per_epoch, run.has_validation))

    def on_epoch_begin(self, run):
        self.calls.append(("epoch_begin", run.epoch))

    def on_step_begin(self, run):
        assert run.learning_rate_factor == 1.0
        self.calls.append(("step_begin", run.epoch, run.step))

    def on_step_end(self, run, logs):
        assert set(logs) == {"loss", "data_loss", "reg_loss", "accuracy", "learning_rate"}
        self.calls.append(("step_end", run.epoch, run.step))

    def on_epoch_end(self, run, logs):
        assert set(logs) == set(fastnn.history.FIELDS) and logs["seconds"] > 0
        assert run.history.loss[-1] == logs["loss"]
        self.calls.append(("epoch_end", run.epoch, logs["val_loss"] is not None))

    def on_train_end(self, run):
        self.calls.append(("train_end", run.epoch))


def test_hooks_are_called_in_order_with_the_run():
    X, y = data()
    recorder = Recorder()
    mlp().train(X, y, epochs=2, batch_size=40, verbose="silent", validation_split=0.2, callbacks=[recorder])
    steps = [("step_begin", e, s) for e in (1, 2) for s in range(2)]
    expected = [("train_begin", 0, 2, 2, True)]
    for epoch in (1, 2):
        expected.append(("epoch_begin", epoch))
        for step in range(2):
            expected += [("step_begin", epoch, step), ("step_end", epoch, step)]
        expected.append(("epoch_end", epoch, True))
    expected.append(("train_end", 2))
    assert recorder.calls == expected and len(steps) == 4


def test_hooks_see_the_book_log_in_its_place(capsys):
    class Say(fastnn.Callback):
        def on_epoch_begin(self, run):
            print("begin")

        def on_epoch_end(self, run, logs):
            print("end")

    X, y = data()
    mlp().train(X, y, epochs=1, validation_data=data(20, 5), callbacks=[Say()])
    lines = [line.split(",")[0] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["epoch: 1", "begin", "step: 0", "training", "validation", "end"]


def test_only_overridden_hooks_are_called(monkeypatch):
    class EpochOnly(fastnn.Callback):
        def on_epoch_end(self, run, logs):
            self.seen = True

    def fail(*args):
        raise AssertionError("a base-class hook was called")

    for name in ("on_step_begin", "on_step_end", "on_train_begin", "on_epoch_begin", "on_train_end"):
        monkeypatch.setattr(fastnn.Callback, name, fail)
    callback = EpochOnly()
    X, y = data()
    mlp().train(X, y, epochs=1, batch_size=30, verbose="silent", callbacks=callback)   # one callback, not a list
    assert callback.seen


def test_stop_training_in_a_step_closes_the_epoch():
    class StopAtStep(fastnn.Callback):
        def on_step_end(self, run, logs):
            if run.epoch == 2 and run.step == 1:
                run.stop_training = True

    X, y = data()
    model = mlp()
    history = model.train(X, y, epochs=5, batch_size=30, verbose="silent", callbacks=[StopAtStep()])
    assert len(history) == 2 and model.optimizer.iterations == 5


def test_early_stopping_stops_and_restores_the_best_epoch():
    X, y = data(120)
    stopper = fastnn.Callback_EarlyStopping(monitor="val_loss", patience=3)
    kept = []

    class Keep(fastnn.Callback):
        def on_epoch_end(self, run, logs):
            kept.append(run.model.layers[0].weights.copy())

    model = mlp()
    history = model.train(X, y, epochs=200, batch_size=20, verbose="silent", validation_split=0.5,
                          callbacks=[Keep(), stopper])
    epochs = len(history)
    assert epochs < 200 and stopper.stopped_epoch == epochs
    best = int(np.argmin(history.val_loss)) + 1
    assert stopper.best_epoch == best and stopper.best == min(history.val_loss)
    assert epochs - best == 3 and stopper.wait == 3
    np.testing.assert_array_equal(model.layers[0].weights, kept[best - 1])   # the best epoch's layers
    loss, _ = model.evaluate(X[60:], y[60:], verbose="silent")
    assert loss == pytest.approx(stopper.best, rel=1e-12)


def test_early_stopping_without_restore_keeps_the_last_weights():
    X, y = data(120)
    stopper = fastnn.Callback_EarlyStopping(monitor="val_accuracy", patience=2, restore_best=False, min_delta=0.5)
    model = mlp()
    history = model.train(X, y, epochs=50, verbose="silent", validation_split=0.25, callbacks=[stopper])
    assert len(history) == 3 and stopper.best_epoch == 1          # nothing beats epoch 1 by 0.5
    loss, _ = model.evaluate(X[90:], y[90:], verbose="silent")
    assert loss == history.val_loss[-1]


def test_early_stopping_matches_the_reference():
    X, y = data(120)
    seen = []
    for lib in (fastnn, ref):
        stopper = lib.Callback_EarlyStopping(patience=2)
        model = mlp(lib)
        with contextlib.redirect_stdout(io.StringIO()) as log:
            model.train(X, y, epochs=100, batch_size=30, validation_split=0.3, callbacks=[stopper])
        seen.append((log.getvalue(), vars(stopper).get("best_epoch"), stopper.stopped_epoch,
                     model.layers[2].weights.copy()))
    assert seen[0][0] == seen[1][0] and seen[0][1:3] == seen[1][1:3]
    np.testing.assert_allclose(seen[0][3], seen[1][3], rtol=1e-9)   # float64 sums in other orders


def test_checkpoint_writes_the_best_epoch_in_the_safe_format(tmp_path):
    X, y = data(120)
    path = tmp_path / "best.fnn"
    checkpoint = fastnn.Callback_ModelCheckpoint(path)
    snapshots = {}

    class Keep(fastnn.Callback):
        def on_epoch_end(self, run, logs):
            snapshots[run.epoch] = run.model.predict(X[:10])

    model = mlp(dropout=True)
    history = model.train(X, y, epochs=12, batch_size=30, verbose="silent", validation_split=0.25,
                          callbacks=[checkpoint, Keep()])
    best = int(np.argmin(history.val_loss)) + 1
    assert checkpoint.best_epoch == best == checkpoint.saved_epoch
    assert sorted(os.listdir(tmp_path)) == ["best.fnn"]               # no temporary files left
    loaded = fastnn.Model.load(path)
    np.testing.assert_array_equal(loaded.predict(X[:10]), snapshots[best])
    assert loaded.optimizer.iterations == best * 3


def test_checkpoint_every_epoch(tmp_path):
    X, y = data()
    path = tmp_path / "last.fnn"
    every = fastnn.Callback_ModelCheckpoint(str(path), monitor="loss", save_best_only=False)
    mlp().train(X, y, epochs=3, verbose="silent", callbacks=[every])
    assert every.saved_epoch == 3 and fastnn.Model.load(path).optimizer.iterations == 3


@pytest.mark.parametrize("lib", [fastnn, ref], ids=["fastnn", "reference"])
def test_checkpoint_keeps_its_best_over_train_calls(lib):
    """The decisions, on scripted epoch figures: save on an improvement of the best so far, also
    when a later train call starts above it."""
    saved = []

    class Model:
        def save(self, path):
            saved.append((run.epoch, str(path)))

    run = TrainingRun(Model(), 3, 1, True, None)
    checkpoint = lib.Callback_ModelCheckpoint("model.fnn", monitor="val_accuracy")
    for figures in ([0.5, 0.7, 0.6], [0.65, 0.75, 0.8]):          # two train calls
        checkpoint.on_train_begin(run)
        for epoch, value in enumerate(figures, 1):
            run.epoch = epoch
            checkpoint.on_epoch_end(run, {"val_accuracy": value, "loss": 1.0})
    assert saved == [(1, "model.fnn"), (2, "model.fnn"), (2, "model.fnn"), (3, "model.fnn")]
    assert checkpoint.best == 0.8 and checkpoint.best_epoch == 3 and checkpoint.saved_epoch == 3


def test_validation_split_holds_out_the_last_fraction():
    X, y = data(100)
    split = mlp()
    history = split.train(X, y, epochs=3, batch_size=25, verbose="silent", validation_split=0.3)
    explicit = mlp()
    expected = explicit.train(X[:70], y[:70], epochs=3, batch_size=25, verbose="silent",
                              validation_data=(X[70:], y[70:]))
    assert history.as_dict() | {"seconds": None} == expected.as_dict() | {"seconds": None}
    np.testing.assert_array_equal(split.layers[0].weights, explicit.layers[0].weights)


def test_validation_split_in_the_reference():
    X, y = data(100)
    logs = []
    for lib in (fastnn, ref):
        with contextlib.redirect_stdout(io.StringIO()) as log:
            mlp(lib).train(X, y, epochs=2, batch_size=25, validation_split=0.3)
        logs.append(log.getvalue())
    assert logs[0] == logs[1] and "validation, acc" in logs[0]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"validation_split": 0.0}, ValueError, r"validation_split must be in \(0, 1\), got 0.0"),
    ({"validation_split": 1}, ValueError, "validation_split must be"),
    ({"validation_split": "0.1"}, TypeError, "validation_split must be"),
    ({"validation_split": 1e-20}, ValueError, "leaves no validation samples"),
    ({"validation_split": 0.999}, ValueError, "leaves no training samples"),
    ({"validation_split": 0.2, "validation_data": "later"}, ValueError, "give validation_data or validation_split, not both"),
    ({"callbacks": "early"}, TypeError, "callbacks must be a list of Callback objects"),
    ({"callbacks": [fastnn.Callback_EarlyStopping]}, TypeError, r"callbacks\[0\] must be a Callback object.*parentheses"),
    ({"callbacks": [fastnn.Callback(), print]}, TypeError, r"callbacks\[1\] must be a Callback object"),
    ({"callbacks": [fastnn.Callback_EarlyStopping()]}, ValueError,
     r"Callback_EarlyStopping: monitor='val_loss' needs validation figures"),
    ({"callbacks": [fastnn.Callback_ModelCheckpoint("nowhere/at/all/model.fnn", monitor="loss")]}, ValueError,
     "in a folder that does not exist"),
])
def test_refused_before_anything_changes(kwargs, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = data(100)
    if kwargs.get("validation_data") == "later":
        kwargs["validation_data"] = data(10)
    model = mlp()
    before = snapshot(model)
    with pytest.raises(error, match=match):
        model.train(X, y, epochs=2, verbose="silent", **kwargs)
    assert snapshot(model) == before and os.listdir(tmp_path) == []


@pytest.mark.parametrize("cls, kwargs, match", [
    (fastnn.Callback_EarlyStopping, {"monitor": "val_acc"}, "monitor must be one of 'val_loss'"),
    (fastnn.Callback_EarlyStopping, {"patience": 0}, "patience must be a positive int"),
    (fastnn.Callback_ModelCheckpoint, {"path": b"x.fnn"}, "path must be a str or os.PathLike path"),
    (fastnn.Callback_ModelCheckpoint, {"path": ""}, "path must be a non-empty path"),
    (fastnn.Schedule_ReduceOnPlateau, {"factor": 1.0}, r"factor must be in \(0, 1\), got 1.0"),
])
def test_constructor_messages(cls, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        cls(**kwargs)


@pytest.mark.parametrize("lib", [fastnn, ref], ids=["fastnn", "reference"])
def test_early_stopping_restores_the_running_statistics_too(lib):
    X, y = data(120)
    np.random.seed(0)
    model = build_model(lib, [lib.Layer_Dense(2, 16, dtype=np.float64), lib.Layer_BatchNorm(16, dtype=np.float64),
                              lib.Activation_ReLU(), lib.Layer_Dense(16, 3, dtype=np.float64), lib.Activation_Softmax()],
                        loss=lib.Loss_CategoricalCrossentropy(), optimizer=lib.Optimizer_Adam(learning_rate=0.05),
                        accuracy=lib.Accuracy_Categorical())
    kept = []

    class Keep(lib.Callback):
        def on_epoch_end(self, run, logs):
            kept.append({name: getattr(run.model.layers[1], name).copy()
                         for name in ("weights", "biases", "running_mean", "running_var")})

    stopper = lib.Callback_EarlyStopping(patience=2)
    with contextlib.redirect_stdout(io.StringIO()):
        model.train(X, y, epochs=100, batch_size=20, validation_split=0.5, callbacks=[Keep(), stopper])
    assert stopper.stopped_epoch == len(kept) and stopper.best_epoch < len(kept)
    for name, value in kept[stopper.best_epoch - 1].items():
        np.testing.assert_array_equal(getattr(model.layers[1], name), value, err_msg=name)
    assert not np.array_equal(kept[-1]["running_mean"], kept[stopper.best_epoch - 1]["running_mean"])

