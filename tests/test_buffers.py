"""Buffers and user arrays (docs/kernels.md).

- After warm-up a training step of the dense/activation/loss/optimizer path allocates no array:
  tracemalloc (NumPy reports its allocations to it) sees neither growth nor a transient peak of
  array size over many steps; nor does the forward and backward of every declared layer.
- No output aliases an input the kernel reads: a square Dense fed its own output and gradient.
- User arrays come as they are: Dropout in both modes, the combined head's and CCE's labels, a
  whole training loop; each is converted once and the user's array is never modified.

Buffer reuse, own-output feeding and user arrays of every declared layer and loss are contract
tests (tests/contract/test_buffers.py).
"""
import gc
import tracemalloc

import numpy as np
import pytest

import fastnn
import _book
import fastnn.reference as ref

from cases import cases, ids
from contract.harness import USER_ARRAY_KINDS, build, data, exercise, kept_dtype, user_arrays

# ---------------------------------------------------------------------------------------------
# No allocation per step

BATCH, N_IN, HIDDEN, CLASSES = 2048, 16, 256, 10
# The smallest array a step could allocate per batch is a per-sample vector (BATCH,) float32 =
# 8 KiB (the per-sample losses, say), the smallest weight matrix (HIDDEN, CLASSES) 10 KiB; Python's
# own per-step objects (floats, frames, tuples) and the dense backward's scratch row of HIDDEN + 1
# doubles (2 KiB, PyMem) stay under 4 KiB.
ARRAY_THRESHOLD = 4096


class Network:
    """Dense-ReLU-[Dropout]-Dense + combined softmax/CCE with Adam, the Ch14/15 manual loop."""

    def __init__(self, dropout=False, regularized=True, dtype=np.float32):
        rng = np.random.default_rng(0)
        np.random.seed(0)
        self.X = rng.standard_normal((BATCH, N_IN)).astype(dtype)
        self.y = rng.integers(0, CLASSES, BATCH)
        reg = dict(weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4) if regularized else {}
        self.dense1 = fastnn.Layer_Dense(N_IN, HIDDEN, **reg, dtype=dtype)
        self.relu = fastnn.Activation_ReLU()
        self.dropout = fastnn.Layer_Dropout(0.1) if dropout else None
        self.dense2 = fastnn.Layer_Dense(HIDDEN, CLASSES, dtype=dtype)
        self.head = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
        self.optimizer = fastnn.Optimizer_Adam(learning_rate=0.02, decay=5e-7)

    def step(self, X=None, y=None):
        X = self.X if X is None else X
        y = self.y if y is None else y
        self.dense1.forward(X)
        self.relu.forward(self.dense1.output)
        hidden = self.relu.output
        if self.dropout is not None:
            self.dropout.forward(hidden)
            hidden = self.dropout.output
        self.dense2.forward(hidden)
        data_loss = self.head.forward(self.dense2.output, y)
        reg_loss = (self.head.loss.regularization_loss(self.dense1)
                    + self.head.loss.regularization_loss(self.dense2))
        self.head.backward(self.head.output, y)
        self.dense2.backward(self.head.dinputs)
        grad = self.dense2.dinputs
        if self.dropout is not None:
            self.dropout.backward(grad)
            grad = self.dropout.dinputs
        self.relu.backward(grad)
        self.dense1.backward(self.relu.dinputs)
        self.optimizer.pre_update_params()
        self.optimizer.update_params(self.dense1)
        self.optimizer.update_params(self.dense2)
        self.optimizer.post_update_params()
        return data_loss + reg_loss


def measure(step, n_steps=40):
    """(growth, transient peak, fastnn traces that grew) over n_steps after warm-up."""
    for _ in range(3):
        step()
    tracemalloc.start(10)
    try:
        for _ in range(2):
            step()
        gc.collect()
        before = tracemalloc.take_snapshot()
        current_before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(n_steps):
            step()
        current_after, peak = tracemalloc.get_traced_memory()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grew = [stat for stat in after.compare_to(before, "traceback")
            if stat.size_diff > ARRAY_THRESHOLD // 4
            and any("fastnn" in frame.filename for frame in stat.traceback)]
    return current_after - current_before, peak - current_before, grew


@pytest.mark.parametrize("labels", ["int64", "uint8", "onehot"])
@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout"])
def test_training_step_allocates_no_arrays(dropout, labels, dtype):
    net = Network(dropout=dropout, dtype=dtype)
    if labels == "onehot":
        net.y = np.eye(CLASSES, dtype=dtype)[net.y]  # one-hot rows in the network's dtype
    else:
        net.y = net.y.astype(labels)
    growth, peak, grew = measure(net.step)
    assert growth < ARRAY_THRESHOLD, f"memory grew by {growth} bytes over the steps"
    assert peak < ARRAY_THRESHOLD, f"a step allocated {peak} bytes at its peak (an array per step?)"
    assert not grew, "\n".join(str(s) for s in grew)


ALLOCATION_FREE = [case for case in cases("layer", setups=True) if case.backward and not case.seeded]


@pytest.mark.parametrize("case", ALLOCATION_FREE, ids=ids(ALLOCATION_FREE))
def test_every_layer_steps_without_allocating(case):
    """Each declared layer (its case's setups; dropout, whose mask stream is its own test, aside):
    forward and backward on a batch of BATCH samples allocate no array once the buffers exist."""
    made = data(case, np.float32, batch=BATCH)
    layer = build(case, dtype=np.float32)
    growth, peak, grew = measure(lambda: exercise(case, layer, made, copies=False), n_steps=8)
    assert growth < ARRAY_THRESHOLD and peak < ARRAY_THRESHOLD, f"{case.label}: {growth} bytes kept, {peak} at the peak"
    assert not grew, "\n".join(str(s) for s in grew)


def test_the_allocation_check_catches_a_per_step_array(monkeypatch):
    """The harness must fail when one kernel call allocates even the smallest per-batch array:
    wrap the ReLU kernel so that it also makes a (BATCH,) float32 temporary, as a loss computing
    its per-sample vector would. (Breaking buffer reuse in src_pyx/_common.pxd, `reuse`, made the
    allocation test report ~1 MB per step.)"""
    from fastnn import activations

    original = activations._activations.forward

    def allocating_forward(kind, state, inputs):
        scratch = np.empty(BATCH, np.float32)
        scratch.fill(0)
        return original(kind, state, inputs)

    monkeypatch.setattr(activations._activations, "forward", allocating_forward)
    net = Network()
    _, peak, _ = measure(net.step, n_steps=5)
    assert peak >= ARRAY_THRESHOLD


def test_the_growth_check_catches_a_leak():
    net = Network()
    kept = []
    original = net.step

    def leaking_step():
        kept.append(np.empty(BATCH * CLASSES, np.float32))
        return original()

    growth, _, _ = measure(leaking_step, n_steps=5)
    assert growth >= 5 * BATCH * CLASSES * 4


# ---------------------------------------------------------------------------------------------
# Outputs never alias the inputs a kernel reads


def test_square_dense_fed_its_own_output(dtype, rng):
    np.random.seed(0)
    layer = fastnn.Layer_Dense(8, 8, dtype=dtype)
    layer.biases[...] = rng.standard_normal((1, 8)).astype(dtype)
    x = rng.standard_normal((8, 8)).astype(dtype)
    layer.forward(x)
    first = layer.output
    expected = (first @ layer.weights + layer.biases)
    layer.forward(layer.output)
    assert not np.shares_memory(layer.output, first)
    np.testing.assert_allclose(layer.output, expected, rtol=50 * np.finfo(dtype).eps, atol=1e-30)
    assert layer.inputs is first
    # Backward with its own dinputs as dvalues (square: the shapes chain).
    dvalues = rng.standard_normal((8, 8)).astype(dtype)
    layer.backward(dvalues)
    own = layer.dinputs
    expected_dinputs = own @ layer.weights.T
    expected_dweights = first.T @ own
    layer.backward(layer.dinputs)
    np.testing.assert_allclose(layer.dinputs, expected_dinputs, rtol=50 * np.finfo(dtype).eps, atol=1e-30)
    np.testing.assert_allclose(layer.dweights, expected_dweights, rtol=50 * np.finfo(dtype).eps, atol=1e-30)


# ---------------------------------------------------------------------------------------------
# User arrays as they come


@pytest.mark.parametrize("kind", USER_ARRAY_KINDS)
def test_dropout_takes_user_arrays(rng, kind):
    """In both modes (the contract suite compares book mode with the reference): the mask applied
    to the converted inputs, and the inputs themselves at inference."""
    x = user_arrays(rng.standard_normal((12, 6)))[kind]
    before = np.array(x, copy=True)
    converted = np.ascontiguousarray(np.asarray(x), dtype=kept_dtype(x))
    for mode in ("fast", "book"):
        d = fastnn.Layer_Dropout(0.3, mode=mode)
        np.random.seed(4)
        d.forward(x)
        assert d.output.dtype == converted.dtype
        if mode == "book":
            np.random.seed(4)
            r = ref.Layer_Dropout(0.3)
            r.forward(converted)
            np.testing.assert_array_equal(d.output, r.output)
        else:
            np.testing.assert_array_equal(d.output, converted * d.binary_mask)
        d.backward(np.asarray(x, dtype=np.float64))
        d.forward(x, training=False)
        np.testing.assert_array_equal(d.output, converted)
    np.testing.assert_array_equal(np.asarray(x), before)


@pytest.mark.parametrize("labels", ["list", "int8", "uint16", "strided", "readonly", "float_ids", "bigendian",
                                    "unaligned", "onehot_unaligned"])
def test_combined_head_and_cce_take_user_labels(rng, labels):
    out = rng.uniform(0.1, 1, (10, 4)).astype(np.float32)
    out /= out.sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, 20)
    forms = {
        "list": y[:10].tolist(), "int8": y[:10].astype(np.int8), "uint16": y[:10].astype(np.uint16),
        "strided": y[::2], "readonly": y[:10].copy(), "float_ids": y[:10].astype(np.float64),
        "bigendian": y[:10].astype(">i8"),
        "unaligned": np.frombuffer(bytearray(b"\0" + y[:10].astype(np.int64).tobytes()), np.int64, offset=1),
        "onehot_unaligned": np.frombuffer(bytearray(b"\0" + np.eye(4, dtype=np.float32)[y[:10]].tobytes()),
                                          np.float32, offset=1).reshape(10, 4),
    }
    forms["readonly"].setflags(write=False)
    labels_in = forms[labels]
    before = np.array(labels_in, copy=True)
    plain = np.asarray(labels_in)
    plain = plain.astype(np.intp) if plain.ndim == 1 else plain.astype(np.float32)
    a = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    b = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
    a.backward(out, labels_in)
    b.backward(out, plain)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)
    a, b = fastnn.Loss_CategoricalCrossentropy(), ref.Loss_CategoricalCrossentropy()
    np.testing.assert_allclose(a.calculate(out, labels_in), b.calculate(out, plain), rtol=1e-6)
    a.backward(out, labels_in)
    b.backward(out, plain)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)
    np.testing.assert_array_equal(np.asarray(labels_in), before)


def test_the_users_arrays_survive_a_whole_training_loop(rng):
    """Data, labels and the arrays handed to forward/backward are never written to."""
    X = rng.standard_normal((64, 5))  # float64 data into a float32 network
    y = rng.integers(0, 3, 64)
    X_before, y_before = X.copy(), y.copy()
    Xr = X.astype(np.float32)
    Xr.setflags(write=False)
    np.random.seed(0)
    dense1, relu = fastnn.Layer_Dense(5, 16), fastnn.Activation_ReLU()
    dense2, head = fastnn.Layer_Dense(16, 3), fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = fastnn.Optimizer_SGD(learning_rate=0.5, momentum=0.9)
    for data in (X, Xr, X[::1], np.asfortranarray(X)):
        for _ in range(3):
            _book.chapter_step([dense1, relu, dense2], head, optimizer, data, y)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Xr, X_before.astype(np.float32))
    np.testing.assert_array_equal(y, y_before)
