"""Model.summary: each layer with its output shape and parameter count, and the totals, found
before any training from an input shape (given, or taken from the first layer).

The shapes come from one inference pass of a zero batch of one sample through scratch copies of
the layers: each copy shares the layer's declared parameters and buffers (an inference forward
only reads them) and none of its other arrays, so the kernels give the copy buffers of its own and
the model's layers, buffers and NumPy's RNG are left exactly as they were. (An undeclared layer's
copy gets copies of all its arrays.)
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ._core import checks as _checks
from ._core.config import default_dtype
from ._core.spec import spec_of

__all__ = ["summary", "SummaryText"]

_LARGEST_SIDE = 1024      # the largest square image tried when the input size must be found


class SummaryText(str):
    """The summary table: a str that also shows as the table at an interactive prompt."""

    def __repr__(self) -> str:
        return str(self)


def _declared_arrays(layer):
    """(trainable parameter names, other state names) of a declared layer, or None."""
    spec = spec_of(layer)
    if spec is None:
        return None
    attributes = {name: getattr(layer, name) for name in spec.saved}
    dims = {name: getter(layer) for name, getter in spec.dims.items()}
    parameters = list(spec.parameters(attributes, dims)) if spec.parameters is not None else []
    buffers = list(spec.buffers(attributes, dims)) if spec.buffers is not None else []
    return parameters, buffers


def _scratch(layer):
    """A copy of `layer` that an inference forward may run on without touching the layer."""
    declared = _declared_arrays(layer)
    keep = set() if declared is None else set(declared[0]) | set(declared[1])
    state = {}
    for name, value in vars(layer).items():
        if name in ("prev", "next"):
            continue
        if isinstance(value, np.ndarray):
            if declared is None:
                state[name] = np.array(value, copy=True)
            elif name in keep:
                state[name] = value
        else:
            state[name] = value
    scratch = copy.copy(layer)
    scratch.__dict__ = state
    return scratch


def _counts(layer) -> tuple[int, int]:
    """(trainable parameters, other state values) of a layer."""
    declared = _declared_arrays(layer)
    if declared is None:
        names = [n for n in ("weights", "biases") if isinstance(getattr(layer, n, None), np.ndarray)]
        return sum(getattr(layer, n).size for n in names), 0
    return (sum(np.size(getattr(layer, n)) for n in declared[0]), sum(np.size(getattr(layer, n)) for n in declared[1]))


def _dtype(layers):
    for layer in layers:
        weights = getattr(layer, "weights", None)
        if isinstance(weights, np.ndarray) and weights.dtype in (np.float32, np.float64):
            return weights.dtype
    return default_dtype()


def _shapes(layers, input_shape, dtype):
    """The per-sample output shape of every layer for samples of `input_shape`; a ValueError
    naming the first layer that refuses its input."""
    x = np.zeros((1,) + tuple(input_shape), dtype)
    shapes = []
    for i, layer in enumerate(layers):
        scratch = _scratch(layer)
        try:
            scratch.forward(x, training=False)
            x = scratch.output
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ValueError(f"Model.summary: layers[{i}] ({type(layer).__name__}) does not take samples of shape "
                             f"{tuple(x.shape[1:])}: {exc}") from None
        shapes.append(tuple(np.shape(x)[1:]))
    return shapes


def _fits(layers, input_shape, dtype) -> bool:
    try:
        _shapes(layers, input_shape, dtype)
    except ValueError:
        return False
    return True


def _input_shape(layers, dtype) -> tuple[tuple, str]:
    """(the input shape per sample, how it was found) from the first layer: a Dense's n_inputs,
    or a Conv2D's in_channels with the smallest square image the whole model accepts."""
    first = layers[0]
    spec = spec_of(first)
    name = type(first).__name__
    if spec is not None and "n_inputs" in spec.dims:
        return (spec.dims["n_inputs"](first),), f"{name}'s n_inputs"
    channels = getattr(first, "in_channels", None)
    if spec is not None and isinstance(channels, int):
        for side in range(1, _LARGEST_SIDE + 1):
            if _fits(layers, (channels, side, side), dtype):
                if _fits(layers, (channels, 2 * side + 7, 2 * side + 7), dtype):
                    break  # any size fits: nothing in the model fixes it
                return (channels, side, side), f"{name}'s in_channels, smallest square image that fits"
        raise ValueError(f"Model.summary: the image size of the first layer, {name}, is not fixed by the layers "
                         f"after it; pass input_shape=(channels, height, width)")
    raise ValueError(f"Model.summary: the first layer, {name}, does not give the input shape; pass input_shape="
                     f"(the shape of one sample, e.g. (n_features,) or (channels, height, width))")


def _checked_shape(input_shape) -> tuple:
    where = "Model.summary"
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise _checks.fail(where, "input_shape", "the shape of one sample, a tuple of positive ints",
                           _checks.describe(input_shape), TypeError)
    return tuple(_checks.positive_int(side, f"input_shape[{i}]", where) for i, side in enumerate(input_shape))


def summary(model, input_shape=None) -> SummaryText:
    """The summary table of `model`'s layers for samples of `input_shape` (see Model.summary)."""
    layers = list(model.layers)
    if not layers:
        raise ValueError("Model.summary: the model has no layers; add() some first")
    dtype = _dtype(layers)
    if input_shape is None:
        shape, origin = _input_shape(layers, dtype)
    else:
        shape, origin = _checked_shape(input_shape), "given"
    shapes = _shapes(layers, shape, dtype)
    rows = [("#", "layer", "output shape", "parameters")]
    trainable = other = 0
    for i, (layer, out) in enumerate(zip(layers, shapes)):
        count, state = _counts(layer)
        trainable += count
        other += state
        rows.append((str(i), type(layer).__name__, str(out), f"{count:,}"))
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    lines = [f"Model: {len(layers)} layers, input {shape} per sample ({origin})"]
    for j, row in enumerate(rows):
        lines.append(f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]:>{widths[3]}}")
        if j == 0:
            lines.append("-" * len(lines[-1]))
    lines.append("-" * len(lines[1]))
    lines.append(f"trainable parameters: {trainable:,}")
    if other:
        lines.append(f"other state (running statistics): {other:,}")
    lines.append(f"parameter memory: {_size((trainable + other) * np.dtype(dtype).itemsize)} ({np.dtype(dtype)})")
    return SummaryText("\n".join(lines))


def _size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    exponent = min(int(math.log(n_bytes, 1024)), 3)
    return f"{n_bytes / 1024 ** exponent:.1f} {('B', 'KiB', 'MiB', 'GiB')[exponent]}"
