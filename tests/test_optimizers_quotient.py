"""float32 Adam divides m and v by its bias corrections as products with the reciprocals in double
(src_pyx/_optimizers.pyx, _quotient_in_double): the same bits as float32 divisions. Checked here
twice: the identity itself on random and edge-case operands, and the whole float32 update against
the book's formulas in NumPy float32 arithmetic (one division per '/' as written), bit for bit,
through the kernel this process dispatches to (run under FASTNN_KERNELS=baseline for the other)."""
import numpy as np
import pytest

import fastnn

F32 = np.float32
TINY = np.finfo(F32).tiny


def _in_double(a, c):
    return (a.astype(np.float64) * (1.0 / c.astype(np.float64))).astype(F32)


def _bits_equal(got, want):
    got, want = np.asarray(got, F32), np.asarray(want, F32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    mismatch = np.flatnonzero(got[~nan].view(np.uint32) != want[~nan].view(np.uint32))
    assert mismatch.size == 0, (mismatch.size, got[~nan][mismatch[:5]], want[~nan][mismatch[:5]])


@pytest.mark.parametrize("divisors", ["uniform", "corrections", "every-float"])
def test_product_with_double_reciprocal_is_the_float_quotient(divisors):
    rng = np.random.default_rng({"uniform": 1, "corrections": 2, "every-float": 3}[divisors])
    n = 1_000_000
    # Dividends: normal floats of every exponent and both signs, plus 0, +-inf and NaN.
    a = rng.integers(0x00800000, 0x7F800000, n, dtype=np.uint32).view(F32) * rng.choice(F32([-1, 1]), n)
    a[:4] = [0, np.inf, -np.inf, np.nan]
    if divisors == "uniform":
        c = rng.random(n, dtype=F32)
    elif divisors == "corrections":   # 1 - beta**t as Adam's, rounded to float32
        c = (1 - rng.uniform(0.5, 1, n) ** rng.integers(1, 20000, n)).astype(F32)
    else:                              # any float in (0, 1], subnormals included
        c = rng.integers(1, 0x3F800001, n, dtype=np.uint32).view(F32)
    c[c == 0] = 1
    c[4:8] = [1, TINY, np.nextafter(F32(1), F32(0)), F32(0.1)]
    with np.errstate(all="ignore"):
        _bits_equal(_in_double(a, c), a / c)


def _book_adam_float32(p, g, m, v, lr, eps, b1, b2, c1, c2):
    """The kernel's loop as written, in NumPy float32 arithmetic (no fused multiply-adds)."""
    with np.errstate(all="ignore"):
        m = F32(b1) * m + F32(1 - b1) * g
        m = np.where(np.abs(m) < TINY, F32(0), m)
        v = F32(b2) * v + F32(1 - b2) * (g * g)
        v = np.where(np.abs(v) < TINY, F32(0), v)
        p = p + F32(-lr) * (m / F32(c1)) / (np.sqrt(v / F32(c2)) + F32(eps))
    return p, m, v


@pytest.mark.parametrize("beta_1,beta_2,steps", [(0.9, 0.999, 6), (0.5, 0.9, 3), (0.0, 0.0, 2), (0.999999, 0.9999999, 2),
                                                  (1.5, 0.999, 2)])
def test_float32_adam_matches_the_formula_bit_for_bit(beta_1, beta_2, steps):
    # (0, 0): corrections of exactly 1; (0.999999, 0.9999999): tiny corrections; beta_1 1.5 (set
    # after construction; the constructor refuses it): a correction below 0, the division path.
    rng = np.random.default_rng(7)
    layer = fastnn.Layer_Dense(64, 96, dtype=F32)
    optimizer = fastnn.Optimizer_Adam(learning_rate=0.01, decay=1e-3)
    optimizer.beta_1, optimizer.beta_2 = beta_1, beta_2
    p = {"weights": layer.weights.copy(), "biases": layer.biases.copy()}
    m = {k: np.zeros_like(a) for k, a in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    for step in range(steps):
        scale = 10.0 ** rng.integers(-30, 30, (64, 96))
        dw = (rng.standard_normal((64, 96)) * scale).astype(F32)
        dw[0, :8] = [0, -0.0, np.inf, -np.inf, np.nan, TINY, -TINY / 4, 3e38]
        dw[1] = 0 if step % 2 else dw[1]         # rows whose state decays
        db = (rng.standard_normal((1, 96)) * 1e-20).astype(F32)
        layer.dweights, layer.dbiases = dw, db
        optimizer.pre_update_params()
        t = optimizer.iterations + 1
        c1, c2 = 1 - beta_1 ** t, 1 - beta_2 ** t
        lr = optimizer.current_learning_rate
        with np.errstate(all="ignore"):
            optimizer.update_params(layer)
        for name, grad in (("weights", dw), ("biases", db)):
            p[name], m[name], v[name] = _book_adam_float32(p[name], grad, m[name], v[name], lr, optimizer.epsilon,
                                                           beta_1, beta_2, c1, c2)
        optimizer.post_update_params()
        _bits_equal(layer.weights, p["weights"])
        _bits_equal(layer.biases, p["biases"])
        _bits_equal(layer.weight_momentums, m["weights"])
        _bits_equal(layer.weight_cache, v["weights"])
        _bits_equal(layer.bias_momentums, m["biases"])
        _bits_equal(layer.bias_cache, v["biases"])


@pytest.mark.parametrize("make", [lambda: fastnn.Optimizer_Adam(learning_rate=0.01, decay=1e-3),
                                  lambda: fastnn.Optimizer_SGD(learning_rate=0.1, momentum=0.9),
                                  lambda: fastnn.Optimizer_RMSprop(), lambda: fastnn.Optimizer_Adagrad()],
                         ids=["adam", "sgd-momentum", "rmsprop", "adagrad"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_updates_split_over_threads_give_the_serial_bits(make, dtype):
    # 300 x 700 values: four chunks of the split, the last one short.
    from _thread_counts import assert_identical, at_thread_counts

    def run():
        np.random.seed(11)
        layer = fastnn.Layer_Dense(300, 700, dtype=dtype)
        optimizer = make()
        rng = np.random.default_rng(5)
        for _ in range(3):
            layer.dweights = rng.standard_normal(layer.weights.shape).astype(dtype)
            layer.dbiases = rng.standard_normal(layer.biases.shape).astype(dtype)
            optimizer.pre_update_params()
            optimizer.update_params(layer)
            optimizer.post_update_params()
        return [layer.weights, layer.biases] + [getattr(layer, n) for n in optimizer._STATE]
    assert_identical(at_thread_counts((1, 2, 3, 0), run))
