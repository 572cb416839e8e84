"""Dense layer kernels on a layer's ``__dict__``; they return a status code (OK, or CONVERT: convert
the argument and call again, or what stopped them)."""
from typing import Any, Final

# The status codes every layer-state kernel module exports (src_pyx/_status.pxi).
from ._status_codes import *  # noqa: F403

def forward(state: dict[str, Any], inputs: object) -> int: ...
def backward(state: dict[str, Any], dvalues: object, want_dinputs: bool = True) -> int: ...
def own_gemm(enabled: bool) -> bool: ...
