#!/usr/bin/env python
"""Interleaved benchmark runner: writes benchmarks/results/<date>-<host>.md and .json.

    python benchmarks/run.py                      # full report, 2 threads
    python benchmarks/run.py --quick              # smoke run, well under a minute
    python benchmarks/run.py --threads 1,2 --configs spiral,mnist --plot

For each thread count and each configuration, every peer (fastnn, reference, torch, the GEMM
floor and the fastnn variants) is timed in the same rounds: each round runs the peers in a fresh
random order, each peer running a few untimed warm-up steps (so cold caches are not charged to
it) and then a block of individually timed steps; between a torch block and a NumPy-BLAS block
the runner sleeps briefly so the other family's spinning threads have stopped.
Machine drift therefore hits all peers alike, and every ratio in the report comes from one run.

Thread counts are set explicitly: threadpoolctl limits every BLAS and OpenMP pool in the process,
torch.set_num_threads the same count; the report states what the pools said while measuring.
XLA sizes JAX's CPU thread pool once, when JAX starts (jax_peer.py), so when JAX is installed and
more than one thread count is asked for, each thread count runs in a child process of its own and
the parent merges their reports.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
# Run as a script: this folder's modules, the tests' _book helper and, on an in-place build, the
# repository's fastnn.
for folder in (HERE, HERE.parent / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
try:
    import fastnn  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import fastnn  # noqa: E402,F811
import fastnn.reference as ref  # noqa: E402
from configs import CONFIGS, peers_for, target_met, target_text  # noqa: E402
from data import batches, mnist_rows  # noqa: E402
import jax_peer  # noqa: E402
from kernel_peers import public_thunks, raw_thunks  # noqa: E402
from machine import (OthersMeter, cpu_flags, cpu_model, loadavg, others_busy, pin_threads,  # noqa: E402
                     threadpools, wait_idle)
from models import build_model, prepare, restorer  # noqa: E402
from ops import OP_GROUPS  # noqa: E402
from report import markdown, plot  # noqa: E402
from steps import make_step  # noqa: E402
from timing import Instrumented, measure, stats  # noqa: E402
from torch_peer import torch, torch_adam_kind  # noqa: E402

PROFILES = {
    # rounds; step budget (s per configuration); warm-up (s per block); op budget (s per group); anatomy
    # budget (s per configuration); calibration (s per peer); settle (s of sleep when the thread-pool
    # family changes between blocks, with more than one thread)
    "quick": dict(rounds=5, budget=0.35, warmup=0.0002, op_budget=0.04, anatomy_budget=0.1, calibrate=0.02,
                  settle=0.03),
    "full": dict(rounds=30, budget=8.0, warmup=0.002, op_budget=1.0, anatomy_budget=1.5, calibrate=0.1,
                 settle=0.15),
}


def meta(args, profile) -> dict:
    """What the report says about the run: the machine, the versions, fastnn's build, the data."""
    from fastnn.backend import build_info as _show_config

    cfg = _show_config.config()
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": " ".join([os.path.basename(sys.executable), "benchmarks/run.py"] + sys.argv[1:]),
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__, "fastnn": fastnn.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_adam": torch_adam_kind(),
        "jax": jax_peer.version() if not args.no_jax else None,
        "jax_note": "left out (--no-jax)" if args.no_jax else jax_peer.why(),
        "fastnn_config": {k: cfg[k] for k in ("compile_flags", "debug_build", "openmp", "openmp_threads",
                                              "gemm_backend", "blas")},
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                               "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
        "mnist": mnist_rows()[2],
        "profile": "quick" if args.quick else "full", "settings": profile,
        "loadavg_start": loadavg(),
    }


# --------------------------------------------------------------------------------------------------
# One thread count

def run_threads(n: int, args, profile) -> dict:
    """Every configuration's steps, their anatomy and the op groups with `n` threads."""
    restore_threads = pin_threads(n)
    with_jax = not args.no_jax and jax_peer.load(n) is not None
    out = {"threads": n, "threadpools": threadpools(), "fastnn_openmp_threads": None,
           "torch_threads": torch.get_num_threads() if torch is not None else None,
           "jax_threads": n if with_jax else None, "jax_note": "" if with_jax else (
               "left out (--no-jax)" if args.no_jax else jax_peer.why(n)),
           "steps": {}, "anatomy": {}, "ops": {}}
    from fastnn._ext import _buildinfo
    out["fastnn_openmp_threads"] = _buildinfo.openmp_max_threads()
    # With more than one thread, pools of the other family spin on after their last call.
    settle = profile["settle"] if n > 1 and ((not args.no_torch and torch is not None) or with_jax) else 0.0
    out["settle_s"] = settle
    try:
        for name in args.configs:
            config = CONFIGS[name]
            peers = peers_for(config, with_torch=not args.no_torch, with_jax=with_jax)
            steps = {p: make_step(config, p) for p in peers}
            busy0, waited = wait_idle(args.wait_idle) if args.wait_idle else (others_busy(), 0.0)
            load0 = loadavg()
            t0 = time.perf_counter()
            meter = OthersMeter().start()
            info = measure(steps, rounds=profile["rounds"], budget=profile["budget"], warmup=profile["warmup"],
                           calibrate=profile["calibrate"], families={"torch": "torch", "jax": "jax"}, settle=settle)
            result = {"peers": {p: dict(stats(v["samples_ns"]), inner=v["inner"], warm=v["warm"])
                                for p, v in info.items()},
                      "seconds": round(time.perf_counter() - t0, 2), "loadavg": [load0, loadavg()],
                      "others_busy": [busy0, meter.share()], "waited_for_idle_s": waited,
                      "data": batches(config)[1]}
            result.update(_ratios(config, result["peers"]))
            out["steps"][name] = result
            _progress(n, name, result)
            del steps
            if not args.no_anatomy:
                out["anatomy"][name] = anatomy(config, profile)
        if not args.no_ops:
            for group, factories in OP_GROUPS.items():
                if args.ops and not any(part in group for part in args.ops):
                    continue
                if args.no_torch:
                    factories = {k: v for k, v in factories.items() if k != "torch"}
                ops = {p: f() for p, f in factories.items()}
                info = measure(ops, rounds=profile["rounds"], budget=profile["op_budget"], warmup=profile["warmup"],
                               calibrate=profile["calibrate"] / 2, families={"torch": "torch"}, settle=settle)
                out["ops"][group] = {p: stats(v["samples_ns"]) for p, v in info.items()}
    finally:
        restore_threads()
    return out


def _ratios(config, peers) -> dict:
    med = {p: v["median"] for p, v in peers.items()}
    f = med["fastnn"]
    r = {"reference/fastnn": med["reference"] / f,
         "torch/fastnn": med["torch"] / f if "torch" in med else None,
         "jax/fastnn": med["jax"] / f if "jax" in med else None,
         "fastnn/gemm-floor": f / med["gemm-floor"]}
    met = target_met(config, r["reference/fastnn"], r["fastnn/gemm-floor"])
    return {"ratios": r, "target": target_text(config), "target_met": met,
            "beats_torch": None if r["torch/fastnn"] is None else r["torch/fastnn"] > 1.0}


def anatomy(config, profile) -> dict:
    """Median time of each call inside one step: fastnn's and the reference's public methods,
    and fastnn's raw kernel calls (same pretraining and per-block reset as the step peers)."""
    data, _ = batches(config)
    variants = {}
    for name, lib, make in (("fastnn", fastnn, public_thunks), ("reference", ref, public_thunks),
                            ("fastnn-raw", fastnn, raw_thunks)):
        model = build_model(lib, config)
        step = Instrumented(make(model, config, data))
        if config.training:
            prepare(step, lambda m=model: restorer(m.trainable_layers, m.optimizer), config.pretrain)
        variants[name] = step
    measure(variants, rounds=profile["rounds"], budget=profile["anatomy_budget"], warmup=profile["warmup"],
            calibrate=profile["calibrate"] / 2)
    return {k: [(label, float(np.median(s)) / 1e3) for label, s in zip(v.labels, v.samples)]
            for k, v in variants.items()}


def _progress(n, name, result):
    med = {p: v["median"] for p, v in result["peers"].items()}
    parts = ", ".join(f"{p} {m:,.1f}" for p, m in med.items())
    print(f"[{n} thr] {name:11s} {result['seconds']:5.1f}s  µs/step: {parts}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few rounds and short blocks (smoke check, < 1 min)")
    p.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    p.add_argument("--configs", help=f"comma-separated configurations (default all: {','.join(CONFIGS)}; "
                   "--quick leaves out the pretrained *-long ones)")
    p.add_argument("--rounds", type=int, help="override the profile's number of rounds")
    p.add_argument("--budget", type=float, help="override the profile's seconds per configuration")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op groups")
    p.add_argument("--ops", default="", help="comma-separated substrings: only the op groups whose name "
                   "contains one (e.g. 'Adam,dropout'; default all)")
    p.add_argument("--no-anatomy", action="store_true", help="skip the per-call step anatomy")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    p.add_argument("--no-jax", action="store_true", help="leave JAX out even when installed")
    p.add_argument("--wait-idle", type=float,
                   help="before each configuration, wait up to this many seconds for other processes to use "
                        "under 10%% of the CPU (default 60 in the full profile, 0 with --quick)")
    p.add_argument("--plot", action="store_true", help="also write <name>.png (matplotlib, headless)")
    p.add_argument("--name", help="file name without extension (default <date>-<host>, -quick in quick mode)")
    p.add_argument("--out", default=str(RESULTS), help=f"output folder (default {RESULTS})")
    p.add_argument("--from-json", metavar="PATH", help="measure nothing: rewrite PATH's markdown (and plot "
                   "with --plot) from its JSON, next to it")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",") if t]
    if args.configs is None:
        args.configs = ",".join(c.name for c in CONFIGS.values() if not (args.quick and c.pretrain > 1))
    args.configs = [c for c in args.configs.split(",") if c]
    args.ops = [o for o in args.ops.split(",") if o]
    if args.wait_idle is None:
        args.wait_idle = 0.0 if args.quick else 60.0
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    return args


def _runs_in_children(argv, args) -> list:
    """Each thread count's run from a child process of its own (JAX's thread pool is fixed when
    JAX starts): this command with that one thread count, its JSON read back."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if a != "--plot"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.threads:
            subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve()), *argv, "--threads", str(n),
                            "--out", tmp, "--name", f"threads-{n}"], check=True)
            runs += json.loads((pathlib.Path(tmp) / f"threads-{n}.json").read_text())["runs"]
    return runs


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.from_json:
        source = pathlib.Path(args.from_json)
        report = json.loads(source.read_text())
        source.with_suffix(".md").write_text(markdown(report))
        if args.plot:
            plot(report, source.with_suffix(".png"))
        print(f"rewrote {source.with_suffix('.md')}", file=sys.stderr)
        return report
    profile = dict(PROFILES["quick" if args.quick else "full"])
    if args.rounds:
        profile["rounds"] = args.rounds
    if args.budget:
        profile["budget"] = args.budget
    report = {"meta": meta(args, profile), "runs": []}
    started = time.perf_counter()
    if len(args.threads) > 1 and not args.no_jax and jax_peer.installed():
        report["runs"] = _runs_in_children(argv, args)
    else:
        for n in args.threads:
            report["runs"].append(run_threads(n, args, profile))
    report["meta"]["loadavg_end"] = loadavg()
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or (f"{datetime.date.today().isoformat()}-{socket.gethostname()}" + ("-quick" if args.quick else ""))
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{name}.md").write_text(markdown(report))
    written = [out / f"{name}.md", out / f"{name}.json"]
    if args.plot:
        plot(report, out / f"{name}.png")
        written.append(out / f"{name}.png")
    print(f"wrote {', '.join(map(str, written))} in {report['meta']['seconds']} s", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
