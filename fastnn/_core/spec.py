"""The declaration of each public class, and the registry of declared classes.

Every layer, activation, loss, optimizer and accuracy class is declared once, with ``@declare``
on the class itself::

    @declare("layer",
             params={"n_inputs": SIZE, "n_neurons": SIZE, "weight_regularizer_l1": NON_NEGATIVE, ...},
             saved=REGULARIZERS,
             dims={"n_inputs": lambda layer: layer.weights.shape[0], ...},
             parameters=lambda a, d: {"weights": (d["n_inputs"], d["n_neurons"]),
                                      "biases": (1, d["n_neurons"])},
             features=lambda a, d: (d["n_inputs"], d["n_neurons"]),
             parameters_only_backward=True)
    class Layer_Dense: ...

Everything that lists or describes classes follows from these declarations instead of a
hand-kept list:

- the constructor's argument checks (``spec.check(locals())`` in ``__init__``);
- the model file format (``fastnn.io``): the allow-list of loadable classes is the set of
  declared classes, and each class's scalar attributes (``saved``), parameters, buffers and the
  optimizer state on it are saved and loaded generically;
- the package's exports and their parity with ``fastnn.reference``;
- the contract tests (``tests/cases.py`` holds one case per declared class; the suite fails for a
  declared class without one) and the benchmark op groups built from those cases.

This module imports only ``fastnn._core``; it knows no class: classes register themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .constraints import Constraint

__all__ = ["Spec", "declare", "declared", "spec_of", "KINDS", "FUSED_ROLES", "state_name"]

# The slots a class fills. Beyond the book's five: learning-rate schedules, training callbacks and
# batch augmentations, which Model.train uses and model files never hold (saveable=False).
KINDS = ("layer", "loss", "accuracy", "optimizer", "model", "schedule", "callback", "augmentation")

# Optimizer state on a layer is named after the parameter it belongs to, as in the book:
# weights -> weight_momentums / weight_cache, biases -> bias_momentums / bias_cache.
_PARAMETER_PREFIX = {"weights": "weight", "biases": "bias"}

Shapes = Callable[[dict, dict], Mapping[str, tuple]]


def state_name(parameter: str, suffix: str) -> str:
    """The layer attribute an optimizer keeps for `parameter`: ("weights", "cache") -> "weight_cache"."""
    return f"{_PARAMETER_PREFIX.get(parameter, parameter)}_{suffix}"


@dataclass(frozen=True, eq=False)
class Spec:
    """What fastnn knows about one class. Made by ``@declare``; read as ``cls._spec``.

    cls, kind
        The class, and the slot it fills: "layer", "loss", "accuracy", "optimizer", "model",
        "schedule", "callback" or "augmentation" (the last three: what Model.train takes).
    params
        {constructor parameter: constraint}, in signature order. ``check(arguments)`` validates
        them; their constraints are also what the documentation and the fuzz tests read.
    saved
        {attribute: constraint}: the scalar attributes (numbers, bools, strings, None, tuples of
        those such as a (height, width) kernel size) that, with the arrays below, rebuild the
        object from a model file. Checked on save and on load.
    file_defaults
        {saved attribute: value}: attributes that files written before the attribute existed
        lack, with the value such a file means (MaxPool2D's padding: 0). Files written now hold
        every saved attribute.
    dims
        {name: getter(obj) -> int}: sizes that fix the array shapes and are not attributes
        themselves (Dense: n_inputs and n_neurons, read from the weights). Saved as sizes.
    parameters
        (saved attributes, dims) -> {"weights": shape, "biases": shape}: the trainable arrays.
        Marks the class as trainable: optimizers update it, and the optimizer state on it
        (``state_name(parameter, suffix)`` for each optimizer's ``layer_state`` suffix) is saved.
    buffers
        (saved attributes, dims) -> {name: shape}: other state arrays saved with the layer
        (running statistics, say), of the parameters' dtype, always present.
    features
        (saved attributes, dims) -> (input features, output features) of a layer acting on
        (n_samples, n_features) data; lets the loader check that consecutive layers fit.
    keeps_features
        The output has the input's shape (activations, dropout): the feature count passes.
    layer_state
        Optimizers: the suffixes of the state they keep on each trainable layer, in creation
        order (Adam: ("cache", "momentums")).
    saveable
        False for classes a model file never holds (base classes, the input layer, the
        combined softmax/cross-entropy the Model builds itself).
    parameters_only_backward
        Layers with a ``_backward_parameters_only(dvalues)``: as the Model's first layer, whose
        ``dinputs`` nothing reads, it skips that product.
    fused
        The part this class plays in the Model's compiled training step (fastnn/_plan.py), one of
        FUSED_ROLES, or None: a model made only of declared parts in a pattern the plan knows is
        trained by one compiled call per batch.
    """

    cls: type
    kind: str
    params: Mapping[str, Constraint] = field(default_factory=dict)
    saved: Mapping[str, Constraint] = field(default_factory=dict)
    file_defaults: Mapping[str, Any] = field(default_factory=dict)
    dims: Mapping[str, Callable[[Any], int]] = field(default_factory=dict)
    parameters: Shapes | None = None
    buffers: Shapes | None = None
    features: Callable[[dict, dict], tuple] | None = None
    keeps_features: bool = False
    layer_state: tuple[str, ...] = ()
    saveable: bool = True
    parameters_only_backward: bool = False
    fused: str | None = None

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def trainable(self) -> bool:
        return self.parameters is not None

    def check(self, arguments: Mapping[str, Any]) -> list:
        """The declared constructor parameters taken from `arguments` (``locals()`` of
        ``__init__``), each checked by its constraint, in declaration order."""
        where = self.name
        return [constraint(arguments[name], name, where) for name, constraint in self.params.items()]


_REGISTRY: dict[str, Spec] = {}

# The parts of the Model's compiled training step (Spec.fused).
FUSED_ROLES = ("dense", "relu", "dropout", "softmax", "linear", "categorical_crossentropy", "mean_squared_error",
               "categorical_accuracy", "regression_accuracy")


def declare(kind: str, **declaration) -> Callable[[type], type]:
    """Class decorator: declare `cls` (see ``Spec`` for the fields) and register it by name."""
    if kind not in KINDS:
        raise ValueError(f"declare: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def register(cls: type) -> type:
        if cls.__name__ in _REGISTRY and _REGISTRY[cls.__name__].cls is not cls:
            raise ValueError(f"declare: a class named {cls.__name__} is already declared")
        spec = Spec(cls, kind, **declaration)
        if spec.fused is not None and spec.fused not in FUSED_ROLES:
            raise ValueError(f"declare: fused must be one of {', '.join(FUSED_ROLES)}, got {spec.fused!r}")
        cls._spec = spec
        _REGISTRY[cls.__name__] = spec
        return cls

    return register


def declared(kind: str | None = None, *, saveable: bool | None = None) -> list[Spec]:
    """The declared classes' specs, in declaration order; filtered by kind and saveability."""
    return [spec for spec in _REGISTRY.values()
            if (kind is None or spec.kind == kind) and (saveable is None or spec.saveable == saveable)]


def spec_of(obj_or_cls) -> Spec | None:
    """The declaration of exactly this object's class (None for a subclass or an undeclared
    class: its behaviour is not the declared one)."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    spec = cls.__dict__.get("_spec")
    return spec if spec is not None and spec.cls is cls else None
