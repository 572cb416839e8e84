"""The arrays distributed training moves: one flat gradient message per step, and rank 0's model
state broadcast when training starts.

The gradient message is one buffer holding every trainable layer's ``dweights`` and ``dbiases``,
then the protocol's status slots. The layers' gradient attributes *are* views into it: the
kernels reuse a buffer that has the right shape and dtype, so backward writes each gradient
straight into the message, the sum over the ranks lands in the arrays the optimizer reads, and a
step allocates nothing and copies nothing. (A layer that replaced its buffer anyway is copied
back into the message before the sum.)

What each piece of a layer does over the ranks:

- parameters (weights, biases): broadcast from rank 0 when train() starts; identical after.
- the optimizer's state on the layer (momentums, caches): broadcast from rank 0 at the start
  (created or dropped to match rank 0's); identical after.
- declared buffers (``Spec.buffers``, the running statistics of a layer with batch statistics):
  broadcast from rank 0 at the start, then local: each rank updates its own from its part of the
  batch, and rank 0's are the ones saved.
- gradients (dweights, dbiases): summed every step, each rank's weighted by its share of the batch.
"""
from __future__ import annotations

import numpy as np

from .._core.spec import declared, spec_of, state_name
from .protocol import SLOTS

GRADIENTS = (("weights", "dweights"), ("biases", "dbiases"))
_ALIGN = 64  # bytes: each gradient starts on a cache line


class GradientMessage:
    """The gradient message of a model's trainable layers (one dtype): ``data`` is what is summed
    over the ranks, ``gradients`` its gradient part, ``status`` its last SLOTS elements."""

    def __init__(self, layers, dtype) -> None:
        dtype = np.dtype(dtype)
        step = max(1, _ALIGN // dtype.itemsize)
        layout, offset = [], 0
        for layer in layers:
            for parameter, gradient in GRADIENTS:
                shape = np.shape(getattr(layer, parameter))
                layout.append((layer, gradient, offset, shape))
                offset += -(-int(np.prod(shape, dtype=np.int64)) // step) * step
        self.data = np.zeros(offset + SLOTS, dtype=dtype)
        self.gradients = self.data[:offset]
        self.status = self.data[offset:]
        self.views = [(layer, name, self.data[start:start + int(np.prod(shape, dtype=np.int64))].reshape(shape))
                      for layer, name, start, shape in layout]

    def attach(self) -> None:
        """Make the views the layers' gradient buffers (dweights, dbiases)."""
        for layer, name, view in self.views:
            layer.__dict__[name] = view

    def collect(self) -> None:
        """After a backward pass: a layer that stored its gradient in a new array (instead of the
        view it was given) has it copied into the message, and gets the view back."""
        for layer, name, view in self.views:
            current = layer.__dict__.get(name)
            if current is not view:
                np.copyto(view, current)
                layer.__dict__[name] = view

    def scale(self, share: float) -> None:
        """Gradients <- gradients * share (this rank's part of the step's samples)."""
        if share != 1:
            np.multiply(self.gradients, share, out=self.gradients)


def trainable_dtype(layers):
    """The one parameter dtype of the trainable layers, or None when they mix dtypes."""
    dtypes = {np.asarray(getattr(layer, name)).dtype for layer in layers for name, _ in GRADIENTS}
    if not dtypes:
        return np.dtype(np.float64)
    return dtypes.pop() if len(dtypes) == 1 else None


def state_names(layer, optimizer) -> list:
    """The arrays of `layer` that rank 0 hands to every rank when training starts: its
    parameters, the optimizer's state on it (those present) and its declared buffers."""
    names = [parameter for parameter, _ in GRADIENTS]
    spec = spec_of(optimizer)
    for suffix in (spec.layer_state if spec is not None else ()):
        names += [state_name(parameter, suffix) for parameter, _ in GRADIENTS]
    names = [name for name in names if name in layer.__dict__ or name in ("weights", "biases")]
    return names + buffer_names(layer)


def buffer_names(layer) -> list:
    """The names of a layer's declared buffers (``Spec.buffers``), such as running statistics."""
    spec = spec_of(layer)
    if spec is None or spec.buffers is None:
        return []
    saved = {name: getattr(layer, name) for name in spec.saved}
    dims = {name: getter(layer) for name, getter in spec.dims.items()}
    return list(spec.buffers(saved, dims))


def match_state(layers, names_per_layer) -> None:
    """Give each layer exactly the optimizer state arrays in `names_per_layer` (rank 0's): missing
    ones are created (zeros shaped like their parameter; the broadcast fills them), others are
    dropped, so that every rank's optimizer creates the same state at the same update."""
    suffixes = {suffix for spec in declared("optimizer") for suffix in spec.layer_state}
    candidates = [(state_name(parameter, suffix), parameter)
                  for parameter, _ in GRADIENTS for suffix in sorted(suffixes)]
    for layer, names in zip(layers, names_per_layer):
        state = layer.__dict__
        for name, parameter in candidates:
            if name in names and name not in state:
                state[name] = np.zeros_like(state[parameter])
            elif name not in names and name in state:
                del state[name]


def broadcast_state(comm, layers, names_per_layer, dtype) -> None:
    """Every rank's arrays `names_per_layer` <- rank 0's, in one message (written in place, so
    arrays a script holds, such as get_parameters()'s, see the new values)."""
    arrays = [getattr(layer, name) for layer, names in zip(layers, names_per_layer) for name in names]
    if not arrays:
        return
    if comm.rank == 0:
        message = np.concatenate([np.asarray(a, dtype=dtype).ravel() for a in arrays])
    else:
        message = np.empty(sum(np.size(a) for a in arrays), dtype=dtype)
    comm.broadcast(message)
    if comm.rank != 0:
        offset = 0
        for array in arrays:
            np.copyto(array, message[offset:offset + array.size].reshape(array.shape))
            offset += array.size
