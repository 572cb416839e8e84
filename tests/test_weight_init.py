"""weight_init on Layer_Dense and Layer_Conv2D: the defaults draw exactly what they drew before
the option existed (Dense: the book's 0.01 * randn; Conv2D: He normal), each scheme makes one
draw of standard normals from NumPy's global RNG (so the stream after construction is the same
whatever the scheme), and the scales are He's and Glorot's. The parity of every scheme with
fastnn.reference is a contract test (the cases' variants)."""
import math

import numpy as np
import pytest

import fastnn


def drawn(shape, seed=11):
    np.random.seed(seed)
    return np.random.standard_normal(shape)


def test_dense_default_is_the_books_weights_bit_for_bit(dtype):
    np.random.seed(11)
    layer = fastnn.Layer_Dense(7, 5, dtype=dtype)
    np.testing.assert_array_equal(layer.weights, 0.01 * drawn((7, 5)).astype(dtype))
    np.random.seed(11)
    np.testing.assert_array_equal(fastnn.Layer_Dense(7, 5, weight_init="book", dtype=dtype).weights, layer.weights)


def test_conv_default_is_he_as_before(dtype):
    np.random.seed(11)
    layer = fastnn.Layer_Conv2D(3, 4, (3, 2), dtype=dtype)
    np.testing.assert_array_equal(layer.weights, (drawn((4, 3, 3, 2)) * math.sqrt(2 / 18)).astype(dtype))


@pytest.mark.parametrize("make, fan_in, fan_out", [
    (lambda init: fastnn.Layer_Dense(40, 30, weight_init=init, dtype=np.float64), 40, 30),
    (lambda init: fastnn.Layer_Conv2D(6, 8, (3, 5), weight_init=init, dtype=np.float64), 6 * 15, 8 * 15),
], ids=["dense", "conv"])
@pytest.mark.parametrize("init", ["book", "he", "glorot"])
def test_each_scheme_scales_one_draw(make, fan_in, fan_out, init):
    np.random.seed(11)
    layer = make(init)
    after = np.random.random_sample()
    scale = {"book": 0.01, "he": math.sqrt(2 / fan_in), "glorot": math.sqrt(2 / (fan_in + fan_out))}[init]
    np.testing.assert_allclose(layer.weights, drawn(layer.weights.shape) * scale, rtol=1e-15)
    assert np.random.random_sample() == after, "one draw of the weights' size, whatever the scheme"
    assert not np.any(layer.biases)


def test_an_unknown_scheme_is_refused_before_any_draw():
    state = np.random.get_state()
    for make in (lambda: fastnn.Layer_Dense(2, 3, weight_init="xavier"),
                 lambda: fastnn.Layer_Conv2D(1, 2, 3, weight_init="kaiming")):
        with pytest.raises(ValueError, match=r"weight_init must be one of 'book', 'he', 'glorot'"):
            make()
    assert np.random.get_state()[1].tobytes() == state[1].tobytes()


def test_the_scheme_is_not_state():
    """Only the weights it drew remain: nothing for a model file to save."""
    assert "weight_init" not in vars(fastnn.Layer_Dense(2, 3, weight_init="he"))
    assert "weight_init" not in vars(fastnn.Layer_Conv2D(1, 2, 3, weight_init="glorot"))
