"""Compiled kernels (built from src_pyx/ by `pip install .`; only this file is in git).

Importing this package from a source tree whose kernels were never built raises an ImportError
that says how to build them: fastnn has no pure-Python fallback.
"""
import importlib.machinery as _machinery
import os as _os

_HERE = _os.path.dirname(__file__)
MODULES = ("_buildinfo", "_blas", "_activations", "_dense", "_losses", "_optimizers", "_dropout", "_conv")


def _is_built(name):
    return any(_os.path.exists(_os.path.join(_HERE, name + suffix))
               for suffix in _machinery.EXTENSION_SUFFIXES)


_missing = [name for name in MODULES if not _is_built(name)]
if _missing:
    raise ImportError(
        "fastnn's compiled kernels are not built in " + _HERE + " (missing: " + ", ".join(_missing)
        + "). Build them from the repository root with `pip install -e .` (or "
        "`python setup.py build_ext --inplace`), or install fastnn with `pip install .` and run "
        "Python from outside the source tree. fastnn has no pure-Python fallback."
    )
