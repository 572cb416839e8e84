"""Threads of fastnn's compiled kernels: the convolution loop over samples on OpenMP threads, with
NumPy's OpenBLAS pinned to one thread inside it (``fastnn.backend.blas`` hands the kernels
OpenBLAS's thread-count functions)."""
from __future__ import annotations

from .._core import checks as _checks
from .._ext import _threads

__all__ = ["set_num_threads", "get_num_threads"]


def set_num_threads(n: int) -> None:
    """Threads for the convolution kernels: 0 = automatic (the default: OpenMP's count, i.e.
    OMP_NUM_THREADS or the cores, while NumPy's BLAS is limited to one thread, else 1), 1 =
    serial, n = n threads. Process-wide; the results do not depend on it."""
    _threads.set_num_threads(_checks.non_negative_int(n, "n", "fastnn.conv.set_num_threads"))


def get_num_threads() -> int:
    """Threads a large convolution uses now (1 when NumPy's BLAS cannot be pinned)."""
    return _threads.num_threads()[1]
