"""What the tests of Model.train's compiled plans share (tests/test_fused_mlp.py,
tests/test_fused_deep.py): runs with the plan on and switched off, a run in several train calls,
and a planned step's allocations."""
from __future__ import annotations

import contextlib
import gc
import tracemalloc
from typing import Callable, Iterator

import numpy as np
import pytest

from fastnn import _plan
from fastnn._ext import _blas


@contextlib.contextmanager
def plan_switched_off() -> Iterator[None]:
    """Inside: Model.train compiles no plan (every step takes the per-layer path)."""
    saved = _plan.compile_plan
    _plan.compile_plan = lambda *args, **kwargs: None
    try:
        yield
    finally:
        _plan.compile_plan = saved


@contextlib.contextmanager
def blas_products() -> Iterator[None]:
    """Inside: fastnn's own AVX-512 GEMM kernels are switched off, so every Dense product,
    Model.train's included (its GemmPlan), is NumPy's BLAS call."""
    saved = _blas.set_small_gemm(False)
    try:
        yield
    finally:
        _blas.set_small_gemm(saved)


def with_and_without_plan(build: Callable, X, y, **train) -> list:
    """(history.loss, the trained weights) of build()'s model trained with the plan on, then off,
    after the same np.random.seed(3)."""
    runs = []
    for plan_on in (True, False):
        model = build()
        np.random.seed(3)
        with contextlib.nullcontext() if plan_on else plan_switched_off():
            history = model.train(X, y, verbose="silent", **train)
        runs.append((history.loss, [layer.weights.copy() for layer in model.trainable_layers]))
    return runs


def several_calls_and_one(build: Callable, X, y, batch_size: int) -> list:
    """(losses, trained weights) of 6 epochs in one train call and in calls of 2, 3 and 1 epochs."""
    runs = []
    for chunks in ([6], [2, 3, 1]):
        model = build()
        np.random.seed(4)
        losses = []
        for epochs in chunks:
            losses += model.train(X, y, epochs=epochs, batch_size=batch_size, verbose="silent").loss
        runs.append((losses, [layer.weights.copy() for layer in model.trainable_layers]))
    return runs


def assert_same_runs(runs: list) -> None:
    """The runs' losses are equal and their weights bit-identical."""
    (loss_a, weights_a), (loss_b, weights_b) = runs
    assert loss_a == loss_b
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(a, b)


def assert_allocates_nothing(step: Callable[[int], object], warmup: int = 3, steps: int = 20) -> None:
    """After `warmup` calls, `steps` calls of step(i) leave tracemalloc no growth and no transient
    peak of 4 kB or more (the size of a small array)."""
    for i in range(warmup):
        step(i)
    tracemalloc.start()
    try:
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(steps):
            step(i)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4096 and peak - before < 4096, (after - before, peak - before)


def count_taken_steps(monkeypatch, module, name: str) -> list:
    """Wrap the kernel module.name so that every step it takes (returns other than None) appends
    to the list returned."""
    taken: list = []
    real = getattr(module, name)

    def counted(*args):
        result = real(*args)
        if result is not None:
            taken.append(1)
        return result
    monkeypatch.setattr(module, name, counted)
    return taken


def assert_a_non_finite_loss_stops_before_the_update(model, X, y) -> None:
    """X holds an inf: training raises at epoch 1, step 0, and the weights stay as they were."""
    weights = model.layers[0].weights.copy()
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        model.train(X, y, epochs=5, verbose="silent")
    np.testing.assert_array_equal(model.layers[0].weights, weights)
