"""The book's Model (Ch22 version): layers chained by ``prev``/``next``, train/evaluate/predict,
parameters and pickle files.

Shapes: X (n_samples, n_features); y as the loss expects (see ``losses``); batches are the
consecutive row slices ``X[step * batch_size:(step + 1) * batch_size]`` (the book's order), of a
fresh ``np.random.permutation`` of the samples each epoch with ``train(..., shuffle=True)``, as
fastnn's Model (beyond the book, so that a script using it runs on both).
"""
from __future__ import annotations

import copy
import os
import pickle
import time

import numpy as np

from .accuracy import Accuracy
from . import summary as _summary
from .callbacks import Callback, TrainingRun
from .activations import Activation_Softmax
from .layers import Layer_Input
from .losses import Activation_Softmax_Loss_CategoricalCrossentropy, Loss, Loss_CategoricalCrossentropy


def _steps(n_samples: int, batch_size: int | None) -> int:
    """Number of batches: 1 without a batch size, else ceil(n_samples / batch_size)."""
    if batch_size is None:
        return 1
    return -(-n_samples // batch_size)


def _batch(data: np.ndarray, step: int, batch_size: int | None) -> np.ndarray:
    """Rows ``step * batch_size`` up to ``(step + 1) * batch_size`` (all rows without a batch size)."""
    if batch_size is None:
        return data
    return data[step * batch_size:(step + 1) * batch_size]


class Model:
    """A sequence of layers with a loss, an optimizer and an accuracy.

    Usage as the book: ``add`` layers, ``set(loss=..., optimizer=..., accuracy=...)``,
    ``finalize()``, then ``train``/``evaluate``/``predict``. Attributes user code reads:
    ``layers, trainable_layers, input_layer, output_layer_activation, softmax_classifier_output,
    loss, optimizer, accuracy``.
    """

    def __init__(self) -> None:
        self.layers: list = []
        self.softmax_classifier_output: Activation_Softmax_Loss_CategoricalCrossentropy | None = None

    def add(self, layer: object) -> None:
        """Append a layer (anything with forward/backward; trainable when it has ``weights``)."""
        self.layers.append(layer)

    def set(self, *, loss: Loss | None = None, optimizer: object | None = None,
            accuracy: Accuracy | None = None) -> None:
        """Set the loss, optimizer and accuracy; arguments left as None are not changed."""
        if loss is not None:
            self.loss = loss
        if optimizer is not None:
            self.optimizer = optimizer
        if accuracy is not None:
            self.accuracy = accuracy

    def finalize(self) -> None:
        """Link the layers: ``prev`` is the previous layer (``input_layer`` for the first),
        ``next`` the following one (the loss for the last, None without a loss). Collects
        ``trainable_layers`` (layers with ``weights``), hands them to the loss, and uses the fused
        softmax/cross-entropy gradient when the model ends in Softmax with a CCE loss.

        Works with a single layer and without a loss (for inference-only models)."""
        self.input_layer = Layer_Input()
        self.trainable_layers = []
        loss = getattr(self, "loss", None)
        layer_count = len(self.layers)
        for i, layer in enumerate(self.layers):
            layer.prev = self.input_layer if i == 0 else self.layers[i - 1]
            layer.next = self.layers[i + 1] if i < layer_count - 1 else loss
            if hasattr(layer, "weights"):
                self.trainable_layers.append(layer)
        self.output_layer_activation = self.layers[-1]
        if loss is not None:
            loss.remember_trainable_layers(self.trainable_layers)
        if isinstance(self.layers[-1], Activation_Softmax) and isinstance(loss, Loss_CategoricalCrossentropy):
            self.softmax_classifier_output = Activation_Softmax_Loss_CategoricalCrossentropy()

    def _require(self, *names: str) -> None:
        """ValueError naming the ``set()`` arguments this call needs and the model lacks."""
        missing = [name for name in names if getattr(self, name, None) is None]
        if missing:
            arguments = ", ".join(f"{name}=..." for name in missing)
            raise ValueError(f"the model has no {' or '.join(missing)}: call model.set({arguments}) "
                             "and model.finalize() first")

    def _predictions(self, output: np.ndarray) -> np.ndarray:
        """The output layer's ``predictions(output)``; the raw output when it has none (a model
        ending in a Layer_Dense, as with Activation_Linear)."""
        predictions = getattr(self.output_layer_activation, "predictions", None)
        return output if predictions is None else predictions(output)

    def train(self, X: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int | None = None,
              print_every: int = 1, validation_data: tuple[np.ndarray, np.ndarray] | None = None,
              shuffle: bool = False, callbacks: list | None = None, validation_split: float | None = None,
              augment: object | None = None) -> None:
        """Train on X (n_samples, n_features) and y for ``epochs`` passes in batches of
        ``batch_size`` rows (the whole set when None), printing the book's log: ``epoch: N``, a
        step line every ``print_every`` steps and at the last step, the epoch's ``training, ...``
        line and, with ``validation_data=(X_val, y_val)``, the ``validation, ...`` line.
        ``shuffle=True`` (not in the book) takes the samples in the order of one
        ``np.random.permutation(n_samples)`` per epoch, as fastnn's Model does.

        Beyond the book, as fastnn's Model.train: ``callbacks`` (Callback objects, the schedules
        among them), ``validation_split`` (the last fraction of the samples held out as
        validation data, before any shuffling) and ``augment`` (applied to each training batch as
        it is taken)."""
        self._require("loss", "optimizer", "accuracy")
        callbacks = list(callbacks or [])
        if validation_split is not None:
            at = int(len(X) * (1 - validation_split))
            X, y, validation_data = X[:at], y[:at], (X[at:], y[at:])
        self.accuracy.init(y)
        train_steps = _steps(len(X), batch_size)
        run = TrainingRun(self, epochs, train_steps, validation_data is not None)
        scheduled = any(type(c).on_step_begin is not Callback.on_step_begin for c in callbacks)
        for callback in callbacks:
            callback.on_train_begin(run)
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            run.epoch = epoch
            print(f"epoch: {epoch}")
            self.loss.new_pass()
            self.accuracy.new_pass()
            X_epoch, y_epoch = X, y
            if shuffle:
                order = np.random.permutation(len(X))
                X_epoch, y_epoch = X[order], y[order]
            for callback in callbacks:
                callback.on_epoch_begin(run)
            for step in range(train_steps):
                run.step = step
                batch_X = _batch(X_epoch, step, batch_size)
                batch_y = _batch(y_epoch, step, batch_size)
                if augment is not None:
                    batch_X = augment(batch_X)
                run.learning_rate_factor = 1.0
                for callback in callbacks:
                    callback.on_step_begin(run)
                output = self.forward(batch_X, training=True)
                data_loss, regularization_loss = self.loss.calculate(output, batch_y, include_regularization=True)
                loss = data_loss + regularization_loss
                predictions = self._predictions(output)
                accuracy = self.accuracy.calculate(predictions, batch_y)
                self.backward(output, batch_y)
                if scheduled:  # the step's rate: the book's (decayed) rate times the schedules' factor
                    self.optimizer.current_learning_rate = self.optimizer.learning_rate
                self.optimizer.pre_update_params()
                if scheduled:
                    self.optimizer.current_learning_rate = self.optimizer.current_learning_rate * run.learning_rate_factor
                for layer in self.trainable_layers:
                    self.optimizer.update_params(layer)
                self.optimizer.post_update_params()
                if not step % print_every or step == train_steps - 1:
                    print(f"step: {step}, "
                          f"acc: {accuracy:.3f}, "
                          f"loss: {loss:.3f} ("
                          f"data_loss: {data_loss:.3f}, "
                          f"reg_loss: {regularization_loss:.3f}), "
                          f"lr: {self.optimizer.current_learning_rate}")
                logs = {"loss": float(loss), "data_loss": float(data_loss), "reg_loss": float(regularization_loss),
                        "accuracy": float(accuracy), "learning_rate": float(self.optimizer.current_learning_rate)}
                for callback in callbacks:
                    callback.on_step_end(run, logs)
                if run.stop_training:
                    break
            epoch_data_loss, epoch_regularization_loss = self.loss.calculate_accumulated(include_regularization=True)
            epoch_loss = epoch_data_loss + epoch_regularization_loss
            epoch_accuracy = self.accuracy.calculate_accumulated()
            print(f"training, "
                  f"acc: {epoch_accuracy:.3f}, "
                  f"loss: {epoch_loss:.3f} ("
                  f"data_loss: {epoch_data_loss:.3f}, "
                  f"reg_loss: {epoch_regularization_loss:.3f}), "
                  f"lr: {self.optimizer.current_learning_rate}")
            logs = {"loss": float(epoch_loss), "data_loss": float(epoch_data_loss),
                    "reg_loss": float(epoch_regularization_loss), "accuracy": float(epoch_accuracy),
                    "learning_rate": float(self.optimizer.current_learning_rate), "val_loss": None,
                    "val_accuracy": None}
            if validation_data is not None:
                self.evaluate(*validation_data, batch_size=batch_size)
                logs["val_loss"] = float(self.loss.calculate_accumulated())
                logs["val_accuracy"] = float(self.accuracy.calculate_accumulated())
            logs["seconds"] = time.perf_counter() - started
            for callback in callbacks:
                callback.on_epoch_end(run, logs)
            if run.stop_training:
                break
        for callback in callbacks:
            callback.on_train_end(run)

    def evaluate(self, X_val: np.ndarray, y_val: np.ndarray, *, batch_size: int | None = None) -> None:
        """Print ``validation, acc: ..., loss: ...`` for X_val (n_samples, n_features) and y_val,
        run without training behaviour (no dropout) and without regularisation loss. Regression
        accuracy uses the precision set from the training labels."""
        self._require("loss", "accuracy")
        validation_steps = _steps(len(X_val), batch_size)
        self.loss.new_pass()
        self.accuracy.new_pass()
        for step in range(validation_steps):
            batch_X = _batch(X_val, step, batch_size)
            batch_y = _batch(y_val, step, batch_size)
            output = self.forward(batch_X, training=False)
            self.loss.calculate(output, batch_y)
            predictions = self._predictions(output)
            self.accuracy.calculate(predictions, batch_y)
        validation_loss = self.loss.calculate_accumulated()
        validation_accuracy = self.accuracy.calculate_accumulated()
        print(f"validation, "
              f"acc: {validation_accuracy:.3f}, "
              f"loss: {validation_loss:.3f}")

    def predict(self, X: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Outputs of the last layer (n_samples, n_outputs) for X (n_samples, n_features), e.g.
        class probabilities; a new array. Classes: ``model.output_layer_activation.predictions(out)``."""
        prediction_steps = _steps(len(X), batch_size)
        output = []
        for step in range(prediction_steps):
            batch_X = _batch(X, step, batch_size)
            batch_output = self.forward(batch_X, training=False)
            output.append(batch_output)
        return np.vstack(output)

    def predict_classes(self, X: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Class ids (n_samples,) of X (n_samples, n_features): the output layer's predictions of
        ``predict(X)``, one-column results flattened (not in the book)."""
        classes = self._predictions(self.predict(X, batch_size=batch_size))
        if classes.dtype.kind == "f":
            raise ValueError("Model.predict_classes: the model's predictions are not classes")
        return classes.ravel() if classes.ndim == 2 and classes.shape[1] == 1 else classes

    def summary(self, input_shape: tuple | None = None) -> str:
        """Print and return the table of the layers' output shapes and parameter counts (not in
        the book)."""
        text = _summary.summary(self, input_shape)
        print(text)
        return text

    def forward(self, X: np.ndarray, training: bool) -> np.ndarray:
        """Run X (n_samples, n_features) through every layer; returns the last layer's output."""
        self.input_layer.forward(X, training)
        for layer in self.layers:
            layer.forward(layer.prev.output, training)
        return layer.output

    def backward(self, output: np.ndarray, y: np.ndarray) -> None:
        """Back-propagate from the loss of ``output`` (n_samples, n_outputs) against y: each layer
        gets ``layer.next.dinputs``. With Softmax + CCE the fused gradient replaces both backwards."""
        if self.softmax_classifier_output is not None:
            self.softmax_classifier_output.backward(output, y)
            self.layers[-1].dinputs = self.softmax_classifier_output.dinputs
            for layer in reversed(self.layers[:-1]):
                layer.backward(layer.next.dinputs)
            return
        self.loss.backward(output, y)
        for layer in reversed(self.layers):
            layer.backward(layer.next.dinputs)

    def get_parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(weights, biases), ...] for each trainable layer: the live arrays."""
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Assign [(weights, biases), ...] to the trainable layers in order, without copying."""
        for parameter_set, layer in zip(parameters, self.trainable_layers):
            layer.set_parameters(*parameter_set)

    def save_parameters(self, path: str | os.PathLike) -> None:
        """Pickle ``get_parameters()`` to ``path`` (the book's format; unsafe to load from untrusted files)."""
        with open(path, "wb") as f:
            pickle.dump(self.get_parameters(), f)

    def load_parameters(self, path: str | os.PathLike) -> None:
        """Unpickle parameters saved by ``save_parameters`` into this (built and finalized) model.
        Only load files you trust: unpickling can run code."""
        with open(path, "rb") as f:
            self.set_parameters(pickle.load(f))

    def save(self, path: str | os.PathLike) -> None:
        """Pickle a deep copy of the model without its batch data (inputs, outputs, gradients and
        the accumulators). Optimizer state and dropout masks are kept, as in the book."""
        model = copy.deepcopy(self)
        if getattr(model, "loss", None) is not None:
            model.loss.new_pass()
            model.loss.__dict__.pop("dinputs", None)
        if getattr(model, "accuracy", None) is not None:
            model.accuracy.new_pass()
        model.input_layer.__dict__.pop("output", None)
        for layer in model.layers:
            for name in ["inputs", "output", "dinputs", "dweights", "dbiases"]:
                layer.__dict__.pop(name, None)
        with open(path, "wb") as f:
            pickle.dump(model, f)

    @staticmethod
    def load(path: str | os.PathLike) -> Model:
        """Unpickle a model saved by ``save``. Only load files you trust: unpickling can run code."""
        with open(path, "rb") as f:
            model = pickle.load(f)
        return model
