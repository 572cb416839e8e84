"""Runtime kernel dispatch: the AVX2 build of each dispatched module gives bit-identical results
to the portable build (the variants differ only in vector width; -ffp-contract=off forbids fused
multiply-adds), and the import picks the best build this CPU can run."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import _ext
from fastnn._ext import _buildinfo

from cases import cases
from contract.harness import build

needs_avx2 = pytest.mark.skipif(
    not (_buildinfo.cpu_has_avx2() and all(_ext._is_built(n + "_avx2") for n in _ext.DISPATCHED)),
    reason="no AVX2 build or CPU")


def _variants(name):
    return _ext.BASELINE[name], importlib.import_module(f"fastnn._ext.{name}_avx2")


def _run_both(name, call):
    results = []
    for module in _variants(name):
        results.append(call(module))
    return results


@needs_avx2
def test_import_uses_the_avx2_build_on_this_cpu():
    if os.environ.get("FASTNN_KERNELS", "auto") == "baseline":
        pytest.skip("FASTNN_KERNELS=baseline in this run")
    assert _ext.KERNELS == "avx2"
    from fastnn._ext import _activations
    assert _activations.__name__.endswith("_avx2")


def test_baseline_can_be_forced():
    code = "import fastnn; from fastnn._ext import KERNELS, _optimizers; print(KERNELS, _optimizers.__name__)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "FASTNN_KERNELS": "baseline"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["baseline", "fastnn._ext._optimizers"]


def test_bad_kernel_choice_is_refused():
    result = subprocess.run([sys.executable, "-c", "import fastnn"], env={**os.environ, "FASTNN_KERNELS": "sse9"},
                            capture_output=True, text=True)
    assert result.returncode != 0 and "FASTNN_KERNELS" in result.stderr


# The activation kernel's users: each setup's object, whose kind (and state, LeakyReLU's alpha) the
# kernel is called with.
ACTIVATIONS = {case.label: build(case) for case in cases("layer", setups=True)
               if isinstance(getattr(build(case), "_KIND", None), int)}


@needs_avx2
@pytest.mark.parametrize("activation", list(ACTIVATIONS.values()), ids=list(ACTIVATIONS))
def test_activations_identical(activation, dtype, rng):
    x = (rng.standard_normal((37, 29)) * 30).astype(dtype)
    x[0, :5] = [0, -0.0, 88, -90, 1e-30]
    d = rng.standard_normal((37, 29)).astype(dtype)
    kind = activation._KIND

    def call(module):
        state = dict(vars(activation))
        assert module.forward(kind, state, x)
        assert module.backward(kind, state, d)
        return state["output"].copy(), state["dinputs"].copy()

    (o1, g1), (o2, g2) = _run_both("_activations", call)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(g1, g2)


@needs_avx2
def test_losses_identical(dtype, rng):
    p = rng.uniform(0, 1, (41, 7)).astype(dtype)
    p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, 7, 41).astype(np.intp)
    target = rng.uniform(0, 1, (41, 7)).astype(dtype)

    def call(module):
        out = [module.cce(p, y, True)[1]]
        for which in (module.BCE, module.MSE, module.MAE):
            out.append(module.elementwise(which, p, target, True)[1])
            state = {}
            assert module.elementwise_backward(which, state, p, target)
            out.append(state["dinputs"].copy())
        state = {}
        assert module.softmax_cce_backward(state, p, y)
        out.append(state["dinputs"].copy())
        return out

    for a, b in zip(*_run_both("_losses", call)):
        np.testing.assert_array_equal(a, b)


@needs_avx2
def test_accuracy_and_fused_head_identical(dtype, rng):
    logits = (rng.standard_normal((41, 7)) * 5).astype(dtype)
    y = rng.integers(0, 7, 41).astype(np.intp)

    def head(module):
        softmax, combined = {}, {}
        total, correct = module.softmax_cce_step(softmax, combined, logits, y)
        return total, correct, softmax["output"].copy(), combined["dinputs"].copy()

    (t1, c1, p1, d1), (t2, c2, p2, d2) = _run_both("_fused_head", head)
    assert (t1, c1) == (t2, c2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(d1, d2)
    assert _run_both("_accuracy", lambda module: module.argmax_matches(p1, y)) == [c1, c1]


@needs_avx2
@pytest.mark.parametrize("method", [0, 1, 2, 3, 4])
def test_optimizers_identical(method, dtype, rng):
    def layer():
        r = np.random.default_rng(7)
        state = {k: r.standard_normal((13, 11)).astype(dtype) for k in ("weights", "dweights")}
        state.update({k: r.standard_normal((1, 11)).astype(dtype) for k in ("biases", "dbiases")})
        for k in ("weight_momentums", "weight_cache"):
            state[k] = np.abs(r.standard_normal((13, 11))).astype(dtype)
        for k in ("bias_momentums", "bias_cache"):
            state[k] = np.abs(r.standard_normal((1, 11))).astype(dtype)
        return state

    def call(module):
        state = layer()
        for t in range(1, 6):
            assert module.update_layer(method, state, 0.01, 1e-7, 0.9, 0.999, 1 - 0.9 ** t, 1 - 0.999 ** t) == module.OK
        return state

    a, b = _run_both("_optimizers", call)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@needs_avx2
def test_dropout_identical(dtype, rng):
    x = rng.standard_normal((33, 65)).astype(dtype)

    def call(module):
        state = {}
        assert module.fast_forward(state, x, 0.8, 123456789)
        return state["output"].copy(), state["binary_mask"].copy()

    (o1, m1), (o2, m2) = _run_both("_dropout", call)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(m1, m2)


@needs_avx2
def test_dense_identical(dtype, rng):
    x = rng.standard_normal((29, 13)).astype(dtype)
    d = rng.standard_normal((29, 7)).astype(dtype)

    def call(module):
        r = np.random.default_rng(5)
        state = {"weights": r.standard_normal((13, 7)).astype(dtype), "biases": r.standard_normal((1, 7)).astype(dtype),
                 "weight_regularizer_l1": 1e-3, "weight_regularizer_l2": 5e-4,
                 "bias_regularizer_l1": 1e-3, "bias_regularizer_l2": 5e-4}
        assert module.forward(state, x) == module.OK
        assert module.backward(state, d) == module.OK
        return [state[k].copy() for k in ("output", "dweights", "dbiases", "dinputs")]

    for a, b in zip(*_run_both("_dense", call)):
        np.testing.assert_array_equal(a, b)
