"""Model: the book's Ch22 Model on the compiled classes, plus what users of a trainer expect.

Book behaviour: add / set / finalize / train / evaluate / predict / forward / backward /
get_parameters / set_parameters / save_parameters / load_parameters / save / load, the attribute
names scripts read (layers, trainable_layers, input_layer, output_layer_activation,
softmax_classifier_output, loss, optimizer, accuracy) and the training log character for
character (``epoch: N``, step lines, ``training, ...``, ``validation, ...``).

Beyond the book:
- ``train`` returns a History; ``verbose`` chooses the book's lines, a progress bar (tqdm) or
  silence; ``shuffle=True`` reshuffles every epoch (default off, as the book); ``callbacks``
  (early stopping, checkpoints, the learning-rate schedules), ``validation_split`` and
  ``augment`` (docs/training.md; the loop is fastnn/_train_loop.py). ``summary()`` and
  ``predict_classes(X)``.
- The data is checked before any work (lengths, label range, validation shapes) and converted
  once; a loss that becomes NaN or infinite stops training with an error naming epoch and step.
- ``save``/``load`` and ``save_parameters``/``load_parameters`` use a safe file format (JSON +
  arrays in a zip; loading never runs code from the file). Pickle, the book's format, only on
  explicit request (``format="pickle"`` / ``allow_pickle=True``).
"""
from __future__ import annotations

import math
import sys

import numpy as np

from . import _model_inputs as _inputs, _plan, _train_loop as _loop
from ._core import checks as _checks
from ._core.spec import declare
from ._ext import _fused_head
from .accuracy import Accuracy_Categorical
from .activations import Activation_Softmax
from . import io as _io, summary as _summary
from .distributed import session as _distributed
from .history import History
from .layers import Layer_Input
from .losses import Activation_Softmax_Loss_CategoricalCrossentropy, Loss_CategoricalCrossentropy

__all__ = ["Model"]


@declare("model", saveable=False)
class Model:
    """A sequential network trained with the book's loop.

    Example (book Ch18-22)::

        model = Model()
        model.add(Layer_Dense(2, 512, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
        model.add(Activation_ReLU())
        model.add(Layer_Dropout(0.1))
        model.add(Layer_Dense(512, 3))
        model.add(Activation_Softmax())
        model.set(loss=Loss_CategoricalCrossentropy(), optimizer=Optimizer_Adam(learning_rate=0.05, decay=5e-5),
                  accuracy=Accuracy_Categorical())
        model.finalize()
        history = model.train(X, y, validation_data=(X_test, y_test), epochs=10000, print_every=100)
    """

    def __init__(self) -> None:
        self.layers = []
        self.softmax_classifier_output = None

    def __repr__(self) -> str:
        def shown(obj) -> str:
            return repr(obj) if type(obj).__repr__ is not object.__repr__ else type(obj).__name__
        parts = ["[" + ", ".join(shown(layer) for layer in self.layers) + "]"]
        parts += [f"{name}={shown(self.__dict__[name])}" for name in ("loss", "optimizer", "accuracy")
                  if self.__dict__.get(name) is not None]
        return f"Model({', '.join(parts)})"

    # --- building --------------------------------------------------------------------------------
    def add(self, layer) -> None:
        """Append a layer (any object with forward/backward, as the book)."""
        self.layers.append(_inputs.instance(layer, "layer", "Model.add", "forward"))

    def set(self, *, loss=None, optimizer=None, accuracy=None) -> None:
        """Set the loss, optimizer and accuracy; arguments left as None are not changed. All three
        are checked (instances, not classes) before any is set."""
        given = {name: _inputs.instance(obj, name, "Model.set", method) for name, obj, method in (
            ("loss", loss, "calculate"), ("optimizer", optimizer, "update_params"),
            ("accuracy", accuracy, "calculate")) if obj is not None}
        self.__dict__.update(given)

    def finalize(self) -> None:
        """Link the layers (prev/next), find the trainable ones, and pick the combined
        softmax + cross-entropy gradient when it applies.

        Unlike the book, a one-layer model works (its layer's ``next`` is the loss) and a model
        without a loss can be finalized for inference (training then asks for a loss)."""
        if not self.layers:
            raise ValueError("Model.finalize: the model has no layers; add() some first")
        loss = self.__dict__.get("loss")
        self.input_layer = Layer_Input()
        self.trainable_layers = []
        count = len(self.layers)
        for i, layer in enumerate(self.layers):
            layer.prev = self.input_layer if i == 0 else self.layers[i - 1]
            layer.next = self.layers[i + 1] if i < count - 1 else loss
            if hasattr(layer, "weights"):
                self.trainable_layers.append(layer)
        self.output_layer_activation = self.layers[-1]
        if loss is not None:
            loss.remember_trainable_layers(self.trainable_layers)
        self.softmax_classifier_output = None
        if isinstance(self.layers[-1], Activation_Softmax) and isinstance(loss, Loss_CategoricalCrossentropy):
            self.softmax_classifier_output = Activation_Softmax_Loss_CategoricalCrossentropy()

    # --- the passes ------------------------------------------------------------------------------
    def forward(self, X, training: bool):
        """Run every layer; returns the last layer's output."""
        self.input_layer.forward(X, training)
        for layer in self.layers:
            layer.forward(layer.prev.output, training)
        return layer.output

    def backward(self, output, y) -> None:
        """Backpropagate from the loss (or the combined softmax + cross-entropy gradient)."""
        layers = self.layers
        if self.softmax_classifier_output is not None:
            self.softmax_classifier_output.backward(output, y)
            layers[-1].dinputs = self.softmax_classifier_output.dinputs
            self._backward_layers(len(layers) - 2)
        else:
            self.loss.backward(output, y)
            self._backward_layers(len(layers) - 1)

    def _backward_layers(self, top: int) -> None:
        """Backward through layers[top] down to layers[0], each from its next's dinputs."""
        layers = self.layers
        for i in range(top, 0, -1):
            layer = layers[i]
            layer.backward(layer.next.dinputs)
        if top >= 0:
            first = layers[0]
            # Nothing reads the first layer's dinputs; a layer declared with
            # parameters_only_backward (Dense, Conv2D; not a subclass) skips that computation.
            spec = type(first).__dict__.get("_spec")  # spec_of(first), inlined: once per step
            if spec is not None and spec.parameters_only_backward:
                first._backward_parameters_only(first.next.dinputs)
            else:
                first.backward(first.next.dinputs)

    # --- training --------------------------------------------------------------------------------
    @_inputs.serialized
    @_distributed.collective
    def train(self, X, y, *, epochs: int = 1, batch_size: int | None = None, print_every: int = 1,
              validation_data=None, verbose="book", shuffle: bool = False, callbacks=None,
              validation_split: float | None = None, augment=None, distributed=False) -> History:
        """Train with the book's loop and log; returns a History (the book returns None).

        X: (n_samples, ...) inputs; y: targets of the loss (class ids or one-hot rows for
        categorical cross-entropy, (n_samples, n_outputs) for the others); batch_size None means
        the whole set in one step; print_every counts steps within an epoch (book);
        validation_data: (X_val, y_val), evaluated after every epoch; verbose: "book" (True, the
        default), "progress" (a tqdm bar per epoch) or "silent" (False); shuffle: reshuffle the
        samples every epoch with NumPy's global RNG; distributed: True (under mpiexec, every rank
        passes the same data) or "sharded" (each its own part), see docs/distributed.md.

        Beyond the book (docs/training.md): callbacks: a list of Callback objects (early
        stopping, checkpoints, the Schedule_* learning-rate schedules, your own); validation_split:
        a fraction in (0, 1): the last that fraction of X and y (taken before any shuffling, as
        Keras does) is held out as validation data instead of trained on; augment: an
        augmentation (e.g. Augmentation_CropFlip(padding=2)) or a function applied to every
        training batch (n_samples, ...) as it is taken, returning a batch of the same shape.
        """
        return _loop.train(self, X, y, epochs=epochs, batch_size=batch_size, print_every=print_every,
                           validation_data=validation_data, verbose=verbose, shuffle=shuffle, callbacks=callbacks,
                           validation_split=validation_split, augment=augment, distributed=distributed)

    def _train_step(self, batch_X, batch_y, epoch: int, step: int, factor: float | None = None):
        result = self._gradients(batch_X, batch_y, epoch, step)
        self._update(factor)
        return result

    def _gradients(self, batch_X, batch_y, epoch: int, step: int):
        """Forward, loss (stopping on a non-finite one), accuracy and backward of one batch."""
        head = self._fused_head(batch_X, batch_y)
        if head is None:
            output = self.forward(batch_X, training=True)
            data_loss, reg_loss = self.loss.calculate(output, batch_y, include_regularization=True)
        else:
            data_loss, reg_loss, accuracy = head
        self._check_loss(data_loss, reg_loss, epoch, step)
        if head is None:
            accuracy = self._accuracy(output, batch_y)
            self.backward(output, batch_y)
        else:
            self._backward_layers(len(self.layers) - 2)
        return data_loss, reg_loss, accuracy

    @staticmethod
    def _check_loss(data_loss, reg_loss, epoch: int, step: int) -> None:
        """Stop training on a non-finite loss, before the step's update."""
        if not (math.isfinite(data_loss) and math.isfinite(reg_loss)):
            raise FloatingPointError(
                f"Model.train: the loss became {data_loss + reg_loss} (data_loss {data_loss}, reg_loss "
                f"{reg_loss}) at epoch {epoch}, step {step}; the weights were not updated by this step. "
                f"Lower the learning rate, check the inputs for NaN/inf, or scale them.")

    def _update(self, factor: float | None = None) -> None:
        """The optimizer's step. With a schedule's `factor`, the step's rate is the book's rate
        (decayed, when decay is set) times factor: the book recomputes current_learning_rate only
        with a decay, so it starts from learning_rate."""
        optimizer = self.optimizer
        if factor is not None:
            optimizer.current_learning_rate = optimizer.learning_rate
        optimizer.pre_update_params()
        if factor is not None:
            optimizer.current_learning_rate = optimizer.current_learning_rate * factor
        for layer in self.trainable_layers:
            optimizer.update_params(layer)
        optimizer.post_update_params()

    def _fused_head(self, batch_X, batch_y):
        """The forward pass, loss, accuracy and the head's gradient of one training step when the
        model ends in Activation_Softmax with Loss_CategoricalCrossentropy, Accuracy_Categorical
        and class-id labels: the softmax, the losses, the argmax count and the combined gradient
        come from one compiled call (bit-identical to the separate ones). Returns (data_loss,
        reg_loss, accuracy), or None, having done nothing, for any other model."""
        layers = self.layers
        combined = self.softmax_classifier_output
        accuracy = self.accuracy
        if (combined is None or len(layers) < 2 or type(layers[-1]) is not Activation_Softmax
                or type(self.loss) is not Loss_CategoricalCrossentropy or type(accuracy) is not Accuracy_Categorical
                or accuracy.binary or type(combined) is not Activation_Softmax_Loss_CategoricalCrossentropy
                or not isinstance(batch_y, np.ndarray) or batch_y.ndim != 1):
            return None
        self.input_layer.forward(batch_X, True)
        for layer in layers[:-1]:
            layer.forward(layer.prev.output, True)
        softmax = layers[-1]
        logits = softmax.prev.output
        result = _fused_head.softmax_cce_step(softmax.__dict__, combined.__dict__, logits, batch_y)
        if result is None:  # labels or logits in another form: the ordinary path from here on
            softmax.forward(logits, True)
            output = softmax.output
            data_loss, reg_loss = self.loss.calculate(output, batch_y, include_regularization=True)
            value = self._accuracy(output, batch_y)
            combined.backward(output, batch_y)
        else:
            total, correct = result
            count = len(batch_y)
            reg_loss = self.loss.regularization_loss()
            data_loss = self.loss._accumulate(total, count)
            accuracy._accumulate(correct, count)
            value = correct / count
        softmax.dinputs = combined.dinputs
        return data_loss, reg_loss, value

    def _accuracy(self, output, y):
        """accuracy.calculate(predictions(output), y); for a softmax output with class ids and
        Accuracy_Categorical, one compiled pass over the scores gives the same count."""
        if type(self.accuracy) is Accuracy_Categorical and type(self.output_layer_activation) is Activation_Softmax:
            value = self.accuracy._calculate_from_scores(output, y)
            if value is not None:
                return value
        return self.accuracy.calculate(self._predictions(output), y)

    def _predictions(self, output):
        """The output layer's predictions(output); the raw output when it has none (a model ending
        in a Layer_Dense, e.g. a one-layer model: the book fails there, fastnn.reference does this)."""
        predictions = getattr(self.output_layer_activation, "predictions", None)
        return output if predictions is None else predictions(output)


    # --- evaluation and prediction -----------------------------------------------------------------
    @_inputs.serialized
    @_distributed.collective
    def evaluate(self, X_val, y_val, *, batch_size: int | None = None, verbose="book", distributed=False):
        """Loss and accuracy on a data set, printed as the book's ``validation, ...`` line.
        Returns (loss, accuracy) (the book returns None). distributed: as train's."""
        where = "Model.evaluate"
        _inputs.require_ready(self, where, training=False)
        if batch_size is not None:
            batch_size = _checks.positive_int(batch_size, "batch_size", where)
        X_val, y_val = _inputs.prepare_data(self, X_val, y_val, where)
        return self._evaluate(X_val, y_val, batch_size, _inputs.verbosity(verbose), where, distributed)

    def _evaluate(self, X_val, y_val, batch_size, mode: str, where: str, distributed=False):
        if distributed:  # this rank's samples (the sums are reduced below); only rank 0 prints
            X_val, y_val, mode = distributed.local_samples(X_val, y_val, mode)
        n = len(X_val)
        steps = 0 if n == 0 else 1 if batch_size is None else -(-n // batch_size)
        size = n if batch_size is None else batch_size
        self.loss.new_pass()
        self.accuracy.new_pass()
        with _plan.own_products(self):
            for step in range(steps):
                batch_X = X_val[step * size:(step + 1) * size]
                batch_y = y_val[step * size:(step + 1) * size]
                output = self.forward(batch_X, training=False)
                self.loss.calculate(output, batch_y)
                self._accuracy(output, batch_y)
        if distributed:
            distributed.reduce_accumulated()
        validation_loss = self.loss.calculate_accumulated()
        validation_accuracy = self.accuracy.calculate_accumulated()
        if mode == "book":
            print(f"validation, acc: {validation_accuracy:.3f}, loss: {validation_loss:.3f}")
        elif mode == "progress":
            print(f"validation: acc {validation_accuracy:.3f}, loss {validation_loss:.3f}", file=sys.stderr)
        return float(validation_loss), float(validation_accuracy)

    @_inputs.serialized
    @_distributed.collective
    def predict(self, X, *, batch_size: int | None = None, distributed=False) -> np.ndarray:
        """The last layer's outputs for X, (n_samples, n_outputs), as a new array (e.g. class
        probabilities; ``model.output_layer_activation.predictions(...)`` turns them into labels).
        Safe from several threads at once: calls on one model take turns (train and evaluate too).
        distributed: as train's; every rank gets every sample's outputs, in order."""
        where = "Model.predict"
        _inputs.require_ready(self, where, training=False, need_loss=False)
        if batch_size is not None:
            batch_size = _checks.positive_int(batch_size, "batch_size", where)
        X = _inputs.prepare_inputs(self, X, where)
        if distributed or len(X) == 0:
            _inputs.probe(self, X, where, "X")
            return distributed.predict(self._predict, X, batch_size) if distributed else self._predict(X, batch_size)
        return self._predict(X, batch_size, where)

    def _predict(self, X, batch_size, where: str | None = None):
        """The outputs for X in batches; with `where`, the first batch's pass also checks that X
        fits (_inputs.checked_forward: errors name X and leave the layers as they were)."""
        n = len(X)
        steps = 1 if batch_size is None else -(-n // batch_size)
        size = n if batch_size is None else batch_size
        outputs = []
        with _plan.own_products(self):
            for step in range(steps):
                if step == 0 and where is not None:
                    output = _inputs.checked_forward(self, X, size, where, "X")
                else:
                    output = self.forward(X[step * size:(step + 1) * size], training=False)
                outputs.append(np.array(output, copy=True))  # buffers are reused: hand out copies
        return outputs[0] if len(outputs) == 1 else np.vstack(outputs)


    @_inputs.serialized
    def predict_classes(self, X, *, batch_size: int | None = None) -> np.ndarray:
        """The predicted class of each sample of X: (n_samples,) class ids for a model ending in
        Softmax (the argmax) or in a one-output Sigmoid (0/1), (n_samples, n_outputs) 0/1 for a
        multi-output Sigmoid: ``output_layer_activation.predictions`` of ``predict(X)``. A model
        whose predictions are not classes (a regression) raises a ValueError."""
        outputs = self.predict(X, batch_size=batch_size)
        classes = self._predictions(outputs)
        if not isinstance(classes, np.ndarray) or classes.dtype.kind not in "biu":
            raise ValueError(f"Model.predict_classes: the model ends in {type(self.output_layer_activation).__name__}, "
                             f"whose predictions are not classes; use predict()")
        return classes.reshape(-1) if classes.ndim == 2 and classes.shape[1] == 1 else classes

    def summary(self, input_shape=None) -> str:
        """Print and return (as text) a table of the layers: each one's output shape per sample
        and parameter count, then the totals. input_shape: the shape of one sample, e.g.
        (n_features,) or (channels, height, width); by default a first Layer_Dense's n_inputs, or
        a first Layer_Conv2D's in_channels with the smallest square image the layers take. Needs
        no training and no finalize(); the layers are left untouched (see fastnn/summary.py)."""
        text = _summary.summary(self, input_shape)
        print(text)
        return text

    # --- parameters and files ----------------------------------------------------------------------
    def get_parameters(self) -> list:
        """[(weights, biases), ...] for every trainable layer: the live arrays, as the book."""
        return [layer.get_parameters() for layer in self.trainable_layers]

    def set_parameters(self, parameters) -> None:
        """Set every trainable layer's (weights, biases) from a list like get_parameters()'s."""
        checked = _inputs.checked_parameters(self, parameters, "Model.set_parameters")
        for pair, layer in zip(checked, self.trainable_layers):
            layer.set_parameters(*pair)

    def save_parameters(self, path, *, format: str = "fastnn") -> None:
        """Write the trainable layers' (weights, biases) to `path`, atomically: a safe zip of a
        JSON description and .npy arrays (default) or, with format="pickle", the book's pickle
        (loading a pickle can run code: only for files you will load yourself)."""
        _distributed.root_only(self, _io.save_parameters, path, format=format)

    def load_parameters(self, path, *, allow_pickle: bool = False) -> None:
        """Read parameters written by save_parameters into this (finalized) model. Pickle files
        are refused unless allow_pickle=True (unpickling can run code: never for untrusted files)."""
        _io.load_parameters(self, path, allow_pickle=allow_pickle)

    def save(self, path, *, format: str = "fastnn") -> None:
        """Write the whole model (layers, loss, accuracy, optimizer with its state) to `path`,
        atomically, in the safe format (default; see docs/file-format.md) or, with
        format="pickle", as the book does (loading a pickle can run code: only for files you trust)."""
        _distributed.root_only(self, _io.save_model, path, format=format)

    @staticmethod
    def load(path, *, allow_pickle: bool = False) -> "Model":
        """Read a model written by save(); it comes back finalized. The safe format is validated
        completely and never runs code; a damaged or altered file raises a ValueError
        (fastnn.io.ModelFileError). Pickle files are refused unless allow_pickle=True:
        unpickling can execute arbitrary code, so never allow it for files you do not trust."""
        return _io.load_model(path, allow_pickle=allow_pickle)
