"""Callbacks for ``Model.train(..., callbacks=[...])`` (not in the book).

    model.train(X, y, epochs=30, batch_size=128, validation_split=0.1,
                callbacks=[Schedule_Cosine(epochs=30, warmup=1),
                           Callback_EarlyStopping(monitor="val_loss", patience=5),
                           Callback_ModelCheckpoint("best.fnn")])

A callback is an instance of a ``Callback`` subclass; the training loop calls its hooks, in the
order the list gives, at the start and end of the run, of every epoch and of every step:

    on_train_begin(run)              after the data is checked, before the first step
    on_epoch_begin(run)              after the book's ``epoch: N`` line
    on_step_begin(run)               before the step's forward pass (its batch is taken)
    on_step_end(run, logs)           after the step's update and its log line
    on_epoch_end(run, logs)          after the epoch's ``training``/``validation`` lines
    on_train_end(run)                after the last epoch (not when training raises)

``run`` is the ``TrainingRun`` of the call (the model, the counters, and what a callback may set:
``stop_training``, ``learning_rate_factor``). Step logs hold ``loss``, ``data_loss``,
``reg_loss``, ``accuracy`` and ``learning_rate`` of the batch; epoch logs hold the History
fields of the epoch (``loss``, ``data_loss``, ``reg_loss``, ``accuracy``, ``learning_rate``,
``val_loss``, ``val_accuracy`` (None without validation), ``seconds``). Only hooks a subclass
overrides are called: a run without step hooks pays nothing per step.

The learning-rate schedules (fastnn/schedules.py) are callbacks too.
"""
from __future__ import annotations

import math

import numpy as np

from ._core.constraints import SIZE, Bool, Choice, NON_NEGATIVE, Path
from ._core.spec import declare, spec_of

__all__ = ["Callback", "Callback_EarlyStopping", "Callback_ModelCheckpoint", "TrainingRun", "MONITOR"]

# What EarlyStopping, ModelCheckpoint and ReduceOnPlateau may watch: an epoch log's figure. Losses
# improve by going down, accuracies by going up.
MONITOR = Choice("val_loss", "val_accuracy", "loss", "accuracy", "data_loss")


class TrainingRun:
    """What the hooks of one ``Model.train`` call are given.

    model               the Model being trained
    epochs              the epochs asked for
    epoch               the current epoch, 1-based (the log's ``epoch: N``); 0 before the first
    step                the current step within the epoch, 0-based (the log's ``step: N``)
    steps_per_epoch     the optimizer steps of a full epoch
    has_validation      whether each epoch ends with validation figures (validation_data or
                        validation_split)
    history             the History filled so far (what train returns)

    A callback may set:

    stop_training       True ends the run: after the current step, the epoch is closed as usual
                        (its log lines, validation, on_epoch_end) and no other epoch starts
    learning_rate_factor  the factor this step's learning rate is multiplied by: 1.0 before each
                        step's on_step_begin hooks, which may multiply it (the schedules do);
                        the optimizer's ``current_learning_rate`` for the step is then its
                        book (decayed) rate times this factor, as the log's ``lr:`` shows
    """

    def __init__(self, model, epochs: int, steps_per_epoch: int, has_validation: bool, history) -> None:
        self.model = model
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.has_validation = has_validation
        self.history = history
        self.epoch = 0
        self.step = 0
        self.stop_training = False
        self.learning_rate_factor = 1.0


@declare("callback", saveable=False)
class Callback:
    """Base class of the training callbacks: override any of the hooks (each does nothing here).

    Hooks: on_train_begin(run), on_epoch_begin(run), on_step_begin(run), on_step_end(run, logs),
    on_epoch_end(run, logs), on_train_end(run); see fastnn.callbacks for when each is called and
    what ``run`` (a TrainingRun) and ``logs`` (a dict of figures) hold."""

    def on_train_begin(self, run) -> None:
        """Before the first step."""

    def on_epoch_begin(self, run) -> None:
        """At the start of epoch ``run.epoch``."""

    def on_step_begin(self, run) -> None:
        """Before step ``run.step`` (``run.learning_rate_factor`` is 1.0 here)."""

    def on_step_end(self, run, logs) -> None:
        """After step ``run.step``; logs: loss, data_loss, reg_loss, accuracy, learning_rate."""

    def on_epoch_end(self, run, logs) -> None:
        """After epoch ``run.epoch``; logs: that epoch's History fields."""

    def on_train_end(self, run) -> None:
        """After the last epoch."""


def require_monitor(callback, run) -> None:
    """A ValueError when `callback` watches a validation figure and the run has none."""
    if callback.monitor.startswith("val_") and not run.has_validation:
        raise ValueError(f"{type(callback).__name__}: monitor={callback.monitor!r} needs validation figures: pass "
                         f"validation_data=(X_val, y_val) or validation_split=... to Model.train, or monitor "
                         f"{callback.monitor[4:]!r}")


def improved(monitor: str, value, best, min_delta: float) -> bool:
    """Whether `value` of `monitor` beats `best` (None: nothing yet) by more than min_delta: lower
    for a loss, higher for an accuracy. A NaN or missing value never improves."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if monitor.endswith("loss") else value > best + min_delta


def state_arrays(layer) -> list[str]:
    """The names of the arrays that make a layer's learned state: its declared parameters and
    buffers (running statistics, say), or weights/biases for an undeclared layer."""
    spec = spec_of(layer)
    if spec is not None and (spec.parameters is not None or spec.buffers is not None):
        attributes = {name: getattr(layer, name) for name in spec.saved}
        dims = {name: getter(layer) for name, getter in spec.dims.items()}
        names = list(spec.parameters(attributes, dims)) if spec.parameters is not None else []
        return names + (list(spec.buffers(attributes, dims)) if spec.buffers is not None else [])
    return [name for name in ("weights", "biases") if isinstance(getattr(layer, name, None), np.ndarray)]


@declare("callback", params={"monitor": MONITOR, "patience": SIZE, "min_delta": NON_NEGATIVE,
                             "restore_best": Bool()}, saveable=False)
class Callback_EarlyStopping(Callback):
    """Stop training when the monitored figure has not improved for `patience` epochs.

    monitor: an epoch log's figure, "val_loss" (default), "val_accuracy", "loss", "accuracy" or
    "data_loss" (losses improve downwards, accuracies upwards); patience: epochs without an
    improvement of more than `min_delta` before the run stops; restore_best: at the end of the run
    put back the layers' parameters and buffers (not the optimizer's state) of the best epoch.

    After a run: ``best`` (the best value), ``best_epoch``, ``stopped_epoch`` (0 when it ran all
    its epochs) and ``wait`` (epochs since the best). Each train call starts afresh.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0,
                 restore_best: bool = True) -> None:
        self.monitor, self.patience, self.min_delta, self.restore_best = type(self)._spec.check(locals())
        self.best = None
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.wait = 0

    def on_train_begin(self, run) -> None:
        require_monitor(self, run)
        self.best, self.best_epoch, self.stopped_epoch, self.wait = None, 0, 0, 0
        self._best_state = None

    def on_epoch_end(self, run, logs) -> None:
        value = logs[self.monitor]
        if improved(self.monitor, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = float(value), run.epoch, 0
            if self.restore_best:
                self._best_state = [(layer, name, np.array(getattr(layer, name), copy=True))
                                    for layer in run.model.layers for name in state_arrays(layer)]
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = run.epoch
            run.stop_training = True

    def on_train_end(self, run) -> None:
        if self.restore_best and self._best_state is not None and self.best_epoch != run.epoch:
            for layer, name, saved in self._best_state:
                getattr(layer, name)[...] = saved
        self._best_state = None


@declare("callback", params={"path": Path(), "monitor": MONITOR, "save_best_only": Bool()}, saveable=False)
class Callback_ModelCheckpoint(Callback):
    """Save the model (``Model.save``: the safe format, written atomically) at the end of epochs.

    path: the file (its folder must exist); monitor: the figure that decides which epoch is best
    (as Callback_EarlyStopping's); save_best_only: True (default) saves only when the monitored
    figure improves on the best so far (over every train call with this callback), False after
    every epoch. After a run: ``best``, ``best_epoch`` and ``saved_epoch`` (the last epoch
    written; 0 for none).
    """

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = True) -> None:
        self.path, self.monitor, self.save_best_only = type(self)._spec.check(locals())
        self.best = None
        self.best_epoch = 0
        self.saved_epoch = 0

    def on_train_begin(self, run) -> None:
        if self.save_best_only:
            require_monitor(self, run)
        if not self.path.parent.is_dir():
            raise ValueError(f"Callback_ModelCheckpoint: path {str(self.path)!r} is in a folder that does not exist")
        self.saved_epoch = 0

    def on_epoch_end(self, run, logs) -> None:
        better = improved(self.monitor, logs.get(self.monitor), self.best, 0.0)
        if better:
            self.best, self.best_epoch = float(logs[self.monitor]), run.epoch
        if better or not self.save_best_only:
            run.model.save(self.path)
            self.saved_epoch = run.epoch
