"""NumPy's OpenBLAS running its threaded GEMMs on fastnn's OpenMP team (the shared team,
docs/threads.md): the same bits as OpenBLAS's own threads, safe from several Python threads at
once, and from the POSIX-thread fallback used when an OpenMP team of the right size cannot be had.
"""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn.backend import blas
from fastnn._ext import _threads
from _thread_counts import assert_identical, at_thread_counts

threadpoolctl = pytest.importorskip("threadpoolctl")

needs_team = pytest.mark.skipif(not _threads.shared_team(),
                                reason="NumPy's BLAS cannot run on fastnn's team (not OpenBLAS >= 0.3.27, "
                                       "or a build without OpenMP)")


def products(seed=0):
    rng = np.random.default_rng(seed)
    pairs = [(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
             for (m, k, n) in [(300, 257, 311), (1024, 64, 512), (64, 2000, 96)] for dtype in (np.float32, np.float64)]
    return pairs


@needs_team
def test_shared_team_gives_openblas_own_bits():
    pairs = products()
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        shared = [a @ b for a, b in pairs]
        try:
            assert not blas.set_shared_team(False)
            assert not _threads.shared_team()
            own = [a @ b for a, b in pairs]
        finally:
            assert blas.set_shared_team(True)
    for got, want in zip(shared, own):
        np.testing.assert_array_equal(got, want)


@needs_team
def test_shared_team_from_several_python_threads():
    pairs = products(1)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        want = [a @ b for a, b in pairs]
    got, errors = {}, []

    def worker(i):
        try:
            for _ in range(3):
                got[i] = [a @ b for a, b in pairs]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not errors and len(got) == 3
    for results in got.values():
        for g, w in zip(results, want):  # the thread count may change the last bits, not more
            np.testing.assert_allclose(g, w, rtol=1e-4 if g.dtype == np.float32 else 1e-12,
                                       atol=1e-3 if g.dtype == np.float32 else 1e-10)


@needs_team
def test_posix_thread_fallback_when_openmp_cannot_give_the_team():
    """OMP_DYNAMIC lets OpenMP shrink a team, so the jobs run on POSIX threads instead."""
    code = ("import numpy as np, fastnn, threadpoolctl\n"
            "from fastnn._ext import _threads\n"
            "assert _threads.shared_team()\n"
            "rng = np.random.default_rng(0)\n"
            "a = rng.standard_normal((700, 600)).astype(np.float32)\n"
            "with threadpoolctl.threadpool_limits(limits=2, user_api='blas'):\n"
            "    c = a @ a.T\n"
            "want = a.astype(np.float64) @ a.T.astype(np.float64)\n"
            "assert np.abs(c - want).max() < 1e-2, np.abs(c - want).max()\n"
            "print('ok')\n")
    env = dict(os.environ, OMP_DYNAMIC="true")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_openblas_own_threads_on_request():
    code = ("import fastnn\nfrom fastnn._ext import _threads\nprint(_threads.shared_team())\n")
    env = dict(os.environ, FASTNN_BLAS_THREADS="openblas")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


@needs_team
def test_conv_training_under_blas_threads_matches_serial_conv():
    """With BLAS on 2 threads the conv loop uses OpenMP threads by default; its results are the
    serial loop's (fixed chunks), in a Model step whose Dense GEMMs run on the same team."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((24, 3, 10, 10)).astype(np.float32)
    g = rng.standard_normal((24, 8, 10, 10)).astype(np.float32)

    def run():
        np.random.seed(2)
        layer = fastnn.Layer_Conv2D(3, 8, 3, padding=1)
        layer.forward(x)
        layer.backward(g)
        if _threads.num_threads()[0] == 0:  # the automatic setting splits the batch here
            assert _threads.num_threads()[1] > 1 or fastnn._ext._buildinfo.openmp_max_threads() == 1
        return layer.output, layer.dinputs, layer.dweights

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert_identical(at_thread_counts((1, 0), run))


@needs_team
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_threaded_gemm_in_a_forked_child():
    """A child forked after the parent used the team still multiplies (on POSIX threads)."""
    a = np.random.default_rng(3).standard_normal((600, 600)).astype(np.float32)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        want = a @ a
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            ok = np.array_equal(a @ a, want)
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
