"""Build script for fastnn's compiled kernels.

`pip install .` (or `pip install -e .`) cythonizes every ``src_pyx/*.pyx`` listed in MODULES into
``fastnn/_ext/<name>``; a ``src_pyx/<name>.pyx.tp`` is a Tempita template, rendered into
``src_pyx/<name>.pyx`` first (git-ignored), as scikit-learn does with its ``.pyx.tp`` files.
Switches, read from the environment at build time:

  FASTNN_DEBUG=1           boundscheck/wraparound checks on, -O1 -g (slow; for finding bugs)
  FASTNN_ANNOTATE=1        write Cython's annotation HTML next to each .pyx (yellow = Python calls)
  FASTNN_NATIVE=1          add -march=native (opt-in only: the binary may not run on an older CPU)
  FASTNN_REQUIRE_OPENMP=1  fail the build instead of building serial kernels when OpenMP is missing
  FASTNN_SANITIZE=1        build with -fsanitize=address,undefined (see README, "Sanitizers")

Flags are -O3 -fno-math-errno -fno-trapping-math, never -ffast-math (it breaks NaN checks and can
flip the flush-to-zero mode of the whole process). The two -fno flags are the safe subset: results,
NaN and inf are unchanged (no reassociation, no finite-math assumption); they only let the compiler
vectorise sqrt and loops with selects and float/int conversions (clang's default is already
-fno-trapping-math).
"""
import glob
import os
import platform
import runpy
import shutil
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Modules built a second time for CPUs with AVX2 (fastnn._ext.<name>_avx2), chosen at import when
# the CPU has it: the elementwise kernels (exp, sqrt, division, the dropout generator) run 2-3x
# faster 8 lanes wide, and a binary built this way never runs on a CPU without AVX2 because the
# baseline module is used there. -ffp-contract=off keeps every result bit-identical to the
# baseline build (no fused multiply-adds).
DISPATCHED = ["_activations", "_dense", "_losses", "_accuracy", "_fused_head", "_optimizers", "_dropout"]
ISA_VARIANTS = {"avx2": ["-mavx2", "-mfma", "-ffp-contract=off"]}
ISA_STUB_DIR = os.path.join("build", "isa")

# Every src_pyx/<name>.pyx (or <name>.pyx.tp) becomes fastnn._ext.<name>. The list of modules fastnn
# needs at run time is fastnn/_ext/__init__.py:MODULES; a test checks that both agree.
TEMPLATES = sorted(glob.glob(os.path.join("src_pyx", "*.pyx.tp")))
MODULES = sorted({os.path.basename(p).split(".")[0]
                  for p in glob.glob(os.path.join("src_pyx", "*.pyx")) + TEMPLATES})
# The names the templates use (the dtype/label-kind dispatch), from this file.
TEMPLATE_NAMESPACE = os.path.join("src_pyx", "_templates.py")


def _env_flag(name):
    return os.environ.get(name, "0") not in ("", "0", "false", "False", "no")


DEBUG = _env_flag("FASTNN_DEBUG")
ANNOTATE = _env_flag("FASTNN_ANNOTATE")
NATIVE = _env_flag("FASTNN_NATIVE")
REQUIRE_OPENMP = _env_flag("FASTNN_REQUIRE_OPENMP")
SANITIZE = _env_flag("FASTNN_SANITIZE")

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    # C division also in the debug build: with Python semantics a float division by zero would raise
    # (unraisably, inside nogil loops) instead of giving IEEE inf/NaN, changing results.
    "cdivision": True,
    "embedsignature": True,
}

OPENMP_TEST_PROGRAM = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0);
        return 0;
    }
    """
)


def _openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None when a test program does not build.

    Like scikit-learn's build helper: compile and link a tiny `#pragma omp parallel` program with
    the compiler setuptools will use. On macOS a CPPFLAGS holding `-Xpreprocessor -fopenmp` wins.
    """
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin" and "openmp" in os.environ.get("CPPFLAGS", ""):
        candidates = [([], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for compile_args, link_args in candidates:
        tmp = tempfile.mkdtemp(prefix="fastnn-omp-")
        try:
            src = os.path.join(tmp, "test_openmp.c")
            with open(src, "w") as f:
                f.write(OPENMP_TEST_PROGRAM)
            objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
            compiler.link_executable(objects, "test_openmp", output_dir=tmp, extra_postargs=link_args)
            return compile_args, link_args
        except Exception:  # any compiler or linker failure means: no usable OpenMP
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    """Sets the flags once the compiler is known, probes OpenMP, and records the result."""

    def build_extensions(self):
        is_msvc = self.compiler.compiler_type == "msvc"
        if is_msvc:
            compile_args = ["/Od", "/Zi"] if DEBUG else ["/O2"]
            link_args = []
        else:
            compile_args = ["-O1", "-g"] if DEBUG else ["-O3", "-fno-math-errno", "-fno-trapping-math"]
            link_args = []
            if NATIVE:
                compile_args.append("-march=native")
            if SANITIZE:
                san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
                compile_args += san
                link_args += san

        omp = _openmp_flags(self.compiler)
        if omp is None:
            message = (
                "fastnn: OpenMP was not found (a test program with -fopenmp did not build); "
                "building serial kernels. Install an OpenMP runtime (libgomp or libomp) and rebuild "
                "to enable threaded kernels."
            )
            if REQUIRE_OPENMP:
                raise RuntimeError(message + " FASTNN_REQUIRE_OPENMP=1 makes this an error.")
            print("\n" + "*" * 80 + "\n" + message + "\n" + "*" * 80 + "\n", file=sys.stderr)
            omp_compile, omp_link = [], []
        else:
            omp_compile, omp_link = omp

        if is_msvc or platform.machine().lower() not in ("x86_64", "amd64"):
            # AVX2 variants are x86-64 only (and use GCC/clang flags): the baseline modules serve.
            self.extensions = [ext for ext in self.extensions if not ext.name.endswith(tuple(ISA_VARIANTS))]
        shown_flags = " ".join(compile_args + omp_compile)
        print(f"fastnn: compile flags: {shown_flags}; OpenMP: {'on' if omp else 'off'}", file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + omp_compile + ext.extra_compile_args
            ext.extra_link_args = link_args + omp_link + ext.extra_link_args
            ext.define_macros = ext.define_macros + [
                ("FASTNN_COMPILE_FLAGS", '"' + shown_flags + '"'),
                ("FASTNN_DEBUG_BUILD", "1" if DEBUG else "0"),
            ]
        super().build_extensions()


def _render_templates():
    """Render each src_pyx/<name>.pyx.tp into src_pyx/<name>.pyx, rewriting the file only when its
    text changes (Cython rebuilds what is newer than its .c)."""
    from Cython import Tempita

    namespace = {k: v for k, v in runpy.run_path(TEMPLATE_NAMESPACE).items() if not k.startswith("_")}
    for template in TEMPLATES:
        target = template[:-len(".tp")]
        header = f"# Generated from {os.path.basename(template)} by setup.py: edit the template, not this file.\n"
        with open(template) as f:
            text = header + Tempita.sub(f.read(), **namespace)
        if not os.path.exists(target) or open(target).read() != text:
            with open(target, "w") as f:
                f.write(text)


def _extensions():
    _render_templates()
    exts = [
        Extension(
            f"fastnn._ext.{name}",
            [os.path.join("src_pyx", f"{name}.pyx")],
            include_dirs=[numpy.get_include(), "src_pyx"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
        )
        for name in MODULES
    ]
    os.makedirs(ISA_STUB_DIR, exist_ok=True)
    for variant, flags in ISA_VARIANTS.items():
        for name in DISPATCHED:
            # The variant is the same source compiled under another module name: a one-line stub.
            stub = os.path.join(ISA_STUB_DIR, f"{name}_{variant}.pyx")
            text = f'include "{name}.pyx"\n'
            if not os.path.exists(stub) or open(stub).read() != text:
                with open(stub, "w") as f:
                    f.write(text)
            exts.append(Extension(
                f"fastnn._ext.{name}_{variant}", [stub],
                include_dirs=[numpy.get_include(), "src_pyx"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION")],
                extra_compile_args=list(flags),
            ))
    return cythonize(
        exts,
        include_path=["src_pyx"],
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        force=_switches_changed(),
    )


def _switches_changed():
    """True when the directives differ from the last build's: the generated .c files carry them,
    and Cython only compares timestamps, so a debug build followed by a normal one would keep
    bounds checks on without this."""
    stamp = os.path.join("build", "fastnn-directives.txt")
    current = repr(sorted(DIRECTIVES.items()))
    try:
        with open(stamp) as f:
            previous = f.read()
    except OSError:
        previous = None
    if previous == current:
        return False
    os.makedirs("build", exist_ok=True)
    with open(stamp, "w") as f:
        f.write(current)
    return True


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
