"""Run the test suite against an installed fastnn (a wheel), never against the source tree.

    python .ci/test_installed.py SOURCE_TREE [pytest arguments...]

Used by .ci/wheel here and by cibuildwheel for every wheel (pyproject.toml, test-command), on
Linux, macOS and Windows alike, hence Python rather than a shell script. It copies tests/ and
pyproject.toml (for pytest's settings) from SOURCE_TREE into a temporary folder outside the
repository and runs pytest there: no `./fastnn` folder is in reach, so `import fastnn` finds the
installed package or fails. FASTNN_SOURCE_TREE tells the tests where the repository's files are
(README, docs, setup.py, test_networks.py: read, never imported), and FASTNN_EXPECT_INSTALLED=1
makes tests/test_installed.py check that fastnn really came from the installation.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    source = pathlib.Path(argv[0]).resolve()
    if not (source / "tests").is_dir() or not (source / "pyproject.toml").is_file():
        print(f"test_installed: {source} is not the fastnn repository (no tests/ or pyproject.toml)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fastnn-installed-tests-") as folder:
        work = pathlib.Path(folder).resolve()
        if work == source or source in work.parents:
            print(f"test_installed: the temporary folder {work} is inside the repository", file=sys.stderr)
            return 2
        shutil.copytree(source / "tests", work / "tests",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis"))
        shutil.copy(source / "pyproject.toml", work / "pyproject.toml")
        env = dict(os.environ, FASTNN_SOURCE_TREE=str(source), FASTNN_EXPECT_INSTALLED="1")
        env.pop("PYTHONPATH", None)
        where = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.__file__)"], cwd=work, env=env,
                               capture_output=True, text=True)
        if where.returncode != 0:
            print(f"test_installed: fastnn does not import from {work}:\n{where.stderr}", file=sys.stderr)
            return 1
        print(f"test_installed: fastnn from {where.stdout.strip()}; tests copied to {work}", flush=True)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(work), *argv[1:]]
        return subprocess.run(command, cwd=work, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
