"""test_networks.py, the main job: --download (against a local server on 127.0.0.1 only), the
binary spiral's mean over seeds, and the note under the table."""
import gzip
import hashlib
import importlib.util
import sys

import numpy as np
import pytest

from fastnn.datasets import BASE_URLS, CHECKSUMS

from _http import idx, isolate, local_server

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def main_job(source, tmp_path, monkeypatch):
    """test_networks.py loaded as a module, with no shared data-set folder and a private cache."""
    spec = importlib.util.spec_from_file_location("fastnn_main_job", source / "test_networks.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SHARED_DATASETS", tmp_path / "no-shared-datasets")
    isolate(monkeypatch, tmp_path)
    return module


@pytest.fixture
def published_mnist(monkeypatch):
    """A small MNIST (64 training, 32 test images) served on 127.0.0.1, its checksums pinned."""
    rng = np.random.default_rng(5)
    arrays = (rng.integers(0, 256, (64, 28, 28)), rng.integers(0, 10, 64),
              rng.integers(0, 256, (32, 28, 28)), rng.integers(0, 10, 32))
    files = {name: gzip.compress(idx(a), mtime=0) for name, a in zip(MNIST_NAMES, arrays)}
    with local_server() as server:
        for name, body in files.items():
            server.routes[f"/mnist/{name}"] = ("ok", body)
        monkeypatch.setitem(BASE_URLS, "mnist", server.url + "mnist/")
        monkeypatch.setitem(CHECKSUMS, "mnist", {name: (len(body), hashlib.sha256(body).hexdigest())
                                                 for name, body in files.items()})
        yield server, files


def test_download_fetches_a_missing_data_set_into_the_cache_and_trains(main_job, published_mnist, tmp_path, capsys):
    server, files = published_mnist
    assert main_job.main(["--datasets", "mnist", "--quick", "--no-progress", "--download"]) == 0
    out = capsys.readouterr().out
    cache = tmp_path / "xdg-cache" / "fastnn" / "mnist"
    assert f"downloading it into {tmp_path / 'xdg-cache' / 'fastnn'}" in out
    assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_NAMES)  # no partial files left
    for name, body in files.items():
        assert (cache / name).read_bytes() == body
    assert "mnist: test accuracy" in out and "784-512-512-10" in out
    # A second run finds the files: nothing is fetched again, --download or not.
    requests = len(server.requests)
    assert main_job.main(["--datasets", "mnist", "--quick", "--no-progress", "--download"]) == 0
    assert main_job.main(["--datasets", "mnist", "--quick", "--no-progress"]) == 0
    assert len(server.requests) == requests and "downloading" not in capsys.readouterr().out


def test_download_goes_to_the_data_dir_when_given(main_job, published_mnist, tmp_path, capsys):
    assert main_job.main(["--datasets", "mnist", "--quick", "--no-progress", "--download",
                          "--data-dir", str(tmp_path / "data")]) == 0
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(MNIST_NAMES)
    assert not (tmp_path / "xdg-cache").exists()


def test_a_failed_download_keeps_nothing_and_fails_the_run(main_job, published_mnist, tmp_path, monkeypatch, capsys):
    server, files = published_mnist
    monkeypatch.setitem(CHECKSUMS, "mnist", {**CHECKSUMS["mnist"], MNIST_NAMES[0]: (len(files[MNIST_NAMES[0]]), "0" * 64)})
    assert main_job.main(["--datasets", "mnist,vertical", "--quick", "--no-progress", "--download"]) == 1
    out = capsys.readouterr().out
    assert "mnist: the download failed, nothing was kept" in out and "sha256 mismatch" in out
    assert "downloads failed: mnist" in out and "vertical" in out  # the other recipes still ran
    assert not (tmp_path / "xdg-cache" / "fastnn" / "mnist" / MNIST_NAMES[0]).exists()
    assert all(not p.name.endswith(".part") for p in (tmp_path / "xdg-cache" / "fastnn" / "mnist").iterdir())


def test_without_download_a_missing_data_set_says_how_to_get_it(main_job, capsys):
    assert main_job.main(["--datasets", "mnist", "--quick", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mnist: not found; run with --download to fetch it" in out


def test_binary_spiral_row_is_the_mean_over_seeds(main_job):
    args = main_job.parse_args(["--datasets", "binary-spiral", "--epochs", "30", "--seed", "4"])
    recipe = main_job.RECIPES["binary-spiral"]
    row = main_job.run_seeds(recipe, args, show=False)
    runs = []
    for i in range(main_job.BINARY_SPIRAL_SEEDS):
        np.random.seed(4 + i)
        runs.append(main_job.run(recipe, args, False))
    assert row.train_accuracy == pytest.approx(np.mean([r.train_accuracy for r in runs]))
    assert row.test_accuracy == pytest.approx(np.mean([r.test_accuracy for r in runs]))
    assert row.steps == 30 * main_job.BINARY_SPIRAL_SEEDS
    assert f"mean of {main_job.BINARY_SPIRAL_SEEDS} seeds" in row.model
    low, high = min(r.test_accuracy for r in runs), max(r.test_accuracy for r in runs)
    assert f"test {low:.2f}-{high:.2f} by seed" in row.target and "book run: 0.945 / 0.920" in row.target


def test_the_table_explains_the_book_run_figures(main_job, capsys):
    assert main_job.main(["--datasets", "binary-spiral", "--epochs", "5", "--quick", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mean of 3 seeds" in out
    assert "book run: what the book printed for its one run" in out and "the mean over seeds" in out
    assert main_job.notes([main_job.Result("vertical", "2-16-3", 1, 1.0, 1.0, 1.0, 1)]) == []
