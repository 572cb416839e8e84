"""Learning-rate schedules for every optimizer (not in the book), given to Model.train as callbacks:

    model.train(X, y, epochs=15, batch_size=128, callbacks=[Schedule_Cosine(epochs=15, warmup=1)])

A schedule gives a multiplier of the optimizer's own rate. At every step the optimizer's
``current_learning_rate`` is the book's rate for that step (``learning_rate``, or with ``decay``
``learning_rate / (1 + decay * iterations)``) times the schedule's multiplier, so the two compose;
the log's ``lr:`` field, History.learning_rate and a saved model show that product. Several
schedules multiply. Without a schedule nothing changes: the book's runs print what they printed.

The multiplier is a function of the optimizer's iteration count (the steps taken so far, as the
book's decay), so training in several train calls, or after Model.load, continues the schedule
where it was; epochs are counted as ``iterations // steps_per_epoch``. Schedule_ReduceOnPlateau
also keeps what it has seen (the best figure, the reductions made) on itself.
"""
from __future__ import annotations

import math

from ._core import checks as _checks
from ._core.constraints import NON_NEGATIVE, SIZE, Int, Real, UNIT
from ._core.spec import declare
from .callbacks import MONITOR, Callback, improved, require_monitor

__all__ = ["Schedule_Step", "Schedule_Exponential", "Schedule_Cosine", "Schedule_ReduceOnPlateau"]

GAMMA = Real(0.0, 1.0, low_open=True)          # (0, 1]: a multiplier per period
REDUCTION = Real(0.0, 1.0, low_open=True, high_open=True)


class _Schedule(Callback):
    """Multiplies each step's learning rate by ``multiplier(iterations, steps_per_epoch)``."""

    def on_train_begin(self, run) -> None:
        iterations = getattr(run.model.optimizer, "iterations", None)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not hasattr(
                run.model.optimizer, "learning_rate"):
            raise TypeError(f"{type(self).__name__}: the optimizer must count its steps in an int `iterations` "
                            f"and have a `learning_rate`, as the book's optimizers do; got "
                            f"{type(run.model.optimizer).__name__}")

    def on_step_begin(self, run) -> None:
        run.learning_rate_factor *= self.multiplier(run.model.optimizer.iterations, run.steps_per_epoch)

    def _counts(self, iteration, steps_per_epoch, where: str) -> tuple[int, int]:
        return (_checks.non_negative_int(iteration, "iteration", where),
                _checks.positive_int(steps_per_epoch, "steps_per_epoch", where))


@declare("schedule", params={"step_size": SIZE, "gamma": GAMMA}, saveable=False)
class Schedule_Step(_Schedule):
    """multiplier = gamma ** (epoch // step_size): the rate drops by `gamma` every `step_size`
    epochs (epoch: the completed epochs, iterations // steps_per_epoch)."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = type(self)._spec.check(locals())

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The multiplier of the step after `iteration` optimizer steps, `steps_per_epoch` a epoch."""
        iteration, steps = self._counts(iteration, steps_per_epoch, "Schedule_Step.multiplier")
        return self.gamma ** (iteration // steps // self.step_size)


@declare("schedule", params={"gamma": GAMMA}, saveable=False)
class Schedule_Exponential(_Schedule):
    """multiplier = gamma ** epoch: the rate shrinks by `gamma` after every epoch (epoch: the
    completed epochs, iterations // steps_per_epoch)."""

    def __init__(self, gamma: float) -> None:
        (self.gamma,) = type(self)._spec.check(locals())

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The multiplier of the step after `iteration` optimizer steps, `steps_per_epoch` a epoch."""
        iteration, steps = self._counts(iteration, steps_per_epoch, "Schedule_Exponential.multiplier")
        return self.gamma ** (iteration // steps)


@declare("schedule", params={"epochs": SIZE, "warmup": NON_NEGATIVE, "min_factor": UNIT}, saveable=False)
class Schedule_Cosine(_Schedule):
    """Linear warm-up, then a half cosine from 1 down to `min_factor`, over `epochs` epochs,
    changing at every step.

    With S = epochs * steps_per_epoch steps, W = round(warmup * steps_per_epoch) of them warm-up
    (warmup may be a fraction of an epoch) and s the optimizer steps taken (capped at S - 1: the
    rate stays at the last step's once the schedule is over)::

        s < W:  multiplier = (s + 1) / W
        else:   multiplier = min_factor + (1 - min_factor) * (1 + cos(pi * (s - W) / (S - W))) / 2

    Every step's multiplier is above min_factor (0 by default), so no step has a zero rate.
    """

    def __init__(self, epochs: int, warmup: float = 0, min_factor: float = 0) -> None:
        self.epochs, self.warmup, self.min_factor = type(self)._spec.check(locals())
        if self.warmup >= self.epochs:
            raise ValueError(f"Schedule_Cosine: warmup must be shorter than the schedule's {self.epochs} epochs, "
                             f"got {self.warmup!r}")

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The multiplier of the step after `iteration` optimizer steps, `steps_per_epoch` a epoch."""
        iteration, steps = self._counts(iteration, steps_per_epoch, "Schedule_Cosine.multiplier")
        total = self.epochs * steps
        warm = min(round(self.warmup * steps), total - 1)
        s = min(iteration, total - 1)
        if s < warm:
            return (s + 1) / warm
        progress = (s - warm) / (total - warm)
        return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * progress)) / 2


@declare("schedule", params={"monitor": MONITOR, "factor": REDUCTION, "patience": SIZE, "min_delta": NON_NEGATIVE,
                             "cooldown": Int(0), "min_factor": UNIT}, saveable=False)
class Schedule_ReduceOnPlateau(_Schedule):
    """Multiply the rate by `factor` when the monitored figure has not improved for `patience`
    epochs; the `cooldown` epochs after a reduction are not counted; never below `min_factor`.

    monitor: as Callback_EarlyStopping's ("val_loss" by default); min_delta: the smallest change
    that counts as an improvement. ``scale`` is the multiplier so far (1.0 at first; it carries
    over to later train calls); ``best``, ``wait``, ``reductions`` and ``cooldown_left`` (epochs
    of cooldown to go) say what it has seen.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 5, min_delta: float = 0,
                 cooldown: int = 0, min_factor: float = 0) -> None:
        (self.monitor, self.factor, self.patience, self.min_delta, self.cooldown,
         self.min_factor) = type(self)._spec.check(locals())
        self.scale = 1.0
        self.best = None
        self.wait = 0
        self.reductions = 0
        self.cooldown_left = 0

    def on_train_begin(self, run) -> None:
        super().on_train_begin(run)
        require_monitor(self, run)
        self.best, self.wait, self.cooldown_left = None, 0, 0

    def on_epoch_end(self, run, logs) -> None:
        value = logs[self.monitor]
        better = improved(self.monitor, value, self.best, self.min_delta)
        if better:
            self.best = float(value)
        if self.cooldown_left:  # an epoch of cooldown is not counted (the best is still followed)
            self.cooldown_left -= 1
            self.wait = 0
            return
        if better:
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            reduced = max(self.scale * self.factor, self.min_factor)
            if reduced < self.scale:
                self.scale = reduced
                self.reductions += 1
                self.cooldown_left = self.cooldown
            self.wait = 0

    def multiplier(self, iteration: int, steps_per_epoch: int) -> float:
        """The current multiplier, ``scale`` (the step counts do not change it)."""
        self._counts(iteration, steps_per_epoch, "Schedule_ReduceOnPlateau.multiplier")
        return self.scale
