"""Slow accuracy runs of fastnn's convolutional layers on real data (``pytest -m slow``): a small CNN
reaches >= 0.99 test accuracy on MNIST and >= 0.91 on Fashion-MNIST, trained with fastnn.Model on
the 2-core reference machine in a few minutes. Skipped when ../shared/datasets is absent.

The recipes (also usable from scripts: ``RECIPES``, ``load_idx``, ``build_cnn``): pixels scaled to
[-1, 1]; Conv(1->c1, k, same padding)-ReLU-MaxPool(2)-Conv(c1->c2, k, same)-ReLU-MaxPool(2)-
Flatten-[Dropout]-Dense(c2*7*7 -> hidden)-ReLU-[Dropout]-Dense(hidden -> 10)-Softmax,
categorical cross-entropy, Adam (learning rate 2e-3, decay 1e-3 per step), batch 128, samples
reshuffled every epoch, seed 0; c1=32, c2=64, kernel 3, hidden 128; MNIST 4 epochs without
dropout, Fashion-MNIST 8 epochs with dropout 0.25.
The per-epoch times are printed (``-s`` shows them) and attached to the test report.
"""
from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

import fastnn as nn

RECIPES = {
    "mnist": dict(c1=32, c2=64, kernel_size=3, hidden=128, dropout=0.0, epochs=4, learning_rate=2e-3,
                  decay=1e-3, required=0.99),
    "fashion-mnist": dict(c1=32, c2=64, kernel_size=3, hidden=128, dropout=0.25, epochs=8, learning_rate=2e-3,
                          decay=1e-3, required=0.91),
}


def load_idx(folder, kind: str):
    """(images (n, 1, 28, 28) uint8, labels (n,) uint8) from the IDX gz files of MNIST or
    Fashion-MNIST (``kind`` is "train" or "t10k"); the headers are 16 and 8 bytes."""
    with gzip.open(folder / f"{kind}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(folder / f"{kind}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    assert len(images) == len(labels)
    return images, labels


def scale(images):
    return (images.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def build_cnn(c1, c2, kernel_size, hidden, dropout, learning_rate, decay, **_):
    model = nn.Model()
    padding = kernel_size // 2
    model.add(nn.Layer_Conv2D(1, c1, kernel_size, padding=padding))
    model.add(nn.Activation_ReLU())
    model.add(nn.Layer_MaxPool2D(2))
    model.add(nn.Layer_Conv2D(c1, c2, kernel_size, padding=padding))
    model.add(nn.Activation_ReLU())
    model.add(nn.Layer_MaxPool2D(2))
    model.add(nn.Layer_Flatten())
    if dropout:
        model.add(nn.Layer_Dropout(dropout))
    model.add(nn.Layer_Dense(c2 * 7 * 7, hidden))
    model.add(nn.Activation_ReLU())
    if dropout:
        model.add(nn.Layer_Dropout(dropout))
    model.add(nn.Layer_Dense(hidden, 10))
    model.add(nn.Activation_Softmax())
    model.set(loss=nn.Loss_CategoricalCrossentropy(),
              optimizer=nn.Optimizer_Adam(learning_rate=learning_rate, decay=decay),
              accuracy=nn.Accuracy_Categorical())
    model.finalize()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(RECIPES))
def test_cnn_reaches_its_accuracy(shared_datasets, dataset, record_property):
    folder = shared_datasets / dataset
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    recipe = RECIPES[dataset]
    X, y = load_idx(folder, "train")
    X_test, y_test = load_idx(folder, "t10k")
    nn.init(random_seed=0)
    model = build_cnn(**recipe)
    started = time.perf_counter()
    history = model.train(scale(X), y, epochs=recipe["epochs"], batch_size=128, shuffle=True, verbose=False)
    train_seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(scale(X_test), y_test, batch_size=500, verbose=False)
    epoch_seconds = [round(s, 1) for s in history["seconds"]]
    record_property("epoch_seconds", epoch_seconds)
    record_property("test_accuracy", accuracy)
    print(f"\n{dataset}: test accuracy {accuracy:.4f} after {recipe['epochs']} epochs; epoch seconds "
          f"{epoch_seconds} (total {train_seconds:.0f} s); train accuracy {history['accuracy'][-1]:.4f}")
    assert accuracy >= recipe["required"]
