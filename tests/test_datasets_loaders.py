"""Iris, MNIST/Fashion-MNIST (IDX), CIFAR-10 (binary) and the data search path.

Format tests write small, format-exact files with an IDX/CIFAR writer of their own (not fastnn's) and
check that the loaders give back exactly the arrays written; corrupt files must give a ValueError that
names the file. The real files in shared/datasets are checked when present.
"""
import functools
import gzip
import io
import os
import pathlib
import struct
import tarfile

import numpy as np
import pytest

import fastnn.datasets as ds
from fastnn.datasets import (CIFAR10_CLASSES, FASHION_MNIST_CLASSES, IRIS_CLASSES, IRIS_FEATURES, DatasetNotFoundError,
                             get_data_home, load_cifar10, load_fashion_mnist, load_iris, load_mnist)
from fastnn.datasets import _idx

import _datafiles
from _datafiles import CIFAR_FILES, MNIST_NAMES, RECORD, idx_bytes, write_mnist



@pytest.fixture(autouse=True)
def isolated_places(tmp_path, monkeypatch):
    """Never read or write the real user cache; FASTNN_DATA unset unless a test sets it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    return tmp_path


# ----------------------------------------------------------------------------------------------- Iris

def test_iris_shapes_dtypes_and_classes():
    X, y = load_iris()
    assert X.shape == (150, 4) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (150,) and y.dtype == np.uint8
    assert np.array_equal(np.bincount(y), [50, 50, 50])
    assert np.array_equal(y, np.repeat(np.arange(3), 50))
    assert IRIS_CLASSES == ("setosa", "versicolor", "virginica")
    assert len(IRIS_FEATURES) == 4 and IRIS_FEATURES[0].startswith("sepal_length")


def test_iris_is_fishers_data():
    X, y = load_iris(dtype="float64")
    assert X.dtype == np.float64
    published_means = {  # Fisher (1936) / R's iris; the UCI file's two typos would change setosa's
        0: [5.006, 3.428, 1.462, 0.246],
        1: [5.936, 2.770, 4.260, 1.326],
        2: [6.588, 2.974, 5.552, 2.026],
    }
    for label, means in published_means.items():
        assert np.allclose(X[y == label].mean(axis=0), means, atol=5e-4), label
    assert np.allclose(X.mean(axis=0), [5.8433, 3.0573, 3.7580, 1.1993], atol=5e-4)
    assert X.min() == 0.1 and X.max() == 7.9
    assert X[0].tolist() == [5.1, 3.5, 1.4, 0.2]
    assert X[34].tolist() == [4.9, 3.1, 1.5, 0.2] and X[37].tolist() == [4.9, 3.6, 1.4, 0.1]
    assert np.array_equal(load_iris(dtype="float32")[0], X.astype(np.float32))


def test_iris_returns_fresh_arrays():
    X, y = load_iris()
    X[:] = 0
    y[:] = 9
    X2, y2 = load_iris()
    assert X2[0, 0] == np.float32(5.1) and y2[0] == 0


def test_iris_dtype_is_checked():
    with pytest.raises(TypeError, match="dtype"):
        load_iris(dtype="int8")


def test_iris_csv_and_readme_are_package_data():
    data = pathlib.Path(ds.__file__).parent / "data"
    assert (data / "iris.csv").is_file() and "CC BY 4.0" in (data / "README.md").read_text()


# ----------------------------------------------------------------------------------------- real files

README_STATS = {
    # (first five training labels, train counts, test counts, train mean/std, test mean/std) of pixel/255
    "mnist": ([5, 0, 4, 1, 9], [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009], (0.1307, 0.3081), (0.1325, 0.3105)),
    "fashion-mnist": ([9, 0, 0, 3, 0], [6000] * 10, [1000] * 10, (0.2860, 0.3530), (0.2868, 0.3524)),
}


@functools.lru_cache(maxsize=None)
def _real(name, root):
    return (load_mnist if name == "mnist" else load_fashion_mnist)(root)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_mnist_files(name, shared_datasets):
    X_train, y_train, X_test, y_test = _real(name, str(shared_datasets))
    first, train_counts, test_counts, train_stats, test_stats = README_STATS[name]
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for array in (X_train, y_train, X_test, y_test):
        assert array.dtype == np.uint8 and array.flags.c_contiguous and array.flags.writeable
    assert y_train[:5].tolist() == first
    assert np.bincount(y_train, minlength=10).tolist() == train_counts
    assert np.bincount(y_test, minlength=10).tolist() == test_counts
    for X, (mean, std) in ((X_train, train_stats), (X_test, test_stats)):
        scaled = X / 255.0
        assert round(float(scaled.mean()), 4) == mean and round(float(scaled.std()), 4) == std
        assert X.min() == 0 and X.max() == 255


def test_real_files_found_through_fastnn_data(shared_datasets, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(shared_datasets))
    X_train, y_train, X_test, y_test = load_fashion_mnist()
    assert y_train[:5].tolist() == [9, 0, 0, 3, 0] and X_test.shape == (10000, 28, 28)
    assert FASHION_MNIST_CLASSES[9] == "Ankle boot" and len(FASHION_MNIST_CLASSES) == 10


# ------------------------------------------------------------------------------------------ IDX files

def make_split(rng, n):
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


@pytest.fixture
def small_mnist(rng):
    X_train, y_train = make_split(rng, 7)
    X_test, y_test = make_split(rng, 3)
    return X_train, y_train, X_test, y_test


@pytest.mark.parametrize("compressed", [(True,) * 4, (False,) * 4, (True, False, False, True)],
                         ids=["gz", "raw", "mixed"])
@pytest.mark.parametrize("loader,subdir", [(load_mnist, "mnist"), (load_fashion_mnist, "fashion-mnist")])
def test_idx_round_trip(tmp_path, small_mnist, compressed, loader, subdir):
    write_mnist(tmp_path / "data" / subdir, small_mnist, compressed=compressed)
    loaded = loader(tmp_path / "data")
    assert len(loaded) == 4
    for got, want in zip(loaded, small_mnist):
        assert got.dtype == np.uint8 and got.shape == want.shape and np.array_equal(got, want)
        assert got.flags.writeable


@pytest.mark.parametrize("loader,folder", [(load_fashion_mnist, "fashion-mnist"), (load_fashion_mnist, "Fashion_MNIST"),
                                           (load_mnist, "mnist"), (load_mnist, "MNIST-digits")])
def test_data_home_may_be_the_data_sets_own_folder(tmp_path, small_mnist, loader, folder):
    """load_fashion_mnist('.../fashion-mnist'): the folder holding the four files, named after the
    data set, is accepted as well as its parent."""
    write_mnist(tmp_path / folder, small_mnist)
    for got, want in zip(loader(tmp_path / folder), small_mnist):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("loader,folder", [(load_mnist, "fashion-mnist"), (load_fashion_mnist, "mnist"),
                                           (load_fashion_mnist, "data")])
def test_files_directly_in_a_folder_that_does_not_name_the_data_set_are_not_taken(tmp_path, small_mnist, loader,
                                                                                folder, monkeypatch):
    """Both data sets use the same four file names: files in a folder named after the other one (or
    after neither) are not silently loaded as this one, and the error says why."""
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_mnist(tmp_path / folder, small_mnist)
    with pytest.raises(DatasetNotFoundError, match="holds the four files, but its name does not say"):
        loader(tmp_path / folder)


def test_files_of_the_other_data_set_are_recognised_by_their_size(tmp_path, small_mnist, monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = write_mnist(tmp_path / "fashion-mnist", small_mnist)
    size = ds.CHECKSUMS["mnist"][MNIST_NAMES[0]][0]
    with open(folder / MNIST_NAMES[0], "ab") as f:  # pad the file to MNIST's pinned size
        f.truncate(size)
    with pytest.raises(DatasetNotFoundError, match="are MNIST's"):
        load_fashion_mnist(folder)


def test_idx_accepts_str_and_pathlike_data_home(tmp_path, small_mnist):
    write_mnist(tmp_path / "mnist", small_mnist)
    assert np.array_equal(load_mnist(str(tmp_path))[0], small_mnist[0])
    assert np.array_equal(load_mnist(tmp_path)[3], small_mnist[3])


@pytest.mark.parametrize("type_code,dtype", [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"),
                                             (0x0D, ">f4"), (0x0E, ">f8")])
def test_read_idx_every_element_type(tmp_path, rng, type_code, dtype):
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(idx_bytes(array, type_code, dtype))
    got = _idx.read_idx(path)
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and np.array_equal(got, array)
    assert _idx.write_idx(got) == path.read_bytes()


CORRUPTIONS = {
    # id: (file, mutate raw IDX bytes, words the message must contain)
    "bad magic": ("train-images-idx3-ubyte.gz", lambda b: b"\x08\x03" + b[2:], "magic"),
    "labels file as images": ("train-images-idx3-ubyte.gz", lambda b: b[:3] + b"\x01" + b[4:], "dimensions"),
    "unknown type": ("t10k-labels-idx1-ubyte.gz", lambda b: b[:2] + b"\x0a" + b[3:], "element type"),
    "float type": ("t10k-images-idx3-ubyte.gz", lambda b: b[:2] + b"\x0d" + b[3:], "element type"),
    "truncated payload": ("train-images-idx3-ubyte.gz", lambda b: b[:-1], "truncated"),
    "truncated header": ("train-images-idx3-ubyte.gz", lambda b: b[:9], "header"),
    "only magic part": ("train-labels-idx1-ubyte.gz", lambda b: b[:2], "magic"),
    "empty": ("train-labels-idx1-ubyte.gz", lambda b: b"", "magic"),
    "extra bytes": ("t10k-images-idx3-ubyte.gz", lambda b: b + b"\0", "extra bytes"),
    "huge count": ("train-images-idx3-ubyte.gz", lambda b: b[:4] + struct.pack(">I", 2**32 - 1) + b[8:], "truncated|more than this machine.s memory"),
    "wrong image size": ("train-images-idx3-ubyte.gz",  # a consistent file of 27x28 images
                         lambda b: b[:8] + struct.pack(">II", 27, 28) + b[16:16 + 7 * 27 * 28], "28x28"),
    "label out of range": ("train-labels-idx1-ubyte.gz", lambda b: b[:10] + b"\x0a" + b[11:], "out of range"),
}


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_idx_files_raise_value_error_naming_the_file(tmp_path, small_mnist, case, compressed):
    name, mutate, words = CORRUPTIONS[case]
    folder = write_mnist(tmp_path / "mnist", small_mnist, compressed=(compressed,) * 4,
                         raw_overrides={name: mutate(idx_bytes(small_mnist[MNIST_NAMES.index(name)]))})
    stored = name if compressed else name[:-3]
    with pytest.raises(ValueError, match=words) as info:
        load_mnist(tmp_path)
    assert str(folder / stored) in str(info.value)


def test_label_count_must_match_image_count(tmp_path, small_mnist, rng):
    X_train, y_train, X_test, y_test = small_mnist
    write_mnist(tmp_path / "mnist", (X_train, y_train[:-1], X_test, y_test))
    with pytest.raises(ValueError, match="6 labels but .* 7 images") as info:
        load_mnist(tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(info.value) and "train-images-idx3-ubyte.gz" in str(info.value)


@pytest.mark.parametrize("damage,words", [
    (lambda gz: gz[: len(gz) // 2], "truncated"),
    (lambda gz: gz[:-8] + bytes(8), "gzip"),   # CRC and size trailer zeroed
    (lambda gz: b"this is not gzip at all" * 10, "gzip"),
])
def test_damaged_gzip_stream(tmp_path, small_mnist, damage, words):
    folder = write_mnist(tmp_path / "mnist", small_mnist)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=words) as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------- CIFAR-10 binary

def cifar_images(index):
    """The (10000, 32, 32, 3) HWC images and labels stored in batch file number `index` (0..5)."""
    rng = np.random.default_rng(100 + index)
    labels = rng.integers(0, 10, 10000, dtype=np.uint8)
    images = np.zeros((10000, 32, 32, 3), dtype=np.uint8)
    images[:12] = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)   # fully random images
    images[:, 1, 2, 0] = np.arange(10000) % 256                           # a marker in every record
    images[:, 30, 31, 1] = index * 10
    images[:, 31, 0, 2] = 255 - index
    return images, labels


def cifar_batch_bytes(index):
    return _datafiles.cifar_batch_bytes(*cifar_images(index))


def tar_gz(members, path):
    """Write a tar.gz with (name, bytes or TarInfo-modifier) members."""
    with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                data(info)
                tar.addfile(info)
    return path


@pytest.fixture(scope="session")
def cifar_bytes():
    return [cifar_batch_bytes(i) for i in range(6)]


@pytest.fixture(scope="session")
def cifar_archive(tmp_path_factory, cifar_bytes):
    root = tmp_path_factory.mktemp("cifar-archive")
    members = [(f"cifar-10-batches-bin/{name}", data) for name, data in zip(CIFAR_FILES, cifar_bytes)]
    members.insert(3, ("cifar-10-batches-bin/batches.meta.txt", "\n".join(CIFAR10_CLASSES).encode()))
    tar_gz(members, root / "cifar-10-binary.tar.gz")
    return root


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory, cifar_bytes):
    root = tmp_path_factory.mktemp("cifar-folder")
    (root / "cifar-10-batches-bin").mkdir()
    for name, data in zip(CIFAR_FILES, cifar_bytes):
        (root / "cifar-10-batches-bin" / name).write_bytes(data)
    return root


def assert_cifar_round_trip(loaded):
    X_train, y_train, X_test, y_test = loaded
    assert X_train.shape == (50000, 3, 32, 32) and X_test.shape == (10000, 3, 32, 32)
    assert y_train.shape == (50000,) and y_test.shape == (10000,)
    for array in loaded:
        assert array.dtype == np.uint8 and array.flags.c_contiguous and array.flags.writeable
    for index in range(6):
        images, labels = cifar_images(index)
        X, y = (X_train[index * 10000:(index + 1) * 10000], y_train[index * 10000:(index + 1) * 10000]) \
            if index < 5 else (X_test, y_test)
        assert np.array_equal(X, images.transpose(0, 3, 1, 2)), f"batch {index}"
        assert np.array_equal(y, labels)


def test_cifar_from_archive(cifar_archive):
    assert_cifar_round_trip(load_cifar10(cifar_archive))


def test_cifar_from_extracted_folder(cifar_folder):
    assert_cifar_round_trip(load_cifar10(data_home=cifar_folder))


def test_cifar_data_home_may_be_the_batches_folder_itself(cifar_folder):
    assert_cifar_round_trip(load_cifar10(cifar_folder / "cifar-10-batches-bin"))


def test_cifar_channel_layout_by_hand(cifar_folder):
    X_train = load_cifar10(cifar_folder)[0]
    record = np.frombuffer((cifar_folder / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()[:RECORD], np.uint8)
    assert np.array_equal(X_train[0, 0].ravel(), record[1:1025])          # red plane
    assert np.array_equal(X_train[0, 2].ravel(), record[2049:3073])       # blue plane
    assert X_train[0, 1, 0, 5] == record[1 + 1024 + 5]                    # green, row 0, column 5
    assert X_train[0, 0, 1, 0] == record[1 + 32]                          # red, row 1, column 0
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[9] == "truck"


def test_cifar_complete_folder_is_preferred_to_archive(cifar_folder, tmp_path):
    root = tmp_path / "both"
    root.mkdir()
    os.symlink(cifar_folder / "cifar-10-batches-bin", root / "cifar-10-batches-bin")
    (root / "cifar-10-binary.tar.gz").write_bytes(b"broken")
    assert_cifar_round_trip(load_cifar10(root))


def test_cifar_incomplete_folder_falls_back_to_archive(cifar_archive, tmp_path):
    root = tmp_path / "both"
    (root / "cifar-10-batches-bin").mkdir(parents=True)
    (root / "cifar-10-batches-bin" / "data_batch_1.bin").write_bytes(b"")
    os.symlink(cifar_archive / "cifar-10-binary.tar.gz", root / "cifar-10-binary.tar.gz")
    assert load_cifar10(root)[1].shape == (50000,)


@pytest.mark.parametrize("name,change,words", [
    ("data_batch_3.bin", lambda b: b[:-1], "30729999 bytes, expected 30730000"),
    ("test_batch.bin", lambda b: b + b"\0", "30730001 bytes"),
    ("data_batch_1.bin", lambda b: b[:RECORD * 5] + b"\x0a" + b[RECORD * 5 + 1:], "record 5 has label 10"),
    ("data_batch_5.bin", lambda b: b"", "0 bytes"),
])
def test_cifar_folder_strict_sizes_and_labels(cifar_bytes, tmp_path, name, change, words):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for file_name, data in zip(CIFAR_FILES, cifar_bytes):
        (folder / file_name).write_bytes(change(data) if file_name == name else data)
    with pytest.raises(ValueError, match=words) as info:
        load_cifar10(tmp_path)
    assert str(folder / name) in str(info.value)


def test_cifar_archive_member_of_wrong_size(tmp_path, cifar_bytes):
    tar_gz([("cifar-10-batches-bin/data_batch_1.bin", cifar_bytes[0][:RECORD * 9999])],
           tmp_path / "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match=r"data_batch_1.bin\): 30726927 bytes, expected 30730000") as info:
        load_cifar10(tmp_path)
    assert str(tmp_path / "cifar-10-binary.tar.gz") in str(info.value)


def test_cifar_archive_missing_member(tmp_path, cifar_bytes):
    members = [(f"cifar-10-batches-bin/{name}", data) for name, data in zip(CIFAR_FILES, cifar_bytes)]
    tar_gz(members[:3] + members[4:], tmp_path / "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="lacks cifar-10-batches-bin/data_batch_4.bin"):
        load_cifar10(tmp_path)


def test_cifar_archive_link_member_is_refused(tmp_path):
    def symlink(info):
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
    tar_gz([("cifar-10-batches-bin/data_batch_1.bin", symlink)], tmp_path / "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="not a regular file"):
        load_cifar10(tmp_path)


def test_cifar_archive_duplicate_member_is_refused(tmp_path, cifar_bytes):
    member = ("cifar-10-batches-bin/data_batch_1.bin", cifar_bytes[0])
    tar_gz([member, member], tmp_path / "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="appears twice"):
        load_cifar10(tmp_path)


def test_cifar_archive_member_paths_are_never_used(tmp_path, cifar_bytes, monkeypatch):
    """Hostile member names next to the real ones: nothing is written anywhere, the data loads."""
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    monkeypatch.chdir(work / "inner")
    members = [("../evil.txt", b"pwned"), ("/tmp/fastnn-evil-absolute.txt", b"pwned"),
               ("./cifar-10-batches-bin/../../evil2.txt", b"pwned")]
    members += [(f"./cifar-10-batches-bin/{name}", data) for name, data in zip(CIFAR_FILES, cifar_bytes)]
    tar_gz(members, tmp_path / "cifar-10-binary.tar.gz")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert_cifar_round_trip(load_cifar10(tmp_path))  # "./" prefixes are accepted
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not pathlib.Path("/tmp/fastnn-evil-absolute.txt").exists()


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\x1f\x8b" + b"garbage" * 100,
                                    lambda b: b"plain text, not an archive"], ids=["truncated", "bad-gzip", "text"])
def test_cifar_damaged_archive(tmp_path, cifar_archive, damage):
    path = tmp_path / "cifar-10-binary.tar.gz"
    path.write_bytes(damage((cifar_archive / "cifar-10-binary.tar.gz").read_bytes()))
    with pytest.raises(ValueError) as info:
        load_cifar10(tmp_path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------------ search path

def test_search_order_data_home_then_env_then_cache(tmp_path, monkeypatch, rng):
    sets = {place: (make_split(rng, 2) + make_split(rng, 1)) for place in ("home", "env", "cache")}
    write_mnist(tmp_path / "dh" / "mnist", sets["home"])
    write_mnist(tmp_path / "env" / "mnist", sets["env"])
    write_mnist(tmp_path / "xdg-cache" / "fastnn" / "mnist", sets["cache"])
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    assert np.array_equal(load_mnist(tmp_path / "dh")[0], sets["home"][0])
    assert np.array_equal(load_mnist()[0], sets["env"][0])
    assert np.array_equal(load_mnist(tmp_path / "nothing-here")[0], sets["env"][0])
    monkeypatch.delenv("FASTNN_DATA")
    assert np.array_equal(load_mnist()[0], sets["cache"][0])


def test_a_folder_with_some_files_is_skipped_for_a_complete_one(tmp_path, monkeypatch, small_mnist):
    write_mnist(tmp_path / "dh" / "mnist", small_mnist)
    (tmp_path / "dh" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_mnist(tmp_path / "env" / "mnist", small_mnist)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    assert np.array_equal(load_mnist(tmp_path / "dh")[1], small_mnist[1])


def test_cache_folder_locations(tmp_path, monkeypatch):
    assert get_data_home() == tmp_path / "xdg-cache" / "fastnn"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored, as the XDG spec says
    assert get_data_home() == tmp_path / "home" / ".cache" / "fastnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert get_data_home() == tmp_path / "home" / ".cache" / "fastnn"
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "dh") == tmp_path / "dh"
    assert get_data_home("~/data") == tmp_path / "home" / "data"


LOADERS = {
    "mnist": (load_mnist, ["mnist", "train-images-idx3-ubyte.gz", "ossci-datasets.s3.amazonaws.com/mnist/"]),
    "fashion": (load_fashion_mnist, ["fashion-mnist", "t10k-labels-idx1-ubyte.gz",
                                     "fashion-mnist.s3-website.eu-central-1.amazonaws.com"]),
    "cifar": (load_cifar10, ["cifar-10-binary.tar.gz", "cifar-10-batches-bin",
                             "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]),
    "malaria": (ds.load_malaria, ["cell_images", "Parasitized",
                                  "data.lhncbc.nlm.nih.gov/public/Malaria/cell_images.zip"]),
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_missing_dataset_error_names_every_place_and_how_to_get_it(tmp_path, monkeypatch, name):
    loader, words = LOADERS[name]
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    with pytest.raises(DatasetNotFoundError) as info:
        loader(tmp_path / "dh")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for place in (tmp_path / "dh", tmp_path / "env", tmp_path / "xdg-cache" / "fastnn"):
        assert str(place) in message
    for word in ["data_home argument", "FASTNN_DATA", "user cache", "download=True", *words]:
        assert word in message, word
    assert not (tmp_path / "dh").exists() and not (tmp_path / "xdg-cache").exists()  # nothing created


def test_missing_dataset_error_says_what_was_not_given(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert "FASTNN_DATA environment variable is not set" in message and "no data_home" in message
    assert str(tmp_path / "xdg-cache" / "fastnn" / "mnist") in message


def test_missing_dataset_error_lists_missing_files(tmp_path, small_mnist):
    write_mnist(tmp_path / "mnist", small_mnist)
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing t10k-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist, load_cifar10, ds.load_malaria])
@pytest.mark.parametrize("kwargs,error,word", [
    ({"data_home": 5}, TypeError, "data_home"), ({"data_home": ""}, ValueError, "data_home"),
    ({"data_home": b"/tmp"}, TypeError, "data_home"), ({"download": "yes"}, TypeError, "download"),
    ({"download": 1}, TypeError, "download"),
])
def test_loader_arguments_are_checked(loader, kwargs, error, word):
    with pytest.raises(error, match=word):
        loader(**kwargs)
