"""Model.train's compiled plan: one compiled call per batch for the models whose every part the
plan knows, the book's per-layer protocol for every other model.

The plan is read from the declarations (``Spec.fused``, fastnn/_core/spec.py), never from a list
of classes: a part is known when its exact class declares the role (a subclass, or a user's own
layer, is not). Two patterns are compiled. The first is one wide hidden layer between thin ones
(the book's Ch18 spiral network and its relatives)::

    Layer_Dense(K, H) -> Activation_ReLU -> [Layer_Dropout, mode "fast"] -> Layer_Dense(H, C)
        -> Activation_Softmax, Loss_CategoricalCrossentropy, Accuracy_Categorical (not binary)

with K and C at most _fused_mlp.MAX_THIN, class-id labels, one float dtype. Its step
(src_pyx/_fused_mlp.pyx.tp) computes the forward pass, the loss, the accuracy count and the four
parameter gradients in one pass over the batch, writes the gradients where the book's layers keep
them (``dweights``, ``dbiases``), and leaves the update to the model's optimizer, as ever.

What stays as it was:

- Book mode dropout (NumPy's binomial masks), callbacks and schedules, and augmentation take the
  per-layer path: the plan is not made for them. Distributed training uses the plan's gradients
  on each rank (fastnn/distributed/session.py sums them as ever).
- The fast mode's mask is drawn from the same one number of NumPy's global RNG, at the same point
  of the step, and is the same mask, element for element; the loss, the accumulated pass and the
  log lines come from the same formulas. The two Dense products and the gradient sums are plain
  loops instead of BLAS calls, so numbers differ from the per-layer path by float rounding
  (tests/test_fused_mlp.py states and checks the tolerance).
- The intermediate attributes (each layer's ``inputs``, ``output``, ``dinputs``, the dropout's
  ``binary_mask``, the softmax's and the combined loss's) are what the book says after the last
  step of a ``train`` call: that step also writes them, from its own numbers. The other steps
  write none of them (that is the memory the plan saves), so a callback, which could read them
  between steps, makes the run take the per-layer path. Every step of a run takes the same path,
  so training in several calls gives the numbers of one long call.

The second is two wide hidden layers between thin ones with a linear output and mean squared
error (the book's Ch17 sine network and its relatives)::

    Layer_Dense(K, H1) -> Activation_ReLU -> Layer_Dense(H1, H2) -> Activation_ReLU
        -> Layer_Dense(H2, C) -> Activation_Linear, Loss_MeanSquaredError, Accuracy_Regression

with K and C at most _fused_deep.MAX_THIN and one float dtype. Its step (src_pyx/_fused_deep.pyx)
goes over the batch in fixed chunks of rows, on fastnn's OpenMP team: per chunk, the thin layers
as plain loops, the middle layer's three products as GEMMs on the chunk, the loss, the accuracy
count and the six parameter gradients, which the model's optimizer applies as ever. Numbers differ
from the per-layer path by float rounding (tests/test_fused_deep.py states and checks the bound),
never by the thread count. The last step of a ``train`` call also runs the per-layer forward and
backward on its batch (without touching the loss's and the accuracy's accumulated sums) after its
compiled step, so every layer's book attributes hold that batch's per-layer numbers, while
``dweights`` and ``dbiases`` and the update are the compiled step's, as on every other step:
training in several calls gives the numbers of one long call here too.

Every other model with a float32 Layer_Dense, on a CPU with AVX-512 and with no dropout in book
mode, gets the third plan, GemmPlan, with callbacks and augmentation too: the per-layer protocol
exactly (every attribute written at every step, callbacks' view unchanged; callbacks themselves
run with NumPy's products), with the step's Dense products in fastnn's own GEMM
kernels (src_pyx/_dense.pyx, switched on for this thread around the step's forward and backward
passes). They are the products a GEMM computes, with a GEMM's error bound, but not BLAS's bits
(docs/numerics.md; tests/test_gemm_plan.py). Model.evaluate and Model.predict use the same
products (own_products), so that they compute what training computed.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ._core import config as _config
from ._core.spec import spec_of
from ._ext import _blas, _dense, _fused_deep, _fused_mlp
from .layers import MIN_FAST_KEEP

# The roles of the hidden-layer pattern, in order; "dropout" is optional.
_WITH_DROPOUT = ("dense", "relu", "dropout", "dense", "softmax")
_WITHOUT_DROPOUT = ("dense", "relu", "dense", "softmax")
# The roles of the regression pattern.
_REGRESSION = ("dense", "relu", "dense", "relu", "dense", "linear")


def _role(obj):
    spec = spec_of(obj)
    return None if spec is None else spec.fused


def _draw_seed() -> int:
    """The fast dropout's seed, drawn as Layer_Dropout.forward draws it."""
    return int(_config.dropout_random().random_sample() * 9007199254740992.0)


class _Plan:
    """What both patterns' plans share: `gradients(batch_X, batch_y, epoch, step,
    keep_attributes)`, defined by each, returns Model._gradients' (data_loss, reg_loss,
    accuracy), or None, having done nothing, when its kernel does not take these arrays."""

    model: Any

    def gradients(self, batch_X, batch_y, epoch: int, step: int, keep_attributes: bool = False):
        raise NotImplementedError

    def checked_gradients(self, last_epoch: int, last_step: int):
        """Model._gradients' replacement for a train call whose final step is (last_epoch,
        last_step): that one also leaves the book's attributes on every layer; a non-finite loss
        raises before any update; a step the kernel does not take runs the per-layer protocol."""
        model = self.model
        per_layer, gradients, check = model._gradients, self.gradients, model._check_loss

        def checked(batch_X, batch_y, epoch: int, step: int):
            result = gradients(batch_X, batch_y, epoch, step, step == last_step and epoch == last_epoch)
            if result is None:
                return per_layer(batch_X, batch_y, epoch, step)
            check(result[0], result[1], epoch, step)
            return result
        return checked

    def train_step(self, last_epoch: int, last_step: int):
        """Model._train_step's replacement: checked_gradients, then the optimizer's update."""
        gradients, update = self.checked_gradients(last_epoch, last_step), self.model._update

        def train_step(batch_X, batch_y, epoch: int, step: int, factor: float | None = None):
            result = gradients(batch_X, batch_y, epoch, step)
            update(factor)
            return result
        return train_step


class HiddenLayerPlan(_Plan):
    """The compiled step of the hidden-layer pattern (module docstring) for one model."""

    def __init__(self, model, dense1, dense2, dropout) -> None:
        self.model = model
        self.dense1, self.dense2, self.dropout = dense1.__dict__, dense2.__dict__, dropout
        self.scratch: dict[str, np.ndarray] = {}
        layers = model.layers
        self.attributes = (layers[1].__dict__, None if dropout is None else dropout.__dict__, layers[-1].__dict__,
                           model.softmax_classifier_output.__dict__)

    def gradients(self, batch_X, batch_y, epoch: int, step: int, keep_attributes: bool = False):
        """Model._gradients' (data_loss, reg_loss, accuracy), the gradients on the two Dense
        layers (and, with keep_attributes, every layer's book attributes); None, having done
        nothing, when the kernel does not take these arrays."""
        dropout = self.dropout
        keep = 0.0
        if dropout is not None:
            keep = dropout.rate
            if dropout.mode != "fast" or not MIN_FAST_KEEP <= keep <= 1:
                return None
        result = _fused_mlp.hidden_step(self.dense1, self.dense2, self.scratch, batch_X, batch_y, keep, _draw_seed,
                                        self.attributes if keep_attributes else None)
        if result is None:
            return None
        model = self.model
        total, correct = result
        count = len(batch_y)
        data_loss = model.loss._accumulate(total, count)
        reg_loss = model.loss.regularization_loss()
        model.accuracy._accumulate(correct, count)
        return data_loss, reg_loss, correct / count


class RegressionPlan(_Plan):
    """The compiled step of the regression pattern (module docstring) for one model."""

    def __init__(self, model, dense1, dense2, dense3) -> None:
        self.model = model
        self.dense1, self.dense2, self.dense3 = dense1.__dict__, dense2.__dict__, dense3.__dict__
        self.scratch: dict[str, np.ndarray] = {}

    def gradients(self, batch_X, batch_y, epoch: int, step: int, keep_attributes: bool = False):
        """Model._gradients' (data_loss, reg_loss, accuracy) and the gradients on the three Dense
        layers; with keep_attributes, the per-layer forward and backward run first on the batch
        (for every layer's book attributes; the accumulated sums stay as they are). None, having
        done nothing, when the kernel does not take these arrays."""
        model = self.model
        precision = model.accuracy.precision
        if precision is None:
            return None
        dense = (self.dense1, self.dense2, self.dense3)
        result = _fused_deep.regression_step(*dense, self.scratch, batch_X, batch_y, float(precision))
        if result is None:
            return None
        if keep_attributes:  # the per-layer pass sets every attribute; the gradients stay the plan's
            kept = [(state, name, state[name].copy()) for state in dense for name in ("dweights", "dbiases")]
            model.backward(model.forward(batch_X, training=True), batch_y)
            for state, name, gradient in kept:
                state[name] = gradient
        total, correct = result
        count = len(batch_y)
        data_loss = model.loss._accumulate(total, count)
        reg_loss = model.loss.regularization_loss()
        model.accuracy._accumulate(correct, count)
        return data_loss, reg_loss, correct / batch_y.size


def _thin_dense_chain(dense_layers, max_thin: int) -> bool:
    """The Dense layers' weights: 2-D arrays of one dtype, chained (each layer's outputs the next
    one's inputs), the first's inputs and the last's outputs at most max_thin."""
    found = [getattr(layer, "weights", None) for layer in dense_layers]
    weights = [w for w in found if isinstance(w, np.ndarray) and w.ndim == 2]
    if len(weights) != len(found) or any(w.dtype != weights[0].dtype for w in weights):
        return False
    if any(a.shape[1] != b.shape[0] for a, b in zip(weights, weights[1:])):
        return False
    return weights[0].shape[0] <= max_thin and weights[-1].shape[1] <= max_thin


class GemmPlan(_Plan):
    """Every other model with a float32 Layer_Dense, on a CPU with AVX-512: the per-layer protocol
    (Model._gradients, every attribute written as ever), with this thread's Dense products in
    fastnn's own kernels (src_pyx/_dense.pyx) for the step's forward and backward passes."""

    def __init__(self, model) -> None:
        self.model = model

    def checked_gradients(self, last_epoch: int, last_step: int):
        per_layer = self.model._gradients

        def gradients(batch_X, batch_y, epoch: int, step: int):
            with _own_gemm_on():
                return per_layer(batch_X, batch_y, epoch, step)
        return gradients


def _own_products(model) -> bool:
    """Whether the model's steps run its float32 Dense products in fastnn's own kernels: they can
    run (AVX-512), some exact Layer_Dense has float32 weights, and no dropout is in book mode (a
    book-mode run reproduces the book's NumPy numbers, NumPy's products included)."""
    if not _blas.small_gemm_available():
        return False
    found = False
    for layer in model.layers:
        role = _role(layer)
        if role == "dropout" and getattr(layer, "mode", None) == "book":
            return False
        if role == "dense" and getattr(getattr(layer, "weights", None), "dtype", None) == np.float32:
            found = True
    return found


def _gemm_plan(model):
    """GemmPlan(model) where _own_products(model), else None."""
    return GemmPlan(model) if _own_products(model) else None


@contextlib.contextmanager
def _own_gemm_on() -> Iterator[None]:
    """Inside: this thread's Dense products in fastnn's own kernels; afterwards as they were."""
    previous = _dense.own_gemm(True)
    try:
        yield
    finally:
        _dense.own_gemm(previous)


def own_products(model) -> contextlib.AbstractContextManager:
    """_own_gemm_on() where _own_products(model), else a context that changes nothing
    (Model.evaluate and Model.predict, so that they compute what training computed)."""
    return _own_gemm_on() if _own_products(model) else contextlib.nullcontext()


def compile_plan(model, *, callbacks: bool, augment):
    """The model's compiled plan, or None when its step is not one the plan knows (then every step
    takes the per-layer path). Training with callbacks (which may read the layers between steps,
    or stop early) or augmentation has no fused plan: it may have the GEMM plan, which writes
    every attribute at every step."""
    if callbacks or augment is not None:
        return _gemm_plan(model)
    return _fused_plan(model) or _gemm_plan(model)


def _fused_plan(model):
    """The plan of the two compiled patterns (module docstring), or None."""
    layers = model.layers
    roles = tuple(_role(layer) for layer in layers)
    loss, accuracy = _role(model.loss), _role(model.accuracy)
    if roles == _REGRESSION:
        if loss != "mean_squared_error" or accuracy != "regression_accuracy":
            return None
        three = (layers[0], layers[2], layers[4])
        return RegressionPlan(model, *three) if _thin_dense_chain(three, _fused_deep.MAX_THIN) else None
    if roles not in (_WITH_DROPOUT, _WITHOUT_DROPOUT):
        return None
    if loss != "categorical_crossentropy" or accuracy != "categorical_accuracy":
        return None
    if model.accuracy.binary or model.softmax_classifier_output is None:
        return None
    if not _thin_dense_chain((layers[0], layers[-2]), _fused_mlp.MAX_THIN):
        return None
    return HiddenLayerPlan(model, layers[0], layers[-2], layers[2] if len(layers) == 5 else None)
