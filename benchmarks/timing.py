"""Interleaved timing: every peer of a group measured in the same rounds, each round in a fresh
random order, each peer's block reset to its snapshot, warmed up untimed, then individually timed."""
from __future__ import annotations

import gc
import math
import time

import numpy as np


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
    """Median, p10, p90, mean and minimum in µs, and the count, of samples in ns."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "mean": float(a.mean()), "min": float(a.min()), "n": int(a.size)}
