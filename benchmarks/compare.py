#!/usr/bin/env python
"""Two checkouts of fastnn timed side by side: before and after a change.

    python benchmarks/compare.py ../before . --rounds 3 --threads 1,2
    python benchmarks/compare.py ../before . --configs spiral,mnist -- --budget 0.5

Each checkout must be built in place (``python setup.py build_ext --inplace``). Every round runs
each checkout's own ``benchmarks/run.py --quick --no-torch`` (with its own fastnn first on
``PYTHONPATH``) in a fresh random order, so machine drift hits both alike; the table gives, per
configuration, thread count and fastnn peer, the median over rounds of each run's median step
time, and the ratio after / before (below 1: faster). Arguments after ``--`` go to run.py.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile

PEERS = ("fastnn", "fastnn-manual", "fastnn-train-step", "fastnn-raw")


def _run(tree: pathlib.Path, name: str, out: pathlib.Path, args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(tree / "benchmarks" / "run.py"), "--quick", "--no-torch", "--no-anatomy",
               "--name", name, "--out", str(out), *args]
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / f"{name}.json").read_text())


def _medians(report: dict) -> dict:
    """{(threads, config, peer): median µs per step} of one run.py report."""
    found = {}
    for run in report["runs"]:
        for config, result in run["steps"].items():
            for peer in PEERS:
                if peer in result.get("peers", {}):
                    found[(run["threads"], config, peer)] = result["peers"][peer]["median"]
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=pathlib.Path, help="checkout measured as 'before'")
    parser.add_argument("after", type=pathlib.Path, help="checkout measured as 'after'")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each runs both checkouts once)")
    parser.add_argument("--threads", default="1,2", help="thread counts, as run.py takes them")
    parser.add_argument("--configs", default="", help="configurations (default: run.py's quick set)")
    parser.add_argument("--markdown", type=pathlib.Path, help="also write the table to this file")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    run_args = ["--threads", args.threads, *(["--configs", args.configs] if args.configs else []), *extra]
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    samples: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = list(trees)
            random.shuffle(order)
            for label in order:
                print(f"round {r + 1}/{args.rounds}: {label} ({trees[label]})", file=sys.stderr, flush=True)
                samples[label].append(_medians(_run(trees[label], f"{label}-{r}", pathlib.Path(tmp), run_args)))
    keys = sorted(set.intersection(*(set(s) for s in samples["before"] + samples["after"])))
    lines = [f"Median step time (µs) over {args.rounds} interleaved rounds of `run.py --quick --no-torch` "
             f"in each checkout; ratio = after / before.", "",
             "| threads | config | peer | before | after | ratio |", "|---|---|---|---|---|---|"]
    for key in keys:
        before = statistics.median(s[key] for s in samples["before"])
        after = statistics.median(s[key] for s in samples["after"])
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {before:.1f} | {after:.1f} | {after / before:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
