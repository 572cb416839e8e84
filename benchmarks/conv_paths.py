"""Conv2D's two paths in one process: im2col (the path before Winograd) and Winograd F(2x2, 3x3),
switched per layer call with fastnn._ext._conv.set_winograd, and PyTorch, interleaved round by
round (the two fastnn paths in alternating order), medians over the rounds; bench_conv's cases,
thread pinning (FASTNN_BENCH_THREADS) and timing. Needs torch.

    FASTNN_BENCH_THREADS=1 python benchmarks/conv_paths.py 5      # 5 rounds
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_conv as bc
from fastnn._ext import _conv
from machine import pin_threads
pin_threads(bc.THREADS)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
cases = [("conv", n, bc.make_conv) for n in ("mnist-c2", "cifar-c2")] + [("step", "mnist-cnn", bc.make_step)]
runs = {(k, n, p): m(n, p) for k, n, m in cases for p in ("fastnn", "torch")}
res = {(k, n, p): [] for k, n, _ in cases for p in ("im2col", "winograd", "torch")}
t0 = time.time()
for r in range(rounds):
    for k, n, _ in cases:
        for mode in (False, True) if r % 2 == 0 else (True, False):
            _conv.set_winograd(mode)
            res[(k, n, "winograd" if mode else "im2col")].append(bc._median_us(runs[(k, n, "fastnn")], 0.3))
        _conv.set_winograd(True)
        res[(k, n, "torch")].append(bc._median_us(runs[(k, n, "torch")], 0.3))
print(f"threads {bc.THREADS}, {rounds} rounds, {time.time() - t0:.0f} s; sgemm {bc.sgemm_gflops():.0f} GFLOP/s")
for k, n, _ in cases:
    m = {p: statistics.median(res[(k, n, p)]) for p in ("im2col", "winograd", "torch")}
    fl = f"  GFLOP/s im2col {bc.conv_flops(n) / m['im2col'] / 1e3:.0f} winograd {bc.conv_flops(n) / m['winograd'] / 1e3:.0f} torch {bc.conv_flops(n) / m['torch'] / 1e3:.0f}" if k == "conv" else ""
    print(f"{k} {n}: im2col {m['im2col'] / 1e3:.2f} ms, winograd {m['winograd'] / 1e3:.2f} ms, torch {m['torch'] / 1e3:.2f} ms; "
          f"winograd/im2col {m['winograd'] / m['im2col']:.2f}, im2col/torch {m['im2col'] / m['torch']:.2f}, winograd/torch {m['winograd'] / m['torch']:.2f}{fl}")
    print("   per round winograd/torch:", " ".join(f"{a / b:.2f}" for a, b in zip(res[(k, n, 'winograd')], res[(k, n, 'torch')])))
