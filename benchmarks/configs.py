"""The configurations whose whole training steps (or inference passes) are timed, the peers each
one runs, and its target."""
from __future__ import annotations

from dataclasses import dataclass, field

import jax_peer
from torch_peer import torch


@dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple            # layer widths, input first: (2, 64, 3) is Dense(2,64) ReLU Dense(64,3) Softmax
    batch: int
    data: str               # "spiral" or "mnist" (real MNIST rows when found, else random of that shape)
    n_batches: int          # distinct batches cycled through (consecutive slices, as Model.train)
    training: bool = True   # False: inference (forward + softmax, training=False)
    dropout: float = 0.0    # Layer_Dropout(rate) after each hidden ReLU
    l2: float = 0.0         # weight and bias L2 on the first Dense layer
    learning_rate: float = 0.001
    decay: float = 0.0
    pretrain: int = 1       # steps run before the state snapshot every block restarts from
    description: str = ""
    target: dict = field(default_factory=dict, compare=False, hash=False)
    baseline: dict = field(default_factory=dict, compare=False, hash=False)


CONFIGS = {c.name: c for c in [
    Config("spiral", (2, 64, 3), 300, "spiral", 1, learning_rate=0.05, decay=5e-7,
           description="Ch10 model: Dense(2,64) ReLU Dense(64,3) Softmax+CCE, Adam(0.05, decay 5e-7), "
                       "the whole 300-sample spiral set per step",
           target={"kind": "ref_ratio", "value": 8.0},
           baseline={"reference": 220, "torch": 349, "gemm-floor": 16}),
    Config("spiral-big", (2, 512, 3), 1000, "spiral", 3, dropout=0.1, l2=5e-4, learning_rate=0.05, decay=5e-5,
           description="Ch18 model: Dense(2,512,L2 5e-4) ReLU Dropout(0.1, fast mode) Dense(512,3) "
                       "Softmax+CCE, Adam(0.05, decay 5e-5), batch 1000",
           target={"kind": "ref_ratio", "value": 6.0},
           baseline={"reference": 11309, "torch": 7943, "gemm-floor": 889}),
    Config("mnist", (784, 128, 128, 10), 128, "mnist", 16, decay=1e-3,
           description="Dense(784,128) ReLU Dense(128,128) ReLU Dense(128,10) Softmax+CCE, Adam(decay 1e-3), batch 128",
           target={"kind": "floor_ratio", "value": 1.2},
           baseline={"reference": 1607, "torch": 1562, "gemm-floor": 660}),
    Config("wide", (784, 1024, 1024, 10), 256, "mnist", 8, decay=1e-3,
           description="Dense(784,1024) ReLU Dense(1024,1024) ReLU Dense(1024,10) Softmax+CCE, Adam(decay 1e-3), batch 256",
           target={"kind": "floor_ratio", "value": 1.1},
           baseline={"reference": 32166, "torch": 19475, "gemm-floor": 17947}),
    Config("tiny-batch", (784, 128, 10), 1, "mnist", 64, decay=1e-3,
           description="Dense(784,128) ReLU Dense(128,10) Softmax+CCE, Adam(decay 1e-3), batch 1",
           target={"kind": "ref_ratio", "value": 6.0},
           baseline={"reference": 325, "torch": 398, "gemm-floor": 31}),
    Config("tiny-batch-long", (784, 128, 10), 1, "mnist", 64, decay=1e-3, pretrain=1500,
           description="tiny-batch after 1500 training steps (diagnostic, no target): most of the first "
                       "layer's Adam momentums have decayed into float32 denormals (dead ReLU units get zero "
                       "gradients; 0.9^k underflows after several hundred steps and stays at the smallest "
                       "denormal), as in any long training run"),
    Config("mnist-long", (784, 128, 128, 10), 128, "mnist", 16, decay=1e-3, pretrain=1500,
           description="mnist after 1500 training steps (diagnostic, no target): Adam momentums of dead "
                       "units in float32 denormals, as in any long training run"),
    Config("infer-1", (784, 128, 128, 10), 1, "mnist", 64, training=False,
           description="inference: forward (training=False) + softmax, 784-128-128-10, batch 1",
           target={"kind": "ref_ratio", "value": 3.0}),
    Config("infer-1024", (784, 128, 128, 10), 1024, "mnist", 2, training=False,
           description="inference: forward (training=False) + softmax, 784-128-128-10, batch 1024",
           target={"kind": "floor_ratio", "value": 1.1}),
]}

TRAIN_PEERS = ("fastnn", "reference", "torch", "jax", "gemm-floor", "fastnn-raw", "fastnn-train-step")
INFER_PEERS = ("fastnn", "reference", "torch", "jax", "gemm-floor", "fastnn-raw", "fastnn-predict")
MANUAL_PEERS = ("fastnn-manual", "reference-manual")   # the MANUAL_CONFIGS only
MANUAL_CONFIGS = ("spiral", "tiny-batch")
MAIN_PEERS = ("fastnn", "reference", "torch", "jax", "gemm-floor")


def peers_for(config: Config, *, with_torch: bool = True, with_jax: bool | None = None, extras: bool = True) -> list[str]:
    """The peers `config` runs. with_jax None: jax where jax_peer.usable() (installed, and this
    process's JAX started for the pinned thread count or not started yet)."""
    names = list(TRAIN_PEERS if config.training else INFER_PEERS)
    if config.name in MANUAL_CONFIGS:
        names += MANUAL_PEERS
    if not extras:
        names = [n for n in names if n in MAIN_PEERS]
    if not with_torch or torch is None:
        names.remove("torch")
    if not (jax_peer.usable() if with_jax is None else with_jax):
        names.remove("jax")
    return names


def target_text(config: Config) -> str:
    t = config.target
    if not t:
        return ""
    if t["kind"] == "ref_ratio":
        return f"reference/fastnn >= {t['value']:g}"
    return f"fastnn/GEMM floor <= {t['value']:g}"


def target_met(config: Config, ref_ratio: float | None, floor_ratio: float | None) -> bool | None:
    t = config.target
    if not t:
        return None
    if t["kind"] == "ref_ratio":
        return None if ref_ratio is None else ref_ratio >= t["value"]
    return None if floor_ratio is None else floor_ratio <= t["value"]
