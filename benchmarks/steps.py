"""One training step (or inference pass) of each peer of a configuration, ready to time, and the
check that the peers compute the same step.

``make_step(config, peer)`` builds the peer:

- ``fastnn``            the book's step (``_book.model_step``, the body of Model.train's batch
                        loop without the print) on a ``fastnn.Model``
- ``reference``         the same ``model_step`` on a ``fastnn.reference.Model`` (plain NumPy)
- ``torch``             the same network in PyTorch eager (torch_peer.py)
- ``jax``               the same network as one ``jax.jit``-compiled step (jax_peer.py)
- ``gemm-floor``        the GEMM calls a fastnn step issues, alone (kernel_peers.py)
- ``fastnn-raw``        the fastnn step issued straight to the kernel entry points
                        (kernel_peers.py). fastnn - fastnn-raw = the Python layer's cost.
- ``fastnn-train-step`` what ``Model.train`` runs per batch: its compiled plan's step for the models
                        it has one for (fastnn/_plan.py: one compiled call for forward, loss and
                        backward, then the optimizer), else ``Model._train_step`` (the book step
                        plus the NaN/inf guard)
- ``fastnn-manual`` / ``reference-manual``  (spiral and tiny-batch) the Ch10 loop of calls on the
                        layer objects, no Model (``_book.chapter_step``)
- ``fastnn-predict``    (inference only) ``Model.predict``: validation and a fresh output copy

The reference Model has no ``_train_step``, so fastnn and the reference both run ``model_step``.
"""
from __future__ import annotations

import numpy as np

import fastnn
import fastnn.reference as ref
from fastnn import _plan

import _book
import jax_peer
from data import batches, cycle
from kernel_peers import gemm_floor, raw_thunks, run_thunks
from models import build_model, prepare, restorer
from torch_peer import torch, torch_infer, torch_restorer, torch_step


def make_step(config, peer: str, seed: int = 0, pretrain: int | None = None):
    """A zero-argument callable running one step (or inference pass) of `peer` on the next batch.
    Training peers are first run `pretrain` steps (default config.pretrain, at least 1) and get a
    ``reset()`` method that returns them to that state."""
    pretrain = config.pretrain if pretrain is None else pretrain
    data, _ = batches(config)
    if peer == "gemm-floor":
        return gemm_floor(config, data)
    if peer == "torch":
        if torch is None:
            raise RuntimeError("torch is not installed")
        model = build_model(fastnn, config, seed)
        if not config.training:
            return torch_infer(config, model, data)
        step = torch_step(config, model, data)
        return prepare(step, lambda: torch_restorer(step.net, step.opt, step.counter), pretrain)
    if peer == "jax":
        if not jax_peer.usable():
            raise RuntimeError(jax_peer.why())
        model = build_model(fastnn, config, seed)
        if not config.training:
            return jax_peer.jax_infer(config, model, data)
        step = jax_peer.jax_step(config, model, data)
        return prepare(step, step.snapshot, pretrain)
    if peer in ("fastnn-manual", "reference-manual"):
        step = _manual_step(fastnn if peer == "fastnn-manual" else ref, config, data, seed)
        return prepare(step, lambda: restorer(step.layers, step.optimizer), pretrain)
    lib = ref if peer == "reference" else fastnn
    model = build_model(lib, config, seed)
    nxt = cycle(data)
    if not config.training:
        if peer == "fastnn-raw":
            return run_thunks(raw_thunks(model, config, data))
        if peer == "fastnn-predict":
            def step():
                return model.predict(nxt()[0])
        else:
            def step():
                return model.forward(nxt()[0], training=False)
        return step
    if peer == "fastnn-raw":
        step = run_thunks(raw_thunks(model, config, data))
    elif peer == "fastnn-train-step":
        counter = [0]
        # What Model.train runs per batch: the compiled plan's step where the model has one
        # (fastnn/_plan.py; never its "last step" here), else Model._train_step.
        plan = _plan.compile_plan(model, callbacks=False, augment=None)
        train_step = model._train_step if plan is None else plan.train_step(last_epoch=0, last_step=0)

        def step():
            X, y = nxt()
            counter[0] += 1
            return train_step(X, y, 1, counter[0])
    elif peer in ("fastnn", "reference"):
        def step():
            X, y = nxt()
            return _book.model_step(model, X, y)
    else:
        raise ValueError(f"unknown peer {peer!r} for {config.name}")
    return prepare(step, lambda: restorer(model.trainable_layers, model.optimizer), pretrain)


def _manual_step(lib, config, data, seed: int):
    """The Ch10 loop on layer objects (Dense, ReLU between them, softmax+CCE, Adam: spiral's and
    tiny-batch's networks), no Model; returns the loss and the accuracy as the book's loop
    computes them."""
    assert not config.dropout and not config.l2 and config.training
    np.random.seed(seed)
    layers = []
    for i in range(len(config.sizes) - 1):
        layers.append(lib.Layer_Dense(config.sizes[i], config.sizes[i + 1]))
        if i < len(config.sizes) - 2:
            layers.append(lib.Activation_ReLU())
    loss_activation = lib.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = lib.Optimizer_Adam(learning_rate=config.learning_rate, decay=config.decay)
    nxt = cycle(data)

    def step():
        X, y = nxt()
        output, loss, _ = _book.chapter_step(layers, loss_activation, optimizer, X, y)
        return loss, np.mean(np.argmax(output, axis=1) == y)
    step.layers, step.optimizer = _book.trainable(layers), optimizer
    return step


def check_peers_agree(config, seed: int = 0) -> dict:
    """The peers compute the same thing: from the same weights, the first step's losses (and,
    without dropout, the updated weights) of fastnn, fastnn-raw, the reference, torch and jax agree.
    Returns the largest differences; raises AssertionError beyond float32 tolerance."""
    data, _ = batches(config)
    X, y = data[0]
    models = {name: build_model(lib, config, seed, dropout_mode="book")
              for name, lib in (("fastnn", fastnn), ("reference", ref), ("fastnn-raw", fastnn))}
    diffs = {}
    if not config.training:
        outs = {k: np.array(m.forward(X, training=False)) for k, m in models.items() if k != "fastnn-raw"}
        raw = run_thunks(raw_thunks(models["fastnn-raw"], config, data))
        raw()
        outs["fastnn-raw"] = models["fastnn-raw"].layers[-1].output
        if torch is not None:
            outs["torch"] = torch_infer(config, models["fastnn"], data)().numpy()
        if jax_peer.usable():
            outs["jax"] = np.asarray(jax_peer.jax_infer(config, models["fastnn"], data)())
        for k, v in outs.items():
            diffs[k] = float(np.max(np.abs(v - outs["reference"])))
            assert diffs[k] < 1e-5, (config.name, k, diffs[k])
        return diffs
    torch_peer_step = torch_step(config, models["fastnn"], data) if torch is not None else None
    jax_peer_step = jax_peer.jax_step(config, models["fastnn"], data) if jax_peer.usable() else None
    np.random.seed(123)
    losses = {"fastnn": _book.model_step(models["fastnn"], X, y)[0]}
    np.random.seed(123)
    losses["reference"] = _book.model_step(models["reference"], X, y)[0]
    if not config.dropout:
        raw = raw_thunks(models["fastnn-raw"], config, data)
        run_thunks(raw)()
        if torch_peer_step is not None:
            losses["torch"] = torch_peer_step()[0]
        if jax_peer_step is not None:
            losses["jax"] = jax_peer_step()[0]
    for k, v in losses.items():
        diffs[f"loss {k}"] = abs(v - losses["reference"])
        assert diffs[f"loss {k}"] < 1e-4 * max(1.0, abs(losses["reference"])), (config.name, k, v, losses)
    if not config.dropout:
        for k in ("fastnn", "fastnn-raw"):
            for a, b in zip(models[k].trainable_layers, models["reference"].trainable_layers):
                d = float(np.max(np.abs(a.weights - b.weights)))
                diffs[f"weights {k}"] = max(diffs.get(f"weights {k}", 0.0), d)
                assert d < 1e-5 * max(1.0, config.learning_rate * 100), (config.name, k, d)
        if jax_peer_step is not None:
            for (w, _), b in zip(jax_peer_step.parameters(), models["reference"].trainable_layers):
                d = float(np.max(np.abs(w - b.weights)))
                diffs["weights jax"] = max(diffs.get("weights jax", 0.0), d)
                # Its own gradient sums: Adam's first step divides by about |g|, so the relative
                # error of the smallest gradients shows in the weights (1.0e-5 seen on wide).
                assert d < 1e-4 * max(1.0, config.learning_rate * 100), (config.name, "jax", d)
    return diffs
