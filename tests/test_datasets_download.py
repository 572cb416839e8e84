"""download=True against a local HTTP server on 127.0.0.1: verified, atomic, nothing corrupt left behind."""
import gzip
import hashlib
import io
import pathlib
import socket
import tarfile
import zipfile

import numpy as np
import pytest

from fastnn.datasets import (BASE_URLS, CHECKSUMS, DatasetNotFoundError, DownloadError, load_cifar10,
                             load_fashion_mnist, load_malaria, load_mnist)

from _http import idx, isolate, local_server

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def server():
    with local_server() as httpd:
        yield httpd


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def publish(server, monkeypatch):
    """Serve files under server.url + prefix, point BASE_URLS[dataset] there and pin their checksums.

    Goes through the public, documented mappings; monkeypatch restores them after the test.
    """
    def publish(dataset, files, *, prefix="files/", modes=None, pins=None):
        for name, body in files.items():
            server.routes[f"/{prefix}{name}"] = ((modes or {}).get(name, "ok"), body)
        monkeypatch.setitem(BASE_URLS, dataset, server.url + prefix)
        pinned = {name: (len(body), hashlib.sha256(body).hexdigest()) for name, body in files.items()}
        monkeypatch.setitem(CHECKSUMS, dataset, {**pinned, **(pins or {})})
    return publish


@pytest.fixture
def mnist_files(rng):
    arrays = (rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4, dtype=np.uint8),
              rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), rng.integers(0, 10, 2, dtype=np.uint8))
    files = {name: gzip.compress(idx(a), mtime=0) for name, a in zip(MNIST_NAMES, arrays)}
    return arrays, files


def leftovers(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir()) if pathlib.Path(folder).exists() else []


@pytest.mark.parametrize("loader,dataset", [(load_mnist, "mnist"), (load_fashion_mnist, "fashion-mnist")])
def test_download_success(tmp_path, server, publish, mnist_files, loader, dataset, capsys):
    arrays, files = mnist_files
    publish(dataset, files)
    loaded = loader(tmp_path / "dh", download=True)
    for got, want in zip(loaded, arrays):
        assert np.array_equal(got, want)
    folder = tmp_path / "dh" / dataset
    assert leftovers(folder) == sorted(MNIST_NAMES)  # no temporary files left
    for name in MNIST_NAMES:
        assert (folder / name).read_bytes() == files[name]
    assert sorted(server.requests) == sorted(f"/files/{name}" for name in MNIST_NAMES)
    assert "downloading" in capsys.readouterr().err
    loader(tmp_path / "dh", download=True)  # present now: nothing fetched again
    assert len(server.requests) == 4


def test_only_missing_files_are_downloaded(tmp_path, server, publish, mnist_files):
    arrays, files = mnist_files
    publish("mnist", files)
    folder = tmp_path / "dh" / "mnist"
    folder.mkdir(parents=True)
    (folder / MNIST_NAMES[0]).write_bytes(files[MNIST_NAMES[0]])
    (folder / MNIST_NAMES[1][:-3]).write_bytes(gzip.decompress(files[MNIST_NAMES[1]]))  # a decompressed copy counts
    load_mnist(tmp_path / "dh", download=True)
    assert sorted(server.requests) == sorted(f"/files/{name}" for name in MNIST_NAMES[2:])


def test_download_goes_to_fastnn_data_then_cache(tmp_path, server, publish, mnist_files, monkeypatch):
    arrays, files = mnist_files
    publish("mnist", files)
    load_mnist(download=True)
    assert leftovers(tmp_path / "xdg-cache" / "fastnn" / "mnist") == sorted(MNIST_NAMES)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    load_mnist(download=True)  # found in the cache: not downloaded again
    assert not (tmp_path / "env").exists() and len(server.requests) == 4
    publish("fashion-mnist", files)
    load_fashion_mnist(download=True)
    assert leftovers(tmp_path / "env" / "fashion-mnist") == sorted(MNIST_NAMES)


def test_without_download_nothing_is_requested(tmp_path, server, publish, mnist_files):
    publish("mnist", mnist_files[1])
    with pytest.raises(DatasetNotFoundError):
        load_mnist(tmp_path / "dh")
    assert server.requests == [] and not (tmp_path / "dh").exists()


def test_checksum_mismatch_leaves_nothing(tmp_path, server, publish, mnist_files):
    arrays, files = mnist_files
    bad = MNIST_NAMES[2]
    publish("mnist", files, pins={bad: (len(files[bad]), "0" * 64)})
    with pytest.raises(DownloadError, match="sha256 mismatch") as info:
        load_mnist(tmp_path / "dh", download=True)
    assert bad in str(info.value) and isinstance(info.value, OSError)
    folder = tmp_path / "dh" / "mnist"
    assert leftovers(folder) == sorted(MNIST_NAMES[:2])  # the two verified files; no temp, nothing for `bad`


def test_connection_dropped_mid_file_leaves_nothing(tmp_path, server, publish, mnist_files):
    arrays, files = mnist_files
    victim = MNIST_NAMES[0]
    publish("mnist", files, modes={victim: "drop"})
    with pytest.raises(DownloadError, match=r"connection (closed|lost) after") as info:
        load_mnist(tmp_path / "dh", download=True)
    assert victim in str(info.value)
    assert leftovers(tmp_path / "dh" / "mnist") == []
    publish("mnist", files)  # the server recovers: a second call completes
    assert np.array_equal(load_mnist(tmp_path / "dh", download=True)[0], arrays[0])


def test_body_without_length_still_checked(tmp_path, server, publish, mnist_files):
    arrays, files = mnist_files
    publish("mnist", files, modes={name: "no-length" for name in MNIST_NAMES})
    assert np.array_equal(load_mnist(tmp_path / "dh", download=True)[2], arrays[2])
    too_long = {name: body + b"x" for name, body in files.items()}
    publish("fashion-mnist", too_long, modes={name: "no-length" for name in MNIST_NAMES},
            pins={name: (len(body), hashlib.sha256(body).hexdigest()) for name, body in files.items()})
    with pytest.raises(DownloadError, match="more than the expected"):
        load_fashion_mnist(tmp_path / "dh", download=True)
    assert leftovers(tmp_path / "dh" / "fashion-mnist") == []


def test_wrong_announced_size_is_refused_early(tmp_path, server, publish, mnist_files):
    arrays, files = mnist_files
    publish("mnist", files, pins={MNIST_NAMES[0]: (len(files[MNIST_NAMES[0]]) + 1, "0" * 64)})
    with pytest.raises(DownloadError, match="announces"):
        load_mnist(tmp_path / "dh", download=True)
    assert leftovers(tmp_path / "dh" / "mnist") == []


def test_http_404_is_a_clear_error(tmp_path, server, publish, mnist_files):
    arrays, files = mnist_files
    publish("mnist", files)
    del server.routes[f"/files/{MNIST_NAMES[1]}"]
    with pytest.raises(DownloadError, match="HTTP error 404") as info:
        load_mnist(tmp_path / "dh", download=True)
    assert f"{server.url}files/{MNIST_NAMES[1]}" in str(info.value)
    assert leftovers(tmp_path / "dh" / "mnist") == [MNIST_NAMES[0]]


def test_mirrors_are_tried_in_order(tmp_path, server, publish, mnist_files, monkeypatch):
    arrays, files = mnist_files
    publish("mnist", files, prefix="good/")
    monkeypatch.setitem(BASE_URLS, "mnist", (server.url + "missing", server.url + "good/"))  # no trailing slash is fine
    assert np.array_equal(load_mnist(tmp_path / "dh", download=True)[1], arrays[1])
    assert server.requests[:2] == [f"/missing/{MNIST_NAMES[0]}", f"/good/{MNIST_NAMES[0]}"]
    BASE_URLS["mnist"] = (server.url + "missing/", server.url + "also-missing/")
    with pytest.raises(DownloadError, match="every location failed") as info:
        load_mnist(tmp_path / "other", download=True)
    assert "/missing/" in str(info.value) and "/also-missing/" in str(info.value)


def test_unreachable_server(tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(BASE_URLS, "mnist", f"http://127.0.0.1:{port}/")
    with pytest.raises(DownloadError, match="cannot connect"):
        load_mnist(tmp_path / "dh", download=True)
    assert leftovers(tmp_path / "dh" / "mnist") == []


def test_cifar_download(tmp_path, server, publish):
    record = np.zeros(3073, np.uint8)
    record[0], record[1:] = 7, np.arange(3072) % 251
    batch = np.tile(record, 10000).tobytes()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
    publish("cifar-10", {"cifar-10-binary.tar.gz": buffer.getvalue()})
    X_train, y_train, X_test, y_test = load_cifar10(tmp_path / "dh", download=True)
    assert leftovers(tmp_path / "dh") == ["cifar-10-binary.tar.gz"]
    assert X_train.shape == (50000, 3, 32, 32) and np.all(y_test == 7)
    assert np.array_equal(X_test[9999].ravel(), record[1:])


def test_malaria_download(tmp_path, server, publish):
    pytest.importorskip("PIL")
    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, cls in enumerate(("Parasitized", "Uninfected")):
            png = io.BytesIO()
            Image.fromarray(np.full((5, 6, 3), 40 * k, np.uint8)).save(png, "PNG")
            archive.writestr(f"cell_images/{cls}/cell.png", png.getvalue())
    publish("malaria", {"cell_images.zip": buffer.getvalue()})
    X, y, names = load_malaria(tmp_path / "dh", image_size=(5, 6), download=True)
    assert leftovers(tmp_path / "dh" / "malaria") == ["cell_images.zip"]
    assert X.shape == (2, 3, 5, 6) and y.tolist() == [0, 1] and np.all(X[1] == 40)


def test_published_checksums_are_pinned():
    """Every file download=True can fetch has a pinned size and a 64-hex-digit sha256."""
    assert set(CHECKSUMS) == set(BASE_URLS) == {"mnist", "fashion-mnist", "cifar-10", "malaria"}
    for dataset, files in CHECKSUMS.items():
        for name, (size, sha256) in files.items():
            assert size > 0 and len(sha256) == 64 and int(sha256, 16) >= 0, (dataset, name)
    assert CHECKSUMS["mnist"]["train-images-idx3-ubyte.gz"][1].startswith("440fcabf")
    assert CHECKSUMS["cifar-10"]["cifar-10-binary.tar.gz"][0] == 170052171


def test_pinned_checksums_match_the_real_files(shared_datasets):
    for dataset in ("mnist", "fashion-mnist"):
        for name, (size, sha256) in CHECKSUMS[dataset].items():
            data = (shared_datasets / dataset / name).read_bytes()
            assert len(data) == size and hashlib.sha256(data).hexdigest() == sha256, (dataset, name)
