"""The data every peer trains on: spiral sets from ``fastnn.datasets.spiral_data`` and the first
MNIST training images from ``fastnn.datasets.load_mnist``, cut into a configuration's batches.

Everything is float32 with int64 class ids for every peer (what ``Model.train`` hands its step).
"""
from __future__ import annotations

import pathlib

import numpy as np

from fastnn import datasets

DTYPE = np.float32
SHARED_DATASETS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets"


def spiral(samples: int, classes: int, seed: int = 0):
    """``fastnn.datasets.spiral_data(samples, classes)`` (float32) drawn after
    ``np.random.seed(seed)``, labels as int64; the global RNG is left as it was found."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        X, y = datasets.spiral_data(samples, classes, dtype=DTYPE)
    finally:
        np.random.set_state(state)
    return X, y.astype(np.int64)


def load_mnist():
    """(train images, train labels, where) from ``fastnn.datasets.load_mnist``: its own search path
    (``$FASTNN_DATA``, then the user cache folder), then the shared datasets folder beside the
    repository. None when MNIST is in none of them."""
    homes = [None] + ([SHARED_DATASETS] if SHARED_DATASETS.is_dir() else [])
    for home in homes:
        try:
            images, labels, _, _ = datasets.load_mnist(home)
        except datasets.DatasetNotFoundError:
            continue
        # The report names where the files came from, never a machine's absolute path.
        return images, labels, "fastnn.datasets' search path" if home is None else "the development data folder"
    return None


_CACHE: dict = {}


def mnist_rows(count: int = 4096):
    """(X float32 (count, 784) scaled to [-1, 1] as the book, y int64, source) from the first
    `count` MNIST training images; random data of the same shape when MNIST is not found."""
    if count not in _CACHE:
        found = load_mnist()
        if found is not None:
            images, labels, where = found
            X = ((images[:count].reshape(count, 784).astype(DTYPE) - 127.5) / 127.5).astype(DTYPE)
            y = labels[:count].astype(np.int64)
            source = f"MNIST ({where})"
        else:
            rng = np.random.default_rng(0)
            X = rng.uniform(-1, 1, size=(count, 784)).astype(DTYPE)
            y = rng.integers(0, 10, size=count).astype(np.int64)
            source = "random (MNIST files not found)"
        _CACHE[count] = (X, y, source)
    return _CACHE[count]


def batches(config):
    """(list of (X, y) batches of `config`, description of the data)."""
    if config.data == "spiral":
        per_class = config.batch * config.n_batches // 3
        X, y = spiral(per_class, 3)
        source = f"spiral_data({per_class}, 3)"
    else:
        X, y, source = mnist_rows(max(4096, config.batch * config.n_batches))
        n_out = config.sizes[-1]
        if n_out != 10:  # pragma: no cover - all mnist-like configs have 10 classes
            y = y % n_out
    out = []
    for i in range(config.n_batches):
        sl = slice(i * config.batch, (i + 1) * config.batch)
        out.append((X[sl], y[sl]))
    return out, source


def cycle(items):
    """A function returning the items in turn, forever."""
    state = [0]
    n = len(items)

    def nxt():
        i = state[0]
        state[0] = i + 1 if i + 1 < n else 0
        return items[i]
    return nxt
