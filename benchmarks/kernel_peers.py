"""Peers built from fastnn's compiled calls, each a list of labelled one-call thunks:

- the GEMM floor: the GEMMs a fastnn step issues, alone, through ``fastnn.blas.gemm`` into
  preallocated buffers (forward ``x @ W`` per dense layer; backward ``x.T @ dv`` per layer and
  ``dv @ W.T`` except the first layer's);
- the raw step: the same step as the fastnn Model's issued straight to the kernel entry points
  (``fastnn._ext._dense.forward(layer.__dict__, x)`` ...): no class methods, no Python-side checks;
- the public step: one book step, one public-method call per thunk (the step's anatomy).
"""
from __future__ import annotations

import numpy as np

import fastnn
from fastnn.backend import blas
from fastnn._ext import _activations, _dense, _dropout, _losses, _optimizers

from data import DTYPE, cycle
from kinds import kernel_kind
from models import dense_shapes


def gemm_calls(config, X0: np.ndarray):
    """[(label, a, b, out, trans_a, trans_b)] for the GEMMs of one fastnn step, with buffers."""
    rng = np.random.default_rng(1)
    n = config.batch
    calls = []
    xs = [X0]
    for i, (fan_in, fan_out) in enumerate(dense_shapes(config)):
        W = (0.01 * rng.standard_normal((fan_in, fan_out))).astype(DTYPE)
        out = np.empty((n, fan_out), DTYPE)
        calls.append((f"fwd{i + 1} x@W", xs[-1], W, out, False, False))
        xs.append(out)
    if config.training:
        layers = list(enumerate(dense_shapes(config)))
        for i, (fan_in, fan_out) in reversed(layers):
            W = calls[i][2]
            dv = rng.standard_normal((n, fan_out)).astype(DTYPE)
            dW = np.empty((fan_in, fan_out), DTYPE)
            calls.append((f"bwd{i + 1} x.T@dv", xs[i], dv, dW, True, False))
            if i > 0:
                dx = np.empty((n, fan_in), DTYPE)
                calls.append((f"bwd{i + 1} dv@W.T", dv, W, dx, False, True))
    return calls


def gemm_floor(config, data):
    """A zero-argument callable issuing the GEMMs of one step of `config` (gemm_calls)."""
    calls = [(a, b, out, ta, tb) for _, a, b, out, ta, tb in gemm_calls(config, np.ascontiguousarray(data[0][0]))]
    gemm = blas.gemm

    def step():
        for a, b, out, ta, tb in calls:
            gemm(a, b, out, trans_a=ta, trans_b=tb)
    return step


_KIND = {fastnn.Activation_ReLU: 0, fastnn.Activation_Sigmoid: 1, fastnn.Activation_Softmax: 2}


def raw_thunks(model, config, data):
    """[(label, thunk)] for one step of `model` (a fastnn Model) issued straight to the kernel
    entry points, in the order the Model issues them. Each thunk is one call; the batch is picked
    by the first thunk."""
    layers = model.layers
    current = {}
    nxt = cycle(data)
    thunks = []

    def pick():
        current["X"], current["y"] = nxt()
    thunks.append(("next batch", pick))

    def src(i):
        if i == 0:
            return lambda: current["X"]
        state = layers[i - 1].__dict__
        return lambda: state["output"]

    for i, layer in enumerate(layers):
        state = layer.__dict__
        get = src(i)
        if isinstance(layer, fastnn.Layer_Dense):
            thunks.append((f"dense{i} forward", lambda s=state, g=get: _dense.forward(s, g())))
        elif isinstance(layer, fastnn.Layer_Dropout):
            keep = layer.rate
            if config.training:
                thunks.append((f"dropout{i} forward (fast)", lambda s=state, g=get, k=keep: _dropout.fast_forward(
                    s, g(), k, int(np.random.random_sample() * 9007199254740992.0))))
        else:
            kind = kernel_kind(layer)
            thunks.append((f"{type(layer).__name__[11:].lower()}{i} forward",
                           lambda s=state, g=get, k=kind: _activations.forward(k, s, g())))
    out_state = layers[-1].__dict__
    if not config.training:
        return thunks

    trainable = [layer for layer in layers if isinstance(layer, fastnn.Layer_Dense)]
    regs = [(lay.__dict__, lay.weight_regularizer_l1, lay.weight_regularizer_l2, lay.bias_regularizer_l1,
             lay.bias_regularizer_l2) for lay in trainable]
    regs = [r for r in regs if any(v > 0 for v in r[1:])]
    result = {}

    def loss():
        total, _ = _losses.cce(out_state["output"], current["y"], False)
        result["data_loss"] = total / len(current["y"])
    thunks.append(("cce loss", loss))
    if regs:
        def reg():
            result["reg_loss"] = sum(_losses.regularization_loss(s["weights"], s["biases"], a, b, c, d)
                                     for s, a, b, c, d in regs)
        thunks.append(("regularization loss", reg))

    def accuracy():
        predictions = np.argmax(out_state["output"], axis=1)
        result["accuracy"] = np.count_nonzero(predictions == current["y"]) / len(predictions)
    thunks.append(("accuracy (argmax, ==)", accuracy))
    combined = {}
    thunks.append(("softmax+cce backward", lambda: _losses.softmax_cce_backward(
        combined, out_state["output"], current["y"])))
    upstream = combined
    for i in range(len(layers) - 2, -1, -1):
        layer = layers[i]
        state = layer.__dict__
        dv = (lambda u=upstream: u["dinputs"])
        if isinstance(layer, fastnn.Layer_Dense):
            first = i == 0
            thunks.append((f"dense{i} backward" + (" (no dinputs)" if first else ""),
                           lambda s=state, d=dv, w=not first: _dense.backward(s, d(), w)))
        elif isinstance(layer, fastnn.Layer_Dropout):
            thunks.append((f"dropout{i} backward", lambda s=state, d=dv: _dropout.backward(s, d())))
        else:
            kind = kernel_kind(layer)
            thunks.append((f"{type(layer).__name__[11:].lower()}{i} backward",
                           lambda s=state, d=dv, k=kind: _activations.backward(k, s, d())))
        upstream = state
    opt = model.optimizer
    adam = kernel_kind(opt)
    beta_1, beta_2, eps = opt.beta_1, opt.beta_2, opt.epsilon
    for layer in trainable:
        for name in ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache"):
            if not hasattr(layer, name):
                setattr(layer, name, np.zeros_like(layer.weights if name.startswith("weight") else layer.biases))
    coef = {}

    def pre():
        it = opt.iterations
        coef["lr"] = opt.learning_rate * (1. / (1. + opt.decay * it)) if opt.decay else opt.learning_rate
        coef["c1"] = 1 - beta_1 ** (it + 1)
        coef["c2"] = 1 - beta_2 ** (it + 1)
    thunks.append(("adam pre (lr, corrections)", pre))
    for layer in trainable:
        state = layer.__dict__
        thunks.append((f"adam update dense{layers.index(layer)}", lambda s=state: _optimizers.update_layer(
            adam, s, coef["lr"], eps, beta_1, beta_2, coef["c1"], coef["c2"])))

    def post():
        opt.iterations += 1
    thunks.append(("adam post", post))
    return thunks


def public_thunks(model, config, data):
    """[(label, thunk)] for one book_step on a fastnn or reference Model, one public-method call
    per thunk (the step's anatomy; the Model's own forward/backward loops written out)."""
    current = {}
    nxt = cycle(data)
    layers = model.layers
    thunks = []

    def pick():
        current["X"], current["y"] = nxt()
        model.input_layer.forward(current["X"], config.training)
    thunks.append(("next batch + input layer", pick))
    for i, layer in enumerate(layers):
        thunks.append((f"{type(layer).__name__}{i}.forward",
                       lambda lay=layer: lay.forward(lay.prev.output, config.training)))
    out_layer = layers[-1]
    if not config.training:
        return thunks
    result = {}

    def loss():
        result["loss"] = model.loss.calculate(out_layer.output, current["y"], include_regularization=True)
    thunks.append(("loss.calculate (+ regularization)", loss))

    def accuracy():
        predictions = model.output_layer_activation.predictions(out_layer.output)
        result["accuracy"] = model.accuracy.calculate(predictions, current["y"])
    thunks.append(("predictions + accuracy.calculate", accuracy))
    combined = model.softmax_classifier_output

    def combined_backward():
        combined.backward(out_layer.output, current["y"])
        out_layer.dinputs = combined.dinputs
    thunks.append(("softmax+cce backward", combined_backward))
    backward_layer = getattr(model, "_backward_layer", None)
    for layer in reversed(layers[:-1]):
        if backward_layer is not None:
            thunks.append((f"{type(layer).__name__}{layers.index(layer)}.backward",
                           lambda lay=layer: backward_layer(lay, lay.next.dinputs)))
        else:
            thunks.append((f"{type(layer).__name__}{layers.index(layer)}.backward",
                           lambda lay=layer: lay.backward(lay.next.dinputs)))
    opt = model.optimizer
    thunks.append(("optimizer.pre_update_params", opt.pre_update_params))
    for layer in model.trainable_layers:
        thunks.append((f"optimizer.update_params(dense{layers.index(layer)})",
                       lambda lay=layer: opt.update_params(lay)))
    thunks.append(("optimizer.post_update_params", opt.post_update_params))
    return thunks


def run_thunks(thunks):
    """A zero-argument callable running the thunks of [(label, thunk)] in order."""
    calls = [t for _, t in thunks]

    def step():
        for call in calls:
            call()
    return step
