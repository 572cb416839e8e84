"""load_image_folder and load_malaria: one sub-folder per class of PNG/JPEG images, decoded with Pillow.

Pillow is an optional dependency (``pip install "fastnn[images]"``); it is imported only when images
are loaded.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import io
import numbers
import os
import pathlib
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable, cast

import numpy as np
from numpy.typing import NDArray

from .._core import checks as _checks
from . import _download, _paths
from ._types import PathArg

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
"""File name endings (any case) read as images; Pillow decodes them as PNG or JPEG only."""

# Files that operating systems drop into image folders; always ignored (so are hidden files).
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
_COLOR_MODES = ("rgb", "grayscale")
_LAYOUTS = ("NCHW", "NHWC")
_ON_ERROR = ("raise", "skip")
_MAX_MEMBER_BYTES = 256 << 20  # a zip member larger than this is not one of our images
_PIL_FORMATS = ("PNG", "JPEG")
_MAX_THREADS = 4   # decoding threads (at most the CPU count)
_BATCH = 64        # images per decoding task

MALARIA_CLASSES: tuple[str, ...] = ("Parasitized", "Uninfected")
"""Malaria class names; label 0 is Parasitized, 1 Uninfected (the folder names, sorted)."""

MALARIA_ARCHIVE = "cell_images.zip"


def _pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("loading images needs Pillow, an optional dependency of fastnn: "
                          'pip install "fastnn[images]" (or pip install pillow)') from exc
    return Image


@dataclass
class _Entry:
    label: int
    name: str                      # shown in error messages: a path, or "archive.zip (member ...)"
    source: Callable[[], object]   # returns what Image.open accepts: a path or a file object


def _class_order(names: list[str]) -> list[str]:
    """Folder names sorted by name, or numerically when every name is a non-negative integer."""
    if names and all(re.fullmatch(r"[0-9]+", name) for name in names):
        return sorted(names, key=lambda name: (int(name), name))
    return sorted(names)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in _SYSTEM_FILES or name == "__MACOSX"


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _scan_folder(root: pathlib.Path) -> tuple[list[str], list[_Entry], list[str]]:
    """Class names, image entries and non-image files (paths) found under ``root``."""
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder (expected one sub-folder per class)")
    with os.scandir(root) as listing:
        class_dirs = [entry.name for entry in listing if entry.is_dir() and not _ignored(entry.name)]
    if not class_dirs:
        raise ValueError(f"{root} has no class sub-folders; expected one sub-folder of images per class, "
                         "e.g. cell_images/Parasitized/*.png and cell_images/Uninfected/*.png")
    classes = _class_order(class_dirs)
    entries: list[_Entry] = []
    others: list[str] = []
    for label, class_name in enumerate(classes):
        class_root = root / class_name
        found = []  # (path relative to the class folder, as a posix string; path)
        for folder, subfolders, files in os.walk(class_root):
            subfolders[:] = [d for d in subfolders if not _ignored(d)]
            for file_name in files:
                if not _ignored(file_name):
                    file_path = pathlib.Path(folder) / file_name
                    found.append((file_path.relative_to(class_root).as_posix(), file_path))
        before = len(entries)
        for _, file_path in sorted(found):
            if _is_image_name(file_path.name):
                entries.append(_Entry(label, str(file_path), functools.partial(pathlib.Path, file_path)))
            else:
                others.append(str(file_path))
        if len(entries) == before:
            raise ValueError(f"class folder {root / class_name} holds no PNG or JPEG images "
                             f"(looked for files ending in {', '.join(IMAGE_EXTENSIONS)})")
    return classes, entries, others


def _scan_zip(archive: zipfile.ZipFile, archive_path: pathlib.Path, prefix: str
              ) -> tuple[list[str], list[_Entry], list[str]]:
    """Like _scan_folder, for the members of ``archive`` under ``prefix`` (e.g. "cell_images/")."""
    by_class: dict[str, list[zipfile.ZipInfo]] = {}
    for info in archive.infolist():
        name = info.filename
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        if len(parts) < 2 or _ignored(parts[0]) or parts[0] == "":
            continue  # a file next to the class folders, or an ignored folder
        by_class.setdefault(parts[0], [])
        if info.is_dir() or any(_ignored(part) for part in parts[1:] if part):
            continue
        by_class[parts[0]].append(info)
    if not by_class:
        raise ValueError(f"{archive_path}: no class folders under {prefix or 'the archive root'}")
    classes = _class_order(list(by_class))
    entries: list[_Entry] = []
    others: list[str] = []

    def opener(info: zipfile.ZipInfo):
        if info.file_size > _MAX_MEMBER_BYTES:
            raise OSError(f"member of {info.file_size} bytes is too large for an image")
        return io.BytesIO(archive.read(info))

    for label, class_name in enumerate(classes):
        members = sorted(by_class[class_name], key=lambda info: info.filename)
        images = [info for info in members if _is_image_name(info.filename)]
        if not images:
            raise ValueError(f"{archive_path}: class folder {prefix}{class_name}/ holds no PNG or JPEG images")
        others += [f"{archive_path} (member {info.filename})" for info in members if not _is_image_name(info.filename)]
        entries += [_Entry(label, f"{archive_path} (member {info.filename})", functools.partial(opener, info))
                    for info in images]
    return classes, entries, others


def _decode(Image, entry: _Entry, color_mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 pixels of one image; ValueError naming the file when it cannot be decoded."""
    try:
        source = entry.source()
        with Image.open(source, formats=_PIL_FORMATS) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale PNG: keep the top 8 bits (Pillow's convert would clip at 255).
                image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8), "L")
            image = image.convert("L" if color_mode == "grayscale" else "RGB")  # alpha, if any, is dropped
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, zipfile.BadZipFile,
            Image.DecompressionBombError) as exc:
        raise ValueError(f"{entry.name}: cannot be read as a PNG or JPEG image ({type(exc).__name__}: {exc})") from None


def _decode_all(Image, entries: list[_Entry], color_mode: str, size):
    """(entry, pixels or the ValueError it raised) for every entry, in order.

    Pillow releases the GIL while it decodes and resizes, so a few threads decode in parallel; the
    results come back in the order of ``entries`` (the output does not depend on the thread count).
    """
    def decode(entry):
        try:
            return entry, _decode(Image, entry, color_mode, size)
        except ValueError as exc:
            return entry, exc

    workers = min(_MAX_THREADS, os.cpu_count() or 1)
    if workers < 2 or len(entries) < 2 * _BATCH:
        yield from map(decode, entries)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastnn-images") as pool:
        # Bounded look-ahead: at most a few batches are decoded ahead of the consumer.
        pending: collections.deque = collections.deque()
        try:
            for start in range(0, len(entries), _BATCH):
                pending.append(pool.submit(lambda chunk: [decode(e) for e in chunk], entries[start:start + _BATCH]))
                if len(pending) > 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:  # the consumer stopped early (an error): do not decode the rest
            for future in pending:
                future.cancel()


def _label_dtype(n_classes: int) -> np.dtype:
    if n_classes <= 256:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if n_classes <= 65536 else np.dtype(np.uint32)


def _load_entries(classes, entries, others, *, image_size, color_mode, layout, on_error, where,
                  hint=", or pass on_error='skip' to leave such files out"):
    Image = _pillow()
    skipped = [f"{name}: not a PNG or JPEG file name" for name in others]
    if others and on_error == "raise":
        raise ValueError(f"{others[0]}: not a PNG or JPEG image (file names must end in "
                         f"{', '.join(IMAGE_EXTENSIONS)}); remove it{hint}"
                         + (f" ({len(others) - 1} more such files)" if len(others) > 1 else ""))
    channels = 1 if color_mode == "grayscale" else 3
    X = None
    y = np.empty(len(entries), dtype=_label_dtype(len(classes)))
    first_name, first_size = None, None
    count = 0
    for entry, pixels in _decode_all(Image, entries, color_mode, image_size):
        if isinstance(pixels, ValueError):
            if on_error == "raise":
                raise ValueError(f"{pixels}; remove or replace the file{hint}") from None
            skipped.append(str(pixels))
            continue
        height, width = pixels.shape[:2]
        if X is None:
            first_name, first_size = entry.name, (height, width)
            n = len(entries)
            X = np.empty((n, channels, height, width) if layout == "NCHW" else (n, height, width, channels), np.uint8)
        elif (height, width) != first_size:
            raise ValueError(f"images differ in size: {first_name} is {first_size[0]}x{first_size[1]} (height x width) "
                             f"but {entry.name} is {height}x{width}; pass image_size=(height, width) to resize all")
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        X[count] = pixels.transpose(2, 0, 1) if layout == "NCHW" else pixels
        y[count] = entry.label
        count += 1
    if skipped:
        shown = "\n  ".join(skipped[:5]) + (f"\n  ... and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(f"{where}: skipped {len(skipped)} files that are not readable PNG/JPEG images:\n  {shown}",
                      UserWarning, stacklevel=3)
    if X is None:
        raise ValueError(f"{where}: no image could be read")
    if count < len(entries):
        X, y = X[:count].copy(), y[:count].copy()
    return X, y, list(classes)


def _image_size(value) -> tuple[int, int] | None:
    """None, a (height, width) pair, or one int for a square (``image_size=32`` is (32, 32))."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value, value)
    return _checks.image_size(value)


def _check_options(image_size, color_mode, layout, on_error):
    return (_image_size(image_size), _checks.choice(color_mode, "color_mode", _COLOR_MODES),
            _checks.choice(layout, "layout", _LAYOUTS), _checks.choice(on_error, "on_error", _ON_ERROR))


def load_image_folder(path: PathArg, *, image_size: int | tuple[int, int] | None = None, color_mode: str = "rgb",
                      layout: str = "NCHW", on_error: str = "raise"
                      ) -> tuple[NDArray[np.uint8], NDArray[np.unsignedinteger], list[str]]:
    """Images stored as one sub-folder per class, decoded (and resized) with Pillow.

    The layout of the Malaria cell images (``cell_images/Parasitized/*.png``,
    ``cell_images/Uninfected/*.png``) and of the book's Fashion-MNIST PNG download
    (``fashion_mnist_images/train/0/*.png`` .. ``9/``). Every sub-folder of ``path`` is a class; its files
    (including those in nested folders) ending in .png, .jpg or .jpeg (any case) are its images.
    Classes are sorted by folder name, numerically when every name is a non-negative integer (so the
    book's folders 0..9 get labels 0..9); images within a class are sorted by their path relative to the
    class folder (so the order does not depend on the file system). Files directly in
    ``path``, hidden files and folders (names starting with '.'), and Thumbs.db / desktop.ini /
    .DS_Store files are ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The folder holding one sub-folder per class.
    image_size : None, (height, width) or int
        Resize every image to this size (an int n means n x n) (bilinear, with Pillow's antialiasing when shrinking). None keeps
        the stored size, which must then be the same for every image (else ValueError).
    color_mode : "rgb" or "grayscale"
        "rgb": 3 channels (grayscale images are replicated); "grayscale": 1 channel (Pillow's "L"
        conversion, ITU-R 601-2 luma). An alpha channel is dropped. 16-bit images keep their top 8 bits.
    layout : "NCHW" or "NHWC"
        Channels-first (default, as fastnn's convolution layers take) or channels-last.
    on_error : "raise" or "skip"
        What to do with a file that is not a decodable PNG/JPEG image (a stray non-image file in a class
        folder, a corrupt or truncated image): "raise" (default) raises ValueError naming the file;
        "skip" leaves it out and emits one UserWarning listing the skipped files.

    Returns
    -------
    X : ndarray uint8, (N, C, H, W) for "NCHW" or (N, H, W, C) for "NHWC"; C is 3 (rgb) or 1 (grayscale)
    y : ndarray (N,), uint8 (uint16 when there are more than 256 classes), the class index of each image
    class_names : list of str, the sub-folder names; label ``k`` is ``class_names[k]``

    The book's ``create_data_mnist`` gives (N, 28, 28): ``X[:, 0]`` of a grayscale load is that array
    (in sorted rather than directory-listing order).

    Raises
    ------
    ImportError
        Pillow is not installed (``pip install "fastnn[images]"``).
    FileNotFoundError / NotADirectoryError
        ``path`` is missing or not a folder.
    ValueError
        No class sub-folders, a class without images, images of differing sizes without ``image_size``,
        or (with on_error="raise") an unreadable file; the message names the file.
    """
    root = cast(pathlib.Path, _checks.path(path, "path"))  # expanded: a Path, never None
    image_size, color_mode, layout, on_error = _check_options(image_size, color_mode, layout, on_error)
    _pillow()
    classes, entries, others = _scan_folder(root)
    return _load_entries(classes, entries, others, image_size=image_size, color_mode=color_mode, layout=layout,
                         on_error=on_error, where=str(root))


def _has_malaria_classes(folder: pathlib.Path) -> bool:
    return all((folder / name).is_dir() for name in MALARIA_CLASSES)


def _malaria_probe(root: pathlib.Path):
    folders = [root / "malaria" / "cell_images", root / "cell_images"]
    archives = [root / "malaria" / MALARIA_ARCHIVE, root / MALARIA_ARCHIVE]
    for folder in folders:
        if _has_malaria_classes(folder):
            return ("folder", folder), None, ""
    for archive in archives:
        if archive.is_file():
            return ("archive", archive), None, ""
    shown = " or ".join([f"{f}/{{{','.join(MALARIA_CLASSES)}}}/" for f in folders] + [str(a) for a in archives])
    return None, shown, "none exists"


def _malaria_fetch(root: pathlib.Path) -> None:
    _download.fetch("malaria", MALARIA_ARCHIVE, root / "malaria")


def _zip_prefix(archive: zipfile.ZipFile) -> str:
    names = archive.namelist()
    for prefix in ("cell_images/", ""):
        if all(any(name.startswith(f"{prefix}{cls}/") for name in names) for cls in MALARIA_CLASSES):
            return prefix
    return "cell_images/"


def load_malaria(data_home: PathArg | None = None, *, image_size: int | tuple[int, int] | None = (64, 64),
                 download: bool = False) -> tuple[NDArray[np.uint8], NDArray[np.uint8], list[str]]:
    """The NIH/NLM Malaria cell images (27558 thin-blood-smear cell crops, half parasitized), resized.

    Looks in each folder of the search path (``data_home``, then ``$FASTNN_DATA``, then the user cache
    folder) for the extracted ``malaria/cell_images/`` or ``cell_images/`` (holding ``Parasitized/`` and
    ``Uninfected/``), else for the archive ``malaria/cell_images.zip`` or ``cell_images.zip``, which is
    read directly (nothing is extracted). The dataset defines no train/test split, so every image is
    returned, parasitized first; shuffle and split yourself. Decoding needs Pillow
    (``pip install "fastnn[images]"``); the Thumbs.db files of the official archive are ignored.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        A folder holding one of the layouts above.
    image_size : (height, width), int or None
        An int n means n x n. The cells are of differing sizes (roughly 100 to 200 pixels a side), so they are resized, to
        64x64 by default. None keeps the stored sizes and fails because they differ.
    download : bool
        When nothing is found, download ``cell_images.zip`` (about 350 MB) from the NLM into
        ``<first folder>/malaria/`` and verify its sha256. Nothing is downloaded unless this is True.

    Returns
    -------
    X : ndarray (27558, 3, H, W) uint8, RGB, channels-first
    y : ndarray (27558,) uint8: 0 = Parasitized, 1 = Uninfected
    class_names : list of str, ``["Parasitized", "Uninfected"]`` (also ``MALARIA_CLASSES``)

    Raises
    ------
    DatasetNotFoundError (a FileNotFoundError)
        Nothing found; the message names every place looked and how to get the files.
    ValueError
        Unexpected class folders, or an image that cannot be decoded (the message names it).
    ImportError
        Pillow is not installed.
    DownloadError (an OSError)
        ``download=True`` and the download failed (nothing partial is left behind).
    """
    image_size = _image_size(image_size)
    kind, location = _paths.find_or_download(
        title="Malaria (cell images)", function="load_malaria", data_home=data_home, download=download,
        probe=_malaria_probe, fetch=_malaria_fetch,
        how_to_get=[f"or download {_download.urls('malaria', MALARIA_ARCHIVE)[0]} into <folder>/malaria/ "
                    "(keep the .zip, or unzip it there to get <folder>/malaria/cell_images/);"],
        subdir="malaria")
    _pillow()
    options = dict(image_size=image_size, color_mode="rgb", layout="NCHW", on_error="raise", where=str(location),
                   hint=" (or load the folder with load_image_folder(..., on_error='skip'))" if kind == "folder"
                   else " (or unzip the archive and load it with load_image_folder(..., on_error='skip'))")
    if kind == "folder":
        classes, entries, others = _scan_folder(location)
        if classes != list(MALARIA_CLASSES):
            raise ValueError(f"{location}: expected exactly the class folders {list(MALARIA_CLASSES)}, found {classes}")
        return _load_entries(classes, entries, others, **options)
    try:
        with zipfile.ZipFile(location) as archive:
            prefix = _zip_prefix(archive)
            classes, entries, others = _scan_zip(archive, location, prefix)
            if classes != list(MALARIA_CLASSES):
                raise ValueError(f"{location}: expected exactly the class folders {list(MALARIA_CLASSES)} "
                                 f"under {prefix or 'the archive root'}, found {classes}")
            return _load_entries(classes, entries, others, **options)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{location}: damaged or not a zip archive ({exc})") from None
