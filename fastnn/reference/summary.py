"""Model.summary and Model.predict_classes for the reference Model (not in the book): the table
of fastnn's Model.summary, found here by running a zero sample through deep copies of the
layers. No argument checks."""
from __future__ import annotations

import copy

import numpy as np

from .conv import Layer_Conv2D
from .layers import Layer_Dense


def _copy(layer):
    twin = copy.copy(layer)
    twin.__dict__ = {k: copy.deepcopy(v) for k, v in vars(layer).items() if k not in ("prev", "next")}
    return twin


def output_shapes(layers, input_shape, dtype) -> list:
    """The shape of one sample after each layer."""
    x = np.zeros((1, *input_shape), dtype=dtype)
    shapes = []
    for layer in layers:
        twin = _copy(layer)
        twin.forward(x, training=False)
        x = twin.output
        shapes.append(tuple(x.shape[1:]))
    return shapes


def _accepts(layers, input_shape, dtype) -> bool:
    try:
        output_shapes(layers, input_shape, dtype)
        return True
    except (ValueError, TypeError, IndexError):
        return False


def summary(model, input_shape=None) -> str:
    """The summary table (see fastnn's Model.summary)."""
    layers = model.layers
    dtype = next((layer.weights.dtype for layer in layers if hasattr(layer, "weights")), np.float32)
    first = layers[0]
    if input_shape is not None:
        shape, origin = tuple(input_shape), "given"
    elif isinstance(first, Layer_Dense):
        shape, origin = (first.weights.shape[0],), "Layer_Dense's n_inputs"
    else:  # a first Layer_Conv2D: the smallest square image every layer takes
        side = next(s for s in range(1, 1025) if _accepts(layers, (first.in_channels, s, s), dtype))
        shape = (first.in_channels, side, side)
        origin = f"{type(first).__name__}'s in_channels, smallest square image that fits"
    shapes = output_shapes(layers, shape, dtype)
    table = [["#", "layer", "output shape", "parameters"]]
    trainable = running = 0
    for i, layer in enumerate(layers):
        count = sum(getattr(layer, n).size for n in ("weights", "biases") if hasattr(layer, n))
        running += sum(v.size for k, v in vars(layer).items() if k.startswith("running_"))
        trainable += count
        table.append([str(i), type(layer).__name__, str(shapes[i]), format(count, ",")])
    width = [max(len(row[c]) for row in table) for c in range(4)]
    text = [f"Model: {len(layers)} layers, input {shape} per sample ({origin})"]
    for row in table:
        text.append("  ".join([row[0].rjust(width[0]), row[1].ljust(width[1]), row[2].ljust(width[2]),
                               row[3].rjust(width[3])]))
    rule = "-" * len(text[1])
    text.insert(2, rule)
    text.append(rule)
    text.append(f"trainable parameters: {trainable:,}")
    if running:
        text.append(f"other state (running statistics): {running:,}")
    size = (trainable + running) * np.dtype(dtype).itemsize
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    shown = f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
    text.append(f"parameter memory: {shown} ({np.dtype(dtype)})")
    return "\n".join(text)
