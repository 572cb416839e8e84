"""Model files (docs/file-format.md): the safe zip format, pickle only on request, atomic writes.

The round trip of every saveable class (bit-identical predictions, every attribute, float32 and
float64, the optimizer state, training resumed) is in tests/contract/test_round_trips.py; here:
untrained and loss-less models, Python and NumPy scalar types, the bytes of the file, training
resumed from a file matching an uninterrupted run exactly (log and history too), and hostile or
damaged files (pickle payloads, truncation, wrong shapes and dtypes, unknown classes, extra or
missing members, non-zip files, random corruption) refused with a clear ModelFileError (a
ValueError) before anything is built.
"""
import copy
import io
import json
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
from nnfs.datasets import spiral_data

import fastnn
from fastnn._core.spec import declared
from fastnn.io import ModelFileError

from cases import CASES, cases, ids
from contract.harness import build

from _models import assert_finalized, assert_same_model, rng_state_unchanged

pytestmark = pytest.mark.usefixtures("seeded")


def classifier(optimizer=None, dtype=None, dropout_mode="book", regularize=True):
    """Dense-ReLU-Dropout-Dense-Softmax with categorical cross-entropy; optimizer: an optimizer
    case (default: Adam with the case's hyper-parameters)."""
    model = fastnn.Model()
    l2 = 5e-4 if regularize else 0
    model.add(fastnn.Layer_Dense(2, 32, weight_regularizer_l1=1e-5 if regularize else 0,
                                 weight_regularizer_l2=l2, bias_regularizer_l2=l2, dtype=dtype))
    model.add(fastnn.Activation_ReLU())
    model.add(fastnn.Layer_Dropout(0.1, mode=dropout_mode))
    model.add(fastnn.Layer_Dense(32, 3, dtype=dtype))
    model.add(fastnn.Activation_Softmax())
    optimizer = optimizer or CASES["Optimizer_Adam"]
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=build(optimizer, seed=None),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    return model


@pytest.fixture
def data():
    X, y = spiral_data(100, 3)
    return X, y


@pytest.fixture
def trained(data):
    model = classifier()
    model.train(*data, epochs=3, batch_size=100, verbose=False)
    return model


@pytest.fixture
def saved(trained, tmp_path):
    path = tmp_path / "model.fastnn"
    trained.save(path)
    return path


def rewrite(source, target, *, edit_json=None, replace=None, drop=(), add=None, json_name="model.json"):
    """Copy a saved zip to target, changing it: edit_json(document) edits the description in place,
    replace/add map member names to bytes or arrays, drop removes members."""
    replace, add = dict(replace or {}), dict(add or {})
    with zipfile.ZipFile(source) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    if edit_json is not None:
        document = json.loads(members[json_name])
        edit_json(document)
        members[json_name] = json.dumps(document).encode()
    for name, value in {**replace, **add}.items():
        if isinstance(value, np.ndarray):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=value.dtype == object)
            value = buffer.getvalue()
        members[name] = value
    with zipfile.ZipFile(target, "w") as zf:
        for name, value in members.items():
            if name not in drop:
                zf.writestr(name, value)
    return target


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_of_an_untrained_model_and_of_one_without_loss(tmp_path):
    untrained = classifier()
    untrained.save(tmp_path / "untrained")
    loaded = fastnn.Model.load(tmp_path / "untrained")
    assert_same_model(untrained, loaded)
    assert not hasattr(loaded.layers[0], "weight_cache")          # state stays lazy, as the book's
    assert loaded.optimizer.iterations == 0

    bare = fastnn.Model()
    bare.add(fastnn.Layer_Dense(2, 4))
    bare.add(fastnn.Activation_Softmax())
    bare.save(tmp_path / "bare")                                   # not even finalized
    loaded = fastnn.Model.load(tmp_path / "bare")
    assert_finalized(loaded)
    assert "loss" not in vars(loaded) and "optimizer" not in vars(loaded)
    X = np.random.randn(5, 2)
    np.testing.assert_array_equal(loaded.predict(X), bare.predict(X) if "input_layer" in vars(bare)
                                  else (bare.finalize() or bare.predict(X)))


def test_hyper_parameters_keep_their_python_and_numpy_types(tmp_path):
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 3, weight_regularizer_l2=np.float32(1e-3), bias_regularizer_l1=1))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_SGD(learning_rate=1),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    model.save(tmp_path / "m")
    loaded = fastnn.Model.load(tmp_path / "m")
    assert type(loaded.layers[0].weight_regularizer_l2) is np.float32
    assert loaded.layers[0].weight_regularizer_l2 == np.float32(1e-3)
    assert type(loaded.layers[0].bias_regularizer_l1) is int
    assert type(loaded.optimizer.learning_rate) is int and type(loaded.optimizer.decay) is float
    assert_same_model(model, loaded)


def test_the_same_model_always_gives_the_same_bytes(trained, tmp_path):
    trained.save(tmp_path / "a")
    trained.save(tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_the_file_is_a_zip_of_a_json_description_and_npy_arrays(saved):
    with zipfile.ZipFile(saved) as zf:
        names = zf.namelist()
        document = json.loads(zf.read("model.json"))
        weights = np.lib.format.read_array(io.BytesIO(zf.read("arrays/layers/0/weights.npy")))
    assert names[0] == "model.json" and all(n.endswith(".npy") for n in names[1:])
    assert document["format"] == "fastnn.model" and document["version"] == 1
    assert [layer["class"] for layer in document["layers"]] == [
        "Layer_Dense", "Activation_ReLU", "Layer_Dropout", "Layer_Dense", "Activation_Softmax"]
    assert document["layers"][2]["attributes"] == {"rate": 0.9, "mode": "book"}
    assert document["layers"][0]["dims"] == {"n_inputs": 2, "n_neurons": 32}
    assert document["layers"][0]["arrays"]["weight_cache"] == {
        "member": "arrays/layers/0/weight_cache.npy", "dtype": "float32", "shape": [2, 32]}
    assert document["optimizer"]["class"] == "Optimizer_Adam"
    assert document["optimizer"]["attributes"]["iterations"] == 9
    assert document["loss"] == {"class": "Loss_CategoricalCrossentropy", "attributes": {}}
    assert document["accuracy"] == {"class": "Accuracy_Categorical", "attributes": {"binary": False}}
    assert weights.shape == (2, 32) and weights.dtype == np.float32


def test_loading_calls_no_constructor(saved, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("a constructor ran during load")

    for spec in declared(saveable=True):
        # finalize() itself builds the combined softmax/CCE object, which makes these two.
        if spec.cls not in (fastnn.Activation_Softmax, fastnn.Loss_CategoricalCrossentropy):
            monkeypatch.setattr(spec.cls, "__init__", refuse)
    model = fastnn.Model.load(saved)
    assert len(model.layers) == 5


# --- resuming training ----------------------------------------------------------------------------


@pytest.mark.parametrize("dropout_mode", ["book", "fast"])
@pytest.mark.parametrize("optimizer", cases("optimizer", setups=True), ids=ids(cases("optimizer", setups=True)))
def test_training_resumed_from_a_file_matches_an_uninterrupted_run(optimizer, dropout_mode, data, tmp_path,
                                                                   capsys):
    """RNG use: the model draws from NumPy's global RNG only in Layer_Dense constructors (the
    loader runs none) and in every training forward pass through Dropout (book: one binomial mask;
    fast: one random_sample seeding the kernel's mask); the data checks, evaluation and prediction
    draw nothing. So an uninterrupted 5-epoch run equals 2 epochs, save, load, and 3 more epochs
    when the global RNG is in the same state at the split: we carry it over with get/set_state."""
    X, y = data
    validation = spiral_data(20, 3)
    np.random.seed(11)
    whole = classifier(optimizer, dropout_mode=dropout_mode)
    capsys.readouterr()
    whole_history = whole.train(X, y, epochs=5, batch_size=64, print_every=2, validation_data=validation)
    whole_log = capsys.readouterr().out.split("epoch: ")[1:]

    np.random.seed(11)
    first = classifier(optimizer, dropout_mode=dropout_mode)
    first_history = first.train(X, y, epochs=2, batch_size=64, print_every=2, validation_data=validation)
    first_log = capsys.readouterr().out.split("epoch: ")[1:]
    state = np.random.get_state()
    first.save(tmp_path / "checkpoint")
    del first
    np.random.seed(12345)                       # anything may happen to the RNG in between
    resumed = fastnn.Model.load(tmp_path / "checkpoint")
    np.random.set_state(state)
    resumed_history = resumed.train(X, y, epochs=3, batch_size=64, print_every=2, validation_data=validation)
    resumed_log = capsys.readouterr().out.split("epoch: ")[1:]

    assert_same_model(whole, resumed)                   # weights and optimizer state, bit for bit
    assert resumed.optimizer.iterations == whole.optimizer.iterations == 5 * 5
    strip = [entry.split("\n", 1)[1] for entry in whole_log]   # the log without the epoch numbers
    assert [entry.split("\n", 1)[1] for entry in first_log + resumed_log] == strip
    for name in ("loss", "accuracy", "learning_rate", "val_loss", "val_accuracy"):
        assert first_history[name] + resumed_history[name] == whole_history[name]
    np.testing.assert_array_equal(resumed.predict(X), whole.predict(X))


def test_the_book_dropout_mask_consumption_is_what_the_resume_test_assumes(data):
    """One np.random.binomial(1, keep, shape) per training step through a book-mode Dropout."""
    X, y = data
    model = classifier(dropout_mode="book")
    np.random.seed(3)
    model.train(X, y, epochs=2, batch_size=150, verbose=False)     # 4 steps
    after_training = np.random.get_state()
    np.random.seed(3)
    for _ in range(4):
        np.random.binomial(1, 0.9, size=(150, 32))
    assert rng_state_unchanged(after_training)


# --- atomic writes --------------------------------------------------------------------------------


def test_an_interrupted_save_leaves_the_old_file_and_no_temporary_file(trained, data, tmp_path, monkeypatch):
    path = tmp_path / "model.fastnn"
    trained.save(path)
    old_bytes = path.read_bytes()
    original = np.lib.format.write_array
    calls = []

    def failing(fp, array, *args, **kwargs):
        calls.append(array.shape)
        if len(calls) == 3:
            fp.write(b"\x93NUMPY partial")
            raise OSError("disk full (simulated)")
        return original(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing)
    trained.train(*data, epochs=1, verbose=False)                 # the new save would differ
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    assert len(calls) == 3
    assert os.listdir(tmp_path) == ["model.fastnn"]
    assert path.read_bytes() == old_bytes
    fastnn.Model.load(path)
    with pytest.raises(OSError, match="disk full"):               # a first save leaves nothing
        calls.clear()
        trained.save(tmp_path / "new.fastnn")
    assert os.listdir(tmp_path) == ["model.fastnn"]


def test_an_interrupt_during_a_pickle_save_cleans_up_too(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.pkl"
    trained.save(path, format="pickle")
    old_bytes = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trained.save(path, format="pickle")
    with pytest.raises(KeyboardInterrupt):
        trained.save_parameters(tmp_path / "p")
    assert os.listdir(tmp_path) == ["model.pkl"] and path.read_bytes() == old_bytes


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits (Windows has a read-only flag only)")
def test_saving_keeps_an_existing_files_permissions(trained, tmp_path):
    path = tmp_path / "m"
    trained.save(path)
    os.chmod(path, 0o640)
    trained.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# --- pickle: only on request ----------------------------------------------------------------------


class Payload:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", ["model.pkl", "model.fastnn", "model.zip"])
def test_a_pickle_payload_is_refused_and_runs_nothing(protocol, name, tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(Payload(target), protocol=protocol))
    with pytest.raises(ModelFileError, match="is a pickle file") as info:
        fastnn.Model.load(path)
    message = str(info.value)
    assert "can execute arbitrary code" in message and "allow_pickle=True" in message
    model = classifier()
    before = [w.copy() for w, _ in model.get_parameters()]
    refused = r"is a pickle file.*arbitrary code.*load_parameters\(path, allow_pickle=True\)"
    with pytest.raises(ModelFileError, match=refused):
        model.load_parameters(path)
    assert not target.exists()
    for (w, _), w0 in zip(model.get_parameters(), before):
        np.testing.assert_array_equal(w, w0)


def test_pickle_round_trip_on_request(trained, data, tmp_path):
    path = tmp_path / "book.model"
    trained.save(path, format="pickle")
    assert path.read_bytes()[:1] == b"\x80"
    loaded = fastnn.Model.load(path, allow_pickle=True)
    # The book's save: batch data and gradients are gone, optimizer state and masks stay.
    for layer in loaded.layers:
        assert not {"inputs", "output", "dinputs", "dweights", "dbiases"} & set(vars(layer))
    assert "binary_mask" in vars(loaded.layers[2]) and "weight_cache" in vars(loaded.layers[0])
    assert "output" not in vars(loaded.input_layer)
    assert loaded.loss.accumulated_count == 0 and loaded.accuracy.accumulated_count == 0
    assert trained.loss.accumulated_count > 0                     # the model itself is untouched
    assert "inputs" in vars(trained.layers[0])
    assert_same_model(trained, loaded)
    np.testing.assert_array_equal(loaded.predict(data[0]), trained.predict(data[0]))
    # allow_pickle=True still reads the safe format.
    trained.save(tmp_path / "safe")
    assert_same_model(trained, fastnn.Model.load(tmp_path / "safe", allow_pickle=True))


def test_parameters_pickle_round_trip_on_request(trained, data, tmp_path):
    path = tmp_path / "params.pkl"
    trained.save_parameters(path, format="pickle")
    with open(path, "rb") as f:
        assert isinstance(pickle.load(f), list)             # the book's format: [(weights, biases), ...]
    fresh = classifier()
    with pytest.raises(ModelFileError, match="pickle"):
        fresh.load_parameters(path)
    fresh.load_parameters(path, allow_pickle=True)
    np.testing.assert_array_equal(fresh.predict(data[0]), trained.predict(data[0]))


def test_a_pickle_of_something_else_is_refused_even_when_allowed(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelFileError, match="holds a pickled list, not a fastnn.Model"):
        fastnn.Model.load(path, allow_pickle=True)


def test_arguments_are_checked(trained, tmp_path):
    with pytest.raises(ValueError, match="format must be 'fastnn'.*or 'pickle'"):
        trained.save(tmp_path / "m", format="npz")
    with pytest.raises(ValueError, match="format must be"):
        trained.save_parameters(tmp_path / "m", format="json")
    trained.save(tmp_path / "m")
    with pytest.raises(TypeError, match="allow_pickle must be True or False"):
        fastnn.Model.load(tmp_path / "m", allow_pickle="yes")
    with pytest.raises(FileNotFoundError):
        fastnn.Model.load(tmp_path / "missing")
    assert os.listdir(tmp_path) == ["m"]


# --- damaged and hostile files ----------------------------------------------------------------------


def load_error(path, match=None):
    with pytest.raises(ModelFileError, match=match) as info:
        fastnn.Model.load(path)
    assert isinstance(info.value, ValueError)
    return str(info.value)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_refused(saved, tmp_path, keep):
    data = saved.read_bytes()
    path = tmp_path / "truncated"
    path.write_bytes(data[:int(len(data) * keep)])
    load_error(path)


def test_a_file_cut_by_one_byte_is_refused(saved, tmp_path):
    path = tmp_path / "cut"
    path.write_bytes(saved.read_bytes()[:-1])
    load_error(path, "damaged or truncated")


def test_every_truncation_and_every_byte_corruption_is_refused_or_harmless(tmp_path, data):
    """Cut a small model file at every length, and change single bytes at random: loading either
    raises ModelFileError or (a byte nothing reads, such as a date) gives the same model."""
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 3))
    model.add(fastnn.Activation_Softmax())
    model.set(loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
              accuracy=fastnn.Accuracy_Categorical())
    model.finalize()
    model.train(*data, epochs=1, verbose=False)
    original = tmp_path / "m"
    model.save(original)
    data_bytes = original.read_bytes()
    expected = model.predict(data[0])
    path = tmp_path / "damaged"
    for length in range(0, len(data_bytes), 7):
        path.write_bytes(data_bytes[:length])
        with pytest.raises(ModelFileError):
            fastnn.Model.load(path)
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "same": 0}
    for position in rng.integers(0, len(data_bytes), 400):
        damaged = bytearray(data_bytes)
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(damaged))
        try:
            loaded = fastnn.Model.load(path)
        except ModelFileError:
            outcomes["refused"] += 1
            continue
        assert_same_model(model, loaded)
        np.testing.assert_array_equal(loaded.predict(data[0]), expected)
        outcomes["same"] += 1
    assert outcomes["refused"] > 200


def test_an_empty_file_and_other_non_model_files_are_refused(tmp_path, trained):
    for content in (b"", b"hello, world\n", bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n....", b"PK"):
        path = tmp_path / "not-a-model"
        path.write_bytes(content)
        load_error(path, "not a fastnn model file")
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.zeros(3))
    load_error(npz, "no model.json member")


def test_an_array_of_the_wrong_shape_is_refused(saved, tmp_path):
    member = "arrays/layers/0/weights.npy"
    # The npy header disagrees with the description.
    path = rewrite(saved, tmp_path / "a", replace={member: np.zeros((3, 32), np.float32)})
    load_error(path, r"'arrays/layers/0/weights.npy' holds an array of shape \(3, 32\), "
                     r"the description promises \(2, 32\)")
    # The description is changed to agree with the wrong array: the layer's sizes still disagree.
    def shape(document):
        document["layers"][0]["arrays"]["weights"]["shape"] = [3, 32]
    path = rewrite(saved, tmp_path / "b", replace={member: np.zeros((3, 32), np.float32)}, edit_json=shape)
    load_error(path, r"layers\[0\].arrays.weights.shape must be \[2, 32\], got \[3, 32\]")
    # ... and the sizes too: now the next Dense layer does not fit.
    def sizes(document):
        shape(document)
        document["layers"][0]["dims"]["n_inputs"] = 3
        for name in ("weight_momentums", "weight_cache"):
            document["layers"][0]["arrays"][name]["shape"] = [3, 32]
        document["layers"][3]["dims"]["n_inputs"] = 31
    path = rewrite(saved, tmp_path / "c", edit_json=sizes)
    load_error(path, r"layers\[3\].arrays.weights.shape must be \[31, 3\]")


@pytest.mark.parametrize("name, array, message", [
    ("biases", np.zeros((32,), np.float32), r"holds an array of shape \(32,\)"),
    ("biases", np.zeros((1, 33), np.float32), r"shape \(1, 33\)"),
    ("weight_cache", np.zeros((32, 2), np.float32), r"shape \(32, 2\)"),
    ("bias_momentums", np.zeros((1, 1), np.float32), r"shape \(1, 1\)"),
])
def test_parameters_and_optimizer_state_must_have_their_shapes(saved, tmp_path, name, array, message):
    path = rewrite(saved, tmp_path / "x", replace={f"arrays/layers/0/{name}.npy": array})
    load_error(path, message)


def test_consecutive_dense_layers_must_fit(saved, tmp_path):
    def resize(document):
        layer = document["layers"][3]
        layer["dims"]["n_inputs"] = 31
        for entry in layer["arrays"].values():
            if entry["shape"][0] == 32:
                entry["shape"][0] = 31
    replace = {f"arrays/layers/3/{n}.npy": np.zeros((31, 3), np.float32)
               for n in ("weights", "weight_momentums", "weight_cache")}
    path = rewrite(saved, tmp_path / "x", edit_json=resize, replace=replace)
    load_error(path, r"layers\[3\] \(Layer_Dense\) takes 31 input features but layers\[0\] gives 32")


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 32), np.float64), r"holds <f8 data, the description promises float32"),
    (np.zeros((2, 32), np.int32), r"holds <i4 data"),
    (np.zeros((2, 32), ">f4"), r"holds >f4 data"),
    (np.empty((2, 32), object), r"holds \|O data"),
    (np.zeros((2, 32), np.float16), r"holds <f2 data"),
])
def test_an_array_of_the_wrong_dtype_is_refused(saved, tmp_path, array, message):
    if array.dtype == object:
        array[:] = Payload(tmp_path / "pwned")     # a pickle inside the .npy: never unpickled
    path = rewrite(saved, tmp_path / "x", replace={"arrays/layers/0/weights.npy": array})
    load_error(path, message)
    assert not (tmp_path / "pwned").exists()


def test_a_declared_dtype_other_than_float32_or_float64_is_refused(saved, tmp_path):
    def retype(document):
        document["layers"][0]["dtype"] = "int64"
    load_error(rewrite(saved, tmp_path / "x", edit_json=retype), "dtype must be 'float32' or 'float64', got 'int64'")

    def mixed(document):
        document["layers"][0]["arrays"]["biases"]["dtype"] = "float64"
    load_error(rewrite(saved, tmp_path / "y", edit_json=mixed),
               r"arrays.biases.dtype must be 'float32' \(the layer's dtype\)")


@pytest.mark.parametrize("name", ["Layer_Evil", "posix.system", "builtins.eval", "Model", "Layer_Input",
                                  "Activation_Softmax_Loss_CategoricalCrossentropy", "Loss", "__import__"])
def test_an_unknown_class_is_refused_by_name(saved, tmp_path, name):
    def evil(document):
        document["layers"][1]["class"] = name
    message = load_error(rewrite(saved, tmp_path / "x", edit_json=evil))
    assert f"layers[1].class is {name!r}, which is not a class the safe format allows" in message


def test_a_class_in_the_wrong_slot_is_refused(saved, tmp_path):
    def swap(document):
        document["loss"] = {"class": "Activation_ReLU", "attributes": {}}
    load_error(rewrite(saved, tmp_path / "x", edit_json=swap), "loss.class is 'Activation_ReLU', a layer, where a loss")


WRONG_L2 = "weight_regularizer_l2 must be a real number"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["layers"][2]["attributes"].update(rate=1.5), r"attributes.rate must be in \(0, 1\]"),
    (lambda d: d["layers"][2]["attributes"].update(rate=0), r"attributes.rate must be in \(0, 1\]"),
    (lambda d: d["layers"][2]["attributes"].update(mode="evil"), "mode must be one of 'fast', 'book'"),
    (lambda d: d["layers"][0]["attributes"].update(weight_regularizer_l2=-1),
     r"weight_regularizer_l2 must be in \[0, inf\)"),
    (lambda d: d["layers"][0]["attributes"].update(weight_regularizer_l2="0.1"), WRONG_L2),
    (lambda d: d["layers"][0]["attributes"].update(weight_regularizer_l2=True), WRONG_L2),
    (lambda d: d["layers"][0]["attributes"].update(weight_regularizer_l2=1e999), "JSON holds Infinity"),
    (lambda d: d["layers"][0]["attributes"].pop("bias_regularizer_l1"), "attributes lacks 'bias_regularizer_l1'"),
    (lambda d: d["layers"][0]["attributes"].update(extra=1), "attributes has unexpected 'extra'"),
    (lambda d: d["layers"][0]["dims"].update(n_neurons=0), r"dims.n_neurons must be a positive int"),
    (lambda d: d["optimizer"]["attributes"].update(iterations=-1), "iterations must be a non-negative int"),
    (lambda d: d["optimizer"]["attributes"].update(iterations=1.5), "iterations must be a non-negative int"),
    (lambda d: d["optimizer"]["attributes"].update(beta_1=1.0), r"beta_1 must be in \[0, 1\)"),
    (lambda d: d["optimizer"]["attributes"].update(learning_rate=0), r"learning_rate must be in \(0, inf\)"),
    (lambda d: d["optimizer"]["attributes"].update(epsilon={"numpy": "object", "value": 1}), "numpy must be one of"),
    (lambda d: d["optimizer"]["attributes"].update(epsilon={"numpy": "float32", "value": 0.1}),
     "not exactly representable as float32"),
    (lambda d: d["optimizer"]["attributes"].update(epsilon=[1e-7]), "must be a number, bool, string, null"),
    (lambda d: d["accuracy"]["attributes"].update(binary=1), "binary must be True or False"),
    (lambda d: d.update(version=2), "format version 2 is not supported.*newer fastnn"),
    (lambda d: d.update(version="1"), "version must be an int"),
    (lambda d: d.update(format="keras"), "format is 'keras', expected 'fastnn.model'"),
    (lambda d: d.update(layers=[]), "layers must be a non-empty list"),
    (lambda d: d.update(extra={}), "model.json has unexpected 'extra'"),
    (lambda d: d.pop("optimizer"), "model.json lacks 'optimizer'"),
    (lambda d: d["layers"][0]["arrays"]["weights"].update(member="arrays/layers/3/weights.npy"),
     "arrays.weights.member must be 'arrays/layers/0/weights.npy'"),
    (lambda d: d["layers"][0]["arrays"].pop("bias_cache"), "has 'weight_cache' without 'bias_cache'"),
    (lambda d: d["layers"][0]["arrays"].pop("weights"), "arrays lacks 'weights'"),
    (lambda d: d["layers"][0]["arrays"].update(binary_mask=d["layers"][0]["arrays"]["weights"]),
     "arrays has unexpected 'binary_mask'"),
    (lambda d: d["layers"][1].update(arrays={}), r"layers\[1\] has unexpected 'arrays'"),
])
def test_altered_descriptions_are_refused(saved, tmp_path, edit, message):
    load_error(rewrite(saved, tmp_path / "x", edit_json=edit), message)


def test_json_that_does_not_parse_or_repeats_keys_is_refused(saved, tmp_path):
    load_error(rewrite(saved, tmp_path / "a", replace={"model.json": b"{not json"}), "does not parse")
    load_error(rewrite(saved, tmp_path / "b", replace={"model.json": b"\xff\xfe"}), "does not parse")
    load_error(rewrite(saved, tmp_path / "c", replace={"model.json": b'{"format": 1, "format": 2}'}),
               "repeats the key 'format'")
    load_error(rewrite(saved, tmp_path / "d", replace={"model.json": b"[]"}), "model.json must be a JSON object")
    load_error(rewrite(saved, tmp_path / "e", replace={"model.json": b"[" * 100000}), "does not parse")


def test_extra_missing_and_duplicate_members_are_refused(saved, tmp_path):
    load_error(rewrite(saved, tmp_path / "a", add={"arrays/layers/0/extra.npy": np.zeros(1, np.float32)}),
               "unexpected member 'arrays/layers/0/extra.npy'")
    load_error(rewrite(saved, tmp_path / "b", add={"README": b"hello"}), "unexpected member 'README'")
    load_error(rewrite(saved, tmp_path / "c", drop=("arrays/layers/3/bias_cache.npy",)),
               "member 'arrays/layers/3/bias_cache.npy' is missing")
    load_error(rewrite(saved, tmp_path / "d", drop=("model.json",)), "no model.json member")
    duplicate = tmp_path / "e"
    rewrite(saved, duplicate)
    with zipfile.ZipFile(duplicate, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("arrays/layers/0/weights.npy", b"")
    load_error(duplicate, "several members named 'arrays/layers/0/weights.npy'")


def test_a_member_with_trailing_or_missing_bytes_is_refused(saved, tmp_path):
    with zipfile.ZipFile(saved) as zf:
        weights = zf.read("arrays/layers/0/weights.npy")
    load_error(rewrite(saved, tmp_path / "a", replace={"arrays/layers/0/weights.npy": weights + b"\0\0\0\0"}),
               "truncated or altered")
    load_error(rewrite(saved, tmp_path / "b", replace={"arrays/layers/0/weights.npy": weights[:-4]}),
               "truncated or altered")
    load_error(rewrite(saved, tmp_path / "c", replace={"arrays/layers/0/weights.npy": b"not an npy file"}),
               "not a valid .npy array")


def test_a_fortran_ordered_array_is_refused(saved, tmp_path):
    array = np.asfortranarray(np.zeros((2, 32), np.float32))
    load_error(rewrite(saved, tmp_path / "x", replace={"arrays/layers/0/weights.npy": array}), "Fortran order")


def test_a_member_whose_data_changed_fails_its_checksum(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("arrays/layers/0/weights.npy")
    position = info.header_offset + 30 + len(info.filename) + 128 + 5    # inside the array data
    data[position] ^= 0xFF
    path = tmp_path / "x"
    path.write_bytes(bytes(data))
    load_error(path, "damaged or truncated.*(CRC|Bad)")


# --- saving what the format cannot hold ----------------------------------------------------------------


class MyLayer:
    def forward(self, inputs, training=True):
        self.output = inputs

    def backward(self, dvalues):
        self.dinputs = dvalues


class MyReLU(fastnn.Activation_ReLU):
    pass


@pytest.mark.parametrize("layer", [MyLayer(), MyReLU()], ids=["own class", "subclass"])
def test_a_model_with_a_foreign_layer_is_not_saved_in_the_safe_format(layer, tmp_path):
    model = fastnn.Model()
    model.add(fastnn.Layer_Dense(2, 3))
    model.add(layer)
    with pytest.raises(ValueError, match=f"layers\\[1\\] is a .*{type(layer).__name__}, which the safe format "
                                         "cannot describe.*format='pickle'"):
        model.save(tmp_path / "m")
    assert os.listdir(tmp_path) == []
    model.save(tmp_path / "m", format="pickle")           # the book's format takes anything picklable


def test_a_damaged_layer_is_not_saved(trained, tmp_path):
    trained.layers[0].weight_cache = trained.layers[0].weight_cache[:1]
    with pytest.raises(ValueError, match=r"layers\[0\].weight_cache must be a float32 array of shape \(2, 32\)"):
        trained.save(tmp_path / "m")
    trained.layers[0].__dict__.pop("weight_cache")
    with pytest.raises(ValueError, match="has 'bias_cache' without 'weight_cache'"):
        trained.save(tmp_path / "m")
    trained.layers[2].rate = 2.0
    with pytest.raises(ValueError, match="rate must be"):
        trained.save(tmp_path / "m")
    with pytest.raises(ValueError, match="the model has no layers"):
        fastnn.Model().save(tmp_path / "m")
    assert os.listdir(tmp_path) == []


# --- parameters files -----------------------------------------------------------------------------


def test_parameters_round_trip_into_a_model_built_alike(trained, data, tmp_path):
    path = tmp_path / "params"
    trained.save_parameters(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["parameters.json", "arrays/layers/0/weights.npy", "arrays/layers/0/biases.npy",
                                 "arrays/layers/1/weights.npy", "arrays/layers/1/biases.npy"]
        assert json.loads(zf.read("parameters.json"))["format"] == "fastnn.parameters"
    np.random.seed(99)
    fresh = classifier(optimizer=CASES["Optimizer_SGD"])
    fresh.load_parameters(path)
    np.testing.assert_array_equal(fresh.predict(data[0]), trained.predict(data[0]))
    for (w, b), (w0, b0) in zip(fresh.get_parameters(), trained.get_parameters()):
        assert w.dtype == w0.dtype and w.flags.c_contiguous and w.flags.writeable
        assert not np.shares_memory(w, w0)
    fresh.train(*data, epochs=1, verbose=False)              # the loaded arrays are usable parameters


def test_parameters_must_fit_the_model(trained, tmp_path):
    path = tmp_path / "params"
    trained.save_parameters(path)

    def other(hidden=32, dtype=None, layers=2):
        model = fastnn.Model()
        model.add(fastnn.Layer_Dense(2, hidden, dtype=dtype))
        model.add(fastnn.Activation_ReLU())
        if layers == 2:
            model.add(fastnn.Layer_Dense(hidden, 3, dtype=dtype))
        model.add(fastnn.Activation_Softmax())
        model.finalize()
        return model

    for model, message in ((other(hidden=16), r"have shape \(2, 32\), the model's trainable layer 0 .* has \(2, 16\)"),
                           (other(dtype=np.float64), "are 'float32', the model's layer 0 is float64"),
                           (other(layers=1), "parameters of 2 trainable layers, the model has 1")):
        before = [(w.copy(), b.copy()) for w, b in model.get_parameters()]
        with pytest.raises(ModelFileError, match=message):
            model.load_parameters(path)
        for (w, b), (w0, b0) in zip(model.get_parameters(), before):
            np.testing.assert_array_equal(w, w0)
            np.testing.assert_array_equal(b, b0)
    unfinalized = fastnn.Model()
    unfinalized.add(fastnn.Layer_Dense(2, 32))
    with pytest.raises(ValueError, match=r"call model.finalize\(\) first"):
        unfinalized.load_parameters(path)
    with pytest.raises(ValueError, match=r"call model.finalize\(\) first"):
        unfinalized.save_parameters(tmp_path / "p2")


def test_model_and_parameters_files_are_told_apart(trained, tmp_path):
    trained.save(tmp_path / "model")
    trained.save_parameters(tmp_path / "params")
    with pytest.raises(ModelFileError, match=r"this is a whole-model file .* fastnn.Model.load\(path\)"):
        classifier().load_parameters(tmp_path / "model")
    load_error(tmp_path / "params", r"this is a parameters file .* model.load_parameters\(path\)")


def test_damaged_parameters_files_are_refused(trained, tmp_path):
    path = tmp_path / "params"
    trained.save_parameters(path)
    model = classifier()
    cases = {
        "a": dict(replace={"arrays/layers/1/biases.npy": np.zeros((1, 4), np.float32)}),
        "b": dict(edit_json=lambda d: d["layers"][0].update({"class": "Layer_Conv2D"})),
        "c": dict(drop=("arrays/layers/1/weights.npy",)),
        "d": dict(add={"x.npy": np.zeros(1)}),
        "e": dict(replace={"arrays/layers/0/weights.npy": np.zeros((2, 32), np.float64)}),
    }
    messages = {"a": r"shape \(1, 4\)", "b": "parameters of a 'Layer_Conv2D'", "c": "is missing",
                "d": "unexpected member 'x.npy'", "e": "<f8 data"}
    for key, change in cases.items():
        damaged = rewrite(path, tmp_path / key, json_name="parameters.json", **change)
        with pytest.raises(ModelFileError, match=messages[key]):
            model.load_parameters(damaged)
    (tmp_path / "cut").write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError):
        model.load_parameters(tmp_path / "cut")


def test_model_copies_still_work_after_a_round_trip(saved, data):
    loaded = fastnn.Model.load(saved)
    clone = copy.deepcopy(loaded)
    np.testing.assert_array_equal(clone.predict(data[0]), loaded.predict(data[0]))
    pickle.loads(pickle.dumps(loaded))


def json_paths(node, path=()):
    """Every (container path, key) in a JSON document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield path, key
        yield from json_paths(value, path + (key,))


ODD_VALUES = [None, True, False, -1, 0, 1, 1.5, 10 ** 400, -1e300, "x", "float32", [], [1, 2], {},
              {"numpy": "float32", "value": 1.0}, {"numpy": ["float32"], "value": 1}]


@pytest.mark.parametrize("kind", ["model", "parameters"])
def test_any_altered_json_value_gives_a_specific_error_or_a_valid_model(kind, trained, tmp_path, data):
    """Replace every value of the description (and delete every key) in turn with odd JSON values:
    loading refuses with a message from the checks (never a crash, never the catch-all 'damaged'
    message, which would mean a check let something through to code that then failed), or the
    change was a valid one and the model loads and predicts."""
    saved, json_name = tmp_path / kind, f"{kind}.json"
    if kind == "model":
        trained.save(saved)
        load = fastnn.Model.load
    else:
        trained.save_parameters(saved)

        def load(path):
            model = classifier()
            model.load_parameters(path)
            return model
    with zipfile.ZipFile(saved) as zf:
        document = json.loads(zf.read(json_name))
    path = tmp_path / "altered"
    outcomes = {"refused": 0, "loaded": 0}
    for container_path, key in json_paths(document):
        for value in [*ODD_VALUES, "DELETE"]:
            altered = copy.deepcopy(document)
            container = altered
            for step in container_path:
                container = container[step]
            if value == "DELETE":
                if isinstance(container, list):
                    continue
                del container[key]
            else:
                container[key] = value
            rewrite(saved, path, json_name=json_name,
                    edit_json=lambda d, altered=altered: (d.clear(), d.update(altered)))
            try:
                model = load(path)
            except ModelFileError as exc:
                assert "damaged" not in str(exc), (container_path, key, value, str(exc))
                outcomes["refused"] += 1
                continue
            model.predict(data[0])
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 100
