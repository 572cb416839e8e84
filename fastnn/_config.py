"""Process-wide defaults: the parameter dtype and the dropout mask source, and fastnn.init()."""
from __future__ import annotations

import numpy as np

_SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_DROPOUT_MODES = ("fast", "book")

_default_dtype = np.dtype(np.float32)
_dropout_mode = "fast"


def _as_float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """np.dtype for float32/float64 given anything np.dtype() accepts; TypeError otherwise."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from exc
    if resolved not in _SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {resolved}")
    return resolved


def init(random_seed: int | None = 0, dtype="float32", dropout_mode: str | None = None) -> None:
    """Seed NumPy's global RNG and set fastnn's defaults; the counterpart of ``nnfs.init()``.

    Unlike ``nnfs.init()`` this patches nothing in NumPy: fastnn passes dtypes explicitly.

    Parameters
    ----------
    random_seed : int or None
        Passed to ``np.random.seed``; None leaves the global RNG alone.
    dtype : "float32" (default) or "float64"
        dtype of parameters created afterwards (layers take a ``dtype=`` argument too).
    dropout_mode : "fast", "book" or None
        Default mask source of ``Layer_Dropout`` objects created afterwards (None: unchanged).
        "book" draws ``np.random.binomial`` exactly as the book; "fast" (the default) draws one
        seed from NumPy's global RNG per forward pass and generates the mask in the kernel.
    """
    global _default_dtype, _dropout_mode
    resolved = _as_float_dtype(dtype)
    if dropout_mode is not None:
        _dropout_mode = check_dropout_mode(dropout_mode)
    _default_dtype = resolved
    if random_seed is not None:
        np.random.seed(random_seed)


def check_dropout_mode(mode) -> str:
    if mode not in _DROPOUT_MODES:
        raise ValueError(f"dropout mode must be 'fast' or 'book', got {mode!r}")
    return mode


def default_dtype() -> np.dtype:
    """The dtype new parameters get (float32 unless fastnn.init(dtype=...) changed it)."""
    return _default_dtype


def dropout_mode() -> str:
    """The mask source new Layer_Dropout objects get ("fast" unless changed by fastnn.init)."""
    return _dropout_mode


def resolve_dtype(dtype) -> np.dtype:
    """The given dtype, or the default when None."""
    return _default_dtype if dtype is None else _as_float_dtype(dtype)
