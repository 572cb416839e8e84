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
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import pathlib
import platform
import socket
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
RESULTS = HERE / "results"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
try:
    import fastnn  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import fastnn  # noqa: E402,F811
import harness  # noqa: E402

PROFILES = {
    # rounds; step budget (s per configuration); warm-up (s per block); op budget (s per group); anatomy
    # budget (s per configuration); calibration (s per peer); settle (s of sleep when the thread-pool
    # family changes between blocks, with more than one thread)
    "quick": dict(rounds=5, budget=0.35, warmup=0.0002, op_budget=0.04, anatomy_budget=0.1, calibrate=0.02,
                  settle=0.03),
    "full": dict(rounds=30, budget=8.0, warmup=0.002, op_budget=1.0, anatomy_budget=1.5, calibrate=0.1,
                 settle=0.15),
}


# --------------------------------------------------------------------------------------------------
# Timing

class Instrumented:
    """A step made of labelled thunks that records each thunk's duration while `recording`."""

    def __init__(self, thunks):
        self.labels = [label for label, _ in thunks]
        self.calls = [call for _, call in thunks]
        self.samples = [[] for _ in self.calls]
        self.recording = False

    def __call__(self):
        clock = time.perf_counter_ns
        if not self.recording:
            for call in self.calls:
                call()
            return
        for call, store in zip(self.calls, self.samples):
            t0 = clock()
            call()
            store.append(clock() - t0)


def _per_call(fn, seconds: float, at_least: int = 3, reset_every: int = 0) -> float:
    """Run fn for about `seconds` (at least `at_least` calls, resetting a stateful peer every
    `reset_every` calls); the median seconds per call of the second half."""
    clock = time.perf_counter_ns
    reset = getattr(fn, "reset", None)
    times = []
    end = time.perf_counter() + seconds
    while len(times) < at_least or time.perf_counter() < end:
        if reset is not None and reset_every and len(times) % reset_every == 0:
            reset()
        t0 = clock()
        fn()
        times.append(clock() - t0)
    if reset is not None:
        reset()
    return float(np.median(times[len(times) // 2:])) / 1e9


# A stateful peer (one with reset()) runs at most this many steps from its snapshot per block,
# well before Adam's momentums can decay into denormals (several hundred steps).
MAX_STATEFUL_BLOCK = 300


def measure(peers: dict, *, rounds: int, budget: float, warmup: float, calibrate: float,
            max_inner: int = 5000, families: dict | None = None, settle: float = 0.0, seed: int = 0) -> dict:
    """Interleaved timing. Returns {peer: {"samples_ns": [...], "inner": k, "warm": w}}.

    Each round runs the peers in a fresh random order (seeded), so no peer always follows the
    same neighbour. Each peer's block: reset() to its snapshot when it has one (untimed), `warm`
    untimed steps, then `inner` individually timed steps. When the previous block ran a peer of
    another thread-pool family (torch's OpenMP team vs NumPy's OpenBLAS), sleep `settle` seconds
    first: OpenBLAS's worker threads keep spinning ~0.1 s after their last GEMM and would take a
    core from torch's team (and torch's from OpenBLAS) on a 2-core machine."""
    names = list(peers)
    families = families or {}
    info = {}
    for name in names:  # warm every peer up and estimate its cost
        fn = peers[name]
        stateful = hasattr(fn, "reset")
        per = _per_call(fn, calibrate, reset_every=MAX_STATEFUL_BLOCK if stateful else 0)
        share = budget / (rounds * len(names))
        warm = int(min(50, max(1, math.ceil(warmup / per))))
        cap = MAX_STATEFUL_BLOCK - warm if stateful else max_inner
        info[name] = {"inner": int(min(cap, max(1, share // per))), "warm": warm, "samples_ns": []}
    clock = time.perf_counter_ns
    order_rng = np.random.default_rng(seed)
    previous = None
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for i in order_rng.permutation(len(names)):
                name = names[i]
                fn, spec = peers[name], info[name]
                family = families.get(name, "numpy")
                if settle and previous is not None and family != previous:
                    time.sleep(settle)
                previous = family
                reset = getattr(fn, "reset", None)
                if reset is not None:
                    reset()
                instrumented = isinstance(fn, Instrumented)
                if instrumented:
                    fn.recording = False
                for _ in range(spec["warm"]):
                    fn()
                if instrumented:
                    fn.recording = True
                store = spec["samples_ns"]
                for _ in range(spec["inner"]):
                    t0 = clock()
                    fn()
                    store.append(clock() - t0)
                if instrumented:
                    fn.recording = False
    finally:
        if gc_was:
            gc.enable()
    return info


def stats(samples_ns) -> dict:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "mean": float(a.mean()), "min": float(a.min()), "n": int(a.size)}


# --------------------------------------------------------------------------------------------------
# What the report says about the machine

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512_bf16") if x in flags]
    except OSError:
        pass
    return []


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def _cpu_times():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]), idle


def others_busy(sample: float = 0.3) -> float | None:
    """Share of the machine's CPU time (0 to 1, all cores) that other processes used during
    `sample` seconds while this one slept (its own leftover spinning threads are subtracted).
    None where /proc/stat is missing."""
    try:
        time.sleep(0.15)  # let this process's own pools stop spinning
        total0, idle0 = _cpu_times()
        own0 = os.times()
        time.sleep(sample)
        total1, idle1 = _cpu_times()
        own1 = os.times()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    own = ((own1.user + own1.system) - (own0.user + own0.system)) * tick
    busy = (total1 - total0) - (idle1 - idle0) - own
    return round(min(1.0, max(0.0, busy / max(1, total1 - total0))), 3)


class OthersMeter:
    """Other processes' share of the machine's CPU between start() and share(): /proc/stat's
    busy time less this process's own CPU time (all its threads)."""

    def start(self):
        try:
            self.t0 = _cpu_times()
        except OSError:
            self.t0 = None
        self.own0 = os.times()
        return self

    def share(self) -> float | None:
        if self.t0 is None:
            return None
        total1, idle1 = _cpu_times()
        own1 = os.times()
        own = ((own1.user + own1.system) - (self.own0.user + self.own0.system)) * os.sysconf("SC_CLK_TCK")
        total, idle = total1 - self.t0[0], idle1 - self.t0[1]
        return round(min(1.0, max(0.0, (total - idle - own) / max(1, total))), 3)


def wait_idle(limit: float, threshold: float = 0.1) -> tuple:
    """Wait (at most `limit` seconds) until other processes use less than `threshold` of the
    machine; returns (busy share seen last, seconds waited)."""
    started = time.perf_counter()
    busy = others_busy()
    while busy is not None and busy >= threshold and time.perf_counter() - started < limit:
        time.sleep(1.0)
        busy = others_busy()
    return busy, round(time.perf_counter() - started, 1)


def _threadpools() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed: BLAS threads could not be set or read"}]
    return [{"api": p.get("internal_api"), "user_api": p.get("user_api"), "threads": p.get("num_threads"),
             "version": p.get("version"), "library": os.path.basename(p.get("filepath", ""))}
            for p in threadpool_info()]


def meta(args, profile) -> dict:
    from fastnn.backend import build_info as _show_config

    cfg = _show_config.config()
    torch = harness.torch
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": " ".join([os.path.basename(sys.executable), "benchmarks/run.py"] + sys.argv[1:]),
        "cpu": _cpu_model(), "cpu_flags": _cpu_flags(), "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(), "numpy": np.__version__, "fastnn": fastnn.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_adam": harness.torch_adam_kind(),
        "fastnn_config": {k: cfg[k] for k in ("compile_flags", "debug_build", "openmp", "openmp_threads",
                                              "gemm_backend", "blas")},
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                               "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
        "mnist": harness.mnist_rows()[2],
        "profile": "quick" if args.quick else "full", "settings": profile,
        "loadavg_start": _loadavg(),
    }


# --------------------------------------------------------------------------------------------------
# One thread count

def _set_threads(n: int):
    limiter = None
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=n)
    except ImportError:
        print("warning: threadpoolctl is not installed; BLAS threads are left as they are", file=sys.stderr)
    if harness.torch is not None:
        harness.torch.set_num_threads(n)
    return limiter


def run_threads(n: int, args, profile) -> dict:
    torch_before = harness.torch.get_num_threads() if harness.torch is not None else None
    limiter = _set_threads(n)
    out = {"threads": n, "threadpools": _threadpools(), "fastnn_openmp_threads": None,
           "torch_threads": harness.torch.get_num_threads() if harness.torch is not None else None,
           "steps": {}, "anatomy": {}, "ops": {}}
    from fastnn._ext import _buildinfo
    out["fastnn_openmp_threads"] = _buildinfo.openmp_max_threads()
    # With more than one thread, pools of the other family spin on after their last call.
    settle = profile["settle"] if n > 1 and not args.no_torch and harness.torch is not None else 0.0
    out["settle_s"] = settle
    try:
        for name in args.configs:
            config = harness.CONFIGS[name]
            peers = harness.peers_for(config, with_torch=not args.no_torch)
            steps = {p: harness.make_step(config, p) for p in peers}
            busy0, waited = wait_idle(args.wait_idle) if args.wait_idle else (others_busy(), 0.0)
            load0 = _loadavg()
            t0 = time.perf_counter()
            meter = OthersMeter().start()
            info = measure(steps, rounds=profile["rounds"], budget=profile["budget"], warmup=profile["warmup"],
                           calibrate=profile["calibrate"], families={"torch": "torch"}, settle=settle)
            result = {"peers": {p: dict(stats(v["samples_ns"]), inner=v["inner"], warm=v["warm"])
                                for p, v in info.items()},
                      "seconds": round(time.perf_counter() - t0, 2), "loadavg": [load0, _loadavg()],
                      "others_busy": [busy0, meter.share()], "waited_for_idle_s": waited,
                      "data": harness.batches(config)[1]}
            result.update(_ratios(config, result["peers"]))
            out["steps"][name] = result
            _progress(n, name, result)
            del steps
            if not args.no_anatomy:
                out["anatomy"][name] = anatomy(config, profile)
        if not args.no_ops:
            for group, factories in harness.OP_GROUPS.items():
                if args.ops and not any(part in group for part in args.ops):
                    continue
                if args.no_torch:
                    factories = {k: v for k, v in factories.items() if k != "torch"}
                ops = {p: f() for p, f in factories.items()}
                info = measure(ops, rounds=profile["rounds"], budget=profile["op_budget"], warmup=profile["warmup"],
                               calibrate=profile["calibrate"] / 2, families={"torch": "torch"}, settle=settle)
                out["ops"][group] = {p: stats(v["samples_ns"]) for p, v in info.items()}
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        if torch_before is not None:
            harness.torch.set_num_threads(torch_before)
    return out


def _ratios(config, peers) -> dict:
    med = {p: v["median"] for p, v in peers.items()}
    f = med["fastnn"]
    r = {"reference/fastnn": med["reference"] / f,
         "torch/fastnn": med["torch"] / f if "torch" in med else None,
         "fastnn/gemm-floor": f / med["gemm-floor"]}
    met = harness.target_met(config, r["reference/fastnn"], r["fastnn/gemm-floor"])
    return {"ratios": r, "target": harness.target_text(config), "target_met": met,
            "beats_torch": None if r["torch/fastnn"] is None else r["torch/fastnn"] > 1.0}


def anatomy(config, profile) -> dict:
    """Median time of each call inside one step: fastnn's and the reference's public methods,
    and fastnn's raw kernel calls (same pretraining and per-block reset as the step peers)."""
    data, _ = harness.batches(config)
    variants = {}
    for name, lib, make in (("fastnn", fastnn, harness.public_thunks), ("reference", harness.ref, harness.public_thunks),
                            ("fastnn-raw", fastnn, harness.raw_thunks)):
        model = harness.build_model(lib, config)
        step = Instrumented(make(model, config, data))
        if config.training:
            harness.prepare(step, lambda m=model: harness.restorer(m.trainable_layers, m.optimizer), config.pretrain)
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
# Report

def _us(s) -> str:
    if s is None:
        return "–"
    m = s["median"]
    fmt = (lambda x: f"{x:,.0f}") if m >= 100 else (lambda x: f"{x:.1f}")
    return f"{fmt(m)} [{fmt(s['p10'])}–{fmt(s['p90'])}]"


def _x(r, digits=2) -> str:
    return "–" if r is None else f"{r:.{digits}f}x"


def _yes(v) -> str:
    return "–" if v is None else ("met" if v else "**missed**")


def markdown(report: dict) -> str:
    m = report["meta"]
    lines = [f"# fastnn benchmark report: {m['date'][:10]}, {m['host']}", ""]
    lines += [
        f"`{m['command']}` ({m['profile']} profile: {m['settings']['rounds']} interleaved rounds per configuration)",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}); {m['platform']}",
        f"- Python {m['python']}, NumPy {m['numpy']}, fastnn {m['fastnn']}, torch {m['torch'] or 'not installed'}"
        f" (Adam: {m['torch_adam']})",
        f"- fastnn build: `{m['fastnn_config']['compile_flags']}`, OpenMP "
        f"{'on' if m['fastnn_config']['openmp'] else 'off'}; GEMM: {m['fastnn_config']['gemm_backend']}",
        "- environment: " + (", ".join(f"{k}={v}" for k, v in m["env"].items() if v is not None)
                             or "OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, OMP_WAIT_POLICY, "
                                "GOMP_SPINCOUNT all unset (thread counts are set by the script, below)"),
        f"- data: spiral from the nnfs formula; 784-input configurations: {m['mnist']}",
        f"- load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}",
        "",
        "Medians in µs per step with [p10–p90] over individually timed steps; ratios are of medians from "
        "this run. `fastnn/GEMM floor` is the fastnn step against the same step's GEMMs alone "
        "(`fastnn.backend.blas.gemm` into preallocated buffers); `reference/fastnn` and `torch/fastnn` above 1 "
        "mean fastnn is faster.",
    ]
    for run in report["runs"]:
        n = run["threads"]
        pools = "; ".join(f"{p.get('api')} {p.get('threads')} thr ({p.get('library')})" for p in run["threadpools"])
        lines += ["", f"## Training steps and inference, {n} thread(s)", "",
                  f"Thread pools while measuring: {pools}; torch threads {run['torch_threads']}; fastnn OpenMP "
                  f"max threads {run['fastnn_openmp_threads']}; settle sleep between torch and NumPy-BLAS "
                  f"blocks {run.get('settle_s', 0)} s.", "",
                  "| config | fastnn | reference | torch | GEMM floor | reference/fastnn | torch/fastnn | "
                  "fastnn/GEMM floor | target | target met? | faster than torch? |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, s in run["steps"].items():
            p, r = s["peers"], s["ratios"]
            lines.append(f"| {name} | {_us(p['fastnn'])} | {_us(p['reference'])} | {_us(p.get('torch'))} | "
                         f"{_us(p['gemm-floor'])} | {_x(r['reference/fastnn'])} | {_x(r['torch/fastnn'])} | "
                         f"{_x(r['fastnn/gemm-floor'])} | {s['target']} | {_yes(s['target_met'])} | "
                         f"{'–' if s['beats_torch'] is None else ('yes' if s['beats_torch'] else '**no**')} |")
        lines += ["", f"Ratios from the p10s ({n} thread(s)): noise only adds time, so on a busy machine these are "
                  "closer to the undisturbed cost; a large gap to the median ratios above marks a disturbed row.", "",
                  "| config | reference/fastnn | torch/fastnn | fastnn/GEMM floor |", "|---|---|---|---|"]
        for name, s in run["steps"].items():
            p = s["peers"]
            f10 = p["fastnn"]["p10"]
            t10 = _x(p["torch"]["p10"] / f10) if "torch" in p else "–"
            lines.append(f"| {name} | {_x(p['reference']['p10'] / f10)} | {t10} | {_x(f10 / p['gemm-floor']['p10'])} |")
        lines += ["", f"### The Python layer's cost per step (issue 8), {n} thread(s)", "",
                  "`fastnn-raw` issues the same step's kernel calls straight to the entry points "
                  "(`fastnn._ext._dense.forward(layer.__dict__, x)`, ...): no class methods, no Python-side "
                  "checks. public − raw is what the Python layer costs; raw − floor is the kernels' non-GEMM "
                  "work plus their call cost.", "",
                  "| config | fastnn (book step) | Model._train_step | fastnn-raw | GEMM floor | public − raw | "
                  "raw − floor | other |", "|---|---|---|---|---|---|---|---|"]
        for name, s in run["steps"].items():
            p = s["peers"]
            f, raw, fl = p["fastnn"]["median"], p["fastnn-raw"]["median"], p["gemm-floor"]["median"]
            extra = [f"{k}: {_us(p[k])}" for k in ("fastnn-predict", "fastnn-manual", "reference-manual") if k in p]
            second = p.get("fastnn-train-step")
            lines.append(f"| {name} | {_us(p['fastnn'])} | {_us(second)} | {_us(p['fastnn-raw'])} | "
                         f"{_us(p['gemm-floor'])} | {f - raw:,.1f} ({(f - raw) / f:.0%}) | "
                         f"{raw - fl:,.1f} ({(raw - fl) / f:.0%}) | {'; '.join(extra)} |")
        if run["anatomy"]:
            lines += ["", f"### Step anatomy, {n} thread(s): median µs of each call inside one step", ""]
            for name, variants in run["anatomy"].items():
                lines += [f"<details><summary>{name}</summary>", ""]
                pub_f, pub_r = variants["fastnn"], variants["reference"]
                lines += ["| public call | fastnn | reference |", "|---|---|---|"]
                for (label, a), (_, b) in zip(pub_f, pub_r):
                    lines.append(f"| {label} | {a:,.2f} | {b:,.2f} |")
                lines.append(f"| **sum** | **{sum(a for _, a in pub_f):,.1f}** | **{sum(b for _, b in pub_r):,.1f}** |")
                lines += ["", "| raw kernel call | fastnn-raw |", "|---|---|"]
                for label, a in variants["fastnn-raw"]:
                    lines.append(f"| {label} | {a:,.2f} |")
                lines.append(f"| **sum** | **{sum(a for _, a in variants['fastnn-raw']):,.1f}** |")
                lines += ["", "</details>", ""]
        if run["ops"]:
            cols = ["fastnn", "fastnn-fast", "fastnn-book", "reference", "torch", "gemm-floor"]
            lines += ["", f"## Ops, {n} thread(s) (µs per call)", "",
                      "| op | " + " | ".join(cols) + " | reference/fastnn | torch/fastnn |",
                      "|---|" + "---|" * (len(cols) + 2)]
            for group, peers in run["ops"].items():
                base = peers.get("fastnn") or peers.get("fastnn-fast")
                refr = peers["reference"]["median"] / base["median"]
                tr = peers["torch"]["median"] / base["median"] if "torch" in peers else None
                lines.append(f"| {group} | " + " | ".join(_us(peers.get(c)) if c in peers else "" for c in cols)
                             + f" | {_x(refr)} | {_x(tr)} |")
    baselines = [(c.name, c.baseline) for c in harness.CONFIGS.values() if c.baseline]
    lines += ["", "## Issue 7's measured baselines (µs per step, for context)", "",
              "| config | reference | torch | GEMMs |", "|---|---|---|---|"]
    lines += [f"| {n} | {b['reference']:,} | {b['torch']:,} | {b['gemm-floor']:,} |" for n, b in baselines]
    lines += ["", "## Configurations", ""]
    lines += [f"- `{c.name}`: {c.description}; target {harness.target_text(c)} and faster than torch"
              for c in harness.CONFIGS.values()]
    lines += ["", "## Run notes", "",
              "Other processes' share of the machine's CPU (all cores): just before each configuration "
              "(this process asleep) and averaged over its measurement (/proc/stat less this process's own "
              "CPU time); and the 1/5/15-minute load averages. Figures measured while others took a "
              "sizeable share are suspect, 2-thread ones most.", "",
              "| threads | config | seconds | waited for idle (s) | others' CPU before → during | "
              "load average before → after | data |", "|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        for name, s in run["steps"].items():
            b0, b1 = s["others_busy"]
            pct = (lambda b: "–" if b is None else f"{b:.0%}")
            lines.append(f"| {run['threads']} | {name} | {s['seconds']} | {s['waited_for_idle_s']} | {pct(b0)} → "
                         f"{pct(b1)} | {s['loadavg'][0]} → {s['loadavg'][1]} | {s['data']} |")
    lines += ["", "Note: a shared machine (other processes may run concurrently); the load averages above "
              "and the p10–p90 spreads say how noisy this run was.", ""]
    return "\n".join(lines)


def plot(report: dict, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 3.8 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        names = list(run["steps"])
        x = np.arange(len(names))
        ref_r = [run["steps"][n]["ratios"]["reference/fastnn"] for n in names]
        tor_r = [run["steps"][n]["ratios"]["torch/fastnn"] or np.nan for n in names]
        ax = row[0]
        ax.bar(x - 0.2, ref_r, 0.4, label="reference / fastnn")
        ax.bar(x + 0.2, tor_r, 0.4, label="torch / fastnn")
        for i, n in enumerate(names):
            t = harness.CONFIGS[n].target
            if t.get("kind") == "ref_ratio":
                ax.plot([i - 0.4, i], [t["value"]] * 2, "k--", lw=1)
        ax.axhline(1, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylabel("speed-up of fastnn (x)")
        ax.set_title(f"{run['threads']} thread(s): fastnn vs peers (dashes: targets)")
        ax.legend(fontsize=8)
        ax = row[1]
        fl = [run["steps"][n]["ratios"]["fastnn/gemm-floor"] for n in names]
        ax.bar(x, fl, 0.5, color="tab:green")
        for i, n in enumerate(names):
            t = harness.CONFIGS[n].target
            if t.get("kind") == "floor_ratio":
                ax.plot([i - 0.3, i + 0.3], [t["value"]] * 2, "k--", lw=1)
        ax.axhline(1, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylabel("fastnn / GEMM floor (x)")
        ax.set_title("time over the step's GEMMs alone (dashes: targets)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few rounds and short blocks (smoke check, < 1 min)")
    p.add_argument("--threads", default="2", help="comma-separated thread counts (default 2)")
    p.add_argument("--configs", help=f"comma-separated configurations (default all: {','.join(harness.CONFIGS)}; "
                   "--quick leaves out the pretrained *-long ones)")
    p.add_argument("--rounds", type=int, help="override the profile's number of rounds")
    p.add_argument("--budget", type=float, help="override the profile's seconds per configuration")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op groups")
    p.add_argument("--ops", default="", help="comma-separated substrings: only the op groups whose name "
                   "contains one (e.g. 'Adam,dropout'; default all)")
    p.add_argument("--no-anatomy", action="store_true", help="skip the per-call step anatomy")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
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
        args.configs = ",".join(c.name for c in harness.CONFIGS.values() if not (args.quick and c.pretrain > 1))
    args.configs = [c for c in args.configs.split(",") if c]
    args.ops = [o for o in args.ops.split(",") if o]
    if args.wait_idle is None:
        args.wait_idle = 0.0 if args.quick else 60.0
    unknown = [c for c in args.configs if c not in harness.CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {list(harness.CONFIGS)}")
    return args


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
    for n in args.threads:
        report["runs"].append(run_threads(n, args, profile))
    report["meta"]["loadavg_end"] = _loadavg()
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
