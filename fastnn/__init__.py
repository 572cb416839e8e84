"""fastnn: the classes of "Neural Networks from Scratch in Python", with compiled kernels.

A script written for the book runs after changing only its imports::

    from fastnn import *            # instead of the book's class definitions
    from fastnn.datasets import spiral_data

``fastnn.reference`` holds the same classes in plain NumPy (the book's math, the test oracle).
Arrays that layers hand back (``output``, ``dinputs``, ``dweights``...) are buffers reused while
the shape stays the same: valid until that object's next call, like NumPy's ``out=``.
"""
from __future__ import annotations

from ._version import __version__

try:
    from . import _ext  # ImportError with build instructions when the kernels are not built
except ImportError as _build_error:
    if type(_build_error).__name__ != "NotBuiltError":
        raise  # a broken build or a bad FASTNN_KERNELS: say so at import
    # A source tree whose kernels were never built: fastnn.reference (the NumPy oracle) and
    # fastnn.datasets still import; every compiled name raises the build instructions.
    _BUILD_ERROR = _build_error

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(str(_BUILD_ERROR)) from None

    __all__ = ["Model"]  # `from fastnn import *` reaches __getattr__ and raises the instructions
else:
    from ._public import *  # noqa: F401,F403
    from ._public import __all__ as _public_names

    __all__ = [*_public_names, "__version__"]
