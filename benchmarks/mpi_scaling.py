#!/usr/bin/env python
"""Data-parallel training over MPI, measured: epoch time of the MNIST MLP and CNN at 1 and 2 ranks,
the allreduce cost per step, and a ring-allreduce cost model for N machines checked against
loopback measurements. Writes benchmarks/results/<date>-<host>-mpi.md (and .json).

    python benchmarks/mpi_scaling.py                        # MNIST where fastnn.datasets finds it
    python benchmarks/mpi_scaling.py --data-home DIR        # DIR holds mnist/ (see fastnn.datasets.load_mnist)
    python benchmarks/mpi_scaling.py --synthetic --quick    # random data of MNIST's shape, a few steps

The driver launches ``mpiexec -n N python benchmarks/mpi_scaling.py --worker ...`` for each layout
(ranks x BLAS/OpenMP threads per rank, default 1x1, 1x2, 2x1 on a 2-core machine). Each worker
trains one epoch of each of the main job's MNIST recipes (test_networks.py: ``mnist``, the MLP,
and ``mnist-cnn``) with ``distributed=True`` and batch 128 (the CNN on the first
``--cnn-samples`` images; its epoch time is scaled to 60,000), then times the model's gradient
message summed alone, one sum per gradient array, and a 4-element message (the latency); the
one-rank worker also times a step at each local batch 128 / N of the cost model. MNIST is looked
for where fastnn.datasets looks, then in the development data folder beside the repository (or
in --data-home); without it (and without --synthetic) the script says so and exits 0.

Cost model (ring allreduce): each step sends and receives 2 (N - 1) / N of the gradient message
over each rank's link, plus a latency per step:

    t_allreduce(N) = 2 (N - 1) / N * bytes / bandwidth + latency
    t_step(N)      = t_compute(1) / N + t_allreduce(N)        (the global batch stays 128)

bandwidth and latency are fitted from the loopback measurements (2 ranks, several message
sizes), and the model is then evaluated for typical links.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import machine  # noqa: E402  (benchmarks/machine.py: CPU facts, other processes' CPU share)
BATCH = 128
LINKS = {"loopback (fitted)": None, "10 GbE": (1.25e9, 30e-6), "25 GbE": (3.1e9, 15e-6),
         "100 Gb/s InfiniBand": (12.5e9, 3e-6)}
SIZES = (4, 1_000, 10_000, 100_000, 1_000_000)  # float32 elements, for the fit
MACHINES = (2, 4, 8, 16, 32)  # N of the cost model; each computes BATCH / N samples per step


# --- the worker: runs under mpiexec --------------------------------------------------------------------
def _recipes():
    """The main job's MNIST recipes (test_networks.py): the MLP 784-512-512-10 with dropout 0.2 and
    the 32/64-channel CNN, each with its Adam settings."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("test_networks_script", os.path.join(REPO, "test_networks.py"))
    networks = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = networks  # dataclasses look their module up there
    spec.loader.exec_module(networks)
    return {"mlp": networks.RECIPES["mnist"], "cnn": networks.RECIPES["mnist-cnn"]}


def _images(args):
    """MNIST training images (uint8, (n, 28, 28)) and labels, with where they came from; random
    images of that shape with --synthetic; None when MNIST is not found."""
    if args.synthetic:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (args.samples, 28, 28), dtype=np.uint8), rng.integers(0, 10, args.samples), \
            "--synthetic"
    if args.data_home is None:
        import data  # benchmarks/data.py: fastnn.datasets' search path, then the development data folder

        return data.load_mnist()
    from fastnn.datasets import DatasetNotFoundError, load_mnist

    try:
        images, labels, _, _ = load_mnist(data_home=args.data_home)
    except DatasetNotFoundError:
        return None
    return images, labels, "--data-home"


def _time_sum(comm, elements: int, repeat: int) -> float:
    """Median seconds of one in-place sum of `elements` float32 over the ranks."""
    buffer = np.ones(elements, np.float32)
    times = []
    for _ in range(repeat):
        comm.barrier()
        started = time.perf_counter()
        comm.allreduce_sum(buffer)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def _local_steps(recipe, images, args) -> dict:
    """One process: seconds per step at each local batch BATCH / N of the cost model, and of the
    optimizer update alone (every rank updates every parameter: work that does not shrink)."""
    rng = np.random.default_rng(1)
    timings = {}
    for n in (1, *MACHINES):
        batch = BATCH // n
        rows = np.arange(args.local_steps * batch) % len(images)
        model = recipe.build()
        for _ in range(2):  # the second epoch is timed
            history = model.train(images[rows], rng.integers(0, 10, len(rows)), epochs=1, batch_size=batch,
                                  verbose="silent")
        timings[str(batch)] = history.seconds[0] / args.local_steps
    started = time.perf_counter()
    for _ in range(10):
        model._update()
    timings["update"] = (time.perf_counter() - started) / 10
    return timings


def worker(args) -> None:
    import fastnn.distributed as dist
    from fastnn.distributed.buffers import GradientMessage

    comm = dist.comm.current()
    images, labels, _ = _images(args)
    recipes = _recipes()
    result = {"ranks": comm.size, "threads": int(os.environ.get("OMP_NUM_THREADS", "0")), "models": {}}
    local = {}
    for name in args.models.split(","):
        recipe = recipes[name]
        count = args.mlp_samples if name == "mlp" else args.cnn_samples
        X, y = recipe.network.prepare(images[:count]), labels[:count].astype(np.int64)
        np.random.seed(0)
        model = recipe.build()
        with recipe.network.threads():  # as the main job (no thread setting: docs/threads.md)
            comm.barrier()
            history = model.train(X, y, epochs=1, batch_size=BATCH, verbose="silent", distributed=True)
            if comm.size == 1:
                local[name] = _local_steps(recipe, X, args)
        message = GradientMessage(model.trainable_layers, np.float32)
        per_step = _time_sum(comm, message.data.size, args.repeat)
        # the alternative: one allreduce per gradient array
        separate = sum(_time_sum(comm, view.size, args.repeat) for _, _, view in message.views)
        result["models"][name] = {"samples": len(X), "steps": -(-len(X) // BATCH), "seconds": history.seconds[0],
                                  "message_bytes": int(message.data.nbytes), "allreduce_seconds": per_step,
                                  "arrays": len(message.views), "separate_seconds": separate,
                                  "accuracy": history.accuracy[0]}
    result["sums"] = {str(n): _time_sum(comm, n, args.repeat) for n in SIZES} if comm.size > 1 else {}
    if local:
        result["local"] = local
    if comm.rank == 0:
        with open(args.worker, "w") as f:
            json.dump(result, f)


# --- the driver -------------------------------------------------------------------------------------------
def _mpiexec() -> str:
    import shutil

    found = shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if found is None:
        sys.exit('mpi_scaling: no mpiexec found: pip install "fastnn[mpi]"')
    return found


def _layouts(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]


def fit(sums: dict, n: int = 2) -> tuple[float, float]:
    """(bandwidth bytes/s, latency s) of t = 2 (n-1)/n * bytes / bandwidth + latency: the latency is
    the smallest message's time, the bandwidth a least-squares fit (through the latency) of the
    messages of 10,000 elements and more."""
    latency = sums[str(min(SIZES))]
    x = np.array([2 * (n - 1) / n * int(k) * 4 for k in sums if int(k) >= 10_000], dtype=np.float64)
    t = np.array([v - latency for k, v in sums.items() if int(k) >= 10_000])
    return float(np.sum(x * x) / np.sum(x * t)), latency


def predict(compute_step: float, message_bytes: int, n: int, link) -> float:
    """A step on n machines: `compute_step` (this rank's part of the batch) plus the allreduce."""
    bandwidth, latency = link
    return compute_step + (0.0 if n == 1 else 2 * (n - 1) / n * message_bytes / bandwidth + latency)


_FOLDERS = {"--data-home": "<data-home>", "--out": "<out>"}


def _command(argv: list[str]) -> str:
    """The command line as the report shows it: folders as <data-home> and <out>, no machine path."""
    shown, hide = [], None
    for arg in argv:
        option = arg.split("=", 1)[0]
        shown.append(hide or (f"{option}={_FOLDERS[option]}" if "=" in arg and option in _FOLDERS else arg))
        hide = _FOLDERS.get(arg)
    return " ".join(["python benchmarks/mpi_scaling.py", *shown])


def _table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table's lines, then a blank line."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows), ""]


def _step(model: dict) -> float:
    return model["seconds"] / model["steps"]


def report(runs: list[dict], args) -> str:
    base = next(r for r in runs if r["ranks"] == 1 and r["threads"] == 1)
    two = next((r for r in runs if r["ranks"] == 2), None)
    steps_per_epoch = -(-60000 // BATCH)
    lines = [f"# Distributed training over MPI: {datetime.date.today()} on {socket.gethostname()}", "",
             f"`{_command(sys.argv[1:])}`", "",
             f"- machine: {machine.cpu_model()}, {os.cpu_count()} cores; load average (1 min) {args.load[0]:.1f} "
             f"before, {args.load[1]:.1f} after; other processes' share of the CPU just before each layout: "
             + ", ".join(f"{r['ranks']} x {r['threads']} {r['others_before']:.0%}" for r in runs
                         if r.get("others_before") is not None)
             + f" (0% is an idle machine); Python {platform.python_version()}, NumPy {np.__version__}, {args.mpi}",
             f"- data: {'random, MNIST-shaped' if args.synthetic else 'MNIST'} ({args.source}); the main job's "
             f"recipes `mnist` (784-512-512-10, dropout 0.2) and `mnist-cnn` (32/64 3x3); batch {BATCH} (the global "
             f"batch: split over the ranks); `distributed=True`; float32",
             "- a layout `R x T` is R ranks (processes) with T BLAS/OpenMP threads each "
             "(`OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`)", "", "## Epoch time", ""]
    rows = []
    for name in base["models"]:
        for run in runs:
            m, several = run["models"][name], run["ranks"] > 1
            rows.append([name, m["samples"], f"{run['ranks']} x {run['threads']}",
                         f"{_step(m) * steps_per_epoch:.1f}", f"{_step(m) * 1e3:.2f}",
                         f"{_step(base['models'][name]) / _step(m):.2f}",
                         f"{m['allreduce_seconds'] * 1e3 if several else 0:.3f}",
                         f"{m['allreduce_seconds'] / _step(m) if several else 0:.0%}"])
    lines += _table(["model", "samples timed", "layout", "seconds per epoch (60,000)", "ms per step",
                     "speed-up vs 1 x 1", "allreduce per step (ms)", "allreduce share of a step"], rows)
    if two is None:
        return "\n".join(lines)
    bandwidth, latency = fitted = fit(two["sums"])
    LINKS["loopback (fitted)"] = fitted
    local = base["local"]
    rows = [[f"{int(size):,}", f"{int(size) * 4:,}", f"{seconds * 1e6:.1f}",
             f"{predict(0.0, int(size) * 4, 2, fitted) * 1e6:.1f}"] for size, seconds in two["sums"].items()]
    rows += [[f"{name}'s gradient message", f"{m['message_bytes']:,}", f"{m['allreduce_seconds'] * 1e6:.1f}",
              f"{predict(0.0, m['message_bytes'], 2, fitted) * 1e6:.1f}"] for name, m in two["models"].items()]
    lines += ["## The allreduce on this machine (2 ranks, shared memory)", "",
              *_table(["float32 elements", "bytes", "measured (µs)", "model (µs)"], rows),
              f"Fit: bandwidth {bandwidth / 1e9:.2f} GB/s, latency {latency * 1e6:.1f} µs per step.", "",
              "One message per step against the alternatives (the step's status travels in the message's last "
              "4 elements; sent apart it would cost one more small allreduce):", "",
              *_table(["model", "one message (µs)", "one allreduce per gradient array (µs)",
                       "a separate status message (µs)"],
                      [[name, f"{m['allreduce_seconds'] * 1e6:.1f}",
                        f"{m['separate_seconds'] * 1e6:.1f} ({m['arrays']} arrays)", f"+{latency * 1e6:.1f}"]
                       for name, m in two["models"].items()]),
              "## What a rank computes per step (one process, 1 thread)", "",
              "The global batch stays 128, so on N machines each computes 128 / N samples; the optimizer "
              "update (every rank updates every parameter) and the per-step overheads do not shrink.", "",
              *_table(["model", *(f"batch {BATCH // n} (ms)" for n in (1, *MACHINES)), "update alone (ms)"],
                      [[name, *(f"{timings[str(BATCH // n)] * 1e3:.2f}" for n in (1, *MACHINES)),
                        f"{timings['update'] * 1e3:.2f}"] for name, timings in local.items()]),
              "The model against the measured 2 x 1 step:", "",
              *_table(["model", "measured 2 x 1 step (ms)", "model: batch 64 + allreduce (ms)"],
                      [[name, f"{_step(m) * 1e3:.2f}",
                        f"{predict(local[name][str(BATCH // 2)], m['message_bytes'], 2, fitted) * 1e3:.2f}"]
                       for name, m in two["models"].items()]),
              "## The cost model for N machines", "",
              "t_step(N) = t_compute(128 / N) + 2 (N - 1) / N * bytes / bandwidth + latency, with t_compute "
              "measured above; predicted speed-up of an epoch over one machine. The loopback link is the fit "
              "above; the others are assumed nominal figures, not measured: "
              + "; ".join(f"{link} {bw / 1e9:.2f} GB/s and {lat * 1e6:.0f} µs" for link, (bw, lat) in LINKS.items()
                          if link != "loopback (fitted)") + ".", ""]
    rows = []
    for name in base["models"]:
        compute, message = local[name], two["models"][name]["message_bytes"]
        for link, params in LINKS.items():
            speedups = [compute[str(BATCH)] / predict(compute[str(BATCH // n)], message, n, params) for n in MACHINES]
            rows.append([name, link, *(f"{x:.2f}" for x in speedups)])
    lines += _table(["model", "link", *(f"N={n}" for n in MACHINES)], rows)
    return "\n".join(lines)


def driver(args) -> None:
    found = _images(args)
    if found is None:
        print("mpi_scaling: MNIST not found (fastnn.datasets' search path, the development data folder or "
              "--data-home), nothing measured; --synthetic measures on random images")
        return
    args.source = found[2]
    mpiexec = _mpiexec()
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout.split("\n")
    args.mpi = next((line.split(":", 1)[1].strip() for line in version if "Version" in line), "MPI")
    args.mpi = f"MPICH {args.mpi}" if "HYDRA" in " ".join(version) else args.mpi
    runs = []
    load = os.getloadavg()[0]
    for ranks, threads in _layouts(args.layouts):
        others = machine.wait_idle(args.wait_idle)[0] if args.wait_idle else machine.others_busy()
        out = os.path.join(args.out, f".mpi-{ranks}x{threads}.json")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        command = [mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker", out,
                   *sys.argv[1:]]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, timeout=args.timeout)
        with open(out) as f:
            runs.append(dict(json.load(f), others_before=others))
        os.remove(out)
        print(f"{ranks} x {threads}: {time.perf_counter() - started:.1f} s "
              + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in runs[-1]["models"].items()), flush=True)
    args.load = (load, os.getloadavg()[0])
    text = report(runs, args)
    name = args.name or f"{datetime.date.today()}-{socket.gethostname()}-mpi{'-quick' if args.quick else ''}"
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump({"runs": runs, "command": _command(sys.argv[1:]), "load": args.load, "mpi": args.mpi,
                   "source": args.source}, f, indent=1)
    print(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", help="folder holding mnist/ (default: fastnn.datasets' search path, then "
                        "the development data folder beside the repository)")
    parser.add_argument("--synthetic", action="store_true", help="random MNIST-shaped data instead of MNIST")
    parser.add_argument("--quick", action="store_true", help="a few steps of each model (a smoke run)")
    parser.add_argument("--layouts", default="1x1,1x2,2x1", help="ranks x threads per rank, comma separated")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--mlp-samples", type=int, default=60000)
    parser.add_argument("--cnn-samples", type=int, default=12800, help="images the CNN's epoch time is taken on")
    parser.add_argument("--samples", type=int, default=60000, help="--synthetic: how many images")
    parser.add_argument("--repeat", type=int, default=50, help="timed allreduces per message size")
    parser.add_argument("--local-steps", type=int, default=20, help="steps timed per local batch size")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each layout, wait at most this long for other processes to use < 10%% of the CPU")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--name", help="report file name without extension")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.mlp_samples, args.cnn_samples, args.samples, args.repeat, args.local_steps = 256, 128, 256, 5, 2
    if args.worker:
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
