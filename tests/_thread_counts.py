"""One computation run at several thread counts of the kernels' OpenMP split, for the tests that
results do not depend on the thread count (serial, automatic, more threads than cores)."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from fastnn._ext import _threads


@contextlib.contextmanager
def splitting_tiny_batches() -> Iterator[None]:
    """Inside: the split threshold is one multiply-add per thread, so the tests' small batches are
    split too. After: the thread setting and the threshold are what they were."""
    before = _threads.num_threads()[0]
    threshold = _threads.set_min_work_per_thread(1)
    try:
        yield
    finally:
        _threads.set_num_threads(before)
        _threads.set_min_work_per_thread(threshold)


def at_thread_counts(counts: Iterable[int], run: Callable[[], Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
    """Copies of the arrays run() returns, once per thread setting in `counts` (0 = automatic)."""
    results = []
    with splitting_tiny_batches():
        for threads in counts:
            _threads.set_num_threads(threads)
            results.append([np.array(a, copy=True) for a in run()])
    return results


def assert_identical(results: list[list[np.ndarray]]) -> None:
    """Every run's arrays equal the first run's, bit for bit."""
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, want)
