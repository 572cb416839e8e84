"""A folder named fastnn in the current folder (a clone of the repository) must not hide the
installed package, and where an import hook still reaches a subpackage under it, the error says
what happened.

Python makes such a folder (no __init__.py) an empty namespace package, which wins over anything
found only by an import hook placed after the path search: the default editable install of
setuptools. fastnn's editable install puts the repository root on sys.path instead, and a wheel
install lives in site-packages: a regular package there always wins over a namespace folder.
"""
import pathlib
import subprocess
import sys
import textwrap

import fastnn


def _clone_like(tmp_path):
    """tmp/fastnn: a folder laid out like the repository, without __init__.py at its top."""
    clone = tmp_path / "fastnn"
    (clone / "docs").mkdir(parents=True)
    (clone / "README.md").write_text("# fastnn\n")
    (clone / "setup.py").write_text("raise SystemExit('not to be run')\n")
    return tmp_path


def _run(code, cwd):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_star_import_from_the_folder_that_holds_a_clone(tmp_path):
    result = _run("""
        from fastnn import *
        import fastnn, fastnn.datasets
        model = Model()
        print(fastnn.__file__)
        """, _clone_like(tmp_path))
    assert result.returncode == 0, result.stderr
    assert pathlib.Path(result.stdout.strip()) == pathlib.Path(fastnn.__file__)


def test_script_next_to_a_clone(tmp_path):
    """A script in the folder that holds the clone: that folder is sys.path[0]."""
    root = _clone_like(tmp_path)
    (root / "train.py").write_text("from fastnn import *\nfrom fastnn.datasets import spiral_data\n"
                                   "X, y = spiral_data(samples=10, classes=2)\nprint(type(Model()).__name__, len(X))\n")
    result = subprocess.run([sys.executable, "train.py"], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Model", "20"]


HOOK = """
import importlib.machinery, pathlib, sys
REAL = pathlib.Path({real!r})

class AfterThePathSearch:
    # What setuptools' default editable install adds to sys.meta_path: it maps the package's
    # children to the source folder, consulted after the normal search.
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        parent, _, child = fullname.rpartition(".")
        if parent == "fastnn":
            return importlib.machinery.PathFinder.find_spec(fullname, [str(REAL)])
        return None

sys.meta_path.append(AfterThePathSearch)
sys.path[:] = [p for p in sys.path if not (pathlib.Path(p or ".").resolve() / "fastnn" / "__init__.py").exists()
               or pathlib.Path(p or ".").resolve() == pathlib.Path.cwd()]
import fastnn
assert getattr(fastnn, "__file__", None) is None, "expected the namespace package"
"""


def test_subpackage_under_a_namespace_parent_says_what_happened(tmp_path):
    real = pathlib.Path(fastnn.__file__).parent
    root = _clone_like(tmp_path)
    for subpackage in ("fastnn.datasets", "fastnn.reference"):
        result = _run(HOOK.format(real=str(real)) + f"import {subpackage}\n", root)
        assert result.returncode != 0
        assert "ImportError" in result.stderr and "empty namespace package" in result.stderr, result.stderr
        assert str(tmp_path / "fastnn") in result.stderr and "clone" in result.stderr
        assert "unknown location" not in result.stderr
