"""Every declared class computes the same bits with the portable kernels and with the AVX2 builds
(FASTNN_KERNELS=baseline against FASTNN_KERNELS=avx2, each in a fresh interpreter): every case
driven through its protocol, in float32 and float64."""
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest

from fastnn import _ext
from fastnn._ext import _buildinfo

TESTS = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r'''
import pickle, sys
import numpy as np
sys.path[:0] = [sys.argv[2]]
from cases import cases
from contract import harness

results = {}
layer_case = cases("layer", trainable=True)[0]
for case in [c for c in cases(setups=True) if c.protocol]:
    for dtype in (np.float32, np.float64):
        if case.protocol == "optimizer":
            obj = harness.optimizer_pair(case, layer_case, dtype)[0]
        else:
            obj = harness.pair(case, dtype)[0]
        for name, value in harness.exercise(case, obj, harness.data(case, dtype)).items():
            results[f"{case.label} {np.dtype(dtype).name} {name}"] = value
with open(sys.argv[1], "wb") as f:
    pickle.dump(results, f)
'''


@pytest.mark.skipif(not (_buildinfo.cpu_has_avx2() and all(_ext._is_built(n + "_avx2") for n in _ext.DISPATCHED)),
                    reason="no AVX2 build or CPU")
def test_every_class_gives_the_same_bits_with_either_kernel_build(tmp_path):
    results = {}
    for kernels in ("baseline", "avx2"):
        path = tmp_path / f"{kernels}.pickle"
        env = {**os.environ, "FASTNN_KERNELS": kernels, "OPENBLAS_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(TESTS)], env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        results[kernels] = pickle.loads(path.read_bytes())
    assert results["baseline"].keys() == results["avx2"].keys() and results["avx2"]
    for key, value in results["baseline"].items():
        np.testing.assert_array_equal(results["avx2"][key], value, err_msg=key)
