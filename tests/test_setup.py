"""The build script: which platforms get the AVX2 variants, and what makes it compile again.

setup.py is imported as a module here (it calls setup() only when run as a script, as pip and
`python setup.py` do); nothing is compiled.
"""
import importlib.util
import os
import shutil
import types

import pytest


@pytest.fixture
def setup_py(source, monkeypatch):
    """setup.py loaded as a module, with the working directory at the repository root (its paths
    are relative, as when pip runs it)."""
    pytest.importorskip("setuptools")
    monkeypatch.chdir(source)
    spec = importlib.util.spec_from_file_location("fastnn_setup_script", source / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("plat_name, archflags, expected", [
    ("linux-x86_64", "", {"x86_64"}),
    ("linux-aarch64", "", {"aarch64"}),
    ("win-amd64", "", {"x86_64"}),
    ("win-arm64", "", {"arm64"}),
    ("macosx-11.0-arm64", "-arch arm64", {"arm64"}),
    # cibuildwheel cross-builds x86-64 wheels on Apple silicon: ARCHFLAGS names the target.
    ("macosx-10.13-x86_64", "-arch x86_64", {"x86_64"}),
    ("macosx-11.0-arm64", "-arch x86_64", {"x86_64"}),
    ("macosx-10.13-universal2", "-arch x86_64 -arch arm64", {"x86_64", "arm64"}),
    ("macosx-10.13-universal2", "", {"x86_64", "arm64"}),
])
def test_target_architectures(setup_py, monkeypatch, plat_name, archflags, expected):
    monkeypatch.setattr(setup_py.sys, "platform", "darwin" if plat_name.startswith("macosx") else "linux")
    monkeypatch.setenv("ARCHFLAGS", archflags)
    assert setup_py._target_arches(plat_name) == expected


@pytest.mark.parametrize("compiler, arches, expected", [
    ("unix", {"x86_64"}, True),
    ("unix", {"aarch64"}, False),              # no -mavx2 on arm64
    ("unix", {"arm64"}, False),
    ("unix", {"x86_64", "arm64"}, False),      # universal2: the flags would break the arm64 slice
    ("msvc", {"x86_64"}, False),               # GCC/clang flags only
])
def test_avx2_variants_only_for_x86_64_with_gcc_or_clang(setup_py, compiler, arches, expected):
    assert setup_py._builds_isa_variants(compiler, arches) is expected


def _extension(setup_py, tmp_path, source="int x;", **options):
    c_file = tmp_path / "_mod.c"
    c_file.write_text(source)
    return setup_py.Extension("fastnn._ext._mod", [str(c_file)], **options)


def test_compile_cache_key_follows_what_the_binary_depends_on(setup_py, tmp_path):
    compiler = types.SimpleNamespace(compiler_type="unix", compiler_so=["gcc", "-O2"], linker_so=["gcc", "-shared"])
    numpy_include = setup_py.numpy.get_include()
    key = setup_py._cache_key(compiler, _extension(setup_py, tmp_path, include_dirs=[numpy_include]), "linux-x86_64")
    assert key == setup_py._cache_key(compiler, _extension(setup_py, tmp_path, include_dirs=[numpy_include]),
                                      "linux-x86_64")
    changed = [
        setup_py._cache_key(compiler, _extension(setup_py, tmp_path, "int y;", include_dirs=[numpy_include]),
                            "linux-x86_64"),
        setup_py._cache_key(compiler, _extension(setup_py, tmp_path, include_dirs=[numpy_include],
                                                 extra_compile_args=["-mavx2"]), "linux-x86_64"),
        setup_py._cache_key(compiler, _extension(setup_py, tmp_path, include_dirs=[numpy_include]), "linux-aarch64"),
        setup_py._cache_key(types.SimpleNamespace(compiler_type="unix", compiler_so=["clang", "-O2"],
                                                  linker_so=["gcc", "-shared"]),
                            _extension(setup_py, tmp_path, include_dirs=[numpy_include]), "linux-x86_64"),
    ]
    assert key not in changed and len(set(changed)) == len(changed)


def test_compile_cache_key_ignores_where_the_build_environment_lives(setup_py, tmp_path, monkeypatch):
    """pip builds in a fresh temporary environment each time: NumPy's include folder moves, the
    key must not."""
    compiler = types.SimpleNamespace(compiler_type="unix", compiler_so=["gcc"], linker_so=["gcc"])
    here = setup_py._cache_key(compiler, _extension(setup_py, tmp_path, include_dirs=[setup_py.numpy.get_include()]),
                               "linux-x86_64")
    monkeypatch.setattr(setup_py.numpy, "get_include", lambda: "/tmp/pip-build-env-other/numpy/_core/include")
    there = setup_py._cache_key(compiler, _extension(setup_py, tmp_path,
                                                     include_dirs=["/tmp/pip-build-env-other/numpy/_core/include"]),
                                "linux-x86_64")
    assert here == there


def test_cython_runs_only_for_modules_whose_sources_changed(source, tmp_path, monkeypatch):
    """A copy of the sources: the first pass cythonizes every module, the second none (their C
    files are reused), touching one .pyx's content cythonizes that module alone, and a shared
    .pxd or an included .pxi cythonizes again."""
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    tree = tmp_path / "tree"
    shutil.copytree(source / "src_pyx", tree / "src_pyx", ignore=shutil.ignore_patterns("*.c", "*.html"))
    shutil.copy(source / "setup.py", tree / "setup.py")
    monkeypatch.chdir(tree)
    spec = importlib.util.spec_from_file_location("fastnn_setup_copy", tree / "setup.py")
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)
    calls = []

    import Cython.Build

    def fake_cythonize(extensions, **options):
        calls.append(sorted(ext.name for ext in extensions))
        for ext in extensions:
            c_file = os.path.splitext(ext.sources[0])[0] + ".c"
            with open(c_file, "w") as f:
                f.write("/* generated */\n")
            ext.sources = [c_file]
        return extensions

    monkeypatch.setattr(Cython.Build, "cythonize", fake_cythonize)
    first = setup_py._extensions()
    assert len(calls) == 1 and len(calls[0]) == len(first)
    second = setup_py._extensions()
    assert len(calls) == 1, "nothing changed, yet Cython ran again"
    assert all(ext.sources[0].endswith(".c") for ext in second)
    pyx = tree / "src_pyx" / "_conv.pyx"
    pyx.write_text(pyx.read_text() + "\n# changed\n")
    setup_py._extensions()
    assert calls[-1] == ["fastnn._ext._conv"]
    pxd = tree / "src_pyx" / "_common.pxd"
    pxd.write_text(pxd.read_text() + "\n# changed\n")
    setup_py._extensions()
    assert len(calls[-1]) == len(first), "a shared .pxd changed: every module depends on it"
    pxi = tree / "src_pyx" / "_status.pxi"
    pxi.write_text(pxi.read_text() + "\n# changed\n")
    before = len(calls)
    setup_py._extensions()
    assert len(calls) == before + 1, "an included .pxi changed (the status codes): its modules cythonize again"

