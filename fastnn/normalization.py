"""Layer_BatchNorm: batch normalisation with PyTorch's semantics (``BatchNorm1d``/``BatchNorm2d``),
in the book's protocol. Beyond the book.

The arithmetic runs in compiled kernels (src_pyx/_batchnorm.pyx), in double precision whatever
the data's dtype, each pass over the data in memory order; output buffers are reused while the
shape stays the same, as every layer's.
"""
from __future__ import annotations

import numpy as np

from ._core import arrays as _arrays, config as _config, messages as _messages
from ._core.checks import check_fits, describe, fail
from ._core.constraints import POSITIVE, SIZE, Real
from ._core.spec import declare
from ._ext import _batchnorm

_MOMENTUM = Real(0.0, 1.0)
_SETTINGS = {"momentum": _MOMENTUM, "epsilon": POSITIVE}

_WHICH = {_batchnorm.BAD_WEIGHTS: "weights", _batchnorm.BAD_BIASES: "biases",
          _batchnorm.BAD_STATISTICS: "running_mean and running_var", _batchnorm.BAD_SETTING: "momentum and epsilon"}


def _error(status: int, where: str, state: dict, inputs=None) -> Exception:
    """The error behind a _batchnorm status other than OK and CONVERT."""
    if status == _batchnorm.NO_FORWARD:
        return _messages.missing_forward("Layer_BatchNorm", "inputs")
    if status == _batchnorm.ONE_VALUE:
        return fail(where, "inputs", "more than one value per feature to train on (the batch's variance normalises "
                    "them; use batches of 2 or more, or forward(..., training=False))",
                    f"shape {np.shape(inputs)}")
    shape = getattr(state.get("weights"), "shape", None)
    n = shape[0] if shape else "n_features"
    return ValueError(f"Layer_BatchNorm parameters are inconsistent ({_WHICH[status]}): expected weights, biases, "
                      f"running_mean and running_var as C-contiguous float32 or float64 arrays of one dtype and "
                      f"shape ({n},) (the running statistics writeable), momentum in [0, 1] and epsilon > 0; got "
                      f"weights {describe(state.get('weights'))}, biases {describe(state.get('biases'))}, "
                      f"running_mean {describe(state.get('running_mean'))}, running_var "
                      f"{describe(state.get('running_var'))}, momentum {state.get('momentum')!r} and epsilon "
                      f"{state.get('epsilon')!r}. Use set_parameters() to replace weights and biases.")


def _features(layer) -> int:
    return layer.weights.shape[0]


@declare("layer",
         params={"n_features": SIZE, **_SETTINGS},
         saved=_SETTINGS,
         dims={"n_features": _features},
         parameters=lambda a, d: {"weights": (d["n_features"],), "biases": (d["n_features"],)},
         buffers=lambda a, d: {"running_mean": (d["n_features"],), "running_var": (d["n_features"],)},
         features=lambda a, d: (d["n_features"], d["n_features"]))
class Layer_BatchNorm:
    """Batch normalisation of (N, F) features or (N, C, H, W) channels (any (N, F, ...) input: each
    feature over its N * (the product of the further axes) values), as PyTorch's BatchNorm1d and
    BatchNorm2d.

    ``output = weights * (inputs - mean) / sqrt(var + epsilon) + biases`` per feature, where in
    training (``forward(inputs)``, the book's default) mean and var are the batch's (the biased
    variance) and the running statistics move towards them, ``running = (1 - momentum) * running +
    momentum * batch`` (the unbiased variance for ``running_var``); with ``training=False`` they
    are ``running_mean`` and ``running_var``. backward gives the gradient of whichever statistics
    the last forward used: through the batch's mean and variance after a training forward, as an
    affine map after an inference one.

    Parameters
    ----------
    n_features : int
        F: the size of axis 1 of the inputs (features of (N, F) data, channels of NCHW data).
    momentum : float in [0, 1]
        How far each training batch moves the running statistics (PyTorch's default 0.1).
    epsilon : float > 0
        Added to the variance before the square root (PyTorch's ``eps``).
    dtype : float32 or float64, optional (keyword only)
        The dtype of the four arrays below; default ``fastnn.default_dtype()``. Inputs of another
        dtype are converted once per call; the statistics are computed in float64 regardless.

    ``weights`` (the scale, gamma) start at ones and ``biases`` (the shift, beta) at zeros, both of
    shape (F,), PyTorch's ``weight`` and ``bias``: they are the layer's trainable parameters, so
    ``Model``, every optimizer and ``Loss.regularization_loss`` (no penalty: the layer has no
    regularizer) treat it as any trainable layer. ``running_mean`` (zeros) and ``running_var``
    (ones), also (F,), are state a model file saves (``Model.save``; the parameters file of
    ``save_parameters`` holds weights and biases only, as the book's). A training forward needs
    more than one value per feature (a batch of one (N, F) sample has no variance; PyTorch refuses
    it too).
    """

    def __init__(self, n_features: int, momentum: float = 0.1, epsilon: float = 1e-5, *, dtype=None) -> None:
        n_features, self.momentum, self.epsilon = Layer_BatchNorm._spec.check(locals())
        dtype = _config.resolve_dtype(dtype)
        check_fits(4 * n_features, np.dtype(dtype).itemsize, "n_features", "Layer_BatchNorm",
                   f"its four ({n_features},) arrays")
        self.weights = np.ones(n_features, dtype=dtype)
        self.biases = np.zeros(n_features, dtype=dtype)
        self.running_mean = np.zeros(n_features, dtype=dtype)
        self.running_var = np.ones(n_features, dtype=dtype)

    def __repr__(self) -> str:
        shape = getattr(self.weights, "shape", None)
        return (f"Layer_BatchNorm({shape[0] if shape else '?'}, momentum={self.momentum!r}, epsilon={self.epsilon!r}, "
                f"dtype={getattr(self.weights, 'dtype', '?')})")

    def forward(self, inputs, training: bool = True) -> None:
        """inputs (N, F, ...) -> self.output (the same shape); batch statistics in training, the
        running ones otherwise."""
        status = _batchnorm.forward(self.__dict__, inputs, training)
        if status:
            where = "Layer_BatchNorm.forward"
            if status == _batchnorm.CONVERT:
                inputs = _arrays.features_input(inputs, "inputs", self.weights.dtype, self.weights.shape[0], where)
                status = _batchnorm.forward(self.__dict__, inputs, training)
            if status:
                raise _error(status, where, self.__dict__, inputs)

    def backward(self, dvalues) -> None:
        """dvalues (the output's shape) -> self.dweights, self.dbiases (F,) and self.dinputs (the
        inputs' shape)."""
        status = _batchnorm.backward(self.__dict__, dvalues)
        if status:
            if status == _batchnorm.CONVERT:
                dvalues = _arrays.gradient_input(dvalues, "dvalues", self.output, "Layer_BatchNorm.backward")
                status = _batchnorm.backward(self.__dict__, dvalues)
            if status:
                raise _error(status, "Layer_BatchNorm.backward", self.__dict__)

    def get_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, biases): the live arrays, as the book's layers."""
        return self.weights, self.biases

    def set_parameters(self, weights, biases) -> None:
        """Replace weights and biases, each (F,) (a (1, F) row is accepted and flattened). Arrays
        already in the layer's form are kept as given (no copy); others are converted once. The
        running statistics are left as they are."""
        self.weights, self.biases = self._checked_parameters(weights, biases)

    def _checked_parameters(self, weights, biases) -> tuple[np.ndarray, np.ndarray]:
        """set_parameters' arguments, converted or refused, without changing the layer."""
        where = "Layer_BatchNorm.set_parameters"
        dtype = self.running_mean.dtype
        n = self.running_mean.shape[0]
        checked = []
        for name, value in (("weights", weights), ("biases", biases)):
            array = _arrays.as_float_array(value, name, dtype, where)
            if array.shape == (1, n):
                array = array.reshape(n)
            if array.shape != (n,):
                raise fail(where, name, f"of shape ({n},) (n_features)", f"shape {array.shape}")
            checked.append(array)
        return checked[0], checked[1]
