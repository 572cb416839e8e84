#!/usr/bin/env python
"""Per-epoch training time of the book's networks that Model.train runs as a compiled plan
(fastnn/_plan.py), against the same networks on the per-layer path, fastnn.reference (NumPy) and
PyTorch eager (when installed), float32, in one process.

    python benchmarks/bench_epochs.py                          # both networks, 1 and 2 threads, 3 rounds
    python benchmarks/bench_epochs.py --networks ch17 --threads 2 --rounds 5

Networks (the book's runs, whole data set per step as the book trains them):
- ch18: spiral_data(1000, 3) (3000 samples), Dense(2, 512, L2 5e-4) ReLU Dropout(0.1, fast mode)
  Dense(512, 3) Softmax + categorical cross-entropy, Adam(0.05, decay 5e-5);
- ch17: sine_data() (1000 samples), Dense(1, 64) ReLU Dense(64, 64) ReLU Dense(64, 1) Linear, mean
  squared error, Adam(0.005, decay 1e-3), the chapter's 0.1 * randn initial weights.

Peers: "fastnn" (Model.train as it runs: the compiled plan), "per-layer" (Model.train with the plan
switched off: the book's per-layer protocol on fastnn's kernels), "reference" (fastnn.reference's
Model) and "torch" (the same layers in torch.nn, the book's loss, torch.optim.Adam with the book's
decayed learning rate set every step). Every pool (NumPy's BLAS, fastnn's OpenMP team, torch) is
set to the thread count of the table. Each round runs the peers in a fresh random order, each
training a fresh model for a few untimed epochs and then a timed block; the table gives the
median over rounds of µs per epoch, and the ratios from the same rounds. The machine's load
average is printed with it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastnn
import fastnn.reference as ref
from fastnn import _plan
from fastnn.datasets import sine_data, spiral_data

try:
    import torch
except ImportError:  # the torch column is left out
    torch = None

NETWORKS = ("ch18", "ch17")
# Epochs per timed block: (fastnn and per-layer, reference and torch).
EPOCHS = {"ch18": (200, 10), "ch17": (1000, 100)}


def _data(name: str):
    np.random.seed(0)
    X, y = spiral_data(1000, 3) if name == "ch18" else sine_data()
    return X.astype(np.float32), y.astype(np.float32) if name == "ch17" else y


def build(nn, name: str):
    """The network `name` of library `nn` (fastnn or fastnn.reference), finalized."""
    np.random.seed(1)
    model = nn.Model()
    if name == "ch18":
        layers = [nn.Layer_Dense(2, 512, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4), nn.Activation_ReLU(),
                  nn.Layer_Dropout(0.1), nn.Layer_Dense(512, 3), nn.Activation_Softmax()]
        loss, optimizer, accuracy = nn.Loss_CategoricalCrossentropy(), nn.Optimizer_Adam(0.05, 5e-5), \
            nn.Accuracy_Categorical()
    else:
        layers = [nn.Layer_Dense(1, 64), nn.Activation_ReLU(), nn.Layer_Dense(64, 64), nn.Activation_ReLU(),
                  nn.Layer_Dense(64, 1), nn.Activation_Linear()]
        for dense in layers[::2]:
            dense.weights *= 10
        loss, optimizer, accuracy = nn.Loss_MeanSquaredError(), nn.Optimizer_Adam(0.005, 1e-3), \
            nn.Accuracy_Regression()
    for layer in layers:
        model.add(layer)
    model.set(loss=loss, optimizer=optimizer, accuracy=accuracy)
    model.finalize()
    return model


def _train_epochs(nn, name: str, X, y, plan: bool):
    model = build(nn, name)

    def run(epochs: int) -> None:
        if plan:
            model.train(X, y, epochs=epochs, verbose="silent")
            return
        saved = _plan.compile_plan
        _plan.compile_plan = lambda *args, **kwargs: None
        try:
            if nn is fastnn:
                model.train(X, y, epochs=epochs, verbose="silent")
            else:  # the reference prints the book's log: three lines an epoch, to nowhere
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    model.train(X, y, epochs=epochs, print_every=10 ** 9)
        finally:
            _plan.compile_plan = saved
    return run


def _torch_epochs(name: str, X, y):
    torch.manual_seed(1)
    nnt = torch.nn
    Xt = torch.from_numpy(X)
    if name == "ch18":
        net = nnt.Sequential(nnt.Linear(2, 512), nnt.ReLU(), nnt.Dropout(0.1), nnt.Linear(512, 3))
        yt = torch.from_numpy(np.asarray(y, np.int64))
        rate, decay = 0.05, 5e-5
        first = net[0]

        def loss_of(out):
            l2 = 5e-4 * (first.weight.pow(2).sum() + first.bias.pow(2).sum())
            return nnt.functional.cross_entropy(out, yt) + l2
    else:
        net = nnt.Sequential(nnt.Linear(1, 64), nnt.ReLU(), nnt.Linear(64, 64), nnt.ReLU(), nnt.Linear(64, 1))
        yt = torch.from_numpy(y)
        rate, decay = 0.005, 1e-3

        def loss_of(out):
            return nnt.functional.mse_loss(out, yt)
    optimizer = torch.optim.Adam(net.parameters(), lr=rate)
    steps = [0]

    def run(epochs: int) -> None:
        net.train()
        for _ in range(epochs):
            for group in optimizer.param_groups:
                group["lr"] = rate / (1 + decay * steps[0])
            optimizer.zero_grad(set_to_none=False)
            loss_of(net(Xt)).backward()
            optimizer.step()
            steps[0] += 1
    return run


@contextlib.contextmanager
def _threads(n: int):
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)


def measure(name: str, threads: int, rounds: int) -> dict:
    """{peer: [µs per epoch, one per round]}."""
    X, y = _data(name)
    fast_epochs, slow_epochs = EPOCHS[name]
    makers = {"fastnn": (lambda: _train_epochs(fastnn, name, X, y, True), fast_epochs),
              "per-layer": (lambda: _train_epochs(fastnn, name, X, y, False), fast_epochs),
              "reference": (lambda: _train_epochs(ref, name, X, y, False), slow_epochs)}
    if torch is not None:
        makers["torch"] = (lambda: _torch_epochs(name, X, y), slow_epochs)
    times: dict = {peer: [] for peer in makers}
    with _threads(threads):
        for _ in range(rounds):
            order = list(makers)
            random.shuffle(order)
            for peer in order:
                make, epochs = makers[peer]
                run = make()
                run(max(2, epochs // 20))   # warm-up: caches, buffers, thread pools
                started = time.perf_counter()
                run(epochs)
                times[peer].append((time.perf_counter() - started) / epochs * 1e6)
                time.sleep(0.2)              # let spinning pool threads go to sleep
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    names = [n for n in args.networks.split(",") if n]
    unknown = sorted(set(names) - set(NETWORKS))
    if unknown:
        parser.error(f"--networks: unknown {', '.join(unknown)}; choose from {', '.join(NETWORKS)}")
    counts = [int(t) for t in args.threads.split(",") if t]
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}")
    print("| network | threads | fastnn µs/epoch | per-layer | reference | torch | per-layer / fastnn | "
          "reference / fastnn | torch / fastnn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for threads in counts:
            times = measure(name, threads, args.rounds)
            med = {peer: statistics.median(values) for peer, values in times.items()}
            ratio = lambda peer: f"{med[peer] / med['fastnn']:.2f}x" if peer in med else "-"
            cell = lambda peer: f"{med[peer]:,.0f}" if peer in med else "-"
            print(f"| {name} | {threads} | {cell('fastnn')} | {cell('per-layer')} | {cell('reference')} | "
                  f"{cell('torch')} | {ratio('per-layer')} | {ratio('reference')} | {ratio('torch')} |", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
