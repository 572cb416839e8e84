"""A clear error for a fastnn shadowed by a folder named fastnn (a clone of the repository).

Python turns a folder without ``__init__.py`` that sits in the current folder (or the script's)
into an empty namespace package, and that wins over an install that Python finds only through an
import hook (the default editable install of older versions): ``from fastnn import *`` then
imports nothing. Editable installs now put the repository root on ``sys.path`` instead (see
``package-dir`` in pyproject.toml), where a regular package always wins. When a subpackage is still
reached through such a hook under the empty namespace, this says what happened instead of failing
with "cannot import name ... (unknown location)". Imports nothing from fastnn.
"""
from __future__ import annotations

import sys


def refuse_namespace_parent() -> None:
    """Raise ImportError when the module ``fastnn`` is a namespace package (no ``__file__``)."""
    parent = sys.modules.get(__name__.rpartition(".")[0])
    if parent is None or getattr(parent, "__file__", None) is not None:
        return
    folders = [str(p) for p in getattr(parent, "__path__", [])]
    raise ImportError(
        f"fastnn: Python imported the folder {', '.join(folders) or '(unknown)'} as the package 'fastnn': "
        "it has no __init__.py, so it became an empty namespace package that hides the fastnn you "
        "installed. It is most likely a clone of the fastnn repository in the current folder (or in "
        "the folder of the script you ran). Run Python from another folder (inside the clone works), "
        "rename the clone, or reinstall it with `pip install -e <the clone>` (this version's editable "
        "install cannot be hidden this way).")
