"""The public names of the built package (``fastnn/__init__`` imports them when the kernels are
built)."""
from __future__ import annotations

from .backend import blas

blas.install_backend()
blas.install_thread_functions()

from ._core.config import default_dtype, dropout_mode, init
from .backend.build_info import show_config
from .accuracy import Accuracy, Accuracy_Categorical, Accuracy_Regression
from .activations import Activation_Linear, Activation_ReLU, Activation_Sigmoid, Activation_Softmax
from .layers import Layer_Dense, Layer_Dropout, Layer_Input
from .conv import Layer_Conv2D, Layer_Flatten, Layer_MaxPool2D
from .losses import (
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Loss,
    Loss_BinaryCrossentropy,
    Loss_CategoricalCrossentropy,
    Loss_MeanAbsoluteError,
    Loss_MeanSquaredError,
)
from .optimizers import Optimizer_Adagrad, Optimizer_Adam, Optimizer_RMSprop, Optimizer_SGD
from .model import Model
from .history import History

__all__ = [
    "Layer_Dense", "Layer_Dropout", "Layer_Input", "Layer_Conv2D", "Layer_MaxPool2D", "Layer_Flatten",
    "Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear",
    "Loss", "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy", "Loss_MeanSquaredError",
    "Loss_MeanAbsoluteError", "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Accuracy_Regression", "Model", "History",
    "init", "show_config", "default_dtype", "dropout_mode",
]
