"""The book's final (Chapter 22) classes in plain NumPy: the oracle fastnn's kernels are tested against.

Same names, constructor arguments, defaults, attributes, quirks and printed log as the classes of
"Neural Networks from Scratch in Python" (docs/compatibility.md states the contract); every formula is
one plain NumPy expression. Code from any chapter runs: every ``forward`` takes ``training=True`` by
default, ``Loss.regularization_loss(layer)`` works as in Ch14-17, and the combined softmax/CCE class
keeps its Ch9-17 ``__init__``/``forward``.

The results do not depend on whether ``nnfs.init()`` patched NumPy: the classes never call
``np.dot``, ``np.random.randn`` or a dtype-less ``np.zeros``/``np.eye``. Parameters are float32 by
default (``Layer_Dense(..., dtype=...)`` or ``fastnn.init(dtype=...)``); products are computed with
``np.matmul`` in the parameter dtype (the book's patched ``np.dot`` computes in float64 and rounds to
float32, so the last float32 bit can differ). Weights are drawn from NumPy's global RNG with the same
calls, in the same order, as the book, so a seeded run starts from the book's weights.

Deliberate deviations from the book (each pinned by a test in ``tests/test_reference_*.py``):

- MAE gradient sign fixed: ``dinputs = -sign(y - p) / outputs / samples`` (the book's sign climbs the loss).
- A one-layer Model works: the last layer's ``next`` is the loss (the book raises IndexError).
- A Model whose last layer has no ``predictions`` (e.g. it ends in a Layer_Dense) uses the raw outputs.
- ``Model.finalize``/``predict``/``save`` work without a loss (inference-only models); ``train``/``evaluate``
  raise ValueError naming the missing ``set(loss=..., optimizer=..., accuracy=...)`` argument.
- ``Loss.calculate``/``Accuracy.calculate`` before any ``new_pass()`` start the accumulators at zero.
- Categorical cross-entropy labels of rank other than 1 or 2 raise ValueError (the book: UnboundLocalError).
- Beyond the book, ``Layer_Conv2D``, ``Layer_MaxPool2D``, ``Layer_Flatten`` and ``Layer_GlobalAveragePool2D``
  (``fastnn.reference.conv``), ``Layer_BatchNorm``, ``Activation_Tanh``, ``Activation_LeakyReLU`` and
  ``Activation_GELU`` are exported too, and ``Model.train`` takes ``shuffle=``: ``from fastnn.reference import *`` brings the same
  classes as ``from fastnn import *``, so a CNN script switches to the reference by its import.
- Beyond the book too: the training tools (``Callback``, ``Callback_EarlyStopping``, ``Callback_ModelCheckpoint``,
  the ``Schedule_*`` learning-rate schedules, ``Augmentation_CropFlip``), ``Model.train``'s keyword-only
  ``callbacks``, ``validation_split`` and ``augment`` (left out, the book's loop runs unchanged),
  ``Model.summary``, ``Model.predict_classes`` and ``fastnn.reference.metrics``.
- Float labels are converted to the prediction dtype, Dense converts its inputs and incoming gradients
  to the parameter dtype and Dropout casts back to the input dtype (the book under ``nnfs.init()`` lets
  float64 labels, dropout masks and bias gradients leak float64 into the float32 network).
"""
from __future__ import annotations

from .._shadowed import refuse_namespace_parent

refuse_namespace_parent()  # a clear error when a clone of the repository hides the package

from .accuracy import Accuracy, Accuracy_Categorical, Accuracy_Regression
from .activations import Activation_Linear, Activation_ReLU, Activation_Sigmoid, Activation_Softmax
from .activations import Activation_GELU, Activation_LeakyReLU, Activation_Tanh  # beyond the book
from .conv import Layer_Conv2D, Layer_Flatten, Layer_GlobalAveragePool2D, Layer_MaxPool2D  # beyond the book
from .augment import Augmentation_CropFlip  # beyond the book, as the callbacks and schedules
from .callbacks import (Callback, Callback_EarlyStopping, Callback_ModelCheckpoint, Schedule_Cosine,
                        Schedule_Exponential, Schedule_ReduceOnPlateau, Schedule_Step)
from .layers import Layer_Dense, Layer_Dropout, Layer_Input
from .normalization import Layer_BatchNorm  # beyond the book
from .losses import (
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Loss,
    Loss_BinaryCrossentropy,
    Loss_CategoricalCrossentropy,
    Loss_MeanAbsoluteError,
    Loss_MeanSquaredError,
)
from . import metrics  # noqa: E402  (beyond the book)
from .model import Model
from .optimizers import Optimizer_Adagrad, Optimizer_Adam, Optimizer_RMSprop, Optimizer_SGD

__all__ = [
    "Layer_Dense",
    "Layer_Dropout",
    "Layer_Input",
    "Activation_ReLU",
    "Activation_Softmax",
    "Activation_Sigmoid",
    "Activation_Linear",
    "Loss",
    "Loss_CategoricalCrossentropy",
    "Loss_BinaryCrossentropy",
    "Loss_MeanSquaredError",
    "Loss_MeanAbsoluteError",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD",
    "Optimizer_Adagrad",
    "Optimizer_RMSprop",
    "Optimizer_Adam",
    "Accuracy",
    "Accuracy_Categorical",
    "Accuracy_Regression",
    "Model",
    # beyond the book, as in fastnn's exports
    "Activation_Tanh",
    "Activation_LeakyReLU",
    "Activation_GELU",
    "Layer_Conv2D",
    "Layer_MaxPool2D",
    "Layer_Flatten",
    "Layer_GlobalAveragePool2D",
    "Layer_BatchNorm",
    "Augmentation_CropFlip",
    "Callback",
    "Callback_EarlyStopping",
    "Callback_ModelCheckpoint",
    "Schedule_Step",
    "Schedule_Exponential",
    "Schedule_Cosine",
    "Schedule_ReduceOnPlateau",
]
