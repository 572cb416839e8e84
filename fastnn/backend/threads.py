"""Threads of fastnn's compiled kernels: the convolution loop over samples, BatchNorm's channels and
the compiled regression step's chunks of rows on OpenMP threads, with NumPy's OpenBLAS pinned to
one thread inside them (``fastnn.backend.blas`` hands the kernels OpenBLAS's thread-count
functions)."""
from __future__ import annotations

from .._core import checks as _checks
from .._ext import _threads

__all__ = ["set_num_threads", "get_num_threads"]


def set_num_threads(n: int) -> None:
    """Threads for the kernels that split their work over fastnn's OpenMP team (the convolutions,
    BatchNorm on NCHW data, Model.train's compiled regression step): 0 = automatic (the default:
    OpenMP's count, i.e. OMP_NUM_THREADS, threadpoolctl's OpenMP limit or the cores, when NumPy's
    OpenBLAS runs on that team or on one thread; else 1), 1 = serial, n = n threads. Small work
    uses fewer. Process-wide; the results do not depend on it."""
    _threads.set_num_threads(_checks.non_negative_int(n, "n", "fastnn.conv.set_num_threads"))


def get_num_threads() -> int:
    """Threads a large convolution uses now (1 when NumPy's BLAS cannot be pinned)."""
    return _threads.num_threads()[1]
