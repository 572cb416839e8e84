"""Independent models trained in parallel Python threads.

The kernels release the GIL and keep every buffer on their own layer (no module-level scratch), so
models that share nothing give exactly the results they give one after the other. Dropout is left
out on purpose: its masks (book and fast mode) draw from NumPy's global RNG, which threads share,
so the order of the draws, and with it the masks, depends on scheduling, as with NumPy itself.
"""
import threading
import time

import numpy as np
import pytest

import fastnn as nn
from _models import mlp
from fastnn.datasets import spiral_data

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is a runtime dependency
    threadpool_limits = None


def dense_model(seed):
    return mlp(nn, (2, 64, 3), "Activation_Softmax", nn.Loss_CategoricalCrossentropy(),
               nn.Optimizer_Adam(learning_rate=0.02), nn.Accuracy_Categorical(), seed=seed,
               first={"weight_regularizer_l2": 5e-4})


def conv_model(seed):
    np.random.seed(seed)
    model = nn.Model()
    model.add(nn.Layer_Conv2D(1, 4, 3, padding=1))
    model.add(nn.Activation_ReLU())
    model.add(nn.Layer_MaxPool2D(2))
    model.add(nn.Layer_Flatten())
    model.add(nn.Layer_Dense(4 * 6 * 6, 3))
    model.add(nn.Activation_Softmax())
    model.set(loss=nn.Loss_CategoricalCrossentropy(), optimizer=nn.Optimizer_SGD(learning_rate=0.1, momentum=0.9),
              accuracy=nn.Accuracy_Categorical())
    model.finalize()
    return model


def jobs():
    """(model builder, seed, training data and arguments) of four independent runs."""
    np.random.seed(0)  # spiral_data draws from the global RNG, as nnfs does
    X, y = spiral_data(100, 3, dtype="float32")
    images = np.random.default_rng(7).standard_normal((48, 1, 12, 12)).astype(np.float32)
    labels = np.arange(48) % 3
    dense = dict(X=X, y=y, epochs=300, batch_size=64)
    conv = dict(X=images, y=labels, epochs=20, batch_size=16)
    return [(dense_model, 1, dense), (dense_model, 2, dense), (conv_model, 3, conv), (conv_model, 4, conv)]


def train(model, kwargs):
    model.train(kwargs["X"], kwargs["y"], epochs=kwargs["epochs"], batch_size=kwargs["batch_size"],
                verbose="silent")


def parameters_equal(a, b):
    return all(np.array_equal(wa, wb) and np.array_equal(ba, bb)
               for (wa, ba), (wb, bb) in zip(a.get_parameters(), b.get_parameters()))


def run_sequential_and_threaded():
    runs = jobs()
    sequential = []
    for build, seed, kwargs in runs:
        model = build(seed)
        train(model, kwargs)
        sequential.append(model)
    threaded = [build(seed) for build, seed, _ in runs]
    errors, spans = [], []
    barrier = threading.Barrier(len(threaded))

    def worker(model, kwargs):
        barrier.wait()  # start together, whatever the scheduler does with thread creation
        started = time.perf_counter()
        try:
            train(model, kwargs)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        spans.append((started, time.perf_counter()))

    threads = [threading.Thread(target=worker, args=(model, kwargs))
               for model, (_, _, kwargs) in zip(threaded, runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    # The runs really overlapped: some run started before another ended (each takes tens of
    # milliseconds and they leave the barrier together; on a loaded machine not all of them may
    # be running at once, so only a pair is required).
    spans.sort()
    assert any(later_start < end for (_, end), (later_start, _) in zip(spans, spans[1:]))
    return sequential, threaded


def test_models_in_parallel_threads_match_sequential_runs(conv_threads):
    """With Conv2D serial and with its OpenMP split inside each Python thread (conftest)."""
    sequential, threaded = run_sequential_and_threaded()
    for i, (a, b) in enumerate(zip(sequential, threaded)):
        assert parameters_equal(a, b), f"model {i} differs when trained beside the others"
        assert a.loss.calculate_accumulated() == b.loss.calculate_accumulated()


@pytest.mark.skipif(threadpool_limits is None, reason="needs threadpoolctl")
def test_parallel_conv_training_leaves_the_blas_thread_count_as_it_was():
    """Conv2D pins NumPy's BLAS to one thread around its loop and restores it after; threads doing
    that at the same time must still leave the user's setting in place."""
    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        run_sequential_and_threaded()
        assert blas_threads() == before
