"""Every ```python block of the README and of docs/*.md runs, as written.

The blocks of one page run in order in one namespace (a page is a tutorial: later blocks use what
earlier ones built), in a temporary working folder, from np.random.seed(0). To stay fast and
offline, the loaders of the real data sets are replaced by ones returning small synthetic arrays
with the official shapes and dtypes (512 training and 128 test images); everything else is the
real fastnn. Distributed calls (``distributed=True``) run on fastnn.distributed's
single-process communicator, so no MPI starts in the test process (tests/test_distributed_mpi.py
runs them on real ranks). The README's first ```bash block is also checked: CI (.ci/run) runs its
second line.
"""
import ast
import os
import pathlib
import re

import numpy as np
import pytest

import fastnn.datasets
import fastnn.distributed

REPO = pathlib.Path(__file__).resolve().parents[1]
if not (REPO / "setup.py").is_file():  # a copy of tests/ run against a wheel (.ci/test_installed.py)
    REPO = pathlib.Path(os.environ.get("FASTNN_SOURCE_TREE", REPO))
PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")]) if (REPO / "docs").is_dir() else []
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
SUMMARY = re.compile(r"^```text\n(Model: .*?)^```$", re.S | re.M)


def python_blocks(path: pathlib.Path) -> list[str]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


def _images(n, shape, rng):
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8)


def small_loaders(monkeypatch):
    """Replace the real data sets' loaders by small synthetic data of the same form."""
    rng = np.random.default_rng(0)

    def four(shape):
        def load(data_home=None, *, download=False):
            return (_images(512, shape, rng), rng.integers(0, 10, 512).astype(np.uint8),
                    _images(128, shape, rng), rng.integers(0, 10, 128).astype(np.uint8))
        return load

    def malaria(data_home=None, *, image_size=(64, 64), download=False):
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        return _images(64, (3, *size), rng), rng.integers(0, 2, 64).astype(np.uint8), ["Parasitized", "Uninfected"]

    for name, loader in (("load_mnist", four((28, 28))), ("load_fashion_mnist", four((28, 28))),
                         ("load_cifar10", four((3, 32, 32))), ("load_malaria", malaria)):
        monkeypatch.setattr(fastnn.datasets, name, loader)


def test_there_are_pages_with_examples():
    if not PAGES:
        pytest.skip("the repository's files are not available (set FASTNN_SOURCE_TREE)")
    with_examples = [page.name for page in PAGES if python_blocks(page)]
    assert {"README.md", "index.md", "book.md", "cnn.md", "datasets.md"} <= set(with_examples), with_examples


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO).as_posix() for p in PAGES])
def test_every_python_block_runs(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    small_loaders(monkeypatch)
    fastnn.distributed.set_communicator(fastnn.distributed.SingleProcess())
    monkeypatch.chdir(tmp_path)
    state = np.random.get_state()
    np.random.seed(0)
    namespace = {"__name__": "__docs_example__"}
    try:
        for number, code in enumerate(blocks, 1):
            where = f"{page.relative_to(REPO).as_posix()}, python block {number}"
            ast.parse(code, where)  # a syntax error names the block
            exec(compile(code, where, "exec"), namespace)
    finally:
        np.random.set_state(state)
        fastnn.distributed.set_communicator(None)
    printed = capsys.readouterr().out
    assert printed  # every page's examples print what they show
    # A model summary a page shows (a ```text block starting "Model: ") is what its code prints.
    for shown in SUMMARY.findall(page.read_text(encoding="utf-8")):
        assert shown in printed, f"{page.name}: the summary shown is not what model.summary() printed:\n{shown}"


def test_the_readme_starts_with_the_two_set_up_commands():
    """.ci/run takes the second line of the README's first ```bash block as the test command."""
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.skip("the repository's files are not available (set FASTNN_SOURCE_TREE)")
    first = re.search(r"^```bash\n(.*?)^```$", readme.read_text(encoding="utf-8"), re.S | re.M)
    assert first is not None
    lines = first.group(1).splitlines()
    assert lines == ["python -m pip install -e . && python test_networks.py",
                     'python -m pip install -e ".[test]" && python -m pytest && '
                     "python -m pytest benchmarks --benchmark-disable -q"]
