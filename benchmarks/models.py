"""The configurations' networks as fastnn and fastnn.reference Models, and the state snapshots
that let every block of timed steps start from the same trained point."""
from __future__ import annotations

import numpy as np

import fastnn

import _book


def build_model(lib, config, seed: int = 0, dropout_mode: str = "fast"):
    """A finalized fastnn or fastnn.reference Model for `config` (weights from np.random.seed(seed))."""
    np.random.seed(seed)
    layers = []
    sizes = config.sizes
    for i in range(len(sizes) - 1):
        reg = dict(weight_regularizer_l2=config.l2, bias_regularizer_l2=config.l2) if (i == 0 and config.l2) else {}
        layers.append(lib.Layer_Dense(sizes[i], sizes[i + 1], **reg))
        if i < len(sizes) - 2:
            layers.append(lib.Activation_ReLU())
            if config.dropout:
                if lib is fastnn:
                    layers.append(lib.Layer_Dropout(config.dropout, mode=dropout_mode))
                else:
                    layers.append(lib.Layer_Dropout(config.dropout))
    layers.append(lib.Activation_Softmax())
    return _book.build_model(lib, layers, loss=lib.Loss_CategoricalCrossentropy(),
                             optimizer=lib.Optimizer_Adam(learning_rate=config.learning_rate, decay=config.decay),
                             accuracy=lib.Accuracy_Categorical())


def dense_shapes(config):
    """(fan_in, fan_out) of each Dense layer of `config`."""
    return [(config.sizes[i], config.sizes[i + 1]) for i in range(len(config.sizes) - 1)]


_STATE_NAMES = ("weights", "biases", "weight_momentums", "bias_momentums", "weight_cache", "bias_cache")


def restorer(layers, optimizer):
    """A function putting the layers' parameters and optimizer state (and the optimizer's
    iteration count and learning rate) back to what they are now. Arrays are restored in place,
    so the kernels' buffers and the objects' identities do not change."""
    saved = [(layer, {name: getattr(layer, name).copy() for name in _STATE_NAMES
                      if isinstance(getattr(layer, name, None), np.ndarray)}) for layer in layers]
    counters = (optimizer.iterations, optimizer.current_learning_rate)

    def restore():
        for layer, arrays in saved:
            for name, array in arrays.items():
                np.copyto(getattr(layer, name), array)
        optimizer.iterations, optimizer.current_learning_rate = counters
    return restore


def prepare(step, snapshot, pretrain: int):
    """Run `pretrain` steps (at least one, which creates the optimizer state), then take the
    state snapshot: ``step.reset()`` returns the peer to it. The runner resets before every
    block of steps, so every block trains from the same point: a peer that runs more steps than
    another (because it is faster) does not drift into another regime (Adam's momentums decay
    into float32 denormals after several hundred steps, which slows every peer's update)."""
    for _ in range(max(1, pretrain)):
        step()
    step.reset = snapshot()
    return step
