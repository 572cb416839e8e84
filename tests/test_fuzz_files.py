"""Fuzzing of files and of threads: mutated valid model files and data-set files, and random mixes
of calls on one model from several threads.

Every mutated file either loads (and then predicts finite values, or is bit-identical when the
mutation changed nothing that matters) or is refused with a ``ValueError`` (``ModelFileError`` is
one); never another exception, a crash, or a long stall. The default run holds a few hundred cases;
``-m slow`` runs the full campaign (about 10,000 cases).
"""
from __future__ import annotations

import gzip
import io
import json
import time
import threading
import zipfile

import numpy as np
import pytest

import fastnn
import _book
from fastnn.datasets._idx import read_idx, write_idx

SMALL, LARGE = 150, 4000
SLOW_SECONDS = 2.0   # the most one refusal or load may take


def _model():
    np.random.seed(4)
    model = _book.build_model(fastnn, [
        fastnn.Layer_Conv2D(1, 2, 3, padding=1), fastnn.Layer_MaxPool2D(2), fastnn.Layer_Flatten(),
        fastnn.Layer_Dense(2 * 3 * 3, 4), fastnn.Activation_ReLU(), fastnn.Layer_Dropout(0.1),
        fastnn.Layer_Dense(4, 3), fastnn.Activation_Softmax()],
        loss=fastnn.Loss_CategoricalCrossentropy(), optimizer=fastnn.Optimizer_Adam(),
        accuracy=fastnn.Accuracy_Categorical())
    X = np.random.default_rng(0).standard_normal((8, 1, 6, 6)).astype(np.float32)
    y = np.arange(8) % 3
    model.train(X, y, epochs=2, verbose=False)
    return model, X


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, X = _model()
    path = tmp_path_factory.mktemp("fuzz") / "model"
    model.save(path)
    return path.read_bytes(), model.predict(X), X


_VALUES = [0, -1, 1, 2 ** 31, 2 ** 70, 10 ** 400, 1.5, -0.0, 1e308, "x", "", None, True, [], {}, [1, 2],
           {"numpy": "float32", "value": 1}, "float16", "weights", "Layer_Dense", "arrays/layers/0/weights.npy"]


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, path + (i,))
    yield path


def _set(node, path, value):
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict) and value is _DELETE:
        del node[path[-1]]
    elif value is not _DELETE:
        node[path[-1]] = value


_DELETE = object()


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def _zip(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return out.getvalue()


def _mutate_model_file(data: bytes, rng) -> bytes:
    kind = rng.integers(7)
    if kind == 0:      # flip bytes anywhere
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 8))):
            buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
        return bytes(buf)
    if kind == 1:      # truncate
        return data[:int(rng.integers(len(data)))]
    if kind == 2:      # insert junk
        at = int(rng.integers(len(data)))
        return data[:at] + rng.bytes(int(rng.integers(1, 64))) + data[at:]
    members = _members(data)
    if kind == 3:      # change one JSON value (or delete a key)
        document = json.loads(members[0][1])
        paths = [p for p in _leaves(document) if p]
        path = paths[int(rng.integers(len(paths)))]
        value = _DELETE if rng.random() < 0.15 else _VALUES[int(rng.integers(len(_VALUES)))]
        _set(document, path, value)
        members[0] = (members[0][0], json.dumps(document).encode())
        return _zip(members)
    if kind == 4:      # drop, duplicate or rename a member
        i = int(rng.integers(len(members)))
        choice = rng.integers(3)
        if choice == 0:
            del members[i]
        elif choice == 1:
            members.append(members[i])
        else:
            members[i] = (members[i][0] + "x", members[i][1])
        with pytest.warns(UserWarning) if choice == 1 else _nothing():
            return _zip(members)
    if kind == 5:      # an array member replaced by another array of another shape or dtype
        i = int(rng.integers(1, len(members)))
        array = rng.standard_normal(tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 4)))))
        out = io.BytesIO()
        np.lib.format.write_array(out, array.astype(rng.choice(["<f4", "<f8", ">f4", "<i4"])))
        members[i] = (members[i][0], out.getvalue())
        return _zip(members)
    return _zip(members, zipfile.ZIP_DEFLATED)   # deflated: still a valid file


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _load_mutated(path, original_prediction, X):
    started = time.perf_counter()
    try:
        model = fastnn.Model.load(path)
    except ValueError:
        outcome = "refused"
    else:
        prediction = model.predict(X)
        assert np.all(np.isfinite(prediction))
        outcome = "identical" if np.array_equal(prediction, original_prediction) else "loaded"
    assert time.perf_counter() - started < SLOW_SECONDS
    return outcome


def _campaign_model_files(saved, tmp_path, cases, seed):
    data, prediction, X = saved
    rng = np.random.default_rng(seed)
    outcomes = {}
    path = tmp_path / "mutated"
    for _ in range(cases):
        path.write_bytes(_mutate_model_file(data, rng))
        outcome = _load_mutated(path, prediction, X)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("refused", 0) > cases // 3, outcomes   # the mutations do reach the checks
    return outcomes


def test_mutated_model_files_are_refused_or_load_correctly(saved, tmp_path):
    _campaign_model_files(saved, tmp_path, SMALL, seed=1)


@pytest.mark.slow
def test_mutated_model_files_large_campaign(saved, tmp_path):
    print(_campaign_model_files(saved, tmp_path, LARGE, seed=2))


# --- data-set files ---------------------------------------------------------------------------------------


def _idx_campaign(tmp_path, cases, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    valid = write_idx(images)
    outcomes = {"refused": 0, "read": 0}
    for case in range(cases):
        buf = bytearray(valid)
        kind = rng.integers(4)
        if kind == 0:
            for _ in range(int(rng.integers(1, 6))):
                buf[int(rng.integers(16))] = int(rng.integers(256))   # the header
        elif kind == 1:
            buf = buf[:int(rng.integers(len(buf)))]
        elif kind == 2:
            buf += rng.bytes(int(rng.integers(1, 100)))
        else:
            buf[int(rng.integers(len(buf)))] ^= 0xFF
        compressed = rng.random() < 0.5
        path = tmp_path / f"case-idx3-ubyte{'.gz' if compressed else ''}"
        path.write_bytes(gzip.compress(bytes(buf)) if compressed else bytes(buf))
        if compressed and rng.random() < 0.3:   # a damaged gzip stream as well
            raw = bytearray(path.read_bytes())
            raw[int(rng.integers(10, len(raw)))] ^= 0x55
            path.write_bytes(bytes(raw))
        started = time.perf_counter()
        try:
            array = read_idx(path)
        except ValueError:
            outcomes["refused"] += 1
        else:
            outcomes["read"] += 1
            assert array.size * array.itemsize <= len(buf)
        assert time.perf_counter() - started < SLOW_SECONDS
    return outcomes


def test_mutated_idx_files_are_refused_or_read(tmp_path):
    outcomes = _idx_campaign(tmp_path, SMALL, seed=3)
    assert outcomes["refused"] > SMALL // 3


@pytest.mark.slow
def test_mutated_idx_files_large_campaign(tmp_path):
    print(_idx_campaign(tmp_path, LARGE, seed=4))


# --- threads ----------------------------------------------------------------------------------------------


def _thread_campaign(rounds, seed):
    model, X = _model()
    rng = np.random.default_rng(seed)
    batches = [X[: int(n)] for n in rng.integers(1, len(X) + 1, size=8)]
    expected_predictions = [model.predict(b) for b in batches]
    y = np.arange(len(X)) % 3
    expected_evaluation = model.evaluate(X, y, verbose=False)
    problems = []

    def worker(k):
        local = np.random.default_rng(seed + k)
        try:
            for _ in range(rounds):
                if local.random() < 0.8:
                    j = int(local.integers(len(batches)))
                    if not np.array_equal(model.predict(batches[j]), expected_predictions[j]):
                        problems.append(f"predict {j} differs")
                elif model.evaluate(X, y, verbose=False) != expected_evaluation:
                    problems.append("evaluate differs")
        except Exception as exc:  # noqa: BLE001 - reported below
            problems.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems, problems[:5]


def test_random_mixes_of_predict_and_evaluate_from_four_threads_are_all_correct():
    _thread_campaign(50, seed=5)


@pytest.mark.slow
def test_random_thread_mixes_large_campaign():
    _thread_campaign(1000, seed=6)
