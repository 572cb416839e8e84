"""pytest-benchmark setup for fastnn's benchmarks (run: ``pytest benchmarks``; smoke:
``pytest benchmarks --benchmark-disable``). The repository's default ``testpaths = ["tests"]``
never collects this folder.

- Modules named ``bench_*.py`` here are collected (next to the usual ``test_*.py``).
- This folder is put on sys.path so modules can import its modules (``configs``, ``steps``,
  ``ops``, ...); the tests' folder, where ``_book`` lives, is on it through pyproject.toml's
  ``pythonpath``.
- BLAS (threadpoolctl), OpenMP (threadpoolctl) and torch run with ``--bench-threads`` threads
  (default 2, the count the targets are set for), set once for the session and written into the
  benchmark JSON's machine_info.
"""
from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def pytest_addoption(parser):
    parser.addoption("--bench-threads", type=int, default=2,
                     help="BLAS, OpenMP and torch threads for the benchmarks (default 2)")


def pytest_collect_file(file_path, parent):
    # A file named on the command line is collected by pytest itself whatever its name.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _thread_facts(threads: int) -> dict:
    from machine import threadpools
    from torch_peer import torch, torch_adam_kind

    facts = {"requested_threads": threads, "threadpools": threadpools()}
    if torch is not None:
        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["torch_adam"] = torch_adam_kind()
    facts["env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
                    if k in os.environ}
    return facts


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    """Pin every thread pool to --bench-threads for the session."""
    from machine import pin_threads

    threads = request.config.getoption("--bench-threads")
    restore = pin_threads(threads)
    request.config._fastnn_bench_threads = _thread_facts(threads)
    yield threads
    restore()


def pytest_benchmark_update_machine_info(config, machine_info):
    import fastnn

    machine_info["fastnn"] = fastnn.backend.build_info.config()
    machine_info["threads"] = getattr(config, "_fastnn_bench_threads", None)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["threads"] = getattr(config, "_fastnn_bench_threads", None)
