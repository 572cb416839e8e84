"""Every declared class computes what its fastnn.reference twin computes, in float32 and float64,
within the case's tolerance (tests/cases.py: `rtol`, in units of the dtype's epsilon; 0 means
bit-identical): forward and backward of layers, losses and the combined softmax/cross-entropy,
accuracies, and optimizer updates of every trainable layer (several steps, with their state).
Also the regularisation loss of every trainable layer, and the constructors' first draws from
NumPy's global RNG."""
import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

from cases import cases, ids
from contract.harness import (assert_close, assert_same_results, build, data, exercise, optimizer_pair, pair,
                              parameter_names)

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
DRIVEN = [case for protocol in ("layer", "loss", "combined", "accuracy") for case in cases(protocol, setups=True)]
TRAINABLE = cases("layer", trainable=True, setups=True)
OPTIMIZERS = cases("optimizer", setups=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DRIVEN, ids=ids(DRIVEN))
def test_results_match_the_reference(case, dtype):
    fast, slow = pair(case, dtype)
    for batch in (None, case.min_batch):     # the case's batch, then a single sample (or the fewest it takes)
        made = data(case, dtype, batch=batch)
        got = exercise(case, fast, made)
        want = exercise(case, slow, made)
        assert_same_results(case, got, want, dtype)
        if case.protocol == "layer":
            assert got["output"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layer_case", TRAINABLE, ids=ids(TRAINABLE))
@pytest.mark.parametrize("case", OPTIMIZERS, ids=ids(OPTIMIZERS))
def test_optimizer_updates_match_the_reference(case, layer_case, dtype):
    fast, slow = optimizer_pair(case, layer_case, dtype)
    made = data(case, dtype)
    got, want = exercise(case, fast, made), exercise(case, slow, made)
    assert_same_results(case, got, want, dtype)
    assert got["iterations"] == 3 and got["weights"].dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TRAINABLE, ids=ids(TRAINABLE))
def test_regularization_loss_matches_the_reference(case, dtype):
    fast, slow = pair(case, dtype)
    got, want = fastnn.Loss().regularization_loss(fast), ref.Loss().regularization_loss(slow)
    if want == 0:
        assert type(got) is int, "no penalty: the int 0, as the book"
    # SUM_BOUND: fastnn sums in double, the reference in the dtype.
    size = sum(getattr(slow, name).size for name in parameter_names(case, slow))
    assert_close(got, want, size + 4, dtype, f"{case.label} regularization_loss")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", cases(trainable=True, setups=True), ids=ids(cases(trainable=True, setups=True)))
def test_initial_parameters_and_rng_stream_are_the_references(case, dtype):
    """Same seed, same draws from NumPy's global RNG, in the same order: the same initial
    parameters, and the same next draw after construction."""
    fast = build(case, fastnn, dtype=dtype, seed=42)
    after_fast = np.random.random_sample()
    slow = build(case, ref, dtype=dtype, seed=42)
    after_slow = np.random.random_sample()
    assert after_fast == after_slow
    for name in parameter_names(case, slow):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
        assert getattr(fast, name).dtype == np.dtype(dtype)
