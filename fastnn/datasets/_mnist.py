"""load_mnist and load_fashion_mnist: the official IDX files, gzip-compressed or decompressed."""
from __future__ import annotations

import pathlib

import numpy as np

from . import _download, _idx, _paths
from ._types import FourArrays, PathArg

FASHION_MNIST_CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                          "Shirt", "Sneaker", "Bag", "Ankle boot")
"""Fashion-MNIST label names; label ``k`` is ``FASHION_MNIST_CLASSES[k]`` (the book's ``fashion_mnist_labels``)."""

MNIST_FILES: tuple[str, ...] = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
"""The four official file names, shared by MNIST and Fashion-MNIST (each may also be stored without .gz)."""

_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10
_UBYTE = 0x08


def _locate(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    """``folder/name`` if it is a file, else its decompressed twin (name without .gz), else None."""
    for candidate in (folder / name, folder / name[: -len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def _files(folder: pathlib.Path) -> tuple[dict[str, pathlib.Path | None], list[str]]:
    found = {name: _locate(folder, name) for name in MNIST_FILES}
    return found, [name for name, path in found.items() if path is None]


def _names_dataset(folder: pathlib.Path, subdir: str) -> bool:
    """Whether a folder's name says it holds this data set (``fashion-mnist``, ``Fashion_MNIST``,
    ``mnist``...): MNIST and Fashion-MNIST files have the same names, so files found directly in
    a folder are taken only when its name tells them apart."""
    name = folder.name.lower().replace("-", "").replace("_", "")
    return ("fashion" in name) if subdir == "fashion-mnist" else ("mnist" in name and "fashion" not in name)


def _other_dataset(found: dict[str, pathlib.Path | None], dataset: str) -> str | None:
    """The other data set's title when the compressed training images have its pinned size."""
    other = "mnist" if dataset == "fashion-mnist" else "fashion-mnist"
    path = found[MNIST_FILES[0]]
    if path is not None and path.name.endswith(".gz") and path.stat().st_size == _download.CHECKSUMS[other][path.name][0]:
        return "MNIST" if other == "mnist" else "Fashion-MNIST"
    return None


def _probe(dataset: str, subdir: str):
    def probe(root: pathlib.Path):
        folder = root / subdir
        found, missing = _files(folder)
        if not missing:
            return found, folder, ""
        # data_home may also be the data set's own folder (".../fashion-mnist" holding the files).
        direct, direct_missing = _files(root)
        if not direct_missing and root != folder:
            other = _other_dataset(direct, dataset)
            if other is not None:
                return None, folder, (f"missing {', '.join(missing)}; the files in {root} itself are "
                                      f"{other}'s (their size), not this data set's")
            if _names_dataset(root, subdir):
                return direct, root, ""
            return None, folder, (f"missing {', '.join(missing)}; {root} itself holds the four files, but its "
                                  f"name does not say which data set they are: rename it to {subdir}/ inside "
                                  f"another folder and pass that folder, or pass the folder holding {subdir}/")
        return None, folder, _paths.describe_folder(folder, missing)
    return probe


def _fetch(dataset: str, subdir: str):
    def fetch(root: pathlib.Path) -> None:
        folder = root / subdir
        for name in MNIST_FILES:
            if _locate(folder, name) is None:
                _download.fetch(dataset, name, folder)
    return fetch


def _read_pair(images_path: pathlib.Path, labels_path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    images = _idx.read_idx(images_path, dtype_code=_UBYTE, ndim=3)
    if images.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    labels = _idx.read_idx(labels_path, dtype_code=_UBYTE, ndim=1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{labels_path} holds {labels.shape[0]} labels but {images_path} holds "
                         f"{images.shape[0]} images; the files do not belong together")
    if labels.size and labels.max() >= _N_CLASSES:
        bad = int(np.argmax(labels >= _N_CLASSES))
        raise ValueError(f"{labels_path}: label {int(labels[bad])} at index {bad} is out of range 0..9")
    return images, labels


def _load(title: str, function: str, dataset: str, subdir: str, data_home, download) -> FourArrays:
    files = _paths.find_or_download(
        title=title, function=function, data_home=data_home, download=download,
        probe=_probe(dataset, subdir), fetch=_fetch(dataset, subdir),
        how_to_get=["or download " + ", ".join(_download.urls(dataset, name)[0] for name in MNIST_FILES)
                    + f" into <folder>/{subdir}/ (kept as .gz or decompressed);"],
        subdir=subdir)
    X_train, y_train = _read_pair(files[MNIST_FILES[0]], files[MNIST_FILES[1]])
    X_test, y_test = _read_pair(files[MNIST_FILES[2]], files[MNIST_FILES[3]])
    return X_train, y_train, X_test, y_test


def load_mnist(data_home: PathArg | None = None, *, download: bool = False) -> FourArrays:
    """The MNIST handwritten digits from the official IDX files.

    Looks for ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``
    and ``t10k-labels-idx1-ubyte.gz`` (each may also be decompressed, without ``.gz``) in ``<folder>/mnist/``,
    where ``<folder>`` is, in this order: ``data_home``, ``$FASTNN_DATA``, the user cache folder
    (``~/.cache/fastnn`` on Linux; see :func:`get_data_home`). All four must be in the same folder.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        A folder holding ``mnist/`` (for example ``shared/datasets``), or the ``mnist`` folder
        itself (a folder whose name says MNIST, holding the four files).
    download : bool
        When the files are nowhere, download the missing ones into the first folder of the search path
        and verify their sha256. Nothing is downloaded unless this is True.

    Returns
    -------
    X_train : ndarray (60000, 28, 28) uint8, pixels 0..255 (0 is background)
    y_train : ndarray (60000,) uint8, digits 0..9
    X_test : ndarray (10000, 28, 28) uint8
    y_test : ndarray (10000,) uint8

    The same layout as the book's ``create_data_mnist``: scale with ``(X.astype(np.float32) - 127.5) / 127.5``
    and flatten with ``X.reshape(X.shape[0], -1)`` as the book does.

    Raises
    ------
    DatasetNotFoundError (a FileNotFoundError)
        The files are in none of the folders; the message names every place looked and how to get them.
    ValueError
        A file is damaged (bad magic number, wrong element type or image size, truncated, extra bytes,
        label count differing from image count, label out of range); the message names the file.
    DownloadError (an OSError)
        ``download=True`` and a download failed (nothing partial is left behind).
    """
    return _load("MNIST", "load_mnist", "mnist", "mnist", data_home, download)


def load_fashion_mnist(data_home: PathArg | None = None, *, download: bool = False) -> FourArrays:
    """Zalando's Fashion-MNIST from the official IDX files.

    Same file names and format as MNIST, in ``<folder>/fashion-mnist/``, where ``<folder>`` is, in this
    order: ``data_home``, ``$FASTNN_DATA``, the user cache folder. Label names: ``FASHION_MNIST_CLASSES``.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        A folder holding ``fashion-mnist/`` (for example ``shared/datasets``), or the
        ``fashion-mnist`` folder itself (a folder whose name says Fashion-MNIST, holding the files).
    download : bool
        When the files are nowhere, download the missing ones into the first folder of the search path
        and verify their sha256. Nothing is downloaded unless this is True.

    Returns
    -------
    X_train : ndarray (60000, 28, 28) uint8, pixels 0..255 (0 is background)
    y_train : ndarray (60000,) uint8, classes 0..9
    X_test : ndarray (10000, 28, 28) uint8
    y_test : ndarray (10000,) uint8

    The same shapes and dtypes as the book's ``create_data_mnist('fashion_mnist_images')``, which reads
    the PNG version of these images; the order here is the official one (the book's loader returns the
    images grouped by class, which is why the book shuffles before training).

    Raises
    ------
    DatasetNotFoundError, ValueError, DownloadError
        As :func:`load_mnist`.
    """
    return _load("Fashion-MNIST", "load_fashion_mnist", "fashion-mnist", "fashion-mnist", data_home, download)
