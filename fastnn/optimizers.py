"""Optimizers with the book's names, defaults and protocol: SGD, Adagrad, RMSprop and Adam.

Per step: ``pre_update_params()`` (learning-rate decay, using the iteration count before the
increment), ``update_params(layer)`` for each trainable layer, ``post_update_params()``
(``iterations += 1``). Each ``update_params`` is one fused compiled pass per parameter array
(src_pyx/_optimizers.pyx). The state lives on the layer and is created lazily on the first
update, exactly as the book: ``weight_momentums``/``bias_momentums`` (SGD with momentum, Adam),
``weight_cache``/``bias_cache`` (Adagrad, RMSprop, Adam); ``hasattr`` checks keep working.
"""
from __future__ import annotations

import numpy as np

from ._core import arrays as _arrays, messages as _messages
from ._core.constraints import COUNT, NON_NEGATIVE, POSITIVE, UNIT
from ._core.spec import declare, state_name
from ._core.describe import constructor_repr
from ._ext import _optimizers


def _declare(layer_state: tuple[str, ...], **params):
    """Declare an optimizer: learning_rate, decay and `params`; its files also keep the iteration
    count and the current learning rate; `layer_state`: the suffixes of its state on each layer."""
    params = {"learning_rate": POSITIVE, "decay": NON_NEGATIVE, **params}
    register = declare("optimizer", params=params, layer_state=layer_state,
                       saved={**params, "iterations": COUNT, "current_learning_rate": POSITIVE})

    def decorate(cls):
        # The state arrays update_params creates on a layer, in the book's order.
        cls._STATE = tuple(state_name(p, suffix) for p in ("weights", "biases") for suffix in layer_state)
        return register(cls)
    return decorate


class _Optimizer:
    """Learning rate, decay and the iteration count shared by the four optimizers."""

    __repr__ = constructor_repr

    def _init(self, arguments) -> None:
        """Check the declared parameters in `arguments` (the constructor's locals()) and set them,
        with the book's current_learning_rate and iteration count."""
        spec = type(self)._spec
        for name, value in zip(spec.params, spec.check(arguments)):
            setattr(self, name, value)
        self.current_learning_rate = self.learning_rate
        self.iterations = 0

    def pre_update_params(self) -> None:
        """Apply learning-rate decay: lr = learning_rate / (1 + decay * iterations)."""
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1. / (1. + self.decay * self.iterations))

    def post_update_params(self) -> None:
        """Count the step."""
        self.iterations += 1

    def _where(self) -> str:
        return f"{type(self).__name__}.update_params"

    def _create_state(self, layer, names) -> None:
        """Zero state arrays on the layer, once, after checking the layer can be updated (so a
        failing first update adds nothing to it)."""
        _arrays.check_trainable(layer, self._where())
        epsilon = self.__dict__.get("epsilon")
        dtype = layer.weights.dtype
        if epsilon is not None and dtype.type(epsilon) == 0:
            raise ValueError(f"{self._where()}: epsilon {epsilon!r} rounds to 0 in {dtype}, the layer's parameter "
                             f"dtype, so a zero gradient would divide 0 by 0 (NaN); use an epsilon of at least "
                             f"{np.finfo(dtype).smallest_subnormal:.3g} (1e-7, the default, is safe) or float64 "
                             f"parameters")
        for name in names:
            like = layer.weights if name.startswith("weight") else layer.biases
            setattr(layer, name, np.zeros_like(like))

    def _update(self, layer, rule: int, state_names: tuple[str, ...], epsilon: float = 0., a: float = 0.,
                b: float = 0., correction_1: float = 1., correction_2: float = 1.) -> None:
        """One fused compiled pass of `rule` over layer.weights and layer.biases. The state arrays
        `state_names` are created on the first update; as in the book, the presence of the first one
        (``hasattr``) says whether they exist."""
        try:
            state = layer.__dict__
        except AttributeError:
            state = _arrays.layer_state(layer, self._where())  # raises the TypeError naming `layer`
        if state_names and not hasattr(layer, state_names[0]):
            self._create_state(layer, state_names)
        status = _optimizers.update_layer(rule, state, self.current_learning_rate, epsilon, a, b,
                                          correction_1, correction_2)
        if status:  # an array the kernel refused (nothing was written): name it
            name, parameter = _optimizers.REFUSED[status]
            raise _messages.optimizer_array_error(self._where(), name, state.get(name),
                                                   None if parameter is None else state[parameter])


@_declare(("momentums",), momentum=UNIT)
class Optimizer_SGD(_Optimizer):
    """Stochastic gradient descent, with optional momentum.

    update = momentum * momentums - lr * grad (momentums = update); param += update."""

    def __init__(self, learning_rate: float = 1., decay: float = 0., momentum: float = 0.) -> None:
        self._init(locals())

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        if self.momentum:
            self._update(layer, _optimizers.SGD_MOMENTUM, self._STATE, a=self.momentum)
        else:
            self._update(layer, _optimizers.SGD, ())


@_declare(("cache",), epsilon=POSITIVE)
class Optimizer_Adagrad(_Optimizer):
    """Adagrad: cache += grad^2; param += -lr * grad / (sqrt(cache) + epsilon)."""

    _KIND = _optimizers.ADAGRAD

    def __init__(self, learning_rate: float = 1., decay: float = 0., epsilon: float = 1e-7) -> None:
        self._init(locals())

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        self._update(layer, self._KIND, self._STATE, self.epsilon)


@_declare(("cache",), epsilon=POSITIVE, rho=UNIT)
class Optimizer_RMSprop(_Optimizer):
    """RMSprop: cache = rho * cache + (1 - rho) * grad^2; param += -lr * grad / (sqrt(cache) + eps)."""

    _KIND = _optimizers.RMSPROP

    def __init__(self, learning_rate: float = 0.001, decay: float = 0., epsilon: float = 1e-7,
                 rho: float = 0.9) -> None:
        self._init(locals())

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        self._update(layer, self._KIND, self._STATE, self.epsilon, a=self.rho)


@_declare(("cache", "momentums"), epsilon=POSITIVE, beta_1=UNIT, beta_2=UNIT)
class Optimizer_Adam(_Optimizer):
    """Adam with the book's bias correction (t = iterations + 1) and epsilon after the square root.

    m = beta_1 m + (1 - beta_1) g;  v = beta_2 v + (1 - beta_2) g^2
    param += -lr * (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)
    """

    _KIND = _optimizers.ADAM

    def __init__(self, learning_rate: float = 0.001, decay: float = 0., epsilon: float = 1e-7,
                 beta_1: float = 0.9, beta_2: float = 0.999) -> None:
        self._init(locals())

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        t = self.iterations + 1
        self._update(layer, self._KIND, self._STATE,
                     self.epsilon, a=self.beta_1, b=self.beta_2,
                     correction_1=1 - self.beta_1 ** t, correction_2=1 - self.beta_2 ** t)
