"""load_cifar10: the official CIFAR-10 *binary* version (no pickle is ever loaded).

Each batch file holds 10000 records of 3073 bytes: one label byte (0..9), then 3072 pixel bytes, the
1024 red values of the 32x32 image in row-major order, then the 1024 green, then the 1024 blue. The
tarball ``cifar-10-binary.tar.gz`` holds them as ``cifar-10-batches-bin/data_batch_1.bin`` ..
``data_batch_5.bin`` and ``test_batch.bin``. Members are read straight from the tarball in one
streaming pass: nothing is extracted, member paths are never used to open files, and only regular-file
members with exactly the expected size are accepted.
"""
from __future__ import annotations

import gzip
import pathlib
import tarfile
import zlib

import numpy as np

from . import _download, _paths
from ._types import FourArrays, PathArg

CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck")
"""CIFAR-10 label names (``batches.meta.txt``); label ``k`` is ``CIFAR10_CLASSES[k]``."""

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"
_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_TEST_FILES = ("test_batch.bin",)
_FILES = _TRAIN_FILES + _TEST_FILES
_RECORDS_PER_FILE = 10000
_RECORD_BYTES = 1 + 3 * 32 * 32
_N_CLASSES = 10
# The official tarball inflates to about 185 MB; a stream that inflates far beyond (members the
# loader skips still have to be inflated to be skipped) is refused instead of read for minutes.
MAX_ARCHIVE_BYTES = 1 << 30


def _probe(root: pathlib.Path):
    folder = root / CIFAR10_FOLDER
    archive = root / CIFAR10_ARCHIVE
    shown = f"{archive} or {folder}/"
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if not missing:
        return ("folder", folder), shown, ""
    if all((root / name).is_file() for name in _FILES):  # data_home is cifar-10-batches-bin/ itself
        return ("folder", root), shown, ""
    if archive.is_file():
        return ("archive", archive), shown, ""
    if folder.is_dir():
        return None, shown, f"no archive, and the folder is missing {', '.join(missing)}"
    return None, shown, "neither exists"


def _fetch(root: pathlib.Path) -> None:
    _download.fetch("cifar-10", CIFAR10_ARCHIVE, root)


def _records(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (N, 3, 32, 32), labels (N,)) views of one batch file's bytes; ``where`` names it in errors."""
    expected = _RECORDS_PER_FILE * _RECORD_BYTES
    if len(data) != expected:
        raise ValueError(f"{where}: {len(data)} bytes, expected {expected} "
                         f"({_RECORDS_PER_FILE} records of {_RECORD_BYTES} bytes)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(_RECORDS_PER_FILE, _RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() >= _N_CLASSES:
        bad = int(np.argmax(labels >= _N_CLASSES))
        raise ValueError(f"{where}: record {bad} has label {int(labels[bad])}, outside 0..9 "
                         "(is this the CIFAR-10 binary version?)")
    return records[:, 1:].reshape(_RECORDS_PER_FILE, 3, 32, 32), labels


def _read_folder(folder: pathlib.Path) -> dict[str, bytes]:
    expected = _RECORDS_PER_FILE * _RECORD_BYTES
    batches = {}
    for name in _FILES:
        path = folder / name
        size = path.stat().st_size
        if size != expected:
            raise ValueError(f"{path}: {size} bytes, expected {expected} "
                             f"({_RECORDS_PER_FILE} records of {_RECORD_BYTES} bytes)")
        batches[name] = path.read_bytes()
    return batches


def _read_archive(archive: pathlib.Path) -> dict[str, bytes]:
    expected = _RECORDS_PER_FILE * _RECORD_BYTES
    wanted = {f"{CIFAR10_FOLDER}/{name}": name for name in _FILES}
    batches: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                if member.offset_data + member.size > MAX_ARCHIVE_BYTES:
                    raise ValueError(f"{archive}: inflates to more than {MAX_ARCHIVE_BYTES} bytes (member "
                                     f"{member.name} ends at byte {member.offset_data + member.size}); the "
                                     f"official archive inflates to about 185 MB: refused")
                member_name = member.name[2:] if member.name.startswith("./") else member.name
                if member_name not in wanted:
                    continue
                name = wanted[member_name]
                where = f"{archive} (member {member.name})"
                if name in batches:
                    raise ValueError(f"{where}: appears twice in the archive")
                if not member.isreg():
                    raise ValueError(f"{where}: not a regular file (a link or special member)")
                if member.size != expected:
                    raise ValueError(f"{where}: {member.size} bytes, expected {expected} "
                                     f"({_RECORDS_PER_FILE} records of {_RECORD_BYTES} bytes)")
                stream = tar.extractfile(member)
                if stream is None:  # pragma: no cover - regular files were checked above
                    raise ValueError(f"{where}: not a regular file")
                data = stream.read(expected)
                if len(data) != expected:
                    raise ValueError(f"{where}: truncated, {len(data)} of {expected} bytes")
                batches[name] = data
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{archive}: damaged or not a tar.gz archive ({type(exc).__name__}: {exc})") from None
    missing = [f"{CIFAR10_FOLDER}/{name}" for name in _FILES if name not in batches]
    if missing:
        raise ValueError(f"{archive}: the archive lacks {', '.join(missing)}")
    return batches


def load_cifar10(data_home: PathArg | None = None, *, download: bool = False) -> FourArrays:
    """CIFAR-10 (60000 32x32 colour images in 10 classes) from the official binary version.

    Looks in each folder of the search path (``data_home``, then ``$FASTNN_DATA``, then the user cache
    folder) for the extracted folder ``cifar-10-batches-bin/`` with ``data_batch_1.bin`` ..
    ``data_batch_5.bin`` and ``test_batch.bin``, else for the archive ``cifar-10-binary.tar.gz`` (read
    directly, never extracted). Only the binary version is read; the Python (pickle) version is not
    supported, because unpickling a downloaded file can run arbitrary code. Label names:
    ``CIFAR10_CLASSES``.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        A folder holding ``cifar-10-binary.tar.gz`` or ``cifar-10-batches-bin/``.
    download : bool
        When the files are nowhere, download ``cifar-10-binary.tar.gz`` (about 170 MB) into the first
        folder of the search path and verify its sha256. Nothing is downloaded unless this is True.

    Returns
    -------
    X_train : ndarray (50000, 3, 32, 32) uint8, channels-first (NCHW), channels R, G, B; 0..255
    y_train : ndarray (50000,) uint8, classes 0..9 (batches 1 to 5 in order)
    X_test : ndarray (10000, 3, 32, 32) uint8
    y_test : ndarray (10000,) uint8

    For channels-last (NHWC) use ``X.transpose(0, 2, 3, 1)``.

    Raises
    ------
    DatasetNotFoundError (a FileNotFoundError)
        Nothing found; the message names every place looked and how to get the files.
    ValueError
        A damaged file: a batch of the wrong size, a label outside 0..9, a damaged or incomplete
        archive, a member that is a link or appears twice; the message names the file.
    DownloadError (an OSError)
        ``download=True`` and the download failed (nothing partial is left behind).
    """
    kind, location = _paths.find_or_download(
        title="CIFAR-10 (binary version)", function="load_cifar10", data_home=data_home, download=download,
        probe=_probe, fetch=_fetch,
        how_to_get=[f"or download {_download.urls('cifar-10', CIFAR10_ARCHIVE)[0]} into <folder>/ "
                    f"(keep the .tar.gz, or extract it there to get <folder>/{CIFAR10_FOLDER}/);"])
    batches = _read_folder(location) if kind == "folder" else _read_archive(location)
    n = _RECORDS_PER_FILE
    X_train = np.empty((n * len(_TRAIN_FILES), 3, 32, 32), dtype=np.uint8)
    y_train = np.empty(n * len(_TRAIN_FILES), dtype=np.uint8)
    for i, name in enumerate(_TRAIN_FILES):
        where = location / name if kind == "folder" else f"{location} (member {CIFAR10_FOLDER}/{name})"
        X_train[i * n:(i + 1) * n], y_train[i * n:(i + 1) * n] = _records(batches.pop(name), str(where))
    where = location / _TEST_FILES[0] if kind == "folder" else f"{location} (member {CIFAR10_FOLDER}/{_TEST_FILES[0]})"
    pixels, labels = _records(batches.pop(_TEST_FILES[0]), str(where))
    return X_train, y_train, pixels.copy(), labels.copy()
