"""One test case per declared class: what the contract tests (tests/contract/) need to know about a
class that its declaration (``fastnn._core.spec``) does not say.

The contract tests are parametrised over these cases; the declaration gives the rest (the kind,
the constructor's constraints, the saved attributes, the trainable parameters, saveability). A
class enters every contract test by being declared plus one entry in ``CASES``; a declared class
without an entry, or an entry for a class nobody declared, fails
``tests/contract/test_registry.py``.

A case is data: how to build the object, what its inputs look like, which concerns apply, and the
tolerances where the defaults do not fit. ``tests/contract/harness.py`` turns it into objects and
arrays. Fields:

name
    The class name (the same in ``fastnn`` and ``fastnn.reference``).
kwargs
    Valid constructor arguments, taken by both packages.
parity_kwargs
    Extra keyword arguments only the compiled class takes, given when it is compared with the
    reference (Layer_Dropout: ``mode="book"``, the reference's mask stream).
protocol
    How the generic tests drive the object:
    "layer"      ``forward(inputs, training)``, ``backward(dvalues)``;
    "loss"       ``forward(y_pred, y_true)`` (per-sample losses), ``calculate``, ``backward(dvalues, y_true)``;
    "combined"   ``forward(inputs, y_true)`` (the mean loss, Ch9-17), ``backward(softmax output, y_true)``;
    "accuracy"   ``init(y)``, ``calculate(predictions, y)``;
    "optimizer"  ``pre_update_params``, ``update_params(layer)``, ``post_update_params`` on every
                 trainable layer case;
    None         constructed only (base classes, the Model): exports, signatures, attributes.
inputs
    The shape of a sample input: the layer's inputs, the loss's predictions, the accuracy's
    targets (its predictions are made from them, about half of them right). Batch first; small,
    so that finite differences stay cheap.
values
    How the inputs are filled (``harness.fill``): "normal" (standard normal x 2), "kinkless"
    (normal, at least 0.1 away from 0, for ReLU's kink), "distinct" (values 0.01 apart, so a
    window's maximum stays put under finite differences), "probabilities" (uniform in
    [0.05, 0.95]).
targets
    Losses and accuracies: "class_ids" (ints in [0, C)), "onehot" (rows of the identity),
    "binary" (0/1 floats of the predictions' shape) or "real" (the predictions plus an offset at
    least 0.1 away from 0, for MAE's kink).
classes
    The number of classes of an accuracy's class-id targets.
min_batch
    The smallest batch a training forward takes (BatchNorm of (N, F) data: 2; one sample has no
    variance to normalise with).
ndim
    The input rank the class requires (Softmax, Dense: 2; Conv2D, MaxPool2D: 4); None: any rank.
backward
    A layer has a backward (Layer_Input has none).
gradcheck
    Its backward is checked against finite differences (float64); default: a loss's, a layer's
    with a backward.
seeded
    A training forward draws from NumPy's global RNG (dropout): the tests seed it before each.
views
    Attributes that are views of the arguments rather than buffers of their own (Flatten's
    ``output`` and ``dinputs``; Linear's and Layer_Input's ``output``, the input itself).
checks_inputs
    forward converts and validates its inputs (False for Layer_Input, which hands them on as
    they are, as the book's).
rtol
    The parity tolerance in units of the dtype's epsilon (0: bit-identical), applied to every
    compared array as ``|fast - ref| <= rtol * eps * (|ref| + max |ref|)``. The default, 4, is a
    few roundings apart (a sum in double against one in the dtype, libm's exp against NumPy's);
    wider where a result sums many terms in another order.
atol
    An absolute floor of that tolerance, in units of eps (for values that cancel: Softmax's
    gradient of a saturated row is tiny next to the terms it is made of).
same_formula
    backward computes what the reference computes in the same way, so that non-finite values
    land in the same places (False for Softmax: the O(n) form against the Jacobian product).
head
    Losses: the activation a Model puts before it.
loss
    Accuracies: the loss a Model trains with it.
invalid
    Constructor arguments that the per-parameter constraints do not refuse by themselves:
    (kwargs, error type, regex the message must match), e.g. sizes whose product does not fit
    in memory; the fuzzed constructors may meet these refusals (and only these) with arguments
    each constraint accepts.
variants
    Further setups the tests run too: dicts of field overrides (with an "id").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from fastnn._core.spec import declared

PROTOCOLS = ("layer", "loss", "combined", "accuracy", "optimizer", None)
REGULARIZED = dict(weight_regularizer_l1=0.01, weight_regularizer_l2=0.02, bias_regularizer_l1=0.03,
                   bias_regularizer_l2=0.04)


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str | None = "layer"
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    parity_kwargs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple = (5, 4)
    values: str = "normal"
    targets: str | None = None
    classes: int = 3
    min_batch: int = 1
    ndim: int | None = None
    backward: bool = True
    gradcheck: bool | None = None
    seeded: bool = False
    views: tuple = ()
    checks_inputs: bool = True
    rtol: float = 4
    atol: float = 0
    same_formula: bool = True
    head: str | None = None
    loss: str | None = None
    invalid: tuple = ()
    variants: tuple = ()
    id: str = ""

    def __post_init__(self):
        assert self.protocol in PROTOCOLS, f"{self.name}: unknown protocol {self.protocol!r}"

    @property
    def spec(self):
        return SPECS[self.name]

    @property
    def label(self) -> str:
        return f"{self.name}[{self.id}]" if self.id else self.name

    @property
    def gradient_checked(self) -> bool:
        """gradcheck, by default: a loss's, or a layer's with a backward."""
        if self.gradcheck is not None:
            return self.gradcheck
        return self.protocol in ("loss", "combined") or (self.protocol == "layer" and self.backward)

    def setups(self) -> list[Case]:
        """This case and each of its variants, as cases of their own."""
        return [self] + [dataclasses.replace(self, **variant) for variant in self.variants]


_BASE = dict(protocol=None)
_PROBABILITIES = dict(inputs=(6, 3), values="probabilities")

CASES: dict[str, Case] = {case.name: case for case in [
    # --- accuracy
    Case("Accuracy", **_BASE),
    Case("Accuracy_Categorical", protocol="accuracy", inputs=(8,), targets="class_ids", rtol=0,
         loss="Loss_CategoricalCrossentropy",
         variants=(dict(id="onehot", targets="onehot"),
                   dict(id="binary", kwargs={"binary": True}, inputs=(8, 2), targets="binary",
                        loss="Loss_BinaryCrossentropy"))),
    Case("Accuracy_Regression", protocol="accuracy", inputs=(8, 1), targets="real", rtol=0,
         loss="Loss_MeanSquaredError"),
    # --- activations
    Case("Activation_ReLU", values="kinkless", rtol=0),
    Case("Activation_Softmax", ndim=2, rtol=8, atol=8, same_formula=False),
    Case("Activation_Sigmoid"),
    Case("Activation_Linear", views=("output",), rtol=0),
    Case("Activation_Tanh"),
    Case("Activation_LeakyReLU", values="kinkless", rtol=0, variants=(dict(id="alpha0.3", kwargs={"alpha": 0.3}),)),
    Case("Activation_GELU", variants=(dict(id="tanh", kwargs={"approximate": "tanh"}),)),
    # --- layers
    Case("Layer_Dense", kwargs={"n_inputs": 4, "n_neurons": 3}, ndim=2,
         invalid=(({"n_inputs": 10 ** 6, "n_neurons": 10 ** 7}, ValueError,
                   r"Layer_Dense: n_inputs \* n_neurons must be small enough to fit in memory"),),
         variants=(dict(id="regularized", kwargs={"n_inputs": 4, "n_neurons": 3, **REGULARIZED}),
                   dict(id="he", kwargs={"n_inputs": 4, "n_neurons": 3, "weight_init": "he"}),
                   dict(id="glorot", kwargs={"n_inputs": 4, "n_neurons": 3, "weight_init": "glorot"}))),
    Case("Layer_Dropout", kwargs={"rate": 0.3}, parity_kwargs={"mode": "book"}, seeded=True, rtol=0,
         invalid=(({"rate": 0.9999, "mode": "fast"}, ValueError,
                   r"Layer_Dropout: rate 0\.9999\d* keeps a fraction .* use mode='book'"),),
         variants=(dict(id="rate0", kwargs={"rate": 0.0}),)),
    Case("Layer_Input", backward=False, views=("output",), checks_inputs=False, rtol=0),
    Case("Layer_Conv2D", kwargs={"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
         inputs=(2, 2, 5, 6), ndim=4, rtol=8,
         invalid=(({"in_channels": 2 ** 20, "out_channels": 2 ** 20, "kernel_size": 3}, ValueError,
                   r"Layer_Conv2D: out_channels \* in_channels \* kh \* kw must be small enough"),
                  ({"in_channels": 1, "out_channels": 1, "kernel_size": 3, "stride": 2, "padding": "same"},
                   ValueError, r"Layer_Conv2D: stride must be 1 with padding='same'")),
         variants=(dict(id="strided-regularized", kwargs={"in_channels": 2, "out_channels": 3, "kernel_size": 2,
                                                          "stride": 2, **REGULARIZED}),
                   dict(id="same-even", kwargs={"in_channels": 2, "out_channels": 3, "kernel_size": (2, 4),
                                                "padding": "same"}),
                   dict(id="pairs", kwargs={"in_channels": 2, "out_channels": 3, "kernel_size": (3, 2),
                                            "stride": (2, 1), "padding": (1, 0), "weight_init": "glorot"}),
                   dict(id="book-init", kwargs={"in_channels": 2, "out_channels": 3, "kernel_size": 3,
                                                "weight_init": "book"}))),
    # (a window of 4: the constructors' accepted paddings, up to 2, are at most half of it)
    Case("Layer_MaxPool2D", kwargs={"pool_size": 4}, inputs=(2, 2, 8, 9), values="distinct", ndim=4,
         rtol=0,
         invalid=(({"pool_size": 2, "padding": 2}, ValueError, r"Layer_MaxPool2D: padding must be at most half"),
                  ({"pool_size": 3, "stride": 2, "padding": "same"}, ValueError,
                   r"Layer_MaxPool2D: stride must be 1 with padding='same'")),
         variants=(dict(id="2x2", kwargs={"pool_size": 2}),
                   dict(id="overlapping", kwargs={"pool_size": 3, "stride": 1}),
                   dict(id="padded-pairs", kwargs={"pool_size": (3, 2), "stride": (2, 1), "padding": (1, 1)}),
                   dict(id="same-even", kwargs={"pool_size": 2, "padding": "same"}))),
    Case("Layer_Flatten", inputs=(3, 2, 3, 2), views=("output", "dinputs"), rtol=0),
    Case("Layer_GlobalAveragePool2D", inputs=(2, 3, 4, 5), ndim=4),
    # (atol: the input gradient's three terms cancel, to nothing at all for a batch of two)
    Case("Layer_BatchNorm", kwargs={"n_features": 4}, min_batch=2, atol=8,
         variants=(dict(id="nchw", kwargs={"n_features": 3, "momentum": 0.3, "epsilon": 1e-3}, inputs=(2, 3, 4, 5),
                        min_batch=1),)),
    # --- losses
    Case("Loss", **_BASE),
    Case("Loss_CategoricalCrossentropy", protocol="loss", targets="class_ids", head="Activation_Softmax",
         **_PROBABILITIES, variants=(dict(id="onehot", targets="onehot"),)),
    Case("Loss_BinaryCrossentropy", protocol="loss", targets="binary", head="Activation_Sigmoid", **_PROBABILITIES),
    Case("Loss_MeanSquaredError", protocol="loss", targets="real", head="Activation_Linear", inputs=(6, 3)),
    Case("Loss_MeanAbsoluteError", protocol="loss", targets="real", head="Activation_Linear", inputs=(6, 3)),
    Case("Activation_Softmax_Loss_CategoricalCrossentropy", protocol="combined", inputs=(6, 3), targets="class_ids",
         ndim=2, rtol=8, variants=(dict(id="onehot", targets="onehot"),)),
    # --- the model
    Case("Model", **_BASE),
    # --- what Model.train takes beyond the book: augmentation, callbacks, schedules (tests/test_training*.py
    # drive them; the contract suite checks their constructors, signatures and attributes)
    Case("Augmentation_CropFlip", **_BASE, kwargs={"padding": 2, "flip": True},
         invalid=(({"padding": 0, "flip": False}, ValueError,
                   r"Augmentation_CropFlip: padding=0 with flip=False would change nothing"),)),
    Case("Callback", **_BASE),
    Case("Callback_EarlyStopping", **_BASE, kwargs={"monitor": "val_accuracy", "patience": 3}),
    Case("Callback_ModelCheckpoint", **_BASE, kwargs={"path": "checkpoint.fnn", "monitor": "loss"}),
    Case("Schedule_Step", **_BASE, kwargs={"step_size": 2, "gamma": 0.5}),
    Case("Schedule_Exponential", **_BASE, kwargs={"gamma": 0.9}),
    Case("Schedule_Cosine", **_BASE, kwargs={"epochs": 10, "warmup": 0.5, "min_factor": 0.01},
         invalid=(({"epochs": 2, "warmup": 2}, ValueError, r"Schedule_Cosine: warmup must be shorter"),)),
    Case("Schedule_ReduceOnPlateau", **_BASE, kwargs={"patience": 2, "factor": 0.5, "cooldown": 1}),
    # --- optimizers: bit-identical updates (hyper-parameters rounded as NumPy rounds them)
    Case("Optimizer_SGD", protocol="optimizer", kwargs={"learning_rate": 0.5, "decay": 1e-2}, rtol=0,
         variants=(dict(id="momentum", kwargs={"learning_rate": 0.5, "decay": 1e-2, "momentum": 0.9}),
                   dict(id="defaults", kwargs={}))),
    Case("Optimizer_Adagrad", protocol="optimizer", kwargs={"learning_rate": 0.3, "decay": 1e-3, "epsilon": 1e-5},
         rtol=0, variants=(dict(id="defaults", kwargs={}),)),
    Case("Optimizer_RMSprop", protocol="optimizer",
         kwargs={"learning_rate": 0.02, "decay": 1e-3, "rho": 0.95, "epsilon": 1e-6}, rtol=0,
         variants=(dict(id="defaults", kwargs={}),)),
    Case("Optimizer_Adam", protocol="optimizer",
         kwargs={"learning_rate": 0.05, "decay": 5e-3, "beta_1": 0.8, "beta_2": 0.99}, rtol=0,
         variants=(dict(id="defaults", kwargs={}),)),
]}

SPECS = {spec.name: spec for spec in declared()}


def cases(protocol="any", *, kind=None, saveable=None, trainable=None, setups=False) -> list[Case]:
    """The cases of the declared classes, in declaration order, filtered by protocol and by their
    declaration (kind, saveable, trainable); with setups=True each variant is a case of its own."""
    chosen = []
    for spec in declared(kind, saveable=saveable):
        case = CASES.get(spec.name)
        if case is None or (protocol != "any" and case.protocol != protocol):
            continue
        if trainable is not None and spec.trainable != trainable:
            continue
        chosen.extend(case.setups() if setups else [case])
    return chosen


def ids(chosen) -> list[str]:
    return [case.label for case in chosen]
