"""Every method of every declared class refuses bad arguments with the promised error naming the
argument, and a refused call changes nothing (the object in a used state, deep snapshot; NumPy's
global RNG; fastnn's defaults; the files around).

The table is generated from the cases (tests/cases.py) by protocol: layers' forward (inputs of a
non-real dtype, None, a broadcast array too large for memory, a masked array, the wrong rank) and
backward (dvalues of another shape or dtype, masked, backward before forward); losses' and the combined
softmax/cross-entropy's predictions and targets (by the case's target kind); optimizers'
update_params of a broken trainable layer (each trainable layer case); accuracies' mismatched
shapes. The hand-written, class-specific rows (exact messages, edge values) are in
test_validation.py.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from cases import cases
from contract.harness import build, data, exercise, used

from _state import assert_refused_and_unchanged, on

ROWS: dict = {}


def row(name, build, error, names):
    assert name not in ROWS, name
    ROWS[name] = (build, error, names)


def huge(shape, dtype=np.float64):
    """A broadcast array of 10**12 samples of `shape`: terabytes as a copy, no memory as a view."""
    return np.broadcast_to(np.zeros((1, *shape[1:]), dtype), (10 ** 12, *shape[1:]))


def masked(shape):
    """A masked array (nothing masked): its mask would be lost in a conversion, so it is refused."""
    return np.ma.masked_array(np.ones(shape, np.float32), mask=np.zeros(shape, bool))


def shape_pattern(shape) -> str:
    return re.escape(str(tuple(shape)))


# --- layers -------------------------------------------------------------------------------------


def used_with(case, obj):
    """obj after one exercise of the case's data."""
    exercise(case, obj, data(case, np.float32))
    return obj


for case in cases("layer"):
    subjects = {"": {}}
    if case.parity_kwargs:                 # the parity arguments choose another code path: both
        subjects[f"[{','.join(map(str, case.parity_kwargs.values()))}]"] = case.parity_kwargs
    for tag, extra in subjects.items():
        def subject(case=case, extra=extra):
            obj = build(case, kwargs={**case.kwargs, **extra})
            return used_with(case, obj)
        x_shape = case.inputs
        name = f"{case.name}{tag}"
        where = f"{case.name}.forward"
        if case.checks_inputs:
            bad = [("complex", np.ones(x_shape, complex), TypeError, "inputs must be an array of real numbers"),
                   ("strings", np.full(x_shape, "1"), TypeError, "inputs"),
                   ("None", None, TypeError, "inputs"),
                   ("structured", np.zeros(x_shape, [("a", "f8"), ("b", "i4")]), TypeError, "inputs")]
            if "output" not in case.views:    # a view hands the very array on: nothing is copied
                bad.append(("huge", huge(x_shape), ValueError, "inputs must be small enough to fit in memory"))
                bad.append(("masked", masked(x_shape), TypeError, "inputs must be a plain array .masked arrays"))
            if case.ndim is not None:
                for k in (1, case.ndim + 1):
                    value = np.ones(x_shape[:k] if k < len(x_shape) else (*x_shape, 1))
                    bad.append((f"{k}-d", value, ValueError, rf"inputs must be {case.ndim}-D.*got {k}-D"))
            for training in (True, False):
                for label, value, error, names in bad:
                    row(f"{name}.forward(training={training}) {label}",
                        on(subject, "forward", value, training), error, f"{where}: {names}")
        if not case.backward:
            continue
        where = f"{case.name}.backward"
        out_shape = np.shape(subject().output)
        wrong = (*out_shape[:-1], out_shape[-1] + 1)
        bad = [("shape", np.ones(wrong, np.float32), ValueError, rf"dvalues must be of shape {shape_pattern(out_shape)}"),
               ("masked", masked(out_shape), TypeError, "dvalues must be a plain array .masked arrays"),
               ("strings", np.full(out_shape, "1"), TypeError, "dvalues"),
               ("complex", np.ones(out_shape, complex), TypeError, "dvalues")]
        if tuple(reversed(out_shape)) != tuple(out_shape):
            bad.append(("transposed", np.ones(tuple(reversed(out_shape)), np.float32), ValueError,
                        "dvalues must be of shape"))
        for label, value, error, names in bad:
            row(f"{name}.backward {label}", on(subject, "backward", value), error, f"{where}: {names}")
        row(f"{name}.backward before forward",
            on(lambda case=case, extra=extra: build(case, kwargs={**case.kwargs, **extra}), "backward",
               np.ones(out_shape, np.float32)),
            RuntimeError, rf"{where}: .*call forward\(\) before backward\(\)")


# --- losses and the combined softmax/cross-entropy ------------------------------------------------------


def bad_predictions(shape):
    n, c = shape
    return [
        ("1-d", np.full(n, 0.5), ValueError, "{arg} must be 2-D, got 1-D"),
        ("3-d", np.full((n, c, 1), 0.5), ValueError, "{arg} must be 2-D, got 3-D"),
        ("no columns", np.zeros((n, 0)), ValueError,
         r"{arg} must be \(n_samples, n_outputs\) with at least one output column"),
        ("strings", np.full(shape, "0.5"), TypeError, "{arg} must be an array of real numbers"),
        ("complex", np.full(shape, 0.5, complex), TypeError, "{arg}"),
        ("None", None, TypeError, "{arg}"),
        ("huge", np.broadcast_to(np.float16(0.5), (10 ** 12, c)), ValueError, "{arg} must be small enough"),
        ("masked", np.ma.masked_array(np.full(shape, 0.5)), TypeError, "{arg} must be a plain array .masked arrays"),
    ]


def bad_class_labels(shape):
    n, c = shape
    ids = np.arange(n) % c
    ids_pattern = rf"\[0, {c}\)"
    return [
        ("negative", np.where(ids == ids[-1], -1, ids), ValueError,
         rf"y_true must be class ids in {ids_pattern}, got values from -1 to"),
        ("out of range", np.where(ids == 0, c, ids), ValueError, rf"y_true must be class ids in {ids_pattern}"),
        ("uint8 out of range", np.where(ids == 0, 255, ids).astype(np.uint8), ValueError,
         rf"y_true must be class ids in {ids_pattern}"),
        ("huge uint64", np.where(ids == 0, 2 ** 63, ids).astype(np.uint64), ValueError,
         rf"y_true must be class ids in {ids_pattern}"),
        ("fractional", np.where(ids == 0, 0.5, ids), TypeError, "y_true must be whole-number class ids"),
        ("nan", np.where(ids == 0, np.nan, ids), TypeError, "y_true must be whole-number class ids"),
        ("length", ids[:-1], ValueError,
         rf"y_true must be of length {n} \(one label per sample\), got length {n - 1}"),
        ("one-hot width", np.eye(c + 1)[ids], ValueError, rf"y_true must be one-hot of shape \({n}, {c}\)"),
        ("column of ids", ids.reshape(-1, 1), ValueError,
         rf"y_true must be one-hot of shape \({n}, {c}\) or class ids"),
        ("3-d", np.zeros((n, c, 1)), ValueError, "y_true must be 1-D class ids or 2-D one-hot rows, got 3-D"),
        ("0-d", np.int64(1), ValueError, "y_true must be 1-D class ids or 2-D one-hot rows, got 0-D"),
        ("strings", ids.astype(str), TypeError, "y_true must be class ids or one-hot rows of numbers"),
        ("None", None, TypeError, "y_true"),
        ("complex", ids.astype(complex), TypeError, "y_true"),
        ("masked", np.ma.masked_array(ids), TypeError, "y_true must be a plain array .masked arrays"),
    ]


def unloggable_onehot(shape):
    """One-hot rows whose weighted sum of probabilities has no logarithm (the kernel would give
    inf or NaN from finite data), in the kernels' own form (float32, C order): caught by the C
    check; and one in float64, caught after the conversion."""
    n, c = shape
    onehot = np.eye(c, dtype=np.float32)[np.arange(n) % c]
    rows = np.arange(n)[:, None]
    return [
        ("all-zero row", np.where(rows == n // 2, 0, onehot).astype(np.float32)),
        ("negative weight", np.where(rows == n - 1, -onehot, onehot).astype(np.float32)),
        ("nan weight", np.where(rows == 0, np.nan, onehot).astype(np.float32)),
        ("inf weight", np.where(onehot == 1, np.inf, 0).astype(np.float32)),
        ("float64 negative (converted)", -onehot.astype(np.float64)),
    ]


def bad_targets(shape):
    n, c = shape
    return [
        ("shape", np.zeros((n, c - 1 or 2)), ValueError,
         rf"y_true must be of shape \({n}, {c}\) \(the shape of the predictions\)"),
        ("class ids", np.arange(n) % c, ValueError, rf"y_true must be of shape \({n}, {c}\)"),
        ("strings", np.full(shape, "0"), TypeError, "y_true must be an array of real numbers"),
        ("None", None, TypeError, "y_true"),
        ("beyond float32", np.full(shape, -1e39), ValueError, "y_true must be within float32's range"),
        ("masked", np.ma.masked_array(np.zeros(shape)), TypeError, "y_true must be a plain array .masked arrays"),
    ]


def class_ids(case):
    return case.targets in ("class_ids", "onehot")


for case in cases("loss") + cases("combined"):
    def subject(case=case):
        return used(case)[0]
    made = used(case)[1]
    P, y = made["x"], made["y"]
    combined = case.protocol == "combined"
    methods = ("forward", "backward") if combined else ("forward", "calculate", "backward")
    for method in methods:
        where = f"{case.name}.{method}"
        arg = "dvalues" if method == "backward" else ("inputs" if combined else "y_pred")
        for label, value, error, names in bad_predictions(P.shape):
            row(f"{where} predictions {label}", on(subject, method, value, y), error,
                f"{where}: " + names.format(arg=arg))
        for label, value, error, names in (bad_class_labels if class_ids(case) else bad_targets)(P.shape):
            row(f"{where} targets {label}", on(subject, method, P, value), error, f"{where}: {names}")
        if class_ids(case) and method != "backward":
            for label, value in unloggable_onehot(P.shape):
                row(f"{where} one-hot {label}", on(subject, method, P, value), ValueError,
                    f"{where}: y_true must be one-hot rows of finite, non-negative weights")
    if combined:
        row(f"{case.name}.forward empty batch", on(subject, "forward", P[:0], y[:0]), ValueError,
            "inputs must hold at least one sample")
    else:
        row(f"{case.name}.calculate empty batch", on(subject, "calculate", P[:0], y[:0]), ValueError, "empty batch")
        row(f"{case.name}.calculate regularization without layers",
            on(subject, "calculate", P, y, include_regularization=True), ValueError,
            r"pass a layer, or call remember_trainable_layers\(\)")


# --- optimizers ---------------------------------------------------------------------------------


def broken(case, layer_case, change, first_update=False):
    """(subject, call): an optimizer's update of a trainable layer whose arrays were changed by
    change(layer); the optimizer has made one update before unless first_update."""
    def make():
        (optimizer, layer), _ = used(case, layer_case=layer_case)
        if first_update:
            optimizer, layer = build(case), used(layer_case)[0]
        change(layer)
        return (optimizer, layer), lambda: optimizer.update_params(layer)
    return make


def set_attribute(name, value):
    def change(layer):
        setattr(layer, name, value(layer))
    return change


def read_only(name):
    def change(layer):
        getattr(layer, name).flags.writeable = False
    return change


def strided_like(array):
    wide = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), array.dtype)
    return wide[..., ::2]


for case in cases("optimizer", setups=True):
    where = f"{case.name}.update_params"
    for layer_case in cases("layer", trainable=True):
        label = f"{case.label} on {layer_case.name}"
        for what, change, first, error, names in [
            ("dweights dtype", set_attribute("dweights", lambda l: l.dweights.astype(np.float64)), False, ValueError,
             "layer.dweights must be a C-contiguous array of dtype float32"),
            ("dweights size", set_attribute("dweights", lambda l: np.zeros(l.dweights.size + 1, np.float32)), False,
             ValueError, "layer.dweights"),
            ("dbiases strided", set_attribute("dbiases", lambda l: strided_like(l.dbiases)), False, ValueError,
             "layer.dbiases"),
            ("dweights missing", lambda layer: layer.__dict__.pop("dweights"), False, ValueError,
             "the layer has no `dweights`"),
            ("weights read-only", read_only("weights"), False, ValueError, "layer.weights must be a writeable"),
            ("weights read-only, first update", read_only("weights"), True, ValueError,
             "layer.weights must be a writeable"),
            ("dbiases float64, first update", set_attribute("dbiases", lambda l: l.dbiases.astype(np.float64)), True,
             ValueError, "layer.dbiases"),
        ]:
            row(f"{label}.update_params {what}", broken(case, layer_case, change, first), error, f"{where}: {names}")
        row(f"{label}.update_params before backward",
            lambda case=case, layer_case=layer_case: (lambda o, l: ((o, l), lambda: o.update_params(l)))(
                build(case), build(layer_case)),
            ValueError, f"{where}: the layer has no `dweights`")
    for what, layer, error, names in [
        ("int", 5, TypeError, "layer must be a layer object with weights and biases"),
        ("None", None, TypeError, "layer must be"),
        ("untrainable", "untrainable", ValueError, "the layer has no `weights`"),
    ]:
        def make(case=case, layer=layer):
            optimizer = build(case)
            target = used(cases("layer", trainable=False)[0])[0] if layer == "untrainable" else layer
            return (optimizer, target), lambda: optimizer.update_params(target)
        row(f"{case.label}.update_params layer {what}", make, error, f"{where}: {names}")


# --- accuracies ------------------------------------------------------------------------------------

for case in cases("accuracy", setups=True):
    def subject(case=case):
        return used(case)[0]
    made = used(case)[1]
    row(f"{case.label}.calculate shapes", on(subject, "calculate", made["x"][:-1], made["y"]), ValueError,
        f"{case.name}.compare: predictions and y must have the same shape")


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ROWS))
def test_a_bad_argument_is_refused_and_changes_nothing(name, tmp_path, monkeypatch):
    build_row, error, names = ROWS[name]
    monkeypatch.chdir(tmp_path)
    assert_refused_and_unchanged(build_row, error, names, tmp_path)


ENTRY_POINTS = {"layer": ("forward", "backward"), "loss": ("forward", "calculate", "backward"),
                "combined": ("forward", "backward"), "optimizer": ("update_params",), "accuracy": ("calculate",)}


@pytest.mark.parametrize("case", [c for c in cases() if c.protocol], ids=[c.name for c in cases() if c.protocol])
def test_every_entry_point_of_every_driven_class_has_rows(case):
    methods = [m for m in ENTRY_POINTS[case.protocol]
               if not (m == "backward" and not case.backward) and not (m == "forward" and not case.checks_inputs)]
    for method in methods:
        entry = re.compile(rf"^{re.escape(case.name)}(\[[^\]]*\])?( on \w+)?\.{method}\b")
        assert any(entry.match(name) for name in ROWS), f"no refusal row for {case.name}.{method}"
