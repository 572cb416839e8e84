"""What the ranks compare before a distributed call does any work: the model's architecture, the
call's settings and, when every rank is meant to pass the same data, a fingerprint of that data.

A mismatch would otherwise make the ranks run different sequences of collectives (a hang, or
sums of arrays that do not correspond), or silently train on data that differs per rank. Every
rank gathers every rank's description and runs the same comparison, so every rank raises the
same error without another message.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .._core.spec import spec_of
from .buffers import GRADIENTS

_FINGERPRINT_ROWS = 64


def architecture(model) -> list:
    """Per layer: its class, its declared scalar attributes (regularizers, dropout rate...) and
    the shapes and dtypes of its parameters; then the loss, accuracy and optimizer classes."""
    described: list[tuple] = []
    for layer in model.layers:
        spec = spec_of(layer)
        saved = {name: getattr(layer, name, None) for name in spec.saved} if spec is not None else {}
        arrays = [(name, np.shape(getattr(layer, name)), str(np.asarray(getattr(layer, name)).dtype))
                  for name, _ in GRADIENTS if hasattr(layer, "weights")]
        described.append((type(layer).__name__, _plain(saved), arrays))
    for role in ("loss", "accuracy", "optimizer"):
        described.append((role, type(model.__dict__.get(role)).__name__))
    return described


def fingerprint(*arrays) -> tuple:
    """Shapes, dtypes and a hash of up to 64 rows spread over each array (first and last
    included): cheap, and enough to catch ranks that loaded, split or shuffled their data
    differently."""
    digest = hashlib.blake2b(digest_size=16)
    shapes = []
    for array in arrays:
        array = np.asarray(array)
        shapes.append((array.shape, str(array.dtype)))
        if len(array):
            rows = np.unique(np.linspace(0, len(array) - 1, min(len(array), _FINGERPRINT_ROWS)).astype(np.int64))
            digest.update(np.ascontiguousarray(array[rows]).tobytes())
    return tuple(shapes), digest.hexdigest()


def parameters_fingerprint(model) -> str:
    """A hash of every trainable layer's parameters (ranks evaluating one model must hold the same)."""
    digest = hashlib.blake2b(digest_size=16)
    for layer in model.trainable_layers:
        for name, _ in GRADIENTS:
            digest.update(np.ascontiguousarray(getattr(layer, name)).tobytes())
    return digest.hexdigest()


# What each key of a description is, for the error message.
_WHAT = {
    "mode": "the distributed mode",
    "settings": "the call's arguments (epochs, batch_size, shuffle, whether validation_data is given)",
    "model": "the model (layer classes, their attributes, parameter shapes and dtypes, the loss, accuracy "
             "and optimizer classes); every rank must build the same model",
    "data": "the data: with distributed=True every rank must pass the same X and y (use "
            "distributed='sharded' when each rank passes its own part)",
    "validation": "the validation data: with distributed=True every rank must pass the same validation_data",
    "parameters": "the parameters: the ranks hold different weights (train with distributed=True, or load "
                  "the same file, on every rank)",
}


def disagreement(where: str, descriptions: list) -> ValueError | None:
    """A ValueError naming the first thing a rank describes differently from rank 0, or None."""
    first = descriptions[0]
    for key in first:
        for rank, other in enumerate(descriptions[1:], 1):
            if other.get(key) != first[key]:
                return ValueError(f"{where}: the ranks disagree on {_WHAT.get(key, key)}: rank 0 has "
                                  f"{_short(first[key])}, rank {rank} has {_short(other.get(key))}")
    return None


def _plain(values: dict) -> dict:
    return {name: value.item() if isinstance(value, np.generic) else value for name, value in values.items()}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."
