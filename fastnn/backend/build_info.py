"""fastnn.show_config(): how this installation was built and what it runs with."""
from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import Any

import numpy as np

from .._ext import DISPATCHED, KERNELS, MODULES, _blas, _buildinfo, _threads
from .._version import __version__
from . import blas


def config() -> dict:
    """The facts show_config() prints, as a dict (used by tests and benchmark reports)."""
    modules = {}
    for name in MODULES:
        module = importlib.import_module(f"fastnn._ext.{name}")
        modules[name] = module.__file__
    pools = _blas_pools()
    kind, description = blas.backend() or ("none", "no BLAS installed")
    return {
        "fastnn": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "compiled_modules": modules,
        "compile_flags": _buildinfo.compile_flags(),
        "debug_build": _buildinfo.debug_build(),
        "kernels": KERNELS,
        "cpu_has_avx2": _buildinfo.cpu_has_avx2(),
        "dispatched_modules": list(DISPATCHED),
        "openmp": _buildinfo.openmp_enabled(),
        "openmp_threads": _buildinfo.openmp_max_threads(),
        "gemm_backend": f"{kind}: {description}",
        "conv_gemm": conv_gemm(),
        "thread_policy": thread_policy(),
        "blas": pools,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                           "OMP_WAIT_POLICY", "FASTNN_DATA", "FASTNN_KERNELS",
                                           "FASTNN_BLAS_THREADS", "OPENBLAS_CORETYPE") if k in os.environ},
    }


def conv_gemm() -> str:
    """Which GEMMs Conv2D's float32 products (and the compiled regression step's) run in
    (src_pyx/_smallgemm.pxd), in one line."""
    if _blas.small_gemm_available():
        return "fastnn's AVX-512 kernels for float32 (float64: the GEMM above)"
    return "the GEMM above (this CPU has no AVX-512 for fastnn's conv kernels)"


def thread_policy() -> str:
    """fastnn's thread policy in one line (docs/threads.md)."""
    setting, conv_threads, pinnable = _threads.num_threads()
    conv = (f"conv loop over samples on {conv_threads} OpenMP thread(s) "
            f"({'automatic' if setting == 0 else f'set_num_threads({setting})'})")
    if _threads.shared_team():
        return ("one pool: NumPy's OpenBLAS runs its threaded GEMMs on fastnn's OpenMP team; " + conv
                + ", BLAS pinned to 1 thread inside it; large elementwise and pooling passes split over the team")
    if pinnable:
        return ("OpenBLAS's own threads (FASTNN_BLAS_THREADS=openblas or no caller-managed threading); " + conv
                + ", split only while BLAS is on 1 thread; large elementwise and pooling passes split likewise")
    return "BLAS threads its GEMMs (a BLAS fastnn cannot pin); conv loop serial; elementwise kernels serial"


def _blas_pools() -> list[dict]:
    """Every BLAS/OpenMP pool in the process, from threadpoolctl when it is installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        cfg: Any = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
        blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
        return [{"name": blas.get("name", "unknown"), "version": blas.get("version", "unknown"),
                 "threads": "unknown (install threadpoolctl)"}]
    return [{"name": p.get("internal_api"), "version": p.get("version"), "threads": p.get("num_threads"),
             "library": os.path.basename(p.get("filepath", ""))} for p in threadpool_info()]


def show_config() -> None:
    """Print the version, each compiled module, OpenMP, the compile flags and the BLAS in use."""
    c = config()
    lines = [
        f"fastnn {c['fastnn']} (Python {c['python']}, NumPy {c['numpy']}, {c['platform']})",
        f"compiled modules ({len(c['compiled_modules'])}):",
    ]
    lines += [f"  {name:14s} {path}" for name, path in c["compiled_modules"].items()]
    lines += [
        f"compile flags:  {c['compile_flags']}" + ("  [debug build: bounds checks on]" if c["debug_build"] else ""),
        f"kernels:        {c['kernels']} (runtime dispatch of {', '.join(c['dispatched_modules'])}; CPU AVX2: "
        f"{'yes' if c['cpu_has_avx2'] else 'no'}; FASTNN_KERNELS=baseline forces the portable build)",
        f"OpenMP:         {'on' if c['openmp'] else 'off'}, {c['openmp_threads']} thread(s)",
        f"GEMM:           {c['gemm_backend']}",
        f"conv GEMMs:     {c['conv_gemm']}",
        f"thread policy:  {c['thread_policy']}",
        "thread pools:",
    ]
    lines += [f"  {p['name']} {p['version']}: {p['threads']} thread(s) {p.get('library', '')}".rstrip()
              for p in c["blas"]]
    if c["env"]:
        lines.append("environment:    " + ", ".join(f"{k}={v}" for k, v in c["env"].items()))
    print("\n".join(lines))
