"""Optimizers of the book (Ch22 versions): SGD (with momentum), Adagrad, RMSprop, Adam.

Shared protocol: ``pre_update_params()`` applies the learning-rate decay
``current_learning_rate = learning_rate / (1 + decay * iterations)`` with the count *before* this
step (so the first step uses the undecayed rate); ``update_params(layer)`` reads ``layer.dweights``
(n_inputs, n_neurons) and ``layer.dbiases`` (1, n_neurons) and updates ``layer.weights`` and
``layer.biases`` in place (they keep their dtype); ``post_update_params()`` counts the step.

Optimizer state lives on the layer and is created on its first update, exactly as the book checks
it (``hasattr(layer, 'weight_momentums')`` / ``hasattr(layer, 'weight_cache')``); it does not exist
before.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .layers import Layer_Dense


class _Optimizer:
    """The learning rate, its decay and the step count, as every book optimizer has them."""

    def __init__(self, learning_rate: float, decay: float) -> None:
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0

    def pre_update_params(self) -> None:
        """Set current_learning_rate from the decay and the steps taken so far."""
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1. / (1. + self.decay * self.iterations))

    def post_update_params(self) -> None:
        """Count the step (``iterations += 1``)."""
        self.iterations += 1


class Optimizer_SGD(_Optimizer):
    """Stochastic gradient descent, optionally with momentum:
    ``u = momentum * u - lr * grad; param += u`` (plain: ``param += -lr * grad``)."""

    def __init__(self, learning_rate: float = 1., decay: float = 0., momentum: float = 0.) -> None:
        super().__init__(learning_rate, decay)
        self.momentum = momentum

    def update_params(self, layer: Layer_Dense) -> None:
        """One step on a trainable layer; creates ``weight_momentums``/``bias_momentums`` (zeros,
        shaped like the parameters) on the first update when momentum is used."""
        if self.momentum:
            if not hasattr(layer, "weight_momentums"):
                layer.weight_momentums = np.zeros_like(layer.weights)
                layer.bias_momentums = np.zeros_like(layer.biases)
            weight_updates = self.momentum * layer.weight_momentums - self.current_learning_rate * layer.dweights
            layer.weight_momentums = weight_updates
            bias_updates = self.momentum * layer.bias_momentums - self.current_learning_rate * layer.dbiases
            layer.bias_momentums = bias_updates
        else:
            weight_updates = -self.current_learning_rate * layer.dweights
            bias_updates = -self.current_learning_rate * layer.dbiases
        layer.weights += weight_updates
        layer.biases += bias_updates


class Optimizer_Adagrad(_Optimizer):
    """Adagrad: ``cache += grad**2; param += -lr * grad / (sqrt(cache) + epsilon)``."""

    def __init__(self, learning_rate: float = 1., decay: float = 0., epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon

    def update_params(self, layer: Layer_Dense) -> None:
        """One step on a trainable layer; creates ``weight_cache``/``bias_cache`` on first use."""
        if not hasattr(layer, "weight_cache"):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_cache += layer.dweights ** 2
        layer.bias_cache += layer.dbiases ** 2
        layer.weights += -self.current_learning_rate * layer.dweights / (np.sqrt(layer.weight_cache) + self.epsilon)
        layer.biases += -self.current_learning_rate * layer.dbiases / (np.sqrt(layer.bias_cache) + self.epsilon)


class Optimizer_RMSprop(_Optimizer):
    """RMSprop: ``cache = rho * cache + (1 - rho) * grad**2; param += -lr * grad / (sqrt(cache) + epsilon)``."""

    def __init__(self, learning_rate: float = 0.001, decay: float = 0., epsilon: float = 1e-7,
                 rho: float = 0.9) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon
        self.rho = rho

    def update_params(self, layer: Layer_Dense) -> None:
        """One step on a trainable layer; creates ``weight_cache``/``bias_cache`` on first use."""
        if not hasattr(layer, "weight_cache"):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        layer.weight_cache = self.rho * layer.weight_cache + (1 - self.rho) * layer.dweights ** 2
        layer.bias_cache = self.rho * layer.bias_cache + (1 - self.rho) * layer.dbiases ** 2
        layer.weights += -self.current_learning_rate * layer.dweights / (np.sqrt(layer.weight_cache) + self.epsilon)
        layer.biases += -self.current_learning_rate * layer.dbiases / (np.sqrt(layer.bias_cache) + self.epsilon)


class Optimizer_Adam(_Optimizer):
    """Adam with bias correction at step ``t = iterations + 1``:
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``param += -lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + epsilon)``."""

    def __init__(self, learning_rate: float = 0.001, decay: float = 0., epsilon: float = 1e-7,
                 beta_1: float = 0.9, beta_2: float = 0.999) -> None:
        super().__init__(learning_rate, decay)
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def update_params(self, layer: Layer_Dense) -> None:
        """One step on a trainable layer. When ``weight_cache`` is absent it creates all four state
        arrays (``weight_momentums``, ``weight_cache``, ``bias_momentums``, ``bias_cache``) as zeros;
        the bias-corrected values are temporaries."""
        if not hasattr(layer, "weight_cache"):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        step = self.iterations + 1
        layer.weight_momentums = self.beta_1 * layer.weight_momentums + (1 - self.beta_1) * layer.dweights
        layer.bias_momentums = self.beta_1 * layer.bias_momentums + (1 - self.beta_1) * layer.dbiases
        weight_momentums_corrected = layer.weight_momentums / (1 - self.beta_1 ** step)
        bias_momentums_corrected = layer.bias_momentums / (1 - self.beta_1 ** step)
        layer.weight_cache = self.beta_2 * layer.weight_cache + (1 - self.beta_2) * layer.dweights ** 2
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases ** 2
        weight_cache_corrected = layer.weight_cache / (1 - self.beta_2 ** step)
        bias_cache_corrected = layer.bias_cache / (1 - self.beta_2 ** step)
        layer.weights += (-self.current_learning_rate * weight_momentums_corrected
                          / (np.sqrt(weight_cache_corrected) + self.epsilon))
        layer.biases += (-self.current_learning_rate * bias_momentums_corrected
                         / (np.sqrt(bias_cache_corrected) + self.epsilon))
