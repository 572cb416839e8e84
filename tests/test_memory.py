"""No leaks: refused calls and converting calls leave nothing behind (tracemalloc, which
NumPy reports its array allocations to), and a long training run keeps its resident memory flat
(RSS, measured in a subprocess so the test process's own history does not blur it).

tests/test_buffers.py already checks that a training step allocates no array; these tests cover
the error paths (an exception's traceback keeps frames and their arrays alive until it is
dropped; a half-built conversion could be kept in a cache) and the process as a whole over 10^5
steps (memory that tracemalloc does not see: C allocations, BLAS buffers, the malloc heap).
"""
from __future__ import annotations

import gc
import os
import pathlib
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn.datasets import spiral_data

import _book

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def growth(step, repeats, warmup=20):
    """Bytes allocated (tracemalloc) and still held after `repeats` more calls of step(), counted
    from a point after a warm-up and a first `repeats` calls that already ran under tracemalloc:
    the arrays an object keeps from its last call (a layer's converted `inputs`) are traced on both
    sides, and caches that fill up and stay (CPython's and NumPy's small-object and name caches,
    a few KiB that level off within the first hundred calls) are full before counting starts. A
    leak grows with every call and shows in full."""
    tracemalloc.start()
    try:
        for _ in range(warmup + repeats):
            step()
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(repeats):
            step()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before


def refused_calls():
    """A step making one refused call of each kind: every public entry point, every kind of
    refusal (type, shape, range, size, overflow, labels, state), including refusals that happen
    after a conversion allocated an array (overflow found in the converted copy, labels checked
    after the probe pass)."""
    np.random.seed(0)
    X, y = spiral_data(20, 3)
    dense = fastnn.Layer_Dense(2, 8)
    dense.forward(X)
    relu = fastnn.Activation_ReLU()
    softmax = fastnn.Activation_Softmax()
    dropout = fastnn.Layer_Dropout(0.2)
    combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    cce = fastnn.Loss_CategoricalCrossentropy()
    mse = fastnn.Loss_MeanSquaredError()
    adam = fastnn.Optimizer_Adam()
    network = [fastnn.Layer_Dense(2, 8), fastnn.Activation_ReLU(), fastnn.Layer_Dense(8, 3),
               fastnn.Activation_Softmax()]
    model = _book.build_model(fastnn, network, loss=fastnn.Loss_CategoricalCrossentropy(),
                              optimizer=fastnn.Optimizer_Adam(), accuracy=fastnn.Accuracy_Categorical())
    huge = np.broadcast_to(np.zeros((1, 2)), (10 ** 12, 2))
    overflow = np.full((50, 2), 1e300)
    probabilities = np.full((60, 3), 1 / 3, np.float32)
    calls = [
        lambda: dense.forward(X.astype(complex)),
        lambda: dense.forward(X[:, :1]),
        lambda: dense.forward(huge),
        lambda: dense.forward(overflow),                       # converted, then refused
        lambda: dense.backward(np.ones((60, 7))),
        lambda: relu.forward(np.array(["a"])),
        lambda: softmax.forward(np.ones(3)),
        lambda: dropout.forward(np.ones((4, 2), complex)),
        lambda: combined.forward(probabilities, y + 3),
        lambda: combined.backward(probabilities, y[:5]),
        lambda: cce.calculate(probabilities, y.astype(float) + 0.5),
        lambda: mse.backward(probabilities, np.zeros((60, 2))),
        lambda: adam.update_params(fastnn.Activation_ReLU()),
        lambda: adam.update_params(5),
        lambda: model.train(X, y + 3, verbose=False),           # refused after the probe pass
        lambda: model.predict(X[:, :1]),
        lambda: model.set_parameters([(1, 2)]),
        lambda: fastnn.Layer_Dense(10 ** 7, 10 ** 7),
        lambda: fastnn.Optimizer_SGD(learning_rate=-1),
        lambda: spiral_data(0, 3),
        lambda: fastnn.Model.load(None),
    ]

    def step():
        for call in calls:
            try:
                call()
            except (TypeError, ValueError):
                pass
            else:  # pragma: no cover - every call above is refused
                raise AssertionError("a refused call was accepted")
    return step, len(calls)


def test_refused_calls_leak_nothing():
    step, n_calls = refused_calls()
    repeats = 300
    leaked = growth(step, repeats)
    # A leak of one small object per refused call would be >= 16 bytes * 300 * 21 = 100 KB;
    # a leaked array or traceback frame far more. What remains is allocator noise (measured: 1-7 KB).
    assert leaked < 32 * 1024, f"{leaked} bytes remain after {repeats * n_calls} refused calls"


def test_the_leak_check_catches_a_leak_on_the_error_path(monkeypatch):
    """The check above can fail: keep each refusal's exception (with its traceback) alive."""
    from fastnn._core import arrays, checks, messages

    kept = []
    original = checks.fail

    def leaky_fail(*args, **kwargs):
        error = original(*args, **kwargs)
        kept.append(error)
        return error
    for module in (arrays, checks, messages):
        monkeypatch.setattr(module, "fail", leaky_fail)
    step, _ = refused_calls()
    assert growth(step, 100) > 32 * 1024


def test_converting_calls_leak_nothing():
    """Accepted calls that convert their arguments (dtype, order, alignment, byte order, lists)
    allocate the converted copy per call and release it: nothing accumulates."""
    np.random.seed(1)
    X, y = spiral_data(30, 3)
    dense = fastnn.Layer_Dense(2, 16)
    relu = fastnn.Activation_ReLU()
    combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    dense2 = fastnn.Layer_Dense(16, 3)
    sgd = fastnn.Optimizer_SGD(learning_rate=0.1)
    inputs = [X.astype(np.float64), np.asfortranarray(X), X.astype(">f4"), X.tolist(), X[::-1]]
    labels = [y.astype(np.float64), y.tolist(), np.eye(3)[y], y.astype(np.int8)]

    def step():
        for x in inputs:
            dense.forward(x)
            relu.forward(dense.output.astype(np.float64))
            dense2.forward(relu.output)
            for labels_form in labels:
                combined.forward(dense2.output, labels_form)
                combined.backward(combined.output, labels_form)
            dense2.backward(combined.dinputs.astype(np.float16))
            relu.backward(dense2.dinputs)
            dense.backward(relu.dinputs)
            sgd.update_params(dense)
            sgd.update_params(dense2)
    leaked = growth(step, 200, warmup=5)
    assert leaked < 32 * 1024, f"{leaked} bytes remain after 200 converting steps"


LONG_RUN = textwrap.dedent(r'''
    import json, os, sys, time
    import numpy as np
    import fastnn
    from fastnn.datasets import spiral_data
    import _book

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    steps_per_epoch, epochs, chunks = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    np.random.seed(0)
    X, y = spiral_data(steps_per_epoch, 3)          # 3 * steps_per_epoch samples, batches of 3
    network = [fastnn.Layer_Dense(2, 16), fastnn.Activation_ReLU(), fastnn.Layer_Dropout(0.1),
               fastnn.Layer_Dense(16, 3), fastnn.Activation_Softmax()]
    model = _book.build_model(fastnn, network, loss=fastnn.Loss_CategoricalCrossentropy(),
                              optimizer=fastnn.Optimizer_Adam(learning_rate=0.005, decay=1e-5),
                              accuracy=fastnn.Accuracy_Categorical())
    model.train(X, y, epochs=2, batch_size=3, verbose=False)          # warm-up: buffers, BLAS, caches
    samples = [rss()]
    started = time.perf_counter()
    for _ in range(chunks):
        model.train(X, y, epochs=epochs // chunks, batch_size=3, verbose=False)
        samples.append(rss())
    print(json.dumps({"rss": samples, "steps": model.optimizer.iterations, "seconds": time.perf_counter() - started,
                      "loss": float(model.evaluate(X, y, verbose=False)[0])}))
''')


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)")
def test_resident_memory_stays_flat_over_100k_training_steps():
    """10^5 Adam steps of a Dense-ReLU-Dropout-Dense-softmax model through Model.train (100 epochs
    of 1000 batches of 3, in 10 chunks), in a fresh interpreter. Bound: RSS after the last chunk is
    within 1 MiB of RSS after the warm-up (and every chunk within it). A leak of 24 bytes per step
    (one Python float) would add 2.3 MiB, one of the smallest arrays a step handles (3x3 float32,
    ~150 bytes with its header) 14 MiB; what is allowed is allocator and page-cache noise."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests"),
                                                       os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", LONG_RUN, "1000", "100", "10"], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    rss = result["rss"]
    assert result["steps"] == 2000 + 100_000
    assert np.isfinite(result["loss"])
    bound = 2 ** 20
    print(f"\nRSS after warm-up {rss[0] / 2 ** 20:.1f} MiB; per chunk of 10^4 steps: "
          f"{[round((r - rss[0]) / 2 ** 10) for r in rss[1:]]} KiB growth; {result['seconds']:.0f} s")
    assert max(rss) - rss[0] <= bound, f"resident memory grew by {(max(rss) - rss[0]) / 2 ** 20:.2f} MiB"
