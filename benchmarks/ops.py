"""Per-op groups, float32. OP_GROUPS: {group: {peer: factory}}; factory() -> zero-argument callable
running the op once. Peers: fastnn (public methods), reference, torch (where one eager call does
the same), gemm-floor (the op's GEMMs alone, for dense).
"""
from __future__ import annotations

import numpy as np

import fastnn
import fastnn.reference as ref
from fastnn.backend import blas

from cases import CASES
from data import DTYPE
from layer_ops import layer_op_groups
from fastnn._core.spec import declared
from torch_peer import torch, torch_adam_kind


def _arr(shape, seed, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(DTYPE)


def _dense_layer(lib, n_in, n_out):
    np.random.seed(0)
    return lib.Layer_Dense(n_in, n_out)


def _op_dense_forward(lib, n, n_in, n_out):
    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        x = _arr((n, n_in), 1)
        return lambda: layer.forward(x)
    return factory


def _op_dense_forward_torch(n, n_in, n_out):
    def factory():
        w = torch.from_numpy(_arr((n_out, n_in), 2, 0.01))
        b = torch.zeros(n_out)
        x = torch.from_numpy(_arr((n, n_in), 1))
        F = torch.nn.functional
        return lambda: F.linear(x, w, b)
    return factory


def _op_dense_forward_gemm(n, n_in, n_out):
    def factory():
        x, w, out = _arr((n, n_in), 1), _arr((n_in, n_out), 2, 0.01), np.empty((n, n_out), DTYPE)
        gemm = blas.gemm
        return lambda: gemm(x, w, out)
    return factory


def _op_dense_backward(lib, n, n_in, n_out):
    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        x, dv = _arr((n, n_in), 1), _arr((n, n_out), 3)
        layer.forward(x)
        return lambda: layer.backward(dv)
    return factory


def _op_dense_backward_gemm(n, n_in, n_out):
    def factory():
        x, dv, w = _arr((n, n_in), 1), _arr((n, n_out), 3), _arr((n_in, n_out), 2, 0.01)
        dw, dx = np.empty((n_in, n_out), DTYPE), np.empty((n, n_in), DTYPE)
        gemm = blas.gemm

        def op():
            gemm(x, dv, dw, trans_a=True)
            gemm(dv, w, dx, trans_b=True)
        return op
    return factory


def _op_activation(lib, name, shape, direction):
    def factory():
        act = getattr(lib, name)()
        x, dv = _arr(shape, 1), _arr(shape, 3)
        act.forward(x)
        if direction == "forward":
            return lambda: act.forward(x)
        return lambda: act.backward(dv)
    return factory


# Activations torch has only in torch.nn.functional, under these names.
_TORCH_FUNCTIONAL = {"leakyrelu": "leaky_relu", "gelu": "gelu"}


def _torch_activation(short):
    """torch's function of that name (torch.tanh, ...) or torch.nn.functional's (gelu,
    leaky_relu), None where it has none."""
    if torch is None:
        return None
    if short in _TORCH_FUNCTIONAL:
        return getattr(torch.nn.functional, _TORCH_FUNCTIONAL[short])
    return getattr(torch, short, None)


def _op_activation_torch(fn, shape):
    def factory():
        x = torch.from_numpy(_arr(shape, 1))
        f = _torch_activation(fn)
        return lambda: f(x)
    return factory


def _op_softmax_cce(lib, n, c):
    """What the Model does for a Softmax output with CCE: softmax forward, loss.calculate, the
    combined backward."""
    def factory():
        softmax = lib.Activation_Softmax()
        loss = lib.Loss_CategoricalCrossentropy()
        combined = lib.Activation_Softmax_Loss_CategoricalCrossentropy()
        x = _arr((n, c), 1)
        y = np.random.default_rng(4).integers(0, c, n).astype(np.int64)

        def op():
            softmax.forward(x)
            value = loss.calculate(softmax.output, y)
            combined.backward(softmax.output, y)
            return value
        return op
    return factory


def _op_softmax_cce_torch(n, c):
    def factory():
        x = torch.from_numpy(_arr((n, c), 1)).requires_grad_(True)
        y = torch.from_numpy(np.random.default_rng(4).integers(0, c, n).astype(np.int64))
        F = torch.nn.functional

        def op():
            x.grad = None
            value = F.cross_entropy(x, y)
            value.backward()
            return value.item()
        return op
    return factory


_OPTIMIZERS = {
    "SGD": ("Optimizer_SGD", {}, ("SGD", {"lr": 1.0})),
    "SGD momentum": ("Optimizer_SGD", {"momentum": 0.9}, ("SGD", {"lr": 1.0, "momentum": 0.9})),
    "Adagrad": ("Optimizer_Adagrad", {}, ("Adagrad", {"lr": 1.0, "eps": 1e-7})),
    "RMSprop": ("Optimizer_RMSprop", {}, ("RMSprop", {"lr": 0.001, "alpha": 0.9, "eps": 1e-7})),
    "Adam": ("Optimizer_Adam", {}, ("Adam", {"lr": 0.001, "eps": 1e-7})),
}


def _op_optimizer(lib, which, n_in=784, n_out=128):
    cls, kwargs, _ = _OPTIMIZERS[which]

    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        layer.dweights = _arr((n_in, n_out), 5, 0.01)
        layer.dbiases = _arr((1, n_out), 6, 0.01)
        optimizer = getattr(lib, cls)(**kwargs)
        optimizer.update_params(layer)  # creates the state, as the first step does
        return lambda: optimizer.update_params(layer)
    return factory


def _op_optimizer_torch(which, n_in=784, n_out=128):
    _, _, (cls, kwargs) = _OPTIMIZERS[which]

    def factory():
        w = torch.nn.Parameter(torch.from_numpy(_arr((n_in, n_out), 2, 0.01)))
        b = torch.nn.Parameter(torch.zeros(1, n_out))
        w.grad = torch.from_numpy(_arr((n_in, n_out), 5, 0.01))
        b.grad = torch.from_numpy(_arr((1, n_out), 6, 0.01))
        extra = {"fused": True} if cls == "Adam" and torch_adam_kind() == "fused" else {}
        optimizer = getattr(torch.optim, cls)([w, b], **kwargs, **extra)
        optimizer.step()
        return optimizer.step
    return factory


def _dead_units(dweights, momentums):
    """Three quarters of the units dead: zero gradient columns whose Adam momentums have decayed
    into float32 denormals (what a long run reaches; see the *-long step configurations)."""
    dweights[:, dweights.shape[1] // 4:] = 0
    momentums[:, momentums.shape[1] // 4:] = 1e-40


def _op_adam_denormal(lib, n_in=784, n_out=128):
    def factory():
        layer = _dense_layer(lib, n_in, n_out)
        layer.dweights = _arr((n_in, n_out), 5, 0.01)
        layer.dbiases = _arr((1, n_out), 6, 0.01)
        optimizer = lib.Optimizer_Adam()
        optimizer.update_params(layer)
        _dead_units(layer.dweights, layer.weight_momentums)
        return lambda: optimizer.update_params(layer)
    return factory


def _op_adam_denormal_torch(n_in=784, n_out=128):
    def factory():
        w = torch.nn.Parameter(torch.from_numpy(_arr((n_in, n_out), 2, 0.01)))
        b = torch.nn.Parameter(torch.zeros(1, n_out))
        w.grad = torch.from_numpy(_arr((n_in, n_out), 5, 0.01))
        b.grad = torch.from_numpy(_arr((1, n_out), 6, 0.01))
        extra = {"fused": True} if torch_adam_kind() == "fused" else {}
        optimizer = torch.optim.Adam([w, b], lr=0.001, eps=1e-7, **extra)
        optimizer.step()
        _dead_units(w.grad.numpy(), optimizer.state[w]["exp_avg"].numpy())
        return optimizer.step
    return factory


def _op_dropout(lib, shape, rate, mode=None):
    def factory():
        layer = lib.Layer_Dropout(rate, mode=mode) if mode else lib.Layer_Dropout(rate)
        x, dv = _arr(shape, 1), _arr(shape, 3)

        def op():
            layer.forward(x, training=True)
            layer.backward(dv)
        return op
    return factory


def _elementwise_activations() -> list[str]:
    """The declared layers that act elementwise on any shape and pass it on (their test case names
    no required rank), built with their defaults: every activation but Softmax; a new one enters
    the op groups by being declared. Dropout has its own groups below (a mask stream, two modes)."""
    return [spec.name for spec in declared("layer") if spec.keeps_features
            and spec.name.startswith("Activation_") and spec.name in CASES and CASES[spec.name].ndim is None
            and CASES[spec.name].backward]


def _op_groups():
    groups = {}

    def add(group, **peers):
        groups[group] = {k.replace("_", "-"): v for k, v in peers.items() if v is not None}

    has_torch = torch is not None
    for n, n_in, n_out in ((300, 2, 64), (128, 784, 128), (256, 1024, 1024)):
        add(f"dense forward {n}x{n_in}@{n_in}x{n_out}",
            fastnn=_op_dense_forward(fastnn, n, n_in, n_out), reference=_op_dense_forward(ref, n, n_in, n_out),
            torch=_op_dense_forward_torch(n, n_in, n_out) if has_torch else None,
            gemm_floor=_op_dense_forward_gemm(n, n_in, n_out))
        add(f"dense backward {n}x{n_in}x{n_out}",
            fastnn=_op_dense_backward(fastnn, n, n_in, n_out), reference=_op_dense_backward(ref, n, n_in, n_out),
            gemm_floor=_op_dense_backward_gemm(n, n_in, n_out))
    for name in _elementwise_activations():
        short = name.split("_", 1)[1].lower()
        for shape in ((300, 64), (256, 1024)):
            s = f"{shape[0]}x{shape[1]}"
            add(f"{short} forward {s}", fastnn=_op_activation(fastnn, name, shape, "forward"),
                reference=_op_activation(ref, name, shape, "forward"),
                torch=_op_activation_torch(short, shape) if _torch_activation(short) else None)
            add(f"{short} backward {s}", fastnn=_op_activation(fastnn, name, shape, "backward"),
                reference=_op_activation(ref, name, shape, "backward"))
    for n, c in ((300, 3), (128, 10), (1000, 3)):
        add(f"softmax+cce fwd+bwd {n}x{c}", fastnn=_op_softmax_cce(fastnn, n, c), reference=_op_softmax_cce(ref, n, c),
            torch=_op_softmax_cce_torch(n, c) if has_torch else None)
    for which in _OPTIMIZERS:
        add(f"{which} update_params 784x128", fastnn=_op_optimizer(fastnn, which), reference=_op_optimizer(ref, which),
            torch=_op_optimizer_torch(which) if has_torch else None)
    add("Adam update_params 784x128, 3/4 dead units (zero grads, denormal momentums)",
        fastnn=_op_adam_denormal(fastnn), reference=_op_adam_denormal(ref),
        torch=_op_adam_denormal_torch() if has_torch else None)
    for shape in ((1000, 512), (128, 128)):
        s = f"{shape[0]}x{shape[1]}"
        add(f"dropout(0.1) fwd+bwd {s}", fastnn_fast=_op_dropout(fastnn, shape, 0.1, "fast"),
            fastnn_book=_op_dropout(fastnn, shape, 0.1, "book"), reference=_op_dropout(ref, shape, 0.1))
    layer_op_groups(add)
    return groups


OP_GROUPS = _op_groups()
