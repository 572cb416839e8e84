"""Build script for fastnn's compiled kernels.

`pip install .` (or `pip install -e .`) cythonizes every ``src_pyx/*.pyx`` listed in MODULES into
``fastnn/_ext/<name>``; a ``src_pyx/<name>.pyx.tp`` is a Tempita template, rendered into
``src_pyx/<name>.pyx`` first (git-ignored), as scikit-learn does with its ``.pyx.tp`` files.
Wheels (``.github/workflows/wheels.yml``, cibuildwheel) are built by this same script on every
platform. Switches, read from the environment at build time:

  FASTNN_DEBUG=1           boundscheck/wraparound checks on, -O1 -g (slow; for finding bugs)
  FASTNN_ANNOTATE=1        write Cython's annotation HTML next to each .pyx (yellow = Python calls)
  FASTNN_NATIVE=1          add -march=native (opt-in only: the binary may not run on an older CPU)
  FASTNN_REQUIRE_OPENMP=1  fail the build instead of building serial kernels when OpenMP is missing
  FASTNN_SANITIZE=1        build with -fsanitize=address,undefined (see CONTRIBUTING, "Sanitizers")
  FASTNN_BUILD_JOBS=N      compile N modules at a time (default: the CPU count)
  FASTNN_NO_CACHE=1        do not reuse compiled modules from build/cache (see below)

Flags are -O3 -fno-math-errno -fno-trapping-math (MSVC: /O2), never -ffast-math (it breaks NaN
checks and can flip the flush-to-zero mode of the whole process). The two -fno flags are the safe
subset: results, NaN and inf are unchanged (no reassociation, no finite-math assumption); they only
let the compiler vectorise sqrt and loops with selects and float/int conversions (clang's default
is already -fno-trapping-math).

Progress: one line per module on stderr (``fastnn: [3/13] compiling fastnn._ext._conv``). pip
hides a build's output unless it fails; ``pip install -v .`` shows these lines.

No needless recompiling: every compiled module is also kept in ``build/cache/``, under a key made
of its C source, the compiler command, the flags, Python's and NumPy's versions. A later build
with the same key (``pip install -e ".[test]"`` after ``pip install -e .``, which pip builds
again from scratch in a temporary folder) copies the module instead of compiling it.
"""
import glob
import hashlib
import os
import runpy
import shutil
import sys
import sysconfig
import tempfile
import textwrap
import time

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Modules built a second time for CPUs with AVX2 (fastnn._ext.<name>_avx2), chosen at import when
# the CPU has it: the elementwise kernels (exp, sqrt, division, the dropout generator) run 2-3x
# faster 8 lanes wide, and a binary built this way never runs on a CPU without AVX2 because the
# baseline module is used there. -ffp-contract=off keeps every result bit-identical to the
# baseline build (no fused multiply-adds).
DISPATCHED = ["_activations", "_dense", "_losses", "_accuracy", "_fused_head", "_fused_mlp", "_fused_deep", "_optimizers",
              "_dropout", "_batchnorm"]
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
NO_CACHE = _env_flag("FASTNN_NO_CACHE")
CACHE_DIR = os.path.join("build", "cache")
STAMP_DIR = os.path.join("build", "cython-stamps")

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


def _target_arches(plat_name):
    """The CPU architectures the build targets: from setuptools' platform name (which follows
    ``_PYTHON_HOST_PLATFORM`` in a cross build) and, on macOS, from ``ARCHFLAGS`` (cibuildwheel sets
    ``-arch arm64`` or ``-arch x86_64``; universal2 is both). Not ``platform.machine()``: that is
    the machine running the build, not the one the binary is for."""
    arches = set()
    if sys.platform == "darwin":
        flags = os.environ.get("ARCHFLAGS", "").split()
        arches = {flags[i + 1] for i, flag in enumerate(flags[:-1]) if flag == "-arch"}
        if not arches and plat_name.endswith("universal2"):
            arches = {"x86_64", "arm64"}
    if not arches:
        arches = {plat_name.rsplit("-", 1)[-1].lower()}
    return {"x86_64" if arch in ("amd64", "x86_64") else arch for arch in arches}


def _builds_isa_variants(compiler_type, arches):
    """The AVX2 variants are for x86-64 only, with GCC/clang flags: on arm64 (Linux aarch64, Apple
    silicon), in a universal2 build and with MSVC the portable modules are the only build (and
    `import fastnn` uses them; see fastnn/_ext/__init__.py)."""
    return compiler_type != "msvc" and arches == {"x86_64"}


def _cache_key(compiler, ext, plat_name):
    """What a compiled module depends on, hashed: its C sources, the compiler and its command
    lines, the module's flags and macros, the platform, Python's ABI and NumPy's version (the C
    source already carries Cython's version and every inlined .pxd)."""
    digest = hashlib.sha256()
    for source in ext.sources:
        with open(source, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    facts = [ext.name, plat_name, sys.version, sysconfig.get_config_var("EXT_SUFFIX"), numpy.__version__,
             compiler.compiler_type, ext.extra_compile_args, ext.extra_link_args, ext.define_macros,
             [("<numpy>" if d == numpy.get_include() else d) for d in ext.include_dirs], ext.libraries,
             ext.library_dirs]
    for attribute in ("compiler_so", "linker_so", "compile_options", "ldflags_shared", "cc", "linker"):
        facts.append(getattr(compiler, attribute, None))
    digest.update(repr(facts).encode())
    return digest.hexdigest()[:32]


class BuildExt(build_ext):
    """Sets the flags once the compiler is known, probes OpenMP, records the result, compiles the
    modules in parallel with one progress line each, and reuses unchanged ones from build/cache."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            jobs = os.environ.get("FASTNN_BUILD_JOBS", "")
            self.parallel = int(jobs) if jobs.isdigit() and int(jobs) > 0 else (os.cpu_count() or 1)

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
                "building serial kernels (only the convolution uses threads; everything else is the "
                "same). Install an OpenMP runtime (libgomp or libomp) and rebuild to enable threaded "
                "convolutions."
            )
            if REQUIRE_OPENMP:
                raise RuntimeError(message + " FASTNN_REQUIRE_OPENMP=1 makes this an error.")
            print("\n" + "*" * 80 + "\n" + message + "\n" + "*" * 80 + "\n", file=sys.stderr)
            omp_compile, omp_link = [], []
        else:
            omp_compile, omp_link = omp

        arches = _target_arches(self.plat_name)
        if not _builds_isa_variants(self.compiler.compiler_type, arches):
            self.extensions = [ext for ext in self.extensions if not ext.name.endswith(tuple(ISA_VARIANTS))]
        shown_flags = " ".join(compile_args + omp_compile)
        print(f"fastnn: building {len(self.extensions)} modules for {self.plat_name} ({', '.join(sorted(arches))}) "
              f"with {self.compiler.compiler_type}, {self.parallel} at a time; compile flags: {shown_flags}; "
              f"OpenMP: {'on' if omp else 'off'}", file=sys.stderr, flush=True)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + omp_compile + ext.extra_compile_args
            ext.extra_link_args = link_args + omp_link + ext.extra_link_args
            ext.define_macros = ext.define_macros + [
                ("FASTNN_COMPILE_FLAGS", '"' + shown_flags + '"'),
                ("FASTNN_DEBUG_BUILD", "1" if DEBUG else "0"),
            ]
        self._progress = {ext.name: i for i, ext in enumerate(self.extensions, 1)}
        started = time.perf_counter()
        super().build_extensions()
        print(f"fastnn: {len(self.extensions)} modules ready in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)

    def build_extension(self, ext):
        where = f"fastnn: [{self._progress.get(ext.name, '?')}/{len(self.extensions)}] {ext.name}"
        target = self.get_ext_fullpath(ext.name)
        cached = None
        if not (NO_CACHE or DEBUG or SANITIZE or ANNOTATE):
            key = _cache_key(self.compiler, ext, self.plat_name)
            cached = os.path.join(CACHE_DIR, ext.name, key, os.path.basename(target))
            if os.path.isfile(cached):
                os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
                shutil.copy2(cached, target)
                print(f"{where}: unchanged, reused from {os.path.dirname(cached)}", file=sys.stderr, flush=True)
                return
        print(f"{where}: compiling", file=sys.stderr, flush=True)
        started = time.perf_counter()
        self.force = True  # the target may be stale from an older build: the cache decided
        super().build_extension(ext)
        print(f"{where}: compiled in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        if cached is not None:
            _store(target, cached)


def _store(built, cached):
    """Keep a copy of a freshly built module under its key (atomically), dropping older keys."""
    folder = os.path.dirname(cached)
    try:
        parent = os.path.dirname(folder)
        if os.path.isdir(parent):
            for old in os.listdir(parent):
                if old != os.path.basename(folder):
                    shutil.rmtree(os.path.join(parent, old), ignore_errors=True)
        os.makedirs(folder, exist_ok=True)
        partial = cached + f".{os.getpid()}.part"
        shutil.copy2(built, partial)
        os.replace(partial, cached)
    except OSError as exc:  # a cache that cannot be written only costs the next build time
        print(f"fastnn: could not cache {built} ({exc})", file=sys.stderr)


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
    return _cythonize(exts)


def _cython_digest(pyx):
    """What the C file generated from `pyx` depends on: the .pyx (a variant stub: the .pyx it
    includes), every .pxd and .pxi of src_pyx, Cython's and NumPy's versions and the directives."""
    import Cython
    digest = hashlib.sha256()
    files = [pyx]
    if os.path.dirname(pyx) == ISA_STUB_DIR:
        files.append(os.path.join("src_pyx", os.path.basename(pyx).rsplit("_", 1)[0] + ".pyx"))
    files += sorted(glob.glob(os.path.join("src_pyx", "**", "*.pxd"), recursive=True)
                    + glob.glob(os.path.join("src_pyx", "**", "*.pxi"), recursive=True))
    for path in files:
        with open(path, "rb") as f:
            digest.update(path.replace(os.sep, "/").encode() + b"\0" + f.read() + b"\0")
    digest.update(repr((Cython.__version__, numpy.__version__, sorted(DIRECTIVES.items()))).encode())
    return digest.hexdigest()


def _cythonize(exts):
    """Cythonize only the modules whose inputs changed since the C file was generated (a stamp per
    module in build/cython-stamps). Cython itself compares timestamps, and a fresh build
    environment (pip's isolation) holds NumPy's .pxd files with new ones: it would regenerate
    every C file, and the compile cache would miss, on every `pip install`."""
    stale, stamps = [], {}
    for ext in exts:
        pyx = ext.sources[0]
        c_file = os.path.splitext(pyx)[0] + ".c"
        stamp = os.path.join(STAMP_DIR, ext.name + ".txt")
        digest = _cython_digest(pyx)
        try:
            with open(stamp) as f:
                fresh = f.read() == digest
        except OSError:
            fresh = False
        if fresh and not ANNOTATE and os.path.isfile(c_file):
            ext.sources = [c_file]
        else:
            stale.append(ext)
            stamps[ext.name] = (stamp, digest)
    if not stale:
        print(f"fastnn: the Cython sources of all {len(exts)} modules are unchanged; reusing their C files",
              file=sys.stderr, flush=True)
        return exts
    print(f"fastnn: cythonizing {len(stale)} of {len(exts)} modules: {', '.join(e.name for e in stale)}",
          file=sys.stderr, flush=True)
    from Cython.Build import cythonize

    done = {ext.name: ext for ext in cythonize(stale, include_path=["src_pyx"], compiler_directives=DIRECTIVES,
                                                annotate=ANNOTATE, force=True)}
    os.makedirs(STAMP_DIR, exist_ok=True)
    for name, (stamp, digest) in stamps.items():
        with open(stamp, "w") as f:
            f.write(digest)
    return [done.get(ext.name, ext) for ext in exts]


if __name__ == "__main__":  # pip (setuptools' build backend) and `python setup.py` run it as __main__
    setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
