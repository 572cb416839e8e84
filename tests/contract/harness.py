"""What the contract tests do with a case (tests/cases.py): build its objects in fastnn and in
fastnn.reference, make its data, drive it through its protocol, compare the results.

Everything here is keyed by a case's fields and its class's declaration, never by a class name:
a new class with a case goes through the same code.
"""
from __future__ import annotations

import inspect

import numpy as np

import fastnn
import fastnn.reference as ref
from fastnn._core.spec import state_name

from cases import CASES, cases

LIBS = {"fastnn": fastnn, "reference": ref}
SEED = 1234                 # NumPy's global RNG before every seeded (dropout) forward
OPTIMIZER_STEPS = 3


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def takes_dtype(cls) -> bool:
    return "dtype" in inspect.signature(cls).parameters


# ---------------------------------------------------------------------------------------------
# Objects


def build(case, lib=fastnn, *, dtype=None, parity=False, seed=0, kwargs=None):
    """The case's object from `lib`, with NumPy's global RNG seeded first (the same initial
    weights in both packages; seed=None leaves it alone): its constructor arguments (or `kwargs`),
    the parity arguments when it is compared with the reference, the dtype where the constructor
    takes one."""
    cls = getattr(lib, case.name)
    arguments = dict(case.kwargs if kwargs is None else kwargs)
    if parity and lib is fastnn:
        arguments.update(case.parity_kwargs)
    if dtype is not None and takes_dtype(cls):
        arguments["dtype"] = dtype
    if seed is not None:
        np.random.seed(seed)
    return cls(**arguments)


def _declared_shapes(case, obj, field):
    shapes = getattr(case.spec, field)
    if shapes is None:
        return []
    attributes = {name: getattr(obj, name) for name in case.spec.saved}
    dims = {name: getter(obj) for name, getter in case.spec.dims.items()}
    return list(shapes(attributes, dims))


def parameter_names(case, obj) -> list[str]:
    """The trainable arrays the declaration gives for obj ([] for an untrainable class)."""
    return _declared_shapes(case, obj, "parameters")


def buffer_names(case, obj) -> list[str]:
    """The declared buffers of obj: state a forward may change, such as running statistics."""
    return _declared_shapes(case, obj, "buffers")


def state_names(case, obj) -> list[str]:
    """The arrays that are obj's state (its declared parameters and buffers), not batch data."""
    return _declared_shapes(case, obj, "parameters") + _declared_shapes(case, obj, "buffers")


def randomize_parameters(case, layer, seed=0) -> None:
    """Parameters of moderate size, at least 0.05 away from 0 (L1's kink), biases too, in place:
    the same values for the same seed in both packages."""
    rng = np.random.default_rng(seed + 99)
    for name in parameter_names(case, layer):
        array = getattr(layer, name)
        array[...] = away_from_zero(rng.standard_normal(array.shape) * 0.5, 0.05)


def pair(case, dtype, *, seed=0):
    """(fastnn object, reference object) built alike, with the same parameters."""
    fast = build(case, fastnn, dtype=dtype, parity=True, seed=seed)
    slow = build(case, ref, dtype=dtype, parity=True, seed=seed)
    for layer in (fast, slow):
        randomize_parameters(case, layer, seed)
    return fast, slow


def optimizer_pair(case, layer_case, dtype, *, seed=0):
    """((fastnn optimizer, fastnn layer), (reference optimizer, reference layer))."""
    fast_layer, slow_layer = pair(layer_case, dtype, seed=seed)
    return (build(case, fastnn), fast_layer), (build(case, ref), slow_layer)


def layer_state_names(case) -> list[str]:
    """The state an optimizer may keep on a layer, as its declaration names it."""
    return [state_name(p, suffix) for p in ("weights", "biases") for suffix in case.spec.layer_state]


# ---------------------------------------------------------------------------------------------
# Data


def away_from_zero(a, margin=0.1):
    return a + np.where(a >= 0, margin, -margin)


def fill(values, shape, rng, dtype=np.float64):
    """An array of `shape` filled as the case's `values` say (see tests/cases.py)."""
    if values == "normal":
        a = rng.standard_normal(shape) * 2
    elif values == "kinkless":
        a = away_from_zero(rng.standard_normal(shape) * 2)
    elif values == "distinct":
        a = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01
    elif values == "probabilities":
        a = rng.uniform(0.05, 0.95, shape)
    else:
        raise AssertionError(f"unknown values {values!r}")
    return a.astype(dtype)


def targets(case, rng, shape, dtype, predictions=None):
    """Targets of the case's kind for predictions of `shape`."""
    n = shape[0]
    classes = shape[1] if len(shape) == 2 and case.targets != "binary" else case.classes
    if case.targets == "class_ids":
        return rng.integers(0, classes, n)
    if case.targets == "onehot":
        return np.eye(classes, dtype=dtype)[rng.integers(0, classes, n)]
    if case.targets == "binary":
        return rng.integers(0, 2, shape).astype(dtype)
    if case.targets == "real":
        base = rng.standard_normal(shape) if predictions is None else predictions
        return (base + away_from_zero(rng.standard_normal(shape))).astype(dtype)
    raise AssertionError(f"{case.name}: unknown targets {case.targets!r}")


def near(case, y, rng):
    """Accuracy predictions for targets y: right for about half the samples."""
    wrong = rng.random(len(y)) < 0.5
    if case.targets in ("class_ids", "onehot"):
        ids = y if case.targets == "class_ids" else np.argmax(y, axis=1)
        return np.where(wrong, (ids + 1) % case.classes, ids)
    if case.targets == "binary":
        return np.where(wrong[:, None], 1 - y, y).astype(np.int64)
    spread = np.std(y) / 250
    return y + np.where(wrong[:, None], 100 * spread, 0.1 * spread).astype(y.dtype)


def data(case, dtype, *, seed=0, batch=None):
    """The inputs of one exercise of the case (a dict; "d", the gradient, is added by the first
    exercise, once the output shape is known). batch: another batch size."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    shape = tuple(case.inputs) if batch is None else (batch, *case.inputs[1:])
    made = {"rng": rng, "dtype": dtype}
    if case.protocol == "layer":
        made["x"] = fill(case.values, shape, rng, dtype)
    elif case.protocol in ("loss", "combined"):
        made["x"] = fill(case.values, shape, rng, dtype)
        made["y"] = targets(case, rng, shape, dtype, made["x"])
    elif case.protocol == "accuracy":
        made["y"] = targets(case, rng, shape, dtype)
        made["x"] = near(case, made["y"], rng)
    return made


def gradients(made, layer, names):
    """The optimizer steps' gradients for layer's parameters: random, a quarter of them zero
    (0 / (sqrt(0) + eps) and friends), one step 1000 times larger."""
    if "steps" not in made:
        rng = made["rng"]
        steps = []
        for step in range(OPTIMIZER_STEPS):
            grads = []
            for name in names:
                g = rng.standard_normal(getattr(layer, name).shape).astype(getattr(layer, name).dtype)
                g.reshape(-1)[::4] = 0
                grads.append(g * (1000 if step == 1 else 1))
            steps.append(grads)
        made["steps"] = steps
    return made["steps"]


# ---------------------------------------------------------------------------------------------
# Driving an object through its protocol


def forward(case, obj, x, training=True):
    if case.seeded:
        np.random.seed(SEED)
    obj.forward(x, training)


def exercise(case, obj, made, *, copies=True) -> dict:
    """One round of the case's protocol on obj with the data `made`; returns copies of the
    results, by name (the arrays themselves with copies=False)."""
    results = {}
    protocol = case.protocol
    if protocol == "layer":
        forward(case, obj, made["x"])
        results["output"] = obj.output
        if case.backward:
            if "d" not in made:
                made["d"] = made["rng"].standard_normal(np.shape(obj.output)).astype(made["dtype"])
            obj.backward(made["d"])
            results["dinputs"] = obj.dinputs
            for name in parameter_names(case, obj):
                results[f"d{name}"] = getattr(obj, f"d{name}")
        for name in buffer_names(case, obj):
            results[name] = getattr(obj, name)
    elif protocol == "loss":
        results["per_sample"] = obj.forward(made["x"], made["y"])
        results["mean"] = obj.calculate(made["x"], made["y"])
        obj.backward(made["x"], made["y"])
        results["dinputs"] = obj.dinputs
    elif protocol == "combined":
        results["loss"] = obj.forward(made["x"], made["y"])
        results["output"] = obj.output
        if "d" not in made:
            made["d"] = np.array(obj.output, copy=True)
        obj.backward(made["d"], made["y"])
        results["dinputs"] = obj.dinputs
    elif protocol == "accuracy":
        obj.init(made["y"])
        results["accuracy"] = obj.calculate(made["x"], made["y"])
        results["accumulated"] = obj.calculate_accumulated()
    elif protocol == "optimizer":
        optimizer, layer = obj
        names = ("weights", "biases")
        for grads in gradients(made, layer, names):
            for name, g in zip(names, grads):
                setattr(layer, f"d{name}", g.copy())
            optimizer.pre_update_params()
            optimizer.update_params(layer)
            optimizer.post_update_params()
        for name in (*names, *layer_state_names(case)):
            if hasattr(layer, name):
                results[name] = getattr(layer, name)
        results["iterations"] = optimizer.iterations
        results["current_learning_rate"] = optimizer.current_learning_rate
    else:
        raise AssertionError(f"{case.name}: nothing to exercise")
    if not copies:
        return results
    return {name: np.array(value, copy=True) if isinstance(value, np.ndarray) else value
            for name, value in results.items()}


def used(case, lib=fastnn, dtype=np.float32, *, layer_case=None):
    """(object, data): the case's object after one exercise (buffers, accumulators and optimizer
    state in place), with the data it was given."""
    if case.protocol == "optimizer":
        layer_case = layer_case or cases(trainable=True)[0]
        layer = build(layer_case, lib, dtype=dtype)
        obj = (build(case, lib), layer)
    else:
        obj = build(case, lib, dtype=dtype)
    made = data(case, dtype)
    if case.protocol is not None:
        exercise(case, obj, made)
    return obj, made


# ---------------------------------------------------------------------------------------------
# Comparing


def assert_close(got, want, rtol, dtype, what, atol=0):
    """Same shape (and float dtype); |got - want| <= eps * (rtol * (|want| + max |want|) + atol),
    NaN where want has NaN; rtol = atol = 0: bit-identical."""
    got_array, want_array = np.asarray(got), np.asarray(want)
    assert got_array.shape == want_array.shape, f"{what}: shape {got_array.shape} != {want_array.shape}"
    if isinstance(want, np.ndarray) and want.dtype.kind == "f":
        assert got_array.dtype == want_array.dtype, f"{what}: dtype {got_array.dtype} != {want_array.dtype}"
    if rtol == atol == 0:
        np.testing.assert_array_equal(got_array, want_array, err_msg=what)
        return
    a, b = got_array.astype(np.float64), want_array.astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN in other places"
    finite = np.isfinite(b)
    assert np.array_equal(a[~finite & ~np.isnan(b)], b[~finite & ~np.isnan(b)]), f"{what}: infinities differ"
    scale = float(np.max(np.abs(b[finite]))) if finite.any() else 0.0
    bound = eps(dtype) * (rtol * (np.abs(b[finite]) + scale) + atol)
    excess = np.abs(a[finite] - b[finite]) - bound
    assert not np.any(excess > 0), f"{what}: off by {np.max(excess):.3g} beyond {rtol} eps"


def assert_same_results(case, got, want, dtype):
    assert got.keys() == want.keys(), f"{case.label}: results {sorted(got)} != {sorted(want)}"
    for name in want:
        assert_close(got[name], want[name], case.rtol, dtype, f"{case.label} {name}", case.atol)


# ---------------------------------------------------------------------------------------------
# Finite differences: (objective, [(analytic gradient, array it is taken of, name)])


def gradient_problem(case, lib, obj, made):
    """The scalar objective f() of the case (layers: sum(output * G) plus the regularisation
    loss; losses: the mean loss) and the analytic gradients of f, after one backward."""
    x, protocol = made["x"], case.protocol
    if protocol == "layer":
        penalty = lib.Loss()
        trainable = bool(parameter_names(case, obj))
        forward(case, obj, x)
        G = made["rng"].standard_normal(np.shape(obj.output))

        def f():
            forward(case, obj, x)
            return float(np.sum(obj.output * G)) + (float(penalty.regularization_loss(obj)) if trainable else 0.0)

        f()
        obj.backward(G)
        wanted = [(obj.dinputs.copy(), x, "dinputs")]
        wanted += [(getattr(obj, f"d{name}").copy(), getattr(obj, name), f"d{name}")
                   for name in parameter_names(case, obj)]
        return f, wanted
    if protocol == "loss":
        def f():
            return obj.calculate(x, made["y"])

        obj.backward(x, made["y"])
        return f, [(obj.dinputs.copy(), x, "dinputs")]
    if protocol == "combined":
        def f():
            return obj.forward(x, made["y"])

        f()
        obj.backward(obj.output.copy(), made["y"])
        return f, [(obj.dinputs.copy(), x, "dinputs")]
    raise AssertionError(f"{case.name}: no gradient to check")


__all__ = ["CASES", "LIBS", "SEED", "assert_close", "assert_same_results", "buffer_names", "build", "cases", "data", "eps",
           "exercise", "fill", "forward", "gradient_problem", "layer_state_names", "optimizer_pair", "pair",
           "parameter_names", "randomize_parameters", "state_names", "targets", "used"]


# ---------------------------------------------------------------------------------------------
# Arrays as users hand them over


class _Subclass(np.ndarray):
    pass


def _packed_field(values):
    records = np.zeros(values.shape, dtype=[("tag", "u1"), ("value", "<f4")])
    records["value"] = values
    return records["value"]


def _unaligned(values):
    raw = bytearray(b"\0" + values.astype(np.float32).tobytes())
    return np.frombuffer(raw, dtype=np.float32, offset=1).reshape(values.shape)


def user_arrays(base):
    """The float64 values `base` in every form a user may hand them over: another dtype,
    non-contiguous, read-only, Fortran order, big-endian, a list, ints, bools, unaligned (a file
    read at an odd offset), a packed structured field, an ndarray subclass."""
    readonly = base.astype(np.float32)
    readonly.setflags(write=False)
    wide = np.repeat(base, 2, axis=-1)                      # every other column is `base`
    return {
        "float64": base.copy(),
        "strided": wide.astype(np.float32)[..., ::2],
        "transposed": np.ascontiguousarray(base.astype(np.float32).T).T,
        "fortran": np.asfortranarray(base.astype(np.float32)),
        "readonly": readonly,
        "bigendian32": base.astype(">f4"),
        "bigendian64": base.astype(">f8"),
        "list": base.tolist(),
        "int": (base * 4).astype(np.int64),
        "uint8": (np.abs(base) * 40).astype(np.uint8),
        "bool": base > 0,
        "unaligned": _unaligned(base),
        "packed_field": _packed_field(base),
        "subclass": base.astype(np.float32).view(_Subclass),
    }


USER_ARRAY_KINDS = list(user_arrays(np.zeros((2, 2))))


def kept_dtype(x):
    """What a parameter-free class computes in: float32/float64 ndarrays keep their precision (in
    native byte order), anything else becomes fastnn's default float32."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):
        return np.dtype(f"f{x.dtype.itemsize}")
    return np.dtype(np.float32)


__all__ += ["USER_ARRAY_KINDS", "kept_dtype", "user_arrays"]
