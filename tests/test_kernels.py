"""Every compiled op against fastnn.reference (the book's math in plain NumPy), float32 and float64.

Shapes: random ones plus edge shapes (one row, one column, sizes that are not multiples of the
vector width 4/8/16). BLAS is pinned to one thread by conftest.py.

Tolerances (eps = np.finfo(dtype).eps; every assertion names the rule it uses):
- EXACT where both sides do the same IEEE operations in the same order: ReLU, Linear, the loss
  gradients, the fused softmax + CCE gradient, dropout in book mode, every optimizer update (the
  hyper-parameters are rounded to the dtype exactly as NumPy rounds a Python float), and products
  fastnn sends to the BLAS routine NumPy's matmul sends them to (see `gemm_is_gemm`).
- GEMM_BOUND for the others (a 1x1 output, which NumPy computes with dot and fastnn with gemv; any
  one-row or one-column output where the BLAS exports no gemv): both results are within the
  standard dot-product error bound k*eps*(|A|@|B|) of the exact product, so they differ by at most
  2*k*eps*(|A|@|B|).
- SUM_BOUND for column sums, means and penalties: fastnn accumulates in double, the reference in
  the dtype (sequential or pairwise); a sequential sum of n terms is within (n-1)*eps*sum|x| of
  the exact sum, so |difference| <= (n+1)*eps*sum|x| (the +2 covers the final roundings).
- ULPS for exp/log: fastnn calls libm's expf/logf (exp/log for float64), NumPy its own SIMD
  routines; both are within ~3 ulp of the exact value, so rtol = 8*eps (9.5e-7 in float32,
  1.8e-15 in float64), with atol = the smallest normal number where a result may underflow.
"""
import warnings

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from fastnn._core import config as _config

from cases import cases, ids
from contract import harness

DENSE_SHAPES = [  # (n_samples, n_inputs, n_neurons)
    (1, 1, 1), (1, 7, 3), (7, 1, 3), (7, 3, 1), (1, 64, 64), (33, 17, 5), (300, 64, 3),
    (300, 2, 64), (5, 33, 17), (16, 8, 4),
]
SHAPES_2D = [(1, 1), (1, 7), (7, 1), (2, 3), (33, 17), (300, 64), (128, 10), (9, 15)]


def random_shapes(n, seed, low=1, high=70):
    r = np.random.default_rng(seed)
    return [tuple(int(v) for v in r.integers(low, high, 2)) for _ in range(n)]


ALL_2D = SHAPES_2D + random_shapes(3, 7)


def eps(dtype):
    return float(np.finfo(dtype).eps)


def ulps_rtol(dtype):
    # ULPS: two implementations of exp/log, each within ~3 ulp of the exact value.
    return 8 * eps(dtype)


def tiny(dtype):
    return float(np.finfo(dtype).tiny)


def gemm_is_gemm(m, n, k):
    """Whether fastnn's product of (m, k) @ (k, n) has NumPy's bits. NumPy's matmul sends it to
    BLAS gemm when the output has at least two rows and two columns, to gemv when it has one row
    or one column, to dot for a 1x1 output; with k == 1 every output is one rounded product.
    fastnn calls gemm and gemv alike (gemv where the BLAS exports it), and gemv for a 1x1 output,
    whose summation order may differ from dot's."""
    if k == 1 or (m > 1 and n > 1):
        return True
    return fastnn.backend.blas._blas.has_gemv() and not (m == 1 and n == 1)


def assert_product(actual, expected, a, b, what):
    """actual/expected: two computations of a @ b."""
    m, k = a.shape
    n = b.shape[1]
    assert actual.dtype == expected.dtype == a.dtype, what
    if gemm_is_gemm(m, n, k):
        np.testing.assert_array_equal(actual, expected, err_msg=f"{what}: EXACT (both gemm)")
    else:
        # GEMM_BOUND
        bound = 2 * k * eps(a.dtype) * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
        diff = np.abs(actual.astype(np.float64) - expected)
        assert np.all(diff <= bound), f"{what}: GEMM_BOUND exceeded by {np.max(diff - bound)}"


def assert_sum_close(actual, expected, terms_abs_sum, n, dtype, what, extra=0.0):
    """SUM_BOUND: two summations of n terms whose absolute values sum to terms_abs_sum."""
    bound = (n + 1) * eps(dtype) * np.asarray(terms_abs_sum, dtype=np.float64) + extra
    diff = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    assert np.all(diff <= bound), f"{what}: SUM_BOUND exceeded: diff {np.max(diff)} > {np.min(bound)}"


def dense_pair(n_inputs, n_neurons, dtype, seed=0, **regularizers):
    np.random.seed(seed)
    a = fastnn.Layer_Dense(n_inputs, n_neurons, **regularizers, dtype=dtype)
    np.random.seed(seed)
    b = ref.Layer_Dense(n_inputs, n_neurons, **regularizers, dtype=dtype)
    return a, b


def probabilities(rng, shape, dtype, scale=3.0):
    z = rng.standard_normal(shape) * scale
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(dtype)


# =============================================================================================
# Layer_Dense


@pytest.mark.parametrize("shape", DENSE_SHAPES + [tuple(s) for s in np.random.default_rng(3).integers(1, 40, (3, 3))])
def test_dense_forward_backward(dtype, rng, shape):
    n_samples, n_inputs, n_neurons = shape
    a, b = dense_pair(n_inputs, n_neurons, dtype)
    # Same seed, same draws: the book's weights, bit for bit.
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.weights.dtype == dtype and a.biases.dtype == dtype
    biases = rng.standard_normal((1, n_neurons)).astype(dtype)
    a.biases[...] = biases
    b.biases[...] = biases
    x = rng.standard_normal((n_samples, n_inputs)).astype(dtype)
    a.forward(x)
    b.forward(x)
    # The bias is added after the product in both: the gemm rule decides.
    assert_product(a.output - biases, b.output - biases, x, a.weights, "output")
    if gemm_is_gemm(n_samples, n_neurons, n_inputs):
        np.testing.assert_array_equal(a.output, b.output)

    dvalues = rng.standard_normal((n_samples, n_neurons)).astype(dtype)
    a.backward(dvalues)
    b.backward(dvalues)
    assert_product(a.dweights, b.dweights, x.T, dvalues, "dweights")
    assert_product(a.dinputs, b.dinputs, dvalues, a.weights.T, "dinputs")
    assert a.dbiases.shape == b.dbiases.shape == (1, n_neurons) and a.dbiases.dtype == dtype
    assert_sum_close(a.dbiases, b.dbiases, np.abs(dvalues).sum(axis=0, keepdims=True), n_samples, dtype, "dbiases")


REGULARIZERS = [
    dict(weight_regularizer_l1=1e-3),
    dict(weight_regularizer_l2=5e-4),
    dict(bias_regularizer_l1=2e-3),
    dict(bias_regularizer_l2=3e-4),
    dict(weight_regularizer_l1=1e-3, weight_regularizer_l2=5e-4, bias_regularizer_l1=2e-3,
         bias_regularizer_l2=3e-4),
]


@pytest.mark.parametrize("regularizers", REGULARIZERS, ids=lambda r: "+".join(sorted(r)))
# (5, 3, 1500): more neurons than the backward's stack scratch (1024), so its heap path runs too.
@pytest.mark.parametrize("shape", [(33, 17, 5), (2, 3, 9), (1, 7, 3), (5, 3, 1500)])
def test_dense_backward_with_regularization(dtype, rng, shape, regularizers):
    n_samples, n_inputs, n_neurons = shape
    a, b = dense_pair(n_inputs, n_neurons, dtype, **regularizers)
    weights = a.weights.copy()
    weights[0, :] = 0.0          # the book's L1 sign is +1 at exactly 0 ...
    weights[-1, :1] = -0.0       # ... and at -0.0 (-0.0 < 0 is false)
    biases = rng.standard_normal((1, n_neurons)).astype(dtype)
    biases[0, 0] = 0.0
    for layer in (a, b):
        layer.weights[...] = weights
        layer.biases[...] = biases
    x = rng.standard_normal((n_samples, n_inputs)).astype(dtype)
    dvalues = rng.standard_normal((n_samples, n_neurons)).astype(dtype)
    for layer in (a, b):
        layer.forward(x)
        layer.backward(dvalues)
    # The regularisation terms are added with the same float operations in the same order (L1,
    # then L2, coefficients rounded to the dtype), so dweights keep the gemm rule.
    assert_product(a.dweights, b.dweights, x.T, dvalues, "dweights")
    # dbiases: SUM_BOUND of the column sums, plus one rounding of each added term.
    assert_sum_close(a.dbiases, b.dbiases, np.abs(dvalues).sum(axis=0, keepdims=True), n_samples, dtype,
                     "dbiases", extra=2 * eps(dtype) * np.abs(b.dbiases.astype(np.float64)))
    assert_product(a.dinputs, b.dinputs, dvalues, weights.T, "dinputs (unregularised)")

    # The L1 sign at exactly 0 is +1: compare against the same layer without regularisation.
    plain = fastnn.Layer_Dense(n_inputs, n_neurons, dtype=dtype)
    plain.weights[...] = weights
    plain.biases[...] = biases
    plain.forward(x)
    plain.backward(dvalues)
    l1 = dtype.type(regularizers.get("weight_regularizer_l1", 0))
    l2 = dtype.type(2 * regularizers.get("weight_regularizer_l2", 0))
    expected = plain.dweights
    if l1:
        expected = expected + l1 * np.where(weights < 0, dtype.type(-1), dtype.type(1))
    if l2:
        expected = expected + l2 * weights
    np.testing.assert_array_equal(a.dweights, expected)
    if l1:
        assert np.all(a.dweights[0] > plain.dweights[0]), "L1 sign at 0 must be +1"


def test_dense_products_match_the_reference_at_two_blas_threads(dtype, rng):
    """fastnn calls NumPy's own BLAS: with the same thread count (here 2, large enough products for
    OpenBLAS to split them) the gemm products are the reference's bit for bit."""
    from threadpoolctl import threadpool_limits

    a, b = dense_pair(384, 256, dtype)
    x = rng.standard_normal((512, 384)).astype(dtype)
    dvalues = rng.standard_normal((512, 256)).astype(dtype)
    with threadpool_limits(limits=2, user_api="blas"):
        for layer in (a, b):
            layer.forward(x)
            layer.backward(dvalues)
    np.testing.assert_array_equal(a.output, b.output)
    np.testing.assert_array_equal(a.dweights, b.dweights)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)


def test_dense_weights_dtype_and_rng_stream(dtype):
    """Same global RNG calls as the book: the next draw after construction is the same."""
    np.random.seed(42)
    a = fastnn.Layer_Dense(4, 5, dtype=dtype)
    after_a = np.random.random_sample()
    np.random.seed(42)
    b = ref.Layer_Dense(4, 5, dtype=dtype)
    after_b = np.random.random_sample()
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.biases, np.zeros((1, 5), dtype))
    assert after_a == after_b


# =============================================================================================
# Activations


@pytest.mark.parametrize("shape", ALL_2D + [(2, 3, 4)])
def test_relu_exact_with_zeros(dtype, rng, shape):
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[::3] = 0.0
    flat[1::5] = -0.0
    a, b = fastnn.Activation_ReLU(), ref.Activation_ReLU()
    a.forward(x)
    b.forward(x)
    np.testing.assert_array_equal(a.output, b.output)   # EXACT (max is exact)
    assert a.output.dtype == dtype and a.output.shape == shape
    dvalues = rng.standard_normal(shape).astype(dtype)
    a.backward(dvalues)
    b.backward(dvalues)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)  # EXACT (a select)
    assert np.all(a.dinputs[x == 0] == 0), "the gradient at exactly 0 is 0"


def test_relu_lets_nan_through(dtype):
    x = np.array([[np.nan, -1.0, 2.0]], dtype)
    relu = fastnn.Activation_ReLU()
    relu.forward(x)
    assert np.isnan(relu.output[0, 0]) and relu.output[0, 1] == 0 and relu.output[0, 2] == 2


@pytest.mark.parametrize("shape", ALL_2D)
def test_sigmoid(dtype, rng, shape):
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    a, b = fastnn.Activation_Sigmoid(), ref.Activation_Sigmoid()
    a.forward(x)
    b.forward(x)
    np.testing.assert_allclose(a.output, b.output, rtol=ulps_rtol(dtype), atol=0)  # ULPS
    dvalues = rng.standard_normal(shape).astype(dtype)
    a.backward(dvalues)
    b.output = a.output.copy()  # same forward result: the backward formula alone is compared
    b.backward(dvalues)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)  # EXACT: dvalues * (1 - output) * output


def stable_sigmoid_longdouble(x):
    x = x.astype(np.longdouble)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1 + e)
    return out


def test_sigmoid_extreme_inputs_without_warnings(dtype):
    x = np.array([[-1e4, -1000, -200, -100, -89, -88, -50, -20, -1e-8, 0, 1e-8, 20, 50, 100, 1e4]], dtype)
    a = fastnn.Activation_Sigmoid()
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        a.forward(x)
    assert np.all(np.isfinite(a.output)) and np.all((a.output >= 0) & (a.output <= 1))
    # Against the exact value (long double): ULPS, with atol = smallest normal because fastnn may
    # return a subnormal where the book's form overflows to exactly 0.
    np.testing.assert_allclose(a.output, stable_sigmoid_longdouble(x).astype(dtype),
                               rtol=ulps_rtol(dtype), atol=tiny(dtype))
    assert a.output[0, 0] == 0 and a.output[0, -1] == 1
    b = ref.Activation_Sigmoid()
    with np.errstate(over="ignore"):
        b.forward(x)
    np.testing.assert_allclose(a.output, b.output, rtol=ulps_rtol(dtype), atol=tiny(dtype))
    a.backward(np.ones_like(x))
    assert np.all(np.isfinite(a.dinputs))


def softmax_forward_rtol(dtype, n_classes):
    # ULPS for exp (both sides compute x - max identically) plus SUM_BOUND for the row sum
    # (double in fastnn, the dtype in the reference) plus the division.
    return (8 + n_classes + 2) * eps(dtype)


@pytest.mark.parametrize("shape", ALL_2D)
def test_softmax(dtype, rng, shape):
    n_classes = shape[1]
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    a, b = fastnn.Activation_Softmax(), ref.Activation_Softmax()
    a.forward(x)
    b.forward(x)
    np.testing.assert_allclose(a.output, b.output, rtol=softmax_forward_rtol(dtype, n_classes), atol=tiny(dtype))
    assert a.output.dtype == dtype
    np.testing.assert_allclose(a.output.sum(axis=1, dtype=np.float64), 1, rtol=0,
                               atol=(n_classes + 2) * eps(dtype))

    dvalues = rng.standard_normal(shape).astype(dtype)
    a.backward(dvalues)
    b.output = a.output.copy()
    b.backward(dvalues)
    # fastnn computes s * (d - s.d) (dot in double), the reference the Jacobian product
    # (diag(s) - s s^T) @ d: each is within (n + 3) eps of s_j (|d_j| + sum_k s_k |d_k|)
    # of the exact value, so they differ by at most twice that.
    s = a.output.astype(np.float64)
    d = np.abs(dvalues.astype(np.float64))
    scale = s * (d + (s * d).sum(axis=1, keepdims=True))
    bound = 2 * (n_classes + 3) * eps(dtype) * scale
    assert np.all(np.abs(a.dinputs - b.dinputs.astype(np.float64)) <= bound)


def test_softmax_large_inputs_use_the_row_max(dtype):
    x = np.array([[1000, 1000, -1000], [1e4, 0, -1e4], [-1e4, -1e4, -1e4], [3, 3, 3]], dtype)
    a = fastnn.Activation_Softmax()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a.forward(x)
    np.testing.assert_array_equal(a.output[0], np.array([0.5, 0.5, 0], dtype))
    np.testing.assert_array_equal(a.output[1], np.array([1, 0, 0], dtype))
    np.testing.assert_allclose(a.output[2:], 1 / 3, rtol=2 * eps(dtype))


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (33, 17)])
def test_linear(dtype, rng, shape):
    x = rng.standard_normal(shape).astype(dtype)
    a, b = fastnn.Activation_Linear(), ref.Activation_Linear()
    a.forward(x)
    b.forward(x)
    assert a.output is x and b.output is x
    dvalues = rng.standard_normal(shape).astype(dtype)
    a.backward(dvalues)
    b.backward(dvalues)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)
    assert not np.shares_memory(a.dinputs, dvalues), "Linear backward copies dvalues, as the book"
    assert a.predictions(x) is x


PREDICTING = [case.name for case in cases("layer") if hasattr(case.spec.cls, "predictions")]


@pytest.mark.parametrize("name", PREDICTING)
def test_activation_predictions(rng, name):
    out = probabilities(rng, (11, 3), np.float32)
    for outputs in (out, out[:, :1]):
        np.testing.assert_array_equal(getattr(fastnn, name)().predictions(outputs),
                                      getattr(ref, name)().predictions(outputs))


# =============================================================================================
# Losses

LABEL_DTYPES = [np.uint8, np.int32, np.int64]


def label_forms(rng, n, c, dtype):
    y = rng.integers(0, c, n)
    forms = {np.dtype(t).name: y.astype(t) for t in LABEL_DTYPES}
    forms["onehot"] = np.eye(c, dtype=dtype)[y]
    return forms


def mean_rtol(dtype, n):
    # SUM_BOUND for a mean of n terms plus ULPS of each term (log/exp).
    return (n + 1) * eps(dtype) + ulps_rtol(dtype)


@pytest.mark.parametrize("shape", ALL_2D)
def test_categorical_crossentropy(dtype, rng, shape):
    n, c = shape
    p = probabilities(rng, shape, dtype)
    p[0, 0] = 0          # clipped to 1e-7 in both
    if c > 1:
        p[-1, -1] = 1    # clipped to 1 - 1e-7
    for form, y in label_forms(rng, n, c, dtype).items():
        a, b = fastnn.Loss_CategoricalCrossentropy(), ref.Loss_CategoricalCrossentropy()
        la, lb = a.forward(p, y), b.forward(p, y)
        assert la.shape == (n,) and la.dtype == dtype, form
        # One-hot rows pick one clipped value exactly (the other terms are 0): only the log differs.
        np.testing.assert_allclose(la, lb, rtol=ulps_rtol(dtype), atol=0, err_msg=form)  # ULPS
        ma, mb = a.calculate(p, y), b.calculate(p, y)
        np.testing.assert_allclose(ma, mb, rtol=mean_rtol(dtype, n), err_msg=form)  # SUM_BOUND
        assert isinstance(ma, float)
        a.calculate(p, y)
        b.calculate(p, y)
        assert a.accumulated_count == b.accumulated_count == 2 * n
        np.testing.assert_allclose(a.calculate_accumulated(), b.calculate_accumulated(), rtol=mean_rtol(dtype, 2 * n))

        q = p.copy()
        q[q == 0] = dtype.type(0.25)  # no 0 predictions here: the NaN case is tested below
        a.backward(q, y)
        b.backward(q, y)
        np.testing.assert_array_equal(a.dinputs, b.dinputs, err_msg=form)  # EXACT: -y / p / n
        assert a.dinputs.dtype == dtype


def test_categorical_crossentropy_soft_labels(dtype, rng):
    """Rows that are not one-hot: the confidence is a sum of c terms (sequential in fastnn,
    pairwise in NumPy): SUM_BOUND on the confidence, then ULPS for the log."""
    n, c = 40, 17
    p = probabilities(rng, (n, c), dtype)
    y = rng.random((n, c)).astype(dtype)
    y /= y.sum(axis=1, keepdims=True)
    la = fastnn.Loss_CategoricalCrossentropy().forward(p, y)
    lb = ref.Loss_CategoricalCrossentropy().forward(p, y)
    # d(-log s) = ds / s: a relative error (c + 1) eps on the confidence s is an absolute error
    # (c + 1) eps on the loss.
    np.testing.assert_allclose(la, lb, rtol=ulps_rtol(dtype), atol=(c + 2) * eps(dtype))


def test_categorical_crossentropy_backward_zero_prediction_is_zero_not_nan(dtype):
    """Deliberate deviation: where the target is 0 and the prediction 0, the book's -0/0 gives NaN;
    fastnn writes 0 (the gradient of -0 * log p). Where the target is 1 both give -inf."""
    p = np.array([[0.0, 0.5, 0.5], [0.2, 0.8, 0.0]], dtype)
    y = np.array([1, 0])
    a = fastnn.Loss_CategoricalCrossentropy()
    a.backward(p, y)
    assert a.dinputs[0, 0] == 0 and a.dinputs[1, 2] == 0
    b = ref.Loss_CategoricalCrossentropy()
    with np.errstate(invalid="ignore", divide="ignore"):
        b.backward(p, y)
    assert np.isnan(b.dinputs[0, 0])
    finite = np.isfinite(b.dinputs)
    np.testing.assert_array_equal(a.dinputs[finite], b.dinputs[finite])
    a.backward(np.array([[0.0, 0.5, 0.5]], dtype), np.array([0]))
    assert a.dinputs[0, 0] == -np.inf


@pytest.mark.parametrize("shape", ALL_2D)
def test_softmax_crossentropy_combined(dtype, rng, shape):
    n, c = shape
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    for form, y in label_forms(rng, n, c, dtype).items():
        a = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
        b = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
        # Ch9-17: forward runs the softmax and returns the mean loss.
        loss_a, loss_b = a.forward(logits, y), b.forward(logits, y)
        np.testing.assert_allclose(a.output, b.output, rtol=softmax_forward_rtol(dtype, c), atol=tiny(dtype))
        # The loss of the two slightly different softmax outputs: the softmax rtol becomes an
        # absolute error on -log p, then SUM_BOUND and ULPS for the mean.
        np.testing.assert_allclose(loss_a, loss_b, rtol=mean_rtol(dtype, n),
                                   atol=2 * softmax_forward_rtol(dtype, c), err_msg=form)
        assert a.output is a.activation.output
        # Ch18+: backward from the softmax output (the same array on both sides).
        out = a.output.copy()
        a.backward(out, y)
        b.backward(out, y)
        np.testing.assert_array_equal(a.dinputs, b.dinputs, err_msg=form)  # EXACT: (s - 1) / n
        assert a.dinputs.dtype == dtype


def test_softmax_crossentropy_onehot_ties_take_the_first_maximum(dtype):
    out = np.full((2, 3), 1 / 3, dtype)
    y = np.array([[0.5, 0.5, 0], [0, 1, 1]], dtype)
    a = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    b = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
    a.backward(out, y)
    b.backward(out, y)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)


# The losses whose targets have the predictions' shape (the others take class ids).
ELEMENTWISE = [case for case in cases("loss") if case.targets in ("binary", "real")]


@pytest.mark.parametrize("case", ELEMENTWISE, ids=ids(ELEMENTWISE))
@pytest.mark.parametrize("shape", ALL_2D)
def test_elementwise_losses(dtype, rng, case, shape):
    n, k = shape
    name = case.name
    if case.targets == "binary":
        p = rng.random(shape).astype(dtype)
        p.reshape(-1)[::7] = 0        # clipped in both
        p.reshape(-1)[3::11] = 1
        y = rng.integers(0, 2, shape).astype(dtype)
    else:
        p = rng.standard_normal(shape).astype(dtype)
        y = rng.standard_normal(shape).astype(dtype)
        y.reshape(-1)[::5] = p.reshape(-1)[::5]   # exact ties: sign 0 for MAE
    a, b = getattr(fastnn, name)(), getattr(ref, name)()
    la, lb = a.forward(p, y), b.forward(p, y)
    assert la.shape == (n,) and la.dtype == dtype
    # Per-sample mean over k outputs: SUM_BOUND (double vs the dtype) plus ULPS of each log.
    np.testing.assert_allclose(la, lb, rtol=mean_rtol(dtype, k), atol=tiny(dtype))
    # The batch mean: both roundings above, then SUM_BOUND over n samples.
    np.testing.assert_allclose(a.calculate(p, y), b.calculate(p, y), rtol=mean_rtol(dtype, k) + mean_rtol(dtype, n),
                               atol=tiny(dtype))
    a.backward(p, y)
    b.backward(p, y)
    np.testing.assert_array_equal(a.dinputs, b.dinputs)  # EXACT: the book's formula, in order
    assert a.dinputs.dtype == dtype


def test_mae_gradient_points_downhill(dtype):
    """The book's MAE gradient sign is wrong; fastnn and the reference both use -sign(y - p)."""
    p = np.array([[2.0, -1.0, 0.5]], dtype)
    y = np.array([[1.0, 0.0, 0.5]], dtype)
    a = fastnn.Loss_MeanAbsoluteError()
    a.backward(p, y)
    np.testing.assert_array_equal(a.dinputs, np.array([[1 / 3, -1 / 3, 0]], dtype))


def test_binary_crossentropy_accepts_the_books_reshaped_and_1d_targets(dtype, rng):
    p = rng.random((20, 1)).astype(dtype)
    y = rng.integers(0, 2, 20)
    a = fastnn.Loss_BinaryCrossentropy()
    with_column = a.forward(p, y.reshape(-1, 1))
    with_1d = a.forward(p, y)
    np.testing.assert_array_equal(with_column, with_1d)
    a.backward(p, y.reshape(-1, 1))
    column_grad = a.dinputs.copy()
    a.backward(p, y)
    np.testing.assert_array_equal(column_grad, a.dinputs)


# =============================================================================================
# Regularisation loss


@pytest.mark.parametrize("regularizers", REGULARIZERS + [{}], ids=lambda r: "+".join(sorted(r)) or "none")
def test_regularization_loss(dtype, rng, regularizers):
    a, b = dense_pair(33, 17, dtype, **regularizers)
    biases = rng.standard_normal((1, 17)).astype(dtype)
    a.biases[...] = biases
    b.biases[...] = biases
    a.weights[0, :] = 0
    b.weights[0, :] = 0
    la, lb = fastnn.Loss(), ref.Loss()
    with_layer_a, with_layer_b = la.regularization_loss(a), lb.regularization_loss(b)
    if not regularizers:
        assert with_layer_a == 0 and type(with_layer_a) is int and type(with_layer_b) is int
    # SUM_BOUND over the 33*17 weights (squares are exact in double in fastnn, rounded in the
    # reference: one more eps per term).
    w, bias = a.weights.astype(np.float64), a.biases.astype(np.float64)
    magnitude = (regularizers.get("weight_regularizer_l1", 0) * np.abs(w).sum()
                 + regularizers.get("weight_regularizer_l2", 0) * (w * w).sum()
                 + regularizers.get("bias_regularizer_l1", 0) * np.abs(bias).sum()
                 + regularizers.get("bias_regularizer_l2", 0) * (bias * bias).sum())
    bound = (w.size + 4) * eps(dtype) * magnitude
    assert abs(float(with_layer_a) - float(with_layer_b)) <= bound
    # Ch18+: over remember_trainable_layers.
    la.remember_trainable_layers([a, a])
    lb.remember_trainable_layers([b, b])
    assert abs(float(la.regularization_loss()) - float(lb.regularization_loss())) <= 2 * bound + eps(dtype) * magnitude
    np.testing.assert_allclose(la.regularization_loss(), 2 * with_layer_a, rtol=4 * np.finfo(np.float64).eps)


def test_regularization_loss_of_nothing_is_int_zero():
    loss = fastnn.Loss()
    loss.remember_trainable_layers([])
    assert loss.regularization_loss() == 0 and type(loss.regularization_loss()) is int
    assert type(fastnn.Loss().regularization_loss(fastnn.Layer_Dense(2, 3))) is int


def test_softmax_crossentropy_loss_attribute_serves_ch14_regularization(dtype):
    """Ch14-17 call loss_activation.loss.regularization_loss(dense1)."""
    np.random.seed(0)
    dense = fastnn.Layer_Dense(2, 3, weight_regularizer_l2=5e-4, dtype=dtype)
    combined = fastnn.Activation_Softmax_Loss_CategoricalCrossentropy()
    expected = 5e-4 * float(np.sum(dense.weights.astype(np.float64) ** 2))
    np.testing.assert_allclose(combined.loss.regularization_loss(dense), expected, rtol=8 * eps(dtype))


# =============================================================================================
# Optimizers

OPTIMIZERS = cases("optimizer", setups=True)

# Every state array an optimizer may keep on a layer, as the declarations name them.
STATE = sorted({name for case in OPTIMIZERS for name in harness.layer_state_names(case)})


@pytest.mark.parametrize("case", OPTIMIZERS, ids=ids(OPTIMIZERS))
@pytest.mark.parametrize("shape", [(33, 17), (1, 1), (7, 1), (784, 128)])
def test_optimizer_updates_are_bit_identical(dtype, rng, case, shape):
    a, b = dense_pair(*shape, dtype, seed=2)
    oa, ob = harness.build(case, fastnn), harness.build(case, ref)
    for step in range(5):
        dweights = rng.standard_normal(shape).astype(dtype)
        dbiases = rng.standard_normal((1, shape[1])).astype(dtype)
        dweights.reshape(-1)[::4] = 0  # zero gradients: 0 / (sqrt(0) + eps) and friends
        if step == 3:
            dweights *= 1e3
        for layer in (a, b):
            layer.dweights = dweights.copy()
            layer.dbiases = dbiases.copy()
        for opt, layer in ((oa, a), (ob, b)):
            if step == 0:
                assert not any(hasattr(layer, s) for s in STATE), "state is created lazily"
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
        # EXACT: one fused pass with the book's order of operations and the hyper-parameters
        # rounded to the dtype as NumPy rounds Python floats.
        np.testing.assert_array_equal(a.weights, b.weights, err_msg=f"step {step}")
        np.testing.assert_array_equal(a.biases, b.biases, err_msg=f"step {step}")
        assert a.weights.dtype == dtype and a.biases.dtype == dtype
        for s in STATE:
            assert hasattr(a, s) == hasattr(b, s), s
            if hasattr(b, s):
                np.testing.assert_array_equal(getattr(a, s), getattr(b, s), err_msg=s)
                assert getattr(a, s).dtype == dtype
        assert oa.current_learning_rate == ob.current_learning_rate
        assert oa.iterations == ob.iterations == step + 1


def test_optimizer_update_after_real_backward(dtype, rng):
    """The optimizer consumes the dweights/dbiases buffers the compiled backward produced."""
    a, b = dense_pair(17, 9, dtype, seed=4)
    oa, ob = fastnn.Optimizer_Adam(learning_rate=0.01), ref.Optimizer_Adam(learning_rate=0.01)
    x = rng.standard_normal((33, 17)).astype(dtype)
    for _ in range(3):
        dvalues = rng.standard_normal((33, 9)).astype(dtype)
        for layer in (a, b):
            layer.forward(x)
            layer.backward(dvalues)
        b.dbiases = a.dbiases.copy()  # the column sums may differ in the last bit (SUM_BOUND)
        np.testing.assert_array_equal(a.dweights, b.dweights)
        for opt, layer in ((oa, a), (ob, b)):
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.biases, b.biases)


def test_adam_after_rmsprop_state_keeps_the_books_behaviour():
    """The book's Adam finds weight_cache (from RMSprop) and then misses weight_momentums."""
    layer = fastnn.Layer_Dense(3, 2)
    layer.dweights = np.ones((3, 2), np.float32)
    layer.dbiases = np.ones((1, 2), np.float32)
    fastnn.Optimizer_RMSprop().update_params(layer)
    with pytest.raises((AttributeError, ValueError)):
        fastnn.Optimizer_Adam().update_params(layer)


# =============================================================================================
# Accuracy


def test_accuracy_categorical(rng):
    out = probabilities(rng, (50, 4), np.float32)
    pred = fastnn.Activation_Softmax().predictions(out)
    y = rng.integers(0, 4, 50)
    y[:20] = pred[:20]
    for labels in (y, np.eye(4)[y]):
        a, b = fastnn.Accuracy_Categorical(), ref.Accuracy_Categorical()
        a.init(labels)
        b.init(labels)
        assert a.calculate(pred, labels) == b.calculate(pred, labels)
        assert a.calculate(pred[:7], labels[:7]) == b.calculate(pred[:7], labels[:7])
        assert a.calculate_accumulated() == b.calculate_accumulated()
        assert (a.accumulated_sum, a.accumulated_count) == (b.accumulated_sum, b.accumulated_count)
        a.new_pass()
        assert a.accumulated_sum == a.accumulated_count == 0


def test_accuracy_binary(rng):
    out = rng.random((40, 1)).astype(np.float32)
    pred = fastnn.Activation_Sigmoid().predictions(out)
    y = rng.integers(0, 2, (40, 1))
    a, b = fastnn.Accuracy_Categorical(binary=True), ref.Accuracy_Categorical(binary=True)
    assert a.calculate(pred, y) == b.calculate(pred, y)
    assert a.calculate_accumulated() == b.calculate_accumulated()
    # fastnn takes a 1-D y as the column the book makes with reshape(-1, 1) (the book broadcasts).
    assert fastnn.Accuracy_Categorical(binary=True).calculate(pred, y.ravel()) == b.calculate(pred, y)


def test_accuracy_regression(rng, dtype):
    y = rng.standard_normal((60, 1)).astype(dtype)
    pred = y + (rng.standard_normal((60, 1)) * 0.01).astype(dtype)
    a, b = fastnn.Accuracy_Regression(), ref.Accuracy_Regression()
    a.init(y)
    b.init(y)
    assert a.precision == b.precision
    a.init(y * 5)
    assert a.precision == b.precision, "init without reinit keeps the precision"
    assert a.calculate(pred, y) == b.calculate(pred, y)
    assert a.calculate_accumulated() == b.calculate_accumulated()
    a.init(y * 5, reinit=True)
    b.init(y * 5, reinit=True)
    assert a.precision == b.precision


# =============================================================================================
# Dropout


@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (33, 17), (300, 64)])
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_book_mode_is_bit_identical(dtype, rng, shape, rate):
    x = rng.standard_normal(shape).astype(dtype)
    dvalues = rng.standard_normal(shape).astype(dtype)
    a = fastnn.Layer_Dropout(rate, mode="book")
    b = ref.Layer_Dropout(rate)
    assert a.rate == b.rate == 1 - rate
    for seed in (3, 4):
        np.random.seed(seed)
        a.forward(x)
        after_a = np.random.random_sample()
        np.random.seed(seed)
        b.forward(x)
        after_b = np.random.random_sample()
        assert after_a == after_b, "same RNG calls as the book"
        np.testing.assert_array_equal(a.binary_mask, b.binary_mask)
        assert a.binary_mask.dtype == np.float64
        np.testing.assert_array_equal(a.output, b.output)
        assert a.output.dtype == dtype
        a.backward(dvalues)
        b.backward(dvalues)
        np.testing.assert_array_equal(a.dinputs, b.dinputs)


def test_dropout_book_mode_through_fastnn_init(monkeypatch, rng):
    monkeypatch.setattr(_config, "_dropout_mode", _config._dropout_mode)
    monkeypatch.setattr(_config, "_default_dtype", _config._default_dtype)
    fastnn.init(random_seed=None, dropout_mode="book")
    a = fastnn.Layer_Dropout(0.2)
    assert a.mode == "book"
    x = rng.standard_normal((30, 8)).astype(np.float32)
    np.random.seed(1)
    a.forward(x)
    np.random.seed(1)
    b = ref.Layer_Dropout(0.2)
    b.forward(x)
    np.testing.assert_array_equal(a.output, b.output)
    assert fastnn.Layer_Dropout(0.2, mode="fast").mode == "fast"


def test_dropout_inference_copies_and_leaves_mask_and_rng_alone(dtype, rng):
    x = rng.standard_normal((6, 5)).astype(dtype)
    for mode in ("fast", "book"):
        d = fastnn.Layer_Dropout(0.3, mode=mode)
        d.forward(x)
        mask = d.binary_mask.copy()
        state = np.random.get_state()[1].copy()
        d.forward(x, training=False)
        np.testing.assert_array_equal(d.output, x)
        assert not np.shares_memory(d.output, x)
        np.testing.assert_array_equal(d.binary_mask, mask)
        np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_fast_mode_statistics(dtype, rate):
    n_rows, n_cols = 1001, 999          # odd sizes: the tail of the two-draws-per-word loop
    x = np.ones((n_rows, n_cols), dtype)
    d = fastnn.Layer_Dropout(rate)
    assert d.mode == "fast"
    np.random.seed(11)
    d.forward(x)
    keep = 1 - rate
    mask = d.binary_mask
    assert mask.dtype == dtype and mask.shape == x.shape
    kept = mask != 0
    # Inverted dropout: kept values are scaled by 1 / keep, rounded to the dtype.
    np.testing.assert_array_equal(np.unique(mask), np.array([0, dtype.type(1 / keep)], dtype))
    np.testing.assert_array_equal(d.output, x * mask)
    # Binomial tolerance: the kept fraction of N draws is within 6 sigma of keep (the keep
    # probability is quantised to 1/65536 in the kernel: an extra 1.6e-5).
    n = kept.size
    sigma = np.sqrt(keep * (1 - keep) / n)
    assert abs(kept.mean() - keep) <= 6 * sigma + 1.6e-5
    # Per row and per column the fractions stay binomial (no stripes): chi-square-like check on
    # the spread of column fractions.
    col = kept.mean(axis=0)
    assert abs(col.std() - np.sqrt(keep * (1 - keep) / n_rows)) < 0.15 * np.sqrt(keep * (1 - keep) / n_rows)
    # Vertical neighbours (one row apart) are independent.
    vertical = np.mean(kept[:-1] & kept[1:])
    assert abs(vertical - keep * keep) <= 6 * np.sqrt(keep * keep * (1 - keep * keep) / kept[1:].size) + 1e-4
    # Neighbours (the two 16-bit halves of one hash word) are independent.
    flat = kept.reshape(-1)[: n - 1]
    both = np.mean(flat[0::2] & flat[1::2])
    assert abs(both - keep * keep) <= 6 * np.sqrt(keep * keep * (1 - keep * keep) / (n // 2)) + 1e-4
    # Scaling keeps the expectation: mean(output) ~ 1.
    assert abs(float(d.output.mean(dtype=np.float64)) - 1) <= 6 * sigma / keep + 1e-4


def test_dropout_fast_mode_backward_reproducibility_and_rng_use(dtype, rng):
    x = rng.standard_normal((33, 17)).astype(dtype)
    dvalues = rng.standard_normal((33, 17)).astype(dtype)
    d = fastnn.Layer_Dropout(0.4)
    np.random.seed(7)
    d.forward(x)
    first = d.binary_mask.copy()
    out1 = d.output.copy()
    d.backward(dvalues)
    np.testing.assert_array_equal(d.dinputs, dvalues * first)   # EXACT: one product per element
    after = np.random.random_sample()
    # Exactly one draw from the global RNG per training forward pass.
    np.random.seed(7)
    np.random.random_sample()
    assert np.random.random_sample() == after
    # Reproducible under np.random.seed, in a new object too.
    np.random.seed(7)
    e = fastnn.Layer_Dropout(0.4)
    e.forward(x)
    np.testing.assert_array_equal(e.binary_mask, first)
    np.testing.assert_array_equal(e.output, out1)
    # A new pass draws a new mask.
    e.forward(x)
    assert not np.array_equal(e.binary_mask, first)


def test_dropout_fast_mask_does_not_depend_on_the_dtype():
    """The kernel's mask is a function of (seed, element index) only: given the same RNG state,
    float32 and float64 data get the same kept positions (the scale is 1/keep in each dtype)."""
    masks = {}
    for dt in (np.float32, np.float64):
        np.random.seed(21)
        d = fastnn.Layer_Dropout(0.3)
        d.forward(np.ones((101, 37), dt))
        masks[dt] = d.binary_mask.copy()
    np.testing.assert_array_equal(masks[np.float32] != 0, masks[np.float64] != 0)
    assert masks[np.float32].dtype == np.float32 and masks[np.float64].dtype == np.float64
    # ... and on the array's shape only through the element count (flat index).
    np.random.seed(21)
    d = fastnn.Layer_Dropout(0.3)
    d.forward(np.ones((37, 101), np.float32))
    np.testing.assert_array_equal(d.binary_mask.reshape(-1) != 0, masks[np.float32].reshape(-1) != 0)


def test_dropout_rate_zero_keeps_everything(dtype, rng):
    x = rng.standard_normal((9, 7)).astype(dtype)
    d = fastnn.Layer_Dropout(0.0)
    d.forward(x)
    np.testing.assert_array_equal(d.output, x)


def test_layer_kernels_report_unusable_state_with_a_status():
    """The dense, conv and pool kernels build no messages: they return OK, CONVERT (the data
    argument needs converting; nothing changed) or a status for the layer state they cannot use,
    the same numbers in each module (and the optimizers'); the Python methods raise the errors
    (fastnn._validation)."""
    from fastnn._ext import _conv, _dense, _pool

    from fastnn._ext import _optimizers

    names = ("OK", "CONVERT", "NO_FORWARD", "BAD_WEIGHTS", "BAD_BIASES", "BAD_STRIDE", "BAD_PADDING", "BAD_POOL",
             "BAD_DWEIGHTS", "BAD_DBIASES", "BAD_WEIGHT_MOMENTUMS", "BAD_WEIGHT_CACHE", "BAD_BIAS_MOMENTUMS",
             "BAD_BIAS_CACHE", "BAD_ARGMAX")
    codes = [getattr(_dense, name) for name in names]
    assert codes[0] == 0 and len(set(codes)) == len(names)
    for module in (_conv, _pool, _optimizers):
        assert [getattr(module, name) for name in names] == codes
    f32 = np.float32
    w, b = np.ones((2, 3), f32), np.ones((1, 3), f32)
    assert _dense.forward({}, np.ones((4, 2), f32)) == _dense.BAD_WEIGHTS
    assert _dense.forward({"weights": w, "biases": b[0]}, np.ones((4, 2), f32)) == _dense.BAD_BIASES
    state = {"weights": w, "biases": b}
    assert _dense.backward(state, np.ones((4, 3), f32)) == _dense.NO_FORWARD
    assert _dense.forward(state, np.ones((4, 2))) == _dense.CONVERT and "output" not in state
    assert _dense.forward(state, np.ones((4, 2), f32)) == _dense.OK
    conv = fastnn.conv.Layer_Conv2D(1, 2, 3)
    x = np.ones((1, 1, 4, 4), f32)
    for attribute, value, status in (("stride", 0, _conv.BAD_STRIDE), ("padding", -1, _conv.BAD_PADDING),
                                     ("biases", np.ones(3, f32), _conv.BAD_BIASES)):
        state = dict(conv.__dict__, **{attribute: value})
        assert _conv.conv_forward(state, x) == status
    assert _conv.conv_backward(dict(conv.__dict__), np.ones((1, 2, 2, 2), f32)) == _conv.NO_FORWARD
    pool = fastnn.conv.Layer_MaxPool2D(2)
    assert _pool.pool_forward(dict(pool.__dict__, pool_size=0), x) == _pool.BAD_POOL
    assert _pool.pool_forward(pool.__dict__, x) == _pool.OK
    pool.argmax[...] = 99
    assert _pool.pool_backward(pool.__dict__, np.ones((1, 1, 2, 2), f32)) == _pool.BAD_ARGMAX


def test_optimizer_kernel_names_the_array_it_refused():
    """update_layer returns OK or the status of the first array it refused, nothing written;
    REFUSED[status] names it and the parameter it must match (for the caller's message)."""
    from fastnn._ext import _optimizers

    f32 = np.float32
    layer = {"weights": np.ones((2, 3), f32), "dweights": np.ones((2, 3), f32), "biases": np.ones((1, 3), f32),
             "dbiases": np.ones((1, 3), f32), "weight_momentums": np.zeros((2, 3), f32),
             "weight_cache": np.zeros((2, 3), f32), "bias_momentums": np.zeros((1, 3), f32)}
    before = {k: v.copy() for k, v in layer.items()}
    status = _optimizers.update_layer(_optimizers.ADAM, layer, 0.1, 1e-7, 0.9, 0.999, 0.1, 0.001)
    assert status == _optimizers.BAD_BIAS_CACHE
    assert _optimizers.REFUSED[status] == ("bias_cache", "biases")
    assert all(np.array_equal(layer[k], v) for k, v in before.items())
    layer["dweights"] = np.ones((3, 2), f32)
    status = _optimizers.update_layer(_optimizers.SGD, layer, 0.1)
    assert _optimizers.REFUSED[status] == ("dweights", "weights")
    layer["dweights"] = np.ones((2, 3), f32)
    assert _optimizers.update_layer(_optimizers.SGD, layer, 0.1) == _optimizers.OK
    np.testing.assert_array_equal(layer["weights"], before["weights"] - f32(0.1))
