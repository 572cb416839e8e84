"""The optimizers' fused update of one layer's weights and biases (and their state) in place;
update_layer returns OK or the status of the layer array that stopped it (see REFUSED)."""
from typing import Any, Final

# The status codes of src_pyx/_status.pxi (what a kernel on a layer's state returns; OK is 0).
OK: Final = 0
CONVERT: Final = 1
NO_FORWARD: Final = 2
BAD_WEIGHTS: Final = 3
BAD_BIASES: Final = 4
BAD_STRIDE: Final = 5
BAD_PADDING: Final = 6
BAD_POOL: Final = 7
BAD_DWEIGHTS: Final = 8
BAD_DBIASES: Final = 9
BAD_WEIGHT_MOMENTUMS: Final = 10
BAD_WEIGHT_CACHE: Final = 11
BAD_BIAS_MOMENTUMS: Final = 12
BAD_BIAS_CACHE: Final = 13
BAD_ARGMAX: Final = 14
BAD_STATISTICS: Final = 15
BAD_SETTING: Final = 16
ONE_VALUE: Final = 17

SGD: Final = 0
SGD_MOMENTUM: Final = 1
ADAGRAD: Final = 2
RMSPROP: Final = 3
ADAM: Final = 4

# status -> (the refused layer attribute, the parameter it must match, or None for a parameter).
REFUSED: dict[int, tuple[str, str | None]]

def update_layer(method: int, layer: dict[str, Any], lr: float, epsilon: float = 0.0, a: float = 0.0, b: float = 0.0,
                 correction1: float = 1.0, correction2: float = 1.0) -> int: ...
