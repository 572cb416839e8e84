"""Process-wide defaults: the parameter dtype and the dropout mask source, and fastnn.init(); and
where Layer_Dropout draws its random numbers.

Pure Python (no compiled kernel): fastnn.reference imports it and runs without the build.
"""
from __future__ import annotations

import numpy as np

from . import checks

DROPOUT_MODES = ("fast", "book")

_default_dtype = np.dtype(np.float32)
_dropout_mode = "fast"
_dropout_random = None  # None: NumPy's global RNG


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
    # Every argument is checked before anything changes; np.random.seed checks the seed.
    resolved = checks.float_dtype(dtype, "dtype", "fastnn.init")
    mode = _dropout_mode if dropout_mode is None else check_dropout_mode(dropout_mode, "fastnn.init")
    if random_seed is not None:
        if isinstance(random_seed, (bool, np.bool_)):
            raise TypeError(f"fastnn.init: random_seed must be None or an int in [0, 2**32), got {random_seed!r}")
        try:
            np.random.seed(random_seed)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"fastnn.init: random_seed must be None or an int in [0, 2**32) (or what "
                            f"np.random.seed accepts), got {checks.describe(random_seed)} ({exc})") from None
    _default_dtype = resolved
    _dropout_mode = mode


def check_dropout_mode(mode, where: str | None = None, name: str = "dropout_mode") -> str:
    return checks.choice(mode, name, DROPOUT_MODES, where)


def default_dtype() -> np.dtype:
    """The dtype new parameters get (float32 unless fastnn.init(dtype=...) changed it)."""
    return _default_dtype


def dropout_mode() -> str:
    """The mask source new Layer_Dropout objects get ("fast" unless changed by fastnn.init)."""
    return _dropout_mode


def resolve_dtype(dtype) -> np.dtype:
    """The given dtype, or the default when None."""
    return _default_dtype if dtype is None else checks.float_dtype(dtype)


def dropout_random():
    """What Layer_Dropout draws from: its mask (book mode) or its mask's seed (fast mode). NumPy's
    global RNG (the ``np.random`` module itself, so ``np.random.seed`` reproduces a run) unless
    fastnn.distributed gave this rank its own stream for the duration of a training call: every
    rank then draws different masks while the global RNG, which shuffles the samples, stays the
    same on every rank."""
    return np.random if _dropout_random is None else _dropout_random


def set_dropout_random(source) -> None:
    """Make Layer_Dropout draw from `source` (an np.random.RandomState), or again from NumPy's
    global RNG (None)."""
    global _dropout_random
    if source is not None and not isinstance(source, np.random.RandomState):
        raise TypeError(f"set_dropout_random: source must be an np.random.RandomState or None, got "
                        f"{checks.describe(source)}")
    _dropout_random = source
