"""Activations with the book's names and protocol: ReLU, Softmax, Sigmoid and Linear; Tanh, LeakyReLU
and GELU beyond the book.

Each forward and backward is one compiled call (src_pyx/_activations.pyx) writing into a buffer
the object reuses while the shape stays the same. ``predictions(outputs)`` turns the last layer's
output into what accuracy compares (Ch18+).
"""
from __future__ import annotations

import numpy as np

from ._core import arrays as _arrays, messages as _messages
from ._core.constraints import Choice, Real
from ._core.spec import declare
from ._core.describe import constructor_repr
from ._ext import _activations


class _Activation:
    """Shared forward/backward plumbing; subclasses set _KIND and the book's predictions()."""

    _KIND = -1
    _NDIM: int | None = None  # required number of dimensions (Softmax: 2)
    _SAVED = "inputs"       # what backward reads: the forward's inputs or its output

    __repr__ = constructor_repr

    def forward(self, inputs, training: bool = True) -> None:
        """inputs -> self.output (same shape). `training` is accepted and ignored."""
        if not _activations.forward(self._KIND, self.__dict__, inputs):
            inputs = _arrays.float_input(inputs, "inputs", f"{type(self).__name__}.forward", ndim=self._NDIM)
            _activations.forward(self._KIND, self.__dict__, inputs)

    def backward(self, dvalues) -> None:
        """dvalues (the forward's shape) -> self.dinputs."""
        if not _activations.backward(self._KIND, self.__dict__, dvalues):
            saved = self.__dict__.get(self._SAVED)
            if saved is None:
                raise _messages.missing_forward(type(self).__name__, self._SAVED)
            dvalues = _arrays.gradient_input(dvalues, "dvalues", np.asarray(saved),
                                                 f"{type(self).__name__}.backward")
            _activations.backward(self._KIND, self.__dict__, dvalues)


@declare("layer", keeps_features=True, fused="relu")
class Activation_ReLU(_Activation):
    """output = max(0, inputs); the gradient is 0 where inputs <= 0."""

    _KIND = _activations.RELU

    def predictions(self, outputs):
        """The outputs unchanged (book Ch18)."""
        return outputs


@declare("layer", keeps_features=True, fused="softmax")
class Activation_Softmax(_Activation):
    """Row-wise softmax of (n_samples, n_classes) inputs (row max subtracted for stability).

    backward applies each row's Jacobian ``diag(s) - s s^T`` in O(n_classes) per row; the Model
    skips it for softmax + categorical cross-entropy, using the combined gradient instead."""

    _KIND = _activations.SOFTMAX
    _NDIM = 2
    _SAVED = "output"

    def predictions(self, outputs):
        """Class ids: argmax over axis 1, shape (n_samples,)."""
        return np.argmax(outputs, axis=1)


@declare("layer", keeps_features=True)
class Activation_Sigmoid(_Activation):
    """output = 1 / (1 + exp(-inputs)), computed without overflow warnings."""

    _KIND = _activations.SIGMOID
    _SAVED = "output"

    def predictions(self, outputs):
        """0/1 ints: (outputs > 0.5) * 1, same shape as outputs."""
        return (outputs > 0.5) * 1


@declare("layer", keeps_features=True, fused="linear")
class Activation_Linear:
    """The identity: ``output`` is the very input object (as the book); backward copies dvalues."""

    def forward(self, inputs, training: bool = True) -> None:
        """inputs -> self.output, the same object when it is already a float array."""
        if not isinstance(inputs, np.ndarray) or inputs.dtype not in (np.float32, np.float64):
            inputs = _arrays.float_input(inputs, "inputs", "Activation_Linear.forward")
        self.inputs = inputs
        self.output = inputs

    def backward(self, dvalues) -> None:
        """self.dinputs = a copy of dvalues (the forward's shape)."""
        if not _activations.backward(_activations.LINEAR, self.__dict__, dvalues):
            saved = self.__dict__.get("inputs")
            if saved is None:
                raise _messages.missing_forward("Activation_Linear", "inputs")
            dvalues = _arrays.gradient_input(dvalues, "dvalues", saved, "Activation_Linear.backward")
            # The forward kept the caller's (possibly non-contiguous) array, as the book; the
            # kernel reads a contiguous one.
            self.inputs = _arrays.contiguous(saved, saved.dtype.type)
            _activations.backward(_activations.LINEAR, self.__dict__, dvalues)

    def predictions(self, outputs):
        """The outputs unchanged."""
        return outputs


@declare("layer", keeps_features=True)
class Activation_Tanh(_Activation):
    """output = tanh(inputs), any shape; backward: dvalues * (1 - output**2). Beyond the book."""

    _KIND = _activations.TANH
    _SAVED = "output"

    def predictions(self, outputs):
        """The outputs unchanged."""
        return outputs


_SLOPE = Real(0.0, 1.0)


@declare("layer", params={"alpha": _SLOPE}, saved={"alpha": _SLOPE}, keeps_features=True)
class Activation_LeakyReLU(_Activation):
    """output = inputs where inputs > 0, else alpha * inputs (any shape; PyTorch's ``leaky_relu``).
    backward: dvalues where inputs > 0, else alpha * dvalues (so alpha * dvalues at exactly 0).
    alpha is rounded to the data's dtype. Beyond the book.

    Parameters
    ----------
    alpha : float in [0, 1]
        The slope for negative inputs (PyTorch's ``negative_slope``); 0 is ReLU with PyTorch's
        rule at 0, 1 the identity.
    """

    _KIND = _activations.LEAKY_RELU

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha, = Activation_LeakyReLU._spec.check(locals())

    def predictions(self, outputs):
        """The outputs unchanged."""
        return outputs


_APPROXIMATE = Choice("none", "tanh")
_GELU_KINDS = {"none": _activations.GELU, "tanh": _activations.GELU_TANH}


@declare("layer", params={"approximate": _APPROXIMATE}, saved={"approximate": _APPROXIMATE}, keeps_features=True)
class Activation_GELU(_Activation):
    """The Gaussian error linear unit, any shape, with PyTorch's formulas for the output and the
    gradient (``torch.nn.functional.gelu``). Beyond the book.

    approximate="none": ``output = inputs * Phi(inputs)``, Phi the standard normal CDF
    ``0.5 * (1 + erf(x / sqrt(2)))``; the gradient is ``Phi(x) + x * phi(x)``, phi the normal density.
    approximate="tanh": ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))`` and its
    exact derivative. Both are computed in the data's dtype; backward reads the forward's inputs.
    """

    _SAVED = "inputs"

    def __init__(self, approximate: str = "none") -> None:
        self.approximate, = Activation_GELU._spec.check(locals())

    # (the other activations' class constant, chosen per object here)
    @property
    def _KIND(self) -> int:  # type: ignore[override]
        kind = _GELU_KINDS.get(self.__dict__.get("approximate", ""))
        if kind is None:
            raise ValueError(f"Activation_GELU: approximate must be 'none' or 'tanh', got "
                             f"{self.__dict__.get('approximate')!r} (changed after construction)")
        return kind

    def predictions(self, outputs):
        """The outputs unchanged."""
        return outputs
