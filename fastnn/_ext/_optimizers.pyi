"""The optimizers' fused update of one layer's weights and biases (and their state) in place;
update_layer returns OK or the status of the layer array that stopped it (see REFUSED)."""
from typing import Any, Final

# The status codes every layer-state kernel module exports (src_pyx/_status.pxi).
from ._status_codes import *  # noqa: F403

SGD: Final = 0
SGD_MOMENTUM: Final = 1
ADAGRAD: Final = 2
RMSPROP: Final = 3
ADAM: Final = 4

# status -> (the refused layer attribute, the parameter it must match, or None for a parameter).
REFUSED: dict[int, tuple[str, str | None]]

def update_layer(method: int, layer: dict[str, Any], lr: float, epsilon: float = 0.0, a: float = 0.0, b: float = 0.0,
                 correction1: float = 1.0, correction2: float = 1.0) -> int: ...
