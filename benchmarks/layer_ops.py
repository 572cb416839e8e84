"""Per-op groups of the layers beyond the book's dense path, float32, merged into ops.OP_GROUPS:
BatchNorm (training forward+backward, inference forward) on (N, F) and NCHW data, global average
pooling, convolutions with padding="same" (odd and even kernels) and padded max pooling.

Peers: fastnn (the public methods), reference (fastnn.reference, plain NumPy), torch (the same
module or functional call, forward and autograd backward) where torch has the operation.
"""
from __future__ import annotations

import numpy as np

import fastnn
import fastnn.reference as ref

from data import DTYPE
from torch_peer import torch


def _arr(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(DTYPE)


def _layer_step(make, shape, training=True, backward=True):
    """forward (and backward, with a fixed gradient) of make() on one batch of `shape`."""
    def factory():
        np.random.seed(0)
        layer = make()
        x = _arr(shape, 1)
        layer.forward(x, training)
        g = _arr(np.shape(layer.output), 2)

        def op():
            layer.forward(x, training)
            if backward:
                layer.backward(g)
        return op
    return factory


def _torch_step(make, shape, training=True, backward=True):
    """The same with a torch module (train() or eval()) or function, autograd for backward."""
    def factory():
        module = make()
        if isinstance(module, torch.nn.Module):
            module.train(training)
        x = torch.from_numpy(_arr(shape, 1)).requires_grad_(backward)
        with torch.no_grad():
            g = torch.from_numpy(_arr(tuple(module(x).shape), 2))

        def op():
            if not backward:
                with torch.no_grad():
                    return module(x)
            x.grad = None
            if isinstance(module, torch.nn.Module):
                module.zero_grad()
            module(x).backward(g)
        return op
    return factory


def layer_op_groups(add) -> None:
    """Adds the groups through ops' add(group, **peers) (a peer of None is left out)."""
    has_torch = torch is not None
    F = torch.nn.functional if has_torch else None
    for shape in ((256, 1024), (64, 32, 28, 28)):
        s, n = "x".join(map(str, shape)), shape[1]
        torch_bn = (lambda n=n, d=len(shape): (torch.nn.BatchNorm1d if d == 2 else torch.nn.BatchNorm2d)(n))
        add(f"batchnorm fwd+bwd {s}",
            fastnn=_layer_step(lambda n=n: fastnn.Layer_BatchNorm(n), shape),
            reference=_layer_step(lambda n=n: ref.Layer_BatchNorm(n), shape),
            torch=_torch_step(torch_bn, shape) if has_torch else None)
        add(f"batchnorm inference forward {s}",
            fastnn=_layer_step(lambda n=n: fastnn.Layer_BatchNorm(n), shape, False, False),
            reference=_layer_step(lambda n=n: ref.Layer_BatchNorm(n), shape, False, False),
            torch=_torch_step(torch_bn, shape, False, False) if has_torch else None)
    shape = (128, 64, 14, 14)
    add("global average pool fwd+bwd 128x64x14x14",
        fastnn=_layer_step(fastnn.Layer_GlobalAveragePool2D, shape),
        reference=_layer_step(ref.Layer_GlobalAveragePool2D, shape),
        torch=_torch_step(lambda: (lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1)), shape) if has_torch else None)
    for k in (3, 4):
        add(f"conv same k{k} fwd+bwd 32x16x28x28 -> 32",
            fastnn=_layer_step(lambda k=k: fastnn.Layer_Conv2D(16, 32, k, padding="same"), (32, 16, 28, 28)),
            reference=_layer_step(lambda k=k: ref.Layer_Conv2D(16, 32, k, padding="same"), (32, 16, 28, 28)),
            torch=_torch_step(lambda k=k: torch.nn.Conv2d(16, 32, k, padding="same"), (32, 16, 28, 28))
            if has_torch else None)
    shape = (64, 16, 28, 28)
    add("maxpool 3x3/1 padding 1 fwd+bwd 64x16x28x28",
        fastnn=_layer_step(lambda: fastnn.Layer_MaxPool2D(3, 1, 1), shape),
        reference=_layer_step(lambda: ref.Layer_MaxPool2D(3, 1, 1), shape),
        torch=_torch_step(lambda: torch.nn.MaxPool2d(3, 1, 1), shape) if has_torch else None)
    add("maxpool 2x2 padding same fwd+bwd 64x16x28x28",
        fastnn=_layer_step(lambda: fastnn.Layer_MaxPool2D(2, padding="same"), shape),
        reference=_layer_step(lambda: ref.Layer_MaxPool2D(2, padding="same"), shape))
