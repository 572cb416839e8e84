"""Layers with the book's names and protocol: Layer_Dense, Layer_Dropout, Layer_Input.

``forward`` stores ``inputs``/``output`` on the object and returns None; ``backward`` stores
``dinputs`` (and ``dweights``/``dbiases``). The arithmetic runs in compiled kernels
(src_pyx/_dense.pyx, _dropout.pyx); output arrays are reused while their shape stays the same, so
``layer.output`` is valid until that layer's next forward (like NumPy's ``out=``).
"""
from __future__ import annotations

import math

import numpy as np

from ._core import config as _config, arrays as _arrays, messages as _messages
from ._core.constraints import NON_NEGATIVE, SIZE, UNIT, Choice, Real
from ._core.spec import declare
from ._ext import _dense, _dropout


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# The L1/L2 penalty coefficients of a trainable layer (Dense, Conv2D), as the book.
REGULARIZERS = {name: NON_NEGATIVE for name in (
    "weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1", "bias_regularizer_l2")}

# Initial weights, each one draw of np.random.standard_normal(shape) from NumPy's global RNG (the
# stream behind np.random.randn, untouched by nnfs.init()): the book's 0.01 * randn; He normal
# (std sqrt(2 / fan_in), for ReLU stacks: PyTorch's kaiming_normal_); Glorot normal (std
# sqrt(2 / (fan_in + fan_out)): xavier_normal_). The book's scale multiplies after the cast to the
# dtype, as the book does under nnfs.init(); the others scale in float64, then cast.
WEIGHT_INITS = ("book", "he", "glorot")
WEIGHT_INIT = Choice(*WEIGHT_INITS)


def initial_weights(scheme: str, shape: tuple, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """The initial weights of `shape` under `scheme` (one of WEIGHT_INITS)."""
    if scheme == "book":
        return 0.01 * np.random.standard_normal(shape).astype(dtype)
    variance = 2.0 / fan_in if scheme == "he" else 2.0 / (fan_in + fan_out)
    return (np.random.standard_normal(shape) * math.sqrt(variance)).astype(dtype)


def _dense_error(status: int, state: dict) -> Exception:
    """The error behind a _dense status other than OK and CONVERT."""
    if status == _dense.NO_FORWARD:
        return _messages.missing_forward("Layer_Dense", "inputs")
    which = "weights" if status == _dense.BAD_WEIGHTS else "biases"
    return _messages.parameter_error(which, state.get("weights"), state.get("biases"))



@declare("layer",
         params={"n_inputs": SIZE, "n_neurons": SIZE, **REGULARIZERS, "weight_init": WEIGHT_INIT},
         saved=REGULARIZERS,
         dims={"n_inputs": lambda layer: layer.weights.shape[0], "n_neurons": lambda layer: layer.weights.shape[1]},
         parameters=lambda a, d: {"weights": (d["n_inputs"], d["n_neurons"]), "biases": (1, d["n_neurons"])},
         features=lambda a, d: (d["n_inputs"], d["n_neurons"]),
         parameters_only_backward=True, fused="dense")
class Layer_Dense:
    """Fully connected layer: ``output = inputs @ weights + biases``.

    Parameters
    ----------
    n_inputs, n_neurons : int
        weights have shape (n_inputs, n_neurons), biases (1, n_neurons).
    weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2 : float
        L1/L2 penalty coefficients (>= 0), as in the book (no factor 1/2).
    weight_init : "book", "he" or "glorot" (keyword only; not in the book)
        The initial weights (below); the biases start at zero in each case.
    dtype : float32 or float64, optional (keyword only; not in the book)
        Parameter dtype; default ``fastnn.default_dtype()`` (float32 unless ``fastnn.init``
        changed it). Inputs of another dtype are converted once per call.

    Notes
    -----
    Weights are drawn once from NumPy's global RNG (``np.random.standard_normal``, the stream
    behind ``np.random.randn`` whether or not ``nnfs.init()`` patched it). "book" (the default):
    ``0.01 * np.random.randn(n_inputs, n_neurons)``, exactly as the book; Ch17's 0.1 scale is
    ``layer.weights *= 10`` after construction. "he": standard deviation ``sqrt(2 / n_inputs)``
    (PyTorch's ``kaiming_normal_``, for ReLU stacks). "glorot": ``sqrt(2 / (n_inputs + n_neurons))``
    (``xavier_normal_``).
    """

    def __init__(self, n_inputs: int, n_neurons: int, weight_regularizer_l1: float = 0,
                 weight_regularizer_l2: float = 0, bias_regularizer_l1: float = 0,
                 bias_regularizer_l2: float = 0, *, weight_init: str = "book", dtype=None) -> None:
        n_inputs, n_neurons, *regularizers, weight_init = Layer_Dense._spec.check(locals())
        dtype = _config.resolve_dtype(dtype)
        _arrays.dense_size(n_inputs, n_neurons, "Layer_Dense")
        self.weights = initial_weights(weight_init, (n_inputs, n_neurons), n_inputs, n_neurons, dtype)
        self.biases = np.zeros((1, n_neurons), dtype=dtype)
        (self.weight_regularizer_l1, self.weight_regularizer_l2,
         self.bias_regularizer_l1, self.bias_regularizer_l2) = regularizers

    def __repr__(self) -> str:
        n_inputs, n_neurons = getattr(self.weights, "shape", ("?", "?"))
        return f"Layer_Dense({n_inputs}, {n_neurons}, dtype={getattr(self.weights, 'dtype', '?')})"

    def forward(self, inputs, training: bool = True) -> None:
        """inputs: (n_samples, n_inputs) -> self.output: (n_samples, n_neurons). `training` is
        accepted for the Ch18+ protocol and ignored."""
        status = _dense.forward(self.__dict__, inputs)
        if status:
            if status != _dense.CONVERT:
                raise _dense_error(status, self.__dict__)
            inputs = _arrays.layer_input(inputs, "inputs", self.weights.dtype, self.weights.shape[0],
                                             "Layer_Dense.forward")
            _dense.forward(self.__dict__, inputs)

    def backward(self, dvalues) -> None:
        """dvalues: (n_samples, n_neurons) -> self.dweights (n_inputs, n_neurons), self.dbiases
        (1, n_neurons), self.dinputs (n_samples, n_inputs); regularisation gradients included."""
        status = _dense.backward(self.__dict__, dvalues)
        if status:
            self._backward_converted(status, dvalues, True)

    def _backward_parameters_only(self, dvalues) -> None:
        """backward() without dinputs: the Model uses it for its first layer, whose dinputs
        nothing reads (one GEMM less)."""
        status = _dense.backward(self.__dict__, dvalues, False)
        if status:
            self._backward_converted(status, dvalues, False)

    def _backward_converted(self, status: int, dvalues, want_dinputs: bool) -> None:
        if status != _dense.CONVERT:
            raise _dense_error(status, self.__dict__)
        output = self.__dict__.get("output")
        if output is None:
            raise _messages.missing_forward("Layer_Dense", "inputs")
        dvalues = _arrays.gradient_input(dvalues, "dvalues", output, "Layer_Dense.backward")
        _dense.backward(self.__dict__, dvalues, want_dinputs)

    def get_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, biases): the live arrays, as the book."""
        return self.weights, self.biases

    def set_parameters(self, weights, biases) -> None:
        """Replace weights (n_inputs, n_neurons) and biases (1, n_neurons). Arrays already in the
        layer's form are kept as given (no copy, as the book); others are converted once."""
        self.weights, self.biases = self._checked_parameters(weights, biases)

    def _checked_parameters(self, weights, biases) -> tuple[np.ndarray, np.ndarray]:
        """set_parameters' arguments, converted or refused, without changing the layer (the Model
        checks every layer's pair before setting any)."""
        layer_dtype = getattr(self.weights, "dtype", None)
        if layer_dtype not in (np.float32, np.float64):
            layer_dtype = _config.default_dtype()
        return _arrays.dense_parameters(weights, biases, layer_dtype, "Layer_Dense.set_parameters")


# The fast mask keeps a value when a 16-bit draw is below round(keep * 65536): below this keep
# probability that rounding is more than 1% off the probability the scale 1 / keep assumes.
MIN_FAST_KEEP = 50 / 65536


def _check_fast_keep(keep: float, mode: str, where: str) -> None:
    if mode == "fast" and 0 < keep < MIN_FAST_KEEP:
        actual = round(keep * 65536) / 65536
        raise ValueError(f"{where}: rate {1 - keep!r} keeps a fraction {keep:.3g} of the values, which the fast "
                         f"mask (steps of 1/65536) would keep as {actual:.3g}, "
                         f"{abs(actual - keep) / keep:.0%} off; use mode='book' or a rate of at most "
                         f"{math.floor((1 - MIN_FAST_KEEP) * 1e5) / 1e5:.5f}")  # rounded down: accepted


@declare("layer", params={"rate": UNIT},
         saved={"rate": Real(0.0, 1.0, low_open=True), "mode": Choice(*_config.DROPOUT_MODES)},
         keeps_features=True, fused="dropout")
class Layer_Dropout:
    """Inverted dropout. ``Layer_Dropout(0.1)`` drops 10% of the values while training and scales
    the rest by 1/0.9.

    Book quirk kept: the attribute ``rate`` holds the *keep* probability (``1 - rate``).

    Parameters
    ----------
    rate : float in [0, 1)
        Fraction of values to drop.
    mode : "fast", "book" or None (keyword only; not in the book)
        Where the mask comes from. "book": ``np.random.binomial(1, keep, size) / keep`` exactly as
        the book (bit-identical masks and results; a float64 ``binary_mask``). "fast": one number
        drawn from NumPy's global RNG per forward pass seeds a mask generated inside the kernel
        (many times faster; ``np.random.seed`` still reproduces a run; ``binary_mask`` has the
        data's dtype). None: the default set by ``fastnn.init(dropout_mode=...)``, "fast" unless
        changed.
    """

    def __init__(self, rate: float, *, mode: str | None = None) -> None:
        rate, = Layer_Dropout._spec.check(locals())
        mode = _config.dropout_mode() if mode is None else _config.check_dropout_mode(mode, "Layer_Dropout", "mode")
        _check_fast_keep(1 - rate, mode, "Layer_Dropout")
        self.rate = 1 - rate
        self.mode = mode

    def __repr__(self) -> str:
        return f"Layer_Dropout({1 - self.rate:g}, mode={self.mode!r})"

    def forward(self, inputs, training: bool = True) -> None:
        """inputs: any shape -> self.output, same shape. Without training the values pass through
        unchanged (a copy, as the book)."""
        keep = self.rate
        if not 0 < keep <= 1:
            raise ValueError(f"Layer_Dropout.forward: rate (the keep probability) must be in (0, 1], got {keep!r}")
        if not training:
            inputs = _arrays.float_input(inputs, "inputs", "Layer_Dropout.forward")
            self.inputs = inputs
            self.output = inputs.copy()
            return
        if self.mode == "book":
            inputs = _arrays.float_input(inputs, "inputs", "Layer_Dropout.forward")
            mask = np.asarray(_config.dropout_random().binomial(1, keep, size=inputs.shape) / keep)  # 0-d: a scalar
            _dropout.book_forward(self.__dict__, inputs, mask)
            return
        # Inputs the kernel cannot read directly are converted (or refused) before the draw, so a
        # rejected call takes nothing from NumPy's global RNG.
        if not (type(inputs) is np.ndarray and inputs.dtype in _FLOAT_DTYPES and inputs.flags.c_contiguous
                and inputs.flags.aligned):
            inputs = _arrays.float_input(inputs, "inputs", "Layer_Dropout.forward")
        if keep < MIN_FAST_KEEP:
            _check_fast_keep(keep, "fast", "Layer_Dropout.forward")
        # One draw from the global RNG (53 random bits; this rank's own stream in distributed
        # training, see fastnn._core.config.dropout_random) seeds this pass's mask.
        seed = int(_config.dropout_random().random_sample() * 9007199254740992.0)
        if not _dropout.fast_forward(self.__dict__, inputs, keep, seed):  # pragma: no cover - converted above
            raise RuntimeError("fastnn internal error: dropout kernel refused converted inputs (please report this)")

    def backward(self, dvalues) -> None:
        """dvalues: the forward's shape -> self.dinputs = dvalues * binary_mask."""
        if not _dropout.backward(self.__dict__, dvalues):
            if "binary_mask" not in self.__dict__ or "inputs" not in self.__dict__:
                raise _messages.missing_forward("Layer_Dropout", "binary_mask")
            dvalues = _arrays.gradient_input(dvalues, "dvalues", self.inputs, "Layer_Dropout.backward")
            if not _dropout.backward(self.__dict__, dvalues):
                raise ValueError("Layer_Dropout.backward: the last forward pass ran without training "
                                 "(no mask matches its inputs); run forward(..., training=True) first")


@declare("layer", saveable=False)
class Layer_Input:
    """The Model's first layer: ``output`` is the input itself (no copy), as the book."""

    def forward(self, inputs, training: bool = True) -> None:
        self.output = inputs
