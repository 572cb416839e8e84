"""The public names of the built package (``fastnn/__init__`` imports them when the kernels are
built). The classes are every declared class (``fastnn._core.spec``), in declaration order:
importing the class modules declares them, and the exports follow."""
from __future__ import annotations

from .backend import blas

blas.install_backend()
blas.install_thread_functions()

# Importing the class modules declares the classes.
from . import accuracy, activations, augment, callbacks, conv, layers, losses, model, normalization  # noqa: E402,F401
from . import optimizers  # noqa: E402,F401
from . import metrics, schedules  # noqa: E402,F401
from ._core.config import default_dtype, dropout_mode, init  # noqa: E402
from ._core.spec import declared  # noqa: E402
from .backend.build_info import show_config  # noqa: E402
from .history import History  # noqa: E402

globals().update({spec.name: spec.cls for spec in declared()})

__all__ = [*(spec.name for spec in declared()), "History", "init", "show_config", "default_dtype", "dropout_mode"]
