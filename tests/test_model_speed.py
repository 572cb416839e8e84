"""How much Model.train costs over the layers it drives, and the Ch18 spiral Model against
fastnn.reference. Reports figures; asserts only that the runs agree.

Run: ``pytest -m slow tests/test_model_speed.py -s`` (BLAS pinned to one thread by conftest.py).

1. Per-step overhead: Model.train against a hand-written loop over the same compiled objects, same
   data and batches, doing the same work per step as the book's step (tests/_book.py's model_step:
   forward, loss with regularisation, accuracy, fused softmax/CCE backward, optimizer update), and
   ending on the same weights. What remains is the Model's own cost: slicing the batch,
   accumulating loss and accuracy, the NaN check, the log and the history. Median over repeats of
   the per-step time. Measured with the compiled plan (fastnn/_plan.py) off; Model.train with it,
   where the network has one, is timed beside them.
2. The Ch18 spiral Model (1000x3 spiral, 2-512-3, dropout 0.1, Adam, print_every=100, validation
   each epoch): seconds per epoch for fastnn (fast and book dropout) and fastnn.reference over a
   short run in one process, and the ratio.
"""
import contextlib
import io
import statistics
import time

import numpy as np
import pytest
from nnfs.datasets import spiral_data

import fastnn
import fastnn.reference as ref
from fastnn import _plan

import _book

pytestmark = pytest.mark.slow


def network(lib, sizes):
    """Dense layers of `sizes` with ReLU between them, Softmax, CCE, Adam(0.01)."""
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [lib.Layer_Dense(n_in, n_out), lib.Activation_ReLU()]
    layers[-1] = lib.Activation_Softmax()  # the last Dense feeds the softmax
    return _book.build_model(lib, layers, loss=lib.Loss_CategoricalCrossentropy(),
                             optimizer=lib.Optimizer_Adam(learning_rate=0.01), accuracy=lib.Accuracy_Categorical())


class HandWritten:
    """A fastnn Model's parts with its forward and backward written out: the same compiled calls
    and no Model method. Like the Model it skips the first layer's dinputs (nothing reads them),
    so both do the same compiled work."""

    def __init__(self, model):
        self.layers, self.trainable_layers = model.layers, model.trainable_layers
        self.loss, self.optimizer, self.accuracy = model.loss, model.optimizer, model.accuracy
        self.output_layer_activation = model.layers[-1]
        self.combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()

    def forward(self, inputs, training):
        for layer in self.layers:
            layer.forward(inputs, training)
            inputs = layer.output
        return inputs

    def backward(self, output, y):
        self.combined.backward(output, y)
        dvalues = self.combined.dinputs
        for layer in reversed(self.layers[1:-1]):
            layer.backward(dvalues)
            dvalues = layer.dinputs
        self.layers[0]._backward_parameters_only(dvalues)


def hand_loop(model, X, y, batch_size, epochs):
    """The same steps as Model.train: the book's step (_book.model_step) on a HandWritten model."""
    hand = HandWritten(model)
    model.loss.remember_trainable_layers(model.trainable_layers)
    model.loss.new_pass()
    model.accuracy.new_pass()
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.intp)
    steps = -(-len(X) // batch_size)
    for _ in range(epochs):
        for step in range(steps):
            _book.model_step(hand, X[step * batch_size:(step + 1) * batch_size],
                             y[step * batch_size:(step + 1) * batch_size])


def per_step(runs, steps, repeats=25):
    """(median, minimum) seconds per step of each run. The runs alternate so that load from other
    processes on the machine falls on all of them alike; the minimum is the least disturbed."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, samples in zip(runs, times):
            started = time.perf_counter()
            run()
            samples.append((time.perf_counter() - started) / steps)
    return [(statistics.median(samples), min(samples)) for samples in times]


@pytest.mark.parametrize("name, sizes, n_samples, batch_size", [
    ("tiny 2-8-3, batch 32", (2, 8, 3), 640, 32),
    ("spiral 2-64-3, batch 300", (2, 64, 3), 3000, 300),
    ("mnist-like 784-128-128-10, batch 128", (784, 128, 128, 10), 2560, 128),
])
def test_model_overhead_per_step(name, sizes, n_samples, batch_size, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], n_samples)
    steps = 3 * (-(-n_samples // batch_size))
    np.random.seed(0)
    hand_model = network(fastnn, sizes)
    np.random.seed(0)
    model = network(fastnn, sizes)
    np.random.seed(0)
    book_model = network(fastnn, sizes)
    np.random.seed(0)
    planned = network(fastnn, sizes)
    out = io.StringIO()
    plan = _plan.compile_plan
    # The Model's own cost is measured on the per-layer path (the hand loop's steps); the compiled
    # plan (fastnn/_plan.py), which these networks of one hidden layer get, is timed beside it.
    monkeypatch.setattr(_plan, "compile_plan", lambda *args, **kwargs: None)

    def compiled():
        monkeypatch.setattr(_plan, "compile_plan", plan)
        planned.train(X, y, epochs=3, batch_size=batch_size, verbose=False)
        monkeypatch.setattr(_plan, "compile_plan", lambda *args, **kwargs: None)

    def book_log():
        with contextlib.redirect_stdout(out):
            book_model.train(X, y, epochs=3, batch_size=batch_size, print_every=100)

    for _ in range(2):   # warm up (buffers, caches)
        hand_loop(hand_model, X, y, batch_size, 1)
        model.train(X, y, epochs=1, batch_size=batch_size, verbose=False)
        compiled()
    hand, silent, logged, fused = per_step([lambda: hand_loop(hand_model, X, y, batch_size, 3),
                                            lambda: model.train(X, y, epochs=3, batch_size=batch_size, verbose=False),
                                            book_log, compiled], steps)
    for hand_layer, layer in zip(hand_model.trainable_layers, model.trainable_layers):
        np.testing.assert_array_equal(hand_layer.weights, layer.weights)  # the same steps, computed alike
    # (The plan's steps agree with these up to float rounding: tests/test_fused_mlp.py.)
    with capsys.disabled():
        print(f"\n[{name}] us per step, median / min: hand loop {hand[0] * 1e6:.1f} / {hand[1] * 1e6:.1f}; "
              f"Model.train silent {silent[0] * 1e6:.1f} / {silent[1] * 1e6:.1f} "
              f"(min ratio {silent[1] / hand[1]:.3f}); with the book log {logged[0] * 1e6:.1f} / "
              f"{logged[1] * 1e6:.1f} (min ratio {logged[1] / hand[1]:.3f}); Model.train with its compiled "
              f"plan (where it has one) {fused[0] * 1e6:.1f} / {fused[1] * 1e6:.1f}")


def test_ch18_spiral_epoch_time_against_the_reference(capsys):
    epochs = 30
    results = {}
    for label, lib, kwargs in (("fastnn (fast dropout)", fastnn, {"mode": "fast"}),
                               ("fastnn (book dropout)", fastnn, {"mode": "book"}),
                               ("fastnn.reference", ref, {})):
        np.random.seed(0)
        X, y = spiral_data(samples=1000, classes=3)
        X_test, y_test = spiral_data(samples=100, classes=3)
        model = _book.ch18_model(lib, **kwargs)
        with contextlib.redirect_stdout(io.StringIO()):
            model.train(X, y, validation_data=(X_test, y_test), epochs=2, print_every=100)   # warm-up
            started = time.perf_counter()
            history = model.train(X, y, validation_data=(X_test, y_test), epochs=epochs, print_every=100)
            total = time.perf_counter() - started
        median = statistics.median(history.seconds) if history is not None else None
        results[label] = (total / epochs, median)
    reference = results["fastnn.reference"][0]
    with capsys.disabled():
        print(f"\n[Ch18 spiral 2-512-3, dropout 0.1, {epochs} epochs, one BLAS thread]")
        for label, (mean, median) in results.items():
            extra = f", median {median * 1e3:.2f} ms" if median is not None else ""
            print(f"  {label:24s} {mean * 1e3:8.2f} ms/epoch (mean{extra}); reference / this = "
                  f"{reference / mean:.1f}x; 10000 epochs ~ {mean * 10000:.0f} s")
