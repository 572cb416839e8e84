"""The machine the benchmarks run on: its CPU, other processes' share of it, and the thread pools
(BLAS and OpenMP through threadpoolctl, and torch's), which ``pin_threads`` sets."""
from __future__ import annotations

import os
import platform
import sys
import time

from torch_peer import torch


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else what platform says)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list:
    """Which of the vector-instruction flags that matter to the kernels the CPU has."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512_bf16") if x in flags]
    except OSError:
        pass
    return []


def loadavg():
    """The 1, 5 and 15-minute load averages, rounded (None where unavailable)."""
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


def threadpools() -> list:
    """What threadpoolctl says of every BLAS and OpenMP pool in the process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed: BLAS threads could not be set or read"}]
    return [{"api": p.get("internal_api"), "user_api": p.get("user_api"), "threads": p.get("num_threads"),
             "version": p.get("version"), "library": os.path.basename(p.get("filepath", ""))}
            for p in threadpool_info()]


def pin_threads(n: int):
    """Limit every BLAS and OpenMP pool in the process (threadpoolctl) and torch to `n` threads;
    returns a function that puts them back."""
    torch_before = torch.get_num_threads() if torch is not None else None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limiter = None
        print("warning: threadpoolctl is not installed; BLAS threads are left as they are", file=sys.stderr)
    else:
        limiter = threadpool_limits(limits=n)
    if torch is not None:
        torch.set_num_threads(n)

    def restore():
        if limiter is not None:
            limiter.restore_original_limits()
        if torch_before is not None:
            torch.set_num_threads(torch_before)
    return restore
