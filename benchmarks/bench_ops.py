"""Per-op groups, float32: dense forward/backward, ReLU and sigmoid forward/backward, softmax +
CCE (forward and the combined backward, as the Model runs them), each optimizer's update_params
on a 784x128 layer, dropout forward+backward (fastnn fast mode, book mode, the reference); and
(layer_ops.py) BatchNorm, global average pooling, "same"-padded convolutions and padded pooling.

Peers in each group: fastnn (the public methods), reference (fastnn.reference, plain NumPy),
torch (where one eager call does the same), gemm-floor (the op's GEMMs alone). Definitions in
ops.OP_GROUPS.
"""
import pytest

from ops import OP_GROUPS

CASES = [(group, peer) for group, peers in OP_GROUPS.items() for peer in peers]


@pytest.mark.benchmark
@pytest.mark.parametrize("group,peer", CASES, ids=[f"{g}-{p}".replace(" ", "_") for g, p in CASES])
def test_op(benchmark, group, peer):
    op = OP_GROUPS[group][peer]()
    op()  # first call: buffers and optimizer state
    benchmark.group = f"op: {group}"
    benchmark.name = peer
    benchmark(op)
