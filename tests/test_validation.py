"""Every public entry point refuses every bad argument with the promised error, and a refused call
changes nothing (fastnn/_core/checks.py states the rules).

The rows every declared class gets from its case (bad inputs and gradients of every layer, bad
predictions and targets of every loss, broken layers for every optimizer) are generated in
tests/contract/test_refusals.py, and the constructors' rows are derived from their declared
constraints in tests/contract/test_constructors.py; this table holds the rest: exact messages,
class-specific edge values, the Model, the datasets and fastnn.init.

One table: (entry point, bad argument) -> (error type, what the message must name). Each case
builds a fresh object in a used state (buffers from an earlier call, optimizer state, accumulators),
takes a deep snapshot of it (every attribute of every fastnn object reachable from it: arrays by
identity, dtype, shape, flags and bytes; other values by equality) and of NumPy's global RNG,
makes the call, and checks the error, the message and that the snapshot is unchanged.

Messages follow ``"<Owner>.<method>: <argument> must be <expected>, got <what came>"``; the check
here is that the message names the argument (and, where the case gives one, what was expected).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest

import fastnn
import _book
from fastnn._core import checks as _validation
from fastnn.datasets import (load_cifar10, load_fashion_mnist, load_image_folder, load_iris, load_malaria,
                             load_mnist, sine_data, spiral_data, vertical_data)

from _state import assert_refused_and_unchanged, on, snapshot

# ---------------------------------------------------------------------------------------------
# Subjects in a used state

X, Y = spiral_data(20, 3)                       # (60, 2) float32, uint8 labels


def dense(dtype=np.float32):
    np.random.seed(0)
    layer = fastnn.Layer_Dense(2, 4, weight_regularizer_l2=1e-3, dtype=dtype)
    layer.forward(X[:6].astype(dtype))
    layer.backward(np.ones((6, 4), dtype))
    return layer


def model(loss_name="Loss_CategoricalCrossentropy", trained_steps=1):
    np.random.seed(1)
    m = _book.build_model(fastnn, [
        fastnn.Layer_Dense(2, 8), fastnn.Activation_ReLU(), fastnn.Layer_Dropout(0.1), fastnn.Layer_Dense(8, 3),
        fastnn.Activation_Softmax()], loss=getattr(fastnn, loss_name)(),
        optimizer=fastnn.Optimizer_Adam(learning_rate=0.01), accuracy=fastnn.Accuracy_Categorical())
    if trained_steps:
        m.train(X, Y, epochs=trained_steps, verbose=False)
    return m


def parameters_of(m, change_second=None):
    pairs = [(w.copy(), b.copy()) for w, b in m.get_parameters()]
    if change_second is not None:
        pairs[1] = change_second
    return pairs


# ---------------------------------------------------------------------------------------------
# The table: id -> (build() -> (subject, call), error, regex the message must match)

CASES = {}


def case(name, build, error, names):
    assert name not in CASES, name
    CASES[name] = (build, error, names)


def construct(cls, *args, **kwargs):
    return lambda: (None, lambda: cls(*args, **kwargs))


# --- constructors ------------------------------------------------------------------------------
for label, args, kwargs, error, names in [
    ("n_inputs 0", (0, 3), {}, ValueError, "n_inputs must be a positive int, got 0"),
    ("n_inputs float", (2.0, 3), {}, TypeError, "n_inputs must be a positive int, got float 2.0"),
    ("n_inputs bool", (True, 3), {}, TypeError, "n_inputs must be a positive int, got the bool True"),
    ("product overflows", (2 ** 31 - 1, 2 ** 31 - 1), {}, ValueError, r"n_inputs \* n_neurons"),
    ("size beyond a C int", (2 ** 40, 3), {}, ValueError, r"n_inputs must be at most 2147483647"),
    ("l1 negative", (2, 3, -0.1), {}, ValueError, r"weight_regularizer_l1 must be in \[0, inf\)"),
    ("l2 nan", (2, 3, 0, float("nan")), {}, ValueError, "weight_regularizer_l2 must be finite"),
    ("bias l1 inf", (2, 3, 0, 0, math.inf), {}, ValueError, "bias_regularizer_l1 must be finite"),
    ("bias l2 str", (2, 3, 0, 0, 0, "0.1"), {}, TypeError, "bias_regularizer_l2 must be a real number"),
    ("dtype int", (2, 3), {"dtype": "int32"}, TypeError, "dtype must be float32 or float64"),
    ("dtype nonsense", (2, 3), {"dtype": "float99"}, TypeError, "dtype"),
]:
    case(f"Layer_Dense() {label}", construct(fastnn.Layer_Dense, *args, **kwargs), error, names)

for label, kwargs, error, names in [
    ("rate 1", {"rate": 1}, ValueError, r"Layer_Dropout: rate must be in \[0, 1\), got 1"),
    ("mode", {"rate": 0.1, "mode": "slow"}, ValueError, "Layer_Dropout: mode must be one of 'fast', 'book'"),
    ("mode list", {"rate": 0.1, "mode": ["fast"]}, ValueError, "mode"),
]:
    case(f"Layer_Dropout() {label}", construct(fastnn.Layer_Dropout, **kwargs), error, names)

# --- Layer_Dense -------------------------------------------------------------------------------
for label, value, error, names in [
    ("0-d", np.float32(1.0), ValueError, r"inputs must be 2-D \(n_samples, 2\), got 0-D"),
    ("1-d", np.ones(2, np.float32), ValueError, r"inputs must be 2-D .*reshape a single sample"),
    ("3-d", np.ones((2, 2, 2)), ValueError, "inputs must be 2-D"),
    ("features", np.ones((4, 3), np.float32), ValueError,
     r"inputs must be of shape \(n_samples, 2\), got shape \(4, 3\)"),
    ("no features", np.ones((4, 0)), ValueError, r"inputs must be of shape \(n_samples, 2\)"),
    ("object", np.ones((4, 2), object), TypeError, "inputs must be an array of real numbers"),
    ("datetime", np.zeros((4, 2), "datetime64[s]"), TypeError, "inputs"),
    ("timedelta", np.zeros((4, 2), "m8[s]"), TypeError, "inputs"),
    ("ragged list", [[1, 2], [3]], TypeError, "inputs must be an array of numbers"),
    ("beyond float32", np.full((4, 2), 1e300), ValueError, r"inputs must be within float32's range"),
]:
    case(f"Layer_Dense.forward {label}", on(dense, "forward", value), error, f"Layer_Dense.forward: {names}")

for label, value, error, names in [
    ("shape", np.ones((6, 3), np.float32), ValueError, r"dvalues must be of shape \(6, 4\) \(the shape of the forward"),
    ("rows", np.ones((5, 4), np.float32), ValueError, "dvalues must be of shape"),
    ("0-d", np.float64(1.0), ValueError, r"dvalues must be of shape \(6, 4\).*got shape \(\)"),
    ("huge", np.broadcast_to(np.float64(0), (10 ** 13, 4)), ValueError, "dvalues"),
]:
    case(f"Layer_Dense.backward {label}", on(dense, "backward", value), error, f"Layer_Dense.backward: {names}")
for label, args, error, names in [
    ("weights 1-d", (np.ones(4), np.zeros((1, 4))), ValueError, "weights must be 2-D"),
    ("biases shape", (np.ones((2, 4)), np.zeros(4)), ValueError, "biases must be 2-D"),
    ("biases width", (np.ones((2, 4)), np.zeros((1, 3))), ValueError, r"biases must be of shape \(1, 4\)"),
    ("empty", (np.ones((2, 0)), np.zeros((1, 0))), ValueError, "weights must be non-empty"),
    ("strings", (np.full((2, 4), "a"), np.zeros((1, 4))), TypeError, "weights must be an array of real numbers"),
    ("complex biases", (np.ones((2, 4)), np.zeros((1, 4), complex)), TypeError, "biases"),
    ("None", (None, None), TypeError, "weights"),
]:
    case(f"Layer_Dense.set_parameters {label}", on(dense, "set_parameters", *args), error,
         f"Layer_Dense.set_parameters: {names}")

# --- Model with one-hot targets -------------------------------------------------------------------
case("Model.train one-hot zero row", on(model, "train", X, np.zeros((60, 3)), verbose=False), ValueError,
     "Model.train: y must be one-hot rows of finite, non-negative weights")

# --- Accuracy ---------------------------------------------------------------------------------
case("Accuracy_Categorical.calculate shapes", on(fastnn.Accuracy_Categorical, "calculate", np.zeros(3), np.zeros(4)),
     ValueError, "predictions and y must have the same shape")
case("Accuracy_Regression.init strings", on(fastnn.Accuracy_Regression, "init", np.array(["a", "b"])), TypeError,
     "Accuracy_Regression.init: y must be an array of real numbers")
case("Accuracy_Regression.init empty", on(fastnn.Accuracy_Regression, "init", np.zeros(0)), ValueError,
     "Accuracy_Regression.init: y must be non-empty")
case("Accuracy_Regression.compare before init",
     on(fastnn.Accuracy_Regression, "calculate", np.zeros(3), np.zeros(3)), ValueError, r"call init\(y\) first")

# --- Model --------------------------------------------------------------------------------------
for method in ("train", "evaluate", "predict"):
    where = f"Model.{method}"
    bad_X = [
        ("strings", X.astype(str), TypeError, "X must be an array of real numbers"),
        ("None", None, TypeError, "X must be an array of real numbers"),
        ("1-d", X[:, 0], ValueError, r"X must be \(n_samples, n_features\) or more dimensions"),
        ("3-d", X[:, :, None], ValueError, r"X \(60, 2, 1\) does not fit the model \(tried on "
         + (r"X\)" if method == "predict" else r"its first sample, X\[:1\]\)") + r": Layer_Dense.forward"),
        ("features", np.hstack([X, X]), ValueError, r"X \(60, 4\) does not fit the model"),
        ("empty", X[:0], ValueError, "X has no samples"),
        ("huge", np.broadcast_to(X[:1], (10 ** 11, 2)), ValueError, "X must be small enough to fit in memory"),
        ("beyond float32", X.astype(np.float64) * 1e300, ValueError, "X must be within float32's range"),
        ("complex", X.astype(complex), TypeError, "X must be an array of real numbers"),
    ]
    for label, value, error, names in bad_X:
        if method == "predict":
            build = on(model, "predict", value)
        elif label == "huge":
            build = on(model, method, value, np.broadcast_to(np.uint8(0), (10 ** 11,)), verbose=False)
        else:
            build = on(model, method, value, Y[:len(value)] if np.ndim(value) else Y, verbose=False)
        case(f"{where} X {label}", build, error, f"{where}: {names}")
    if method == "predict":
        continue
    for label, value, error, names in [
        ("length", Y[:-1], ValueError, "X and y must have the same number of samples, got 60 and 59"),
        ("scalar", 1, ValueError, "X and y must have the same number of samples"),
        ("out of range", Y + 1, ValueError, r"y must be class ids in \[0, 3\)"),
        ("negative", Y.astype(int) - 1, ValueError, r"y must be class ids in \[0, 3\)"),
        ("fractional", Y + 0.25, TypeError, "y must be whole-number class ids"),
        ("strings", Y.astype(str), TypeError, "y must be class ids or one-hot rows of numbers"),
        ("one-hot width", np.eye(5)[Y], ValueError, r"y must be one-hot of shape \(60, 3\)"),
        ("ragged", [[0]] * 59 + [[0, 1]], TypeError, "y must be an array of targets"),
    ]:
        case(f"{where} y {label}", on(model, method, X, value, verbose=False), error, f"{where}: {names}")
    case(f"{where} batch_size 0", on(model, method, X, Y, batch_size=0, verbose=False), ValueError,
         f"{where}: batch_size must be a positive int, got 0")
    case(f"{where} batch_size bool", on(model, method, X, Y, batch_size=True, verbose=False), TypeError,
         f"{where}: batch_size must be a positive int, got the bool True")
    case(f"{where} verbose", on(model, method, X, Y, verbose="loud"), ValueError, "verbose must be")
for label, kwargs, error, names in [
    ("epochs 0", {"epochs": 0}, ValueError, "epochs must be a positive int"),
    ("epochs float", {"epochs": 2.0}, TypeError, "epochs must be a positive int"),
    ("epochs bool", {"epochs": True}, TypeError, "epochs"),
    ("print_every", {"print_every": -1}, ValueError, "print_every"),
    ("validation not a pair", {"validation_data": (X,)}, ValueError,
     r"validation_data must be a pair \(X_val, y_val\)"),
    ("validation X", {"validation_data": (X[:, :1], Y)}, ValueError, "X_val must have samples shaped like X's"),
    ("validation y", {"validation_data": (X, Y[:5])}, ValueError, "X_val and y_val must have the same number"),
    ("validation labels", {"validation_data": (X, Y + 3)}, ValueError, r"y_val must be class ids in \[0, 3\)"),
]:
    case(f"Model.train {label}", on(model, "train", X, Y, verbose=False, **kwargs), error, f"Model.train: {names}")
case("Model.train regression targets shape",
     on(lambda: model("Loss_MeanSquaredError", 0), "train", X, np.zeros((60, 2)), verbose=False),
     ValueError, r"Model.train: y must have shape \(n_samples, 3\)")


def model_after_one_sample():
    """A model whose buffers have one row (its last pass was a one-sample predict): the data probe
    of train/evaluate would reuse them in place if it did not set them aside."""
    m = model()
    m.predict(X[30:31])                # another sample than the probe's X[:1]
    return m


case("Model.evaluate y out of range after a one-sample pass", on(model_after_one_sample, "evaluate", X, Y + 1,
                                                                 verbose=False),
     ValueError, r"Model.evaluate: y must be class ids in \[0, 3\)")
case("Model.train y out of range after a one-sample pass", on(model_after_one_sample, "train", X, Y + 1,
                                                              verbose=False),
     ValueError, r"Model.train: y must be class ids in \[0, 3\)")
case("Model.train before finalize", lambda: (lambda m: (m, lambda: m.train(X, Y)))(fastnn.Model()), ValueError,
     r"Model.train: call model.finalize\(\) first")

for label, value, error, names in [
    ("not iterable", 5, TypeError, "parameters must be a list of"),
    ("None", None, TypeError, "parameters must be a list of"),
    ("count", [(np.zeros((2, 8)), np.zeros((1, 8)))], ValueError, "expected 2 .weights, biases. pairs"),
    ("not a pair", [(1, 2, 3), (1, 2)], ValueError, r"parameters\[0\] must be a \(weights, biases\) pair"),
    ("shape", "shape", ValueError, r"parameters\[1\] weights must have shape \(8, 3\)"),
    ("second layer strings", "strings", TypeError,
     "Layer_Dense.set_parameters: weights must be an array of real numbers"),
    ("second layer complex", "complex", TypeError, "Layer_Dense.set_parameters: biases must be an array of real"),
]:
    def build(value=value):
        m = model()
        seconds = {"shape": (np.zeros((8, 4)), np.zeros((1, 3))), "strings": (np.full((8, 3), "a"), np.zeros((1, 3))),
                   "complex": (np.zeros((8, 3)), np.zeros((1, 3), complex))}
        second = seconds.get(value) if isinstance(value, str) else None
        arg = parameters_of(m, second) if second is not None else value
        return m, lambda: m.set_parameters(arg)
    case(f"Model.set_parameters {label}", build, error, names)

for method, args in [("save", ()), ("load", ()), ("save_parameters", ()), ("load_parameters", ())]:
    for label, path, error, names in [
        ("int (a file descriptor)", 0, TypeError, "path must be a str or os.PathLike path, got int 0"),
        ("None", None, TypeError, "path must be a str or os.PathLike path, got None"),
        ("bytes", b"model.zip", TypeError, "path must be a str or os.PathLike path"),
        ("empty", "", ValueError, "path must be a non-empty path"),
    ]:
        if method == "load":
            build = (lambda path=path: (None, lambda: fastnn.Model.load(path)))
        else:
            build = on(model, method, path)
        case(f"Model.{method} path {label}", build, error, f"Model.{method}: {names}")
case("Model.load allow_pickle", lambda: (None, lambda: fastnn.Model.load("x.zip", allow_pickle="yes")), TypeError,
     "allow_pickle must be True or False")
case("Model.save format", on(model, "save", "x.zip", format="json"), ValueError, "format must be 'fastnn'")

# --- datasets and fastnn.init ---------------------------------------------------------------------
for function in (spiral_data, vertical_data):
    for label, args, error, names in [
        ("samples 0", (0, 3), ValueError, "samples must be a positive int, got 0"),
        ("samples float", (2.5, 3), TypeError, "samples must be a positive int, got float 2.5"),
        ("samples bool", (True, 3), TypeError, "samples must be a positive int, got the bool True"),
        ("classes too many", (10, 257), ValueError, "classes must be at most 256, got 257"),
        ("classes None", (10, None), TypeError, "classes"),
        ("too large", (10 ** 12, 100), ValueError, r"samples \* classes must be small enough to fit in memory"),
    ]:
        case(f"{function.__name__} {label}", (lambda f=function, a=args: (None, lambda: f(*a))), error, names)
    case(f"{function.__name__} dtype", (lambda f=function: (None, lambda: f(3, 2, dtype="int8"))), TypeError,
         "dtype must be float32 or float64, got int8")
case("sine_data samples", lambda: (None, lambda: sine_data("5")), TypeError,
     "samples must be a positive int, got str '5'")
case("sine_data too large", lambda: (None, lambda: sine_data(10 ** 13)), ValueError, "samples must be small enough")
case("load_iris dtype", lambda: (None, lambda: load_iris(dtype=np.int64)), TypeError,
     "dtype must be float32 or float64")
for loader in (load_mnist, load_fashion_mnist, load_cifar10, load_malaria):
    for label, kwargs, error, names in [
        ("data_home int", {"data_home": 5}, TypeError, "data_home must be a str or os.PathLike path, got int 5"),
        ("data_home bytes", {"data_home": b"/tmp"}, TypeError, "data_home"),
        ("data_home empty", {"data_home": ""}, ValueError, "data_home must be a non-empty path"),
        ("download str", {"download": "yes"}, TypeError, "download must be True or False"),
        ("download int", {"download": 1}, TypeError, "download must be True or False, got int 1"),
    ]:
        case(f"{loader.__name__} {label}", (lambda f=loader, k=kwargs: (None, lambda: f(**k))), error, names)
for label, kwargs, error, names in [
    ("path None", {"path": None}, TypeError, "path must be a str or os.PathLike path, got None"),
    ("path int", {"path": 3}, TypeError, "path"),
    ("image_size zero", {"path": ".", "image_size": (0, 3)}, ValueError,
     r"image_size\[0\] \(height\) must be a positive int"),
    ("image_size str", {"path": ".", "image_size": "ab"}, TypeError, "image_size must be None or a"),
    ("color_mode", {"path": ".", "color_mode": "RGB"}, ValueError, "color_mode must be one of"),
    ("layout", {"path": ".", "layout": "nchw"}, ValueError, "layout must be one of"),
]:
    case(f"load_image_folder {label}", (lambda k=kwargs: (None, lambda: load_image_folder(**k))), error, names)
for label, kwargs, error, names in [
    ("dtype", {"dtype": "float16"}, TypeError, "fastnn.init: dtype must be float32 or float64, got float16"),
    ("seed str", {"random_seed": "x"}, TypeError, "fastnn.init: random_seed must be None or an int"),
    ("seed negative", {"random_seed": -1, "dtype": "float64"}, ValueError, "random_seed"),
    ("seed bool", {"random_seed": True}, TypeError, "random_seed"),
    ("dropout_mode", {"dropout_mode": "slow", "random_seed": 5}, ValueError,
     "fastnn.init: dropout_mode must be one of"),
]:
    case(f"fastnn.init {label}", (lambda k=kwargs: (None, lambda: fastnn.init(**k))), error, names)


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_argument_is_refused_and_changes_nothing(name, tmp_path, monkeypatch):
    build, error, names = CASES[name]
    monkeypatch.chdir(tmp_path)           # paths in the table are relative: nothing lands in the repo
    assert_refused_and_unchanged(build, error, names, tmp_path)


def test_the_table_covers_every_public_entry_point():
    """Every public entry point that the contract suite does not generate rows for (the Model,
    Dense's set_parameters, the datasets, fastnn.init; and the exact messages of Dense and
    Dropout) has at least one case."""
    names = " ".join(CASES)
    expected = [
        "Layer_Dense()", "Layer_Dense.forward", "Layer_Dense.backward", "Layer_Dense.set_parameters",
        "Layer_Dropout()", "Accuracy_Categorical.calculate", "Accuracy_Regression.init",
        "Model.train", "Model.evaluate", "Model.predict", "Model.set_parameters", "Model.save", "Model.load",
        "Model.save_parameters", "Model.load_parameters",
        "spiral_data", "vertical_data", "sine_data", "load_iris", "load_mnist", "load_fashion_mnist",
        "load_cifar10", "load_malaria", "load_image_folder", "fastnn.init",
    ]
    missing = [entry for entry in expected if entry not in names]
    assert not missing, f"no bad-argument case for {missing}"
    assert len(CASES) > 150


def test_the_snapshot_sees_a_change_anywhere():
    """The deep comparison the table relies on notices a changed buffer value, a replaced buffer,
    a nested object's attribute, an optimizer counter and a draw from the global RNG."""
    for change in (lambda m: m.layers[0].output.__setitem__((0, 0), 7.0),
                   lambda m: setattr(m.layers[1], "output", m.layers[1].output.copy()),
                   lambda m: setattr(m.loss, "accumulated_count", m.loss.accumulated_count + 1),
                   lambda m: setattr(m.optimizer, "iterations", m.optimizer.iterations + 1),
                   lambda m: m.layers[3].weight_cache.__setitem__((0, 0), 1.0),
                   lambda m: np.random.random()):
        m = model()
        before = snapshot(m)
        change(m)
        assert snapshot(m) != before


def test_a_file_descriptor_passed_as_a_path_is_not_closed(tmp_path):
    """open(0) would read stdin and close descriptor 0 afterwards; fastnn refuses ints as paths."""
    path = tmp_path / "f.bin"
    with open(path, "wb") as f:
        fd = f.fileno()
        with pytest.raises(TypeError, match="path"):
            fastnn.Model.load(fd)
        os.fstat(fd)                       # still open
        f.write(b"x")


def test_model_set_parameters_changes_no_layer_when_a_later_pair_is_refused():
    m = model()
    first = m.get_parameters()[0]
    pairs = parameters_of(m, (np.full((8, 3), "a"), np.zeros((1, 3))))
    pairs[0] = (pairs[0][0] + 1, pairs[0][1] + 1)
    with pytest.raises(TypeError):
        m.set_parameters(pairs)
    assert m.get_parameters()[0][0] is first[0]


def test_refused_fast_dropout_draws_nothing_but_a_converted_input_draws_once():
    d = fastnn.Layer_Dropout(0.5)
    np.random.seed(3)
    with pytest.raises(TypeError):
        d.forward(np.ones((4, 4), complex))
    assert np.random.random() == (np.random.seed(3) or np.random.random())
    np.random.seed(3)
    d.forward(np.ones((4, 4), np.int64))          # converted, then one draw
    np.random.seed(3)
    np.random.random_sample()
    expected_next = np.random.random()
    np.random.seed(3)
    d.forward(np.ones((4, 4), np.int64))
    assert np.random.random() == expected_next


def test_messages_name_the_argument_and_what_came():
    """The message shape of the module: '<where>: <name> must be <expected>, got <what came>'."""
    with pytest.raises(TypeError) as info:
        fastnn.Layer_Dense(2, 3).forward(np.zeros((2, 2), complex))
    assert str(info.value) == ("Layer_Dense.forward: inputs must be an array of real numbers (converted to "
                               "float32), got ndarray of dtype complex128 and shape (2, 2)")
    with pytest.raises(ValueError) as info:
        fastnn.Optimizer_Adam(beta_2=1.0)
    assert str(info.value) == "Optimizer_Adam: beta_2 must be in [0, 1), got 1.0"
    with pytest.raises(ValueError) as info:
        spiral_data(0, 3)
    assert str(info.value) == "samples must be a positive int, got 0"


def test_memory_limit_refuses_before_allocating(monkeypatch):
    """The size check compares with the machine's memory (a small limit here): nothing is
    allocated for a refused conversion, and a conversion under the limit proceeds."""
    monkeypatch.setattr(_validation, "memory_limit", lambda: 1000)
    layer = fastnn.Layer_Dense(2, 3)
    with pytest.raises(ValueError, match=r"inputs must be small enough to fit in memory \(its float32 copy"):
        layer.forward(np.zeros((126, 2), np.float64))     # 1008 bytes as float32
    layer.forward(np.zeros((125, 2), np.float64))         # 1000 bytes: allowed
    with pytest.raises(ValueError, match=r"n_inputs \* n_neurons"):
        fastnn.Layer_Dense(11, 12)                          # 132 float64 = 1056 bytes


# ---------------------------------------------------------------------------------------------
# What the checks cost


def spiral_step_pair():
    """(public, raw): one Ch-style spiral step (Dense(2,64) ReLU Dense(64,3) softmax+CCE Adam,
    batch 300) through the public methods, and the same kernels called directly on the same
    objects (fastnn._ext.*), with the same bookkeeping (loss accumulators, learning-rate decay,
    iteration count), so that the difference is what the public methods add: their checks and
    their Python dispatch."""
    from fastnn._ext import _activations, _dense, _losses, _optimizers

    X, y = spiral_data(100, 3)
    y = y.astype(np.intp)
    np.random.seed(0)
    dense1, relu, dense2 = fastnn.Layer_Dense(2, 64), fastnn.Activation_ReLU(), fastnn.Layer_Dense(64, 3)
    head = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    adam = fastnn.Optimizer_Adam(learning_rate=0.05, decay=5e-7)
    softmax, loss = head.activation, head.loss

    def public():
        dense1.forward(X)
        relu.forward(dense1.output)
        dense2.forward(relu.output)
        head.forward(dense2.output, y)
        head.backward(head.output, y)
        dense2.backward(head.dinputs)
        relu.backward(dense2.dinputs)
        dense1.backward(relu.dinputs)
        adam.pre_update_params()
        adam.update_params(dense1)
        adam.update_params(dense2)
        adam.post_update_params()

    def raw():
        _dense.forward(dense1.__dict__, X)
        _activations.forward(0, relu.__dict__, dense1.output)
        _dense.forward(dense2.__dict__, relu.output)
        _activations.forward(2, softmax.__dict__, dense2.output)
        head.output = softmax.output
        total = _losses.cce(softmax.output, y, False)[0]
        state = loss.__dict__
        state["accumulated_sum"] = state.get("accumulated_sum", 0) + total
        state["accumulated_count"] = state.get("accumulated_count", 0) + 300
        _losses.softmax_cce_backward(head.__dict__, softmax.output, y)
        _dense.backward(dense2.__dict__, head.dinputs)
        _activations.backward(0, relu.__dict__, dense2.dinputs)
        _dense.backward(dense1.__dict__, relu.dinputs)
        adam.current_learning_rate = adam.learning_rate * (1. / (1. + adam.decay * adam.iterations))
        t = adam.iterations + 1
        c1, c2 = 1 - adam.beta_1 ** t, 1 - adam.beta_2 ** t
        for layer in (dense1, dense2):
            _optimizers.update_layer(4, layer.__dict__, adam.current_learning_rate, adam.epsilon, adam.beta_1,
                                     adam.beta_2, c1, c2)
        adam.iterations += 1

    return public, raw


@pytest.mark.slow
def test_validation_costs_a_few_percent_of_the_spiral_step():
    """The issue's target: the public methods add under 5% to the spiral step. Measured here as the
    minimum over rounds (public and raw interleaved, 2000 steps each), BLAS on one thread
    (conftest). The figure is printed; the assertion is looser (10%) so that a loaded machine does
    not fail it, and still catches a check that walks the data on every call."""
    import time

    public, raw = spiral_step_pair()
    for f in (public, raw):
        for _ in range(300):
            f()
    times = {"public": [], "raw": []}
    for _ in range(15):
        for name, f in (("public", public), ("raw", raw)):
            started = time.perf_counter()
            for _ in range(2000):
                f()
            times[name].append((time.perf_counter() - started) / 2000)
    best = {name: min(values) for name, values in times.items()}
    overhead = (best["public"] - best["raw"]) / best["public"]
    print(f"\nspiral step: public {best['public'] * 1e6:.1f} us, raw kernels {best['raw'] * 1e6:.1f} us, "
          f"checks and dispatch {overhead:.1%} of the step")
    assert overhead < 0.10


def test_optimizer_refuses_a_gradient_of_the_right_size_but_another_shape():
    import fastnn as nn
    layer = nn.Layer_Dense(3, 4)
    layer.forward(np.ones((2, 3), np.float32))
    layer.backward(np.ones((2, 4), np.float32))
    layer.dweights = np.ascontiguousarray(layer.dweights.T)   # (4, 3): same size, wrong shape
    before = layer.weights.copy()
    with pytest.raises(ValueError, match="dweights"):
        nn.Optimizer_SGD().update_params(layer)
    np.testing.assert_array_equal(layer.weights, before)


def test_the_dropout_rate_limit_a_refusal_names_is_accepted():
    """A fast-mode rate too close to 1 is refused with the largest rate that is not: that rate
    is accepted (the message must not round the limit up)."""
    with pytest.raises(ValueError, match="use mode='book' or a rate of at most") as info:
        fastnn.Layer_Dropout(0.9999, mode="fast")
    limit = float(re.search(r"a rate of at most ([0-9.]+)", str(info.value)).group(1))
    assert 0.999 < limit < 1
    assert fastnn.Layer_Dropout(limit, mode="fast").rate == 1 - limit
