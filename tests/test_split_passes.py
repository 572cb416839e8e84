"""The memory-bound passes that split large arrays over the OpenMP team: the elementwise
activations (chunks of 65,536 values) and MaxPool2D (ranges of planes). Serial, automatic and
more threads than cores give the same bits, on sizes that leave a partial last chunk and ranges of
unequal length; results equal the reference; a hand-changed argmax is still refused when the bad
index lies in another thread's range."""
import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from _thread_counts import assert_identical, at_thread_counts

COUNTS = (1, 0, 2, 3, 5)

# 3 chunks and a partial fourth: (N, C, H, W) = (7, 9, 63, 67) is 265,923 values.
SHAPE = (7, 9, 63, 67)

ACTIVATIONS = ["Activation_ReLU", "Activation_Sigmoid", "Activation_Tanh", "Activation_LeakyReLU",
               "Activation_GELU", "Activation_Linear"]


def make(name):
    return getattr(fastnn, name)()


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_elementwise_activations_do_not_depend_on_the_thread_count(rng, name, dtype):
    x = rng.standard_normal(SHAPE).astype(dtype)
    x.flat[::97] = 0                           # the kinks (ReLU's gradient at 0 is 0)
    dy = rng.standard_normal(SHAPE).astype(dtype)

    def run():
        layer = make(name)
        layer.forward(x)
        layer.backward(dy)
        return layer.output, layer.dinputs

    results = at_thread_counts(COUNTS, run)
    assert_identical(results)
    if hasattr(ref, name) and name != "Activation_GELU":
        want = getattr(ref, name)()
        want.forward(x)
        want.backward(dy)
        np.testing.assert_allclose(results[0][0], want.output, rtol=4 * np.finfo(dtype).eps, atol=1e-30)


@pytest.mark.parametrize("pool_size, stride, padding", [(2, None, 0), (3, 2, 1)])
def test_max_pooling_does_not_depend_on_the_thread_count(rng, dtype, pool_size, stride, padding):
    x = rng.standard_normal((11, 13, 20, 18)).astype(dtype)   # 143 planes: ranges of 28 and 29
    x[3, 4, 5, 6] = np.nan

    def run():
        layer = fastnn.Layer_MaxPool2D(pool_size, stride=stride, padding=padding)
        layer.forward(x)
        layer.backward(np.ones_like(layer.output) * 0.25 + layer.output * 0)
        return layer.output, layer.argmax, layer.dinputs

    results = at_thread_counts(COUNTS, run)
    assert_identical(results)
    want = ref.Layer_MaxPool2D(pool_size, stride=stride, padding=padding) if padding else ref.Layer_MaxPool2D(pool_size)
    want.forward(x)
    np.testing.assert_array_equal(results[0][0], want.output)


def test_a_bad_argmax_in_any_range_is_refused(rng):
    """argmax changed by hand in the last plane (the last thread's range) and in the first: the
    backward refuses both at every thread count, writing nothing out of bounds."""
    x = rng.standard_normal((8, 16, 12, 12)).astype(np.float32)
    for threads in COUNTS:
        for where in ((7, 15, 5, 5), (0, 0, 0, 0)):
            def run():
                layer = fastnn.Layer_MaxPool2D(2)
                layer.forward(x)
                layer.argmax[where] = 10_000
                with pytest.raises(ValueError, match="argmax holds positions outside"):
                    layer.backward(np.ones_like(layer.output))
                return []
            at_thread_counts((threads,), run)
