"""Where dataset files are looked for, and the error that says where they were not found.

Search order: the ``data_home`` argument, then the ``FASTNN_DATA`` environment
variable, then a per-user cache folder. Downloads go to the first of these.
"""
from __future__ import annotations

import os
import pathlib
import sys
from dataclasses import dataclass
from typing import Callable

from .._core import checks as _checks
from ._types import PathArg

ENV_VAR = "FASTNN_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the folders searched; the message lists each one and how to get the files."""


def user_cache_dir() -> pathlib.Path:
    """The per-user cache folder fastnn downloads datasets into when neither data_home nor FASTNN_DATA is given.

    Linux and other Unix: ``$XDG_CACHE_HOME/fastnn`` (when that variable holds an absolute path), else
    ``~/.cache/fastnn``. macOS: ``~/Library/Caches/fastnn``. Windows: ``%LOCALAPPDATA%\\fastnn\\Cache``
    (else ``~\\AppData\\Local\\fastnn\\Cache``). The folder is created only when something is downloaded.
    """
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA")
        root = pathlib.Path(base) if base else pathlib.Path.home() / "AppData" / "Local"
        return root / "fastnn" / "Cache"
    if sys.platform == "darwin":
        return pathlib.Path.home() / "Library" / "Caches" / "fastnn"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return pathlib.Path(xdg) / "fastnn"
    return pathlib.Path.home() / ".cache" / "fastnn"


@dataclass(frozen=True)
class Place:
    """One folder of the search path and why it is on it."""

    root: pathlib.Path
    source: str


def search_path(data_home: PathArg | None = None) -> tuple[list[Place], list[str]]:
    """The folders to search, in order, and notes about places that were not set.

    Returns (places, notes): places is data_home, FASTNN_DATA, the user cache (each once, duplicates
    merged); notes says which of the optional places were not given.
    """
    places: list[Place] = []
    notes: list[str] = []
    home = _checks.path(data_home, "data_home", optional=True)
    if home is not None:
        places.append(Place(pathlib.Path(home), "the data_home argument"))
    else:
        notes.append("no data_home argument was given")
    env = os.environ.get(ENV_VAR, "")
    if env:
        places.append(Place(pathlib.Path(env).expanduser(), f"the {ENV_VAR} environment variable"))
    else:
        notes.append(f"the {ENV_VAR} environment variable is not set")
    places.append(Place(user_cache_dir(), "the user cache folder"))
    merged: list[Place] = []
    for place in places:
        for i, seen in enumerate(merged):
            if _same_path(seen.root, place.root):
                merged[i] = Place(seen.root, f"{seen.source} and {place.source}")
                break
        else:
            merged.append(place)
    return merged, notes


def get_data_home(data_home: PathArg | None = None) -> pathlib.Path:
    """The folder downloads go to: ``data_home`` if given, else ``$FASTNN_DATA`` if set, else the user cache folder.

    Nothing is created. Loaders look in all three places (in that order) before saying a dataset is
    missing; with ``download=True`` they fetch missing files into this one.
    """
    return search_path(data_home)[0][0].root


def _same_path(a: pathlib.Path, b: pathlib.Path) -> bool:
    try:
        return os.path.abspath(a) == os.path.abspath(b) or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def describe_folder(folder: pathlib.Path, missing: list[str]) -> str:
    """What is wrong with ``folder`` for the not-found message."""
    if not folder.exists():
        return "folder does not exist"
    if not folder.is_dir():
        return "exists but is not a folder"
    return "missing " + ", ".join(missing)


def not_found_message(dataset: str, function: str, lines: list[str], notes: list[str], how_to_get: list[str],
                      download_to: pathlib.Path) -> str:
    """The full text of a DatasetNotFoundError: every place looked, then every way to get the files."""
    parts = [f"{dataset} was not found. Looked in:"]
    parts += [f"  - {line}" for line in lines]
    parts += [f"  ({note})" for note in notes]
    parts.append("To get it, do one of:")
    parts.append(f"  - call {function}(download=True): downloads the official files into {download_to}"
                 " and verifies their sha256;")
    parts += [f"  - {line}" for line in how_to_get]
    parts.append(f"  - or pass data_home=..., or set the {ENV_VAR} environment variable, to the folder that "
                 "holds the files as laid out above.")
    return "\n".join(parts)


def find_or_download(*, title: str, function: str, data_home, download, probe: Callable, fetch: Callable,
                     how_to_get: list[str],
                     subdir: str = ""):
    """Search data_home, FASTNN_DATA and the user cache in order; download into the first when asked.

    ``probe(root)`` returns ``(found, shown, problem)``: ``found`` is not None when the dataset is
    complete under ``root``; otherwise ``shown`` names what was looked for and ``problem`` what is wrong.
    ``fetch(root)`` downloads the missing files under ``root`` (into ``root / subdir``). Returns ``found``; raises
    DatasetNotFoundError naming every place looked when nothing is found and ``download`` is false.
    """
    download = _checks.flag(download, "download")
    places, notes = search_path(data_home)
    lines = []
    for place in places:
        found, shown, problem = probe(place.root)
        if found is not None:
            return found
        lines.append(f"{shown} ({place.source}): {problem}")
    if download:
        fetch(places[0].root)
        found, shown, problem = probe(places[0].root)
        if found is None:  # pragma: no cover - fetch verified every file it wrote
            raise RuntimeError(f"{title}: downloaded, yet {shown}: {problem}")
        return found
    target = places[0].root / subdir if subdir else places[0].root
    raise DatasetNotFoundError(not_found_message(title, function, lines, notes, how_to_get, target))
