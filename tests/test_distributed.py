"""fastnn.distributed without MPI: the package imports nothing of MPI until asked; its pieces work
on one process (SingleProcess) and against a fake second rank (Peer) that echoes this rank and
fails when told to. The runs on two real MPI ranks are in test_distributed_mpi.py."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.distributed as dist
from fastnn import (Accuracy_Categorical, Activation_ReLU, Activation_Softmax, Layer_Dense, Layer_Dropout, Model,
                    Optimizer_Adam, Optimizer_SGD, Loss_CategoricalCrossentropy)
from fastnn._core import config
from fastnn._core.spec import Spec
from fastnn.datasets import spiral_data
from fastnn.distributed import agreement, buffers, protocol, session
from fastnn.distributed.protocol import SLOTS


@pytest.fixture
def single():
    dist.set_communicator(dist.SingleProcess())
    yield
    dist.set_communicator(None)


class Peer:
    """This process as rank 0 of 2, beside a fake rank 1 that contributes what rank 0 contributes
    (it echoes every value and buffer) until its `fail_at`-th allreduce/allgather, where it reports
    `error` as a failing rank would. Records every collective rank 0 makes."""

    rank, size = 0, 2

    def __init__(self, fail_at=None, error=("FloatingPointError", "the loss became nan on rank 1")) -> None:
        self.fail_at, self.error, self.count, self.reporting, self.sent = fail_at, error, 0, False, []

    def _fails_now(self) -> bool:
        self.count += 1
        return self.count == self.fail_at

    def allreduce_sum(self, buffer):
        self.sent.append(("allreduce", buffer.copy()))
        buffer += buffer
        if self._fails_now():
            buffer[-SLOTS] += 1
            self.reporting = True

    def broadcast(self, buffer):
        self.sent.append(("broadcast", buffer.copy()))

    def allgather(self, value):
        self.sent.append(("allgather", value))
        if self.reporting:  # the errors exchanged after a loop status that said "failed"
            self.reporting = False
            return [value, (1, *self.error)]
        if self._fails_now():
            return [value, ((1, *self.error), None)]
        return [value, value]

    def barrier(self):
        self.sent.append(("barrier", None))

    def abort(self, code=1):
        self.sent.append(("abort", code))


def model(dtype=np.float64, dropout=0.0, seed=0):
    np.random.seed(seed)
    m = Model()
    m.add(Layer_Dense(2, 16, weight_regularizer_l2=5e-4, dtype=dtype))
    m.add(Activation_ReLU())
    if dropout:
        m.add(Layer_Dropout(dropout))
    m.add(Layer_Dense(16, 3, dtype=dtype))
    m.add(Activation_Softmax())
    m.set(loss=Loss_CategoricalCrossentropy(), optimizer=Optimizer_Adam(learning_rate=0.02, decay=1e-3),
          accuracy=Accuracy_Categorical())
    m.finalize()
    return m


def data(n=50, seed=1):
    np.random.seed(seed)
    return spiral_data(samples=n, classes=3)


def parameters(m):
    return [a for layer in m.trainable_layers for a in layer.get_parameters()]


# --- no MPI unless asked ---------------------------------------------------------------------------
def test_import_and_a_normal_train_never_import_mpi4py():
    code = ("import sys, numpy as np, fastnn, fastnn.distributed\n"
            "from fastnn import *\n"
            "from fastnn.datasets import spiral_data\n"
            "X, y = spiral_data(samples=20, classes=3)\n"
            "m = Model(); m.add(Layer_Dense(2, 4)); m.add(Activation_Softmax())\n"
            "m.set(loss=Loss_CategoricalCrossentropy(), optimizer=Optimizer_Adam(), accuracy=Accuracy_Categorical())\n"
            "m.finalize(); m.train(X, y, epochs=2, verbose='silent'); m.evaluate(X, y, verbose='silent')\n"
            "m.predict(X)\n"
            "assert 'mpi4py' not in sys.modules, sorted(k for k in sys.modules if 'mpi' in k)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- one process: the protocol end to end, results identical to a normal run ------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("mode", [True, "sharded"])
def test_one_rank_gives_the_normal_run_bit_for_bit(single, dtype, mode):
    X, y = data()
    X_val, y_val = data(20, seed=2)
    results = []
    for distributed in (False, mode):
        m = model(dtype)
        np.random.seed(5)
        history = m.train(X, y, epochs=3, batch_size=32, shuffle=True, verbose="silent", validation_data=(X_val, y_val),
                          distributed=distributed)
        results.append((parameters(m), history, m.evaluate(X_val, y_val, batch_size=7, verbose="silent",
                                                          distributed=distributed),
                        m.predict(X_val, batch_size=8, distributed=distributed), np.random.get_state()[1].copy()))
    (p1, h1, e1, q1, r1), (p2, h2, e2, q2, r2) = results
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))
    assert h1.loss == h2.loss and h1.val_loss == h2.val_loss and h1.accuracy == h2.accuracy
    assert e1 == e2 and np.array_equal(q1, q2) and np.array_equal(r1, r2)


def test_one_rank_prints_the_books_log(single):
    X, y = data()
    logs = []
    for distributed in (False, True):
        m = model()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            m.train(X, y, epochs=2, batch_size=40, validation_data=(X, y), distributed=distributed)
            m.evaluate(X, y, distributed=distributed)
        logs.append(out.getvalue())
    assert logs[0] == logs[1] and "step: 3, acc:" in logs[0]


def test_the_gradient_buffers_are_views_of_one_message_the_kernels_write_into():
    m = model(np.float32)
    X, y = data()
    message = buffers.GradientMessage(m.trainable_layers, np.float32)
    message.attach()
    m._gradients(X.astype(np.float32), y, 1, 0)
    for layer, name, view in message.views:
        assert layer.__dict__[name] is view  # reused by the kernel: nothing to copy
        assert np.shares_memory(view, message.data) and np.any(view != 0)
    expected = [layer.__dict__[name].copy() for layer, name, _ in message.views]
    message.scale(0.25)
    assert all(np.allclose(view, 0.25 * e, rtol=1e-6, atol=0) for (_, _, view), e in zip(message.views, expected))
    # A layer that stores its gradient in a new array gets it copied into the message.
    layer = m.trainable_layers[0]
    layer.dweights = np.ones_like(layer.weights)
    message.collect()
    assert layer.dweights is message.views[0][2] and np.all(message.views[0][2] == 1)
    assert message.data.size == message.gradients.size + SLOTS and message.data.dtype == np.float32


def test_one_allreduce_per_step_and_a_handful_per_epoch():
    X, y = data()
    m = model()
    peer = Peer()
    dist.set_communicator(peer)
    try:
        m.train(X, y, epochs=2, batch_size=40, verbose="silent", validation_data=(X, y), distributed=True)
    finally:
        dist.set_communicator(None)
    kinds = [kind for kind, _ in peer.sent]
    # start (gather, broadcast); per epoch: 4 steps, the epoch's sums and validation's (status +
    # values each); the end.
    epoch = ["allreduce"] * 4 + ["allreduce", "allgather"] * 2
    assert kinds == ["allgather", "broadcast"] + epoch * 2 + ["allreduce"]
    step = peer.sent[2][1]
    assert step.size == sum(-(-a.size // 8) * 8 for a in parameters(m)) + SLOTS  # each gradient on 64 bytes


def test_a_failure_on_the_other_rank_stops_this_one_with_its_error():
    X, y = data()
    m = model()
    peer = Peer(fail_at=3)  # the start's gather, step 0, then step 1 fails on rank 1
    dist.set_communicator(peer)
    try:
        expected = "rank 1 of 2 failed with FloatingPointError: the loss became nan"
        with pytest.raises(FloatingPointError, match=expected) as info:
            m.train(X, y, epochs=1, batch_size=40, verbose="silent", distributed=True)
    finally:
        dist.set_communicator(None)
    assert info.value.failed_rank == 1
    assert m.optimizer.iterations == 1  # step 0's update; step 1 stopped before its update
    assert peer.sent[-1] == ("allgather", None)  # nothing more after the errors were exchanged


def test_a_failure_here_reaches_the_other_rank_at_its_next_checkpoint():
    X, y = data()
    X[90] = np.nan  # in step 1's batch (rows 80..149), this rank's half (80..114)
    m = model()
    peer = Peer()
    dist.set_communicator(peer)
    try:
        with pytest.raises(FloatingPointError, match="the loss became nan"):
            m.train(X, y, epochs=1, batch_size=80, verbose="silent", distributed=True)
    finally:
        dist.set_communicator(None)
    (kind, status), (last, record) = peer.sent[-2:]
    assert kind == "allreduce" and status[-SLOTS] == 1 and not np.any(status[:-SLOTS])
    assert last == "allgather" and record[:2] == (0, "FloatingPointError") and "loss became nan" in record[2]


def test_a_failure_while_the_data_is_checked_is_told_in_the_first_gather():
    X, y = data()
    peer = Peer()
    dist.set_communicator(peer)
    try:
        with pytest.raises(ValueError, match="y must be class ids"):
            model().train(X, y + 5, verbose="silent", distributed=True)
        with pytest.raises(ValueError, match="distributed must be False, True"):
            model().train(X, y, verbose="silent", distributed="everywhere")
    finally:
        dist.set_communicator(None)
    assert [kind for kind, _ in peer.sent] == ["allgather", "allgather"]
    assert all(value[0][1] == "ValueError" and value[1] is None for _, value in peer.sent)


def test_the_ranks_disagreeing_raise_the_same_error_without_more_messages():
    X, y = data()
    m = model()
    description = {"mode": "replicated", "model": agreement.architecture(m), "data": agreement.fingerprint(X, y)}
    other = dict(description, data=agreement.fingerprint(X + 1, y))
    error = agreement.disagreement("Model.train", [description, other])
    assert "every rank must pass the same X and y" in str(error) and "rank 1 has" in str(error)
    assert agreement.disagreement("Model.train", [description, dict(description)]) is None
    deeper = model(dropout=0.5)
    other = dict(description, model=agreement.architecture(deeper))
    error = agreement.disagreement("Model.train", [description, other])
    assert "every rank must build the same model" in str(error)
    nan = X.copy()
    nan[0] = np.nan
    assert agreement.fingerprint(nan, y) == agreement.fingerprint(nan.copy(), y)  # NaN compares equal to itself here


def test_remote_errors_keep_pythons_own_types():
    error = protocol.remote_error("Model.train", [None, (1, "ZeroDivisionError", "x")], 2)
    assert type(error) is ZeroDivisionError and error.failed_rank == 1 and "rank 1 of 2 failed" in str(error)
    assert type(protocol.remote_error("w", [(0, "MyOwnError", "x"), (1, "KeyError", "y")], 2)) is RuntimeError
    assert "ranks 1 failed too" in str(protocol.remote_error("w", [(0, "ValueError", "x"), (1, "KeyError", "y")], 2))
    assert type(protocol.remote_error("w", [(0, "UnicodeDecodeError", "x")], 2)) is RuntimeError  # wants 5 arguments


def test_a_rank_that_cannot_tell_the_others_aborts_the_job():
    class Broken(Peer):
        def allgather(self, value):
            raise OSError("the link is down")

    comm = Broken()
    protocol.Protocol(comm, "Model.train").fail(ValueError("bad input"))
    assert comm.sent == [("abort", 1)]
    settled = protocol.Protocol(comm, "Model.train")
    settled.settled = True
    settled.fail(ValueError("known everywhere"))
    assert comm.sent == [("abort", 1)]


# --- the pieces --------------------------------------------------------------------------------------
def test_training_starts_from_rank_zeros_state(single):
    m = model()
    X, y = data()
    m.train(X, y, epochs=1, verbose="silent")
    layer = m.trainable_layers[0]
    names = buffers.state_names(layer, m.optimizer)
    assert names == ["weights", "biases", "weight_cache", "bias_cache", "weight_momentums", "bias_momentums"]
    fresh = model()
    buffers.match_state(fresh.trainable_layers, [names, names])
    assert np.all(fresh.trainable_layers[0].weight_cache == 0) and fresh.trainable_layers[0].weight_regularizer_l2
    buffers.match_state(m.trainable_layers, [["weights", "biases"]] * 2)
    assert not hasattr(layer, "weight_cache") and not hasattr(layer, "bias_momentums")
    assert layer.weight_regularizer_l2 == 5e-4  # named like state, but the layer's own


def test_declared_buffers_travel_with_the_parameters():
    class Normalizer:  # a layer with running statistics, declared by hand (not registered)
        def __init__(self):
            self.weights, self.biases = np.ones((1, 3)), np.zeros((1, 3))
            self.running_mean = np.arange(3.0)

    Normalizer._spec = Spec(Normalizer, "layer", dims={"n": lambda layer: layer.weights.shape[1]},
                            parameters=lambda a, d: {"weights": (1, d["n"]), "biases": (1, d["n"])},
                            buffers=lambda a, d: {"running_mean": (d["n"],)})
    layer = Normalizer()
    assert buffers.state_names(layer, Optimizer_SGD()) == ["weights", "biases", "running_mean"]


def test_mixed_dtypes_are_refused(single):
    m = model()
    m.trainable_layers[1].set_parameters(*(a.astype(np.float32) for a in m.trainable_layers[1].get_parameters()))
    assert buffers.trainable_dtype(m.trainable_layers) is None
    with pytest.raises(ValueError, match="needs every trainable layer in one dtype"):
        m.train(*data(), verbose="silent", distributed=True)


def test_dropout_draws_from_this_ranks_stream_during_training_only(single):
    assert config.dropout_random() is np.random
    m = model(np.float32, dropout=0.5)
    X, y = data()
    seen = []
    original = config.set_dropout_random

    def spy(source):
        seen.append(source)
        original(source)

    config.set_dropout_random, saved = spy, config.set_dropout_random
    try:
        m.train(X, y, epochs=1, verbose="silent", distributed=True)
    finally:
        config.set_dropout_random = saved
    assert isinstance(seen[0], np.random.RandomState) and seen[1:] == [None]
    assert config.dropout_random() is np.random
    with pytest.raises(TypeError, match="RandomState or None"):
        config.set_dropout_random(np.random.default_rng(0))


@pytest.mark.parametrize("mode", ["fast", "book"])
def test_dropout_takes_nothing_from_the_global_rng_with_its_own_source(mode):
    layer = Layer_Dropout(0.5, mode=mode)
    x = np.ones((8, 8), np.float32)
    config.set_dropout_random(np.random.RandomState([1, 0]))
    try:
        np.random.seed(3)
        before = np.random.get_state()[1].copy()
        layer.forward(x)
        first = layer.output.copy()
        assert np.array_equal(np.random.get_state()[1], before)
        config.set_dropout_random(np.random.RandomState([1, 1]))  # another rank
        layer.forward(x)
        assert not np.array_equal(first, layer.output)
    finally:
        config.set_dropout_random(None)
    layer.forward(x)
    assert not np.array_equal(np.random.get_state()[1], before)  # NumPy's global RNG again


def test_save_writes_on_rank_zero_only(tmp_path):
    m = model()
    path = tmp_path / "model.fnn"

    class RankOne(Peer):
        rank = 1

    session._MODELS[m] = RankOne()
    m.save(path)
    m.save_parameters(tmp_path / "parameters.fnn")
    assert not path.exists() and not (tmp_path / "parameters.fnn").exists()
    session._MODELS[m] = Peer()
    m.save(path)
    assert Model.load(path).predict(data()[0]).shape == (150, 3)
    del session._MODELS[m]
    m.save(tmp_path / "again.fnn")  # a model never used distributed: written as usual
    assert (tmp_path / "again.fnn").exists()


def test_the_helpers_and_the_communicator(single):
    assert (dist.rank(), dist.size(), dist.is_root()) == (0, 1, True)
    dist.barrier()
    with pytest.raises(TypeError, match="set_communicator: comm must be"):
        dist.set_communicator(object())
    dist.set_communicator(Peer())
    assert (dist.rank(), dist.size()) == (0, 2)
