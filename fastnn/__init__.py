"""fastnn: the classes of "Neural Networks from Scratch in Python", with compiled kernels.

A script written for the book runs after changing only its imports::

    from fastnn import *            # instead of the book's class definitions
    from fastnn.datasets import spiral_data

``fastnn.reference`` holds the same classes in plain NumPy (the book's math, the test oracle).
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import _ext  # raises ImportError with build instructions when the kernels are not built
from . import _gemm

_gemm.install_backend()

from ._config import default_dtype, init  # noqa: E402
from ._show_config import show_config  # noqa: E402

__all__ = ["init", "show_config", "default_dtype", "__version__"]
