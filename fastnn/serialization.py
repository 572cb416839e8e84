"""Model files: fastnn's safe format (the default) and the book's pickle (only on request).

Public functions (``Model.save``/``Model.load`` and ``Model.save_parameters``/``load_parameters``
call them)::

    save_model(model, path, *, format="fastnn")           # or format="pickle" (the book's file)
    load_model(path, *, allow_pickle=False) -> Model
    save_parameters(model, path, *, format="fastnn")      # or format="pickle"
    load_parameters(model, path, *, allow_pickle=False)   # into an already finalized model

The safe format
---------------
One zip file (members stored uncompressed):

* ``model.json`` (``parameters.json`` for a parameters file): the format name
  (``"fastnn.model"`` / ``"fastnn.parameters"``), the format version (1), the fastnn version that
  wrote it, and a description of every object: for each layer its class name and the attributes
  needed to rebuild it (Layer_Dense: its sizes, dtype and four regularizer coefficients;
  Layer_Dropout: ``rate``, the keep probability as the book stores it, and ``mode``; activations:
  nothing), the loss, the accuracy (``binary`` / ``precision``) and the optimizer (its
  hyper-parameters, ``iterations`` and ``current_learning_rate``). Every array (weights, biases and
  the optimizer state on the layers: ``weight_momentums``, ``weight_cache``, ``bias_momentums``,
  ``bias_cache``) is listed with its member name, dtype and shape.
* one ``.npy`` member per array (``arrays/layers/<i>/<name>.npy``), written with
  ``np.lib.format.write_array(..., allow_pickle=False)``, little-endian, C order.

Loading never executes code from the file. It checks everything before building anything: the
file is a zip; the JSON parses and names this format and version; every class is in the explicit
allow-list below (``_REGISTRY``); every attribute has the expected type and range; every array
member exists, has a ``.npy`` header promising exactly the dtype and shape that the description
gives and that the layer implies (Dense weights (n_inputs, n_neurons) with biases (1, n_neurons);
optimizer state shaped like its parameter; consecutive Dense sizes agree), and parses with
``allow_pickle=False``; no member is missing, duplicated or unexpected. A damaged, truncated or
altered file gives a ``ModelFileError`` (a ``ValueError``) that says what is wrong; no half-built
model is ever returned. Objects are rebuilt with ``cls.__new__(cls)`` and their attributes, so
loading calls no constructor and draws nothing from NumPy's random generator.

The loaded model is finalized, predicts bit-identically to the saved one, and continues training
exactly where the saved one stopped (optimizer state, iteration count and learning rate included).
What is not saved: batch data and gradients (``inputs``, ``output``, ``dinputs``, ``dweights``,
``dbiases``, dropout's ``binary_mask``), the loss/accuracy accumulators (reset, as the book's
``save`` does with ``new_pass()``), and attributes a user added to the objects.

Pickle
------
``format="pickle"`` writes the book's file (a deep copy of the model without its batch data,
pickled); ``allow_pickle=True`` reads one. **Unpickling can execute arbitrary code: never load a
pickle file you did not write yourself or do not trust.** Without ``allow_pickle=True`` a pickle
file (recognized by its content, whatever its name) is refused before anything is unpickled.

Writes are atomic: the file is written to a temporary file in the same folder, flushed and
fsync'ed, then renamed over ``path``; if anything fails the temporary file is removed and an
existing file at ``path`` is left as it was.

Adding a class to the safe format: one ``ClassSpec`` entry in ``_REGISTRY`` (see ``ClassSpec``).
"""
from __future__ import annotations

import collections
import copy
import json
import math
import numbers
import os
import pickle
import pickletools
import secrets
import stat
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ._core import checks as _checks
from . import __version__ as _fastnn_version
from .accuracy import Accuracy_Categorical, Accuracy_Regression
from .activations import Activation_Linear, Activation_ReLU, Activation_Sigmoid, Activation_Softmax
from .conv import Layer_Conv2D, Layer_Flatten, Layer_MaxPool2D
from .layers import Layer_Dense, Layer_Dropout
from .losses import Loss_BinaryCrossentropy, Loss_CategoricalCrossentropy, Loss_MeanAbsoluteError, Loss_MeanSquaredError
from .model import Model
from .optimizers import Optimizer_Adagrad, Optimizer_Adam, Optimizer_RMSprop, Optimizer_SGD

__all__ = ["save_model", "load_model", "save_parameters", "load_parameters", "ModelFileError",
           "MODEL_FORMAT", "PARAMETERS_FORMAT", "FORMAT_VERSION", "ClassSpec"]

MODEL_FORMAT = "fastnn.model"
PARAMETERS_FORMAT = "fastnn.parameters"
FORMAT_VERSION = 1
_MODEL_JSON = "model.json"
_PARAMETERS_JSON = "parameters.json"
_MAX_JSON_BYTES = 16 * 1024 * 1024
_MAX_NDIM = 32
_FLOAT_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same model gives the same bytes
_SAVE_FORMATS = ("fastnn", "pickle")


class ModelFileError(ValueError):
    """A model or parameters file that cannot be loaded: damaged, truncated, altered, of another
    kind, or describing something the safe format does not allow."""


# =============================================================================================
# Attribute checks. Each takes (value, location) and returns the value or raises _Invalid; the same
# checks run on the objects when saving (so fastnn never writes a file it would refuse) and on the
# decoded JSON when loading.


class _Invalid(Exception):
    """Raised by the checks; turned into a ModelFileError (load) or ValueError (save)."""


Check = Callable[[Any, str], Any]


def _real(*, low: float | None = None, high: float | None = None, low_open: bool = False,
          high_open: bool = False) -> Check:
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    interval = f"{lo}, {hi}"

    def check(value, where):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise _Invalid(f"{where} must be a real number in {interval}, got {_show(value)}")
        try:
            v = float(value)
        except OverflowError:
            v = math.inf
        if not (math.isfinite(v) and (low is None or v > low or (v == low and not low_open))
                and (high is None or v < high or (v == high and not high_open))):
            raise _Invalid(f"{where} must be a finite real number in {interval}, got {_show(value)}")
        return value
    return check


def _count(value, where):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        raise _Invalid(f"{where} must be an int >= 0, got {_show(value)}")
    return value


def _positive_size(value, where):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value <= 0:
        raise _Invalid(f"{where} must be an int > 0, got {_show(value)}")
    return int(value)


def _boolean(value, where):
    if not isinstance(value, (bool, np.bool_)):
        raise _Invalid(f"{where} must be true or false, got {_show(value)}")
    return value


def _choice(*choices: str) -> Check:
    def check(value, where):
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(f"{where} must be one of {', '.join(map(repr, choices))}, got {_show(value)}")
        return value
    return check


def _optional(inner: Check) -> Check:
    def check(value, where):
        return None if value is None else inner(value, where)
    return check


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_NON_NEGATIVE = _real(low=0.0)
_POSITIVE = _real(low=0.0, low_open=True)
_UNIT = _real(low=0.0, high=1.0, high_open=True)        # [0, 1): momentum, rho, beta_1, beta_2
_KEEP = _real(low=0.0, high=1.0, low_open=True)         # (0, 1]: Layer_Dropout.rate (keep probability)

_REGULARIZERS = {name: _NON_NEGATIVE for name in (
    "weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1", "bias_regularizer_l2")}
_OPTIMIZER_BASE = {"learning_rate": _POSITIVE, "current_learning_rate": _POSITIVE, "decay": _NON_NEGATIVE,
                   "iterations": _count}

# Optimizer state an optimizer keeps on a trainable layer, and the parameter it is shaped like.
# Each exists only after the first update (the book's lazy hasattr logic), and comes in pairs.
_OPTIMIZER_STATE = {"weight_momentums": "weights", "weight_cache": "weights",
                    "bias_momentums": "biases", "bias_cache": "biases"}
_STATE_PAIRS = (("weight_momentums", "bias_momentums"), ("weight_cache", "bias_cache"))


# =============================================================================================
# The allow-list: every class a safe file may name, and what to save of it.


@dataclass(frozen=True)
class ClassSpec:
    """How one fastnn class is saved and rebuilt. One entry in ``_REGISTRY`` per class.

    cls
        The class. Only objects of exactly this type are saved (a subclass is refused: its
        behaviour is not described by these attributes); loading builds ``cls.__new__(cls)``.
    kind
        "layer", "loss", "accuracy" or "optimizer": the slot of the Model it may fill.
    attributes
        {attribute name: check} for the scalar attributes (numbers, bools, strings, None) that
        rebuild the object, read from and written to its ``__dict__``. The check validates the
        value's type and range, on save and on load.
    dims
        Trainable layers only: {name: getter(layer) -> int} for the sizes that fix the parameter
        shapes and are not attributes themselves (Dense: n_inputs, n_neurons from the weights'
        shape). Saved in the JSON as positive ints.
    parameter_shapes
        Trainable layers only: (attributes, dims) -> {"weights": shape, "biases": shape}, the exact
        shapes the layer's parameters must have. Marks the class as trainable: its parameters
        and any optimizer state on it (weight_/bias_ momentums/cache, shaped like the parameter)
        are saved as arrays, all of one dtype (float32 or float64).
    features
        (attributes, dims) -> (input features, output features), for layers acting on 2-D
        (n_samples, n_features) data; lets the loader check that consecutive layers fit.
    keeps_features
        True for layers whose output has the shape of their input (activations, dropout): the
        feature count passes through them. Layers with neither ``features`` nor
        ``keeps_features`` (e.g. convolution, flatten) end that check until the next Dense.

    Example, a convolution layer storing its hyper-parameters as attributes (weights shaped
    (out_channels, in_channels, k, k) for the sake of the example)::

        ClassSpec(Layer_Conv2D, "layer",
                  attributes={"in_channels": _positive_size, "out_channels": _positive_size,
                              "kernel_size": _positive_size, "stride": _positive_size,
                              "padding": _count, **_REGULARIZERS},
                  parameter_shapes=lambda a, d: {
                      "weights": (a["out_channels"], a["in_channels"], a["kernel_size"], a["kernel_size"]),
                      "biases": (a["out_channels"],)}),
        ClassSpec(Layer_MaxPool2D, "layer", attributes={"pool_size": _positive_size, "stride": _positive_size}),
        ClassSpec(Layer_Flatten, "layer"),
    """

    cls: type
    kind: str
    attributes: Mapping[str, Check] = field(default_factory=dict)
    dims: Mapping[str, Callable[[Any], int]] = field(default_factory=dict)
    parameter_shapes: Callable[[dict, dict], dict] | None = None
    features: Callable[[dict, dict], tuple] | None = None
    keeps_features: bool = False

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def trainable(self) -> bool:
        return self.parameter_shapes is not None


def _dense_shapes(attributes, dims):
    return {"weights": (dims["n_inputs"], dims["n_neurons"]), "biases": (1, dims["n_neurons"])}


_REGISTRY: dict[str, ClassSpec] = {spec.name: spec for spec in (
    # --- layers ------------------------------------------------------------------------------
    ClassSpec(Layer_Dense, "layer", attributes=_REGULARIZERS,
              dims={"n_inputs": lambda layer: layer.weights.shape[0],
                    "n_neurons": lambda layer: layer.weights.shape[1]},
              parameter_shapes=_dense_shapes,
              features=lambda a, d: (d["n_inputs"], d["n_neurons"])),
    ClassSpec(Layer_Dropout, "layer", attributes={"rate": _KEEP, "mode": _choice("fast", "book")},
              keeps_features=True),
    ClassSpec(Layer_Conv2D, "layer",
              attributes={"in_channels": _positive_size, "out_channels": _positive_size,
                          "kernel_size": _positive_size, "stride": _positive_size, "padding": _count,
                          **_REGULARIZERS},
              parameter_shapes=lambda a, d: {
                  "weights": (a["out_channels"], a["in_channels"], a["kernel_size"], a["kernel_size"]),
                  "biases": (a["out_channels"],)}),
    ClassSpec(Layer_MaxPool2D, "layer", attributes={"pool_size": _positive_size, "stride": _positive_size}),
    ClassSpec(Layer_Flatten, "layer"),
    ClassSpec(Activation_ReLU, "layer", keeps_features=True),
    ClassSpec(Activation_Softmax, "layer", keeps_features=True),
    ClassSpec(Activation_Sigmoid, "layer", keeps_features=True),
    ClassSpec(Activation_Linear, "layer", keeps_features=True),
    # --- losses ------------------------------------------------------------------------------
    ClassSpec(Loss_CategoricalCrossentropy, "loss"),
    ClassSpec(Loss_BinaryCrossentropy, "loss"),
    ClassSpec(Loss_MeanSquaredError, "loss"),
    ClassSpec(Loss_MeanAbsoluteError, "loss"),
    # --- accuracies --------------------------------------------------------------------------
    ClassSpec(Accuracy_Categorical, "accuracy", attributes={"binary": _boolean}),
    ClassSpec(Accuracy_Regression, "accuracy", attributes={"precision": _optional(_NON_NEGATIVE)}),
    # --- optimizers --------------------------------------------------------------------------
    ClassSpec(Optimizer_SGD, "optimizer", attributes={**_OPTIMIZER_BASE, "momentum": _UNIT}),
    ClassSpec(Optimizer_Adagrad, "optimizer", attributes={**_OPTIMIZER_BASE, "epsilon": _POSITIVE}),
    ClassSpec(Optimizer_RMSprop, "optimizer", attributes={**_OPTIMIZER_BASE, "epsilon": _POSITIVE, "rho": _UNIT}),
    ClassSpec(Optimizer_Adam, "optimizer", attributes={**_OPTIMIZER_BASE, "epsilon": _POSITIVE, "beta_1": _UNIT,
                                                       "beta_2": _UNIT}),
)}


# =============================================================================================
# Scalars in JSON. Python bool/int/float/str/None are stored as themselves (JSON keeps int and
# float apart, and float reprs round-trip exactly). NumPy scalars (np.std gives Accuracy_Regression
# its precision as one) are stored as {"numpy": dtype, "value": number} so they come back with
# their type: a float64 scalar and a Python float do not promote alike against float32 arrays.

_NUMPY_SCALARS = {"float16": np.float16, "float32": np.float32, "float64": np.float64,
                  "int32": np.int32, "int64": np.int64, "bool": np.bool_}


def _encode_scalar(value, where):
    if value is None or isinstance(value, (bool, int, float, str)) and type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.generic) and value.dtype.name in _NUMPY_SCALARS:
        return {"numpy": value.dtype.name, "value": value.item()}
    raise _Invalid(f"{where} must be a number, bool, string or None, got {type(value).__name__} {_show(value)}")


def _decode_scalar(value, where):
    if isinstance(value, dict):
        _keys(value, where, {"numpy", "value"})
        kind, number = value["numpy"], value["value"]
        if not isinstance(kind, str) or kind not in _NUMPY_SCALARS:
            raise _Invalid(f"{where}.numpy must be one of {', '.join(_NUMPY_SCALARS)}, got {_show(kind)}")
        expected = {"bool": (bool,), "int32": (int,), "int64": (int,)}.get(kind, (int, float))
        if isinstance(number, bool) != (kind == "bool") or not isinstance(number, expected):
            raise _Invalid(f"{where}.value must be a {kind} number, got {_show(number)}")
        try:
            scalar = _NUMPY_SCALARS[kind](number)
        except (OverflowError, ValueError) as exc:
            raise _Invalid(f"{where}.value does not fit {kind}: {exc}") from None
        if kind != "bool" and scalar.item() != number:
            raise _Invalid(f"{where}.value {number!r} is not exactly representable as {kind}")
        return scalar
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _Invalid(f"{where} must be a number, bool, string, null or a NumPy scalar object, got {_show(value)}")


# =============================================================================================
# Small JSON structure checks.


def _keys(obj, where, required, optional=()):
    if not isinstance(obj, dict):
        raise _Invalid(f"{where} must be a JSON object, got {_show(obj)}")
    missing = [k for k in required if k not in obj]
    unexpected = [k for k in obj if k not in required and k not in optional]
    if missing:
        raise _Invalid(f"{where} lacks {', '.join(map(repr, missing))}")
    if unexpected:
        raise _Invalid(f"{where} has unexpected {', '.join(map(repr, unexpected))}")


def _spec_named(name, where, kind):
    if not isinstance(name, str):
        raise _Invalid(f"{where}.class must be a class name (a string), got {_show(name)}")
    spec = _REGISTRY.get(name)
    if spec is None:
        raise _Invalid(f"{where}.class is {name!r}, which is not a class the safe format allows "
                       f"(allowed: {', '.join(_REGISTRY)})")
    if spec.kind != kind:
        raise _Invalid(f"{where}.class is {name!r}, a {spec.kind}, where a {kind} is expected")
    return spec


def _shape(value, where):
    if not isinstance(value, list) or len(value) > _MAX_NDIM:
        raise _Invalid(f"{where} must be a list of at most {_MAX_NDIM} sizes, got {_show(value)}")
    return tuple(_count(v, f"{where}[{i}]") for i, v in enumerate(value))


@dataclass
class _ArrayRef:
    member: str
    dtype: np.dtype   # little-endian float32/float64
    shape: tuple


def _array_ref(value, where, member, dtype_name, shape):
    """Check one {"member", "dtype", "shape"} entry against what the layer implies."""
    _keys(value, where, ("member", "dtype", "shape"))
    if value["member"] != member:
        raise _Invalid(f"{where}.member must be {member!r}, got {_show(value['member'])}")
    if value["dtype"] != dtype_name:
        raise _Invalid(f"{where}.dtype must be {dtype_name!r} (the layer's dtype), got {_show(value['dtype'])}")
    declared = _shape(value["shape"], f"{where}.shape")
    if shape is not None and declared != tuple(shape):
        raise _Invalid(f"{where}.shape must be {list(shape)}, got {list(declared)}")
    return _ArrayRef(member, _FLOAT_DTYPES[dtype_name], declared)


def _member(index, name):
    return f"arrays/layers/{index}/{name}.npy"


# =============================================================================================
# The model description: objects -> JSON (save) and JSON -> validated plan (load).


@dataclass
class _Entry:
    """One object to build: its spec, its decoded attributes and its arrays by attribute name."""
    spec: ClassSpec
    attributes: dict
    dims: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)   # attribute name -> _ArrayRef


def _header(format_name):
    return {"format": format_name, "version": FORMAT_VERSION, "fastnn_version": _fastnn_version}


def _check_header(description, where, format_name, body_keys):
    _keys(description, where, ("format", "version", "fastnn_version", *body_keys))
    kind = description["format"]
    if kind != format_name:
        other = {MODEL_FORMAT: "a whole-model file (load it with fastnn.Model.load)",
                 PARAMETERS_FORMAT: "a parameters file (load it with model.load_parameters)"
                 }.get(kind) if isinstance(kind, str) else None
        raise _Invalid(f"format is {_show(kind)}, expected {format_name!r}" + (f": this is {other}" if other else ""))
    version = description["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise _Invalid(f"version must be an int, got {_show(version)}")
    if version != FORMAT_VERSION:
        newer = " (written by a newer fastnn; upgrade fastnn to read it)" if version > FORMAT_VERSION else ""
        raise _Invalid(f"format version {version} is not supported; this fastnn reads version "
                       f"{FORMAT_VERSION}{newer}")
    if not isinstance(description["fastnn_version"], str):
        raise _Invalid(f"fastnn_version must be a string, got {_show(description['fastnn_version'])}")


def _object_entry(value, where, kind, layer_index=None) -> _Entry:
    """Validate one {"class", "attributes"[, "dims", "dtype", "arrays"]} entry."""
    if not isinstance(value, dict) or "class" not in value:
        raise _Invalid(f"{where} must be a JSON object with a 'class', got {_show(value)}")
    spec = _spec_named(value["class"], where, kind)
    extra = ("dims", "dtype", "arrays") if spec.trainable else ()
    _keys(value, where, ("class", "attributes", *extra))
    raw = value["attributes"]
    _keys(raw, f"{where}.attributes", tuple(spec.attributes))
    attributes = {}
    for name, check in spec.attributes.items():
        loc = f"{where}.attributes.{name}"
        attributes[name] = check(_decode_scalar(raw[name], loc), loc)
    entry = _Entry(spec, attributes)
    if not spec.trainable:
        return entry
    _keys(value["dims"], f"{where}.dims", tuple(spec.dims))
    dims = {name: _positive_size(value["dims"][name], f"{where}.dims.{name}") for name in spec.dims}
    dtype_name = value["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in _FLOAT_DTYPES:
        raise _Invalid(f"{where}.dtype must be 'float32' or 'float64', got {_show(dtype_name)}")
    shapes = spec.parameter_shapes(attributes, dims)
    arrays = value["arrays"]
    _keys(arrays, f"{where}.arrays", tuple(shapes), tuple(_OPTIMIZER_STATE))
    for a, b in _STATE_PAIRS:
        if (a in arrays) != (b in arrays):
            raise _Invalid(f"{where}.arrays has {a if a in arrays else b!r} without "
                           f"{b if a in arrays else a!r} (optimizer state comes in pairs)")
    for name in arrays:
        shape = shapes[name] if name in shapes else shapes[_OPTIMIZER_STATE[name]]
        entry.arrays[name] = _array_ref(arrays[name], f"{where}.arrays.{name}", _member(layer_index, name),
                                        dtype_name, shape)
    entry.dims = dims
    return entry


def _check_model_description(description) -> dict:
    """Validate a model.json document; returns {"layers": [...], "loss": ..., ...} of _Entry."""
    _check_header(description, "model.json", MODEL_FORMAT, ("layers", "loss", "accuracy", "optimizer"))
    layers = description["layers"]
    if not isinstance(layers, list) or not layers:
        raise _Invalid(f"layers must be a non-empty list, got {_show(layers)}")
    plan = {"layers": [_object_entry(v, f"layers[{i}]", "layer", i) for i, v in enumerate(layers)]}
    for kind in ("loss", "accuracy", "optimizer"):
        value = description[kind]
        plan[kind] = None if value is None else _object_entry(value, kind, kind)
    # Consecutive layers must fit: a Dense layer takes as many features as the last one gives.
    features, source = None, None
    for i, entry in enumerate(plan["layers"]):
        spec = entry.spec
        if spec.features is not None:
            n_in, n_out = spec.features(entry.attributes, entry.dims)
            if features is not None and n_in != features:
                raise _Invalid(f"layers[{i}] ({spec.name}) takes {n_in} input features but layers[{source}] "
                               f"gives {features}")
            features, source = n_out, i
        elif not spec.keeps_features:
            features = None
    return plan


def _spec_of(obj, where, kind) -> ClassSpec:
    spec = _REGISTRY.get(type(obj).__name__)
    if spec is None or spec.cls is not type(obj) or spec.kind != kind:
        raise _Invalid(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which the safe format "
                       f"cannot describe (it stores only fastnn's own classes: {', '.join(_REGISTRY)}); "
                       f"save with format='pickle' instead")
    return spec


def _describe_object(obj, where, kind, layer_index=None, arrays_out=None) -> dict:
    spec = _spec_of(obj, where, kind)
    state = obj.__dict__
    attributes = {}
    for name, check in spec.attributes.items():
        if name not in state:
            raise _Invalid(f"{where} ({spec.name}) has no attribute {name!r}")
        value = check(state[name], f"{where}.{name}")
        attributes[name] = _encode_scalar(value, f"{where}.{name}")
    entry = {"class": spec.name, "attributes": attributes}
    if not spec.trainable:
        return entry
    weights = state.get("weights")
    if not isinstance(weights, np.ndarray) or weights.dtype.name not in _FLOAT_DTYPES:
        raise _Invalid(f"{where}.weights must be a float32 or float64 array, got {_show(type(weights).__name__)}")
    try:
        dims = {name: _positive_size(int(get(obj)), f"{where} {name}") for name, get in spec.dims.items()}
    except (AttributeError, IndexError, TypeError) as exc:
        raise _Invalid(f"{where} ({spec.name}) has parameters of an unexpected form: {exc}") from None
    dtype_name = weights.dtype.name
    shapes = spec.parameter_shapes(attributes, dims)
    arrays = {}
    for name in (*shapes, *_OPTIMIZER_STATE):
        if name not in state:
            if name in shapes:
                raise _Invalid(f"{where} ({spec.name}) has no {name!r}")
            continue
        array = state[name]
        shape = shapes.get(name) or shapes[_OPTIMIZER_STATE[name]]
        if not isinstance(array, np.ndarray) or array.dtype.name != dtype_name or array.shape != tuple(shape):
            raise _Invalid(f"{where}.{name} must be a {dtype_name} array of shape {tuple(shape)} (like the "
                           f"layer's {'weights' if name in shapes else _OPTIMIZER_STATE[name]}), got "
                           f"{type(array).__name__}" + (f" of dtype {array.dtype} and shape {array.shape}"
                                                        if isinstance(array, np.ndarray) else ""))
        member = _member(layer_index, name)
        arrays[name] = {"member": member, "dtype": dtype_name, "shape": list(array.shape)}
        arrays_out[member] = array
    entry.update(dims=dims, dtype=dtype_name, arrays=arrays)
    return entry


def _require_model(model, where: str, *, finalized: bool = False, hint: str = "") -> None:
    """TypeError unless `model` is a fastnn.Model; with finalized=True, ValueError unless finalize()
    has built its trainable_layers (`hint` adds to that message)."""
    if not isinstance(model, Model):
        raise TypeError(f"{where}: expected a fastnn.Model, got {type(model).__name__}")
    if finalized and "trainable_layers" not in model.__dict__:
        raise ValueError(f"{where}: call model.finalize() first{hint}")


def _describe_model(model, where):
    """(model.json document, {member: array}) for a model; ValueError when it cannot be saved."""
    _require_model(model, where)
    layers = model.__dict__.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: the model has no layers; nothing to save")
    arrays = {}
    try:
        description = _header(MODEL_FORMAT)
        description["layers"] = [_describe_object(layer, f"layers[{i}]", "layer", i, arrays)
                                 for i, layer in enumerate(layers)]
        for kind in ("loss", "accuracy", "optimizer"):
            obj = model.__dict__.get(kind)
            description[kind] = None if obj is None else _describe_object(obj, f"model.{kind}", kind)
        document = json.dumps(description, indent=1, allow_nan=False).encode("utf-8")
        # What we write must be what we read: run the loader's checks on the document.
        _check_model_description(_parse_json(document))
    except _Invalid as exc:
        raise ValueError(f"{where}: cannot save this model in the safe format: {exc}") from None
    return document, arrays


# =============================================================================================
# Reading: file kind, zip members, npy arrays.


def _parse_json(data: bytes):
    def no_constants(name):
        raise _Invalid(f"the JSON holds {name}, which the format never writes")

    def no_duplicates(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise _Invalid(f"the JSON repeats the key {key!r}")
            result[key] = value
        return result

    try:
        text = data.decode("utf-8")
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise _Invalid(f"the JSON description does not parse: {exc}") from None


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _file_kind(path) -> str:
    """"zip", "pickle" or "unknown", from the file's content (never its name)."""
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:4] in _ZIP_MAGIC:
            return "zip"
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            return "pickle"
        # Protocols 0 and 1 have no magic: see whether the whole file parses as pickle opcodes
        # (pickletools only reads them; nothing is executed).
        f.seek(0)
        try:
            for opcode, _, _ in pickletools.genops(f):
                if opcode.name == "STOP":
                    return "pickle"
        except Exception:  # noqa: BLE001 - any parse failure means "not a pickle"
            pass
    return "unknown"


def _refuse_pickle(where, path, how):
    raise ModelFileError(
        f"{where}: {os.fspath(path)!r} is a pickle file (the book's format), not fastnn's safe format. "
        f"Unpickling can execute arbitrary code, so fastnn does not load pickles unless asked. If you "
        f"trust this file (you wrote it yourself), load it with {how}; to convert it, load it that way "
        f"once and save it again without format='pickle'.")


class _ZipReader:
    """Reads a safe-format zip with every check; errors become ModelFileError(prefix + message)."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str):
        self.zf = zf
        self.prefix = prefix
        infos = zf.infolist()
        names = [info.filename for info in infos]
        duplicates = sorted(name for name, count in collections.Counter(names).items() if count > 1)
        if duplicates:
            raise _Invalid(f"the zip holds several members named {', '.join(map(repr, duplicates))}")
        self.infos = {info.filename: info for info in infos}
        for info in infos:
            if info.flag_bits & 0x1:
                raise _Invalid(f"member {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Invalid(f"member {info.filename!r} uses an unsupported compression method")

    def json(self, name, other_name, other_message):
        if name not in self.infos:
            if other_name in self.infos:
                raise _Invalid(other_message)
            raise _Invalid(f"no {name} member: not a fastnn {name.split('.')[0]} file "
                           f"(members: {', '.join(sorted(self.infos)[:10]) or 'none'})")
        info = self.infos[name]
        if info.file_size > _MAX_JSON_BYTES:
            raise _Invalid(f"{name} is {info.file_size} bytes, more than a description can be")
        with self.zf.open(info) as f:
            data = f.read(_MAX_JSON_BYTES + 1)
        return _parse_json(data)

    def check_members(self, expected):
        unexpected = sorted(set(self.infos) - set(expected))
        missing = sorted(set(expected) - set(self.infos))
        if missing:
            raise _Invalid(f"member {missing[0]!r} is missing" + (f" (and {len(missing) - 1} more)"
                                                                  if len(missing) > 1 else ""))
        if unexpected:
            raise _Invalid(f"the zip holds unexpected member {unexpected[0]!r}" +
                           (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))

    def array(self, ref: _ArrayRef) -> np.ndarray:
        """The array of one member, after checking its .npy header promises exactly ref's dtype
        and shape and its size matches (no truncated or trailing data)."""
        info = self.infos[ref.member]
        where = f"member {ref.member!r}"
        fmt = np.lib.format
        with self.zf.open(info) as f:
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, fortran_order, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran_order, dtype = fmt.read_array_header_2_0(f)
                else:
                    raise _Invalid(f"{where} is a .npy file of version {version}, which the format never writes")
            except (ValueError, EOFError) as exc:
                raise _Invalid(f"{where} is not a valid .npy array: {exc}") from None
            header_size = f.tell()
        if dtype != ref.dtype:
            raise _Invalid(f"{where} holds {dtype.str} data, the description promises {ref.dtype.name} "
                           f"({ref.dtype.str})")
        if tuple(shape) != ref.shape:
            raise _Invalid(f"{where} holds an array of shape {tuple(shape)}, the description promises {ref.shape}")
        if fortran_order:
            raise _Invalid(f"{where} is in Fortran order, which the format never writes")
        expected_size = header_size + math.prod(ref.shape) * ref.dtype.itemsize
        if info.file_size != expected_size:
            raise _Invalid(f"{where} is {info.file_size} bytes, its header promises {expected_size}: "
                           f"truncated or altered")
        with self.zf.open(info) as f:
            try:
                array = fmt.read_array(f, allow_pickle=False)
            except (ValueError, EOFError) as exc:
                raise _Invalid(f"{where} does not read as an array: {exc}") from None
            if f.read(1):
                raise _Invalid(f"{where} has data after its array")
        if array.dtype != ref.dtype or array.shape != ref.shape:  # cannot happen after the header check
            raise _Invalid(f"{where} read as {array.dtype} {array.shape}, expected {ref.dtype} {ref.shape}")
        return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("="), copy=False))


def _read_zip(path, where, read):
    """Open path as a zip and run read(_ZipReader); every failure is a ModelFileError."""
    prefix = f"{where}: {os.fspath(path)!r}"
    try:
        with zipfile.ZipFile(path) as zf:
            return read(_ZipReader(zf, prefix))
    except _Invalid as exc:
        raise ModelFileError(f"{prefix}: {exc}") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many kinds on a damaged file
        raise ModelFileError(f"{prefix} is damaged or truncated ({type(exc).__name__}: {exc})") from exc


# =============================================================================================
# Writing, atomically.


def _write_atomically(path, write) -> None:
    """Call write(binary file) on a new temporary file next to path, fsync it and rename it over
    path. On any failure the temporary file is removed and path is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temporary, flags, 0o666)  # the umask applies, as with open(path, "wb")
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:  # an existing file keeps its permissions, as when overwritten in place
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        except OSError:
            pass
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); best effort
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _write_zip(f, json_name, document: bytes, arrays: dict) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(json_name, date_time=_ZIP_DATE), document)
        for member, array in arrays.items():
            array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            with zf.open(info, "w", force_zip64=array.nbytes > 2 ** 30) as m:
                np.lib.format.write_array(m, array, allow_pickle=False)


def _check_format(format, where):
    if not isinstance(format, str) or format not in _SAVE_FORMATS:
        raise ValueError(f"{where}: format must be 'fastnn' (the safe format) or 'pickle' (the book's; "
                         f"unsafe to load from untrusted sources), got {format!r}")


def _check_allow_pickle(allow_pickle, where):
    if not isinstance(allow_pickle, (bool, np.bool_)):
        raise TypeError(f"{where}: allow_pickle must be True or False, got {allow_pickle!r}")


# =============================================================================================
# Whole models.


def save_model(model, path, *, format: str = "fastnn") -> None:
    """Write `model` (layers, loss, accuracy, optimizer and its state) to `path`, atomically.

    format="fastnn" (default): the safe zip format described in this module's docstring; a model
    holding an object the format does not know (a user's own layer class, say) raises ValueError
    before anything is written. format="pickle": the book's file (a deep copy of the model without
    its batch data and gradients, pickled); only for files you load yourself, since loading a
    pickle can execute code.
    """
    where = "Model.save"
    path = _checks.path(path, "path", where, expand=False)
    _check_format(format, where)
    if format == "pickle":
        _require_model(model, where)
        data = pickle.dumps(_book_copy(model))
        _write_atomically(path, lambda f: f.write(data))
        return
    document, arrays = _describe_model(model, where)
    _write_atomically(path, lambda f: _write_zip(f, _MODEL_JSON, document, arrays))


def _book_copy(model):
    """The book's Model.save before pickling: a deep copy without batch data and gradients, with
    the loss and accuracy accumulators reset."""
    model = copy.deepcopy(model)
    for name in ("loss", "accuracy"):
        obj = model.__dict__.get(name)
        if obj is not None:
            obj.new_pass()
    loss = model.__dict__.get("loss")
    if loss is not None:
        loss.__dict__.pop("dinputs", None)
    input_layer = model.__dict__.get("input_layer")
    if input_layer is not None:
        input_layer.__dict__.pop("output", None)
    for layer in model.layers:
        for name in ("inputs", "output", "dinputs", "dweights", "dbiases"):
            layer.__dict__.pop(name, None)
    return model


def load_model(path, *, allow_pickle: bool = False) -> Model:
    """Read a model written by save_model / Model.save; returns it finalized.

    The safe format is checked completely before anything is built (see the module docstring);
    a damaged, truncated, altered or foreign file raises ModelFileError (a ValueError).

    A pickle file is refused unless allow_pickle=True. **Unpickling can execute arbitrary code:
    only pass allow_pickle=True for files you wrote yourself or otherwise trust.**
    """
    where = "Model.load"
    path = _checks.path(path, "path", where, expand=False)
    _check_allow_pickle(allow_pickle, where)
    kind = _file_kind(path)
    if kind == "pickle":
        if not allow_pickle:
            _refuse_pickle(where, path, "fastnn.Model.load(path, allow_pickle=True)")
        with open(path, "rb") as f:
            model = pickle.load(f)
        if not isinstance(model, Model):
            raise ModelFileError(f"{where}: {os.fspath(path)!r} holds a pickled {type(model).__name__}, "
                                 f"not a fastnn.Model")
        return model
    if kind != "zip":
        raise ModelFileError(f"{where}: {os.fspath(path)!r} is not a fastnn model file (neither fastnn's "
                             f"zip format nor a pickle)")

    def read(reader: _ZipReader):
        description = reader.json(_MODEL_JSON, _PARAMETERS_JSON,
                                  "this is a parameters file (written by save_parameters): load it into "
                                  "a built, finalized model with model.load_parameters(path)")
        plan = _check_model_description(description)
        entries = [*plan["layers"], *(plan[k] for k in ("loss", "accuracy", "optimizer") if plan[k])]
        refs = [ref for entry in entries for ref in entry.arrays.values()]
        reader.check_members([_MODEL_JSON, *(ref.member for ref in refs)])
        arrays = {ref.member: reader.array(ref) for ref in refs}
        return plan, arrays

    plan, arrays = _read_zip(path, where, read)
    # Everything is checked: build. No constructor runs, so nothing is drawn from the RNG.
    model = Model()
    for entry in plan["layers"]:
        model.add(_build(entry, arrays))
    model.set(**{kind: _build(plan[kind], arrays) for kind in ("loss", "accuracy", "optimizer")
                 if plan[kind] is not None})
    for kind in ("loss", "accuracy"):
        if plan[kind] is not None:
            getattr(model, kind).new_pass()
    model.finalize()
    return model


def _build(entry: _Entry, arrays):
    obj = entry.spec.cls.__new__(entry.spec.cls)
    state = obj.__dict__
    for name, ref in entry.arrays.items():
        state[name] = arrays[ref.member]
    state.update(entry.attributes)
    return obj


# =============================================================================================
# Parameters only.


def save_parameters(model, path, *, format: str = "fastnn") -> None:
    """Write the (weights, biases) of every trainable layer of a finalized model to `path`,
    atomically: the safe zip format (``parameters.json`` with the class names, dtypes and shapes,
    and one .npy member per array) or, with format="pickle", the book's pickle of
    ``model.get_parameters()`` (unsafe to load from untrusted sources)."""
    where = "Model.save_parameters"
    path = _checks.path(path, "path", where, expand=False)
    _check_format(format, where)
    _require_model(model, where, finalized=True)
    parameters = model.get_parameters()
    if format == "pickle":
        data = pickle.dumps(parameters)
        _write_atomically(path, lambda f: f.write(data))
        return
    description = _header(PARAMETERS_FORMAT)
    entries, arrays = [], {}
    for i, (layer, pair) in enumerate(zip(model.trainable_layers, parameters)):
        weights, biases = pair
        entry = {"class": type(layer).__name__, "arrays": {}}
        for name, array in (("weights", weights), ("biases", biases)):
            if not isinstance(array, np.ndarray) or array.dtype.name not in _FLOAT_DTYPES or array.ndim == 0:
                raise ValueError(f"{where}: trainable layer {i} ({type(layer).__name__}) {name} must be a "
                                 f"float32 or float64 array, got {type(array).__name__}")
            member = _member(i, name)
            entry["arrays"][name] = {"member": member, "dtype": array.dtype.name, "shape": list(array.shape)}
            arrays[member] = array
        entries.append(entry)
    description["layers"] = entries
    document = json.dumps(description, indent=1, allow_nan=False).encode("utf-8")
    _write_atomically(path, lambda f: _write_zip(f, _PARAMETERS_JSON, document, arrays))


def load_parameters(model, path, *, allow_pickle: bool = False) -> None:
    """Read parameters written by save_parameters into `model`, which must already be built and
    finalized with the same trainable layers: same count, classes, shapes and dtypes (a clear
    ValueError otherwise, before any parameter is changed). The optimizer state is left alone.

    A pickle file (the book's format) is refused unless allow_pickle=True. **Unpickling can
    execute arbitrary code: only for files you trust.**
    """
    where = "Model.load_parameters"
    path = _checks.path(path, "path", where, expand=False)
    _check_allow_pickle(allow_pickle, where)
    _require_model(model, where, finalized=True, hint=" (the model must be built like the saved one)")
    kind = _file_kind(path)
    if kind == "pickle":
        if not allow_pickle:
            _refuse_pickle(where, path, "model.load_parameters(path, allow_pickle=True)")
        with open(path, "rb") as f:
            parameters = pickle.load(f)
        model.set_parameters(parameters)
        return
    if kind != "zip":
        raise ModelFileError(f"{where}: {os.fspath(path)!r} is not a fastnn parameters file (neither "
                             f"fastnn's zip format nor a pickle)")
    layers = model.trainable_layers
    current = model.get_parameters()

    def read(reader: _ZipReader):
        description = reader.json(_PARAMETERS_JSON, _MODEL_JSON,
                                  "this is a whole-model file (written by Model.save): load it with "
                                  "fastnn.Model.load(path)")
        _check_header(description, "parameters.json", PARAMETERS_FORMAT, ("layers",))
        entries = description["layers"]
        if not isinstance(entries, list):
            raise _Invalid(f"layers must be a list, got {_show(entries)}")
        if len(entries) != len(layers):
            raise _Invalid(f"the file holds parameters of {len(entries)} trainable layers, the model has "
                           f"{len(layers)}")
        refs = []
        for i, (entry, layer, pair) in enumerate(zip(entries, layers, current)):
            loc = f"layers[{i}]"
            _keys(entry, loc, ("class", "arrays"))
            if entry["class"] != type(layer).__name__:
                raise _Invalid(f"{loc} holds parameters of a {_show(entry['class'])}, the model's trainable "
                               f"layer {i} is a {type(layer).__name__}")
            _keys(entry["arrays"], f"{loc}.arrays", ("weights", "biases"))
            for name, now in zip(("weights", "biases"), pair):
                value = entry["arrays"][name]
                dtype_name = getattr(getattr(now, "dtype", None), "name", None)
                if dtype_name not in _FLOAT_DTYPES:
                    raise _Invalid(f"the model's trainable layer {i} has {name} that are not a float32 or "
                                   f"float64 array")
                _keys(value, f"{loc}.arrays.{name}", ("member", "dtype", "shape"))
                if value["dtype"] != dtype_name:
                    raise _Invalid(f"{loc}.arrays.{name} are {_show(value['dtype'])}, the model's layer {i} "
                                   f"is {dtype_name} (build the model with dtype={dtype_name!r} to match "
                                   f"the file, or the other way round)")
                declared = _shape(value["shape"], f"{loc}.arrays.{name}.shape")
                if declared != np.shape(now):
                    raise _Invalid(f"{loc}.arrays.{name} have shape {declared}, the model's trainable layer "
                                   f"{i} ({type(layer).__name__}) has {np.shape(now)}")
                refs.append(_array_ref(value, f"{loc}.arrays.{name}", _member(i, name), dtype_name, declared))
        reader.check_members([_PARAMETERS_JSON, *(ref.member for ref in refs)])
        return [reader.array(ref) for ref in refs]

    arrays = _read_zip(path, where, read)
    model.set_parameters(list(zip(arrays[0::2], arrays[1::2])))
