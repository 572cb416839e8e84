"""Learning-rate schedules: their multipliers (against fastnn.reference's and the formulas), the
optimizer's current_learning_rate they set (the book's decayed rate times the multiplier, shown in
the log's lr: field), their continuation over several train calls, ReduceOnPlateau's decisions,
and a scheduled training log identical to the reference's (float64). The book's runs without a
schedule are pinned by test_model_book_log.py."""
import contextlib
import io
import math

import numpy as np
import pytest

import fastnn
import fastnn.reference as ref
from fastnn.callbacks import TrainingRun

from _book import build_model

SCHEDULES = [
    ("Schedule_Step", {"step_size": 2, "gamma": 0.5}),
    ("Schedule_Exponential", {"gamma": 0.8}),
    ("Schedule_Cosine", {"epochs": 6, "warmup": 1.5, "min_factor": 0.05}),
    ("Schedule_Cosine", {"epochs": 3}),
    ("Schedule_Cosine", {"epochs": 1, "warmup": 0.5}),
]


@pytest.mark.parametrize("name, kwargs", SCHEDULES, ids=lambda v: str(v))
def test_multipliers_match_the_reference(name, kwargs):
    fast, slow = getattr(fastnn, name)(**kwargs), getattr(ref, name)(**kwargs)
    for steps_per_epoch in (1, 3, 7):
        for iteration in range(0, 12 * steps_per_epoch):
            got, want = fast.multiplier(iteration, steps_per_epoch), slow.multiplier(iteration, steps_per_epoch)
            assert got == pytest.approx(want, rel=1e-15, abs=1e-300), (iteration, steps_per_epoch)
            assert 0 < got <= 1


def test_step_and_exponential_change_at_epoch_boundaries():
    step = fastnn.Schedule_Step(step_size=2, gamma=0.1)
    assert [step.multiplier(i, 10) for i in (0, 19, 20, 39, 40)] == [1, 1, 0.1, 0.1, 0.1 ** 2]
    exponential = fastnn.Schedule_Exponential(0.5)
    assert [exponential.multiplier(i, 4) for i in (0, 3, 4, 8, 9)] == [1, 1, 0.5, 0.25, 0.25]


def test_cosine_warms_up_then_decays_and_holds_after_its_end():
    cosine = fastnn.Schedule_Cosine(epochs=4, warmup=1, min_factor=0.1)
    spe = 5
    values = [cosine.multiplier(i, spe) for i in range(30)]
    assert values[:5] == [0.2, 0.4, 0.6, 0.8, 1.0]                       # (s + 1) / W
    assert values[5] == 1.0                                              # the top of the cosine
    decay = values[5:20]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert values[19] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 14 / 15)) / 2)
    assert values[19] > 0.1 and values[20:] == [values[19]] * 10          # held once the schedule is over


def test_cosine_without_warmup_starts_at_one_and_never_reaches_zero():
    cosine = fastnn.Schedule_Cosine(epochs=2)
    values = [cosine.multiplier(i, 3) for i in range(6)]
    assert values[0] == 1.0 and min(values) > 0


@pytest.mark.parametrize("call, match", [
    (lambda s: s.multiplier(-1, 3), "iteration must be a non-negative int"),
    (lambda s: s.multiplier(1.5, 3), "iteration must be a non-negative int"),
    (lambda s: s.multiplier(3, 0), "steps_per_epoch must be a positive int"),
])
def test_multiplier_arguments_are_checked(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call(fastnn.Schedule_Cosine(epochs=3))


def test_cosine_warmup_must_be_shorter_than_the_schedule():
    with pytest.raises(ValueError, match="warmup must be shorter than the schedule's 3 epochs, got 3"):
        fastnn.Schedule_Cosine(epochs=3, warmup=3)


# --- in training ----------------------------------------------------------------------------------

def mlp(lib, optimizer, dtype=np.float64, seed=0):
    np.random.seed(seed)
    return build_model(lib, [lib.Layer_Dense(2, 16, dtype=dtype), lib.Activation_ReLU(),
                             lib.Layer_Dense(16, 3, dtype=dtype), lib.Activation_Softmax()],
                       loss=lib.Loss_CategoricalCrossentropy(), optimizer=optimizer, accuracy=lib.Accuracy_Categorical())


def data(n=60, seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)), rng.integers(0, 3, n)


class Rates(fastnn.Callback):
    """The optimizer's rate at every step, as the step logs give it."""

    def __init__(self):
        self.rates = []

    def on_step_end(self, run, logs):
        self.rates.append((run.model.optimizer.iterations - 1, logs["learning_rate"]))


@pytest.mark.parametrize("optimizer", ["Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam"])
@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_the_rate_is_the_decayed_rate_times_the_multiplier(optimizer, decay):
    X, y = data()
    opt = getattr(fastnn, optimizer)(learning_rate=0.05, decay=decay)
    schedule = fastnn.Schedule_Cosine(epochs=4, warmup=1)
    rates = Rates()
    history = mlp(fastnn, opt).train(X, y, epochs=4, batch_size=20, verbose="silent", callbacks=[schedule, rates])
    assert len(rates.rates) == 12
    for iteration, rate in rates.rates:
        book = 0.05 * (1. / (1. + decay * iteration)) if decay else 0.05
        assert rate == book * schedule.multiplier(iteration, 3)
    assert history.learning_rate == [rates.rates[i][1] for i in (2, 5, 8, 11)]
    assert opt.current_learning_rate == rates.rates[-1][1]


def test_schedules_multiply_and_the_log_shows_the_product(capsys):
    X, y = data()
    opt = fastnn.Optimizer_SGD(learning_rate=1.0)
    schedules = [fastnn.Schedule_Step(1, 0.5), fastnn.Schedule_Exponential(0.5)]
    mlp(fastnn, opt).train(X, y, epochs=3, callbacks=schedules)
    lr = [line.rsplit("lr: ", 1)[1] for line in capsys.readouterr().out.splitlines() if line.startswith("training")]
    assert lr == ["1.0", "0.25", "0.0625"]


def test_chunked_training_continues_the_schedule():
    X, y = data()
    one = mlp(fastnn, fastnn.Optimizer_Adam(learning_rate=0.02))
    one.train(X, y, epochs=6, batch_size=20, verbose="silent", callbacks=[fastnn.Schedule_Cosine(6, warmup=1)])
    chunks = mlp(fastnn, fastnn.Optimizer_Adam(learning_rate=0.02))
    schedule = fastnn.Schedule_Cosine(6, warmup=1)
    for _ in range(3):
        chunks.train(X, y, epochs=2, batch_size=20, verbose="silent", callbacks=[schedule])
    np.testing.assert_array_equal(one.layers[0].weights, chunks.layers[0].weights)
    assert one.optimizer.current_learning_rate == chunks.optimizer.current_learning_rate


def test_a_scheduled_run_logs_what_the_reference_logs():
    X, y = data()
    logs = []
    for lib in (fastnn, ref):
        model = mlp(lib, lib.Optimizer_Adam(learning_rate=0.03, decay=1e-2))
        callbacks = [lib.Schedule_Cosine(epochs=5, warmup=0.5, min_factor=0.01), lib.Schedule_Step(2, 0.7)]
        with contextlib.redirect_stdout(io.StringIO()) as out:
            model.train(X, y, epochs=5, batch_size=16, validation_data=data(30, 9), callbacks=callbacks)
        logs.append(out.getvalue())
    assert logs[0] == logs[1]
    assert "lr: 0.03" not in logs[0]            # every step ran at a scheduled rate


def test_without_a_schedule_nothing_is_recomputed():
    """No schedule: the rate stays whatever the optimizer holds (the book's behaviour with decay 0)."""
    X, y = data()
    opt = fastnn.Optimizer_SGD(learning_rate=0.5)
    opt.current_learning_rate = 0.125
    mlp(fastnn, opt).train(X, y, epochs=1, verbose="silent", callbacks=[Rates()])
    assert opt.current_learning_rate == 0.125


def test_a_schedule_needs_an_optimizer_with_an_iteration_count():
    class Plain:
        learning_rate = 0.1

        def pre_update_params(self):
            pass

        def update_params(self, layer):
            pass

        def post_update_params(self):
            pass

    X, y = data()
    with pytest.raises(TypeError, match="Schedule_Cosine: the optimizer must count its steps in an int `iterations`"):
        mlp(fastnn, Plain()).train(X, y, verbose="silent", callbacks=[fastnn.Schedule_Cosine(2)])


# --- ReduceOnPlateau ---------------------------------------------------------------------------

def drive(schedule, values, monitor="val_loss"):
    """Feed a schedule epoch logs of `values`; the scale after each epoch."""
    class Optimizer:
        iterations = 0
        learning_rate = 1.0

    class Model:
        optimizer = Optimizer()

    run = TrainingRun(Model(), len(values), 1, True, None)
    schedule.on_train_begin(run)
    scales = []
    for epoch, value in enumerate(values, 1):
        run.epoch = epoch
        schedule.on_epoch_end(run, {monitor: value})
        scales.append(schedule.multiplier(epoch, 1))
    return scales


PLATEAU = [1.0, 0.9, 0.95, 0.93, 0.91, 0.92, 0.80, 0.85, 0.86, 0.87, 0.88, 0.89, float("nan"), 0.9, 0.9]


@pytest.mark.parametrize("kwargs", [
    {"patience": 2, "factor": 0.5},
    {"patience": 1, "factor": 0.5, "cooldown": 2},
    {"patience": 2, "factor": 0.1, "min_factor": 0.05},
    {"patience": 1, "factor": 0.5, "min_delta": 0.05},
    {"monitor": "val_accuracy", "patience": 2, "factor": 0.5},
])
def test_reduce_on_plateau_matches_the_reference(kwargs):
    monitor = kwargs.get("monitor", "val_loss")
    fast = fastnn.Schedule_ReduceOnPlateau(**kwargs)
    slow = ref.Schedule_ReduceOnPlateau(**kwargs)
    assert drive(fast, PLATEAU, monitor) == drive(slow, PLATEAU, monitor)
    assert vars(fast) == vars(slow)


def test_reduce_on_plateau_reduces_after_patience_epochs_and_cools_down():
    schedule = fastnn.Schedule_ReduceOnPlateau(patience=2, factor=0.5, cooldown=1)
    scales = drive(schedule, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # epochs 2, 3 without improvement -> reduce; epoch 4 cooling down; 5, 6 -> reduce again
    assert scales == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert schedule.reductions == 2
    floor = fastnn.Schedule_ReduceOnPlateau(patience=1, factor=0.1, min_factor=0.05)
    assert drive(floor, [1.0, 1.0, 1.0, 1.0]) == [1.0, 0.1, 0.05, 0.05]


def test_reduce_on_plateau_in_training_needs_validation():
    X, y = data()
    with pytest.raises(ValueError, match=r"monitor='val_loss' needs validation figures: pass validation_data"):
        mlp(fastnn, fastnn.Optimizer_SGD()).train(X, y, verbose="silent",
                                                  callbacks=[fastnn.Schedule_ReduceOnPlateau()])
    history = mlp(fastnn, fastnn.Optimizer_SGD(learning_rate=0.5)).train(
        X, y, epochs=8, verbose="silent", validation_split=0.25,
        callbacks=[fastnn.Schedule_ReduceOnPlateau(monitor="loss", patience=1, factor=0.5)])
    assert history.learning_rate[0] == 0.5 and all(r <= 0.5 for r in history.learning_rate)


@pytest.mark.parametrize("mode", [True, "sharded"])
def test_a_distributed_run_follows_the_schedule(mode):
    """On fastnn.distributed's one-process communicator a scheduled, augmented, early-stopped run
    is the normal run, bit for bit (the schedule's factor reaches the distributed step)."""
    import fastnn.distributed as dist

    X, y = data(64)
    runs = []
    dist.set_communicator(dist.SingleProcess())
    try:
        for distributed in (False, mode):
            model = mlp(fastnn, fastnn.Optimizer_Adam(learning_rate=0.02, decay=1e-3))
            np.random.seed(3)
            callbacks = [fastnn.Schedule_Cosine(4, warmup=1), fastnn.Callback_EarlyStopping(monitor="loss", patience=2)]
            history = model.train(X, y, epochs=4, batch_size=16, shuffle=True, verbose="silent", callbacks=callbacks,
                                  validation_split=0.25, distributed=distributed)
            runs.append((model.layers[0].weights.copy(), history.learning_rate, history.val_loss))
    finally:
        dist.set_communicator(None)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:] and runs[0][1][0] < 0.02
