"""Model.train's loop: the book's epochs, steps and log, with what fastnn adds around them (the
History, verbosity, reshuffling, callbacks and schedules, validation_split and batch augmentation).

The book's run is what runs when none of the additions is asked for: the same calls in the same
order and the same printed lines, so its log is unchanged character for character.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from . import _model_inputs as _inputs, _plan
from ._core import checks as _checks
from ._core.spec import spec_of
from .callbacks import Callback, TrainingRun
from .history import FIELDS, History

_HOOKS = ("on_train_begin", "on_epoch_begin", "on_step_begin", "on_step_end", "on_epoch_end", "on_train_end")


class _Hooks:
    """Each hook as the list of the callbacks' methods that override Callback's (empty lists cost
    one truth test per step)."""

    def __init__(self, callbacks, where: str) -> None:
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        elif not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"{where}: callbacks must be a list of Callback objects, got {_checks.describe(callbacks)}")
        for i, callback in enumerate(callbacks):
            if not isinstance(callback, Callback):
                hint = (f"; write {callback.__name__}(...) with parentheses" if isinstance(callback, type) else
                        " (a callback subclasses fastnn.Callback and overrides its hooks)")
                raise TypeError(f"{where}: callbacks[{i}] must be a Callback object, got "
                                f"{_checks.describe(callback)}{hint}")
        for name in _HOOKS:
            setattr(self, name, [getattr(c, name) for c in callbacks if getattr(type(c), name) is not getattr(Callback, name)])


class _Batches:
    """The batches of an epoch, in order or (shuffle) in an order drawn once per epoch with
    np.random.permutation; a shuffled batch is gathered into buffers reused from step to step,
    so the data set is never copied."""

    def __init__(self, X, y, size: int, shuffle: bool) -> None:
        self.X, self.y, self.size, self.shuffle = X, y, size, shuffle
        self.order = None
        if shuffle:
            self._X = np.empty((min(size, len(X)),) + X.shape[1:], X.dtype)
            self._y = np.empty((min(size, len(y)),) + y.shape[1:], y.dtype)

    def new_epoch(self) -> None:
        if self.shuffle:
            self.order = np.random.permutation(len(self.X))

    def take(self, step: int):
        part = slice(step * self.size, (step + 1) * self.size)
        if self.order is None:
            return self.X[part], self.y[part]
        rows = self.order[part]
        n = len(rows)
        return (np.take(self.X, rows, axis=0, out=self._X[:n]), np.take(self.y, rows, axis=0, out=self._y[:n]))


def _augmentation(augment, X, where: str):
    if augment is None:
        return None
    if isinstance(augment, type) or not callable(augment):
        raise TypeError(f"{where}: augment must be an augmentation object (e.g. Augmentation_CropFlip(padding=2)) "
                        f"or a function of a batch, got {_checks.describe(augment)}")
    spec = spec_of(augment)
    if spec is not None and spec.kind == "augmentation" and X.ndim != 4:
        raise ValueError(f"{where}: augment={augment!r} needs image data (n_samples, channels, height, width), "
                         f"got X of shape {X.shape}")
    if spec is not None and spec.kind == "augmentation":
        return augment

    def checked(batch):
        out = augment(batch)
        if not isinstance(out, np.ndarray) or out.shape != batch.shape:
            raise ValueError(f"{where}: augment must return an array of the batch's shape {batch.shape}, got "
                             f"{_checks.describe(out)}")
        return out
    return checked


def _split(X, y, y_given, validation_split, validation_data, where: str):
    """(X, y, y for accuracy.init, validation_data): the last `validation_split` of the samples
    held out, as Keras does (before any shuffling)."""
    if validation_data is not None:
        raise ValueError(f"{where}: give validation_data or validation_split, not both")
    fraction = _checks.real(validation_split, "validation_split", where, low=0.0, high=1.0, low_open=True,
                            high_open=True)
    n = len(X)
    at = int(n * (1 - fraction))
    if at < 1 or at >= n:
        raise ValueError(f"{where}: validation_split={fraction!r} of {n} samples leaves "
                         f"{'no training' if at < 1 else 'no validation'} samples")
    given = y_given if isinstance(y_given, np.ndarray) else np.asarray(y_given)
    return X[:at], y[:at], given[:at], (X[at:], y[at:])


def train(model, X, y, *, epochs, batch_size, print_every, validation_data, verbose, shuffle, callbacks,
          validation_split, augment, distributed) -> History:
    """Model.train (see its docstring): every check first, then the loop."""
    where = "Model.train"
    _inputs.require_ready(model, where, training=True)
    epochs = _checks.positive_int(epochs, "epochs", where)
    print_every = _checks.positive_int(print_every, "print_every", where)
    if batch_size is not None:
        batch_size = _checks.positive_int(batch_size, "batch_size", where)
    mode = _inputs.verbosity(verbose)
    hooks = _Hooks(callbacks, where)
    y_given = y
    X, y = _inputs.prepare_data(model, X, y, where)
    if validation_split is not None:
        X, y, y_given, validation_data = _split(X, y, y_given, validation_split, validation_data, where)
    elif validation_data is not None:
        validation_data = _inputs.prepare_validation(model, validation_data, X, where)
    augment = _augmentation(augment, X, where)

    # The book sets the regression precision from the targets as given (before any dtype change).
    model.accuracy.init(y_given)
    n = len(X)
    train_steps = 1 if batch_size is None else -(-n // batch_size)
    batches = _Batches(X, y, n if batch_size is None else batch_size, shuffle)
    history = History()
    run = TrainingRun(model, epochs, train_steps, validation_data is not None, history)
    for hook in hooks.on_train_begin:  # (their refusals come before anything changes)
        hook(run)
    train_step, take = model._train_step, batches.take
    plan = _plan.compile_plan(model, callbacks=any(getattr(hooks, name) for name in _HOOKS), augment=augment)
    if plan is not None:  # one compiled call per batch (fastnn/_plan.py)
        train_step = plan.train_step(epochs, train_steps - 1)
    if distributed:  # rank 0's model on every rank, the steps agreed; only rank 0 logs
        train_steps, mode = distributed.start(X, y, validation_data, epochs, batch_size, shuffle, mode)
        run.steps_per_epoch = train_steps
        train_step = distributed.train_step
        if plan is not None:
            distributed.gradients = plan.checked_gradients(epochs, train_steps - 1)
    optimizer = model.optimizer
    step_begin, step_end = hooks.on_step_begin, hooks.on_step_end
    for epoch in range(1, epochs + 1):
        run.epoch = epoch
        started = time.perf_counter()
        if mode == "book":
            print(f"epoch: {epoch}")
        model.loss.new_pass()
        model.accuracy.new_pass()
        batches.new_epoch()
        for hook in hooks.on_epoch_begin:
            hook(run)
        bar = _inputs.progress_bar(mode, train_steps, epoch, epochs)
        for step in range(train_steps):
            run.step = step
            batch_X, batch_y = take(step)
            if augment is not None and len(batch_X):  # (a sharded rank may have no samples left)
                batch_X = augment(batch_X)
            factor = None
            if step_begin:
                run.learning_rate_factor = 1.0
                for hook in step_begin:
                    hook(run)
                factor = float(run.learning_rate_factor)
            data_loss, reg_loss, accuracy = train_step(batch_X, batch_y, epoch, step, factor)
            if mode == "book" and (not step % print_every or step == train_steps - 1):
                print(f"step: {step}, acc: {accuracy:.3f}, loss: {data_loss + reg_loss:.3f} ("
                      f"data_loss: {data_loss:.3f}, reg_loss: {reg_loss:.3f}), "
                      f"lr: {optimizer.current_learning_rate}")
            if bar is not None:
                bar.update(1)
                if not step % print_every or step == train_steps - 1:
                    bar.set_postfix(loss=f"{data_loss + reg_loss:.3f}", acc=f"{accuracy:.3f}", refresh=False)
            if step_end:
                logs = {"loss": float(data_loss + reg_loss), "data_loss": float(data_loss), "reg_loss": float(reg_loss),
                        "accuracy": float(accuracy), "learning_rate": float(optimizer.current_learning_rate)}
                for hook in step_end:
                    hook(run, logs)
            if run.stop_training:
                break
        if distributed:
            distributed.reduce_accumulated()
        epoch_data_loss, epoch_reg_loss = model.loss.calculate_accumulated(include_regularization=True)
        epoch_loss = epoch_data_loss + epoch_reg_loss
        epoch_accuracy = model.accuracy.calculate_accumulated()
        if bar is not None:
            bar.close()
        if mode == "book":
            print(f"training, acc: {epoch_accuracy:.3f}, loss: {epoch_loss:.3f} ("
                  f"data_loss: {epoch_data_loss:.3f}, reg_loss: {epoch_reg_loss:.3f}), "
                  f"lr: {optimizer.current_learning_rate}")
        elif mode == "progress":
            print(f"epoch {epoch}/{epochs}: acc {epoch_accuracy:.3f}, loss {epoch_loss:.3f}, "
                  f"lr {optimizer.current_learning_rate:.6g}", file=sys.stderr)
        val_loss = val_accuracy = None
        if validation_data is not None:
            val_loss, val_accuracy = model._evaluate(*validation_data, batch_size, mode, where, distributed)
        history.append(loss=float(epoch_loss), data_loss=float(epoch_data_loss), reg_loss=float(epoch_reg_loss),
                       accuracy=float(epoch_accuracy), learning_rate=float(optimizer.current_learning_rate),
                       val_loss=val_loss, val_accuracy=val_accuracy, seconds=time.perf_counter() - started)
        if hooks.on_epoch_end:
            logs = {name: history[name][-1] for name in FIELDS}
            for hook in hooks.on_epoch_end:
                hook(run, logs)
        if run.stop_training:
            break
    for hook in hooks.on_train_end:
        hook(run)
    return history
