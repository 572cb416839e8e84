"""Training callbacks and learning-rate schedules in plain Python (not in the book): the twins of
fastnn's (fastnn/callbacks.py and fastnn/schedules.py document them), driven by this package's
Model.train in the same order, with the same hooks and figures. No argument checks: the
reference trusts its caller."""
from __future__ import annotations

import math
import pathlib

import numpy as np


class TrainingRun:
    """What the hooks of one Model.train call see (fastnn.callbacks.TrainingRun)."""

    def __init__(self, model, epochs: int, steps_per_epoch: int, has_validation: bool) -> None:
        self.model = model
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.has_validation = has_validation
        self.epoch = 0
        self.step = 0
        self.stop_training = False
        self.learning_rate_factor = 1.0


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, run) -> None:
        """Before the first step."""

    def on_epoch_begin(self, run) -> None:
        """At the start of an epoch."""

    def on_step_begin(self, run) -> None:
        """Before a step."""

    def on_step_end(self, run, logs) -> None:
        """After a step."""

    def on_epoch_end(self, run, logs) -> None:
        """After an epoch."""

    def on_train_end(self, run) -> None:
        """After the last epoch."""


def _better(monitor, value, best, min_delta) -> bool:
    if value is None or math.isnan(value) or math.isinf(value):
        return False
    if best is None:
        return True
    if "loss" in monitor:
        return value < best - min_delta
    return value > best + min_delta


def _no_validation(callback, run) -> None:
    if callback.monitor[:4] == "val_" and not run.has_validation:
        raise ValueError(f"{type(callback).__name__}: monitor={callback.monitor!r} needs validation figures")


class Callback_EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0,
                 restore_best: bool = True) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.best = None
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.wait = 0

    def on_train_begin(self, run) -> None:
        _no_validation(self, run)
        self.best = None
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.wait = 0
        self.kept = None

    def on_epoch_end(self, run, logs) -> None:
        if _better(self.monitor, logs[self.monitor], self.best, self.min_delta):
            self.best = float(logs[self.monitor])
            self.best_epoch = run.epoch
            self.wait = 0
            if self.restore_best:
                # A layer's learned state: weights, biases and running statistics.
                self.kept = [{name: value.copy() for name, value in vars(layer).items()
                              if name in ("weights", "biases") or name.startswith("running_")}
                             for layer in run.model.layers]
        else:
            self.wait = self.wait + 1
            if self.wait >= self.patience:
                self.stopped_epoch = run.epoch
                run.stop_training = True

    def on_train_end(self, run) -> None:
        if self.restore_best and self.kept is not None and self.best_epoch != run.epoch:
            for layer, arrays in zip(run.model.layers, self.kept):
                for name, value in arrays.items():
                    getattr(layer, name)[...] = value
        self.kept = None


class Callback_ModelCheckpoint(Callback):
    """Model.save(path) after an epoch that improves `monitor` (or after every epoch)."""

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = True) -> None:
        self.path = pathlib.Path(path).expanduser()
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.best = None
        self.best_epoch = 0
        self.saved_epoch = 0

    def on_train_begin(self, run) -> None:
        if self.save_best_only:
            _no_validation(self, run)
        self.saved_epoch = 0

    def on_epoch_end(self, run, logs) -> None:
        better = _better(self.monitor, logs.get(self.monitor), self.best, 0.0)
        if better:
            self.best = float(logs[self.monitor])
            self.best_epoch = run.epoch
        if better or not self.save_best_only:
            run.model.save(self.path)
            self.saved_epoch = run.epoch


class _Schedule(Callback):
    def on_step_begin(self, run) -> None:
        rate = self.multiplier(run.model.optimizer.iterations, run.steps_per_epoch)
        run.learning_rate_factor = run.learning_rate_factor * rate


class Schedule_Step(_Schedule):
    """gamma ** (completed epochs // step_size)."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = step_size
        self.gamma = gamma

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The multiplier of the step after `iteration` steps."""
        return self.gamma ** ((iteration // steps_per_epoch) // self.step_size)


class Schedule_Exponential(_Schedule):
    """gamma ** (completed epochs)."""

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The multiplier of the step after `iteration` steps."""
        return self.gamma ** (iteration // steps_per_epoch)


class Schedule_Cosine(_Schedule):
    """Linear warm-up over `warmup` epochs, then cosine to min_factor at `epochs` epochs."""

    def __init__(self, epochs: int, warmup: float = 0, min_factor: float = 0) -> None:
        self.epochs = epochs
        self.warmup = warmup
        self.min_factor = min_factor

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The multiplier of the step after `iteration` steps."""
        last = self.epochs * steps_per_epoch - 1
        warm_steps = min(round(self.warmup * steps_per_epoch), last)
        s = min(iteration, last)
        if s < warm_steps:
            return (s + 1) / warm_steps
        cosine = math.cos(math.pi * ((s - warm_steps) / (last + 1 - warm_steps)))
        return self.min_factor + (1 - self.min_factor) * (1 + cosine) / 2


class Schedule_ReduceOnPlateau(_Schedule):
    """scale *= factor after `patience` epochs without improvement (then `cooldown` epochs off)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 5, min_delta: float = 0,
                 cooldown: int = 0, min_factor: float = 0) -> None:
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_factor = min_factor
        self.scale = 1.0
        self.best = None
        self.wait = 0
        self.reductions = 0
        self.cooldown_left = 0

    def on_train_begin(self, run) -> None:
        _no_validation(self, run)
        self.best = None
        self.wait = 0
        self.cooldown_left = 0

    def on_epoch_end(self, run, logs) -> None:
        gained = _better(self.monitor, logs[self.monitor], self.best, self.min_delta)
        if gained:
            self.best = float(logs[self.monitor])
        if self.cooldown_left > 0:  # an epoch of cooldown: not counted
            self.cooldown_left, self.wait = self.cooldown_left - 1, 0
            return
        self.wait = 0 if gained else self.wait + 1
        if self.wait < self.patience:
            return
        self.wait = 0
        lower = max(self.scale * self.factor, self.min_factor)
        if lower < self.scale:
            self.scale, self.reductions, self.cooldown_left = lower, self.reductions + 1, self.cooldown

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The current scale."""
        return self.scale
