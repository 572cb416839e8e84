"""Conv2D kernels on a layer's ``__dict__``; they return a status code (OK, or CONVERT: convert the
argument and call again, or what stopped them). The thread settings are in _threads."""
from typing import Any

# The status codes of src_pyx/_status.pxi, which the module includes (OK is 0).
from ._status import *  # noqa: F403

def conv_forward(state: dict[str, Any], inputs: object) -> int: ...
def conv_backward(state: dict[str, Any], dvalues: object, want_dinputs: bool = True) -> int: ...
