"""MkDocs hooks for the documentation site (mkdocs.yml, ``hooks:``).

- The performance page shows the newest plot in ``benchmarks/results/``: the hook adds that file
  to the site (as ``performance-latest.png``) and puts it where ``<!-- latest-benchmark -->`` is,
  so a new report needs no edit here.
- Links from ``docs/`` to files of the repository outside it (``../CONTRIBUTING.md``) work when
  the pages are read in the repository; on the site they become the file's name in the text, so
  that ``mkdocs build --strict`` does not fail on them.
"""
from __future__ import annotations

import pathlib
import re

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LATEST = "performance-latest.png"
_OUTSIDE = re.compile(r"\[([^\]]+)\]\(\.\./([^)#]+)(#[^)]*)?\)")


def _newest_plot() -> pathlib.Path:
    plots = sorted(RESULTS.glob("*.png"))
    if not plots:
        raise FileNotFoundError(f"no benchmark plot in {RESULTS}")
    return plots[-1]  # the names start with the date


def on_files(files, config):
    files.append(File.generated(config, LATEST, abs_src_path=str(_newest_plot())))
    return files


def on_page_markdown(markdown, page, config, files):
    if "<!-- latest-benchmark -->" in markdown:
        plot = _newest_plot()
        markdown = markdown.replace(
            "<!-- latest-benchmark -->",
            f"![{plot.stem}: microseconds per step, fastnn against the reference and PyTorch]({LATEST})\n\n"
            f"*{plot.stem}* (`benchmarks/results/{plot.name}`, with its report `{plot.stem}.md`).")
    return _OUTSIDE.sub(lambda m: f"{m.group(1)} (`{m.group(2)}` in the repository)", markdown)
