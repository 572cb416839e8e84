"""Hostile model files are refused quickly and cheaply, and an interrupted save leaves nothing.

A decompression bomb (a deflated member that inflates far beyond its size), members promising
more bytes than the machine has, and junk of any size are refused before anything large is read
or allocated; a KeyboardInterrupt during ``save`` stays a KeyboardInterrupt and leaves no
temporary file.
"""
from __future__ import annotations

import os
import time
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn.io import ModelFileError, archive


def _model(n_inputs=8, n_neurons=4):
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(n_inputs, n_neurons))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    return model


def _rezip(src, dst, compression):
    """The same members, written again with `compression` (what a user's zip tool might do)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    return dst


def test_a_rezipped_deflated_model_still_loads(tmp_path):
    model = _model(64, 32)
    model.save(tmp_path / "m")
    loaded = fastnn.Model.load(_rezip(tmp_path / "m", tmp_path / "deflated", zipfile.ZIP_DEFLATED))
    np.testing.assert_array_equal(loaded.layers[0].weights, model.layers[0].weights)


def test_a_decompression_bomb_is_refused_before_it_inflates(tmp_path):
    model = _model(2048, 1024)                 # 8 MiB of weights ...
    model.layers[0].weights[...] = 0           # ... of zeros, which deflate about 1000 times
    model.save(tmp_path / "m")
    bomb = _rezip(tmp_path / "m", tmp_path / "bomb", zipfile.ZIP_DEFLATED)
    assert os.path.getsize(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(ModelFileError, match="decompression bomb"):
        fastnn.Model.load(bomb)
    assert time.perf_counter() - started < 1.0


def test_members_promising_more_than_memory_are_refused_before_reading(tmp_path, monkeypatch):
    _model(64, 32).save(tmp_path / "m")
    monkeypatch.setattr(archive, "memory_limit", lambda: 1000)
    with pytest.raises(ModelFileError, match="more than this machine's memory"):
        fastnn.Model.load(tmp_path / "m")


@pytest.mark.parametrize("junk", [b"(" * (32 << 20), os.urandom(1 << 20), b"\0" * (8 << 20)],
                         ids=["32MiB-of-pickle-MARK", "random", "zeros"])
def test_junk_of_any_size_is_classified_in_bounded_time(tmp_path, junk):
    path = tmp_path / "junk"
    path.write_bytes(junk)
    started = time.perf_counter()
    with pytest.raises(ModelFileError):
        fastnn.Model.load(path)
    assert time.perf_counter() - started < 1.0


def test_a_protocol_0_pickle_is_still_recognised(tmp_path):
    import pickle

    path = tmp_path / "p0"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=0))
    assert archive.file_kind(path) == "pickle"
    with pytest.raises(ModelFileError, match="is a pickle file"):
        fastnn.Model.load(path)


def _debris(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_an_interrupt_while_writing_an_array_stays_an_interrupt_and_leaves_nothing(tmp_path, monkeypatch):
    model = _model()
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    assert calls and _debris(tmp_path) == [] and not (tmp_path / "m").exists()


def test_an_interrupt_right_after_the_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    real_open = os.open

    def open_then_interrupt(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        os.close(fd)
        raise KeyboardInterrupt  # lands after the file exists, before the caller holds its fd

    monkeypatch.setattr(archive.os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _model().save(tmp_path / "m")
    monkeypatch.undo()
    assert _debris(tmp_path) == []


def test_an_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = _model()
    model.save(tmp_path / "m")
    before = (tmp_path / "m").read_bytes()
    monkeypatch.setattr(np.lib.format, "write_array", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    assert (tmp_path / "m").read_bytes() == before and _debris(tmp_path) == []


def test_an_interrupt_with_a_member_open_is_not_replaced_by_zipfiles_complaint(tmp_path, monkeypatch):
    """An interrupt that lands after zipfile opened a member for writing and before the member's
    `with` holds it: closing the archive then raises "Can't close the ZIP file while there is an
    open writing handle", which must not replace the KeyboardInterrupt."""
    real_open = zipfile.ZipFile.open

    def open_then_interrupt(self, name, mode="r", **kwargs):
        handle = real_open(self, name, mode, **kwargs)
        if mode == "w":
            raise KeyboardInterrupt  # the handle stays open
        return handle

    monkeypatch.setattr(zipfile.ZipFile, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _model().save(tmp_path / "m")
    monkeypatch.undo()
    assert _debris(tmp_path) == [] and not (tmp_path / "m").exists()


# --- data-set files ------------------------------------------------------------------------------


def _gzip_idx(path, shape, fill=0):
    """A gzip-compressed IDX file whose header promises `shape` of unsigned bytes (the data written
    is the promised count of `fill` bytes, compressed)."""
    import gzip
    import struct

    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    with gzip.open(path, "wb") as f:
        f.write(header)
        count = int(np.prod(shape))
        chunk = bytes([fill]) * min(count, 1 << 24)
        while count > 0:
            f.write(chunk[:count])
            count -= len(chunk)
    return path


def test_an_idx_gzip_bomb_is_refused_before_it_inflates(tmp_path):
    from fastnn.datasets._idx import read_idx

    bomb = _gzip_idx(tmp_path / "bomb-idx3-ubyte.gz", (200, 1000, 1000))   # 200 MB of zeros, ~200 KB
    started = time.perf_counter()
    with pytest.raises(ValueError, match="decompression bomb"):
        read_idx(bomb)
    assert time.perf_counter() - started < 1.0


def test_an_idx_header_promising_more_than_memory_is_refused_at_once(tmp_path):
    from fastnn.datasets._idx import read_idx

    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (0xFFFFFFFF).to_bytes(4, "big") * 3 + b"\0" * 100)
    with pytest.raises(ValueError, match="truncated|more than this machine's memory"):
        read_idx(path)
    gz = tmp_path / "huge-idx3-ubyte.gz"
    import gzip
    gz.write_bytes(gzip.compress(path.read_bytes()))
    started = time.perf_counter()
    with pytest.raises(ValueError, match="more than this machine's memory"):
        read_idx(gz)
    assert time.perf_counter() - started < 1.0


def test_a_real_sized_compressible_idx_file_still_reads(tmp_path):
    from fastnn.datasets._idx import read_idx

    rng = np.random.default_rng(0)
    images = (rng.random((100, 28, 28)) < 0.2).astype(np.uint8) * 255   # sparse, like MNIST
    import gzip
    from fastnn.datasets._idx import write_idx
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(write_idx(images)))
    np.testing.assert_array_equal(read_idx(path), images)


def test_a_cifar_archive_that_inflates_far_beyond_the_real_one_is_refused_early(tmp_path, monkeypatch):
    """Members the loader skips must still be inflated to be skipped: the stream is bounded."""
    import io
    import tarfile

    from fastnn.datasets import _cifar, load_cifar10

    monkeypatch.setattr(_cifar, "MAX_ARCHIVE_BYTES", 1 << 20)   # the same rule, at a testable size
    path = tmp_path / _cifar.CIFAR10_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        junk = tarfile.TarInfo("padding.bin")
        junk.size = 4 << 20
        tar.addfile(junk, io.BytesIO(bytes(junk.size)))
    with pytest.raises(ValueError, match="inflates to more than"):
        load_cifar10(tmp_path)
