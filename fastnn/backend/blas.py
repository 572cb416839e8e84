"""GEMM: where fastnn finds its BLAS, and the Python entry point to it.

fastnn never implements GEMM. Its kernels call BLAS from C (``src_pyx/_blas.pyx``) so that a whole
dense layer is one call without the GIL, and the BLAS they call is **NumPy's own**: one OpenBLAS
thread pool in the process, and products bit-identical to ``np.matmul`` on the same shapes and
thread count: an output with at least two rows and two columns (or an inner dimension of 1) goes
to gemm, as NumPy sends it; one with a single row or column goes to gemv, as NumPy's dot and
matmul send it (when the library exports gemv; tests/test_kernels.py checks the bits). A 1x1
output with an inner dimension above 1 is a gemv here and a dot product in NumPy, whose summation
order may differ in the last bits. This module finds NumPy's sgemm/dgemm (and sgemv/dgemv) once,
at import, and installs their addresses.

Lookup order:
1. the CBLAS symbols of the library NumPy's core extension links against. PyPI wheels bundle
   scipy-openblas64 (``scipy_cblas_sgemm64_``, 64-bit integers); other builds export
   ``cblas_sgemm64_`` or plain ``cblas_sgemm`` (32-bit integers);
2. ``scipy.linalg.cython_blas`` (Fortran interface) when SciPy is installed, as a fallback for
   NumPy builds that hide their BLAS symbols. That is a second BLAS in the process, so
   ``show_config()`` says so.
"""
from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np

from .._ext import _blas, _threads

# (symbol for float32, symbol for float64, calling convention), most specific first. The gemv
# symbols are the same names with gemv for gemm.
_CBLAS_CANDIDATES = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", "CBLAS64"),
    ("cblas_sgemm64_", "cblas_dgemm64_", "CBLAS64"),
    ("cblas_sgemm64", "cblas_dgemm64", "CBLAS64"),
    ("scipy_cblas_sgemm", "scipy_cblas_dgemm", "CBLAS32"),
    ("cblas_sgemm", "cblas_dgemm", "CBLAS32"),
)


def _addresses(lib, *names):
    """The addresses of the named symbols of a loaded library (all None when one is missing)."""
    try:
        return tuple(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in names)
    except AttributeError:
        return (None,) * len(names)


def _numpy_libraries():
    """Shared objects that may hold NumPy's BLAS: its core extension (dlsym on it also searches the
    libraries it links against), then the libraries bundled next to the package (numpy.libs,
    numpy/.dylibs) for platforms where dlsym does not follow dependencies."""
    from numpy._core import _multiarray_umath

    yield _multiarray_umath.__file__
    root = os.path.dirname(os.path.dirname(np.__file__))
    patterns = [
        os.path.join(root, "numpy.libs", "*"),
        os.path.join(os.path.dirname(np.__file__), ".dylibs", "*"),
    ]
    for pattern in patterns:
        yield from sorted(glob.glob(pattern))


def _find_numpy_cblas():
    for path in _numpy_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for s_name, d_name, kind in _CBLAS_CANDIDATES:
            s, d = _addresses(lib, s_name, d_name)
            if s and d:
                sv, dv = _addresses(lib, s_name.replace("gemm", "gemv"), d_name.replace("gemm", "gemv"))
                return kind, s, d, f"NumPy's BLAS ({s_name} from {os.path.basename(path)})", sv or 0, dv or 0
    return None


def _find_scipy_blas():
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    capi = cython_blas.__pyx_capi__
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    addresses = []
    for name in ("sgemm", "dgemm"):
        capsule = capi[name]
        ctypes.pythonapi.PyCapsule_GetName.restype = ctypes.c_char_p
        ctypes.pythonapi.PyCapsule_GetName.argtypes = [ctypes.py_object]
        addresses.append(get(capsule, ctypes.pythonapi.PyCapsule_GetName(capsule)))
    return "FORTRAN", addresses[0], addresses[1], "scipy.linalg.cython_blas (a second BLAS next to NumPy's)", 0, 0


def install_backend() -> tuple[str, str]:
    """Find a BLAS and install it into the kernels; returns (kind, description)."""
    found = _find_numpy_cblas() or _find_scipy_blas()
    if found is None:
        raise ImportError(
            "fastnn could not find a BLAS: NumPy's core library exports no CBLAS sgemm/dgemm "
            "symbol and SciPy is not installed. Install SciPy (pip install scipy) or a NumPy "
            "wheel from PyPI."
        )
    kind, s_address, d_address, description, sv_address, dv_address = found
    if not (sv_address and dv_address):
        sv_address = dv_address = 0
    _blas.set_backend(kind, s_address, d_address, description, sv_address, dv_address)
    return kind, description


def backend() -> tuple[str, str] | None:
    """(calling convention, description) of the BLAS the kernels use."""
    return _blas.backend()


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray, *, trans_a: bool = False,
         trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``out = alpha * op(a) @ op(b) + beta * out`` through the kernels' BLAS.

    a, b, out: C-contiguous 2-D arrays of one dtype (float32 or float64); ``op(a)`` is (m, k),
    ``op(b)`` is (k, n), ``out`` is (m, n). Transposes are flags, never copies. Returns ``out``.
    """
    return _blas.gemm_into(a, b, out, trans_a, trans_b, alpha, beta)


# OpenBLAS's thread-count functions, for each symbol naming of NumPy's bundled library (as in
# the GEMM lookup above): (set_num_threads(int), get_num_threads()).
_OPENBLAS_THREAD_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def install_thread_functions() -> bool:
    """Hand the kernels OpenBLAS's set/get_num_threads when the GEMM comes from NumPy's
    OpenBLAS, so the loop over samples can run on OpenMP threads with BLAS pinned to one thread.
    Any other BLAS: nothing is installed and the loop stays serial (BLAS threads the GEMMs)."""
    installed = backend()
    if installed is None or installed[0] not in ("CBLAS64", "CBLAS32"):  # scipy's cython_blas fallback: leave its threads alone
        return False
    for path in _numpy_libraries():  # the libraries the lookup found the GEMM in, same order
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _OPENBLAS_THREAD_SYMBOLS:
            set_address, get_address = _addresses(lib, set_name, get_name)
            if set_address and get_address:
                _threads.set_blas_thread_functions(set_address, get_address)
                _threads.set_shared_team(_install_blas_jobs(lib))
                return True
    return False


# OpenBLAS's caller-managed threading (OpenBLAS >= 0.3.27), per symbol naming as above.
_OPENBLAS_CALLBACK_SYMBOLS = (
    "scipy_openblas_set_threads_callback_function64_",
    "scipy_openblas_set_threads_callback_function",
    "openblas_set_threads_callback_function64_",
    "openblas_set_threads_callback_function",
)


_callback_setter: Any = None   # OpenBLAS's set_threads_callback_function, once found


def set_shared_team(enabled: bool) -> bool:
    """Run OpenBLAS's threaded work on fastnn's OpenMP team (True, the default where it can be) or
    on OpenBLAS's own threads (False). Process-wide; the products are the same bits either way.
    Returns whether the shared team is now in use."""
    address = _threads.blas_jobs_address() if enabled else 0
    if _callback_setter is None or (enabled and not address):
        _threads.set_shared_team(False)
        return False
    _callback_setter(address)
    _threads.set_shared_team(bool(address))
    return bool(address)


def _install_blas_jobs(lib) -> bool:
    """Make OpenBLAS run its threaded work on fastnn's OpenMP team (docs/threads.md), so that one
    pool of threads serves every kernel: True when installed. FASTNN_BLAS_THREADS=openblas leaves
    OpenBLAS's own threads in charge (then the conv loop splits the batch only while BLAS is on
    one thread)."""
    global _callback_setter
    for name in _OPENBLAS_CALLBACK_SYMBOLS:
        function = getattr(lib, name, None)
        if function is not None:
            function.restype = None
            function.argtypes = [ctypes.c_void_p]
            _callback_setter = function
            break
    return set_shared_team(os.environ.get("FASTNN_BLAS_THREADS", "") != "openblas")
