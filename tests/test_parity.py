"""Parity between the compiled classes (fastnn) and the reference (fastnn.reference), for every
declared class (its case in tests/cases.py says how to build and use it).

Same public methods, same signatures (names, kinds and defaults of every parameter), same
attributes after construction (values and types) and after use (names, array shapes), same class
hierarchy, the same lazily created optimizer state; every used object deep-copies and pickles.
Differences are allowed only where listed below; an entry that is no longer needed fails too, so
the lists stay minimal. (The exported names: tests/contract/test_registry.py.)
"""
import copy
import inspect
import pickle

import numpy as np
import pytest

import fastnn
import _book
import fastnn.reference as ref
from fastnn._core.spec import declared
from fastnn._ext import _blas

from cases import CASES, cases, ids
from contract import harness

# The book's class names: what fastnn.reference exports (test_reference_api.py pins the list).
BOOK_NAMES = list(ref.__all__)
DECLARED = [spec.name for spec in declared()]

# Extra parameters fastnn adds: keyword-only, with these defaults, so every book call still works.
ALLOWED_EXTRA_PARAMETERS = {
    ("Layer_Dropout", "__init__"): {"mode": None},
    ("Model", "train"): {"verbose": "book", "distributed": False},
    ("Model", "evaluate"): {"verbose": "book", "distributed": False},
    ("Model", "predict"): {"distributed": False},
    ("Model", "save"): {"format": "fastnn"},
    ("Model", "save_parameters"): {"format": "fastnn"},
    ("Model", "load"): {"allow_pickle": False},
    ("Model", "load_parameters"): {"allow_pickle": False},
}

# Public methods fastnn has and the reference does not (none: helpers are private).
ALLOWED_EXTRA_METHODS: dict[str, set[str]] = {}

# Instance attributes fastnn sets and the reference does not (Conv2D's im2col or Winograd scratch, BatchNorm's
# statistics of the last forward in float64 and its scratch, after use).
ALLOWED_EXTRA_ATTRIBUTES = {"Layer_Dropout": {"mode"}, "Layer_Conv2D": set(fastnn.Layer_Conv2D._SCRATCH),
                            "Layer_BatchNorm": {"_mean", "_inv_std", "_batch", "_sums"}}

# Instance attributes the reference sets and fastnn does not: the reference's im2col matrix, kept
# after forward for backward (fastnn keeps per-thread scratch of another shape, privately), and its
# BatchNorm's normalised inputs and statistics (fastnn keeps the statistics only, privately).
ALLOWED_MISSING_ATTRIBUTES = {"Layer_Conv2D": {"columns"}, "Layer_BatchNorm": {"xhat", "inv_std", "batch_statistics"}}


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


@pytest.mark.parametrize("name", DECLARED)
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
    for name in [*ALLOWED_EXTRA_METHODS, *ALLOWED_EXTRA_ATTRIBUTES, *ALLOWED_MISSING_ATTRIBUTES]:
        assert name in DECLARED
    for name, attributes in ALLOWED_MISSING_ATTRIBUTES.items():
        obj, _ = harness.used(CASES[name], ref)
        assert attributes <= set(vars(obj)), f"{name}: the reference does set {sorted(attributes)}"
    for name, attributes in ALLOWED_EXTRA_ATTRIBUTES.items():
        obj, _ = harness.used(CASES[name])
        sets = set(vars(obj))
        if name == "Layer_Conv2D":   # layers that take the Winograd and the im2col path (stride 2) too
            for conv in (fastnn.Layer_Conv2D(8, 2, 3, padding=1), fastnn.Layer_Conv2D(8, 2, 3, stride=2)):
                conv.forward(np.ones((2, 8, 4, 4), dtype=np.float32))
                conv.backward(np.ones_like(conv.output))
                sets |= set(vars(conv))
            if not _blas.small_gemm_available():    # the shifted-plane path needs the AVX-512 kernels
                attributes = attributes - {"_shifted", "_shifted_offsets"}
        assert attributes <= sets, f"{name}: allowed extras it never sets"


@pytest.mark.parametrize("name", DECLARED)
def test_same_base_classes_among_the_declared(name):
    fast_cls, ref_cls = getattr(fastnn, name), getattr(ref, name)
    for other in DECLARED:
        assert issubclass(fast_cls, getattr(fastnn, other)) == issubclass(ref_cls, getattr(ref, other)), (name, other)


def assert_same_attributes(name, fast_obj, ref_obj, where):
    """The same attribute names (but the allowed extras), arrays of the same shapes."""
    fast_attrs, ref_attrs = set(vars(fast_obj)), set(vars(ref_obj))
    assert ref_attrs - fast_attrs <= ALLOWED_MISSING_ATTRIBUTES.get(name, set()), \
        f"{name} {where}: fastnn lacks {sorted(ref_attrs - fast_attrs)}"
    assert fast_attrs - ref_attrs <= ALLOWED_EXTRA_ATTRIBUTES.get(name, set()), \
        f"{name} {where}: extra {sorted(fast_attrs - ref_attrs)}"
    for attr in ref_attrs & fast_attrs:
        if isinstance(getattr(ref_obj, attr), np.ndarray):
            assert np.shape(getattr(fast_obj, attr)) == getattr(ref_obj, attr).shape, (name, where, attr)


@pytest.mark.parametrize("case", cases(), ids=ids(cases()))
def test_same_attributes_after_construction(case):
    fast_obj, ref_obj = harness.build(case, fastnn), harness.build(case, ref)
    assert_same_attributes(case.name, fast_obj, ref_obj, "after construction")
    for attr, value in vars(ref_obj).items():
        a = getattr(fast_obj, attr)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(a, value, err_msg=attr)
            assert a.dtype == value.dtype, attr
        elif attr not in ("activation", "loss"):
            assert a == value and type(a) is type(value), (attr, a, value)


DRIVEN = [case for case in cases(setups=True) if case.protocol not in (None, "optimizer")]
OPTIMIZED = [(case, layer_case) for case in cases("optimizer", setups=True)
             for layer_case in cases("layer", trainable=True)]


@pytest.mark.parametrize("case", DRIVEN, ids=ids(DRIVEN))
def test_same_attributes_after_use(case):
    fast_obj, ref_obj = harness.pair(case, np.float32)
    made = harness.data(case, np.float32)
    harness.exercise(case, fast_obj, made)
    harness.exercise(case, ref_obj, made)
    assert_same_attributes(case.name, fast_obj, ref_obj, "after use")


@pytest.mark.parametrize("case, layer_case", OPTIMIZED, ids=[f"{c.label}-{l.name}" for c, l in OPTIMIZED])
def test_optimizer_state_is_lazy_and_the_same_in_both(case, layer_case):
    """The state the book creates lazily, under its names: none before the first update, the same
    arrays in both packages after it, each one the declaration names."""
    fast, slow = harness.optimizer_pair(case, layer_case, np.float32)
    names = harness.layer_state_names(case)
    for obj in (fast, slow):
        assert not any(hasattr(obj[1], s) for s in names)
    made = harness.data(case, np.float32)
    harness.exercise(case, fast, made)
    harness.exercise(case, slow, made)
    state = {s for s in names if hasattr(fast[1], s)}
    assert state == {s for s in names if hasattr(slow[1], s)}
    assert_same_attributes(case.name, fast[0], slow[0], "after use")
    assert_same_attributes(layer_case.name, fast[1], slow[1], f"after {case.label}")


# ---------------------------------------------------------------------------------------------
# deepcopy and pickle

CLONES = {"deepcopy": copy.deepcopy, "pickle": lambda o: pickle.loads(pickle.dumps(o))}
USED = [case for case in cases(setups=True) if case.protocol]


def array_attributes(obj):
    return {k: v.copy() for k, v in vars(obj).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("how", list(CLONES))
@pytest.mark.parametrize("case", USED, ids=ids(USED))
def test_objects_deepcopy_and_pickle_after_use(case, how):
    """A copy of a used object has its attributes (private scratch may be left to be rebuilt), with
    arrays equal but its own; it computes what the original computes, and writing into its
    buffers leaves the original alone."""
    obj, _ = harness.used(case)
    twin = CLONES[how](obj)
    pairs = list(zip(obj, twin)) if isinstance(obj, tuple) else [(obj, twin)]
    for original, clone in pairs:
        assert type(clone) is type(original)
        assert {k for k in vars(original) if not k.startswith("_")} <= set(vars(clone)) <= set(vars(original))
        for attr, value in vars(clone).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, getattr(original, attr), err_msg=f"{case.label}.{attr}")
                assert not np.shares_memory(value, getattr(original, attr)), f"{case.label}.{attr}"
    before = [array_attributes(original) for original, _ in pairs]
    made = harness.data(case, np.float32, seed=1)
    from_twin = harness.exercise(case, twin, made)
    for (original, _), arrays in zip(pairs, before):
        for attr, value in arrays.items():
            np.testing.assert_array_equal(getattr(original, attr), value, err_msg=f"{case.label}.{attr}")
    from_original = harness.exercise(case, obj, made)
    for name, value in from_original.items():
        np.testing.assert_array_equal(from_twin[name], value, err_msg=name)


def test_model_deepcopies_and_pickles_after_training(capsys):
    np.random.seed(0)
    X = np.random.standard_normal((30, 2)).astype(np.float32)
    y = np.random.randint(0, 3, 30)
    model = _book.build_model(fastnn, [
        fastnn.Layer_Dense(2, 8), fastnn.Activation_ReLU(), fastnn.Layer_Dropout(0.1), fastnn.Layer_Dense(8, 3),
        fastnn.Activation_Softmax()], loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
        accuracy=fastnn.Accuracy_Categorical())
    model.train(X, y, epochs=2)
    expected = model.predict(X)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(twin.predict(X), expected)
        assert twin.layers[0].next is twin.layers[1] and twin.layers[1].prev is twin.layers[0]
        twin.train(X, y, epochs=1)
    capsys.readouterr()
