"""fastnn.reference has the book's API: names, signatures, defaults, attributes, quirks, lazy
optimizer state, dtypes, stored references, docstrings and type hints."""
import copy
import inspect
import pickle

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

import _book

BOOK_NAMES = [
    "Layer_Dense", "Layer_Dropout", "Layer_Input",
    "Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear",
    "Loss", "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy", "Loss_MeanSquaredError",
    "Loss_MeanAbsoluteError", "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Accuracy_Regression", "Model",
]

P, K = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
NO = inspect.Parameter.empty
ACTIVATION = {"forward": [("inputs", P, NO), ("training", P, True)], "backward": [("dvalues", P, NO)],
              "predictions": [("outputs", P, NO)]}
LOSS_METHODS = {"forward": [("y_pred", P, NO), ("y_true", P, NO)],
                "backward": [("dvalues", P, NO), ("y_true", P, NO)]}
OPTIMIZER_METHODS = {"pre_update_params": [], "update_params": [("layer", P, NO)], "post_update_params": []}

# (class, method) -> [(parameter name, kind, default)], self excluded; the book's Ch22 signatures,
# with the Ch9-17 superset members and our keyword-only ``weight_init`` (default: the book's) and
# ``dtype``.
SIGNATURES = {
    "Layer_Dense": {
        "__init__": [("n_inputs", P, NO), ("n_neurons", P, NO), ("weight_regularizer_l1", P, 0),
                     ("weight_regularizer_l2", P, 0), ("bias_regularizer_l1", P, 0),
                     ("bias_regularizer_l2", P, 0), ("weight_init", K, "book"), ("dtype", K, None)],
        "forward": [("inputs", P, NO), ("training", P, True)],
        "backward": [("dvalues", P, NO)],
        "get_parameters": [],
        "set_parameters": [("weights", P, NO), ("biases", P, NO)],
    },
    "Layer_Dropout": {"__init__": [("rate", P, NO)], "forward": [("inputs", P, NO), ("training", P, True)],
                      "backward": [("dvalues", P, NO)]},
    "Layer_Input": {"forward": [("inputs", P, NO), ("training", P, True)]},
    "Activation_ReLU": ACTIVATION,
    "Activation_Softmax": ACTIVATION,
    "Activation_Sigmoid": ACTIVATION,
    "Activation_Linear": ACTIVATION,
    "Loss": {
        "regularization_loss": [("layer", P, None)],
        "remember_trainable_layers": [("trainable_layers", P, NO)],
        "calculate": [("output", P, NO), ("y", P, NO), ("include_regularization", K, False)],
        "calculate_accumulated": [("include_regularization", K, False)],
        "new_pass": [],
    },
    "Loss_CategoricalCrossentropy": LOSS_METHODS,
    "Loss_BinaryCrossentropy": LOSS_METHODS,
    "Loss_MeanSquaredError": LOSS_METHODS,
    "Loss_MeanAbsoluteError": LOSS_METHODS,
    "Activation_Softmax_Loss_CategoricalCrossentropy": {
        "__init__": [], "forward": [("inputs", P, NO), ("y_true", P, NO)],
        "backward": [("dvalues", P, NO), ("y_true", P, NO)]},
    "Optimizer_SGD": {"__init__": [("learning_rate", P, 1.0), ("decay", P, 0.0), ("momentum", P, 0.0)],
                      **OPTIMIZER_METHODS},
    "Optimizer_Adagrad": {"__init__": [("learning_rate", P, 1.0), ("decay", P, 0.0), ("epsilon", P, 1e-7)],
                          **OPTIMIZER_METHODS},
    "Optimizer_RMSprop": {"__init__": [("learning_rate", P, 0.001), ("decay", P, 0.0), ("epsilon", P, 1e-7),
                                       ("rho", P, 0.9)], **OPTIMIZER_METHODS},
    "Optimizer_Adam": {"__init__": [("learning_rate", P, 0.001), ("decay", P, 0.0), ("epsilon", P, 1e-7),
                                    ("beta_1", P, 0.9), ("beta_2", P, 0.999)], **OPTIMIZER_METHODS},
    "Accuracy": {"calculate": [("predictions", P, NO), ("y", P, NO)], "calculate_accumulated": [],
                 "new_pass": []},
    "Accuracy_Categorical": {"__init__": [("binary", K, False)], "init": [("y", P, NO)],
                             "compare": [("predictions", P, NO), ("y", P, NO)]},
    "Accuracy_Regression": {"__init__": [], "init": [("y", P, NO), ("reinit", P, False)],
                            "compare": [("predictions", P, NO), ("y", P, NO)]},
    "Model": {
        "__init__": [], "add": [("layer", P, NO)],
        "set": [("loss", K, None), ("optimizer", K, None), ("accuracy", K, None)],
        "finalize": [],
        # the book's train, then (beyond the book, keyword-only, off by default) the training tools
        "train": [("X", P, NO), ("y", P, NO), ("epochs", K, 1), ("batch_size", K, None), ("print_every", K, 1),
                  ("validation_data", K, None), ("shuffle", K, False),   # shuffle: beyond the book, as fastnn
                  ("callbacks", K, None), ("validation_split", K, None), ("augment", K, None)],
        "predict_classes": [("X", P, NO), ("batch_size", K, None)],   # beyond the book
        "summary": [("input_shape", P, None)],                          # beyond the book
        "evaluate": [("X_val", P, NO), ("y_val", P, NO), ("batch_size", K, None)],
        "predict": [("X", P, NO), ("batch_size", K, None)],
        "forward": [("X", P, NO), ("training", P, NO)],
        "backward": [("output", P, NO), ("y", P, NO)],
        "get_parameters": [], "set_parameters": [("parameters", P, NO)],
        "save_parameters": [("path", P, NO)], "load_parameters": [("path", P, NO)],
        "save": [("path", P, NO)], "load": [("path", P, NO)],
    },
}


def public_methods(cls):
    """Public callables a class defines or inherits from fastnn.reference (not from object)."""
    names = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        names.update(name for name, value in vars(klass).items()
                      if callable(value) or isinstance(value, staticmethod))
    return {name for name in names if not name.startswith("_") or name == "__init__"}


# --- Names, signatures, docs -------------------------------------------------------------------

def test_exports_the_book_names_and_every_class_fastnn_declares():
    """`from fastnn.reference import *` switches any fastnn script (a CNN too) to the reference."""
    from fastnn._core.spec import declared

    assert set(BOOK_NAMES) <= set(ref.__all__)
    assert sorted(ref.__all__) == sorted(spec.name for spec in declared())
    namespace = {}
    exec("from fastnn.reference import *", namespace)
    assert {"Layer_Conv2D", "Layer_MaxPool2D", "Layer_Flatten", "Model"} <= set(namespace)
    for name in BOOK_NAMES:
        assert getattr(ref, name).__name__ == name


@pytest.mark.parametrize("name", BOOK_NAMES)
def test_signatures_are_the_books(name):
    cls = getattr(ref, name)
    expected = {}
    for klass in reversed(cls.__mro__[:-1]):  # base classes first, then overrides
        # a private base (shared plumbing) has no book signature: its methods are the subclass's
        expected.update(SIGNATURES.get(klass.__name__, {}) if klass.__name__.startswith("_")
                        else SIGNATURES[klass.__name__])
    assert public_methods(cls) - {"__init__"} == set(expected) - {"__init__"}
    if "__init__" not in expected:
        assert cls.__init__ is object.__init__
    for method, parameters in expected.items():
        signature = inspect.signature(getattr(cls, method))
        got = [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]
        assert got == parameters, f"{name}.{method}"
        for default_name, _, default in parameters:
            if default is not NO:  # int 0 stays int 0, 1. stays a float, as in the book
                actual = signature.parameters[default_name].default
                assert type(actual) is type(default), f"{name}.{method}({default_name})"
    assert isinstance(inspect.getattr_static(ref.Model, "load"), staticmethod)


@pytest.mark.parametrize("name", BOOK_NAMES)
def test_docstrings_and_type_hints(name):
    cls = getattr(ref, name)
    assert cls.__doc__ and cls.__doc__.strip()
    for method in SIGNATURES[name]:
        function = getattr(cls, method)
        if method != "__init__":
            assert function.__doc__ and function.__doc__.strip(), f"{name}.{method} has no docstring"
        signature = inspect.signature(function)
        assert signature.return_annotation is not NO, f"{name}.{method} has no return annotation"
        for parameter in signature.parameters.values():
            if parameter.name != "self":
                assert parameter.annotation is not NO, f"{name}.{method}({parameter.name})"
        if method in ("forward", "backward") and name != "Layer_Input" or method == "predict":
            assert "(n_samples" in function.__doc__, f"{name}.{method} docstring states no shape"


def test_module_docstring_lists_the_deviations():
    doc = ref.__doc__
    for phrase in ("MAE gradient sign", "one-layer Model", "without a loss", "before any ``new_pass()``"):
        assert phrase in doc


# --- Layer_Dense -------------------------------------------------------------------------------

def test_dense_attributes_and_defaults():
    layer = ref.Layer_Dense(3, 4)
    assert layer.weights.shape == (3, 4) and layer.biases.shape == (1, 4)
    assert layer.weights.dtype == layer.biases.dtype == fastnn.default_dtype() == np.float32
    for name in ("weight_regularizer_l1", "weight_regularizer_l2", "bias_regularizer_l1", "bias_regularizer_l2"):
        assert getattr(layer, name) == 0 and type(getattr(layer, name)) is int
    assert 0 < np.std(layer.weights) < 0.05  # 0.01 * N(0, 1)
    for name in ("inputs", "output", "dweights", "dbiases", "dinputs", "prev", "next",
                 "weight_momentums", "weight_cache", "bias_momentums", "bias_cache"):
        assert not hasattr(layer, name)
    assert vars(layer)  # a plain object with a __dict__


def test_dense_dtype_argument_and_fastnn_init_default():
    assert ref.Layer_Dense(2, 2, dtype="float64").weights.dtype == np.float64
    previous = fastnn.default_dtype()
    fastnn.init(random_seed=None, dtype="float64")
    try:
        layer = ref.Layer_Dense(2, 2)
    finally:
        fastnn.init(random_seed=None, dtype=previous)
    assert layer.weights.dtype == layer.biases.dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        ref.Layer_Dense(2, 2, dtype=np.float16)


def test_dense_forward_keeps_the_callers_array_and_converts_others():
    layer = ref.Layer_Dense(2, 3)
    X32 = np.ones((4, 2), dtype=np.float32)
    layer.forward(X32)
    assert layer.inputs is X32  # stored, not copied
    assert layer.output.dtype == np.float32 and layer.output.shape == (4, 3)
    X64 = np.ones((4, 2))
    layer.forward(X64)
    assert layer.inputs.dtype == np.float32 and layer.output.dtype == np.float32
    np.testing.assert_array_equal(layer.output, np.ones((4, 2), np.float32) @ layer.weights + layer.biases)
    layer.forward([[1.0, 2.0]])  # lists work too
    assert layer.output.shape == (1, 3)


def test_dense_backward_values_and_dtype():
    rng = np.random.default_rng(0)
    layer = ref.Layer_Dense(3, 2, weight_regularizer_l1=0.1, weight_regularizer_l2=0.2,
                            bias_regularizer_l1=0.3, bias_regularizer_l2=0.4)
    layer.weights = np.array([[0.5, -0.5], [0.0, 1.0], [-2.0, 0.25]], dtype=np.float32)
    layer.biases = np.array([[0.0, -1.0]], dtype=np.float32)
    X = rng.standard_normal((5, 3)).astype(np.float32)
    dvalues = rng.standard_normal((5, 2))  # float64 gradient: converted to the layer dtype
    layer.forward(X)
    layer.backward(dvalues)
    W, b, d = layer.weights, layer.biases, dvalues.astype(np.float32)
    sign_w = np.array([[1, -1], [1, 1], [-1, 1]])  # +1 at exactly 0 (the book's ones-with--1 mask)
    sign_b = np.array([[1, -1]])
    np.testing.assert_allclose(layer.dweights, X.T @ d + 0.1 * sign_w + 2 * 0.2 * W, rtol=1e-6)
    np.testing.assert_allclose(layer.dbiases, d.sum(0, keepdims=True) + 0.3 * sign_b + 2 * 0.4 * b, rtol=1e-6)
    np.testing.assert_allclose(layer.dinputs, d @ W.T, rtol=1e-6)
    assert layer.dweights.dtype == layer.dbiases.dtype == layer.dinputs.dtype == np.float32


def test_dense_parameters_are_live_arrays():
    layer = ref.Layer_Dense(2, 3)
    weights, biases = layer.get_parameters()
    assert weights is layer.weights and biases is layer.biases
    new_w, new_b = np.zeros((2, 3), np.float32), np.ones((1, 3), np.float32)
    layer.set_parameters(new_w, new_b)
    assert layer.weights is new_w and layer.biases is new_b


# --- Dropout and Input -------------------------------------------------------------------------

def test_dropout_rate_holds_the_keep_probability():
    assert ref.Layer_Dropout(0.1).rate == 0.9
    assert ref.Layer_Dropout(0.5).rate == 0.5


def test_dropout_training_uses_the_books_rng_call():
    X = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    np.random.seed(4)
    expected_mask = np.random.binomial(1, 0.8, size=X.shape) / 0.8
    np.random.seed(4)
    layer = ref.Layer_Dropout(0.2)
    layer.forward(X)  # the Ch15-17 call: training by default
    assert layer.binary_mask.dtype == np.float64
    np.testing.assert_array_equal(layer.binary_mask, expected_mask)
    assert layer.output.dtype == np.float32
    np.testing.assert_array_equal(layer.output, (X * expected_mask).astype(np.float32))
    assert layer.inputs is X
    dvalues = np.ones_like(X)
    layer.backward(dvalues)
    assert layer.dinputs.dtype == np.float32
    np.testing.assert_array_equal(layer.dinputs, expected_mask.astype(np.float32))


def test_dropout_inference_copies_and_leaves_the_mask_and_rng_alone():
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    layer = ref.Layer_Dropout(0.5)
    layer.forward(X, training=False)
    assert not hasattr(layer, "binary_mask")
    assert layer.output is not X
    np.testing.assert_array_equal(layer.output, X)
    layer.forward(X, True)
    mask = layer.binary_mask
    state = np.random.get_state()[1].copy()
    layer.forward(X, False)
    assert layer.binary_mask is mask
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_input_layer_output_is_the_input():
    X = np.ones((2, 2))
    layer = ref.Layer_Input()
    layer.forward(X, False)
    assert layer.output is X
    assert not hasattr(layer, "backward")


# --- Activations -------------------------------------------------------------------------------

def test_relu():
    x = np.array([[-1.0, 0.0, 2.0]], dtype=np.float32)
    relu = ref.Activation_ReLU()
    relu.forward(x)
    assert relu.inputs is x
    np.testing.assert_array_equal(relu.output, [[0, 0, 2]])
    assert relu.output.dtype == np.float32
    dvalues = np.array([[5.0, 6.0, 7.0]], dtype=np.float32)
    relu.backward(dvalues)
    np.testing.assert_array_equal(relu.dinputs, [[0, 0, 7]])  # gradient 0 at exactly 0
    np.testing.assert_array_equal(dvalues, [[5, 6, 7]])  # dvalues copied, not modified
    assert relu.predictions(x) is x


def test_softmax():
    x = np.array([[1000.0, 1000.0, 999.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    softmax = ref.Activation_Softmax()
    softmax.forward(x)  # the row max is subtracted: no overflow
    assert softmax.output.dtype == np.float32
    np.testing.assert_allclose(softmax.output.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(softmax.output[1], np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum(), rtol=1e-6)
    np.testing.assert_array_equal(softmax.predictions(softmax.output), [0, 2])
    softmax.backward(np.ones((2, 3), dtype=np.float32))
    assert softmax.dinputs.dtype == np.float32
    np.testing.assert_allclose(softmax.dinputs, 0, atol=1e-7)  # constant shifts do not change softmax


def test_sigmoid_is_the_books_formula_and_may_warn():
    sigmoid = ref.Activation_Sigmoid()
    x = np.array([[0.0, 2.0, -2.0]], dtype=np.float32)
    sigmoid.forward(x)
    assert sigmoid.output.dtype == np.float32
    np.testing.assert_allclose(sigmoid.output, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    predictions = sigmoid.predictions(np.array([[0.2, 0.5, 0.7]]))
    np.testing.assert_array_equal(predictions, [[0, 0, 1]])
    assert predictions.dtype.kind == "i"
    with pytest.warns(RuntimeWarning, match="overflow"):
        sigmoid.forward(np.array([[-1000.0]], dtype=np.float32))
    assert sigmoid.output[0, 0] == 0.0


def test_linear_passes_references_and_copies_gradients():
    linear = ref.Activation_Linear()
    x = np.ones((2, 1))
    linear.forward(x)
    assert linear.output is x and linear.inputs is x
    dvalues = np.ones((2, 1))
    linear.backward(dvalues)
    assert linear.dinputs is not dvalues
    np.testing.assert_array_equal(linear.dinputs, dvalues)
    assert linear.predictions(x) is x


# --- Losses ------------------------------------------------------------------------------------

def _regularized_layer(l1w=0.1, l2w=0.2, l1b=0.3, l2b=0.4):
    layer = ref.Layer_Dense(2, 2, l1w, l2w, l1b, l2b, dtype=np.float64)
    layer.weights = np.array([[1.0, -2.0], [0.5, 0.0]])
    layer.biases = np.array([[-1.0, 3.0]])
    return layer


def test_regularization_loss_with_a_layer_and_over_trainable_layers():
    layer = _regularized_layer()
    expected = 0.1 * 3.5 + 0.2 * 5.25 + 0.3 * 4.0 + 0.4 * 10.0  # no factor 1/2
    loss = ref.Loss_CategoricalCrossentropy()
    assert loss.regularization_loss(layer) == pytest.approx(expected)  # Ch14-17 call
    loss.remember_trainable_layers([layer, _regularized_layer(0, 0.2, 0, 0)])
    assert loss.regularization_loss() == pytest.approx(expected + 0.2 * 5.25)  # Ch18+ call
    unregularized = ref.Layer_Dense(2, 2)
    assert loss.regularization_loss(unregularized) == 0
    assert type(loss.regularization_loss(unregularized)) is int


def test_loss_calculate_accumulates_from_zero_without_new_pass():
    loss = ref.Loss_MeanSquaredError()
    assert not hasattr(loss, "accumulated_sum")
    y_pred = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    y = np.zeros((3, 1), dtype=np.float32)
    assert loss.calculate(y_pred, y) == pytest.approx(14 / 3)  # no new_pass(): starts at zero
    assert loss.accumulated_count == 3 and loss.accumulated_sum == pytest.approx(14)
    loss.calculate(y_pred[:1], y[:1])
    assert loss.calculate_accumulated() == pytest.approx(15 / 4)
    loss.remember_trainable_layers([_regularized_layer(0, 1.0, 0, 0)])
    data_loss, regularization_loss = loss.calculate(y_pred, y, include_regularization=True)
    assert regularization_loss == pytest.approx(5.25)
    assert loss.calculate_accumulated(include_regularization=True)[1] == pytest.approx(5.25)
    loss.new_pass()
    assert loss.accumulated_sum == 0 and loss.accumulated_count == 0


def test_categorical_crossentropy():
    y_pred = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]], dtype=np.float32)
    loss = ref.Loss_CategoricalCrossentropy()
    sparse = loss.forward(y_pred, np.array([0, 0]))
    onehot = loss.forward(y_pred, np.array([[1, 0, 0], [1, 0, 0]]))  # int one-hot keeps float32
    assert sparse.dtype == onehot.dtype == np.float32
    np.testing.assert_array_equal(sparse, onehot)
    np.testing.assert_allclose(sparse, [-np.log(0.7), -np.log(1e-7)], rtol=1e-6)  # clipped at 1e-7
    loss.backward(np.array([[0.5, 0.25, 0.25]], dtype=np.float32), np.array([1]))
    assert loss.dinputs.dtype == np.float32
    np.testing.assert_array_equal(loss.dinputs, [[0, -4, 0]])
    with pytest.raises(ValueError, match="shape"):
        loss.forward(y_pred, np.zeros((2, 3, 1)))


def test_binary_crossentropy_mse_mae_values_and_dtype():
    y_pred = np.array([[0.9, 0.2], [0.4, 0.6]], dtype=np.float32)
    y = np.array([[1.0, 0.0], [0.0, 0.0]])  # float64 labels: converted to float32
    bce = ref.Loss_BinaryCrossentropy().forward(y_pred, y)
    p = y_pred.astype(np.float64)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=-1)
    np.testing.assert_allclose(bce, expected, rtol=1e-6)
    mse = ref.Loss_MeanSquaredError().forward(y_pred, y)
    np.testing.assert_allclose(mse, np.mean((y - y_pred) ** 2, axis=-1), rtol=1e-6)
    mae = ref.Loss_MeanAbsoluteError().forward(y_pred, y)
    np.testing.assert_allclose(mae, np.mean(np.abs(y - y_pred), axis=-1), rtol=1e-6)
    for cls in (ref.Loss_BinaryCrossentropy, ref.Loss_MeanSquaredError, ref.Loss_MeanAbsoluteError):
        loss = cls()
        assert loss.forward(y_pred, y).dtype == np.float32
        loss.backward(y_pred, y)
        assert loss.dinputs.dtype == np.float32 and loss.dinputs.shape == (2, 2)


def test_mae_gradient_sign_is_fixed():
    """Deviation: the book's +sign(y - p) would climb the loss; ours is the derivative."""
    y_pred = np.array([[0.0, 5.0]])
    y = np.array([[1.0, 1.0]])
    loss = ref.Loss_MeanAbsoluteError()
    loss.backward(y_pred, y)
    np.testing.assert_array_equal(loss.dinputs, -np.sign(y - y_pred) / 2 / 1)
    np.testing.assert_array_equal(loss.dinputs, [[-0.5, 0.5]])
    before = np.mean(loss.forward(y_pred, y))
    after = np.mean(loss.forward(y_pred - 0.1 * loss.dinputs, y))
    assert after < before


def test_combined_class_has_both_book_versions():
    combined = ref.Activation_Softmax_Loss_CategoricalCrossentropy()
    assert isinstance(combined.activation, ref.Activation_Softmax)
    assert isinstance(combined.loss, ref.Loss_CategoricalCrossentropy)
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    value = combined.forward(logits, np.array([2, 0]))  # Ch9-17: returns the loss
    assert value == pytest.approx(np.mean([-np.log(np.exp(3) / np.exp([1, 2, 3]).sum()), np.log(3)]), rel=1e-6)
    assert combined.output is combined.activation.output
    combined.backward(combined.output, np.array([[0, 0, 1], [1, 0, 0]]))  # one-hot -> argmax
    from_onehot = combined.dinputs
    combined.backward(combined.output, np.array([2, 0]))
    np.testing.assert_array_equal(from_onehot, combined.dinputs)
    assert combined.dinputs.dtype == np.float32


# --- Optimizers --------------------------------------------------------------------------------

STATE = ("weight_momentums", "bias_momentums", "weight_cache", "bias_cache")


def _layer_with_gradients():
    layer = ref.Layer_Dense(2, 3)
    layer.weights = np.array([[0.1, -0.2, 0.3], [0.4, 0.0, -0.6]], dtype=np.float32)
    layer.biases = np.array([[0.5, -0.5, 0.0]], dtype=np.float32)
    layer.dweights = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], dtype=np.float32)
    layer.dbiases = np.array([[0.1, 0.2, -0.3]], dtype=np.float32)
    return layer


@pytest.mark.parametrize("make, created", [
    (lambda: ref.Optimizer_SGD(), ()),
    (lambda: ref.Optimizer_SGD(momentum=0.9), ("weight_momentums", "bias_momentums")),
    (lambda: ref.Optimizer_Adagrad(), ("weight_cache", "bias_cache")),
    (lambda: ref.Optimizer_RMSprop(), ("weight_cache", "bias_cache")),
    (lambda: ref.Optimizer_Adam(), STATE),
], ids=["sgd", "sgd-momentum", "adagrad", "rmsprop", "adam"])
def test_optimizer_state_is_created_lazily_on_the_layer(make, created):
    optimizer = make()
    assert (optimizer.iterations, optimizer.current_learning_rate) == (0, optimizer.learning_rate)
    layer = _layer_with_gradients()
    for name in STATE:
        assert not hasattr(layer, name)
    _book.update(optimizer, [layer])
    assert optimizer.iterations == 1
    for name in STATE:
        assert hasattr(layer, name) == (name in created), name
    for name in created:
        like = layer.weights if name.startswith("weight") else layer.biases
        assert getattr(layer, name).shape == like.shape and getattr(layer, name).dtype == np.float32
    assert layer.weights.dtype == layer.biases.dtype == np.float32


def _step(optimizer, layer, dweights, dbiases):
    layer.dweights, layer.dbiases = dweights, dbiases
    _book.update(optimizer, [layer])


def test_optimizer_updates_match_the_formulas():
    g1 = _layer_with_gradients()
    w0 = g1.weights.astype(np.float64)
    gw = g1.dweights.astype(np.float64)
    gw2 = gw[::-1, ::-1] * 0.5

    def run(optimizer, steps=2):
        layer = _layer_with_gradients()
        weights = layer.weights  # updated in place
        for gradient in (gw, gw2)[:steps]:
            _step(optimizer, layer, gradient.astype(np.float32), layer.dbiases)
        assert layer.weights is weights and weights.dtype == np.float32
        return layer.weights

    lr = 0.1
    np.testing.assert_allclose(run(ref.Optimizer_SGD(lr)), w0 - lr * gw - lr * gw2, rtol=1e-6)
    u1 = -lr * gw
    u2 = 0.9 * u1 - lr * gw2
    np.testing.assert_allclose(run(ref.Optimizer_SGD(lr, momentum=0.9)), w0 + u1 + u2, rtol=1e-6)
    cache = gw ** 2
    expected = w0 - lr * gw / (np.sqrt(cache) + 1e-7)
    cache = cache + gw2 ** 2
    expected = expected - lr * gw2 / (np.sqrt(cache) + 1e-7)
    np.testing.assert_allclose(run(ref.Optimizer_Adagrad(lr)), expected, rtol=1e-6)
    cache = 0.1 * gw ** 2
    expected = w0 - lr * gw / (np.sqrt(cache) + 1e-7)
    cache = 0.9 * cache + 0.1 * gw2 ** 2
    expected = expected - lr * gw2 / (np.sqrt(cache) + 1e-7)
    np.testing.assert_allclose(run(ref.Optimizer_RMSprop(lr)), expected, rtol=1e-6)
    m = v = 0
    expected = w0
    for t, gradient in enumerate((gw, gw2), start=1):  # bias correction at t = iterations + 1
        m = 0.9 * m + 0.1 * gradient
        v = 0.999 * v + 0.001 * gradient ** 2
        expected = expected - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-7)
    np.testing.assert_allclose(run(ref.Optimizer_Adam(lr)), expected, rtol=1e-6)


def test_adam_after_rmsprop_fails_as_in_the_book():
    """Book quirk kept: Adam sees weight_cache, skips creating its momentums, then fails."""
    layer = _layer_with_gradients()
    _step(ref.Optimizer_RMSprop(), layer, layer.dweights, layer.dbiases)
    with pytest.raises(AttributeError, match="weight_momentums"):
        _step(ref.Optimizer_Adam(), layer, layer.dweights, layer.dbiases)


# --- Accuracy ----------------------------------------------------------------------------------

def test_accuracy_categorical_and_binary():
    accuracy = ref.Accuracy_Categorical()
    assert accuracy.binary is False and accuracy.init(np.zeros(3)) is None
    assert not hasattr(accuracy, "accumulated_sum")
    assert accuracy.calculate(np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1])) == 0.75  # no new_pass needed
    assert accuracy.calculate(np.array([0, 1]), np.eye(3)[[0, 2]]) == 0.5  # one-hot -> argmax
    assert accuracy.calculate_accumulated() == 4 / 6
    binary = ref.Accuracy_Categorical(binary=True)
    predictions = np.array([[1], [0], [1]])
    assert binary.calculate(predictions, np.array([[1], [1], [1]])) == pytest.approx(2 / 3)
    binary.new_pass()
    # Book quirk: len() counts rows, so two outputs per sample can push the total over 1.
    binary.calculate(np.ones((2, 2), int), np.ones((2, 2), int))
    assert binary.calculate_accumulated() == 2.0


def test_accuracy_regression_precision():
    accuracy = ref.Accuracy_Regression()
    assert accuracy.precision is None
    y = np.array([[0.0], [1.0], [2.0], [3.0]])
    accuracy.init(y)
    assert accuracy.precision == np.std(y) / 250
    accuracy.init(y * 100)  # kept unless reinit
    assert accuracy.precision == np.std(y) / 250
    accuracy.init(y * 100, reinit=True)
    assert accuracy.precision == np.std(y * 100) / 250
    precision = accuracy.precision
    comparisons = accuracy.compare(y + np.array([[0], [precision / 2], [precision * 2], [0]]), y)
    np.testing.assert_array_equal(comparisons, [[True], [True], [False], [True]])


# --- Plain objects: deepcopy and pickle --------------------------------------------------------

def _used_objects():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 2)).astype(np.float32)
    dense = ref.Layer_Dense(2, 3, weight_regularizer_l2=1e-3)
    dense.forward(X)
    dense.backward(np.ones((6, 3), np.float32))
    adam = ref.Optimizer_Adam()
    _book.update(adam, [dense])
    dropout = ref.Layer_Dropout(0.5)
    dropout.forward(X)
    objects = [dense, dropout, adam, ref.Optimizer_SGD(momentum=0.5), ref.Optimizer_Adagrad(),
               ref.Optimizer_RMSprop(), ref.Layer_Input(), ref.Accuracy_Categorical(binary=True),
               ref.Accuracy_Regression(), ref.Activation_Softmax_Loss_CategoricalCrossentropy()]
    for cls in (ref.Activation_ReLU, ref.Activation_Softmax, ref.Activation_Sigmoid, ref.Activation_Linear):
        activation = cls()
        activation.forward(X)
        objects.append(activation)
    for cls in (ref.Loss_CategoricalCrossentropy, ref.Loss_BinaryCrossentropy, ref.Loss_MeanSquaredError,
                ref.Loss_MeanAbsoluteError):
        objects.append(cls())
    return objects


def _same_state(a, b):
    assert type(a) is type(b)
    assert vars(a).keys() == vars(b).keys()
    for key, value in vars(a).items():
        if isinstance(value, np.ndarray):
            assert value.dtype == vars(b)[key].dtype
            np.testing.assert_array_equal(value, vars(b)[key])


def test_every_object_deep_copies_and_pickles():
    for obj in _used_objects():
        _same_state(obj, copy.deepcopy(obj))
        _same_state(obj, pickle.loads(pickle.dumps(obj)))
