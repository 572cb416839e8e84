"""Parity between the compiled classes (fastnn) and the reference (fastnn.reference).

Same public names, same public methods, same signatures (names, kinds and defaults of every
parameter), same attributes after construction and after use, same class hierarchy, the same
lazily created optimizer state; every object deep-copies and pickles. Differences are allowed
only where listed below; an entry that is no longer needed fails too, so the lists stay minimal.
"""
import copy
import inspect
import pickle

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref

# The book's class names (book-api.md §5.12), in the book's spelling.
BOOK_NAMES = [
    "Layer_Dense", "Layer_Dropout", "Layer_Input",
    "Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Loss", "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy", "Loss_MeanSquaredError",
    "Loss_MeanAbsoluteError",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Accuracy_Regression", "Model",
]

# fastnn's public names beyond the book's (design.md §2, §4).
ALLOWED_EXTRA_NAMES = {"History", "init", "show_config", "default_dtype", "dropout_mode", "__version__",
                       "Layer_Conv2D", "Layer_MaxPool2D", "Layer_Flatten"}

# Extra parameters fastnn adds: keyword-only, with these defaults, so every book call still works.
ALLOWED_EXTRA_PARAMETERS = {
    ("Layer_Dropout", "__init__"): {"mode": None},
    ("Model", "train"): {"verbose": "book"},
    ("Model", "evaluate"): {"verbose": "book"},
    ("Model", "save"): {"format": "fastnn"},
    ("Model", "save_parameters"): {"format": "fastnn"},
    ("Model", "load"): {"allow_pickle": False},
    ("Model", "load_parameters"): {"allow_pickle": False},
}

# Public methods fastnn has and the reference does not (none: helpers are private).
ALLOWED_EXTRA_METHODS: dict[str, set[str]] = {}

# Instance attributes fastnn sets and the reference does not.
ALLOWED_EXTRA_ATTRIBUTES = {"Layer_Dropout": {"mode"}}


def public_methods(cls):
    names = set()
    for name in dir(cls):
        if name.startswith("_") and name != "__init__":
            continue
        if callable(inspect.getattr_static(cls, name)) or isinstance(
                inspect.getattr_static(cls, name), (staticmethod, classmethod)):
            names.add(name)
    return names


def parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_same_public_names():
    # The reference exports the book's names and every other class fastnn exports, so that
    # `from fastnn.reference import *` switches any fastnn script (a CNN too) to the reference.
    classes = {name for name in fastnn.__all__ if isinstance(getattr(fastnn, name), type) and name != "History"}
    assert sorted(ref.__all__) == sorted(classes) and set(BOOK_NAMES) <= classes
    assert set(BOOK_NAMES) <= set(fastnn.__all__)
    assert set(fastnn.__all__) - set(BOOK_NAMES) == ALLOWED_EXTRA_NAMES
    namespace = {}
    exec("from fastnn import *", namespace)
    assert set(BOOK_NAMES) <= set(namespace)
    for name in BOOK_NAMES:
        assert isinstance(getattr(fastnn, name), type), name
        assert getattr(fastnn, name).__name__ == name


@pytest.mark.parametrize("name", BOOK_NAMES)
def test_same_methods_and_signatures(name):
    fast_cls, ref_cls = getattr(fastnn, name), getattr(ref, name)
    fast_methods, ref_methods = public_methods(fast_cls), public_methods(ref_cls)
    assert ref_methods <= fast_methods, f"{name} lacks {sorted(ref_methods - fast_methods)}"
    assert fast_methods - ref_methods == ALLOWED_EXTRA_METHODS.get(name, set())
    for method in sorted(ref_methods):
        fast_static = inspect.getattr_static(fast_cls, method)
        ref_static = inspect.getattr_static(ref_cls, method)
        assert type(fast_static) is type(ref_static), f"{name}.{method}: static/class method kind"
        fast_params = parameters(getattr(fast_cls, method))
        ref_params = parameters(getattr(ref_cls, method))
        extra = ALLOWED_EXTRA_PARAMETERS.get((name, method), {})
        added = [p for p in fast_params if p[0] in extra]
        assert {p[0]: p[2] for p in added} == extra, f"{name}.{method}: allowed extras {extra}, found {added}"
        assert all(p[1] is inspect.Parameter.KEYWORD_ONLY for p in added), \
            f"{name}.{method}: extras must be keyword-only"
        assert [p for p in fast_params if p[0] not in extra] == ref_params, f"{name}.{method}"


def test_the_allow_lists_name_existing_things():
    for (name, method) in ALLOWED_EXTRA_PARAMETERS:
        assert method in public_methods(getattr(fastnn, name)), (name, method)
    for name in list(ALLOWED_EXTRA_METHODS) + list(ALLOWED_EXTRA_ATTRIBUTES):
        assert name in BOOK_NAMES


@pytest.mark.parametrize("name", BOOK_NAMES)
def test_same_base_classes_among_the_books(name):
    fast_cls, ref_cls = getattr(fastnn, name), getattr(ref, name)
    for other in BOOK_NAMES:
        assert issubclass(fast_cls, getattr(fastnn, other)) == issubclass(ref_cls, getattr(ref, other)), (name, other)


CONSTRUCTOR_ARGS = {"Layer_Dense": (2, 3), "Layer_Dropout": (0.1,)}


@pytest.mark.parametrize("name", BOOK_NAMES)
def test_same_attributes_after_construction(name):
    args = CONSTRUCTOR_ARGS.get(name, ())
    np.random.seed(0)
    fast_obj = getattr(fastnn, name)(*args)
    np.random.seed(0)
    ref_obj = getattr(ref, name)(*args)
    fast_attrs, ref_attrs = set(vars(fast_obj)), set(vars(ref_obj))
    assert ref_attrs <= fast_attrs
    assert fast_attrs - ref_attrs == ALLOWED_EXTRA_ATTRIBUTES.get(name, set())
    for attr in ref_attrs:
        a, b = getattr(fast_obj, attr), getattr(ref_obj, attr)
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=attr)
            assert a.dtype == b.dtype, attr
        elif attr not in ("activation", "loss"):
            assert a == b and type(a) is type(b), (attr, a, b)


def run_step(mod, dropout_mode=None):
    """One Ch14-style step through every kind of object; returns them."""
    np.random.seed(1)
    X = np.random.standard_normal((20, 2)).astype(np.float32)
    y = np.random.randint(0, 3, 20)
    dense1 = mod.Layer_Dense(2, 8, weight_regularizer_l2=5e-4, bias_regularizer_l1=1e-4)
    relu = mod.Activation_ReLU()
    drop = mod.Layer_Dropout(0.1, mode=dropout_mode) if dropout_mode else mod.Layer_Dropout(0.1)
    dense2 = mod.Layer_Dense(8, 3)
    head = mod.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = mod.Optimizer_Adam(learning_rate=0.02, decay=1e-3)
    accuracy = mod.Accuracy_Categorical()
    dense1.forward(X)
    relu.forward(dense1.output)
    drop.forward(relu.output)
    dense2.forward(drop.output)
    loss = head.forward(dense2.output, y)
    accuracy.calculate(head.activation.predictions(head.output), y)
    head.backward(head.output, y)
    dense2.backward(head.dinputs)
    drop.backward(dense2.dinputs)
    relu.backward(drop.dinputs)
    dense1.backward(relu.dinputs)
    optimizer.pre_update_params()
    optimizer.update_params(dense1)
    optimizer.update_params(dense2)
    optimizer.post_update_params()
    return dict(dense1=dense1, relu=relu, drop=drop, dense2=dense2, head=head, optimizer=optimizer,
                accuracy=accuracy, loss=loss)


def test_same_attributes_after_use():
    fast, book = run_step(fastnn, "book"), run_step(ref)
    for key in ("dense1", "relu", "drop", "dense2", "head", "optimizer", "accuracy"):
        extra = ALLOWED_EXTRA_ATTRIBUTES.get(type(book[key]).__name__, set())
        assert set(vars(fast[key])) - extra == set(vars(book[key])), key
    # The optimizer state the book creates lazily, under its names.
    for key in ("dense1", "dense2"):
        for state in ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache"):
            assert getattr(fast[key], state).shape == getattr(book[key], state).shape


@pytest.mark.parametrize("name,kwargs,state", [
    ("Optimizer_SGD", {}, ()),
    ("Optimizer_SGD", {"momentum": 0.5}, ("weight_momentums", "bias_momentums")),
    ("Optimizer_Adagrad", {}, ("weight_cache", "bias_cache")),
    ("Optimizer_RMSprop", {}, ("weight_cache", "bias_cache")),
    ("Optimizer_Adam", {}, ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache")),
])
def test_optimizer_state_is_lazy_in_both(name, kwargs, state):
    for mod in (fastnn, ref):
        layer = mod.Layer_Dense(3, 2)
        layer.dweights = np.ones((3, 2), np.float32)
        layer.dbiases = np.ones((1, 2), np.float32)
        all_state = ("weight_momentums", "weight_cache", "bias_momentums", "bias_cache")
        assert not any(hasattr(layer, s) for s in all_state)
        getattr(mod, name)(**kwargs).update_params(layer)
        assert {s for s in all_state if hasattr(layer, s)} == set(state), mod.__name__


# ---------------------------------------------------------------------------------------------
# deepcopy and pickle


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_objects_deepcopy_and_pickle_after_use(how):
    objects = run_step(fastnn)
    clone = copy.deepcopy if how == "deepcopy" else (lambda o: pickle.loads(pickle.dumps(o)))
    X = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    for key, obj in objects.items():
        if key == "loss":
            continue
        twin = clone(obj)
        assert type(twin) is type(obj)
        assert set(vars(twin)) == set(vars(obj)), key
        for attr, value in vars(obj).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(twin, attr), value, err_msg=f"{key}.{attr}")
                assert not np.shares_memory(getattr(twin, attr), value), f"{key}.{attr}"
    # The copies keep working, and writing into their buffers leaves the originals alone.
    dense = objects["dense1"]
    twin = clone(dense)
    before = dense.output.copy()
    twin.forward(X * 3)
    np.testing.assert_array_equal(dense.output, before)
    dense.forward(X * 3)
    np.testing.assert_array_equal(twin.output, dense.output)
    twin_opt, twin_layer = clone((objects["optimizer"], objects["dense2"]))
    twin_opt.pre_update_params()
    twin_opt.update_params(twin_layer)
    assert not np.array_equal(twin_layer.weights, objects["dense2"].weights)


def test_model_deepcopies_and_pickles_after_training(capsys):
    np.random.seed(0)
    X = np.random.standard_normal((30, 2)).astype(np.float32)
    y = np.random.randint(0, 3, 30)
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 8))
    model.add(fastnn.Activation_ReLU())
    model.add(fastnn.Layer_Dropout(0.1))
    model.add(fastnn.Layer_Dense(8, 3))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    model.train(X, y, epochs=2)
    expected = model.predict(X)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(twin.predict(X), expected)
        assert twin.layers[0].next is twin.layers[1] and twin.layers[1].prev is twin.layers[0]
        twin.train(X, y, epochs=1)
    capsys.readouterr()
