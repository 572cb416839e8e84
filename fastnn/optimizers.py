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

from . import _validation
from ._ext import _optimizers

__all__ = ["Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam"]

class _Optimizer:
    """Learning rate, decay and the iteration count shared by the four optimizers."""

    def _init_rate(self, learning_rate, decay) -> None:
        where = type(self).__name__
        self.learning_rate = _validation.real(learning_rate, "learning_rate", where, low=0.0, low_open=True)
        self.current_learning_rate = self.learning_rate
        self.decay = _validation.non_negative(decay, "decay", where)
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
        _validation.check_trainable(layer, self._where())
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
            state = _validation.layer_state(layer, self._where())  # raises the TypeError naming `layer`
        if state_names and not hasattr(layer, state_names[0]):
            self._create_state(layer, state_names)
        status = _optimizers.update_layer(rule, state, self.current_learning_rate, epsilon, a, b,
                                          correction_1, correction_2)
        if status:  # an array the kernel refused (nothing was written): name it
            name, parameter = _optimizers.REFUSED[status]
            raise _validation.optimizer_array_error(self._where(), name, state.get(name),
                                                    None if parameter is None else state[parameter])


class Optimizer_SGD(_Optimizer):
    """Stochastic gradient descent, with optional momentum.

    update = momentum * momentums - lr * grad (momentums = update); param += update."""

    def __init__(self, learning_rate: float = 1., decay: float = 0., momentum: float = 0.) -> None:
        self._init_rate(learning_rate, decay)
        self.momentum = _validation.real(momentum, "momentum", "Optimizer_SGD", low=0.0, high=1.0, high_open=True)

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        if self.momentum:
            self._update(layer, _optimizers.SGD_MOMENTUM, ("weight_momentums", "bias_momentums"), a=self.momentum)
        else:
            self._update(layer, _optimizers.SGD, ())


class Optimizer_Adagrad(_Optimizer):
    """Adagrad: cache += grad^2; param += -lr * grad / (sqrt(cache) + epsilon)."""

    def __init__(self, learning_rate: float = 1., decay: float = 0., epsilon: float = 1e-7) -> None:
        self._init_rate(learning_rate, decay)
        self.epsilon = _validation.real(epsilon, "epsilon", "Optimizer_Adagrad", low=0.0, low_open=True)

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        self._update(layer, _optimizers.ADAGRAD, ("weight_cache", "bias_cache"), self.epsilon)


class Optimizer_RMSprop(_Optimizer):
    """RMSprop: cache = rho * cache + (1 - rho) * grad^2; param += -lr * grad / (sqrt(cache) + eps)."""

    def __init__(self, learning_rate: float = 0.001, decay: float = 0., epsilon: float = 1e-7,
                 rho: float = 0.9) -> None:
        self._init_rate(learning_rate, decay)
        self.epsilon = _validation.real(epsilon, "epsilon", "Optimizer_RMSprop", low=0.0, low_open=True)
        self.rho = _validation.real(rho, "rho", "Optimizer_RMSprop", low=0.0, high=1.0, high_open=True)

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        self._update(layer, _optimizers.RMSPROP, ("weight_cache", "bias_cache"), self.epsilon, a=self.rho)


class Optimizer_Adam(_Optimizer):
    """Adam with the book's bias correction (t = iterations + 1) and epsilon after the square root.

    m = beta_1 m + (1 - beta_1) g;  v = beta_2 v + (1 - beta_2) g^2
    param += -lr * (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)
    """

    def __init__(self, learning_rate: float = 0.001, decay: float = 0., epsilon: float = 1e-7,
                 beta_1: float = 0.9, beta_2: float = 0.999) -> None:
        self._init_rate(learning_rate, decay)
        where = "Optimizer_Adam"
        self.epsilon = _validation.real(epsilon, "epsilon", where, low=0.0, low_open=True)
        self.beta_1 = _validation.real(beta_1, "beta_1", where, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _validation.real(beta_2, "beta_2", where, low=0.0, high=1.0, high_open=True)

    def update_params(self, layer) -> None:
        """Update layer.weights and layer.biases in place from layer.dweights/dbiases."""
        t = self.iterations + 1
        self._update(layer, _optimizers.ADAM, ("weight_cache", "weight_momentums", "bias_cache", "bias_momentums"),
                     self.epsilon, a=self.beta_1, b=self.beta_2,
                     correction_1=1 - self.beta_1 ** t, correction_2=1 - self.beta_2 ** t)
