"""Shared fixtures and options for fastnn's tests.

BLAS is pinned to one thread for the whole test run: products are then bit-identical between
fastnn (NumPy's BLAS called from C) and fastnn.reference (np.matmul), and results do not depend on
the machine's core count (NumPy's BLAS product bits change with its thread count).
"""
import os
import pathlib

import numpy as np
import pytest

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is a test dependency
    threadpool_limits = None

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def source_tree() -> pathlib.Path | None:
    """The repository the tests came from: the folder above tests/ when it holds setup.py, else
    $FASTNN_SOURCE_TREE (set by .ci/test_installed.py, which runs a copy of tests/ outside the
    repository against an installed wheel), else None. Only files are read from it: fastnn itself
    is always imported from wherever Python finds it."""
    for candidate in (REPO_ROOT, os.environ.get("FASTNN_SOURCE_TREE")):
        if candidate and (pathlib.Path(candidate) / "setup.py").is_file():
            return pathlib.Path(candidate).resolve()
    return None


SHARED_DATASETS = pathlib.Path(os.environ.get("FASTNN_TEST_DATASETS",
                                              (source_tree() or REPO_ROOT).parent / "shared" / "datasets"))


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    if threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    """Every kernel test runs in both supported dtypes."""
    return np.dtype(request.param)


@pytest.fixture(params=[1, 0], ids=["serial", "threads"])
def conv_threads(request):
    """Both Conv2D drivers: the serial loop over samples and the OpenMP split of the batch (made
    to split even tiny test batches)."""
    from fastnn._ext import _threads

    before = _threads.num_threads()[0]
    _threads.set_num_threads(request.param)
    threshold = _threads.set_min_work_per_thread(1)
    yield request.param
    _threads.set_min_work_per_thread(threshold)
    _threads.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def source():
    """The repository's files (README, docs, setup.py, src_pyx, test_networks.py), or a clean
    skip when the tests run from a copy without FASTNN_SOURCE_TREE."""
    tree = source_tree()
    if tree is None:
        pytest.skip("the repository's files are not available (set FASTNN_SOURCE_TREE)")
    return tree


@pytest.fixture
def shared_datasets():
    """The real datasets folder (../shared/datasets), or a clean skip when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def seeded():
    """np.random.seed(0) for the test; the global RNG state is restored afterwards."""
    state = np.random.get_state()
    np.random.seed(0)
    yield
    np.random.set_state(state)
