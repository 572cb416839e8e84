"""Whole training steps (and inference passes) for the configurations of configs.py, one group
per configuration; the peers and what a step is are described in steps.py.

``test_peers_agree`` checks that every peer computes the same step (same weights, same first
loss, same updated weights), so the groups compare like with like.
"""
import time

import pytest

import jax_peer
from configs import CONFIGS, peers_for, target_text
from steps import check_peers_agree, make_step

CASES = [(c.name, peer) for c in CONFIGS.values() for peer in peers_for(c, with_torch=True)]


@pytest.mark.benchmark
@pytest.mark.parametrize("config,peer", CASES, ids=[f"{c}-{p}" for c, p in CASES])
def test_step(benchmark, config, peer):
    cfg = CONFIGS[config]
    if peer == "jax" and not jax_peer.usable():
        pytest.skip(jax_peer.why())   # JAX started at another thread count in this process
    # The smoke pass (--benchmark-disable) skips the *-long configurations' pretraining.
    step = make_step(cfg, peer, pretrain=1 if benchmark.disabled else None)
    step()  # buffers (training peers already ran their pretraining steps)
    benchmark.group = f"step: {config} ({'-'.join(map(str, cfg.sizes))}, batch {cfg.batch})"
    benchmark.name = peer
    benchmark.extra_info["target"] = target_text(cfg)
    reset = getattr(step, "reset", None)
    if reset is None:
        benchmark(step)
        return
    # A training peer's state evolves: time at most ~300 steps from its snapshot (Adam's momentums
    # would start decaying into denormals after several hundred) and at most about a second.
    reset()
    t0 = time.perf_counter()
    step()
    per = max(time.perf_counter() - t0, 1e-6)
    iterations = max(1, min(20, int(1e-4 / per)))
    rounds = max(3, min(280 // iterations, int(1.0 / (per * iterations))))
    reset()
    benchmark.pedantic(step, rounds=rounds, iterations=iterations, warmup_rounds=1)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_peers_agree(config):
    check_peers_agree(CONFIGS[config])
