"""Convolution benchmarks: Layer_Conv2D forward+backward, Layer_MaxPool2D and Layer_BatchNorm
forward+backward and whole CNN training steps, fastnn against fastnn.reference (NumPy) and
PyTorch (when installed), float32, in one process.

    pytest benchmarks/bench_conv.py --benchmark-only          # timings (pytest-benchmark groups)
    pytest benchmarks/bench_conv.py --benchmark-disable       # smoke pass: every case runs once
    python benchmarks/bench_conv.py [--rounds 5] [--wait-idle 300]   # ratio table (medians)

Threads: BLAS, OpenMP and torch are pinned to FASTNN_BENCH_THREADS (default 2, the cores of the
reference machine) for the whole run; the figures are printed with the run. Two fastnn peers:
- "fastnn": the process defaults. NumPy's OpenBLAS runs its threaded GEMMs on fastnn's OpenMP
  team, and the conv kernels split the batch over that team (docs/threads.md);
- "fastnn-blas1": NumPy's BLAS limited to one thread for the case (threadpoolctl), the old advice
  for CNNs on few cores, kept to show that it is no longer needed.
torch uses its own OpenMP pool (oneDNN kernels).

The table gives each conv case's GFLOP/s (2 x multiply-adds of forward and both backward
products, 3 x the forward's) next to the sgemm rate of the same run (a 2048^3 product through
fastnn's GEMM entry, same threads).

Targets: fastnn >= 10x the reference, and no slower than PyTorch (time <= torch's).

A training step is what Model.train does per batch (``_book.model_step``): forward, loss (+
regularisation), accuracy, backward, and one optimizer update (Adam) of every trainable layer.
The torch step does the same work with torch.nn (Conv2d/MaxPool2d/Linear, cross_entropy,
torch.optim.Adam).
"""
from __future__ import annotations

import os
import pathlib
import statistics
import sys
import time

# Run as a script: the tests' _book helper (under pytest, pyproject.toml's pythonpath puts it there).
_TESTS = str(pathlib.Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastnn  # noqa: E402
import fastnn.reference as ref  # noqa: E402

import _book  # noqa: E402
from machine import pin_threads, threadpools, wait_idle  # noqa: E402
from torch_peer import torch  # noqa: E402

if torch is not None:
    import torch.nn.functional as F

THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", "2"))
DTYPE = np.float32

# name: (batch, in_channels, out_channels, kernel_size, stride, padding, height/width)
CONVS = {
    "lenet-c1": (128, 1, 6, 5, 1, 2, 28),
    "lenet-c2": (128, 6, 16, 5, 1, 0, 14),
    "mnist-c1": (128, 1, 32, 3, 1, 1, 28),
    "mnist-c2": (128, 32, 64, 3, 1, 1, 14),
    "cifar-c2": (64, 32, 64, 3, 1, 1, 16),
}
# name: (batch, channels, size, pool_size, stride)
POOLS = {
    "pool-2x2": (128, 32, 28, 2, 2),
    "pool-3x3s2": (128, 32, 28, 3, 2),
}
# name: (batch, channels, size): BatchNorm over the channels of NCHW data, training mode
NORMS = {
    "bn-32x28": (128, 32, 28),
    "bn-64x14": (128, 64, 14),
}
# name: (batch, [conv (out_channels, kernel_size, padding) per stage], hidden Dense sizes)
NETWORKS = {
    "lenet": (128, [(6, 5, 2), (16, 5, 0)], [120, 84]),
    "mnist-cnn": (128, [(32, 3, 1), (64, 3, 1)], [128]),
}
PEERS = ["fastnn", "fastnn-blas1", "reference"] + (["torch"] if torch is not None else [])


def peer_context(peer: str):
    """What a peer runs under: NumPy's BLAS limited to one thread for "fastnn-blas1"."""
    import contextlib

    if peer != "fastnn-blas1":
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _library(peer: str):
    return ref if peer == "reference" else fastnn


@pytest.fixture(scope="module", autouse=True)
def _pinned_threads():
    restore = pin_threads(THREADS)
    yield
    restore()


# --- one op: conv / pool forward + backward -------------------------------------------------------

def make_conv(name: str, peer: str):
    n, c, o, k, s, p, size = CONVS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size)).astype(DTYPE)
    out = (size + 2 * p - k) // s + 1
    g = rng.standard_normal((n, o, out, out)).astype(DTYPE)
    if peer == "torch":
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.randn(o, c, k, k, requires_grad=True)
        bt = torch.zeros(o, requires_grad=True)
        gt = torch.tensor(g)

        def run():
            xt.grad = wt.grad = bt.grad = None
            F.conv2d(xt, wt, bt, stride=s, padding=p).backward(gt)
        return run
    layer = _library(peer).Layer_Conv2D(c, o, k, s, p, dtype=DTYPE)

    def run():
        layer.forward(x)
        layer.backward(g)
    return run


def make_pool(name: str, peer: str):
    n, c, size, pool, stride = POOLS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size)).astype(DTYPE)
    out = (size - pool) // stride + 1
    g = rng.standard_normal((n, c, out, out)).astype(DTYPE)
    if peer == "torch":
        xt = torch.tensor(x, requires_grad=True)
        gt = torch.tensor(g)

        def run():
            xt.grad = None
            F.max_pool2d(xt, pool, stride).backward(gt)
        return run
    layer = _library(peer).Layer_MaxPool2D(pool, stride)

    def run():
        layer.forward(x)
        layer.backward(g)
    return run


def make_norm(name: str, peer: str):
    n, c, size = NORMS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size)).astype(DTYPE)
    g = rng.standard_normal((n, c, size, size)).astype(DTYPE)
    if peer == "torch":
        xt = torch.tensor(x, requires_grad=True)
        gt = torch.tensor(g)
        bn = torch.nn.BatchNorm2d(c)

        def run():
            xt.grad = None
            bn.zero_grad(set_to_none=True)
            bn(xt).backward(gt)
        return run
    layer = _library(peer).Layer_BatchNorm(c, dtype=DTYPE)

    def run():
        layer.forward(x)
        layer.backward(g)
    return run


def conv_flops(name: str) -> float:
    """Floating-point operations of a conv case's forward and backward: 3 GEMMs of
    2 * N * O * C * k * k * OH * OW each."""
    n, c, o, k, s, p, size = CONVS[name]
    out = (size + 2 * p - k) // s + 1
    return 3 * 2 * n * o * c * k * k * out * out


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a size^3 float32 product through fastnn's GEMM entry (the best of repeats)."""
    from fastnn.backend.blas import gemm

    a = np.random.default_rng(0).random((size, size), dtype=DTYPE)
    out = np.empty_like(a)
    gemm(a, a, out)
    best = min(_timed(lambda: gemm(a, a, out)) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(run) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


# --- a whole training step ---------------------------------------------------------------------------

def network_data(name: str):
    batch = NETWORKS[name][0]
    rng = np.random.default_rng(1)
    return rng.random((batch, 1, 28, 28), dtype=DTYPE), rng.integers(0, 10, size=batch).astype(np.intp)


def build_model(nn, name: str):
    """Conv-ReLU-MaxPool per stage, Flatten, Dense-ReLU per hidden size, Dense-Softmax; Adam."""
    _, stages, hidden = NETWORKS[name]
    layers, channels, size = [], 1, 28
    for out, k, p in stages:
        layers += [nn.Layer_Conv2D(channels, out, k, padding=p, dtype=DTYPE), nn.Activation_ReLU(),
                   nn.Layer_MaxPool2D(2)]
        channels, size = out, (size + 2 * p - k + 1) // 2
    layers.append(nn.Layer_Flatten())
    width = channels * size * size
    for h in hidden:
        layers += [nn.Layer_Dense(width, h, dtype=DTYPE), nn.Activation_ReLU()]
        width = h
    layers += [nn.Layer_Dense(width, 10, dtype=DTYPE), nn.Activation_Softmax()]
    return _book.build_model(nn, layers, loss=nn.Loss_CategoricalCrossentropy(),
                             optimizer=nn.Optimizer_Adam(learning_rate=1e-3), accuracy=nn.Accuracy_Categorical())


def torch_model(name: str):
    _, stages, hidden = NETWORKS[name]
    layers, channels, size = [], 1, 28
    for out, k, p in stages:
        layers += [torch.nn.Conv2d(channels, out, k, padding=p), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        channels, size = out, (size + 2 * p - k + 1) // 2
    layers.append(torch.nn.Flatten())
    width = channels * size * size
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def make_step(name: str, peer: str):
    X, y = network_data(name)
    np.random.seed(0)
    if peer == "torch":
        torch.manual_seed(0)
        model = torch_model(name)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        Xt, yt = torch.tensor(X), torch.tensor(y)

        def step():
            optimizer.zero_grad(set_to_none=True)
            logits = model(Xt)
            loss = F.cross_entropy(logits, yt)
            (logits.argmax(dim=1) == yt).float().mean().item()  # the accuracy, as the others
            loss.backward()
            optimizer.step()
            return loss.item()
        return step
    model = build_model(_library(peer), name)
    model.accuracy.init(y)

    def step():
        return _book.model_step(model, X, y)[0]
    return step


# --- pytest-benchmark groups ----------------------------------------------------------------------

def _bench(benchmark, run, group: str, peer: str, target_seconds: float = 0.5):
    benchmark.group = group
    benchmark.name = peer
    benchmark.extra_info["threads"] = THREADS
    with peer_context(peer):
        if benchmark.disabled:  # smoke pass: run once
            benchmark(run)
            return
        run()  # buffers, one-time set-up
        t0 = time.perf_counter()
        run()
        per = max(time.perf_counter() - t0, 1e-6)
        rounds = max(3, min(100, int(target_seconds / per)))
        benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_forward_backward(benchmark, name, peer):
    n, c, o, k, s, p, size = CONVS[name]
    _bench(benchmark, make_conv(name, peer), f"conv fw+bw: {name} ({c}->{o}, k{k} s{s} p{p}, "
           f"{size}x{size}, batch {n})", peer, 0.5 if peer != "reference" else 1.5)


@pytest.mark.benchmark
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name", list(POOLS))
def test_maxpool_forward_backward(benchmark, name, peer):
    n, c, size, pool, stride = POOLS[name]
    _bench(benchmark, make_pool(name, peer), f"maxpool fw+bw: {name} ({n}x{c}x{size}x{size})", peer)


@pytest.mark.benchmark
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name", list(NORMS))
def test_batchnorm_forward_backward(benchmark, name, peer):
    n, c, size = NORMS[name]
    _bench(benchmark, make_norm(name, peer), f"batchnorm fw+bw: {name} ({n}x{c}x{size}x{size})", peer)


@pytest.mark.benchmark
@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_training_step(benchmark, name, peer):
    batch, stages, hidden = NETWORKS[name]
    _bench(benchmark, make_step(name, peer), f"step: {name} (convs {stages}, dense {hidden}, batch {batch})",
           peer, 1.0 if peer != "reference" else 3.0)


def test_peers_compute_the_same_step():
    """fastnn and the reference start from the same weights and compute the same first loss."""
    for name in NETWORKS:
        losses = [make_step(name, peer)() for peer in ("fastnn", "reference")]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)


# --- the ratio table (python benchmarks/bench_conv.py) ---------------------------------------------

def _median_us(run, seconds: float) -> float:
    run()
    t0 = time.perf_counter()
    run()
    per = max(time.perf_counter() - t0, 1e-6)
    times = []
    for _ in range(max(3, min(50, int(seconds / per)))):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the table shows the median")
    parser.add_argument("--seconds", type=float, default=0.3, help="time per case per round")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="S",
                        help="before each measurement, wait up to S seconds for an idle machine")
    parser.add_argument("--only", default="", help="comma-separated case names (e.g. lenet,mnist-c2)")
    args = parser.parse_args(argv)
    pin_threads(THREADS)
    pools = ", ".join(f"{p.get('api')}:{p.get('threads')}" for p in threadpools())
    if torch is not None:
        pools += f", torch:{torch.get_num_threads()}"
    print(f"threads: {pools}; fastnn conv kernels: {fastnn.conv.get_num_threads()} thread(s) by default, "
          f"{THREADS} with BLAS limited to 1")
    cases = ([("conv", n, make_conv) for n in CONVS] + [("pool", n, make_pool) for n in POOLS]
             + [("bn", n, make_norm) for n in NORMS] + [("step", n, make_step) for n in NETWORKS])
    if args.only:
        cases = [case for case in cases if case[1] in args.only.split(",")]
    runs = {(kind, name, peer): maker(name, peer) for kind, name, maker in cases for peer in PEERS}
    results = {key: [] for key in runs}
    not_idle = 0
    for _ in range(args.rounds):  # each peer in its own block; rounds spread a busy spell
        for key, run in runs.items():
            if args.wait_idle:
                busy, _ = wait_idle(args.wait_idle, threshold=0.06)
                not_idle += busy is not None and busy >= 0.06
            with peer_context(key[2]):
                results[key].append(_median_us(run, args.seconds * (3 if key[2] == "reference" else 1)))
    if not_idle:
        print(f"warning: {not_idle} measurements started on a busy machine")
    sgemm = sgemm_gflops()
    print(f"sgemm 2048^3 through fastnn's GEMM, {THREADS} thread(s): {sgemm:.0f} GFLOP/s")
    columns = [peer for peer in PEERS]
    print(f"{'case':20s} " + " ".join(f"{p + ' us':>15s}" for p in columns)
          + f" {'ref/best':>11s} {'fastnn/torch':>13s} {'blas1/torch':>12s} {'fastnn GF/s':>12s} {'torch GF/s':>11s}")
    for kind, name, _ in cases:
        med = {peer: statistics.median(results[(kind, name, peer)]) for peer in PEERS}
        torch_us = med.get("torch", float("nan"))
        best = min(med["fastnn"], med["fastnn-blas1"])
        rates = ""
        if kind == "conv":
            flops = conv_flops(name)
            rates = f" {flops / med['fastnn'] / 1e3:12.0f} {flops / torch_us / 1e3:11.0f}"
        print(f"{kind + ' ' + name:20s} " + " ".join(f"{med[p]:15.0f}" for p in columns)
              + f" {med['reference'] / best:11.1f} {med['fastnn'] / torch_us:13.2f} "
              f"{med['fastnn-blas1'] / torch_us:12.2f}{rates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
