"""Property-based fuzzing of every public entry point (the rules of fastnn/_core/checks.py).

Each example builds an argument from three independent choices, then calls fastnn:
- dtype: float32/float64 (native and byte-swapped), float16, longdouble, signed and unsigned
  ints, bool, complex, object, str, bytes, datetime64, timedelta64, structured;
- layout: C order, Fortran order, strided (a view of every other element), reversed strides,
  read-only, unaligned (a view at an odd byte offset), byte-swapped, broadcast (zero strides),
  a nested list, a 0-d array or a Python scalar;
- values: moderate normals, whole numbers, special values (NaN, +-inf, -0.0, subnormals) or
  extremes (+-1e4, 1e-30);
and a shape that is usually the one the call expects and otherwise has the wrong ndim (0-d, 1-d,
3-d), a wrong or zero dimension, or an empty batch.

The property, for every example: the call either
- succeeds, when the argument is valid by the documented rules (a real dtype; the right ndim and
  shape; values that fit the target dtype), with the same result as fastnn.reference on the same
  data converted the documented way, within the tolerances of test_kernels.py (EXACT, GEMM_BOUND,
  SUM_BOUND, ULPS), and never a NaN where the reference (and the data) have none; or
- raises the promised TypeError/ValueError, when the argument is invalid, with a message naming
  the argument, leaving the object exactly as it was (deep snapshot, as in test_validation.py) and
  NumPy's global RNG untouched.
A valid argument refused, or an invalid one accepted, fails the test.

The raw kernel entries (fastnn._ext.*) are fuzzed with arbitrary arrays in a subprocess, which must
exit normally: they may return False/None or raise, never read or write out of bounds.

Budgets: every test runs a "quick" profile in the default run (deterministic, a few hundred examples
in all, seconds) and a "campaign" profile under `-m slow` (over 10,000 examples in all). The outcome
counts are printed at the end of the module (run with -s to see them) and, when FASTNN_FUZZ_REPORT
names a file, written there as JSON.
"""
from __future__ import annotations

import json
import math
import operator
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import strategies as st

import fastnn
from _models import mlp
import fastnn.reference as ref
from fastnn._core import checks as _validation
from fastnn.datasets import sine_data, spiral_data, vertical_data

from cases import cases
from contract import harness

from _fuzz import EXAMPLES, OUTCOMES, PLAIN, budgets, check_call, report, run_fuzz

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    report()


# ---------------------------------------------------------------------------------------------
# Argument strategies

DTYPES = ["float32", "float64", ">f4", ">f8", "float16", "longdouble", "int8", "int32", "int64", "uint8", "uint64",
          "bool", "complex64", "complex128", "object", "U5", "S5", "M8[s]", "m8[ms]", "struct"]
LAYOUTS = ["C", "C", "F", "strided", "reversed", "readonly", "unaligned", "byteswapped", "broadcast", "list", "scalar"]
VALUES = ["normal", "normal", "whole", "special", "extreme"]


def _values(data, shape, kind):
    n = int(np.prod(shape, dtype=np.int64))
    seed = data.draw(st.integers(0, 2 ** 32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    if kind == "normal":
        v = rng.standard_normal(n) * 2
    elif kind == "whole":
        v = rng.integers(-3, 6, n).astype(np.float64)
    elif kind == "special":
        v = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 5e-324, 0.5, 1.0]), n)
    else:
        v = rng.choice(np.array([1e4, -1e4, 1e-30, -3.0, 2.5]), n)
    return v.reshape(shape)


def _cast(v, dtype):
    """Float64 values v as an array of `dtype` (each dtype family gets values it can hold)."""
    if dtype == "struct":
        out = np.zeros(v.shape, [("a", "f4"), ("b", "i2")])
        with np.errstate(all="ignore"):
            out["a"] = np.nan_to_num(v)
        return out
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind in "iu":
            info = np.iinfo(dt)
            return np.clip(np.nan_to_num(np.round(v), posinf=info.max, neginf=info.min), info.min, info.max).astype(dt)
        if dt.kind == "b":
            return v > 0
        if dt.kind in "fc":
            return v.astype(dt)
        if dt.kind == "O":
            return v.astype(object)
        if dt.kind in "US":
            return v.astype("U5").astype(dt)
        if dt.kind in "mM":
            return np.nan_to_num(v, posinf=0, neginf=0).astype(np.int64).astype(dt)
    raise AssertionError(dtype)


def _layout(data, a, layout):
    a = np.asarray(a)                        # np.clip and friends make 0-d results NumPy scalars
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim >= 1:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "reversed" and a.ndim >= 1:
        return np.ascontiguousarray(a[::-1])[::-1]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "unaligned" and a.dtype.itemsize > 1 and a.dtype.kind != "O":
        buffer = np.zeros(a.nbytes + 1, np.uint8)
        view = buffer[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view
    if layout == "byteswapped" and a.dtype.kind in "iufc" and a.dtype.itemsize > 1:
        return a.astype(a.dtype.newbyteorder())
    if layout == "broadcast" and a.ndim >= 1 and a.size:
        return np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape)
    if layout == "list" and a.dtype.kind not in "V":
        return a.tolist()
    if layout == "scalar" and a.size:
        return a.reshape(-1)[0]
    return a


def shapes(data, expected):
    """The expected shape most of the time; otherwise one of the usual mistakes."""
    mistake = data.draw(st.sampled_from(["none"] * 6 + ["ndim", "dim", "zero", "transpose"]), label="shape mistake")
    shape = list(expected)
    if mistake == "ndim":
        return tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=3), label="shape"))
    if mistake == "dim" and shape:
        i = data.draw(st.integers(0, len(shape) - 1))
        shape[i] = data.draw(st.integers(0, 6).filter(lambda d: d != shape[i]), label="dim")
    elif mistake == "zero" and shape:
        shape[data.draw(st.integers(0, len(shape) - 1))] = 0
    elif mistake == "transpose":
        shape = shape[::-1]
    return tuple(shape)


NUMERIC = [d for d in DTYPES if d not in ("complex64", "complex128", "object", "U5", "S5", "M8[s]", "m8[ms]", "struct")]


def arrays(data, expected, *, dtypes=DTYPES, layouts=LAYOUTS, values=VALUES, label="array"):
    """(argument, facts): facts describe the argument as NumPy sees it (np.asarray). Three times in
    five the argument is plausible (a real dtype, the expected shape, any layout), so that accepted
    calls are compared with the reference often; otherwise anything goes."""
    wild = data.draw(st.sampled_from([False, False, False, True, True]), label=f"{label} wild")
    shape = shapes(data, expected) if wild else tuple(expected)
    dtype = data.draw(st.sampled_from(dtypes if wild else [d for d in dtypes if d in NUMERIC] or dtypes),
                      label=f"{label} dtype")
    layout = data.draw(st.sampled_from(layouts if wild else [x for x in layouts if x != "scalar"]),
                       label=f"{label} layout")
    kind = data.draw(st.sampled_from(values), label=f"{label} values")
    a = _layout(data, _cast(_values(data, shape, kind), dtype), layout)
    return a, Facts(a)


class Facts:
    """What the rules look at: the array NumPy makes of the argument."""

    def __init__(self, argument):
        self.argument = argument
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.array = np.asarray(argument)
        except (ValueError, TypeError):
            self.array = None
        a = self.array
        self.numeric = a is not None and a.dtype.kind in "biuf"
        self.shape = None if a is None else a.shape
        self.ndim = None if a is None else a.ndim
        self.finite = self.numeric and bool(np.all(np.isfinite(a))) if a is not None and a.size else self.numeric

    def fits(self, dtype) -> bool:
        """Its values convert to dtype without a finite value becoming inf."""
        a = self.array
        if not self.numeric or a.dtype.kind != "f" or a.dtype.itemsize <= np.dtype(dtype).itemsize or a.size == 0:
            return True
        finite = a[np.isfinite(a)]
        return not finite.size or float(np.max(np.abs(finite))) <= float(np.finfo(dtype).max)

    def converted(self, dtype):
        return np.asarray(self.array, dtype=dtype, order="C")


def kept_dtype(facts):
    """A parameter-free layer keeps the dtype of float32/float64 ndarrays (in native order) and
    converts everything else (other dtypes, lists, scalars) to fastnn's default dtype (float32)."""
    if isinstance(facts.argument, np.ndarray) and facts.array.dtype.type in (np.float32, np.float64):
        return np.dtype(facts.array.dtype.type)
    return fastnn.default_dtype()


def eps(dtype):
    return float(np.finfo(dtype).eps)


def tiny(dtype):
    return float(np.finfo(dtype).tiny)


def assert_close(actual, expected, what, *, rtol=0.0, atol=0.0, bound=None, same_formula=True):
    """Same shape; NaN, +inf and -inf at the same places; finite values within
    atol + rtol*|expected| (+ an elementwise `bound`). rtol = atol = 0 means EXACT.
    same_formula=False (fastnn computes the value another way, e.g. softmax backward in O(n)): with
    non-finite data, only the places of non-finite values must agree (inf - inf is NaN in one
    formula where the other has inf)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if same_formula:
        assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaN where the reference has none (or the reverse)"
        inf = np.isinf(e)
        assert np.array_equal(a[inf], e[inf]), f"{what}: infinities differ"
    else:
        assert np.array_equal(np.isfinite(a), np.isfinite(e)), f"{what}: non-finite values at other places"
    finite = np.isfinite(e)
    assert np.all(np.isfinite(a[finite])), f"{what}: non-finite where the reference is finite"
    limit = atol + rtol * np.abs(e[finite])
    if bound is not None:
        limit = limit + np.broadcast_to(bound, e.shape)[finite]
    diff = np.abs(a[finite] - e[finite])
    assert np.all(diff <= limit), f"{what}: differs from the reference by {np.max(diff - limit)} beyond the bound"


def quiet():
    """The reference is plain NumPy: overflow/invalid warnings there are its own business."""
    class _Quiet:
        def __enter__(self):
            self.err = np.seterr(all="ignore")
            self.w = warnings.catch_warnings()
            self.w.__enter__()
            warnings.simplefilter("ignore")

        def __exit__(self, *exc):
            self.w.__exit__(*exc)
            np.seterr(**self.err)
    return _Quiet()


def gemm_bound(a, b, dtype):
    """GEMM_BOUND (test_kernels.py) for two computations of a @ b, plus the rounding of the bias add."""
    with np.errstate(all="ignore"):
        k = a.shape[1] if a.ndim == 2 else 1
        mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
        return (2 * k + 4) * eps(dtype) * mag


# ---------------------------------------------------------------------------------------------
# Layer_Dense


@budgets()
def test_dense_forward(budget):
    def body(data):
        dtype = np.dtype(data.draw(st.sampled_from(["float32", "float64"]), label="layer dtype"))
        n_in, n_out, n = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)), data.draw(st.integers(0, 6)))
        np.random.seed(data.draw(st.integers(0, 100)))
        layer = fastnn.Layer_Dense(n_in, n_out, dtype=dtype)
        layer.biases[...] = np.random.standard_normal((1, n_out))
        layer.forward(np.ones((2, n_in), dtype))          # buffers from an earlier call
        x, facts = arrays(data, (n, n_in), label="inputs")
        valid = facts.numeric and facts.ndim == 2 and facts.shape[1] == n_in and facts.fits(dtype)
        if not check_call("Layer_Dense.forward", layer, lambda: layer.forward(x), valid, "inputs"):
            return
        converted = facts.converted(dtype)
        expected = ref.Layer_Dense(n_in, n_out, dtype=dtype)
        expected.weights, expected.biases = layer.weights.copy(), layer.biases.copy()
        with quiet():
            expected.forward(converted)
        assert layer.output.dtype == dtype
        assert_close(layer.output, expected.output, "Dense output",
                     bound=gemm_bound(converted, layer.weights, dtype) + 4 * eps(dtype) * np.abs(layer.biases))
        if facts.finite:
            assert not np.isnan(layer.output).any(), "NaN from finite inputs"
    run_fuzz(body, budget)


@budgets()
def test_dense_backward(budget):
    def body(data):
        dtype = np.dtype(data.draw(st.sampled_from(["float32", "float64"]), label="layer dtype"))
        n_in, n_out, n = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6)))
        regs = data.draw(st.sampled_from([{}, {"weight_regularizer_l1": 1e-3, "bias_regularizer_l2": 1e-2}]))
        np.random.seed(data.draw(st.integers(0, 100)))
        layer = fastnn.Layer_Dense(n_in, n_out, **regs, dtype=dtype)
        inputs = np.random.standard_normal((n, n_in)).astype(dtype)
        layer.forward(inputs)
        dvalues, facts = arrays(data, (n, n_out), label="dvalues")
        valid = facts.numeric and facts.shape == (n, n_out) and facts.fits(dtype)
        if not check_call("Layer_Dense.backward", layer, lambda: layer.backward(dvalues), valid, "dvalues"):
            return
        dv = facts.converted(dtype)
        expected = ref.Layer_Dense(n_in, n_out, **regs, dtype=dtype)
        expected.weights, expected.biases = layer.weights.copy(), layer.biases.copy()
        with quiet():
            expected.forward(inputs)
            expected.backward(dv)
        reg = 4 * eps(dtype) * (np.abs(layer.weights) + 1e-3)
        assert_close(layer.dweights, expected.dweights, "dweights", bound=gemm_bound(inputs.T, dv, dtype) + reg)
        with np.errstate(all="ignore"):
            column_abs = np.sum(np.abs(dv.astype(np.float64)), axis=0, keepdims=True)
        assert_close(layer.dbiases, expected.dbiases, "dbiases",
                     bound=(n + 3) * eps(dtype) * column_abs + 1e-2 * 4 * eps(dtype))
        assert_close(layer.dinputs, expected.dinputs, "dinputs", bound=gemm_bound(dv, layer.weights.T, dtype))
    run_fuzz(body, budget)


@budgets()
def test_dense_set_parameters(budget):
    def body(data):
        layer = fastnn.Layer_Dense(3, 4)
        weights, wf = arrays(data, (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))), label="weights")
        width = wf.shape[1] if wf.ndim == 2 else 4
        biases, bf = arrays(data, (1, width), label="biases")
        dtype = np.dtype(wf.array.dtype.type) if isinstance(weights, np.ndarray) and \
            weights.dtype.type in (np.float32, np.float64) else np.dtype(np.float32)   # the layer's
        valid = (wf.numeric and bf.numeric and wf.ndim == 2 and bf.ndim == 2 and wf.array.size > 0
                 and bf.shape == (1, wf.shape[1]) and wf.fits(dtype) and bf.fits(dtype))
        if not check_call("Layer_Dense.set_parameters", layer, lambda: layer.set_parameters(weights, biases), valid,
                          "weights|biases"):
            return
        assert layer.weights.dtype == layer.biases.dtype == dtype
        assert_close(layer.weights, wf.converted(dtype), "weights")
        assert_close(layer.biases, bf.converted(dtype), "biases")
        layer.forward(np.ones((2, layer.weights.shape[0])))       # the layer works with them
    run_fuzz(body, budget)


# ---------------------------------------------------------------------------------------------
# Activations and dropout

# Layers whose output has their inputs' shape and that take no constructor parameters (the
# activations): the same fuzzed inputs and gradients fit every one of them.
ACTIVATIONS = [case for case in cases("layer") if case.spec.keeps_features and not case.spec.params]


def forward_tolerance(case, dtype):
    """(rtol, atol) for assert_close: twice the case's parity tolerance (tests/cases.py), relative
    to each value (ULPS of exp: 8 eps for Sigmoid; plus SUM_BOUND of the row sum for Softmax), and
    the smallest normal number where results may underflow; 0: EXACT."""
    if case.rtol == 0:
        return 0.0, 0.0
    return 2 * case.rtol * eps(dtype), tiny(dtype)


@budgets()
def test_activation_forward(budget):
    def body(data):
        case = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
        name = case.name
        a = getattr(fastnn, name)()
        a.forward(np.ones((2, 3), np.float32))
        expected_shape = (data.draw(st.integers(0, 5)), data.draw(st.integers(1, 5)))
        x, facts = arrays(data, expected_shape, label="inputs")
        dtype = kept_dtype(facts)
        valid = facts.numeric and facts.fits(dtype) and (case.ndim is None or facts.ndim == case.ndim)
        if not check_call(f"{name}.forward", a, lambda: a.forward(x), valid, "inputs"):
            return
        converted = facts.converted(dtype)
        assert a.output.dtype == dtype and a.output.shape == facts.shape
        if case.ndim == 2 and converted.shape[1] == 0:
            return                       # a row-wise class: the reference cannot take a row max of nothing
        b = getattr(ref, name)()
        with quiet():
            b.forward(converted)
        rtol, atol = forward_tolerance(case, dtype)
        assert_close(a.output, b.output, f"{name} output", rtol=rtol, atol=atol)
        if facts.finite:
            assert not np.isnan(a.output).any(), "NaN from finite inputs"
    run_fuzz(body, budget)


@budgets()
def test_activation_backward(budget):
    def body(data):
        case = data.draw(st.sampled_from(ACTIVATIONS), label="activation")
        name = case.name
        dtype = np.dtype(data.draw(st.sampled_from(["float32", "float64"])))
        shape = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
        x = np.random.default_rng(data.draw(st.integers(0, 99))).standard_normal(shape).astype(dtype)
        a = getattr(fastnn, name)()
        a.forward(x)
        dvalues, facts = arrays(data, shape, label="dvalues")
        valid = facts.numeric and facts.shape == shape and facts.fits(dtype)
        if not check_call(f"{name}.backward", a, lambda: a.backward(dvalues), valid, "dvalues"):
            return
        dv = facts.converted(dtype)
        b = getattr(ref, name)()
        with quiet():
            b.forward(x)
            b.output = a.output.copy()       # the same forward result: the backward alone is compared
            b.backward(dv)
        if not case.same_formula:
            # Another formula than the reference's (softmax: the O(n) form against the Jacobian
            # product): SUM_BOUND over a row of output-weighted terms.
            with np.errstate(all="ignore"):
                scale = np.sum(np.abs(a.output.astype(np.float64) * dv), axis=1, keepdims=True) + np.abs(dv) * a.output
            assert_close(a.dinputs, b.dinputs, f"{name} dinputs", bound=(shape[1] + 4) * 2 * eps(dtype) * scale,
                         atol=tiny(dtype), same_formula=facts.finite)
        else:
            assert_close(a.dinputs, b.dinputs, f"{name} dinputs", rtol=case.rtol * eps(dtype))  # the parity tolerance
    run_fuzz(body, budget)


@budgets()
def test_dropout(budget):
    def body(data):
        mode = data.draw(st.sampled_from(["fast", "book"]), label="mode")
        training = data.draw(st.booleans(), label="training")
        rate = data.draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]), label="rate")
        d = fastnn.Layer_Dropout(rate, mode=mode)
        x, facts = arrays(data, (data.draw(st.integers(0, 5)), data.draw(st.integers(1, 5))), label="inputs")
        dtype = kept_dtype(facts)
        valid = facts.numeric and facts.fits(dtype)
        seed = data.draw(st.integers(0, 1000))
        np.random.seed(seed)
        if not check_call(f"Layer_Dropout[{mode}].forward", d, lambda: d.forward(x, training), valid, "inputs"):
            return
        converted = facts.converted(dtype)
        assert d.output.shape == facts.shape and d.output.dtype == dtype
        if not training:
            assert_close(d.output, converted, "inference copy")
            return
        keep = 1 - rate
        if mode == "book":
            b = ref.Layer_Dropout(rate)
            np.random.seed(seed)
            with quiet():
                b.forward(converted)
            assert_close(d.output, b.output, "book-mode dropout")                                   # EXACT
        mask = np.asarray(d.binary_mask)
        assert np.all((mask == 0) | (mask == dtype.type(1 / keep)) | (mask == 1 / keep)), "mask values"
        with np.errstate(all="ignore"):
            assert_close(d.output, (converted * mask).astype(dtype), "output = inputs * mask")
        dvalues, dfacts = arrays(data, facts.shape, label="dvalues")
        dvalid = dfacts.numeric and dfacts.shape == facts.shape and dfacts.fits(dtype)
        if check_call(f"Layer_Dropout[{mode}].backward", d, lambda: d.backward(dvalues), dvalid, "dvalues"):
            with np.errstate(all="ignore"):
                assert_close(d.dinputs, (dfacts.converted(dtype) * mask).astype(dtype), "dinputs = dvalues * mask")
    run_fuzz(body, budget)


# ---------------------------------------------------------------------------------------------
# Losses

LOSSES = cases("loss")
LABEL_FORMS = ["sparse", "sparse", "onehot", "negative", "out of range", "fractional", "bool", "wrong length",
               "one-hot width", "column", "3-d", "fuzzed"]


def probabilities_like(data, n, c):
    """Predictions: probabilities (rows of a softmax) most of the time, else fuzzed."""
    if data.draw(st.booleans(), label="fuzzed predictions"):
        return arrays(data, (n, c), label="y_pred")
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    z = rng.standard_normal((n, c)) * 3
    p = np.exp(z - z.max(axis=1, keepdims=True)) if c else z
    p = p / p.sum(axis=1, keepdims=True) if c else p
    dtype = data.draw(st.sampled_from(["float32", "float64", "float16", ">f8"]))
    a = _layout(data, p.astype(dtype), data.draw(st.sampled_from(LAYOUTS)))
    return a, Facts(a)


def class_labels(data, n, c):
    form = data.draw(st.sampled_from(LABEL_FORMS), label="label form")
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    ids = rng.integers(0, max(c, 1), n)
    dtype = data.draw(st.sampled_from(["int64", "int32", "uint8", "int8", "uint64", "float64", "float32"]))
    if form == "sparse":
        y = ids.astype(dtype)
    elif form == "onehot":
        y = np.eye(max(c, 1), dtype=data.draw(st.sampled_from(["float32", "float64", "int64", "bool"])))[ids][:, :c]
    elif form == "negative":
        y = ids - 1 - (ids == ids)
    elif form == "out of range":
        y = ids + c
    elif form == "fractional":
        y = ids + 0.5
    elif form == "bool":
        y = ids % 2 == 1
    elif form == "wrong length":
        y = rng.integers(0, max(c, 1), n + data.draw(st.sampled_from([-1, 1, 2])) if n else 1)
    elif form == "one-hot width":
        y = np.eye(c + 1)[ids]
    elif form == "column":
        y = ids.reshape(-1, 1)
    elif form == "3-d":
        y = np.zeros((n, max(c, 1), 1))
    else:
        return arrays(data, (n,), label="y_true")
    y = _layout(data, np.asarray(y), data.draw(st.sampled_from(LAYOUTS)))
    return y, Facts(y)


def class_labels_valid(facts, n, c, dtype, for_log=False):
    """Class ids (n,) in [0, c) (whole-number floats too), or one-hot (n, c) that fits dtype; for a
    loss that takes -log of each row's weighted sum (for_log), one-hot rows must be finite,
    non-negative and have a positive weight once converted to dtype."""
    if not facts.numeric:
        return False
    a = facts.array
    if a.ndim == 1:
        if a.shape[0] != n:
            return False
        if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))):
            return False
        return not a.size or (a.min() >= 0 and a.max() < c)
    if not (a.ndim == 2 and a.shape == (n, c) and facts.fits(dtype)):
        return False
    if for_log and a.size:
        w = facts.converted(dtype)
        with np.errstate(invalid="ignore"):
            return bool(np.all(np.isfinite(w) & (w >= 0)) and np.all(np.any(w > 0, axis=1)))
    return True


def targets(data, n, c):
    form = data.draw(st.sampled_from(["same", "same", "1-d", "fuzzed"]), label="target form")
    if form == "fuzzed":
        return arrays(data, (n, c), label="y_true")
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    y = rng.integers(0, 2, (n, c)).astype(data.draw(st.sampled_from(["float32", "float64", "int64", "bool"])))
    if form == "1-d" and c:
        y = y[:, 0]
    y = _layout(data, y, data.draw(st.sampled_from(LAYOUTS)))
    return y, Facts(y)


def targets_valid(facts, n, c, dtype):
    if not facts.numeric or not facts.fits(dtype):
        return False
    return facts.shape == (n, c) or (c == 1 and facts.shape == (n,))


def loss_tolerance(name, dtype, c, expected_terms):
    """Per-sample losses: ULPS for the logs plus SUM_BOUND for the means over outputs."""
    return (c + 10) * eps(dtype) * expected_terms + tiny(dtype)


@budgets()
def test_losses(budget):
    def body(data):
        case = data.draw(st.sampled_from(LOSSES), label="loss")
        name = case.name
        method = data.draw(st.sampled_from(["forward", "calculate", "backward"]), label="method")
        n, c = data.draw(st.integers(0, 5), label="n"), data.draw(st.integers(0, 4), label="c")
        loss = getattr(fastnn, name)()
        y_pred, pf = probabilities_like(data, n, c)
        categorical = case.targets in ("class_ids", "onehot")
        y_true, tf = class_labels(data, n, c) if categorical else targets(data, n, c)
        dtype = kept_dtype(pf)
        pred_ok = pf.numeric and pf.ndim == 2 and pf.shape[1] >= 1 and pf.fits(dtype)
        if pred_ok:
            pn, pc = pf.shape
            y_ok = class_labels_valid(tf, pn, pc, dtype, for_log=method != "backward") if categorical \
                else targets_valid(tf, pn, pc, dtype)
        else:
            y_ok = False
        valid = pred_ok and y_ok and not (method == "calculate" and pf.shape[0] == 0)
        result = {}

        def call():
            result["value"] = getattr(loss, method)(y_pred, y_true)
        argument = "dvalues" if method == "backward" else "y_pred"
        if not check_call(f"{name}.{method}", loss, call, valid, f"{argument}|y_true|empty batch"):
            return
        p = pf.converted(dtype)
        if p.shape[0] == 0:              # the reference cannot take an empty batch (len(dvalues[0]))
            got = loss.dinputs if method == "backward" else result["value"]
            assert np.shape(got)[0] == 0
            return
        if categorical:
            y = tf.converted(np.intp) if tf.ndim == 1 else tf.converted(dtype)
        else:
            y = tf.converted(dtype).reshape(p.shape)
        b = getattr(ref, name)()
        with quiet():
            if method == "backward":
                b.backward(p, y)
            else:
                expected = b.forward(p, y)
                terms = np.abs(expected.astype(np.float64))
        if method == "backward":
            got = loss.dinputs
            if categorical:
                y2 = np.eye(p.shape[1], dtype=dtype)[y] if y.ndim == 1 else y
                zero = y2 == 0
                assert np.all(got[zero] == 0), "CCE gradient where the target is 0"
                assert_close(got[~zero], b.dinputs[~zero], "CCE dinputs")                         # EXACT
            else:
                assert_close(got, b.dinputs, f"{name} dinputs", rtol=2 * eps(dtype), atol=tiny(dtype))
            return
        per_sample = result["value"] if method == "forward" else None
        if method == "forward":
            with quiet():
                if categorical and y.ndim == 2:
                    confidences = np.sum(np.abs(np.clip(p, 1e-7, 1 - 1e-7) * y).astype(np.float64), axis=1)
                    weights = np.sum(np.abs(y.astype(np.float64)), axis=1)
                    bound = (p.shape[1] + 10) * eps(dtype) * (np.abs(np.log(np.maximum(confidences, 1e-300))) + 1) * \
                        (1 + weights / np.maximum(np.abs(np.exp(-terms)), tiny(dtype)))
                else:
                    bound = loss_tolerance(name, dtype, p.shape[1], terms + 1)
            assert_close(per_sample, expected, f"{name} per-sample losses", bound=bound)
        else:
            with quiet():
                mean = np.mean(expected.astype(np.float64))
            value = result["value"]
            if np.isfinite(mean):
                assert abs(value - mean) <= (p.shape[1] + p.shape[0] + 10) * eps(dtype) * (np.mean(terms) + 1) * 10, \
                    f"calculate: {value} vs {mean}"
            else:
                assert not np.isfinite(value) or not pf.finite or not tf.finite
        if pf.finite and tf.finite:
            value = np.asarray(result["value"])
            with quiet():
                ref_nan = np.isnan(expected).any()
            assert ref_nan or not np.isnan(value).any(), "NaN from finite inputs"
    run_fuzz(body, budget)


@budgets()
def test_softmax_crossentropy_combined(budget):
    def body(data):
        method = data.draw(st.sampled_from(["forward", "backward"]), label="method")
        n, c = data.draw(st.integers(0, 5), label="n"), data.draw(st.integers(0, 4), label="c")
        combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
        combined.forward(np.zeros((2, 3), np.float32), np.array([0, 2]))
        combined.backward(combined.output, np.array([0, 2]))
        x, xf = arrays(data, (n, c), label="inputs") if method == "forward" or data.draw(st.booleans()) \
            else probabilities_like(data, n, c)
        y, yf = class_labels(data, n, c)
        dtype = kept_dtype(xf)
        x_ok = xf.numeric and xf.ndim == 2 and xf.shape[1] >= 1 and xf.fits(dtype)
        valid = x_ok and class_labels_valid(yf, xf.shape[0], xf.shape[1], dtype, for_log=method == "forward") and \
            not (method == "forward" and xf.shape[0] == 0)
        argument = "inputs" if method == "forward" else "dvalues"
        result = {}

        def call():
            result["value"] = getattr(combined, method)(x, y)
        if not check_call(f"softmax+CCE.{method}", combined, call, valid, f"{argument}|y_true"):
            return
        converted = xf.converted(dtype)
        labels = yf.converted(np.intp) if yf.ndim == 1 else yf.converted(dtype)
        b = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
        with quiet():
            if method == "forward":
                expected = b.forward(converted, labels)
                assert_close(combined.output, b.output, "softmax", rtol=(c + 10) * eps(dtype), atol=tiny(dtype))
                if np.isfinite(expected):
                    assert abs(result["value"] - expected) <= (c + n + 20) * eps(dtype) * (abs(expected) + 1), \
                        f"loss {result['value']} vs {expected}"
                if xf.finite and yf.finite:
                    assert math.isfinite(result["value"]), "non-finite loss from finite inputs"
            else:
                b.backward(converted, labels)
                assert_close(combined.dinputs, b.dinputs, "combined dinputs")                   # EXACT
    run_fuzz(body, budget)


# ---------------------------------------------------------------------------------------------
# Optimizers

OPTIMIZERS = cases("optimizer", setups=True)
_CREATED: dict = {}


def state_created(case):
    """The state the optimizer creates on a layer (of the names its declaration gives), as found
    after a few updates."""
    if case.label not in _CREATED:
        (_, layer), _ = harness.used(case)
        _CREATED[case.label] = tuple(name for name in harness.layer_state_names(case) if hasattr(layer, name))
    return _CREATED[case.label]


def kernel_ready(a, dtype=None, writeable=False):
    return (type(a) is np.ndarray and a.dtype in (np.float32, np.float64) and (dtype is None or a.dtype == dtype)
            and a.flags.c_contiguous and a.flags.aligned and (a.flags.writeable or not writeable))


@budgets()
def test_optimizer_update(budget):
    """Optimizers take the layer's arrays as they are (no conversion: they update in place), so an
    update is valid only when every array is in the kernels' form: exact ndarrays of one float
    dtype, C-contiguous, aligned, the parameters and state writeable, each gradient and state array
    the size of its parameter (and, for the first update, which creates the state, its shape)."""
    def body(data):
        case = data.draw(st.sampled_from(OPTIMIZERS), label="optimizer")
        label, cls, kwargs, state_names = case.label, case.name, case.kwargs, state_created(case)
        first = data.draw(st.booleans(), label="first update")
        np.random.seed(0)
        layer = fastnn.Layer_Dense(3, 4, dtype=data.draw(st.sampled_from(["float32", "float64"])))
        layer.forward(np.random.standard_normal((5, 3)))
        layer.backward(np.random.standard_normal((5, 4)))
        optimizer = getattr(fastnn, cls)(**kwargs)
        if not first:
            optimizer.update_params(layer)
            optimizer.post_update_params()
        replaceable = ["weights", "biases", "dweights", "dbiases", *(state_names if not first else ())]
        replaced = data.draw(st.sampled_from(replaceable), label="replaced")
        old = getattr(layer, replaced)
        new, facts = arrays(data, old.shape, label=replaced, values=["normal", "whole", "extreme"])
        layer.__dict__[replaced] = new
        w, b = layer.__dict__["weights"], layer.__dict__["biases"]
        valid = kernel_ready(w, writeable=True) and kernel_ready(b, w.dtype, writeable=True)
        for grad, param in (("dweights", w), ("dbiases", b)):
            g = layer.__dict__[grad]
            valid = valid and kernel_ready(g, param.dtype if isinstance(param, np.ndarray) else None) and \
                g.size == param.size and (not first or g.shape == param.shape)
        for name in state_names if not first else ():
            s = layer.__dict__[name]
            param = w if name.startswith("weight") else b
            valid = valid and kernel_ready(s, param.dtype if isinstance(param, np.ndarray) else None, writeable=True) \
                and s.size == param.size
        if valid and replaced in ("weights", "biases") and first is False:
            # the state was made for the old parameter: its dtype must still match
            valid = all(layer.__dict__[name].dtype == (w if name.startswith("weight") else b).dtype
                        for name in state_names)
        mirror = ref.Layer_Dense(3, 4)
        mirror.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in layer.__dict__.items()})
        reference = getattr(ref, cls)(**kwargs)
        reference.iterations = optimizer.iterations
        if not check_call(f"{label}.update_params", (optimizer, layer), lambda: optimizer.update_params(layer), valid,
                          r"layer\.\w+|the layer has no"):
            return
        # The kernels see flat arrays of equal size (_optimizers.pyx); the reference broadcasts by
        # shape, so it is comparable only when every shape matches the parameter's.
        if all(mirror.__dict__[k].shape == layer.__dict__["weights" if k.startswith(("weight", "dweight")) else
                                                          "biases"].shape
               for k in ("weights", "dweights", "biases", "dbiases", *state_names) if k in mirror.__dict__):
            with quiet():
                reference.update_params(mirror)
            for name in ("weights", "biases", *state_names):
                got = layer.__dict__[name]
                assert_close(got, mirror.__dict__[name].reshape(got.shape), name)                  # EXACT
    run_fuzz(body, budget)


# ---------------------------------------------------------------------------------------------
# Plain arguments (the constructors' are fuzzed from their declared constraints in
# tests/contract/test_constructors.py)

def is_positive_int(v):
    if isinstance(v, (bool, np.bool_)):
        return False
    try:
        return operator.index(v) >= 1
    except TypeError:
        return False


@budgets()
def test_dataset_generators(budget):
    def body(data):
        function = data.draw(st.sampled_from([spiral_data, vertical_data, sine_data]), label="function")
        samples = data.draw(st.one_of(st.integers(-2, 40), PLAIN), label="samples")
        classes = data.draw(st.one_of(st.integers(-2, 300), PLAIN), label="classes")
        if function is sine_data:
            valid = is_positive_int(samples) and operator.index(samples) * 8 <= _validation.memory_limit()
            call = lambda: function(samples)   # noqa: E731
        else:
            valid = (is_positive_int(samples) and is_positive_int(classes) and operator.index(classes) <= 256
                     and operator.index(samples) * operator.index(classes) * 8 <= _validation.memory_limit())
            call = lambda: function(samples, classes)   # noqa: E731
        if valid and (operator.index(samples) > 10 ** 4):
            return                               # legitimate but large: not a fuzz case
        if check_call(function.__name__, None, call, valid, "samples|classes"):
            X, y = call()
            assert len(X) == len(y) and np.all(np.isfinite(X))
    run_fuzz(body, budget)


# ---------------------------------------------------------------------------------------------
# Model


def small_model(lib, seed=0):
    return mlp(lib, (2, 5, 3), "Activation_Softmax", lib.Loss_CategoricalCrossentropy(),
               lib.Optimizer_Adam(learning_rate=0.01), lib.Accuracy_Categorical(), seed=seed)


@budgets()
def test_model(budget):
    def body(data):
        method = data.draw(st.sampled_from(["train", "evaluate", "predict"]), label="method")
        model = small_model(fastnn)
        n = data.draw(st.integers(0, 6), label="n")
        X, xf = arrays(data, (n, 2), label="X")
        y, yf = class_labels(data, xf.shape[0] if xf.numeric and xf.ndim else n, 3)
        batch_size = data.draw(st.sampled_from([None, None, 1, 2, 5, 0, True]), label="batch_size")
        x_ok = xf.numeric and xf.ndim == 2 and xf.shape[0] >= 1 and xf.shape[1] == 2 and xf.fits(np.float32)
        y_ok = method == "predict" or class_labels_valid(yf, xf.shape[0] if x_ok else -1, 3, np.float32, for_log=True)
        valid = x_ok and y_ok and (batch_size is None or (batch_size is not True and batch_size >= 1))
        kwargs = {"batch_size": batch_size}
        if method != "predict":
            kwargs["verbose"] = False
        args = (X,) if method == "predict" else (X, y)
        result = {}

        def call():
            result["value"] = getattr(model, method)(*args, **kwargs)
        if method == "train" and valid and not xf.finite:
            # NaN/inf in X: Model.train's guard stops at the step where the loss becomes non-finite
            # (a refused value is refused, not computed on), unless the network happens to absorb them (ReLU of -inf).
            try:
                call()
                OUTCOMES[("Model.train", "accepted (non-finite X absorbed)")] += 1
            except FloatingPointError as exc:
                assert re.search(r"loss became .* at epoch 1, step \d+; the weights were not updated", str(exc))
                OUTCOMES[("Model.train", "stopped by the NaN guard")] += 1
            return
        if not check_call(f"Model.{method}", model, call, valid, r"\bX\b|\by\b|batch_size"):
            return
        if method == "train":
            if xf.finite:
                assert all(math.isfinite(v) for v in result["value"].loss)
            return
        expected = small_model(ref)
        converted = xf.converted(np.float32)
        with quiet():
            probabilities = expected.predict(converted, batch_size=batch_size)
        if method == "predict":
            assert_close(result["value"], probabilities, "predict", rtol=2000 * eps(np.float32), atol=tiny(np.float32))
        else:
            labels = yf.converted(np.intp) if yf.ndim == 1 else yf.converted(np.float32)
            with quiet():
                loss = np.mean(ref.Loss_CategoricalCrossentropy().forward(probabilities, labels))
            if np.isfinite(loss):
                assert abs(result["value"][0] - loss) <= 2000 * eps(np.float32) * (abs(loss) + 1)
    run_fuzz(body, budget)


# ---------------------------------------------------------------------------------------------
# Raw kernel entries, in a subprocess

KERNEL_FUZZ = textwrap.dedent(r'''
    import collections, sys, warnings
    import numpy as np
    from hypothesis import HealthCheck, given, settings, strategies as st
    import fastnn
    from fastnn._ext import _accuracy, _activations, _blas, _dense, _dropout, _fused_head, _losses, _optimizers

    DTYPES = ["float32", "float64", ">f4", ">f8", "float16", "int32", "int64", "uint8", "bool", "complex128", "object"]
    counts = collections.Counter()
    unexpected = []

    @st.composite
    def arrays(draw):
        ndim = draw(st.integers(0, 3))
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        a = np.zeros(shape, dtype) if dtype.kind == "O" else \
            np.random.default_rng(draw(st.integers(0, 9))).standard_normal(shape).astype(dtype)
        layout = draw(st.sampled_from(["C", "F", "strided", "readonly", "unaligned", "broadcast", "reversed"]))
        if layout == "F":
            a = np.asfortranarray(a)
        elif layout == "strided" and ndim:
            a = np.repeat(a, 2, axis=-1)[..., ::2]
        elif layout == "readonly":
            a.flags.writeable = False
        elif layout == "unaligned" and dtype.itemsize > 1 and dtype.kind != "O":
            buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
            a = buf.view(dtype).reshape(shape)
        elif layout == "broadcast" and ndim and a.size:
            a = np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * ndim), shape)
        elif layout == "reversed" and ndim:
            a = a[::-1]
        return a

    anything = st.one_of(arrays(), st.none(), st.integers(-1, 3), st.just([1.0, 2.0]))
    names = ["weights", "biases", "inputs", "output", "dinputs", "dweights", "dbiases", "binary_mask",
             "weight_momentums", "bias_momentums", "weight_cache", "bias_cache"]

    @st.composite
    def states(draw):
        return {name: draw(anything) for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=12))}

    def call(label, f, *args):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f(*args)
            counts[label + ": returned"] += 1
        except (ValueError, TypeError, RuntimeError) as exc:
            counts[label + ": raised " + type(exc).__name__] += 1
        except Exception as exc:   # IndexError from a bounds-checked build, SystemError, ...
            unexpected.append(f"{label}: {type(exc).__name__}: {exc}")

    @given(st.data())
    def fuzz(data):
        which = data.draw(st.integers(0, 20))
        a, b, c = data.draw(anything), data.draw(anything), data.draw(arrays())
        state = data.draw(states())
        if which == 0: call("_dense.forward", _dense.forward, state, a)
        elif which == 1: call("_dense.backward", _dense.backward, state, a, data.draw(st.booleans()))
        elif which == 2: call("_activations.forward", _activations.forward, data.draw(st.integers(0, 3)), state, a)
        elif which == 3: call("_activations.backward", _activations.backward, data.draw(st.integers(0, 3)), state, a)
        elif which == 4:
            keep, seed = data.draw(st.sampled_from([1.0, 0.5, 1e-3])), data.draw(st.integers(0, 2**64 - 1))
            call("_dropout.fast_forward", _dropout.fast_forward, state, a, keep, seed)
        elif which == 5: call("_dropout.book_forward", _dropout.book_forward, state, a, c)
        elif which == 6: call("_dropout.backward", _dropout.backward, state, a)
        elif which == 7: call("_losses.cce", _losses.cce, a, b, data.draw(st.booleans()))
        elif which == 8: call("_losses.cce_backward", _losses.cce_backward, state, a, b)
        elif which == 9: call("_losses.softmax_cce_backward", _losses.softmax_cce_backward, state, a, b)
        elif which == 10:
            which_loss, per_sample = data.draw(st.integers(0, 2)), data.draw(st.booleans())
            call("_losses.elementwise", _losses.elementwise, which_loss, a, b, per_sample)
        elif which == 11:
            which_loss = data.draw(st.integers(0, 2))
            call("_losses.elementwise_backward", _losses.elementwise_backward, which_loss, state, a, b)
        elif which == 12: call("_losses.regularization_loss", _losses.regularization_loss, a, b, 0.1, 0.2, 0.3, 0.4)
        elif which == 13: call("_accuracy.argmax_matches", _accuracy.argmax_matches, a, b)
        elif which == 14: call("_losses.labels_ready", _losses.labels_ready, a, b)
        elif which == 15:
            call("_optimizers.update_layer", _optimizers.update_layer, data.draw(st.integers(0, 4)), state,
                 0.01, 1e-7, 0.9, 0.999, 0.1, 0.001)
        elif which == 16:
            call("_blas.gemm_into", _blas.gemm_into, a, b, c, data.draw(st.booleans()), data.draw(st.booleans()))
        elif which == 17:
            call("_fused_head.softmax_cce_step", _fused_head.softmax_cce_step, state, data.draw(states()), a, b)
        else:
            # well-formed 2-D float arrays of mismatched sizes: the shapes are what must be checked
            dtype = data.draw(st.sampled_from([np.float32, np.float64]))
            dims = [data.draw(st.integers(0, 4)) for _ in range(6)]
            x, w, bias = np.ones(dims[0:2], dtype), np.ones(dims[2:4], dtype), np.ones((1, dims[4]), dtype)
            s = {"weights": w, "biases": bias, "inputs": x, "output": np.ones(dims[1:3], dtype),
                 "binary_mask": np.ones(dims[3:5], dtype)}
            call("shapes: _dense.forward", _dense.forward, dict(s), x)
            call("shapes: _dense.backward", _dense.backward, dict(s), np.ones(dims[4:6], dtype), True)
            call("shapes: _losses.softmax_cce_backward", _losses.softmax_cce_backward, dict(s), x,
                 np.ones(dims[0:2], dtype))
            call("shapes: _losses.cce", _losses.cce, x, np.zeros(dims[5], np.int64), True)
            call("shapes: _fused_head.softmax_cce_step", _fused_head.softmax_cce_step, dict(s), {}, x,
                 np.zeros(dims[5], np.int64))
            call("shapes: _activations.backward", _activations.backward, 2, dict(s), np.ones(dims[1:3], dtype))
            call("shapes: _dropout.backward", _dropout.backward, dict(s), np.ones(dims[3:5], dtype))
            call("shapes: _optimizers.update_layer", _optimizers.update_layer, 4,
                 {"weights": w, "dweights": np.ones(dims[1:3], dtype), "biases": bias, "dbiases": bias.copy(),
                  "weight_momentums": w.copy(), "weight_cache": np.ones(dims[0:2], dtype),
                  "bias_momentums": bias.copy(), "bias_cache": bias.copy()}, 0.1, 1e-7, 0.9, 0.99, 0.1, 0.01)

    n = int(sys.argv[1])
    settings(max_examples=n, deadline=None, database=None, derandomize=n < 1000,
             suppress_health_check=list(HealthCheck))(fuzz)()
    for line in unexpected[:20]:
        print("UNEXPECTED", line)
    print("TOTAL", sum(counts.values()), "UNEXPECTED", len(unexpected))
    for key, value in sorted(counts.items()):
        print("COUNT", value, key)
''')


def run_in_subprocess(script, *args, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=str(REPO_ROOT), timeout=timeout)


@budgets()
def test_raw_kernel_entries_never_crash(budget):
    """The compiled entries, called directly with arbitrary arrays and states (any dtype, layout and
    shape, missing or foreign attributes), return a status, False or None, or raise ValueError/
    TypeError/RuntimeError; the interpreter running them exits normally (a segfault or a sanitizer
    abort would not). In a FASTNN_DEBUG build an out-of-bounds index would surface as IndexError,
    reported here as unexpected."""
    done = run_in_subprocess(KERNEL_FUZZ, budget * 8)
    EXAMPLES["test_raw_kernel_entries_never_crash"] += budget * 8
    assert done.returncode == 0, \
        f"the kernel fuzz process died (status {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    unexpected = [line for line in done.stdout.splitlines() if line.startswith("UNEXPECTED ")]
    assert not unexpected, "\n".join(unexpected)
    for line in done.stdout.splitlines():
        if line.startswith("COUNT "):
            _, count, key = line.split(" ", 2)
            entry, outcome = key.split(": ", 1)
            OUTCOMES[(f"raw {entry}", outcome)] += int(count)


CRASH_PRONE = textwrap.dedent(r'''
    # Public entry points with the arguments most likely to break a kernel reading raw pointers.
    # argv[1]: the layer cases [(name, kwargs, input shape)]; argv[2]: the optimizer cases [(name, kwargs)].
    import inspect, json, sys
    import numpy as np, fastnn
    from fastnn._core.spec import declared
    LAYERS, OPTIMIZERS = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    HUGE = np.broadcast_to(np.zeros((1, 2)), (2 ** 40, 2))
    def unaligned(shape, dtype):
        if int(np.prod(shape)) > 10 ** 6:      # Activation_Linear keeps HUGE itself as its output
            shape = (3, 4)
        buf = np.zeros(int(np.prod(shape)) * np.dtype(dtype).itemsize + 1, np.uint8)[1:]
        return buf.view(dtype).reshape(shape)
    cases = 0
    def attempt(f, *args):
        global cases
        cases += 1
        try:
            f(*args)
        except (TypeError, ValueError, RuntimeError):
            pass
    for dtype in (np.float32, np.float64):
        np.random.seed(0)
        dense = fastnn.Layer_Dense(4, 3, dtype=dtype)
        for x in (unaligned((5, 4), dtype), np.ones((5, 4), np.dtype(dtype).newbyteorder()), HUGE, np.ones((0, 4)),
                  np.ones((5, 4))[::-1], np.ones((5, 0)), np.ones((2 ** 31 + 1, 0)), np.ones((1, 4), dtype)):
            attempt(dense.forward, x)
            attempt(dense.backward, unaligned((len(dense.output), 3), dtype) if hasattr(dense, "output") else x)
        for name, kwargs, shape in LAYERS:
            cls = getattr(fastnn, name)
            a = cls(**kwargs, dtype=dtype) if "dtype" in inspect.signature(cls).parameters else cls(**kwargs)
            shape = tuple(shape)
            huge = np.broadcast_to(np.zeros((1, *shape[1:])), (2 ** 40 // max(int(np.prod(shape[1:])), 1), *shape[1:]))
            for x in (unaligned(shape, dtype), np.ones((*shape[:-1], 0), dtype), np.ones((0, *shape[1:]), dtype),
                      np.float64(2.0), np.ones(shape, np.dtype(dtype).newbyteorder()), np.ones(shape)[::-1], HUGE, huge):
                attempt(a.forward, x)
                if hasattr(a, "backward"):
                    attempt(a.backward, unaligned(np.shape(a.__dict__.get("output", 0)), dtype))
                    attempt(a.backward, np.ones((*np.shape(a.__dict__.get("output", (3, 1)))[:-1], 0), dtype))
        for mode in ("fast", "book"):
            d = fastnn.Layer_Dropout(0.5, mode=mode)
            for x in (unaligned((3, 4), dtype), np.ones(0, dtype), np.float64(1), HUGE, np.ones((2, 3, 4), ">f8")):
                attempt(d.forward, x)
                attempt(d.backward, unaligned(np.shape(d.__dict__.get("inputs", 0)), dtype))
        for loss in [spec.cls() for spec in declared("loss") if hasattr(spec.cls, "forward")]:
            pairs = [(np.ones((3, 0), dtype), np.ones((3, 0), dtype)),
                     (np.ones((3, 0), dtype), np.zeros(3, np.int64)),
                     (unaligned((3, 2), dtype), unaligned((3,), np.int64)),
                     (np.ones((0, 2), dtype), np.zeros(0, np.uint8)),
                     (np.ones((3, 2), dtype), np.array([0, 1, 2 ** 62])),
                     (np.ones((3, 2), dtype), np.array([0, -1, 1], np.int8)),
                     (np.ones((3, 2), dtype), unaligned((3, 2), dtype)),
                     (np.ones((3, 2), dtype), np.ones((3, 2), ">f8"))]
            for p, y in pairs:
                for method in ("forward", "backward", "calculate"):
                    if hasattr(loss, method):
                        attempt(getattr(loss, method), p, y)
        for opt in [getattr(fastnn, name)(**kwargs) for name, kwargs in OPTIMIZERS]:
            layer = fastnn.Layer_Dense(4, 3, dtype=dtype)
            layer.forward(np.ones((2, 4), dtype)); layer.backward(np.ones((2, 3), dtype))
            for name, value in (("dweights", unaligned((4, 3), dtype)), ("weights", np.ones((4, 3), dtype)[::-1]),
                                ("dbiases", np.ones((1, 30), dtype)), ("weights", np.ones((0, 3), dtype)),
                                ("dweights", np.ones((4, 3), np.dtype(dtype).newbyteorder()))):
                saved = layer.__dict__[name]
                layer.__dict__[name] = value
                attempt(opt.update_params, layer)
                layer.__dict__[name] = saved
    print("CASES", cases)
''')


def test_crash_prone_cases_in_a_subprocess_exit_normally():
    layers = [(case.name, dict(case.kwargs), list(case.inputs)) for case in cases("layer", setups=True)]
    optimizers = [(case.name, dict(case.kwargs)) for case in cases("optimizer", setups=True)]
    done = run_in_subprocess(CRASH_PRONE, json.dumps(layers), json.dumps(optimizers))
    assert done.returncode == 0, f"status {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    count = int(re.search(r"CASES (\d+)", done.stdout).group(1))
    OUTCOMES[("crash-prone public calls (subprocess)", "exited normally")] += count
    assert count > 300
