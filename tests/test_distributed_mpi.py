"""Distributed training on two real MPI ranks: ``mpiexec -n 2 python tests/mpi_scenarios.py``
launched from here, with a timeout, and each rank's results checked. Skipped, with the reason,
when mpi4py or mpiexec is not installed (``pip install "fastnn[mpi]"``).

Tolerances against a one-process run with the same batch size (max |difference| over all
parameters, relative to the largest parameter):

- float64: 1e-12. The ranks compute the same products on parts of the batch, and the parts'
  gradients are added after the weighting, so only the order of the sums differs from one
  process: a few ulp per step (measured: at most 4e-14 after 20 steps).
- float32: 1e-4. The same reordering at float32's rounding (6e-8), amplified by Adam, which
  divides each gradient by its running size: measured at most 7.6e-6 after 5 full-batch Adam
  steps, 7e-7 over 40 minibatch steps, 1e-6 for SGD with momentum; 1e-4 leaves a factor of 13.
  The epoch losses agree to 1e-6 (measured 2e-8).
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "mpi_scenarios.py"
F64_RTOL, F32_RTOL = 1e-12, 1e-4
TIMEOUT = 120


def _mpiexec() -> str | None:
    # The one beside this Python first (the mpich wheel's, matching mpi4py's MPI), then PATH.
    return shutil.which("mpiexec", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason='needs mpi4py and mpiexec: pip install "fastnn[mpi]"')


def launch(out: pathlib.Path, group: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(SCRIPT), str(out), group], cwd=out, env=env,
                          capture_output=True, text=True, timeout=timeout)


def results(out: pathlib.Path, group: str) -> list[dict]:
    done = launch(out, group)
    assert done.returncode == 0, f"mpiexec failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    ranks = [json.loads((out / f"{group}-rank{r}.json").read_text()) for r in range(2)]
    return ranks


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ranks = results(tmp_path_factory.mktemp("mpi-train"), "train")
    assert [r["size"] for r in ranks] == [2, 2], "mpiexec started single processes: its MPI is not mpi4py's"
    return ranks


@pytest.fixture(scope="module")
def failures(tmp_path_factory):
    return results(tmp_path_factory.mktemp("mpi-failures"), "failures")


def test_the_helpers_know_the_ranks(trained):
    assert [(r["rank"], r["is_root"]) for r in trained] == [(0, True), (1, False)]


@pytest.mark.parametrize("case", ["fused", "whole-set", "generic", "deep", "cnn"])
@pytest.mark.parametrize("dtype, rtol", [("float64", F64_RTOL), ("float32", F32_RTOL)], ids=["f64", "f32"])
def test_two_ranks_train_what_one_process_trains(trained, case, dtype, rtol):
    if case == "deep":  # the ranks train on Model.train's compiled regression step
        assert [rank["deep-plan"] for rank in trained] == ["RegressionPlan"] * 2
    for rank in trained:
        result = rank[f"{case}-{dtype}"]
        assert result["difference"] <= rtol, result
        assert result["history_difference"] <= (1e-12 if dtype == "float64" else 1e-6), result
    # the ranks hold identical parameters, and NumPy's global RNG is in the same state on both
    assert trained[0][f"{case}-{dtype}"]["digest"] == trained[1][f"{case}-{dtype}"]["digest"]
    assert trained[0][f"{case}-{dtype}"]["rng"] == trained[1][f"{case}-{dtype}"]["rng"]


@pytest.mark.parametrize("dtype, rtol", [("float64", F64_RTOL), ("float32", F32_RTOL)], ids=["f64", "f32"])
def test_sharded_training_sees_every_shard_once_per_epoch(trained, dtype, rtol):
    """Rank 0's shard has 3 batches, rank 1's 2: three steps per epoch (the longest shard), the
    last with rank 0's samples alone, as one process training on the batches interleaved."""
    zero, one = (rank[f"sharded-{dtype}"] for rank in trained)
    assert (zero["shard"], one["shard"]) == (60, 40)
    for result in (zero, one):
        assert result["difference"] <= rtol
        loss, continued, one_process = result["epoch_loss"]
        assert continued == pytest.approx(one_process, rel=1e-12 if dtype == "float64" else 1e-6)
        (loss_sharded, acc_sharded), (loss_one, acc_one) = result["evaluate"]
        assert loss_sharded == pytest.approx(loss_one, rel=1e-12 if dtype == "float64" else 1e-6)
        assert acc_sharded == acc_one
        assert result["predict_rows"] == 100  # both shards' outputs, on every rank
    assert zero["digest"] == one["digest"]


def test_only_rank_zero_prints_the_books_log(trained):
    zero, one = trained[0]["log"], trained[1]["log"]
    assert zero["distributed"] == zero["one"]  # float64: the one-process log, character for character
    assert "epoch: 2" in zero["distributed"] and "validation, acc:" in zero["distributed"]
    assert one["distributed"] == "" and trained[1]["evaluate"]["printed"] == ""


def test_dropout_masks_differ_between_ranks_and_the_parameters_do_not(trained):
    zero, one = trained[0]["dropout"], trained[1]["dropout"]
    assert zero["mask_shape"] == one["mask_shape"] == [150, 64]
    assert zero["mask"] != one["mask"]
    assert zero["digest"] == one["digest"] and zero["rng"] == one["rng"]
    assert zero["source_restored"] and one["source_restored"]


def test_evaluate_and_predict_split_the_work(trained):
    for rank in trained:
        result = rank["evaluate"]
        assert result["distributed"][0] == pytest.approx(result["one"][0], rel=1e-12)
        assert result["distributed"][1] == result["one"][1]
        assert result["predict_shape"] == [90, 3] and result["predict_difference"] <= 1e-12
        assert result["tiny_predict"] == [1, 3]  # one sample: rank 1 has none to predict
    assert trained[0]["evaluate"]["printed"].startswith("validation, acc:")


def test_save_writes_once(trained):
    assert [r["save"]["writes"] for r in trained] == [1, 0]
    assert all(r["save"]["loaded_matches"] for r in trained)


@pytest.mark.parametrize("case, kind, failing", [
    ("bad_labels", "ValueError", 1),
    ("nan_loss", "FloatingPointError", 1),
    ("root_fails_later", "KeyError", 0),
    ("bad_mode", "ValueError", 1),
    ("predict_shape", "ValueError", 1),
])
def test_a_rank_that_raises_stops_every_rank_with_its_error(failures, case, kind, failing):
    own, other = failures[failing][case], failures[1 - failing][case]
    assert own["type"] == kind and own["failed_rank"] is None  # its own exception, as raised
    assert other["type"] == kind and other["failed_rank"] == failing
    assert other["message"].startswith("Model.") and f"rank {failing} of 2 failed with {kind}: " in other["message"]
    assert other["message"].endswith(f"failed with {kind}: {own['message']}")
    assert own["seconds"] < 10 and other["seconds"] < 10


@pytest.mark.parametrize("case, what", [("different_data", "the data"), ("evaluate_parameters", "the parameters")])
def test_ranks_that_disagree_all_raise_the_same_error(failures, case, what):
    zero, one = failures[0][case], failures[1][case]
    assert zero["type"] == one["type"] == "ValueError" and zero["message"] == one["message"]
    assert f"the ranks disagree on {what}" in zero["message"]


def test_after_failures_the_next_distributed_call_works(failures):
    assert failures[0]["after"]["type"] is None and failures[1]["after"]["type"] is None
    assert failures[0]["after_digest"] == failures[1]["after_digest"]


def test_an_uncaught_error_ends_the_job_instead_of_hanging(tmp_path):
    started = time.perf_counter()
    done = launch(tmp_path, "uncaught", timeout=60)
    assert done.returncode != 0
    assert (tmp_path / "uncaught-rank0.started").exists() and (tmp_path / "uncaught-rank1.started").exists()
    assert "rank 1 of 2 failed with KeyError" in done.stderr  # rank 0's traceback
    assert "a layer's own error on rank 1" in done.stderr
    assert time.perf_counter() - started < 60


def test_the_scaling_benchmark_runs(tmp_path):
    """benchmarks/mpi_scaling.py on random MNIST-shaped data, a few steps per layout (a smoke run)."""
    script = HERE.parent / "benchmarks" / "mpi_scaling.py"
    if not script.is_file():
        pytest.skip("benchmarks/ is not next to the tests (a copy of tests/ run against a wheel)")
    done = subprocess.run([sys.executable, str(script), "--synthetic", "--quick", "--layouts", "1x1,2x1",
                           "--out", str(tmp_path), "--name", "smoke"], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "smoke.md").read_text()
    for heading in ("## Epoch time", "## The allreduce on this machine", "## What a rank computes per step",
                    "## The cost model for N machines"):
        assert heading in text
    assert "| mlp | 256 | 2 x 1 |" in text and "| cnn | 100 Gb/s InfiniBand |" in text
    assert json.loads((tmp_path / "smoke.json").read_text())["runs"][1]["ranks"] == 2
