"""What Model.train, evaluate and predict check and convert once per call, before any work: the
model is ready, the data has matching lengths, the targets fit the output (found by one probe
pass on the first sample), and the verbosity is known; and set_parameters' pairs, all checked
before any layer changes."""
from __future__ import annotations

import functools
import sys
import threading
import weakref

import numpy as np

from ._core import arrays as _arrays, checks as _checks
from ._core.config import default_dtype
from .losses import Loss_CategoricalCrossentropy


_VERBOSE = {True: "book", 1: "book", "book": "book", "progress": "progress", 2: "progress",
            False: "silent", 0: "silent", None: "silent", "silent": "silent"}


def verbosity(verbose) -> str:
    try:
        return _VERBOSE[verbose]
    except (KeyError, TypeError):
        raise ValueError(f"Model: verbose must be 'book' (True), 'progress' or 'silent' (False), got {verbose!r}") from None


def progress_bar(mode: str, total: int, epoch: int, epochs: int):
    if mode != "progress":
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError('verbose="progress" needs tqdm: pip install "fastnn[progress]"') from exc
    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False, file=sys.stderr)


def require_ready(model, where: str, *, training: bool, need_loss: bool = True) -> None:
    if "input_layer" not in model.__dict__:
        raise ValueError(f"{where}: call model.finalize() first")
    missing = [name for name, needed in (("loss", need_loss), ("optimizer", training),
                                        ("accuracy", need_loss)) if needed and name not in model.__dict__]
    if missing:
        args = ", ".join(f"{name}=..." for name in missing)
        raise ValueError(f"{where}: the model has no {' / '.join(missing)}; call model.set({args}) "
                         f"and model.finalize() first")
    check_links(model, where)
    if need_loss and model.layers[-1].next is not model.loss:
        raise ValueError(f"{where}: the loss changed after finalize(); call model.finalize() again")


def check_links(model, where: str) -> None:
    """The layers are still linked as finalize() linked them: none was added, replaced or moved
    since, and none was linked into another model finalized since (a layer object belongs to one
    model at a time: its prev/next and buffers are per model)."""
    layers = model.layers
    previous = model.input_layer
    for i, layer in enumerate(layers):
        linked_prev = getattr(layer, "prev", None)
        linked_next = getattr(layer, "next", None)
        if linked_prev is not previous or (i + 1 < len(layers) and linked_next is not layers[i + 1]):
            raise ValueError(
                f"{where}: layers[{i}] ({type(layer).__name__}) is not linked as finalize() linked it: layers "
                f"were added, replaced or reordered after finalize(), or this layer object is also in another "
                f"model finalized since (a layer belongs to one model: build separate layers for each); call "
                f"model.finalize() again")
        previous = layer


def instance(obj, name: str, where: str, method: str):
    """`obj` when it is an object with `method` (a layer's forward, a loss's calculate...); a
    TypeError that says what to write when it is a class (``Loss_CategoricalCrossentropy`` without
    parentheses) or lacks the method."""
    if isinstance(obj, type):
        raise TypeError(f"{where}: {name} must be an instance, got the class {obj.__name__} itself; write "
                        f"{obj.__name__}(...) with parentheses (and its arguments)")
    if not callable(getattr(obj, method, None)):
        raise TypeError(f"{where}: {name} must have a {method}() method, got {_checks.describe(obj)}")
    return obj


_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def serialized(method):
    """Run a Model method holding the model's own (re-entrant) lock: the layers keep their
    buffers on themselves, so two threads computing with one model at once would read each
    other's outputs. With the lock, concurrent predict/evaluate/train calls on one model run one
    after the other and each gets its own, correct result; different models run in parallel."""
    @functools.wraps(method)
    def locked(model, *args, **kwargs):
        lock = _LOCKS.get(model)
        if lock is None:
            with _LOCKS_LOCK:
                lock = _LOCKS.setdefault(model, threading.RLock())
        with lock:
            return method(model, *args, **kwargs)
    return locked


def input_dtype(model):
    for layer in model.trainable_layers:
        weights = getattr(layer, "weights", None)
        if isinstance(weights, np.ndarray) and weights.dtype in (np.float32, np.float64):
            return weights.dtype
    return default_dtype()


def prepare_inputs(model, X, where: str, name: str = "X") -> np.ndarray:
    X = _arrays.as_float_array(X, name, input_dtype(model, ), where)
    if X.ndim < 2:
        raise ValueError(f"{where}: {name} must be (n_samples, n_features) or more dimensions, got "
                         f"shape {X.shape}" + (" (reshape one sample with x.reshape(1, -1))" if X.ndim == 1 else ""))
    if len(X) == 0:
        raise ValueError(f"{where}: {name} has no samples")
    return X


def probe(model, X, where: str, name: str):
    """The output of one inference pass on X's first sample (a fresh array); a layer refusing
    it becomes an error that names X (the argument the caller passed). The pass runs with the
    layers' forward buffers set aside and every layer's attributes are restored afterwards, so
    a call refused after the probe leaves the layers as they were."""
    return _guarded_forward(model, X, X[:1], f"its first sample, {name}[:1]", where, name, keep=False)


def checked_forward(model, X, size: int, where: str, name: str):
    """probe's checks on X's first batch, X[:size], in the pass that computes it: the output of
    an inference pass on that batch; a layer refusing it becomes an error that names X and
    leaves every layer as it was, and a pass that succeeds leaves the layers' attributes as a
    forward does (held in fresh buffers). Model.predict's first batch: one pass instead of a
    probe and a pass."""
    tried = name if size >= len(X) else f"its first batch, {name}[:{size}]"
    return _guarded_forward(model, X, X[:size], tried, where, name, keep=True)


def _guarded_forward(model, X, batch, tried: str, where: str, name: str, keep: bool):
    objects = [obj for obj in (model.input_layer, *model.layers) if isinstance(getattr(obj, "__dict__", None), dict)]
    saved = [dict(obj.__dict__) for obj in objects]
    for obj in objects:
        for key in ("inputs", "output", "binary_mask"):
            obj.__dict__.pop(key, None)
    restored = False
    try:
        return model.forward(batch, training=False)
    except (TypeError, ValueError) as exc:
        _restore(objects, saved)
        restored = True
        raise type(exc)(f"{where}: {name} {X.shape} does not fit the model (tried on {tried}): {exc}") from None
    except BaseException:
        _restore(objects, saved)
        restored = True
        raise
    finally:
        if not keep and not restored:
            _restore(objects, saved)


def _restore(objects, saved) -> None:
    for obj, state in zip(objects, saved):
        obj.__dict__.clear()
        obj.__dict__.update(state)


def prepare_data(model, X, y, where: str, names=("X", "y")) -> tuple[np.ndarray, np.ndarray]:
    X = prepare_inputs(model, X, where, names[0])
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where}: {names[1]} must be an array of targets, got "
                            f"{type(y).__name__} ({exc})") from None
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"{where}: {names[0]} and {names[1]} must have the same number of samples, "
                         f"got {len(X)} and {'a scalar' if y.ndim == 0 else len(y)}")
    # The output shape tells how the targets must look: one forward pass on one sample.
    output = probe(model, X, where, names[0])
    n_outputs = output.shape[1] if output.ndim == 2 else None
    loss = model.loss
    if isinstance(loss, Loss_CategoricalCrossentropy):
        if n_outputs is None:
            raise ValueError(f"{where}: categorical cross-entropy needs outputs of shape (n_samples, n_classes); "
                             f"the model gives {output.shape[1:] or 'one number'} per sample")
        y = _arrays.class_labels(y, len(X), n_outputs, where, names[1], onehot_dtype=output.dtype,
                                     weights_for_log=True)
    elif y.dtype.kind in "biuf":
        if y.ndim == 1 and output.ndim == 2 and output.shape[1] == 1:
            y = y.reshape(-1, 1)
        if y.shape[1:] != output.shape[1:]:
            raise ValueError(f"{where}: {names[1]} must have shape (n_samples, {', '.join(map(str, output.shape[1:]))})"
                             f" to match the model's output, got {y.shape}")
        y = _arrays.as_float_array(y, names[1], output.dtype, where)
    else:
        raise TypeError(f"{where}: {names[1]} must hold numbers, got {_checks.describe(y)}")
    return X, y


def prepare_validation(model, validation_data, X, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(f"{where}: validation_data must be a pair (X_val, y_val), got "
                         f"{_checks.describe(validation_data)}")
    # Compare the sample shape before _prepare_data probes the model with X_val (a mismatch would
    # otherwise surface as a first layer's error that does not name X_val).
    X_val = prepare_inputs(model, validation_data[0], where, "X_val")
    if X_val.shape[1:] != X.shape[1:]:
        raise ValueError(f"{where}: X_val must have samples shaped like X's {X.shape[1:]}, got {X_val.shape[1:]}")
    return prepare_data(model, X_val, validation_data[1], where, ("X_val", "y_val"))


def checked_parameters(model, parameters, where: str) -> list:
    """set_parameters' argument as one (weights, biases) pair per trainable layer, each converted
    (or refused) by its layer: nothing is set until every pair passed."""
    if "trainable_layers" not in model.__dict__:
        raise ValueError(f"{where}: call model.finalize() first")
    try:
        parameters = list(parameters)
    except TypeError:
        raise TypeError(f"{where}: parameters must be a list of (weights, biases) pairs, got "
                        f"{_checks.describe(parameters)}") from None
    if len(parameters) != len(model.trainable_layers):
        raise ValueError(f"{where}: expected {len(model.trainable_layers)} (weights, biases) pairs, one "
                         f"per trainable layer, got {len(parameters)}")
    checked = []
    for i, (pair, layer) in enumerate(zip(parameters, model.trainable_layers)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{where}: parameters[{i}] must be a (weights, biases) pair, got "
                             f"{_checks.describe(pair)}")
        current = layer.get_parameters()
        for name, new, old in (("weights", pair[0], current[0]), ("biases", pair[1], current[1])):
            if np.shape(new) != np.shape(old):
                raise ValueError(f"{where}: parameters[{i}] {name} must have shape {np.shape(old)} "
                                 f"for {type(layer).__name__}, got {np.shape(new)}")
        # Every pair is converted (or refused) before any layer changes.
        check = getattr(layer, "_checked_parameters", None)
        checked.append(tuple(pair) if check is None else check(*pair))
    return checked
