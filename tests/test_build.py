"""The compiled extension is real: every module is a compiled file, and show_config() says how it was built."""
import importlib
import importlib.machinery
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastnn
import fastnn.backend.blas
from fastnn._ext import MODULES, _buildinfo

@pytest.mark.parametrize("name", MODULES)
def test_each_ext_module_is_compiled(name):
    module = importlib.import_module(f"fastnn._ext.{name}")
    assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), module.__file__


def test_every_cython_source_is_a_listed_module(source):
    sources = {p.name.split(".")[0] for p in (source / "src_pyx").glob("*.pyx*")}
    assert sources == set(MODULES)


def test_flags_are_safe():
    flags = _buildinfo.compile_flags()
    assert "-ffast-math" not in flags and "/fp:fast" not in flags
    if not _buildinfo.debug_build():
        if flags.startswith("/"):  # MSVC (Windows wheels)
            assert "/O2" in flags, flags
        else:
            assert "-O3" in flags and "-fno-math-errno" in flags, flags


def test_show_config_reports_everything(capsys):
    fastnn.show_config()
    out = capsys.readouterr().out
    assert fastnn.__version__ in out
    for name in MODULES:
        assert name in out
    assert "OpenMP:" in out and ("on" in out or "off" in out)
    assert "compile flags:" in out
    assert "GEMM:" in out and "thread pools:" in out
    assert "thread policy:" in out
    conv_gemm = "fastnn's AVX-512 kernels" if fastnn._ext._blas.small_gemm_available() else "no AVX-512"
    assert "conv GEMMs:" in out and conv_gemm in out
    if fastnn._ext._threads.shared_team():
        assert "one pool" in out and "OpenMP team" in out


def test_gemm_uses_numpys_blas():
    kind, description = fastnn.backend.blas.backend()
    assert kind in ("CBLAS64", "CBLAS32", "FORTRAN")
    if kind != "FORTRAN":
        assert "NumPy" in description


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_matmul(dtype, rng, trans_a, trans_b):
    a = rng.standard_normal((7, 5) if not trans_a else (5, 7)).astype(dtype)
    b = rng.standard_normal((5, 3) if not trans_b else (3, 5)).astype(dtype)
    out = np.full((7, 3), 2.0, dtype)
    expected = 0.5 * np.matmul(a.T if trans_a else a, b.T if trans_b else b) + 3.0 * out
    fastnn.backend.blas.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=3.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_gemm_rejects_bad_arguments():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="shapes do not chain"):
        fastnn.backend.blas.gemm(a, a, np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="one dtype"):
        fastnn.backend.blas.gemm(a, a.T.copy().astype(np.float64), np.empty((2, 2), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        fastnn.backend.blas.gemm(a, np.ones((2, 3), np.float32).T, np.empty((2, 2), np.float32))


def test_gemm_empty_inner_dimension_gives_zeros():
    out = np.full((2, 2), 7.0, np.float32)
    fastnn.backend.blas.gemm(np.ones((2, 0), np.float32), np.ones((0, 2), np.float32), out)
    assert np.all(out == 0)


def _unbuilt_copy(tmp_path):
    """A copy of the package without its compiled modules (a source tree never built)."""
    import shutil

    src = pathlib.Path(fastnn.__file__).parent
    shutil.copytree(src, tmp_path / "fastnn", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return tmp_path


def _run(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("code", ["from fastnn import *", "from fastnn import Model",
                                  "import fastnn; fastnn.Layer_Dense(2, 3)"])
def test_unbuilt_source_tree_refuses_compiled_names_with_build_instructions(tmp_path, code):
    """Without the kernels, every compiled name raises an ImportError that says how to build."""
    result = _run(code, _unbuilt_copy(tmp_path))
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "pip install" in result.stderr and "no pure-Python fallback" in result.stderr


def test_reference_trains_in_an_unbuilt_source_tree(tmp_path):
    """The oracle stands alone: fastnn.reference imports and trains without the compiled kernels
    (and fastnn.datasets' generators work there too)."""
    code = """
import sys
import numpy as np
from fastnn.reference import *
from fastnn.datasets import spiral_data
assert not any(name.startswith("fastnn._ext.") for name in sys.modules), "a kernel module was imported"
np.random.seed(0)
X, y = spiral_data(samples=100, classes=3)
model = Model()
model.add(Layer_Dense(2, 16)); model.add(Activation_ReLU()); model.add(Layer_Dense(16, 3)); model.add(Activation_Softmax())
model.set(loss=Loss_CategoricalCrossentropy(), optimizer=Optimizer_Adam(learning_rate=0.05), accuracy=Accuracy_Categorical())
model.finalize()
before = model.loss.calculate(model.forward(X, training=False), y)
model.train(X, y, epochs=200, print_every=1000)
loss = model.loss.calculate(model.forward(X, training=False), y)
assert np.isfinite(loss) and loss < 0.9 * before, (before, loss)
print("trained", loss)
"""
    result = _run(code, _unbuilt_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "trained" in result.stdout


def test_kernels_import_nothing_from_the_python_package(source):
    """The compiled modules sit below the Python layer: they cimport each other's C declarations
    but import no fastnn module (errors are built by the Python methods that call them)."""
    import re

    sources = [p for p in (source / "src_pyx").rglob("*") if p.suffix in (".pyx", ".pxd", ".pxi", ".tp")]
    pattern = re.compile(r"^\s*(from\s+fastnn\S*\s+import\s|import\s+fastnn)", re.MULTILINE)
    assert [p.name for p in sources if pattern.search(p.read_text())] == []


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m, k, n", [(1, 784, 128), (1, 5, 7), (1, 64, 3), (9, 33, 1), (128, 64, 1), (1, 2, 1)])
def test_one_row_and_one_column_products_have_numpys_bits(dtype, rng, trans_a, trans_b, m, k, n):
    """One-row and one-column outputs go to gemv, as NumPy sends them: np.matmul's bits, with
    beta = 0 (NaN in out ignored) and beta = 1 (out added after the product, as `x @ w + b`); any
    other beta takes gemm, within rounding. A 1x1 output is NumPy's dot: within rounding only."""
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    product = np.matmul(a.T if trans_a else a, b.T if trans_b else b)
    exact = fastnn.backend.blas._blas.has_gemv() and not (m == 1 and n == 1)
    check = np.testing.assert_array_equal if exact else (
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5 if dtype == np.float32 else 1e-12))
    out = np.full((m, n), np.nan, dtype)
    check(fastnn.backend.blas.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b), product)
    c = rng.standard_normal((m, n)).astype(dtype)
    out = c.copy()
    check(fastnn.backend.blas.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, beta=1.0), product + c)
    out = c.copy()
    np.testing.assert_allclose(fastnn.backend.blas.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, beta=3.0),
                               product + 3 * c, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_numpys_blas_exports_gemv():
    """NumPy's bundled OpenBLAS exports gemv next to gemm, so the one-row path is in use."""
    kind, _ = fastnn.backend.blas.backend()
    if kind != "FORTRAN":
        assert fastnn.backend.blas._blas.has_gemv()
