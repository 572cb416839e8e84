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
import pathlib
import sys
import time
from dataclasses import dataclass

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
    epoch_seconds: tuple = ()

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
        shuffle: bool = False, callbacks=(), augment=None) -> tuple[float, int, list]:
    """Train silently in chunks of epochs under one progress bar; returns (seconds, optimizer steps,
    seconds of each epoch (fastnn's History; empty for the reference, whose train returns None)).

    Training in chunks is the same as one long call: the optimizer's iteration count (which drives
    the learning-rate decay and the schedules) and the data order carry over from one call to the
    next. `callbacks` and `augment` go to every train call."""
    steps_per_epoch = 1 if batch_size is None else -(-len(X) // batch_size)
    chunk = max(1, min(epochs, 10 if batch_size else 250))
    bar = progress(show, epochs, label)
    epoch_seconds = []
    started = time.perf_counter()
    done = 0
    while done < epochs:
        n = min(chunk, epochs - done)
        if nn is fastnn:
            history = model.train(X, y, epochs=n, batch_size=batch_size, verbose="silent", shuffle=shuffle,
                                  callbacks=list(callbacks), augment=augment)
            epoch_seconds += history.seconds
        else:  # the book's Model prints its log and has no verbose option
            with contextlib.redirect_stdout(io.StringIO()):
                model.train(X, y, epochs=n, batch_size=batch_size, print_every=10**9, shuffle=shuffle,
                            callbacks=list(callbacks), augment=augment)
        done += n
        if bar is not None:
            bar.update(n)
            bar.set_postfix(loss=f"{model.loss.calculate_accumulated():.3f}",
                            acc=f"{model.accuracy.calculate_accumulated():.3f}", refresh=False)
    seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    return seconds, epochs * steps_per_epoch, epoch_seconds


def accuracy(model, X, y, batch_size=None) -> float:
    """Accuracy on (X, y) without dropout, as the book's evaluate computes it."""
    with contextlib.redirect_stdout(io.StringIO()):
        model.evaluate(X, y, batch_size=batch_size)
    return model.accuracy.calculate_accumulated()


def scaled_images(X: np.ndarray) -> np.ndarray:
    """The book's scaling: uint8 pixels to [-1, 1], one row per image."""
    return ((X.reshape(len(X), -1).astype(np.float32) - 127.5) / 127.5)


def scaled_image_tensors(X: np.ndarray) -> np.ndarray:
    """uint8 images to [-1, 1] float32 in NCHW: (N, H, W) gets a channel axis, (N, C, H, W) stays."""
    X = X[:, None] if X.ndim == 3 else X
    return (X.astype(np.float32) - 127.5) / 127.5


def shuffled(X, y):
    """The book's Ch19 shuffle: one np.random.shuffle of the index array."""
    keys = np.array(range(X.shape[0]))
    np.random.shuffle(keys)
    return X[keys], y[keys]


def find(loader: str, name: str, args, **options):
    """Load a real data set with ``fastnn.datasets.<loader>`` from --data-dir, $FASTNN_DATA, the
    user cache or ../shared/datasets; with --download, fetch it when it is in none of them (into
    the first of the three)."""
    homes = [args.data_dir] if args.data_dir else [None]
    if not args.data_dir and SHARED_DATASETS.is_dir():
        homes.append(SHARED_DATASETS)
    for home in homes:
        try:
            return getattr(datasets, loader)(home, **options)
        except datasets.DatasetNotFoundError:
            continue
    if getattr(args, "download", False):
        print(f"  {name}: not found; downloading it into {datasets.get_data_home(args.data_dir)} "
              "(every file checked against its pinned sha256)", flush=True)
        try:
            return getattr(datasets, loader)(args.data_dir, download=True, **options)
        except datasets.DownloadError as exc:
            raise DownloadFailed(f"{name}: the download failed, nothing was kept: {exc}") from None
    places = [str(p.root) for p in datasets._paths.search_path(args.data_dir)[0]]
    raise Skip(f"{name}: not found; run with --download to fetch it, or put its files in one of {', '.join(places)} "
               f"(see help(fastnn.datasets.{loader})) or pass --data-dir")


# ---------------------------------------------------------------------------------------------
# What a recipe is made of: its network, its data and how they are trained.


@dataclass(frozen=True)
class MLP:
    """Dense layers with ReLU (and dropout) between them, then the output activation."""
    sizes: tuple
    dropout: float = 0.0
    output: str = "softmax"     # "softmax", "sigmoid" or "linear"
    l2: float = 0.0             # weight and bias L2 of every layer but the last
    weight_scale: float = 1.0   # multiplies the initial weights (Ch17: 0.1 * randn instead of 0.01)
    one_thread: bool = False      # fastnn on one thread (below)

    def layers(self) -> list:
        layers = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            last = i == len(self.sizes) - 2
            layers.append(nn.Layer_Dense(n_in, n_out, weight_regularizer_l2=self.l2 if not last else 0,
                                         bias_regularizer_l2=self.l2 if not last else 0))
            if self.weight_scale != 1.0:
                layers[-1].weights *= self.weight_scale
            if not last:
                layers.append(nn.Activation_ReLU())
                if self.dropout:
                    layers.append(nn.Layer_Dropout(self.dropout))
        layers.append({"softmax": nn.Activation_Softmax, "sigmoid": nn.Activation_Sigmoid,
                       "linear": nn.Activation_Linear}[self.output]())
        return layers

    def prepare(self, images: np.ndarray) -> np.ndarray:
        return scaled_images(images)

    def threads(self):
        """fastnn on one thread (NumPy's BLAS and fastnn's OpenMP team) where one_thread says so.
        The embedded recipes' steps take well under a millisecond, and on a shared machine a second
        thread that loses its core to another process stalls every step it is part of: measured on
        the 2-core VM while another process kept a core busy, the sine recipe's step took 0.35 to
        0.6 ms on one thread and 1.5 to 3.8 ms on two (on an idle machine two threads take it from
        about 0.3 to 0.18 ms). One thread keeps the main job's time predictable."""
        if not self.one_thread:
            return contextlib.nullcontext()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return contextlib.nullcontext()
        return threadpool_limits(1) if nn is fastnn else contextlib.nullcontext()


@dataclass(frozen=True)
class CNN:
    """Two 3x3 same-padded convolutions (c1, c2 channels), each with [BatchNorm] ReLU and 2x2
    max-pooling, then [Dropout] Dense(hidden) ReLU [Dropout] and the softmax output."""
    in_channels: int
    size: int
    classes: int
    dropout: float = 0.0
    c1: int = 32
    c2: int = 64
    hidden: int = 128
    batch_norm: bool = False            # Layer_BatchNorm after each convolution, before its ReLU

    def _block(self, n_in: int, n_out: int) -> list:
        layers = [nn.Layer_Conv2D(n_in, n_out, 3, padding=1)]
        if self.batch_norm:
            layers.append(nn.Layer_BatchNorm(n_out))
        return layers + [nn.Activation_ReLU(), nn.Layer_MaxPool2D(2)]

    def layers(self) -> list:
        layers = self._block(self.in_channels, self.c1) + self._block(self.c1, self.c2) + [nn.Layer_Flatten()]
        if self.dropout:
            layers.append(nn.Layer_Dropout(self.dropout))
        layers += [nn.Layer_Dense(self.c2 * (self.size // 4) ** 2, self.hidden), nn.Activation_ReLU()]
        if self.dropout:
            layers.append(nn.Layer_Dropout(self.dropout))
        layers += [nn.Layer_Dense(self.hidden, self.classes), nn.Activation_Softmax()]
        return layers

    def prepare(self, images: np.ndarray) -> np.ndarray:
        return scaled_image_tensors(images)

    def threads(self):
        """No thread setting: fastnn's convolutions split the batch over the OpenMP team that NumPy's
        BLAS also runs on, at default settings (docs/threads.md)."""
        return contextlib.nullcontext()


@dataclass(frozen=True)
class Generated:
    """Embedded data from a fastnn.datasets generator: the training set, then the test set (drawn
    before the model is built, or after training as the book's Ch16 does)."""
    generator: str                      # "spiral_data", "vertical_data" or "sine_data"
    train: tuple                        # the generator's arguments for the training set
    test: tuple                         # and for the test set
    column_labels: bool = False         # y reshaped to (n, 1) (binary logistic regression)
    test_after_training: bool = False

    def _draw(self, arguments):
        X, y = getattr(datasets, self.generator)(*arguments)
        return X, y.reshape(-1, 1) if self.column_labels else y

    def load(self, args, network):
        """((X, y), a function returning (X_test, y_test))."""
        train = self._draw(self.train)
        if self.test_after_training:
            return train, lambda: self._draw(self.test)
        test = self._draw(self.test)
        return train, lambda: test


@dataclass(frozen=True)
class Iris:
    """Iris (shipped with fastnn): a stratified split, `test_per_class` test flowers per class,
    features standardised with the training part's mean and deviation."""
    test_per_class: int = 17

    def load(self, args, network):
        X, y = datasets.load_iris()
        test = np.zeros(len(y), bool)
        for c in range(3):
            test[np.random.permutation(np.flatnonzero(y == c))[:self.test_per_class]] = True
        mean, std = X[~test].mean(axis=0), X[~test].std(axis=0)
        X = (X - mean) / std
        return (X[~test], y[~test]), lambda: (X[test], y[test])


@dataclass(frozen=True)
class Images:
    """A real image data set, prepared the book's Ch19 way: the training images shuffled once and
    scaled to [-1, 1] (flattened for an MLP, NCHW for a CNN). --quick keeps the first 5000.
    `image_size` (Malaria, which has no official split): the images resized, shuffled and split
    80/20."""
    loader: str                     # the fastnn.datasets loader: "load_mnist", ...
    dataset: str                    # its name in the not-found message
    image_size: int | None = None

    def _fetch(self, args):
        if self.image_size is None:
            return find(self.loader, self.dataset, args)
        X, y, _ = find(self.loader, self.dataset, args, image_size=(self.image_size, self.image_size))
        order = np.random.permutation(len(X))
        X, y = X[order], y[order]
        split = int(0.8 * len(X))
        return X[:split], y[:split], X[split:], y[split:]

    def load(self, args, network):
        X, y, X_test, y_test = self._fetch(args)
        if args.quick:
            X, y = X[:5000], y[:5000]
        if getattr(args, "samples", None):
            X, y, X_test, y_test = X[:args.samples], y[:args.samples], X_test[:args.samples], y_test[:args.samples]
        X, y = shuffled(network.prepare(X), y)
        X_test = network.prepare(X_test)
        return (X, y), lambda: (X_test, y_test)


# Recipe.loss: (loss class, accuracy class, accuracy keywords), by name in the library in use.
LOSSES = {
    "categorical": ("Loss_CategoricalCrossentropy", "Accuracy_Categorical", {}),
    "binary": ("Loss_BinaryCrossentropy", "Accuracy_Categorical", {"binary": True}),
    "regression": ("Loss_MeanSquaredError", "Accuracy_Regression", {}),
}


@dataclass(frozen=True)
class Recipe:
    """One network on one data set, trained with Adam; what the main job runs and the slow
    accuracy tests (tests/test_accuracy.py, tests/test_conv_accuracy.py) assert."""
    name: str                           # the --datasets name
    model: str                          # the table's model column
    data: Generated | Iris | Images
    network: MLP | CNN
    adam: tuple                         # (learning_rate, decay)
    epochs: int
    quick_epochs: int = 1               # epochs with --quick
    batch_size: int | None = None       # None: the whole set per step
    loss: str = "categorical"           # a key of LOSSES: "categorical", "binary" (sigmoid outputs), "regression"
    reshuffle: bool = False             # reshuffle the samples every epoch (fastnn's Model.train)
    target: str = ""
    threshold: float | None = None      # the test accuracy the target asks for
    judged_when_quick: bool = False     # the threshold is judged in --quick runs too
    label: str = ""                     # the table's data-set column, when it is not the name
    augment: tuple | None = None        # (padding, flip): Augmentation_CropFlip of every training batch
    cosine: float | None = None         # warm-up epochs of a Schedule_Cosine over the run's epochs
    seeds: int = 1                      # the main job's row: the mean over this many seeds (3 with --quick)

    @property
    def title(self) -> str:
        return self.label or self.name

    def build(self):
        """The recipe's finalized Model, from the library in use."""
        model = nn.Model()
        for layer in self.network.layers():
            model.add(layer)
        loss, accuracy, accuracy_options = LOSSES[self.loss]
        learning_rate, decay = self.adam
        model.set(loss=getattr(nn, loss)(), optimizer=nn.Optimizer_Adam(learning_rate=learning_rate, decay=decay),
                  accuracy=getattr(nn, accuracy)(**accuracy_options))
        model.finalize()
        return model

    def tools(self, epochs: int) -> tuple[list, object]:
        """(callbacks, augment) of a run of `epochs` epochs, from the library in use."""
        callbacks = [] if self.cosine is None else [nn.Schedule_Cosine(epochs, warmup=min(self.cosine, epochs / 2))]
        augment = None if self.augment is None else nn.Augmentation_CropFlip(*self.augment)
        return callbacks, augment


def run(recipe: Recipe, args, show: bool) -> Result:
    """Train `recipe` (with args.quick, args.epochs, args.data_dir) and measure its train and test
    accuracy; raises Skip when its data set is not found."""
    epochs = args.epochs or (recipe.quick_epochs if args.quick else recipe.epochs)
    evaluation_batch = None if recipe.batch_size is None else 1024
    with recipe.network.threads():
        (X, y), test_data = recipe.data.load(args, recipe.network)
        model = recipe.build()
        callbacks, augment = recipe.tools(epochs)
        seconds, steps, epoch_seconds = fit(model, X, y, epochs=epochs, batch_size=recipe.batch_size,
                                            label=recipe.title, show=show, shuffle=recipe.reshuffle,
                                            callbacks=callbacks, augment=augment)
        X_test, y_test = test_data()
        result = Result(recipe.title, recipe.model, epochs, accuracy(model, X, y, evaluation_batch),
                        accuracy(model, X_test, y_test, evaluation_batch), seconds, steps, recipe.target,
                        epoch_seconds=tuple(epoch_seconds))
    if recipe.threshold is not None and (recipe.judged_when_quick or not args.quick):
        result.met = result.test_accuracy >= recipe.threshold
    return result


def run_seeds(recipe: Recipe, args, show: bool) -> Result:
    """`run` after np.random.seed(args.seed + i) for each of the recipe's seeds (at most 3 with
    --quick): the mean accuracies, the total time, and the range of the test accuracies."""
    count = min(recipe.seeds, 3) if args.quick else recipe.seeds
    runs = []
    for i in range(count):
        np.random.seed(args.seed + i)
        runs.append(run(recipe, args, show))
    if count == 1:
        return runs[0]
    tests = [r.test_accuracy for r in runs]
    return Result(recipe.title, f"{recipe.model}, mean of {count} seeds", runs[0].epochs,
                  float(np.mean([r.train_accuracy for r in runs])), float(np.mean(tests)),
                  sum(r.seconds for r in runs), sum(r.steps for r in runs),
                  f"{recipe.target}; test {min(tests):.2f}-{max(tests):.2f} by seed")


# The binary spiral is 200 points: one float32 rounding difference early in a run (the book's
# nnfs.init() np.dot computes in float64 and rounds, BLAS's sgemm does not) moves its final
# accuracy by several points, so one run says little. Its row is the mean over this many seeds.
BINARY_SPIRAL_SEEDS = 10

# ---------------------------------------------------------------------------------------------
# The recipes


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe("spiral", "2-512-3, dropout 0.1 (Ch18)", Generated("spiral_data", (1000, 3), (100, 3)),
           MLP((2, 512, 3), dropout=0.1, l2=5e-4, one_thread=True), adam=(0.05, 5e-5), epochs=10000,
           quick_epochs=300, target="book run: 0.855 / 0.853"),
    Recipe("binary-spiral", "2-64-1 sigmoid (Ch16)",
           Generated("spiral_data", (100, 2), (100, 2), column_labels=True, test_after_training=True),
           MLP((2, 64, 1), output="sigmoid", l2=5e-4, one_thread=True), adam=(0.001, 5e-7), epochs=10000,
           quick_epochs=500, loss="binary", target="book run: 0.945 / 0.920", label="binary spiral",
           seeds=BINARY_SPIRAL_SEEDS),
    Recipe("sine", "1-64-64-1 linear (Ch17)", Generated("sine_data", (), (997,)),
           MLP((1, 64, 64, 1), output="linear", weight_scale=10, one_thread=True), adam=(0.005, 1e-3),
           epochs=10000, quick_epochs=500, loss="regression", target="book run: 0.970 (train)"),
    Recipe("vertical", "2-16-3", Generated("vertical_data", (100, 3), (100, 3)),
           MLP((2, 16, 3), one_thread=True), adam=(0.01, 0.0), epochs=1000, quick_epochs=100),
    Recipe("iris", "4-32-3", Iris(), MLP((4, 32, 3), one_thread=True), adam=(0.01, 1e-3), epochs=500,
           quick_epochs=100, target="test >= 0.96", threshold=0.96, judged_when_quick=True),
    Recipe("mnist", "784-512-512-10, dropout 0.2", Images("load_mnist", "mnist"),
           MLP((784, 512, 512, 10), dropout=0.2), adam=(0.001, 5e-4), epochs=15, batch_size=128,
           target="test >= 0.98", threshold=0.98),
    Recipe("fashion-mnist", "784-128-128-10 (Ch19)",
           Images("load_fashion_mnist", "fashion-mnist"), MLP((784, 128, 128, 10)), adam=(0.001, 1e-3), epochs=10,
           batch_size=128, target="test >= 0.87", threshold=0.87),
    Recipe("cifar10", "3072-512-256-10 MLP", Images("load_cifar10", "cifar10"),
           MLP((3072, 512, 256, 10), dropout=0.2), adam=(0.0005, 1e-4), epochs=10, batch_size=128,
           target="the seed's MLP wall: ~0.5-0.6"),
    Recipe("malaria", "3072-256-64-2 MLP", Images("load_malaria", "malaria", image_size=32),
           MLP((3 * 32 * 32, 256, 64, 2), dropout=0.2), adam=(0.0005, 1e-4), epochs=10, batch_size=128,
           target="the seed's MLP wall: ~0.6"),
    Recipe("mnist-cnn", "CNN 32/64 3x3", Images("load_mnist", "mnist"), CNN(1, 28, 10),
           adam=(2e-3, 1e-3), epochs=4, batch_size=128, reshuffle=True, target="test >= 0.99", threshold=0.99),
    Recipe("fashion-mnist-cnn", "CNN 32/64 3x3, dropout",
           Images("load_fashion_mnist", "fashion-mnist"), CNN(1, 28, 10, dropout=0.25), adam=(2e-3, 1e-3),
           epochs=8, batch_size=128, reshuffle=True, target="test >= 0.91", threshold=0.91),
    Recipe("cifar10-cnn", "CNN 32/64 3x3, dropout", Images("load_cifar10", "cifar10"),
           CNN(3, 32, 10, dropout=0.25), adam=(2e-3, 1e-3), epochs=15, batch_size=128, reshuffle=True,
           target="past the MLP's ~0.55"),
    Recipe("malaria-cnn", "CNN 32/64 3x3, dropout", Images("load_malaria", "malaria", image_size=32),
           CNN(3, 32, 2, dropout=0.25), adam=(2e-3, 1e-3), epochs=8, batch_size=128, reshuffle=True,
           target="past the MLP's ~0.6"),
    # The training tools: batch normalisation after each convolution, every batch augmented as it is
    # taken (random shifts of up to `padding` pixels; mirrored where that keeps the class), and a cosine
    # schedule after a one-epoch warm-up (docs/training.md).
    Recipe("mnist-cnn-bn", "CNN 32/64 BN, dropout; shifts, cosine", Images("load_mnist", "mnist"),
           CNN(1, 28, 10, dropout=0.25, batch_norm=True), adam=(3e-3, 0.0), epochs=12, batch_size=128,
           reshuffle=True, augment=(2, False), cosine=1, target="test >= 0.994", threshold=0.994),
    Recipe("fashion-mnist-cnn-bn", "CNN 32/64 BN, dropout, 256; shifts+flips, cosine",
           Images("load_fashion_mnist", "fashion-mnist"), CNN(1, 28, 10, dropout=0.3, hidden=256, batch_norm=True),
           adam=(3e-3, 0.0), epochs=20, batch_size=128, reshuffle=True, augment=(1, True), cosine=1,
           target="test >= 0.93", threshold=0.93),
    Recipe("cifar10-cnn-bn", "CNN 32/64 BN, dropout, 256; shifts+flips, cosine", Images("load_cifar10", "cifar10"),
           CNN(3, 32, 10, dropout=0.3, hidden=256, batch_norm=True), adam=(3e-3, 0.0), epochs=30, batch_size=128,
           reshuffle=True, augment=(4, True), cosine=1, target="past the plain CNN"),
    Recipe("malaria-cnn-bn", "CNN 32/64 BN, dropout; shifts+flips, cosine",
           Images("load_malaria", "malaria", image_size=32), CNN(3, 32, 2, dropout=0.25, batch_norm=True),
           adam=(3e-3, 0.0), epochs=12, batch_size=128, reshuffle=True, augment=(2, True), cosine=1,
           target="past the plain CNN"),
)}


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
    parser.add_argument("--samples", type=int, default=None,
                        help="keep the first N training and N test samples of the real data sets (smoke runs)")
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
    if args.samples is not None and args.samples <= 0:
        parser.error("--samples must be a positive integer")
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
            result = run_seeds(RECIPES[name], args, show)
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
