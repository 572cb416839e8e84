"""Saving and loading whole models and their parameters: the functions behind ``Model.save``,
``Model.load``, ``Model.save_parameters`` and ``Model.load_parameters``.

The safe format (the default) is a zip of a JSON description (``fastnn.io.codec``) and one
``.npy`` member per array (``fastnn.io.archive``); loading checks everything before it builds
anything and never runs code from the file. The book's pickle is written and read only on
explicit request: **unpickling can execute arbitrary code**. Writes are atomic. The file format
is described in docs/file-format.md.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
from typing import Any, cast

import numpy as np

from .._core import checks as _checks
from .._core.spec import declared
from . import codec
from .archive import (FLOAT_DTYPES as _FLOAT_DTYPES, Invalid, ModelFileError, ZipReader, file_kind, read_zip,
                      refuse_pickle, show, write_atomically, write_zip)

__all__ = ["save_model", "load_model", "save_parameters", "load_parameters"]

_SAVE_FORMATS = ("fastnn", "pickle")


def _check_format(format, where):
    if not isinstance(format, str) or format not in _SAVE_FORMATS:
        raise ValueError(f"{where}: format must be 'fastnn' (the safe format) or 'pickle' (the book's; "
                         f"unsafe to load from untrusted sources), got {format!r}")


def _check_allow_pickle(allow_pickle, where):
    if not isinstance(allow_pickle, (bool, np.bool_)):
        raise TypeError(f"{where}: allow_pickle must be True or False, got {allow_pickle!r}")


def _kind_or_unpickled(path, where, allow_pickle, how):
    """("pickle", the unpickled object) for a pickle file when allow_pickle (refused otherwise,
    saying `how` to load it), else (the file's kind, None)."""
    kind = file_kind(path)
    if kind != "pickle":
        return kind, None
    if not allow_pickle:
        refuse_pickle(where, path, how)
    with open(path, "rb") as f:
        return kind, pickle.load(f)


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
        codec.require_model(model, where)
        data = pickle.dumps(_book_copy(model))
        write_atomically(path, lambda f: f.write(data))
        return
    document, arrays = codec.describe_model(model, where)
    write_atomically(path, lambda f: write_zip(f, codec.MODEL_JSON, document, arrays))


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


def load_model(path, *, allow_pickle: bool = False):
    """Read a model written by save_model / Model.save; returns it finalized.

    The safe format is checked completely before anything is built (see the module docstring);
    a damaged, truncated, altered or foreign file raises ModelFileError (a ValueError).

    A pickle file is refused unless allow_pickle=True. **Unpickling can execute arbitrary code:
    only pass allow_pickle=True for files you wrote yourself or otherwise trust.**
    """
    where = "Model.load"
    path = _checks.path(path, "path", where, expand=False)
    _check_allow_pickle(allow_pickle, where)
    kind, model = _kind_or_unpickled(path, where, allow_pickle, "fastnn.Model.load(path, allow_pickle=True)")
    if kind == "pickle":
        if not isinstance(model, declared("model")[0].cls):
            raise ModelFileError(f"{where}: {os.fspath(path)!r} holds a pickled {type(model).__name__}, "
                                 f"not a fastnn.Model")
        return model
    if kind != "zip":
        raise ModelFileError(f"{where}: {os.fspath(path)!r} is not a fastnn model file (neither fastnn's "
                             f"zip format nor a pickle)")

    def read(reader: ZipReader):
        description = reader.json(codec.MODEL_JSON, codec.PARAMETERS_JSON,
                                  "this is a parameters file (written by save_parameters): load it into "
                                  "a built, finalized model with model.load_parameters(path)")
        plan = codec.check_model_description(description)
        entries = [*plan["layers"], *(plan[k] for k in ("loss", "accuracy", "optimizer") if plan[k])]
        refs = [ref for entry in entries for ref in entry.arrays.values()]
        reader.check_members([codec.MODEL_JSON, *(ref.member for ref in refs)])
        arrays = {ref.member: reader.array(ref) for ref in refs}
        return plan, arrays

    plan, arrays = read_zip(path, where, read)
    # Everything is checked: build. No constructor runs, so nothing is drawn from the RNG.
    model = declared("model")[0].cls()  # fastnn.Model: io sits below model.py, so it finds the class by its declaration
    for entry in plan["layers"]:
        model.add(_build(entry, arrays))
    model.set(**{kind: _build(plan[kind], arrays) for kind in ("loss", "accuracy", "optimizer")
                 if plan[kind] is not None})
    for kind in ("loss", "accuracy"):
        if plan[kind] is not None:
            getattr(model, kind).new_pass()
    model.finalize()
    return model


def _build(entry: codec.Entry, arrays):
    obj = cast(Any, entry.spec.cls).__new__(entry.spec.cls)  # no __init__: the state comes from the file
    state = obj.__dict__
    for name, ref in entry.arrays.items():
        state[name] = arrays[ref.member]
    state.update(entry.attributes)
    return obj


def save_parameters(model, path, *, format: str = "fastnn") -> None:
    """Write the (weights, biases) of every trainable layer of a finalized model to `path`,
    atomically: the safe zip format (``parameters.json`` with the class names, dtypes and shapes,
    and one .npy member per array) or, with format="pickle", the book's pickle of
    ``model.get_parameters()`` (unsafe to load from untrusted sources)."""
    where = "Model.save_parameters"
    path = _checks.path(path, "path", where, expand=False)
    _check_format(format, where)
    codec.require_model(model, where, finalized=True)
    parameters = model.get_parameters()
    if format == "pickle":
        data = pickle.dumps(parameters)
        write_atomically(path, lambda f: f.write(data))
        return
    description = codec.header(codec.PARAMETERS_FORMAT)
    entries, arrays = [], {}
    for i, (layer, pair) in enumerate(zip(model.trainable_layers, parameters)):
        weights, biases = pair
        entry: dict[str, Any] = {"class": type(layer).__name__, "arrays": {}}
        for name, array in (("weights", weights), ("biases", biases)):
            if not isinstance(array, np.ndarray) or array.dtype.name not in _FLOAT_DTYPES or array.ndim == 0:
                raise ValueError(f"{where}: trainable layer {i} ({type(layer).__name__}) {name} must be a "
                                 f"float32 or float64 array, got {type(array).__name__}")
            member = codec.member_name(i, name)
            entry["arrays"][name] = {"member": member, "dtype": array.dtype.name, "shape": list(array.shape)}
            arrays[member] = array
        entries.append(entry)
    description["layers"] = entries
    document = json.dumps(description, indent=1, allow_nan=False).encode("utf-8")
    write_atomically(path, lambda f: write_zip(f, codec.PARAMETERS_JSON, document, arrays))


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
    codec.require_model(model, where, finalized=True, hint=" (the model must be built like the saved one)")
    kind, parameters = _kind_or_unpickled(path, where, allow_pickle, "model.load_parameters(path, allow_pickle=True)")
    if kind == "pickle":
        model.set_parameters(parameters)
        return
    if kind != "zip":
        raise ModelFileError(f"{where}: {os.fspath(path)!r} is not a fastnn parameters file (neither "
                             f"fastnn's zip format nor a pickle)")
    layers = model.trainable_layers
    current = model.get_parameters()

    def read(reader: ZipReader):
        description = reader.json(codec.PARAMETERS_JSON, codec.MODEL_JSON,
                                  "this is a whole-model file (written by Model.save): load it with "
                                  "fastnn.Model.load(path)")
        codec.check_header(description, "parameters.json", codec.PARAMETERS_FORMAT, ("layers",))
        entries = description["layers"]
        if not isinstance(entries, list):
            raise Invalid(f"layers must be a list, got {show(entries)}")
        if len(entries) != len(layers):
            raise Invalid(f"the file holds parameters of {len(entries)} trainable layers, the model has "
                           f"{len(layers)}")
        refs = []
        for i, (entry, layer, pair) in enumerate(zip(entries, layers, current)):
            loc = f"layers[{i}]"
            codec.keys(entry, loc, ("class", "arrays"))
            if entry["class"] != type(layer).__name__:
                raise Invalid(f"{loc} holds parameters of a {show(entry['class'])}, the model's trainable "
                               f"layer {i} is a {type(layer).__name__}")
            codec.keys(entry["arrays"], f"{loc}.arrays", ("weights", "biases"))
            for name, now in zip(("weights", "biases"), pair):
                value = entry["arrays"][name]
                dtype_name = getattr(getattr(now, "dtype", None), "name", None)
                if dtype_name not in _FLOAT_DTYPES:
                    raise Invalid(f"the model's trainable layer {i} has {name} that are not a float32 or "
                                   f"float64 array")
                codec.keys(value, f"{loc}.arrays.{name}", ("member", "dtype", "shape"))
                if value["dtype"] != dtype_name:
                    raise Invalid(f"{loc}.arrays.{name} are {show(value['dtype'])}, the model's layer {i} "
                                   f"is {dtype_name} (build the model with dtype={dtype_name!r} to match "
                                   f"the file, or the other way round)")
                declared = codec.shape_of(value["shape"], f"{loc}.arrays.{name}.shape")
                if declared != np.shape(now):
                    raise Invalid(f"{loc}.arrays.{name} have shape {declared}, the model's trainable layer "
                                   f"{i} ({type(layer).__name__}) has {np.shape(now)}")
                refs.append(codec.array_ref(value, f"{loc}.arrays.{name}", codec.member_name(i, name), dtype_name, declared))
        reader.check_members([codec.PARAMETERS_JSON, *(ref.member for ref in refs)])
        return [reader.array(ref) for ref in refs]

    arrays = read_zip(path, where, read)
    model.set_parameters(list(zip(arrays[0::2], arrays[1::2])))
