"""Every argument check of fastnn and every error message it raises are built here.

Kernels run with bounds checks off, so the public entry points are the only guard between a
user's mistake and a crash or silent corruption (design.md §8). The compiled entry points check
arrays at C speed and, when an argument is not already in the exact form their loops need, hand
it to this module, which either converts it (once, correctly) or raises a ``TypeError`` /
``ValueError`` that names the argument, what was expected and what was given.

Message shape: ``"<Owner>.<method>: <argument> must be <expected>, got <what came>"``.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

# dtype kinds that convert to float without losing meaning: bool, signed, unsigned, float.
_NUMERIC_KINDS = "biuf"


def describe(x) -> str:
    """A short description of an argument for error messages: type, dtype and shape."""
    if isinstance(x, np.ndarray):
        return f"{type(x).__name__} of dtype {x.dtype} and shape {x.shape}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__} of length {len(x)}"
    return f"{type(x).__name__} {x!r}" if isinstance(x, (numbers.Number, str)) else type(x).__name__


def _fail(where: str, name: str, expected: str, got: str, error=ValueError):
    return error(f"{where}: {name} must be {expected}, got {got}")


# ---------------------------------------------------------------------------------------------
# Arrays


def as_float_array(x, name: str, dtype: np.dtype, where: str, *, ndim: int | None = None) -> np.ndarray:
    """x as a C-contiguous ndarray of `dtype` (converted once when needed).

    Accepts ndarrays and array-likes of bool/int/uint/float data; refuses complex, object, string,
    datetime and structured data with a TypeError, and the wrong number of dimensions (when `ndim`
    is given) with a ValueError.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise _fail(where, name, "an array of numbers", f"{type(x).__name__} ({exc})", TypeError) from None
    if x.dtype.kind not in _NUMERIC_KINDS:
        raise _fail(where, name, f"an array of real numbers (converted to {dtype})", describe(x), TypeError)
    if ndim is not None and x.ndim != ndim:
        raise _fail(where, name, f"{ndim}-D", f"{x.ndim}-D ({describe(x)})")
    return np.ascontiguousarray(x, dtype=dtype)


def layer_input(x, name: str, dtype: np.dtype, n_features: int | None, where: str) -> np.ndarray:
    """Inputs of a layer: 2-D (n_samples, n_features) of the layer's dtype, C order."""
    x = as_float_array(x, name, dtype, where)
    if x.ndim != 2:
        hint = " (reshape a single sample with x.reshape(1, -1))" if x.ndim == 1 else ""
        raise _fail(where, name, f"2-D (n_samples, {n_features if n_features is not None else 'n_features'})",
                    f"{x.ndim}-D array of shape {x.shape}{hint}")
    if n_features is not None and x.shape[1] != n_features:
        raise _fail(where, name, f"of shape (n_samples, {n_features})", f"shape {x.shape}")
    return x


def float_input(x, name: str, where: str, *, ndim: int | None = None) -> np.ndarray:
    """Inputs of a parameter-free layer: float32/float64 arrays keep their dtype; other real data
    is converted to fastnn's default dtype. C order."""
    from ._config import default_dtype

    dtype = x.dtype if isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) else default_dtype()
    if isinstance(x, np.ndarray) and x.dtype.kind not in _NUMERIC_KINDS:
        dtype = None  # let as_float_array report the bad dtype
    return as_float_array(x, name, dtype or default_dtype(), where, ndim=ndim)


def gradient_input(x, name: str, like: np.ndarray, where: str) -> np.ndarray:
    """A gradient passed to backward(): same shape as `like` (the forward's output), its dtype."""
    x = as_float_array(x, name, like.dtype, where)
    if x.shape != like.shape:
        raise _fail(where, name, f"of shape {like.shape} (the shape of the forward pass's output)",
                    f"shape {x.shape}")
    return x


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
                f"a C-contiguous array of dtype {like.dtype} and {like.size} elements, like the "
                f"parameter it belongs to")
    return _fail(where, f"layer.{name}", expected, describe(array))


def check_trainable(layer, where: str) -> None:
    """Before an optimizer creates its state on a layer: weights/biases and their gradients exist
    and match, so a failed first update leaves the layer without new attributes."""
    for param, grad in (("weights", "dweights"), ("biases", "dbiases")):
        p = getattr(layer, param, None)
        g = getattr(layer, grad, None)
        if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
            raise optimizer_array_error(where, param, p, None)
        if not isinstance(g, np.ndarray) or g.dtype != p.dtype or g.shape != p.shape or not g.flags.c_contiguous:
            raise optimizer_array_error(where, grad, g, p)


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, where: str) -> None:
    if a.shape != b.shape:
        raise _fail(where, f"{name_a} and {name_b}", "the same shape", f"{a.shape} and {b.shape}")


# ---------------------------------------------------------------------------------------------
# Labels


def class_labels(y, n_samples: int, n_classes: int, where: str, name: str = "y_true",
                 onehot_dtype=np.float64) -> np.ndarray:
    """Categorical targets: sparse class ids (n_samples,) in [0, n_classes) -> intp, or one-hot
    (n_samples, n_classes) -> rows of `onehot_dtype` that are not checked to sum to 1 (the book's
    formula works with any weights)."""
    if not isinstance(y, np.ndarray):
        y = np.asarray(y)
    if y.dtype.kind not in _NUMERIC_KINDS:
        raise _fail(where, name, "class ids or one-hot rows of numbers", describe(y), TypeError)
    if y.ndim == 1:
        if y.shape[0] != n_samples:
            raise _fail(where, name, f"of length {n_samples} (one label per sample)", f"length {y.shape[0]}")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise _fail(where, name, "whole-number class ids", "non-integer values", TypeError)
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise _fail(where, name, f"class ids in [0, {n_classes})",
                        f"values from {y.min()} to {y.max()}")
        return np.ascontiguousarray(y, dtype=np.intp)
    if y.ndim == 2:
        if y.shape != (n_samples, n_classes):
            raise _fail(where, name, f"one-hot of shape ({n_samples}, {n_classes}) or class ids of shape "
                        f"({n_samples},)", f"shape {y.shape}")
        return np.ascontiguousarray(y, dtype=onehot_dtype)
    raise _fail(where, name, "1-D class ids or 2-D one-hot rows", f"{y.ndim}-D array of shape {y.shape}")


def targets_like(y, predictions: np.ndarray, where: str, name: str = "y_true") -> np.ndarray:
    """Targets of an elementwise loss (BCE, MSE, MAE): the predictions' shape and dtype.
    A 1-D y of length n against (n, 1) predictions is accepted as a column (the book's
    y.reshape(-1, 1))."""
    y = as_float_array(y, name, predictions.dtype, where)
    if y.ndim == 1 and predictions.ndim == 2 and predictions.shape[1] == 1 and y.shape[0] == predictions.shape[0]:
        y = y.reshape(-1, 1)
    if y.shape != predictions.shape:
        raise _fail(where, name, f"of shape {predictions.shape} (the shape of the predictions)", f"shape {y.shape}")
    return y


# ---------------------------------------------------------------------------------------------
# Hyper-parameters


def positive_int(value, name: str, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral,)):
        raise _fail(where, name, "a positive int", describe(value), TypeError)
    if value <= 0:
        raise _fail(where, name, "a positive int", repr(value))
    return int(value)


def real(value, name: str, where: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in [low, high] (open ends where asked)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _fail(where, name, "a real number", describe(value), TypeError)
    v = float(value)
    lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    interval = f"in {lo or '(-inf'}, {hi or 'inf)'}"
    if not math.isfinite(v):
        raise _fail(where, name, f"finite, {interval}", repr(value))
    if low is not None and (v < low or (low_open and v == low)):
        raise _fail(where, name, interval, repr(value))
    if high is not None and (v > high or (high_open and v == high)):
        raise _fail(where, name, interval, repr(value))
    return value


def non_negative(value, name: str, where: str) -> float:
    return real(value, name, where, low=0.0)


# =============================================================================================
# Convolutional layers (Layer_Conv2D, Layer_MaxPool2D, Layer_Flatten; fastnn/conv.py)


def non_negative_int(value, name: str, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise _fail(where, name, "a non-negative int", describe(value), TypeError)
    if value < 0:
        raise _fail(where, name, "a non-negative int", repr(value))
    return int(value)


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling along one axis (PyTorch's floor rule)."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _spatial_input(x, name: str, dtype, where: str, channels_name: str, channels: int | None) -> np.ndarray:
    if dtype is None:
        x = float_input(x, name, where)
    else:
        x = as_float_array(x, name, dtype, where)
    if x.ndim != 4:
        hint = (" (add the channel axis of a grayscale batch with x[:, None])" if x.ndim == 3 else
                " (reshape flat samples with x.reshape(n, channels, height, width))" if x.ndim == 2 else "")
        ch = channels if channels is not None else "channels"
        raise _fail(where, name, f"4-D (n_samples, {ch}, height, width)",
                    f"{x.ndim}-D array of shape {x.shape}{hint}")
    if channels is not None and x.shape[1] != channels:
        raise _fail(where, name, f"of shape (n_samples, {channels}, height, width) ({channels_name}="
                    f"{channels})", f"shape {x.shape} with {x.shape[1]} channels")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise _fail(where, name, "non-empty in height and width", f"shape {x.shape}")
    return x


def conv_input(x, name: str, dtype: np.dtype, in_channels: int, kernel_size: int, padding: int,
               where: str) -> np.ndarray:
    """Inputs of Layer_Conv2D: (N, in_channels, H, W) of the layer's dtype, C order, with
    H + 2*padding and W + 2*padding at least kernel_size."""
    x = _spatial_input(x, name, dtype, where, "in_channels", in_channels)
    h, w = x.shape[2], x.shape[3]
    if h + 2 * padding < kernel_size or w + 2 * padding < kernel_size:
        raise _fail(where, name, f"at least {kernel_size} x {kernel_size} after padding (kernel_size="
                    f"{kernel_size}, padding={padding})",
                    f"a {h} x {w} plane ({h + 2 * padding} x {w + 2 * padding} padded)")
    return x


def pool_input(x, name: str, pool_size: int, where: str) -> np.ndarray:
    """Inputs of Layer_MaxPool2D: (N, C, H, W) float32/float64 (other real data is converted to
    the default dtype), C order, H and W at least pool_size."""
    x = _spatial_input(x, name, None, where, "channels", None)
    h, w = x.shape[2], x.shape[3]
    if h < pool_size or w < pool_size:
        raise _fail(where, name, f"at least {pool_size} x {pool_size} in height and width (pool_size="
                    f"{pool_size})", f"a {h} x {w} plane")
    if h * w > 2**31 - 1:
        raise _fail(where, name, "planes of fewer than 2**31 elements", f"a {h} x {w} plane")
    return x


def flatten_input(x, name: str, where: str) -> np.ndarray:
    """Inputs of Layer_Flatten: at least 2-D (n_samples, ...), float32/float64 kept, C order."""
    x = float_input(x, name, where)
    if x.ndim < 2:
        raise _fail(where, name, "at least 2-D (n_samples, ...)", f"{x.ndim}-D array of shape {x.shape}")
    return x


def conv_parameter_error(which: str, state: dict) -> Exception:
    """Why a Layer_Conv2D's parameters or geometry cannot be used (e.g. replaced by hand)."""
    config = {name: state.get(name) for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding")}
    weights, biases = state.get("weights"), state.get("biases")
    k = config["kernel_size"]
    expected = (f"weights: a C-contiguous float32 or float64 array of shape (out_channels, in_channels, "
                f"kernel_size, kernel_size) = ({config['out_channels']}, {config['in_channels']}, {k}, {k}); "
                f"biases: the same dtype, shape ({config['out_channels']},); stride: an int >= 1; "
                f"padding: an int >= 0")
    return ValueError(f"Layer_Conv2D parameters are inconsistent ({which}): expected {expected}; got weights "
                      f"{describe(weights)}, biases {describe(biases)}, stride {config['stride']!r}, padding "
                      f"{config['padding']!r}. Use set_parameters() to replace weights and biases.")


def pool_parameter_error(state: dict) -> Exception:
    return ValueError(f"Layer_MaxPool2D: pool_size and stride must be ints >= 1, got pool_size "
                      f"{state.get('pool_size')!r} and stride {state.get('stride')!r}")
