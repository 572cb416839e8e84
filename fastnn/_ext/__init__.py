"""Compiled kernels (built from src_pyx/ by `pip install .`; only this file is in git).

Importing this package from a source tree whose kernels were never built raises an ImportError
that says how to build them: fastnn has no pure-Python fallback.

Runtime dispatch: the elementwise kernel modules (DISPATCHED) are also built with AVX2 on x86-64
(`<name>_avx2`). When the CPU supports AVX2 the variant takes the module's name here, so
`from fastnn._ext import _activations` gives the fastest build this machine can run; results are
bit-identical either way. FASTNN_KERNELS=baseline forces the portable build, FASTNN_KERNELS=avx2
requires the AVX2 one.
"""
import importlib as _importlib
import importlib.machinery as _machinery
import os as _os
import sys as _sys

_HERE = _os.path.dirname(__file__)
MODULES = ("_buildinfo", "_blas", "_activations", "_dense", "_losses", "_accuracy", "_fused_head", "_fused_mlp", "_fused_deep",
           "_optimizers", "_dropout", "_threads", "_conv", "_pool", "_augment", "_batchnorm")
DISPATCHED = ("_activations", "_dense", "_losses", "_accuracy", "_fused_head", "_fused_mlp", "_fused_deep", "_optimizers",
              "_dropout", "_batchnorm")


def _is_built(name):
    return any(_os.path.exists(_os.path.join(_HERE, name + suffix))
               for suffix in _machinery.EXTENSION_SUFFIXES)


_missing = [name for name in MODULES if not _is_built(name)]
class NotBuiltError(ImportError):
    """The kernels of this source tree were never built (``fastnn/__init__`` tells this apart from
    a broken build: only this one leaves ``fastnn.reference`` and ``fastnn.datasets`` usable)."""


if _missing:
    raise NotBuiltError(
        "fastnn's compiled kernels are not built in " + _HERE + " (missing: " + ", ".join(_missing)
        + "). Build them from the repository root with `pip install -e .` (or "
        "`python setup.py build_ext --inplace`), or install fastnn with `pip install .` and run "
        "Python from outside the source tree. fastnn has no pure-Python fallback."
    )


from . import _buildinfo  # noqa: E402  (built: checked above)


def _choose_kernels():
    wanted = _os.environ.get("FASTNN_KERNELS", "auto").strip().lower() or "auto"
    if wanted not in ("auto", "baseline", "avx2"):
        raise ImportError(f"FASTNN_KERNELS must be 'auto', 'baseline' or 'avx2', got {wanted!r}")
    available = all(_is_built(name + "_avx2") for name in DISPATCHED) and _buildinfo.cpu_has_avx2()
    if wanted == "avx2" and not available:
        raise ImportError("FASTNN_KERNELS=avx2, but " + ("this CPU has no AVX2" if not _buildinfo.cpu_has_avx2()
                          else "the AVX2 kernels were not built (x86-64 with GCC or clang only)"))
    return "avx2" if available and wanted != "baseline" else "baseline"


KERNELS = _choose_kernels()
# The baseline modules stay reachable (tests compare both builds).
BASELINE = {name: _importlib.import_module(f"{__name__}.{name}") for name in DISPATCHED}
if KERNELS == "avx2":
    for _name in DISPATCHED:
        _module = _importlib.import_module(f"{__name__}.{_name}_avx2")
        _sys.modules[f"{__name__}.{_name}"] = _module
        globals()[_name] = _module
