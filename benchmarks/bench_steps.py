"""Whole training steps (and inference passes) for the configurations of design.md §12, one
group per configuration; the peers and what a step is are described in harness.py.

``test_peers_agree`` checks that every peer computes the same step (same weights, same first
loss, same updated weights), so the groups compare like with like.
"""
import pytest

import harness

CASES = [(c.name, peer) for c in harness.CONFIGS.values() for peer in harness.peers_for(c, with_torch=True)]


@pytest.mark.benchmark
@pytest.mark.parametrize("config,peer", CASES, ids=[f"{c}-{p}" for c, p in CASES])
def test_step(benchmark, config, peer):
    cfg = harness.CONFIGS[config]
    step = harness.make_step(cfg, peer)
    step()  # first step: buffers, optimizer state
    benchmark.group = f"step: {config} ({'-'.join(map(str, cfg.sizes))}, batch {cfg.batch})"
    benchmark.name = peer
    benchmark.extra_info["target"] = harness.target_text(cfg)
    benchmark(step)


@pytest.mark.parametrize("config", list(harness.CONFIGS))
def test_peers_agree(config):
    harness.check_peers_agree(harness.CONFIGS[config])
