"""Array arguments: conversion to the exact form the kernels read, or a clear error.

The compiled entry points check arrays at C speed and, when an argument is not already in the
exact form their loops need (C-contiguous, aligned, the layer's float dtype), hand it to these
functions, which either convert it (once, correctly) or raise a ``TypeError`` / ``ValueError``
naming the argument (message shape: see ``fastnn._core.checks``). Nothing is allocated before
``check_fits`` says the copy fits in memory.
"""
from __future__ import annotations

import numpy as np

from . import windows
from .checks import FLOAT_DTYPES, NUMERIC_KINDS, check_fits, describe, fail
from .config import default_dtype
from .messages import optimizer_array_error


def refuse_masked(x, name: str, where: str | None) -> None:
    """A masked array would lose its mask silently in np.asarray: say so instead."""
    if isinstance(x, np.ma.MaskedArray):
        raise fail(where, name, "a plain array (masked arrays are not supported: their mask would be ignored; "
                   "pass x.filled(value) or x.compressed())", describe(x), TypeError)


def contiguous(x, dtype) -> np.ndarray:
    """x as an exact ndarray of `dtype` (native byte order), C-contiguous and aligned: the form
    the kernels read through raw pointers. np.asarray alone returns an unaligned array unchanged
    (np.frombuffer at an odd offset, a field of a packed structured array), which the kernels
    refuse; such an array is copied here. 0-d arrays stay 0-d (np.ascontiguousarray would make
    them 1-d)."""
    x = np.asarray(x, dtype=dtype, order="C")
    if not x.flags.aligned:
        x = x.copy(order="C")
    return x


def _needs_copy(x: np.ndarray, dtype: np.dtype) -> bool:
    return not (type(x) is np.ndarray and x.dtype == dtype and x.flags.c_contiguous and x.flags.aligned)


def _convert(x: np.ndarray, name: str, dtype, where: str) -> np.ndarray:
    """x (a numeric ndarray) as contiguous(x, dtype), refusing what does not fit in memory and
    finite values that would become inf (float64 data beyond float32's range)."""
    dtype = np.dtype(dtype)
    if not _needs_copy(x, dtype):
        return x
    check_fits(x.size, dtype.itemsize, name, where, f"its {dtype} copy")
    if x.dtype.kind == "f" and x.dtype.itemsize > dtype.itemsize:
        with np.errstate(over="ignore"):
            result = contiguous(x, dtype)
        infinite = np.isinf(result)
        if infinite.any() and np.isfinite(x[infinite]).any():
            largest = float(np.finfo(dtype).max)
            raise fail(where, name, f"within {dtype}'s range (|x| <= {largest:.4g})",
                        f"finite values up to {float(np.nanmax(np.abs(x[np.isfinite(x)]))):.4g} in "
                        f"{describe(x)}; scale the data or use dtype=float64")
        return result
    return contiguous(x, dtype)


def as_float_array(x, name: str, dtype: np.dtype, where: str, *, ndim: int | None = None) -> np.ndarray:
    """x as a C-contiguous ndarray of `dtype` (converted once when needed).

    Accepts ndarrays and array-likes of bool/int/uint/float data; refuses complex, object, string,
    datetime and structured data with a TypeError, and the wrong number of dimensions (when `ndim`
    is given), arrays too large to convert in memory and finite values beyond `dtype`'s range with
    a ValueError.
    """
    refuse_masked(x, name, where)
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError, OverflowError) as exc:
            raise fail(where, name, "an array of numbers", f"{type(x).__name__} ({exc})", TypeError) from None
    if x.dtype.kind not in NUMERIC_KINDS:
        raise fail(where, name, f"an array of real numbers (converted to {np.dtype(dtype)})", describe(x), TypeError)
    if ndim is not None and x.ndim != ndim:
        raise fail(where, name, f"{ndim}-D", f"{x.ndim}-D ({describe(x)})")
    return _convert(x, name, dtype, where)


def layer_input(x, name: str, dtype: np.dtype, n_features: int | None, where: str) -> np.ndarray:
    """Inputs of a layer: 2-D (n_samples, n_features) of the layer's dtype, C order."""
    refuse_masked(x, name, where)
    if not isinstance(x, np.ndarray):
        x = as_float_array(x, name, dtype, where)
    elif x.dtype.kind not in NUMERIC_KINDS:
        raise fail(where, name, f"an array of real numbers (converted to {np.dtype(dtype)})", describe(x), TypeError)
    if x.ndim != 2:
        hint = " (reshape a single sample with x.reshape(1, -1))" if x.ndim == 1 else ""
        raise fail(where, name, f"2-D (n_samples, {n_features if n_features is not None else 'n_features'})",
                    f"{x.ndim}-D array of shape {x.shape}{hint}")
    if n_features is not None and x.shape[1] != n_features:
        raise fail(where, name, f"of shape (n_samples, {n_features})", f"shape {x.shape}")
    return _convert(x, name, dtype, where)


def _float_dtype_of(x):
    """The dtype a parameter-free layer keeps: float32/float64 data keep theirs (in native byte
    order: x.dtype.type, not x.dtype); other real data get fastnn's default dtype."""
    if isinstance(x, np.ndarray) and x.dtype.type in (np.float32, np.float64):
        return np.dtype(x.dtype.type)
    return default_dtype()


def float_input(x, name: str, where: str, *, ndim: int | None = None) -> np.ndarray:
    """Inputs of a parameter-free layer: float32/float64 arrays keep their dtype; other real data
    is converted to fastnn's default dtype. C order."""
    return as_float_array(x, name, _float_dtype_of(x), where, ndim=ndim)


def predictions(x, name: str, where: str) -> np.ndarray:
    """Predictions (or their gradient) handed to a loss: 2-D (n_samples, n_outputs) with at least
    one output column, float32/float64 kept, other real data converted to the default dtype."""
    x = float_input(x, name, where, ndim=2)
    if x.shape[1] == 0:
        raise fail(where, name, "(n_samples, n_outputs) with at least one output column", f"shape {x.shape}")
    return x


def gradient_input(x, name: str, like: np.ndarray, where: str) -> np.ndarray:
    """A gradient passed to backward(): same shape as `like` (the forward's output), its dtype."""
    if isinstance(x, np.ndarray) and x.dtype.kind in NUMERIC_KINDS and x.shape != like.shape:
        raise fail(where, name, f"of shape {like.shape} (the shape of the forward pass's output)",
                    f"shape {x.shape}")
    x = as_float_array(x, name, like.dtype, where)
    if x.shape != like.shape:
        raise fail(where, name, f"of shape {like.shape} (the shape of the forward pass's output)",
                    f"shape {x.shape}")
    return x


def dense_parameters(weights, biases, layer_dtype: np.dtype, where: str) -> tuple[np.ndarray, np.ndarray]:
    """New (weights, biases) for a dense layer: 2-D non-empty weights (n_inputs, n_neurons) and
    biases (1, n_neurons) of one float dtype (the weights' when float32/float64, else the layer's).
    Arrays already in that form are returned as given (no copy, as the book)."""
    dtype = _float_dtype_of(weights) if isinstance(weights, np.ndarray) and \
        weights.dtype.type in (np.float32, np.float64) else np.dtype(layer_dtype)
    weights = as_float_array(weights, "weights", dtype, where, ndim=2)
    biases = as_float_array(biases, "biases", dtype, where, ndim=2)
    if weights.size == 0:
        raise fail(where, "weights", "non-empty (n_inputs, n_neurons)", f"shape {weights.shape}")
    if biases.shape != (1, weights.shape[1]):
        raise fail(where, "biases", f"of shape (1, {weights.shape[1]}) to match weights {weights.shape}",
                    f"shape {biases.shape}")
    return weights, biases


def dense_size(n_inputs: int, n_neurons: int, where: str) -> None:
    """A Layer_Dense(n_inputs, n_neurons) must fit: its weights are drawn as float64 first."""
    check_fits(n_inputs * n_neurons, 8, "n_inputs * n_neurons", where,
               f"the ({n_inputs}, {n_neurons}) weight matrix")


def layer_state(layer, where: str) -> dict:
    """The attribute dict of a layer an optimizer updates."""
    state = getattr(layer, "__dict__", None)
    if not isinstance(state, dict):
        raise fail(where, "layer", "a layer object with weights and biases (e.g. Layer_Dense)",
                    describe(layer), TypeError)
    return state


def check_trainable(layer, where: str) -> None:
    """Before an optimizer creates its state on a layer: weights/biases and their gradients exist
    and match, so a failed first update leaves the layer without new attributes."""
    layer_state(layer, where)
    for param, grad in (("weights", "dweights"), ("biases", "dbiases")):
        p = getattr(layer, param, None)
        g = getattr(layer, grad, None)
        if type(p) is not np.ndarray or p.dtype not in FLOAT_DTYPES or not p.flags.c_contiguous \
                or not p.flags.aligned or not p.flags.writeable:
            raise optimizer_array_error(where, param, p, None)
        if type(g) is not np.ndarray or g.dtype != p.dtype or g.shape != p.shape or not g.flags.c_contiguous \
                or not g.flags.aligned:
            raise optimizer_array_error(where, grad, g, p)


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, where: str) -> None:
    if a.shape != b.shape:
        raise fail(where, f"{name_a} and {name_b}", "the same shape", f"{a.shape} and {b.shape}")


def class_labels(y, n_samples: int, n_classes: int, where: str, name: str = "y_true",
                 onehot_dtype=np.float64, *, weights_for_log: bool = False) -> np.ndarray:
    """Categorical targets: sparse class ids (n_samples,) in [0, n_classes) -> intp, or one-hot
    (n_samples, n_classes) -> rows of `onehot_dtype` that are not checked to sum to 1 (the book's
    formula works with any weights).

    weights_for_log (the cross-entropy's forward, which takes -log of each row's weighted sum of
    probabilities): one-hot rows must be finite and non-negative with at least one positive weight,
    else the loss is -log(0) = inf or -log(negative) = NaN from finite data. (The gradients
    -y/p and softmax - one-hot(argmax y) are finite for any finite weights.) The same rule as
    fastnn._ext._losses.labels_ready, which checks labels already in the kernels' form."""
    refuse_masked(y, name, where)
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except (ValueError, TypeError, OverflowError) as exc:
            raise fail(where, name, "class ids or one-hot rows of numbers", f"{type(y).__name__} ({exc})",
                        TypeError) from None
    if y.dtype.kind not in NUMERIC_KINDS:
        raise fail(where, name, "class ids or one-hot rows of numbers", describe(y), TypeError)
    if y.ndim == 1:
        if y.shape[0] != n_samples:
            raise fail(where, name, f"of length {n_samples} (one label per sample)", f"length {y.shape[0]}")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise fail(where, name, "whole-number class ids", "non-integer values", TypeError)
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise fail(where, name, f"class ids in [0, {n_classes})",
                        f"values from {y.min()} to {y.max()}")
        return contiguous(y, np.intp)
    if y.ndim == 2:
        if y.shape != (n_samples, n_classes):
            raise fail(where, name, f"one-hot of shape ({n_samples}, {n_classes}) or class ids of shape "
                        f"({n_samples},)", f"shape {y.shape}")
        y = _convert(y, name, onehot_dtype, where)
        if weights_for_log and y.size:
            with np.errstate(invalid="ignore"):
                usable = np.all(np.isfinite(y) & (y >= 0), axis=1) & np.any(y > 0, axis=1)
            if not usable.all():
                row = int(np.argmin(usable))
                raise fail(where, name, "one-hot rows of finite, non-negative weights with at least one positive "
                            "weight per row (the loss takes the log of each row's weighted sum)",
                            f"row {row} = {np.array2string(y[row], threshold=8)}")
        return y
    raise fail(where, name, "1-D class ids or 2-D one-hot rows", f"{y.ndim}-D array of shape {y.shape}")


def targets_like(y, predictions: np.ndarray, where: str, name: str = "y_true") -> np.ndarray:
    """Targets of an elementwise loss (BCE, MSE, MAE): the predictions' shape and dtype.
    A 1-D y of length n against (n, 1) predictions is accepted as a column (the book's
    y.reshape(-1, 1))."""
    if isinstance(y, np.ndarray) and y.dtype.kind in NUMERIC_KINDS and y.size != predictions.size:
        raise fail(where, name, f"of shape {predictions.shape} (the shape of the predictions)", f"shape {y.shape}")
    y = as_float_array(y, name, predictions.dtype, where)
    if y.ndim == 1 and predictions.ndim == 2 and predictions.shape[1] == 1 and y.shape[0] == predictions.shape[0]:
        y = y.reshape(-1, 1)
    if y.shape != predictions.shape:
        raise fail(where, name, f"of shape {predictions.shape} (the shape of the predictions)", f"shape {y.shape}")
    return y


def numeric_values(y, name: str, where: str) -> np.ndarray:
    """y as an ndarray of real numbers (no conversion), non-empty."""
    refuse_masked(y, name, where)
    y = np.asarray(y)
    if y.dtype.kind not in NUMERIC_KINDS:
        raise fail(where, name, "an array of real numbers", describe(y), TypeError)
    if y.size == 0:
        raise fail(where, name, "non-empty", describe(y))
    return y


def _spatial_input(x, name: str, dtype, where: str, channels_name: str, channels: int | None) -> np.ndarray:
    if dtype is None:
        x = float_input(x, name, where)
    else:
        x = as_float_array(x, name, dtype, where)
    if x.ndim != 4:
        hint = (" (add the channel axis of a grayscale batch with x[:, None])" if x.ndim == 3 else
                " (reshape flat samples with x.reshape(n, channels, height, width))" if x.ndim == 2 else "")
        ch = channels if channels is not None else "channels"
        raise fail(where, name, f"4-D (n_samples, {ch}, height, width)",
                    f"{x.ndim}-D array of shape {x.shape}{hint}")
    if channels is not None and x.shape[1] != channels:
        raise fail(where, name, f"of shape (n_samples, {channels}, height, width) ({channels_name}="
                    f"{channels})", f"shape {x.shape} with {x.shape[1]} channels")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise fail(where, name, "non-empty in height and width", f"shape {x.shape}")
    return x


def _fits_window(x: np.ndarray, name: str, where: str, window_name: str, window, padding) -> None:
    """x's (H, W) plane, padded, holds at least one window of `window` (an int or a pair)."""
    h, w = x.shape[2], x.shape[3]
    kh, kw = windows.pair(window)
    top, bottom, left, right = windows.paddings(padding, window)
    if h + top + bottom < kh or w + left + right < kw:
        raise fail(where, name, f"at least {kh} x {kw} after padding ({window_name}={window!r}, padding={padding!r})",
                    f"a {h} x {w} plane ({h + top + bottom} x {w + left + right} padded)")


def conv_input(x, name: str, dtype: np.dtype, in_channels: int, kernel_size, padding, where: str) -> np.ndarray:
    """Inputs of Layer_Conv2D: (N, in_channels, H, W) of the layer's dtype, C order, whose plane,
    padded, holds a kernel (kernel_size and padding as the layer has them: ints, pairs, "same")."""
    x = _spatial_input(x, name, dtype, where, "in_channels", in_channels)
    _fits_window(x, name, where, "kernel_size", kernel_size, padding)
    return x


def pool_input(x, name: str, pool_size, padding, where: str) -> np.ndarray:
    """Inputs of Layer_MaxPool2D: (N, C, H, W) float32/float64 (other real data is converted to
    the default dtype), C order, whose plane, padded, holds a window."""
    x = _spatial_input(x, name, None, where, "channels", None)
    _fits_window(x, name, where, "pool_size", pool_size, padding)
    h, w = x.shape[2], x.shape[3]
    if h * w > 2**31 - 1:
        raise fail(where, name, "planes of fewer than 2**31 elements", f"a {h} x {w} plane")
    return x


def features_input(x, name: str, dtype: np.dtype, n_features: int, where: str) -> np.ndarray:
    """Inputs of Layer_BatchNorm: (N, n_features, ...) of the layer's dtype, C order (the shape is
    checked before any conversion of an ndarray)."""
    expected = f"(n_samples, {n_features}) or (n_samples, {n_features}, ...): n_features={n_features} on axis 1"
    if isinstance(x, np.ndarray) and x.dtype.kind in NUMERIC_KINDS and (x.ndim < 2 or x.shape[1] != n_features):
        raise fail(where, name, expected, f"{x.ndim}-D array of shape {x.shape}")
    x = as_float_array(x, name, dtype, where)
    if x.ndim < 2 or x.shape[1] != n_features:
        raise fail(where, name, expected, f"{x.ndim}-D array of shape {x.shape}")
    return x


def planes_input(x, name: str, where: str) -> np.ndarray:
    """Inputs of Layer_GlobalAveragePool2D: (N, C, H, W) float32/float64 (other real data is
    converted to the default dtype), C order, with non-empty planes."""
    return _spatial_input(x, name, None, where, "channels", None)


def flatten_input(x, name: str, where: str) -> np.ndarray:
    """Inputs of Layer_Flatten: at least 2-D (n_samples, ...), float32/float64 kept, C order."""
    x = float_input(x, name, where)
    if x.ndim < 2:
        raise fail(where, name, "at least 2-D (n_samples, ...)", f"{x.ndim}-D array of shape {x.shape}")
    return x

