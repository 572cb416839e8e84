"""The description of a model in its file, generic over the declarations.

Each object is described by its class name (which must name a declared, saveable class of the
expected kind: the allow-list), its ``saved`` scalar attributes (checked by the declared
constraints), and, for a trainable layer, its sizes (``dims``), dtype and arrays: the declared
parameters and buffers and any optimizer state on it (named ``state_name(parameter, suffix)``
for the suffixes the declared optimizers keep). Saving runs the same checks as loading, so
fastnn never writes a file it would refuse. Objects are rebuilt with ``cls.__new__(cls)`` and
their attributes: no constructor runs, nothing is drawn from NumPy's random generator.
"""
from __future__ import annotations

import json
from typing import Any
from dataclasses import dataclass, field

import numpy as np

from .._core.constraints import MAX_SIZE, SIZE, Int
from .._core.spec import Spec, declared, spec_of, state_name
from .._version import __version__ as _fastnn_version
from .archive import FLOAT_DTYPES as _FLOAT_DTYPES, ArrayRef, Invalid, parse_json, show

MODEL_FORMAT = "fastnn.model"
PARAMETERS_FORMAT = "fastnn.parameters"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
PARAMETERS_JSON = "parameters.json"
_MAX_NDIM = 32
_DIMENSION = Int(0, MAX_SIZE)  # an array's extent along one axis

# Scalars in JSON. Python bool/int/float/str/None are stored as themselves (JSON keeps int and
# float apart, and float reprs round-trip exactly). NumPy scalars (np.std gives Accuracy_Regression
# its precision as one) are stored as {"numpy": dtype, "value": number} so they come back with
# their type: a float64 scalar and a Python float do not promote alike against float32 arrays.
_NUMPY_SCALARS = {"float16": np.float16, "float32": np.float32, "float64": np.float64,
                  "int32": np.int32, "int64": np.int64, "bool": np.bool_}


def _constraint_check(constraint, value, where):
    """A declared constraint applied to a file's value; its message located at `where`."""
    try:
        return constraint(value, where)  # "layers[2].attributes.rate must be ..., got ..."
    except (TypeError, ValueError) as exc:
        raise Invalid(str(exc)) from None


def _size(value, where):
    return _constraint_check(SIZE, value, where)


def _dimension(value, where):
    return _constraint_check(_DIMENSION, value, where)


def _optimizer_state() -> dict[str, tuple[str, tuple[str, ...]]]:
    """{state attribute: (its parameter, the other attributes of its group)} for the state the
    declared optimizers keep on a layer: weight_cache -> ("weights", ("weight_cache", "bias_cache"))."""
    state = {}
    for spec in declared("optimizer"):
        for suffix in spec.layer_state:
            group = tuple(state_name(p, suffix) for p in ("weights", "biases"))
            for parameter, name in zip(("weights", "biases"), group):
                state[name] = (parameter, group)
    return state


def _encode_scalar(value, where):
    if value is None or isinstance(value, (bool, int, float, str)) and type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.generic) and value.dtype.name in _NUMPY_SCALARS:
        return {"numpy": value.dtype.name, "value": value.item()}
    raise Invalid(f"{where} must be a number, bool, string or None, got {type(value).__name__} {show(value)}")


def _decode_scalar(value, where):
    if isinstance(value, dict):
        keys(value, where, {"numpy", "value"})
        kind, number = value["numpy"], value["value"]
        if not isinstance(kind, str) or kind not in _NUMPY_SCALARS:
            raise Invalid(f"{where}.numpy must be one of {', '.join(_NUMPY_SCALARS)}, got {show(kind)}")
        expected = {"bool": (bool,), "int32": (int,), "int64": (int,)}.get(kind, (int, float))
        if isinstance(number, bool) != (kind == "bool") or not isinstance(number, expected):
            raise Invalid(f"{where}.value must be a {kind} number, got {show(number)}")
        try:
            scalar = _NUMPY_SCALARS[kind](number)
        except (OverflowError, ValueError) as exc:
            raise Invalid(f"{where}.value does not fit {kind}: {exc}") from None
        if kind != "bool" and scalar.item() != number:
            raise Invalid(f"{where}.value {number!r} is not exactly representable as {kind}")
        return scalar
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise Invalid(f"{where} must be a number, bool, string, null or a NumPy scalar object, got {show(value)}")


def keys(obj, where, required, optional=()):
    if not isinstance(obj, dict):
        raise Invalid(f"{where} must be a JSON object, got {show(obj)}")
    missing = [k for k in required if k not in obj]
    unexpected = [k for k in obj if k not in required and k not in optional]
    if missing:
        raise Invalid(f"{where} lacks {', '.join(map(repr, missing))}")
    if unexpected:
        raise Invalid(f"{where} has unexpected {', '.join(map(repr, unexpected))}")


def _spec_named(name, where, kind):
    """The declaration a file's "class" names: a declared, saveable class of this kind."""
    if not isinstance(name, str):
        raise Invalid(f"{where}.class must be a class name (a string), got {show(name)}")
    allowed = {spec.name: spec for spec in declared(saveable=True)}
    spec = allowed.get(name)
    if spec is None:
        raise Invalid(f"{where}.class is {show(name)}, which is not a class the safe format allows "
                      f"(allowed: {', '.join(allowed)})")
    if spec.kind != kind:
        raise Invalid(f"{where}.class is {name!r}, a {spec.kind}, where a {kind} is expected")
    return spec


def shape_of(value, where):
    if not isinstance(value, list) or len(value) > _MAX_NDIM:
        raise Invalid(f"{where} must be a list of at most {_MAX_NDIM} sizes, got {show(value)}")
    return tuple(_dimension(v, f"{where}[{i}]") for i, v in enumerate(value))


def array_ref(value, where, member, dtype_name, shape):
    """Check one {"member", "dtype", "shape"} entry against what the layer implies."""
    keys(value, where, ("member", "dtype", "shape"))
    if value["member"] != member:
        raise Invalid(f"{where}.member must be {member!r}, got {show(value['member'])}")
    if value["dtype"] != dtype_name:
        raise Invalid(f"{where}.dtype must be {dtype_name!r} (the layer's dtype), got {show(value['dtype'])}")
    declared = shape_of(value["shape"], f"{where}.shape")
    if shape is not None and declared != tuple(shape):
        raise Invalid(f"{where}.shape must be {list(shape)}, got {list(declared)}")
    return ArrayRef(member, _FLOAT_DTYPES[dtype_name], declared)


def member_name(index, name):
    return f"arrays/layers/{index}/{name}.npy"


@dataclass
class Entry:
    """One object to build: its spec, its decoded attributes and its arrays by attribute name."""
    spec: Spec
    attributes: dict
    dims: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)   # attribute name -> ArrayRef


def header(format_name):
    return {"format": format_name, "version": FORMAT_VERSION, "fastnn_version": _fastnn_version}


def check_header(description, where, format_name, body_keys):
    keys(description, where, ("format", "version", "fastnn_version", *body_keys))
    kind = description["format"]
    if kind != format_name:
        other = {MODEL_FORMAT: "a whole-model file (load it with fastnn.Model.load)",
                 PARAMETERS_FORMAT: "a parameters file (load it with model.load_parameters)"
                 }.get(kind) if isinstance(kind, str) else None
        raise Invalid(f"format is {show(kind)}, expected {format_name!r}" + (f": this is {other}" if other else ""))
    version = description["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise Invalid(f"version must be an int, got {show(version)}")
    if version != FORMAT_VERSION:
        newer = " (written by a newer fastnn; upgrade fastnn to read it)" if version > FORMAT_VERSION else ""
        raise Invalid(f"format version {version} is not supported; this fastnn reads version "
                       f"{FORMAT_VERSION}{newer}")
    if not isinstance(description["fastnn_version"], str):
        raise Invalid(f"fastnn_version must be a string, got {show(description['fastnn_version'])}")


def _has_arrays(spec: Spec) -> bool:
    return spec.parameters is not None or spec.buffers is not None


def _array_shapes(spec: Spec, attributes: dict, dims: dict) -> dict:
    """The arrays a layer always has: its declared parameters and buffers, by name."""
    shapes = dict(spec.parameters(attributes, dims)) if spec.parameters is not None else {}
    if spec.buffers is not None:
        shapes.update(spec.buffers(attributes, dims))
    return shapes


def _object_entry(value, where, kind, layer_index=None) -> Entry:
    """Validate one {"class", "attributes"[, "dims", "dtype", "arrays"]} entry."""
    if not isinstance(value, dict) or "class" not in value:
        raise Invalid(f"{where} must be a JSON object with a 'class', got {show(value)}")
    spec = _spec_named(value["class"], where, kind)
    extra = ("dims", "dtype", "arrays") if _has_arrays(spec) else ()
    keys(value, where, ("class", "attributes", *extra))
    raw = value["attributes"]
    keys(raw, f"{where}.attributes", tuple(spec.saved))
    attributes = {}
    for name, constraint in spec.saved.items():
        loc = f"{where}.attributes.{name}"
        attributes[name] = _constraint_check(constraint, _decode_scalar(raw[name], loc), loc)
    entry = Entry(spec, attributes)
    if not _has_arrays(spec):
        return entry
    keys(value["dims"], f"{where}.dims", tuple(spec.dims))
    dims = {name: _size(value["dims"][name], f"{where}.dims.{name}") for name in spec.dims}
    dtype_name = value["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in _FLOAT_DTYPES:
        raise Invalid(f"{where}.dtype must be 'float32' or 'float64', got {show(dtype_name)}")
    shapes = _array_shapes(spec, attributes, dims)
    optimizer_state = _optimizer_state() if spec.trainable else {}
    arrays = value["arrays"]
    keys(arrays, f"{where}.arrays", tuple(shapes), tuple(optimizer_state))
    for name in arrays:
        if name in optimizer_state:
            missing = [other for other in optimizer_state[name][1] if other not in arrays]
            if missing:
                raise Invalid(f"{where}.arrays has {name!r} without {missing[0]!r} (optimizer state comes "
                              f"in pairs)")
    for name in arrays:
        shape = shapes[name] if name in shapes else shapes[optimizer_state[name][0]]
        entry.arrays[name] = array_ref(arrays[name], f"{where}.arrays.{name}", member_name(layer_index, name),
                                        dtype_name, shape)
    entry.dims = dims
    return entry


def check_model_description(description) -> dict:
    """Validate a model.json document; returns {"layers": [...], "loss": ..., ...} of Entry."""
    check_header(description, "model.json", MODEL_FORMAT, ("layers", "loss", "accuracy", "optimizer"))
    layers = description["layers"]
    if not isinstance(layers, list) or not layers:
        raise Invalid(f"layers must be a non-empty list, got {show(layers)}")
    plan: dict[str, Any] = {"layers": [_object_entry(v, f"layers[{i}]", "layer", i) for i, v in enumerate(layers)]}
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
                raise Invalid(f"layers[{i}] ({spec.name}) takes {n_in} input features but layers[{source}] "
                               f"gives {features}")
            features, source = n_out, i
        elif not spec.keeps_features:
            features = None
    return plan


def _spec_of(obj, where, kind) -> Spec:
    spec = spec_of(obj)
    if spec is None or not spec.saveable or spec.kind != kind:
        names = ", ".join(s.name for s in declared(saveable=True))
        raise Invalid(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which the safe format "
                      f"cannot describe (it stores only fastnn's own classes: {names}); "
                      f"save with format='pickle' instead")
    return spec


def _describe_object(obj, where, kind, layer_index=None, arrays_out=None) -> dict:
    spec = _spec_of(obj, where, kind)
    state = obj.__dict__
    attributes = {}
    for name, constraint in spec.saved.items():
        if name not in state:
            raise Invalid(f"{where} ({spec.name}) has no attribute {name!r}")
        value = _constraint_check(constraint, state[name], f"{where}.{name}")
        attributes[name] = _encode_scalar(value, f"{where}.{name}")
    entry = {"class": spec.name, "attributes": attributes}
    if not _has_arrays(spec):
        return entry
    try:
        dims = {name: _size(int(get(obj)), f"{where}.{name}") for name, get in spec.dims.items()}
    except (AttributeError, IndexError, TypeError) as exc:
        raise Invalid(f"{where} ({spec.name}) has parameters of an unexpected form: {exc}") from None
    shapes = _array_shapes(spec, {k: state[k] for k in spec.saved}, dims)
    first = next(iter(shapes))  # the dtype of the first declared array is the layer's
    like = state.get(first)
    if not isinstance(like, np.ndarray) or like.dtype.name not in _FLOAT_DTYPES:
        raise Invalid(f"{where}.{first} must be a float32 or float64 array, got {show(type(like).__name__)}")
    dtype_name = like.dtype.name
    optimizer_state = _optimizer_state() if spec.trainable else {}
    arrays = {}
    for name in (*shapes, *optimizer_state):
        if name not in state:
            if name in shapes:
                raise Invalid(f"{where} ({spec.name}) has no {name!r}")
            continue
        array = state[name]
        owner = name if name in shapes else optimizer_state[name][0]
        shape = shapes[owner]
        if not isinstance(array, np.ndarray) or array.dtype.name != dtype_name or array.shape != tuple(shape):
            raise Invalid(f"{where}.{name} must be a {dtype_name} array of shape {tuple(shape)} (like the "
                          f"layer's {owner}), got {type(array).__name__}"
                          + (f" of dtype {array.dtype} and shape {array.shape}" if isinstance(array, np.ndarray)
                             else ""))
        member = member_name(layer_index, name)
        arrays[name] = {"member": member, "dtype": dtype_name, "shape": list(array.shape)}
        arrays_out[member] = array
    entry.update(dims=dims, dtype=dtype_name, arrays=arrays)
    return entry


def require_model(model, where: str, *, finalized: bool = False, hint: str = "") -> None:
    """TypeError unless `model` is a fastnn.Model (the declared model class); with finalized=True,
    ValueError unless finalize() has built its trainable_layers (`hint` adds to that message)."""
    model_classes = tuple(spec.cls for spec in declared("model"))
    if not isinstance(model, model_classes):
        raise TypeError(f"{where}: expected a fastnn.Model, got {type(model).__name__}")
    if finalized and "trainable_layers" not in model.__dict__:
        raise ValueError(f"{where}: call model.finalize() first{hint}")


def describe_model(model, where):
    """(model.json document, {member: array}) for a model; ValueError when it cannot be saved."""
    require_model(model, where)
    layers = model.__dict__.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"{where}: the model has no layers; nothing to save")
    arrays = {}
    try:
        description = header(MODEL_FORMAT)
        description["layers"] = [_describe_object(layer, f"layers[{i}]", "layer", i, arrays)
                                 for i, layer in enumerate(layers)]
        for kind in ("loss", "accuracy", "optimizer"):
            obj = model.__dict__.get(kind)
            description[kind] = None if obj is None else _describe_object(obj, f"model.{kind}", kind)
        document = json.dumps(description, indent=1, allow_nan=False).encode("utf-8")
        # What we write must be what we read: run the loader's checks on the document.
        check_model_description(parse_json(document))
    except Invalid as exc:
        raise ValueError(f"{where}: cannot save this model in the safe format: {exc}") from None
    return document, arrays
