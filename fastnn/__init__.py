"""fastnn: the classes of "Neural Networks from Scratch in Python", with compiled kernels.

A script written for the book runs after changing only its imports::

    from fastnn import *            # instead of the book's class definitions
    from fastnn.datasets import spiral_data

``fastnn.reference`` holds the same classes in plain NumPy (the book's math, the test oracle).
Arrays that layers hand back (``output``, ``dinputs``, ``dweights``...) are buffers reused while
the shape stays the same: valid until that object's next call, like NumPy's ``out=``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import _ext  # raises ImportError with build instructions when the kernels are not built
from . import _gemm

_gemm.install_backend()

from ._config import default_dtype, dropout_mode, init  # noqa: E402
from ._show_config import show_config  # noqa: E402
from .accuracy import Accuracy, Accuracy_Categorical, Accuracy_Regression  # noqa: E402
from .activations import Activation_Linear, Activation_ReLU, Activation_Sigmoid, Activation_Softmax  # noqa: E402
from .layers import Layer_Dense, Layer_Dropout, Layer_Input  # noqa: E402
from .conv import Layer_Conv2D, Layer_Flatten, Layer_MaxPool2D  # noqa: E402
from .losses import (  # noqa: E402
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Loss,
    Loss_BinaryCrossentropy,
    Loss_CategoricalCrossentropy,
    Loss_MeanAbsoluteError,
    Loss_MeanSquaredError,
)
from .optimizers import Optimizer_Adagrad, Optimizer_Adam, Optimizer_RMSprop, Optimizer_SGD  # noqa: E402
from .model import Model  # noqa: E402
from .history import History  # noqa: E402

__all__ = [
    "Layer_Dense", "Layer_Dropout", "Layer_Input", "Layer_Conv2D", "Layer_MaxPool2D", "Layer_Flatten",
    "Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear",
    "Loss", "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy", "Loss_MeanSquaredError",
    "Loss_MeanAbsoluteError", "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Accuracy_Regression", "Model", "History",
    "init", "show_config", "default_dtype", "dropout_mode", "__version__",
]
