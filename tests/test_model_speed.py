"""How much Model.train costs over the layers it drives, and the Ch18 spiral Model against
fastnn.reference (issue 5, "Speed"). Reports figures; asserts only that the runs agree.

Run: ``pytest -m slow tests/test_model_speed.py -s`` (BLAS pinned to one thread by conftest.py).

1. Per-step overhead: Model.train against a hand-written loop over the same compiled objects, same
   data and batches, doing the same work per step as the book's Ch14-17 loops (forward, loss with
   regularisation, accuracy, fused softmax/CCE backward, optimizer update). What remains is the
   Model's own cost: slicing the batch, accumulating loss and accuracy, the NaN check, the log and
   the history. Median over repeats of the per-step time.
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

pytestmark = pytest.mark.slow


def network(lib, sizes, dropout=None, l2=0.0, **dropout_kwargs):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        regularize = {"weight_regularizer_l2": l2, "bias_regularizer_l2": l2} if i == 0 else {}
        layers.append(lib.Layer_Dense(n_in, n_out, **regularize))
        if i < len(sizes) - 2:
            layers.append(lib.Activation_ReLU())
            if dropout and i == 0:
                layers.append(lib.Layer_Dropout(dropout, **dropout_kwargs))
    layers.append(lib.Activation_Softmax())
    model = lib.Model()
    for layer in layers:
        model.add(layer)
    model.set(loss=lib.Loss_CategoricalCrossentropy(), optimizer=lib.Optimizer_Adam(learning_rate=0.01),
              accuracy=lib.Accuracy_Categorical())
    model.finalize()
    return model


def hand_loop(model, X, y, batch_size, epochs):
    """The same step as Model.train, written out: no Model method is called. Like the Model it
    skips the first layer's dinputs (nothing reads them), so both do the same compiled work."""
    layers, loss, optimizer, accuracy = model.layers, model.loss, model.optimizer, model.accuracy
    trainable = model.trainable_layers
    combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    loss.remember_trainable_layers(trainable)
    loss.new_pass()
    accuracy.new_pass()
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.intp)
    steps = -(-len(X) // batch_size)
    for _ in range(epochs):
        for step in range(steps):
            batch_X = X[step * batch_size:(step + 1) * batch_size]
            batch_y = y[step * batch_size:(step + 1) * batch_size]
            inputs = batch_X
            for layer in layers:
                layer.forward(inputs, True)
                inputs = layer.output
            data_loss, reg_loss = loss.calculate(inputs, batch_y, include_regularization=True)
            accuracy.calculate(layers[-1].predictions(inputs), batch_y)
            combined.backward(inputs, batch_y)
            dvalues = combined.dinputs
            for layer in reversed(layers[1:-1]):
                layer.backward(dvalues)
                dvalues = layer.dinputs
            layers[0]._backward_parameters_only(dvalues)   # as the Model: no dinputs for the first layer
            optimizer.pre_update_params()
            for layer in trainable:
                optimizer.update_params(layer)
            optimizer.post_update_params()


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
def test_model_overhead_per_step(name, sizes, n_samples, batch_size, capsys):
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
    out = io.StringIO()

    def book_log():
        with contextlib.redirect_stdout(out):
            book_model.train(X, y, epochs=3, batch_size=batch_size, print_every=100)

    for _ in range(2):   # warm up (buffers, caches)
        hand_loop(hand_model, X, y, batch_size, 1)
        model.train(X, y, epochs=1, batch_size=batch_size, verbose=False)
    hand, silent, logged = per_step([lambda: hand_loop(hand_model, X, y, batch_size, 3),
                                     lambda: model.train(X, y, epochs=3, batch_size=batch_size, verbose=False),
                                     book_log], steps)
    with capsys.disabled():
        print(f"\n[{name}] us per step, median / min: hand loop {hand[0] * 1e6:.1f} / {hand[1] * 1e6:.1f}; "
              f"Model.train silent {silent[0] * 1e6:.1f} / {silent[1] * 1e6:.1f} "
              f"(min ratio {silent[1] / hand[1]:.3f}); with the book log {logged[0] * 1e6:.1f} / "
              f"{logged[1] * 1e6:.1f} (min ratio {logged[1] / hand[1]:.3f})")


def test_ch18_spiral_epoch_time_against_the_reference(capsys):
    epochs = 30
    results = {}
    for label, lib, kwargs in (("fastnn (fast dropout)", fastnn, {"mode": "fast"}),
                               ("fastnn (book dropout)", fastnn, {"mode": "book"}),
                               ("fastnn.reference", ref, {})):
        np.random.seed(0)
        X, y = spiral_data(samples=1000, classes=3)
        X_test, y_test = spiral_data(samples=100, classes=3)
        model = network(lib, (2, 512, 3), dropout=0.1, l2=5e-4, **kwargs)
        model.optimizer = lib.Optimizer_Adam(learning_rate=0.05, decay=5e-5)
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
