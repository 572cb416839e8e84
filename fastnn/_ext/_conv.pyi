"""Conv2D kernels on a layer's ``__dict__``; they return a status code (OK, or CONVERT: convert the
argument and call again, or what stopped them). The thread settings are in _threads."""
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

def conv_forward(state: dict[str, Any], inputs: object) -> int: ...
def conv_backward(state: dict[str, Any], dvalues: object, want_dinputs: bool = True) -> int: ...
