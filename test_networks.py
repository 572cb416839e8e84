#!/usr/bin/env python
"""fastnn's main job: train the book's networks on several data sets and show what they reach.

    python test_networks.py                      # embedded data, then every real data set found
    python test_networks.py --quick              # a smoke run (CI)
    python test_networks.py --datasets spiral,iris --epochs 500 --seed 1
    python test_networks.py --data-dir ~/data    # where MNIST, Fashion-MNIST, CIFAR-10, Malaria live
    python test_networks.py --download           # fetch the real data sets that are missing first

Embedded data (always available): spiral (the book's Ch18 model), binary spiral (Ch16), sine
regression (Ch17), vertical (Ch6 data) and Iris (shipped with fastnn). Real data sets are looked
for with fastnn.datasets' rules (--data-dir, then $FASTNN_DATA, then the user cache folder) and,
in a development checkout, in the shared folder next to the repository (../shared/datasets). A
data set that is not found gets one line saying where to put it, or, with --download, is fetched
from its official location into --data-dir, else $FASTNN_DATA, else the user cache folder (each
file checked against its pinned sha256 and written atomically; fastnn.datasets' download code).

The run ends with a table: data set, model, epochs, train and test accuracy, seconds, steps/s.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

try:
    import fastnn
    import fastnn.reference
    from fastnn import datasets
except ImportError as exc:  # the usual cause: the kernels are not built
    sys.exit(f"test_networks.py: cannot import fastnn ({exc}).\nBuild it first: python -m pip install -e .")

# The library the recipes build their networks from: fastnn, or fastnn.reference (the book's
# NumPy classes) with --reference, to compare accuracy and time on identical recipes.
nn = fastnn


def use_library(library) -> None:
    """Build the recipes' networks from `library` (fastnn or fastnn.reference) from now on."""
    global nn
    nn = library

REPO = pathlib.Path(__file__).resolve().parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@dataclass
class Result:
    dataset: str
    model: str
    epochs: int
    train_accuracy: float
    test_accuracy: float
    seconds: float
    steps: int
    target: str = ""
    met: bool | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


class Skip(Exception):
    """A data set that is not available; the message says where to put it."""


class DownloadFailed(Skip):
    """--download was given and fetching a data set failed; the message says why."""


# ---------------------------------------------------------------------------------------------
# Training helpers


def progress(enabled: bool, total: int, description: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, unit="epoch", leave=False, file=sys.stderr, dynamic_ncols=True)


def fit(model, X, y, *, epochs: int, batch_size: int | None, label: str, show: bool,
        validation_data=None, shuffle: bool = False) -> tuple[float, int]:
    """Train silently in chunks of epochs under one progress bar; returns (seconds, optimizer steps).

    Training in chunks is the same as one long call: the optimizer's iteration count (which drives
    the learning-rate decay) and the data order carry over from one call to the next."""
    steps_per_epoch = 1 if batch_size is None else -(-len(X) // batch_size)
    chunk = max(1, min(epochs, 10 if batch_size else 250))
    bar = progress(show, epochs, label)
    started = time.perf_counter()
    done = 0
    while done < epochs:
        n = min(chunk, epochs - done)
        validation = validation_data if done + n == epochs else None
        if nn is fastnn:
            model.train(X, y, epochs=n, batch_size=batch_size, verbose="silent", shuffle=shuffle,
                        validation_data=validation)
        else:  # the book's Model prints its log and has no verbose option
            with contextlib.redirect_stdout(io.StringIO()):
                model.train(X, y, epochs=n, batch_size=batch_size, print_every=10**9, validation_data=validation,
                            shuffle=shuffle)
        done += n
        if bar is not None:
            bar.update(n)
            bar.set_postfix(loss=f"{model.loss.calculate_accumulated():.3f}",
                            acc=f"{model.accuracy.calculate_accumulated():.3f}", refresh=False)
    seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return seconds, epochs * steps_per_epoch


def accuracy(model, X, y, batch_size=None) -> float:
    """Accuracy on (X, y) without dropout, as the book's evaluate computes it."""
    with contextlib.redirect_stdout(io.StringIO()):
        model.evaluate(X, y, batch_size=batch_size)
    return model.accuracy.calculate_accumulated()


def classifier(layers, *, optimizer, binary=False, loss=None):
    model = nn.Model()
    for layer in layers:
        model.add(layer)
    model.set(loss=loss or (nn.Loss_BinaryCrossentropy() if binary else nn.Loss_CategoricalCrossentropy()),
              optimizer=optimizer, accuracy=nn.Accuracy_Categorical(binary=binary))
    model.finalize()
    return model


def mlp(sizes, *, dropout=0.0, output="softmax", l2=0.0):
    """Dense layers with ReLU (and dropout) between them, then the output activation."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(nn.Layer_Dense(n_in, n_out, weight_regularizer_l2=l2 if not last else 0,
                                     bias_regularizer_l2=l2 if not last else 0))
        if not last:
            layers.append(nn.Activation_ReLU())
            if dropout:
                layers.append(nn.Layer_Dropout(dropout))
    layers.append({"softmax": nn.Activation_Softmax, "sigmoid": nn.Activation_Sigmoid,
                   "linear": nn.Activation_Linear}[output]())
    return layers


def scaled_images(X: np.ndarray) -> np.ndarray:
    """The book's scaling: uint8 pixels to [-1, 1], one row per image."""
    return ((X.reshape(len(X), -1).astype(np.float32) - 127.5) / 127.5)


def shuffled(X, y):
    """The book's Ch19 shuffle: one np.random.shuffle of the index array."""
    keys = np.array(range(X.shape[0]))
    np.random.shuffle(keys)
    return X[keys], y[keys]


# ---------------------------------------------------------------------------------------------
# Recipes: each returns a Result (or raises Skip).


def run_spiral(args, show):
    """The book's Ch18 model: spiral 1000x3, Dense(2,512, L2 5e-4) ReLU Dropout(0.1) Dense(512,3)."""
    epochs = args.epochs or (300 if args.quick else 10000)
    X, y = datasets.spiral_data(samples=1000, classes=3)
    X_test, y_test = datasets.spiral_data(samples=100, classes=3)
    model = classifier(mlp([2, 512, 3], dropout=0.1, l2=5e-4),
                       optimizer=nn.Optimizer_Adam(learning_rate=0.05, decay=5e-5))
    seconds, steps = fit(model, X, y, epochs=epochs, batch_size=None, label="spiral", show=show)
    return Result("spiral", "2-512-3, dropout 0.1 (Ch18)", epochs, accuracy(model, X, y),
                  accuracy(model, X_test, y_test), seconds, steps, "book run: 0.855 / 0.853")


# The binary spiral is 200 points: one float32 rounding difference early in a run (the book's
# nnfs.init() np.dot computes in float64 and rounds, BLAS's sgemm does not) moves its final
# accuracy by several points, so one run says little. Its row is the mean over this many seeds.
BINARY_SPIRAL_SEEDS = 10


def binary_spiral_once(args, show, seed: int) -> Result:
    """The book's Ch16 logistic regression: spiral 100x2, Dense(2,64, L2 5e-4) ReLU Dense(64,1) Sigmoid, BCE.
    In the book's order, after np.random.seed(seed): training data, model, training, then the test data."""
    np.random.seed(seed)
    epochs = args.epochs or (500 if args.quick else 10000)
    X, y = datasets.spiral_data(samples=100, classes=2)
    y = y.reshape(-1, 1)
    model = classifier(mlp([2, 64, 1], output="sigmoid", l2=5e-4), binary=True,
                       optimizer=nn.Optimizer_Adam(decay=5e-7))
    seconds, steps = fit(model, X, y, epochs=epochs, batch_size=None, label=f"binary spiral (seed {seed})", show=show)
    X_test, y_test = datasets.spiral_data(samples=100, classes=2)
    y_test = y_test.reshape(-1, 1)
    return Result("binary spiral", "2-64-1 sigmoid (Ch16)", epochs, accuracy(model, X, y),
                  accuracy(model, X_test, y_test), seconds, steps)


def run_binary_spiral(args, show):
    """binary_spiral_once for seeds --seed, --seed + 1, ... (3 with --quick): the mean accuracies,
    the total time, and the range of the test accuracies next to the book's single run."""
    runs = [binary_spiral_once(args, show, args.seed + i) for i in range(3 if args.quick else BINARY_SPIRAL_SEEDS)]
    tests = [r.test_accuracy for r in runs]
    return Result("binary spiral", f"2-64-1 sigmoid (Ch16), mean of {len(runs)} seeds", runs[0].epochs,
                  float(np.mean([r.train_accuracy for r in runs])), float(np.mean(tests)),
                  sum(r.seconds for r in runs), sum(r.steps for r in runs),
                  f"book run: 0.945 / 0.920; test {min(tests):.2f}-{max(tests):.2f} by seed")


def run_sine(args, show):
    """The book's Ch17 regression: sine_data(), Dense(1,64) ReLU Dense(64,64) ReLU Dense(64,1) Linear, MSE."""
    epochs = args.epochs or (500 if args.quick else 10000)
    X, y = datasets.sine_data()
    X_test, y_test = datasets.sine_data(samples=997)  # other points of the same curve
    layers = mlp([1, 64, 64, 1], output="linear")
    for layer in layers:
        if isinstance(layer, nn.Layer_Dense):
            layer.weights *= 10  # Ch17 initialises with 0.1 instead of 0.01
    model = nn.Model()
    for layer in layers:
        model.add(layer)
    model.set(loss=nn.Loss_MeanSquaredError(), optimizer=nn.Optimizer_Adam(learning_rate=0.005, decay=1e-3),
              accuracy=nn.Accuracy_Regression())
    model.finalize()
    seconds, steps = fit(model, X, y, epochs=epochs, batch_size=None, label="sine", show=show)
    return Result("sine", "1-64-64-1 linear (Ch17)", epochs, accuracy(model, X, y),
                  accuracy(model, X_test, y_test), seconds, steps, "book run: 0.970 (train)")


def run_vertical(args, show):
    """vertical_data 100x3 (the Ch6 data) with a small classifier."""
    epochs = args.epochs or (100 if args.quick else 1000)
    X, y = datasets.vertical_data(samples=100, classes=3)
    X_test, y_test = datasets.vertical_data(samples=100, classes=3)
    model = classifier(mlp([2, 16, 3]), optimizer=nn.Optimizer_Adam(learning_rate=0.01))
    seconds, steps = fit(model, X, y, epochs=epochs, batch_size=None, label="vertical", show=show)
    return Result("vertical", "2-16-3", epochs, accuracy(model, X, y), accuracy(model, X_test, y_test),
                  seconds, steps)


def run_iris(args, show):
    """Iris (shipped with fastnn): a stratified 99/51 split (17 test flowers per class), standardised
    features, 4-32-3."""
    epochs = args.epochs or (100 if args.quick else 500)
    X, y = datasets.load_iris()
    test = np.zeros(len(y), bool)
    for c in range(3):
        test[np.random.permutation(np.flatnonzero(y == c))[:17]] = True
    mean, std = X[~test].mean(axis=0), X[~test].std(axis=0)
    X = (X - mean) / std
    model = classifier(mlp([4, 32, 3]), optimizer=nn.Optimizer_Adam(learning_rate=0.01, decay=1e-3))
    seconds, steps = fit(model, X[~test], y[~test], epochs=epochs, batch_size=None, label="iris", show=show)
    result = Result("iris", "4-32-3", epochs, accuracy(model, X[~test], y[~test]),
                    accuracy(model, X[test], y[test]), seconds, steps, "test >= 0.96")
    result.met = result.test_accuracy >= 0.96
    return result


def find(loader: Callable, name: str, args):
    """Load a real data set from --data-dir, $FASTNN_DATA, the user cache or ../shared/datasets;
    with --download, fetch it when it is in none of them (into the first of the three)."""
    homes = [args.data_dir] if args.data_dir else [None]
    if not args.data_dir and SHARED_DATASETS.is_dir():
        homes.append(SHARED_DATASETS)
    for home in homes:
        try:
            return loader(home)
        except datasets.DatasetNotFoundError:
            continue
    if args.download:
        print(f"  {name}: not found; downloading it into {datasets.get_data_home(args.data_dir)} "
              "(every file checked against its pinned sha256)", flush=True)
        try:
            return loader(args.data_dir, download=True)
        except datasets.DownloadError as exc:
            raise DownloadFailed(f"{name}: the download failed, nothing was kept: {exc}") from None
    places = [str(p.root) for p in datasets._paths.search_path(args.data_dir)[0]]
    raise Skip(f"{name}: not found; run with --download to fetch it, or put its files in one of {', '.join(places)} "
               f"(see help(fastnn.datasets.{loader.__name__})) or pass --data-dir")


def image_run(args, show, *, name: str, description: str, data, layers: Callable, optimizer: Callable,
              epochs: int, target: str = "", threshold: float | None = None,
              prepare: Callable = None, reshuffle: bool = False) -> Result:
    """Train an image classifier the book's Ch19 way: shuffle the training images once, scale them
    to [-1, 1] (flattened for an MLP), build the model (after the shuffle, so the RNG order is the
    book's), train with batch 128 (reshuffled every epoch if asked), and report train/test
    accuracy. --quick trains 1 epoch on 5000 images."""
    prepare = prepare or scaled_images
    X, y, X_test, y_test = data
    epochs = args.epochs or (1 if args.quick else epochs)
    if args.quick:
        X, y = X[:5000], y[:5000]
    X, y = shuffled(prepare(X), y)
    X_test = prepare(X_test)
    model = classifier(layers(), optimizer=optimizer())
    seconds, steps = fit(model, X, y, epochs=epochs, batch_size=128, label=name, show=show, shuffle=reshuffle)
    result = Result(name, description, epochs, accuracy(model, X, y, 1024), accuracy(model, X_test, y_test, 1024),
                    seconds, steps, target)
    if threshold is not None and not args.quick:
        result.met = result.test_accuracy >= threshold
    return result


def run_mnist(args, show):
    """MNIST with an MLP: 784-512-512-10, dropout 0.2, Adam (decay 5e-4), batch 128, 15 epochs."""
    return image_run(args, show, name="mnist", description="784-512-512-10, dropout 0.2",
                     data=find(datasets.load_mnist, "mnist", args),
                     layers=lambda: mlp([784, 512, 512, 10], dropout=0.2),
                     optimizer=lambda: nn.Optimizer_Adam(learning_rate=0.001, decay=5e-4),
                     epochs=15, target="test >= 0.98", threshold=0.98)


def run_fashion_mnist(args, show):
    """The book's Ch19 recipe: 784-128-128-10, Adam(decay=1e-3), batch 128, 10 epochs, [-1, 1], shuffled once."""
    return image_run(args, show, name="fashion-mnist", description="784-128-128-10 (Ch19)",
                     data=find(datasets.load_fashion_mnist, "fashion-mnist", args),
                     layers=lambda: mlp([784, 128, 128, 10]), optimizer=lambda: nn.Optimizer_Adam(decay=1e-3),
                     epochs=10, target="test >= 0.87", threshold=0.87)


def run_cifar10(args, show):
    """CIFAR-10 (binary version) with an MLP, as the seed project did: 3072-512-256-10, dropout 0.2."""
    return image_run(args, show, name="cifar10", description="3072-512-256-10 MLP",
                     data=find(datasets.load_cifar10, "cifar10", args),
                     layers=lambda: mlp([3072, 512, 256, 10], dropout=0.2),
                     optimizer=lambda: nn.Optimizer_Adam(learning_rate=0.0005, decay=1e-4),
                     epochs=10, target="the seed's MLP wall: ~0.5-0.6")


def scaled_image_tensors(X: np.ndarray) -> np.ndarray:
    """uint8 images to [-1, 1] float32 in NCHW: (N, H, W) gets a channel axis, (N, C, H, W) stays."""
    X = X[:, None] if X.ndim == 3 else X
    return (X.astype(np.float32) - 127.5) / 127.5


def cnn(in_channels: int, size: int, classes: int, *, c1=32, c2=64, hidden=128, dropout=0.0):
    """Two 3x3 same-padded convolutions (c1, c2 channels), each with ReLU and 2x2 max-pooling, then
    Dense(hidden) and the softmax output: the recipe of tests/test_conv_accuracy.py."""
    layers = [nn.Layer_Conv2D(in_channels, c1, 3, padding=1), nn.Activation_ReLU(), nn.Layer_MaxPool2D(2),
              nn.Layer_Conv2D(c1, c2, 3, padding=1), nn.Activation_ReLU(), nn.Layer_MaxPool2D(2),
              nn.Layer_Flatten()]
    if dropout:
        layers.append(nn.Layer_Dropout(dropout))
    layers += [nn.Layer_Dense(c2 * (size // 4) ** 2, hidden), nn.Activation_ReLU()]
    if dropout:
        layers.append(nn.Layer_Dropout(dropout))
    layers += [nn.Layer_Dense(hidden, classes), nn.Activation_Softmax()]
    return layers


def cnn_run(args, show, *, name, data, in_channels, size, classes, epochs, dropout=0.0, threshold=None, target=""):
    """A CNN recipe: Adam 2e-3 with decay 1e-3, samples reshuffled every epoch. NumPy's BLAS is
    limited to one thread meanwhile, so the convolutions run one sample per core (see
    fastnn.conv: OpenBLAS's busy-waiting workers and an OpenMP team would fight for the cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    limits = threadpool_limits(1, "blas") if threadpool_limits and nn is fastnn else contextlib.nullcontext()
    with limits:
        return image_run(args, show, name=name, description=f"CNN 32/64 3x3{', dropout' if dropout else ''}",
                         data=data, layers=lambda: cnn(in_channels, size, classes, dropout=dropout),
                         optimizer=lambda: nn.Optimizer_Adam(learning_rate=2e-3, decay=1e-3), epochs=epochs,
                         target=target, threshold=threshold, prepare=scaled_image_tensors, reshuffle=True)


def run_mnist_cnn(args, show):
    return cnn_run(args, show, name="mnist-cnn", data=find(datasets.load_mnist, "mnist", args), in_channels=1,
                   size=28, classes=10, epochs=4, threshold=0.99, target="test >= 0.99")


def run_fashion_mnist_cnn(args, show):
    return cnn_run(args, show, name="fashion-mnist-cnn", data=find(datasets.load_fashion_mnist, "fashion-mnist", args),
                   in_channels=1, size=28, classes=10, epochs=8, dropout=0.25, threshold=0.91,
                   target="test >= 0.91")


def run_cifar10_cnn(args, show):
    return cnn_run(args, show, name="cifar10-cnn", data=find(datasets.load_cifar10, "cifar10", args), in_channels=3,
                   size=32, classes=10, epochs=15, dropout=0.25, target="past the MLP's ~0.55")


def _malaria(args, size):
    """Malaria cell images at size x size RGB, shuffled, split 80/20 (the data set has no official
    split): (X_train, y_train, X_test, y_test) as uint8 NCHW."""
    def load_malaria(home, download=False):
        return datasets.load_malaria(home, image_size=(size, size), download=download)

    X, y, _ = find(load_malaria, "malaria", args)
    order = np.random.permutation(len(X))
    X, y = X[order], y[order]
    split = int(0.8 * len(X))
    return X[:split], y[:split], X[split:], y[split:]


def run_malaria_cnn(args, show):
    return cnn_run(args, show, name="malaria-cnn", data=_malaria(args, 32), in_channels=3, size=32, classes=2,
                   epochs=8, dropout=0.25, target="past the MLP's ~0.6")


def run_malaria(args, show):
    """Malaria cell images (32x32 RGB, no official split: 80/20 here) with an MLP."""
    return image_run(args, show, name="malaria", description="3072-256-64-2 MLP", data=_malaria(args, 32),
                     layers=lambda: mlp([3 * 32 * 32, 256, 64, 2], dropout=0.2),
                     optimizer=lambda: nn.Optimizer_Adam(learning_rate=0.0005, decay=1e-4),
                     epochs=10, target="the seed's MLP wall: ~0.6")


RECIPES: dict[str, Callable] = {
    "spiral": run_spiral,
    "binary-spiral": run_binary_spiral,
    "sine": run_sine,
    "vertical": run_vertical,
    "iris": run_iris,
    "mnist": run_mnist,
    "fashion-mnist": run_fashion_mnist,
    "cifar10": run_cifar10,
    "malaria": run_malaria,
    "mnist-cnn": run_mnist_cnn,
    "fashion-mnist-cnn": run_fashion_mnist_cnn,
    "cifar10-cnn": run_cifar10_cnn,
    "malaria-cnn": run_malaria_cnn,
}


# ---------------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    header = ("dataset", "model", "epochs", "train acc", "test acc", "seconds", "steps/s", "target")
    rows = [header] + [(r.dataset, r.model, str(r.epochs), f"{r.train_accuracy:.3f}", f"{r.test_accuracy:.3f}",
                        f"{r.seconds:.1f}", f"{r.steps_per_second:,.0f}",
                        r.target + ("" if r.met is None else (" (met)" if r.met else " (MISSED)")))
                       for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 2 or i == 7 else cell.rjust(w) for i, (cell, w) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


BOOK_RUN_NOTE = (
    "book run: what the book printed for its one run. fastnn computes in float32 with BLAS's sgemm; the\n"
    "book's nnfs.init() np.dot computes in float64 and rounds to float32. The two differ in the last bit, and on\n"
    "these small data sets a one-ulp difference early in training moves a single run's final accuracy by\n"
    "several points (the binary spiral's seeds span the range shown): the mean over seeds is the figure to\n"
    "compare. docs/numerics.md explains.")


def notes(results: list[Result]) -> list[str]:
    """The footnotes the table needs: what "book run" means, when a row names one."""
    return [BOOK_RUN_NOTE] if any("book run" in r.target for r in results) else []


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every recipe (CI)")
    parser.add_argument("--datasets", default=",".join(RECIPES),
                        help=f"comma-separated subset of: {', '.join(RECIPES)}")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="folder holding mnist/, fashion-mnist/, cifar-10-*, malaria/ (default: fastnn's search path)")
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's epoch count")
    parser.add_argument("--seed", type=int, default=0, help="NumPy global seed, set before each recipe (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--download", action="store_true",
                        help="download the real data sets that are not found (into --data-dir, else $FASTNN_DATA, "
                             "else the user cache folder; sha256-checked, atomic)")
    parser.add_argument("--reference", action="store_true",
                        help="build the networks from fastnn.reference (the book's NumPy classes) to compare")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.epochs is not None and args.epochs <= 0:
        parser.error("--epochs must be a positive integer")
    args.names = names
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    use_library(fastnn.reference if args.reference else fastnn)
    show = not args.no_progress and sys.stderr.isatty()
    print(f"fastnn {fastnn.__version__}{' (reference classes)' if args.reference else ''}: training on "
          f"{', '.join(args.names)}" + (" (quick)" if args.quick else ""), flush=True)
    results, skipped, failed = [], [], []
    for name in args.names:
        np.random.seed(args.seed)
        try:
            result = RECIPES[name](args, show)
        except Skip as skip:
            (failed if isinstance(skip, DownloadFailed) else skipped).append(name)
            print(f"  {skip}", flush=True)
            continue
        results.append(result)
        print(f"  {name}: test accuracy {result.test_accuracy:.3f} in {result.seconds:.1f} s", flush=True)
    print()
    if results:
        print(table(results))
        for note in notes(results):
            print("\n" + note)
    missed = [r.dataset for r in results if r.met is False]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    if failed:
        print(f"\ndownloads failed: {', '.join(failed)}")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
