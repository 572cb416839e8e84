"""Activation kernels on an object's ``__dict__``; False means "convert the argument and call again"."""
from typing import Any, Final

RELU: Final = 0
SIGMOID: Final = 1
SOFTMAX: Final = 2
LINEAR: Final = 3
TANH: Final = 4
LEAKY_RELU: Final = 5
GELU: Final = 6
GELU_TANH: Final = 7

def forward(kind: int, state: dict[str, Any], inputs: object) -> bool: ...
def backward(kind: int, state: dict[str, Any], dvalues: object) -> bool: ...
