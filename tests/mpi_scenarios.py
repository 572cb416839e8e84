"""Run by tests/test_distributed_mpi.py under ``mpiexec -n 2``: distributed training scenarios, each
rank writing what it saw to OUT/<group>-rank<r>.json for the test to check.

    mpiexec -n 2 python tests/mpi_scenarios.py OUT GROUP

GROUP "train": equivalence with a one-process run (float64 and float32, replicated and sharded,
the fused and the generic loss path, the compiled regression step, a CNN), identical ranks, dropout streams, the log, evaluate,
predict and save. GROUP "failures": errors raised on one rank, caught on every rank (each call
timed), then a call that works. GROUP "uncaught": rank 1 raises and nobody catches it (the job
must end, not hang).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import time

import numpy as np

import fastnn
from fastnn import _plan
import fastnn.distributed as dist
from fastnn import (Accuracy_Categorical, Accuracy_Regression, Activation_Linear, Activation_ReLU, Activation_Softmax,
                    Layer_Conv2D, Layer_Dense, Layer_Dropout, Layer_Flatten, Layer_MaxPool2D,
                    Loss_CategoricalCrossentropy, Loss_MeanSquaredError, Model, Optimizer_Adam, Optimizer_SGD)
from fastnn.datasets import sine_data, spiral_data

import _book  # tests/_book.py (this folder is the script's first sys.path entry)

RANK, SIZE = dist.rank(), dist.size()


def classifier(dtype, *, dropout=0.0, hidden=16, spread=False):
    """spread: different initial weights on each rank (training must start from rank 0's)."""
    np.random.seed(100 * RANK if spread else 0)
    layers = [Layer_Dense(2, hidden, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4, dtype=dtype),
              Activation_ReLU(), *([Layer_Dropout(dropout)] if dropout else []), Layer_Dense(hidden, 3, dtype=dtype),
              Activation_Softmax()]
    return _book.build_model(fastnn, layers, loss=Loss_CategoricalCrossentropy(),
                             optimizer=Optimizer_Adam(learning_rate=0.02, decay=1e-3), accuracy=Accuracy_Categorical())


def regressor(dtype, spread=False):
    np.random.seed(7 + (RANK if spread else 0))
    layers = [Layer_Dense(1, 16, dtype=dtype), Activation_ReLU(), Layer_Dense(16, 1, dtype=dtype), Activation_Linear()]
    return _book.build_model(fastnn, layers, loss=Loss_MeanSquaredError(),
                             optimizer=Optimizer_SGD(learning_rate=0.05, momentum=0.9), accuracy=Accuracy_Regression())


def deep_regressor(dtype, spread=False):
    """The book's Ch17 shape (two hidden layers, linear output, MSE): Model.train's compiled
    regression step on every rank."""
    np.random.seed(9 + (RANK if spread else 0))
    layers = [Layer_Dense(1, 32, dtype=dtype), Activation_ReLU(), Layer_Dense(32, 32, dtype=dtype), Activation_ReLU(),
              Layer_Dense(32, 1, dtype=dtype), Activation_Linear()]
    for dense in layers[::2]:
        dense.weights *= 10
    return _book.build_model(fastnn, layers, loss=Loss_MeanSquaredError(),
                             optimizer=Optimizer_Adam(learning_rate=0.005, decay=1e-3), accuracy=Accuracy_Regression())


def cnn(dtype, spread=False):
    np.random.seed(11 + (RANK if spread else 0))
    layers = [Layer_Conv2D(1, 4, 3, padding=1, weight_regularizer_l2=1e-4), Activation_ReLU(), Layer_MaxPool2D(2),
              Layer_Flatten(), Layer_Dense(4 * 4 * 4, 3), Activation_Softmax()]
    model = _book.build_model(fastnn, layers, loss=Loss_CategoricalCrossentropy(),
                              optimizer=Optimizer_Adam(learning_rate=0.01), accuracy=Accuracy_Categorical())
    if dtype == np.float64:
        for layer in model.trainable_layers:
            layer.set_parameters(layer.weights.astype(dtype), layer.biases.astype(dtype))
    return model


def parameters(model):
    return [array for layer in model.trainable_layers for array in layer.get_parameters()]


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def difference(a_model, b_model) -> float:
    """max |a - b| / max |b| over all parameters."""
    a, b = parameters(a_model), parameters(b_model)
    return max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b)) / max(
        float(np.max(np.abs(y))) for y in b)


def spiral(n=100, seed=1):
    np.random.seed(seed)
    return spiral_data(samples=n, classes=3)


def compare_with_one_process(build, dtype, X, y, **train):
    """Train the same model distributed and in one process (the same seed before each)."""
    one = build(dtype)
    np.random.seed(0)
    one_process = one.train(X, y, verbose="silent", **train)
    distributed = build(dtype, spread=True)
    np.random.seed(0)
    history = distributed.train(X, y, verbose="silent", distributed=True, **train)
    return {"difference": difference(distributed, one), "digest": digest(parameters(distributed)),
            "history_difference": max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(history.loss, one_process.loss)),
            "rng": digest([np.random.get_state()[1]])}


def group_train(out: str) -> dict:
    results = {"rank": RANK, "size": SIZE, "is_root": dist.is_root()}
    X, y = spiral(100)
    X_val, y_val = spiral(30, seed=2)
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        # batch 33 splits 17/16 (unequal shares); the last batch of 300 holds 3 samples (2/1)
        results[f"fused-{name}"] = compare_with_one_process(
            classifier, dtype, X, y, epochs=4, batch_size=33, shuffle=True, validation_data=(X_val, y_val))
        results[f"whole-set-{name}"] = compare_with_one_process(classifier, dtype, X, y, epochs=5)
        Xs, ys = sine_data(samples=200)
        results[f"generic-{name}"] = compare_with_one_process(regressor, dtype, Xs.astype(dtype), ys.astype(dtype),
                                                              epochs=3, batch_size=32)
        results[f"deep-{name}"] = compare_with_one_process(deep_regressor, dtype, Xs.astype(dtype), ys.astype(dtype),
                                                           epochs=3, batch_size=40)
        results["deep-plan"] = type(_plan.compile_plan(deep_regressor(np.float32), callbacks=False, augment=None)).__name__
        np.random.seed(3)
        images = np.random.standard_normal((60, 1, 8, 8)).astype(dtype)
        labels = np.random.randint(0, 3, 60)
        results[f"cnn-{name}"] = compare_with_one_process(cnn, dtype, images, labels, epochs=2, batch_size=20)

    # The log: rank 0 prints the book's lines (as one process does, in float64), the others nothing.
    logs = {}
    for label, flag in (("one", False), ("distributed", True)):
        model = classifier(np.float64, spread=flag)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            model.train(X, y, epochs=2, batch_size=100, print_every=1, validation_data=(X_val, y_val), distributed=flag)
        logs[label] = buffer.getvalue()
    results["log"] = logs

    # Dropout: each rank draws its own masks; the parameters stay identical; the global RNG too.
    model = classifier(np.float32, dropout=0.5, hidden=64, spread=True)
    np.random.seed(0)
    model.train(X, y, epochs=2, batch_size=300, verbose="silent", shuffle=True, distributed=True)
    mask = model.layers[2].binary_mask
    results["dropout"] = {"digest": digest(parameters(model)), "mask": digest([mask]), "mask_shape": list(mask.shape),
                          "rng": digest([np.random.get_state()[1]]),
                          "source_restored": fastnn._core.config.dropout_random() is np.random}

    # Sharded: rank 0 holds 3 batches of 20, rank 1 holds 2; the one-process run sees the batches
    # interleaved (rank 0's, rank 1's, ...), 40 per step, and the last step rank 0's alone.
    np.random.seed(4)
    X5, y5 = spiral_data(samples=34, classes=3)
    X5, y5 = X5[:100], y5[:100]
    parts = {0: [], 1: []}
    for i in range(5):
        parts[0 if i % 2 == 0 else 1].append(slice(20 * i, 20 * (i + 1)))
    mine = parts[RANK] if SIZE == 2 else parts[0] + parts[1]
    X_shard = np.concatenate([X5[s] for s in mine])
    y_shard = np.concatenate([y5[s] for s in mine])
    for dtype in (np.float64, np.float32):
        name = np.dtype(dtype).name
        one = classifier(dtype)
        one.train(X5, y5, epochs=3, batch_size=40, verbose="silent")
        sharded = classifier(dtype, spread=True)
        history = sharded.train(X_shard, y_shard, epochs=3, batch_size=20, verbose="silent", distributed="sharded")
        one_history = one.train(X5, y5, epochs=1, batch_size=40, verbose="silent")  # one more epoch for both
        sharded_history = sharded.train(X_shard, y_shard, epochs=1, batch_size=20, verbose="silent",
                                        distributed="sharded")
        results[f"sharded-{name}"] = {
            "difference": difference(sharded, one), "digest": digest(parameters(sharded)), "shard": len(X_shard),
            "epoch_loss": [history.loss[-1], sharded_history.loss[0], one_history.loss[0]],
            "evaluate": [sharded.evaluate(X_shard, y_shard, verbose="silent", distributed="sharded"),
                         one.evaluate(X5, y5, verbose="silent")],
            "predict_rows": len(sharded.predict(X_shard, distributed="sharded"))}

    # evaluate and predict split the work: the same figures as one process.
    model = classifier(np.float64)
    model.train(X, y, epochs=2, batch_size=50, verbose="silent", distributed=True)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        together = model.evaluate(X_val, y_val, batch_size=7, distributed=True)
    alone = model.evaluate(X_val, y_val, batch_size=7, verbose="silent")
    predicted = model.predict(X_val, batch_size=8, distributed=True)
    results["evaluate"] = {"distributed": together, "one": alone, "printed": buffer.getvalue(),
                           "predict_difference": float(np.max(np.abs(predicted - model.predict(X_val)))),
                           "predict_shape": list(predicted.shape),
                           "tiny_predict": list(model.predict(X_val[:1], distributed=True).shape)}

    # save: every rank calls it, rank 0 writes; after a barrier every rank loads the same file.
    calls = []
    original = fastnn.io.save_model

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    fastnn.io.save_model = counting
    try:
        model.save(os.path.join(out, "model.fnn"))
    finally:
        fastnn.io.save_model = original
    dist.barrier()
    loaded = Model.load(os.path.join(out, "model.fnn"))
    results["save"] = {"writes": len(calls),
                       "loaded_matches": bool(all(np.array_equal(a, b) for a, b in zip(parameters(loaded),
                                                                                       parameters(model))))}
    return results


class FailingLayer:
    """Passes its inputs through; raises on rank `rank` at its `after`-th training forward."""

    def __init__(self, rank: int, after: int) -> None:
        self.rank, self.after, self.calls = rank, after, 0

    def forward(self, inputs, training=True):
        if training:
            self.calls += 1
            if RANK == self.rank and self.calls > self.after:
                raise KeyError(f"a layer's own error on rank {RANK}")
        self.output = inputs

    def backward(self, dvalues):
        self.dinputs = dvalues


def failing_model(layer):
    layers = [Layer_Dense(2, 8), layer, Activation_ReLU(), Layer_Dense(8, 3), Activation_Softmax()]
    return _book.build_model(fastnn, layers, loss=Loss_CategoricalCrossentropy(), optimizer=Optimizer_Adam(),
                             accuracy=Accuracy_Categorical())


def attempt(call) -> dict:
    started = time.perf_counter()
    try:
        call()
    except Exception as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)  # str(KeyError) adds quotes
        return {"type": type(exc).__name__, "message": message, "seconds": time.perf_counter() - started,
                "failed_rank": getattr(exc, "failed_rank", None)}
    return {"type": None, "seconds": time.perf_counter() - started}


def group_failures(out: str) -> dict:
    results = {}
    X, y = spiral(50)
    model = classifier(np.float64)

    bad = y.copy()
    if RANK == 1:
        bad[5] = 7  # a label past the 3 classes: refused while the data is checked
    results["bad_labels"] = attempt(lambda: model.train(X, bad, epochs=2, verbose="silent", distributed=True))

    nan = X.copy()
    nan[40] = np.nan  # in the first batch of 64, row 40 is rank 1's (rows 32-63)
    results["nan_loss"] = attempt(lambda: model.train(nan, y, epochs=2, batch_size=64, verbose="silent",
                                                      distributed=True))

    other = X + (0.5 if RANK == 1 else 0)
    results["different_data"] = attempt(lambda: model.train(other, y, epochs=1, verbose="silent", distributed=True))

    np.random.seed(0)
    failing = failing_model(FailingLayer(0, after=3))
    results["root_fails_later"] = attempt(lambda: failing.train(X, y, epochs=3, batch_size=50, verbose="silent",
                                                                distributed="sharded"))

    results["bad_mode"] = attempt(lambda: model.train(X, y, verbose="silent",
                                                      distributed="sharded" if RANK == 0 else "everywhere"))
    results["predict_shape"] = attempt(lambda: model.predict(X if RANK == 0 else X[:, :1], distributed=True))
    results["evaluate_parameters"] = attempt(lambda: (model.trainable_layers[0].weights.__setitem__(
        (0, 0), 1.0 + RANK), model.evaluate(X, y, verbose="silent", distributed=True)))

    # After all that, a distributed call works and the ranks agree.
    after = classifier(np.float64)
    results["after"] = attempt(lambda: after.train(X, y, epochs=2, batch_size=25, verbose="silent", distributed=True))
    results["after_digest"] = digest(parameters(after))
    return results


def group_uncaught(out: str) -> dict:
    X, y = spiral(50)
    failing = failing_model(FailingLayer(1, after=2))
    with open(os.path.join(out, f"uncaught-rank{RANK}.started"), "w"):
        pass
    failing.train(X, y, epochs=5, batch_size=30, verbose="silent", distributed=True)
    return {"finished": True}


if __name__ == "__main__":
    out, group = sys.argv[1], sys.argv[2]
    results = {"train": group_train, "failures": group_failures, "uncaught": group_uncaught}[group](out)
    with open(os.path.join(out, f"{group}-rank{RANK}.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
