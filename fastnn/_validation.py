"""Transitional: the message builders the compiled modules of this build still import (they are
being changed to return status codes). Removed once no kernel imports it."""
from ._core.messages import (  # noqa: F401
    conv_parameter_error, missing_forward, optimizer_array_error, parameter_error, pool_parameter_error)
