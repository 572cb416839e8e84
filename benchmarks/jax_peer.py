"""The JAX peer: the configurations' networks as one ``jax.jit``-compiled function, from a fastnn
Model's weights.

A training step is one compiled call: the forward pass (``x @ W + b``, ReLU, inverted dropout
from ``jax.random.bernoulli`` where the configuration has dropout), the mean cross-entropy of the
log-softmax of the logits plus the first layer's L2 (where the configuration has it),
``jax.value_and_grad``, and the book's Adam (learning-rate decay ``lr / (1 + decay * t)``, bias
corrections with ``t + 1``, epsilon 1e-7 after the square root) with the parameters and Adam's
state donated to the call, then the loss, the regularisation loss and the accuracy as Python
floats (which waits for the result, as torch's ``loss.item()``). Inference is the jitted forward
pass and ``jax.nn.softmax``, waited for with ``block_until_ready``.

JAX is optional: ``load(threads)`` returns the ``jax`` module, or None with ``why()`` saying
why (not installed; or started for another thread count). XLA's CPU thread pool is sized once,
when JAX starts, so one process measures JAX at one thread count: ``load`` sets ``XLA_FLAGS``
for `threads` before the first import and starts XLA's CPU client on `threads` CPUs (process
affinity, given back to every thread once the client is up; XLA sizes its pools from the CPUs it
may use, and ``--xla_cpu_multi_thread_eigen=false``, also set for one thread, did not stop jax 0.10
from using 1.8 cores), and refuses other counts afterwards. With as many threads as CPUs it is
XLA's default pool. ``benchmarks/run.py`` therefore runs each thread count in
a process of its own when JAX is installed.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

import fastnn

from data import cycle

_STARTED: dict = {}   # {"threads": n, "jax": module} once JAX is imported


def installed() -> bool:
    return importlib.util.find_spec("jax") is not None


def why(threads: int | None = None) -> str:
    """Why load(threads) gives None ('' when it does not; threads: default the pinned BLAS count)."""
    threads = _pinned_threads() if threads is None else threads
    if not installed():
        return "jax is not installed (pip install jax)"
    if "threads" in _STARTED and _STARTED["threads"] != threads:
        return (f"JAX started in this process with {_STARTED['threads']} thread(s); XLA sizes its CPU pool "
                f"once, so {threads} thread(s) need a process of their own")
    return ""


def _pinned_threads() -> int:
    """The BLAS thread count the runner pinned (machine.pin_threads), else the core count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return min(counts) if counts else (os.cpu_count() or 1)


def usable(threads: int | None = None) -> bool:
    """load(threads) would give the module (threads: default the pinned BLAS count)."""
    return not why(threads)


def load(threads: int | None = None):
    """The jax module configured for `threads` CPU threads (default: the pinned BLAS count, as
    every other peer runs), or None (see why())."""
    threads = _pinned_threads() if threads is None else threads
    if why(threads):
        return None
    if "jax" not in _STARTED:
        if threads == 1:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        narrowed = cpus is not None and 0 < threads < len(cpus)
        if narrowed:
            # XLA sizes its CPU thread pools from the CPUs this process may use when the client
            # starts (the flag above alone left jax 0.10 using 1.8 cores at "one thread"): start it
            # on `threads` CPUs, then give every thread of the process all of them back.
            os.sched_setaffinity(0, set(sorted(cpus)[:threads]))
        try:
            import jax
            jax.config.update("jax_platforms", "cpu")
            jax.jit(lambda x: x @ x + 1)(jax.numpy.ones((64, 64), jax.numpy.float32)).block_until_ready()
        finally:
            if narrowed:
                for tid in os.listdir("/proc/self/task"):
                    try:
                        os.sched_setaffinity(int(tid), cpus)
                    except OSError:  # pragma: no cover - a thread that just ended
                        pass
        _STARTED.update(threads=threads, jax=jax)
    return _STARTED["jax"]


def version() -> str | None:
    if "jax" in _STARTED:
        return _STARTED["jax"].__version__
    if not installed():
        return None
    from importlib.metadata import version as _version
    return _version("jax")


def _parameters(fastnn_model):
    """[(W, b)] of the model's Dense layers, as float32 numpy arrays (b of shape (n,))."""
    dense = [layer for layer in fastnn_model.layers if isinstance(layer, fastnn.Layer_Dense)]
    return [(np.array(layer.weights, np.float32), np.array(layer.biases, np.float32).reshape(-1)) for layer in dense]


def _forward(jax, params, x, key, keep):
    jnp = jax.numpy
    out = x
    for i, (w, b) in enumerate(params):
        out = out @ w + b
        if i < len(params) - 1:
            out = jax.nn.relu(out)
            if key is not None:
                key, sub = jax.random.split(key)
                out = jnp.where(jax.random.bernoulli(sub, keep, out.shape), out / keep, 0.0)
    return out


def jax_step(config, fastnn_model, data, threads: int | None = None):
    """A zero-argument callable: one training step on the next of `data`'s batches, returning
    (data_loss, reg_loss, accuracy). ``.snapshot()`` returns a function putting the state back to
what it is now; ``.parameters()``: the current [(W, b)] as NumPy arrays."""
    jax = load(threads)
    jnp = jax.numpy
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in _parameters(fastnn_model)]
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    lr0, decay, l2 = config.learning_rate, config.decay, config.l2
    keep = 1.0 - config.dropout
    b1, b2, eps = 0.9, 0.999, 1e-7

    def loss_fn(p, x, y, key):
        logits = _forward(jax, p, x, key if config.dropout else None, keep)
        logp = jax.nn.log_softmax(logits)
        data_loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        reg = 0.0
        if l2:
            w, b = p[0]
            reg = l2 * jnp.sum(w * w) + l2 * jnp.sum(b * b)
        return data_loss + reg, (data_loss, reg, logits)

    def train(p, m, v, it, x, y, key):
        key, sub = jax.random.split(key)
        (_, (data_loss, reg, logits)), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y, sub)
        lr = lr0 * (1.0 / (1.0 + decay * it))
        t = it + 1
        c1 = 1.0 - b1 ** t
        c2 = 1.0 - b2 ** t
        m = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        p = jax.tree_util.tree_map(lambda p_, m_, v_: p_ - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + eps), p, m, v)
        accuracy = jnp.mean(jnp.argmax(logits, axis=1) == y)
        return p, m, v, it + 1, key, jnp.stack([data_loss, jnp.asarray(reg, jnp.float32), accuracy])

    compiled = jax.jit(train, donate_argnums=(0, 1, 2))
    batches = cycle([(jnp.asarray(X), jnp.asarray(y.astype(np.int32))) for X, y in data])
    state = {"p": params, "m": zeros, "v": jax.tree_util.tree_map(jnp.zeros_like, params),
             "it": jnp.asarray(0.0, jnp.float32), "key": jax.random.PRNGKey(0)}

    def step():
        x, y = batches()
        s = state
        s["p"], s["m"], s["v"], s["it"], s["key"], out = compiled(s["p"], s["m"], s["v"], s["it"], x, y, s["key"])
        data_loss, reg_loss, accuracy = np.asarray(out).tolist()
        return data_loss, reg_loss, accuracy

    def snapshot():
        copy = jax.tree_util.tree_map(jnp.copy, state)

        def restore():
            # The step donates the arrays it is given: hand it copies, keep the snapshot.
            state.update(jax.tree_util.tree_map(jnp.copy, copy))
        return restore
    step.snapshot = snapshot
    step.parameters = lambda: [(np.asarray(w), np.asarray(b)) for w, b in state["p"]]
    return step


def jax_infer(config, fastnn_model, data, threads: int | None = None):
    """A zero-argument callable: the softmax of the network's output for the next batch."""
    jax = load(threads)
    jnp = jax.numpy
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in _parameters(fastnn_model)]
    compiled = jax.jit(lambda p, x: jax.nn.softmax(_forward(jax, p, x, None, 1.0), axis=1))
    batches = cycle([jnp.asarray(X) for X, _ in data])

    def step():
        return compiled(params, batches()).block_until_ready()
    return step
