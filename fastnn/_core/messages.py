"""Messages for the states a kernel refuses: a missing forward pass, parameters replaced by hand
in a form the kernels cannot read, optimizer state that does not match its parameter.

The compiled modules import nothing from the Python layer: they return a status and the class
that called them builds one of these exceptions.
"""
from __future__ import annotations

from . import windows
from .checks import describe, fail


def missing_forward(owner: str, attribute: str) -> Exception:
    return RuntimeError(f"{owner}.backward: no `{attribute}` from a forward pass; call forward() "
                        f"before backward()")


def parameter_error(which: str, weights, biases) -> Exception:
    """Explains why a layer's weights/biases cannot be used (e.g. replaced by the user)."""
    expected = ("weights: a C-contiguous float32 or float64 array of shape (n_inputs, n_neurons) "
                "and biases: an array of the same dtype and shape (1, n_neurons)")
    return ValueError(f"Layer parameters are inconsistent ({which}): expected {expected}; got weights "
                      f"{describe(weights)} and biases {describe(biases)}. Use set_parameters() to "
                      f"replace them.")


def optimizer_array_error(where: str, name: str, array, like) -> Exception:
    """Why an optimizer cannot update a layer: a parameter, gradient or state array is missing or
    does not match the parameter it belongs to."""
    if array is None:
        return ValueError(f"{where}: the layer has no `{name}`; run forward() and backward() before "
                          f"update_params() (and do not switch optimizers on a layer that holds "
                          f"another optimizer's state)")
    expected = ("a writeable C-contiguous float32 or float64 array" if like is None else
                f"a C-contiguous array of dtype {like.dtype} and shape {like.shape}, like the "
                f"parameter it belongs to")
    return fail(where, f"layer.{name}", expected, describe(array))


def conv_parameter_error(which: str, state: dict) -> Exception:
    """Why a Layer_Conv2D's parameters or geometry cannot be used (e.g. replaced by hand)."""
    config = {name: state.get(name) for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding")}
    weights, biases = state.get("weights"), state.get("biases")
    try:
        kernel = "{}, {}".format(*windows.pair(config["kernel_size"]))
    except (TypeError, IndexError, KeyError):
        kernel = "?, ?"
    expected = (f"weights: a C-contiguous float32 or float64 array of shape (out_channels, in_channels, "
                f"kernel height, kernel width) = ({config['out_channels']}, {config['in_channels']}, {kernel}); "
                f"biases: the same dtype, shape ({config['out_channels']},); kernel_size and stride: ints >= 1 or "
                f"(height, width) pairs of them; padding: ints >= 0, a pair of them, or 'same' with stride 1")
    return ValueError(f"Layer_Conv2D parameters are inconsistent ({which}): expected {expected}; got weights "
                      f"{describe(weights)}, biases {describe(biases)}, kernel_size {config['kernel_size']!r}, stride "
                      f"{config['stride']!r}, padding {config['padding']!r}. Use set_parameters() to replace weights "
                      f"and biases.")


def pool_parameter_error(state: dict) -> Exception:
    return ValueError(f"Layer_MaxPool2D: pool_size and stride must be ints >= 1 or (height, width) pairs of them, "
                      f"and padding ints >= 0 (at most half the window), a pair of them or 'same' with stride 1; "
                      f"got pool_size {state.get('pool_size')!r}, stride {state.get('stride')!r} and padding "
                      f"{state.get('padding')!r}")
