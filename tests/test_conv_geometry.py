"""Layer_Conv2D and Layer_MaxPool2D with (height, width) pairs and padding="same": against
fastnn.reference over rectangular kernels, per-axis strides and paddings, even and odd "same"
kernels, padded pooling (with -inf inputs, where padding must still never win), both conv
drivers; the sides "same" pads; the refusals of geometries the constructors accept one argument
at a time; layer attributes changed by hand; and model files written before these arguments
existed (ints only, no MaxPool2D padding) loading unchanged."""
import json
import zipfile

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

from test_conv import conv_pair, pool_both, run_both

CONV = [  # (in, out, kernel_size, stride, padding, (h, w))
    (2, 3, (3, 1), 1, (1, 0), (7, 5)),
    (3, 2, (1, 4), (2, 1), 0, (5, 9)),
    (2, 4, (2, 3), (1, 2), (0, 1), (6, 7)),
    (1, 3, 2, 1, "same", (5, 6)),
    (2, 2, 4, 1, "same", (7, 4)),
    (3, 2, (2, 5), 1, "same", (6, 6)),
    (2, 3, 3, (1, 1), "same", (1, 1)),
    (1, 1, (5, 3), (3, 2), (2, 1), (8, 7)),
]


@pytest.mark.parametrize("c, o, k, s, p, plane", CONV, ids=[f"k{k}s{s}p{p}" for _, _, k, s, p, _ in CONV])
def test_conv_with_pairs_and_same_matches_the_reference(dtype, rng, conv_threads, c, o, k, s, p, plane):
    fast, slow = conv_pair(dtype, c, o, k, stride=s, padding=p)
    fast.biases[...] = slow.biases[...] = rng.standard_normal(o)
    run_both(fast, slow, rng.standard_normal((3, c, *plane)).astype(dtype), rng, dtype)
    if p == "same":
        assert fast.output.shape[2:] == plane


@pytest.mark.parametrize("kernel, sides", [(1, (0, 0)), (2, (0, 1)), (3, (1, 1)), (4, (1, 2)), (5, (2, 2))])
def test_same_padding_puts_the_extra_row_below_and_the_extra_column_right(kernel, sides):
    """A kernel with a single 1 at (a, b) copies the input shifted by (a - top, b - left): the
    output shows where "same" put the padding."""
    top, _ = sides
    layer = fastnn.Layer_Conv2D(1, 1, kernel, padding="same", dtype=np.float64)
    layer.weights[...] = 0
    layer.weights[0, 0, 0, 0] = 1                     # output[i, j] = x[i - top, j - left]
    x = np.arange(1.0, 37.0).reshape(1, 1, 6, 6)
    layer.forward(x)
    shifted = np.zeros((6, 6))
    shifted[top:, top:] = x[0, 0, :6 - top, :6 - top]
    np.testing.assert_array_equal(layer.output[0, 0], shifted)


POOL = [  # (pool_size, stride, padding)
    ((2, 3), None, 0),
    ((3, 2), (1, 2), (1, 1)),
    (3, 2, 1),
    (2, "none", "same"),
    (3, "none", "same"),
    ((4, 2), 1, "same"),
    (4, (3, 1), (2, 0)),
]


@pytest.mark.parametrize("pool_size, stride, padding", POOL, ids=[f"k{k}s{s}p{p}" for k, s, p in POOL])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 2, 5, 4)])
def test_pool_with_pairs_padding_and_same_matches_the_reference(dtype, rng, pool_size, stride, padding, shape):
    stride = None if stride == "none" else stride
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 0, :3] = -np.inf                          # a corner window of -inf only: padding must not win
    x[-1, -1, -1, -1] = -np.inf
    fast = pool_both(dtype, x, pool_size, stride, rng, padding)
    assert np.all(fast.argmax >= 0) and np.all(fast.argmax < shape[2] * shape[3])
    if padding == "same":
        assert fast.stride == 1 and fast.output.shape == x.shape


def test_pool_padding_with_nan_and_ties_matches_the_reference(dtype, rng):
    x = rng.integers(0, 3, size=(2, 2, 6, 7)).astype(dtype)   # many ties
    x[0, 0, 2, 3] = np.nan
    x[1, 1, 0, 0] = -np.inf
    for pool_size, stride, padding in (((3, 3), 1, 1), (2, None, "same"), ((3, 2), (2, 1), (1, 1))):
        pool_both(dtype, x, pool_size, stride, rng, padding)


@pytest.mark.parametrize("make, message", [
    (lambda: fastnn.Layer_Conv2D(1, 1, 3, stride=2, padding="same"), "stride must be 1 with padding='same'"),
    (lambda: fastnn.Layer_Conv2D(1, 1, (3, 3), stride=(1, 2), padding="same"), "stride must be 1"),
    (lambda: fastnn.Layer_MaxPool2D(3, stride=3, padding="same"), "stride must be 1 with padding='same'"),
    (lambda: fastnn.Layer_MaxPool2D(3, padding=2), r"padding must be at most half of pool_size .*padding=2"),
    (lambda: fastnn.Layer_MaxPool2D((4, 2), padding=(2, 2)), r"at most half .*pool_size=\(4, 2\)"),
])
def test_geometries_refused_as_a_whole(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_attributes_and_reprs_keep_what_was_given():
    conv = fastnn.Layer_Conv2D(2, 3, (3, 5), stride=(1, 2), padding=(1, 2))
    assert (conv.kernel_size, conv.stride, conv.padding, conv.weights.shape) == ((3, 5), (1, 2), (1, 2), (3, 2, 3, 5))
    assert "Layer_Conv2D(2, 3, (3, 5), stride=(1, 2), padding=(1, 2)" in repr(conv)
    assert fastnn.Layer_Conv2D(1, 1, [2, 4], padding="same").kernel_size == (2, 4)
    pool = fastnn.Layer_MaxPool2D(3, padding="same")
    assert (pool.pool_size, pool.stride, pool.padding) == (3, 1, "same")
    assert repr(pool) == "Layer_MaxPool2D(3, stride=1, padding='same')"
    assert repr(fastnn.Layer_MaxPool2D(2)) == "Layer_MaxPool2D(2, stride=2, padding=0)"


def test_geometry_changed_by_hand_is_refused_by_the_kernels(rng):
    x = rng.standard_normal((1, 1, 6, 6)).astype(np.float32)
    conv = fastnn.Layer_Conv2D(1, 1, 3, padding="same")
    conv.stride = 2                                   # "same" needs stride 1
    with pytest.raises(ValueError, match=r"inconsistent \(padding\)"):
        conv.forward(x)
    conv = fastnn.Layer_Conv2D(1, 1, (3, 2))
    conv.kernel_size = (3, 3)                         # the weights are (1, 1, 3, 2)
    with pytest.raises(ValueError, match=r"inconsistent \(weights\).*\(1, 1, 3, 3\)"):
        conv.forward(x)
    pool = fastnn.Layer_MaxPool2D(4)
    pool.padding = 3                                  # windows that miss the input
    with pytest.raises(ValueError, match="at most half the window"):
        pool.forward(x)
    pool = fastnn.Layer_MaxPool2D(2, padding="same")
    pool.stride = (2, 1)
    with pytest.raises(ValueError, match="'same' with stride 1.*stride \\(2, 1\\)"):
        pool.forward(x)


def test_inputs_too_small_for_the_window_name_the_padding():
    with pytest.raises(ValueError, match=r"at least 5 x 2 after padding \(kernel_size=\(5, 2\), padding=\(1, 0\)\), "
                                         r"got a 2 x 3 plane \(4 x 3 padded\)"):
        fastnn.Layer_Conv2D(1, 1, (5, 2), padding=(1, 0)).forward(np.zeros((1, 1, 2, 3)))
    with pytest.raises(ValueError, match=r"at least 3 x 3 after padding \(pool_size=3, padding=0\)"):
        fastnn.Layer_MaxPool2D(3).forward(np.zeros((1, 1, 2, 8)))


def _model(conv_kwargs, pool_kwargs, features=2 * 3 * 3):
    np.random.seed(3)
    model = fastnn.Model()
    model.add(fastnn.Layer_Conv2D(1, 2, **conv_kwargs))
    model.add(fastnn.Layer_MaxPool2D(**pool_kwargs))
    model.add(fastnn.Layer_Flatten())
    model.add(fastnn.Layer_Dense(features, 2))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    return model


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def test_a_file_written_before_pairs_and_pool_padding_loads(tmp_path, rng):
    """Files of the earlier format: ints for kernel_size, stride and padding (what an int-built
    layer still writes) and no MaxPool2D padding at all. They load, as padding 0."""
    model = _model({"kernel_size": 3, "padding": 1}, {"pool_size": 2})
    x = rng.standard_normal((4, 1, 6, 6)).astype(np.float32)
    path = tmp_path / "model.fastnn"
    model.save(path)
    members = _members(path)
    document = json.loads(members["model.json"])
    conv, pool = document["layers"][0]["attributes"], document["layers"][1]["attributes"]
    assert (conv["kernel_size"], conv["stride"], conv["padding"]) == (3, 1, 1)
    assert pool.pop("padding") == 0                    # as the earlier format had it: absent
    members["model.json"] = json.dumps(document).encode()
    old = tmp_path / "old.fastnn"
    with zipfile.ZipFile(old, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    loaded = fastnn.Model.load(old)
    assert loaded.layers[1].padding == 0 and type(loaded.layers[1].stride) is int
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_pairs_and_same_are_saved_as_json_lists_and_strings(tmp_path, rng):
    model = _model({"kernel_size": (3, 2), "stride": (1, 1), "padding": "same"},
                   {"pool_size": (2, 2), "padding": (1, 0)}, features=2 * 4 * 3)
    path = tmp_path / "model.fastnn"
    model.save(path)
    document = json.loads(_members(path)["model.json"])
    conv, pool = document["layers"][0]["attributes"], document["layers"][1]["attributes"]
    assert (conv["kernel_size"], conv["stride"], conv["padding"]) == ([3, 2], [1, 1], "same")
    assert (pool["pool_size"], pool["stride"], pool["padding"]) == ([2, 2], [2, 2], [1, 0])
    loaded = fastnn.Model.load(path)
    assert loaded.layers[0].kernel_size == (3, 2) and loaded.layers[1].padding == (1, 0)
    x = rng.standard_normal((3, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_the_reference_takes_the_same_geometry():
    """Same attributes in both packages (the parity tests compare them for the cases)."""
    for lib in (fastnn, ref):
        pool = lib.Layer_MaxPool2D((2, 3), padding="same")
        assert (pool.pool_size, pool.stride, pool.padding) == ((2, 3), 1, "same")


def test_global_average_pooling_frees_the_head_from_the_plane_size(rng):
    """Conv2D("same") -> GlobalAveragePool2D -> Dense: one model takes any height and width,
    trains, and the pooled features are the planes' means."""
    np.random.seed(5)
    model = fastnn.Model()
    model.add(fastnn.Layer_Conv2D(1, 4, 3, padding="same"))
    model.add(fastnn.Activation_ReLU())
    model.add(fastnn.Layer_GlobalAveragePool2D())
    model.add(fastnn.Layer_Dense(4, 2))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(learning_rate=0.05),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    X = rng.standard_normal((32, 1, 6, 6)).astype(np.float32)
    y = (X.mean(axis=(1, 2, 3)) > 0).astype(np.int64)
    X[y == 1] += 1.0
    history = model.train(X, y, epochs=30, verbose=False)
    assert history.loss[-1] < 0.5 * history.loss[0]
    for size in (3, 9):
        assert model.predict(rng.standard_normal((2, 1, size, size + 1)).astype(np.float32)).shape == (2, 2)
    pool = model.layers[2]
    np.testing.assert_allclose(pool.output, pool.inputs.mean(axis=(2, 3)), rtol=1e-6)
