"""What a wheel holds, checked where the suite runs against one (.ci/test_installed.py sets
FASTNN_EXPECT_INSTALLED=1): fastnn is imported from the installation, not the repository, with
every compiled module, its type stubs, py.typed and the package data."""
import importlib.machinery
import os
import pathlib

import pytest

import fastnn
from fastnn import _ext

pytestmark = pytest.mark.skipif(os.environ.get("FASTNN_EXPECT_INSTALLED") != "1",
                                reason="only against an installed wheel (.ci/test_installed.py)")

PACKAGE = pathlib.Path(fastnn.__file__).resolve().parent


def test_fastnn_is_imported_from_the_installation_not_the_repository(source):
    assert source not in PACKAGE.parents, f"fastnn was imported from the source tree: {PACKAGE}"
    assert "site-packages" in PACKAGE.parts or "dist-packages" in PACKAGE.parts, PACKAGE


def test_every_compiled_module_is_in_the_wheel():
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    built = {p.name.split(".")[0] for p in (PACKAGE / "_ext").iterdir() if p.name.endswith(suffixes)}
    assert set(_ext.MODULES) <= built
    if _ext.KERNELS == "avx2":
        assert {name + "_avx2" for name in _ext.DISPATCHED} <= built


def test_the_wheel_ships_types_and_data_but_no_sources():
    assert (PACKAGE / "py.typed").is_file()
    assert {f"{name}.pyi" for name in _ext.MODULES} <= {p.name for p in (PACKAGE / "_ext").glob("*.pyi")}
    assert (PACKAGE / "datasets" / "data" / "iris.csv").is_file()
    assert not list(PACKAGE.rglob("*.pyx")) and not list(PACKAGE.rglob("*.c"))
