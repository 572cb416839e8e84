"""The report's markdown and its plot, from the report's JSON-able dict (what run.py measures)."""
from __future__ import annotations

import pathlib

import numpy as np

from configs import CONFIGS, target_text


def _us(s) -> str:
    if s is None:
        return "–"
    m = s["median"]
    fmt = (lambda x: f"{x:,.0f}") if m >= 100 else (lambda x: f"{x:.1f}")
    return f"{fmt(m)} [{fmt(s['p10'])}–{fmt(s['p90'])}]"


def _x(r, digits=2) -> str:
    return "–" if r is None else f"{r:.{digits}f}x"


def _yes(v) -> str:
    return "–" if v is None else ("met" if v else "**missed**")


def markdown(report: dict) -> str:
    m = report["meta"]
    lines = [f"# fastnn benchmark report: {m['date'][:10]}, {m['host']}", ""]
    lines += [
        f"`{m['command']}` ({m['profile']} profile: {m['settings']['rounds']} interleaved rounds per configuration)",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags'])}); {m['platform']}",
        f"- Python {m['python']}, NumPy {m['numpy']}, fastnn {m['fastnn']}, torch {m['torch'] or 'not installed'}"
        f" (Adam: {m['torch_adam']}), jax {m.get('jax') or 'not installed'}"
        + (f" ({m['jax_note']})" if m.get("jax_note") else ""),
        f"- fastnn build: `{m['fastnn_config']['compile_flags']}`, OpenMP "
        f"{'on' if m['fastnn_config']['openmp'] else 'off'}; GEMM: {m['fastnn_config']['gemm_backend']}",
        "- environment: " + (", ".join(f"{k}={v}" for k, v in m["env"].items() if v is not None)
                             or "OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, OMP_WAIT_POLICY, "
                                "GOMP_SPINCOUNT all unset (thread counts are set by the script, below)"),
        f"- data: spiral from the nnfs formula; 784-input configurations: {m['mnist']}",
        f"- load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}",
        "",
        "Medians in µs per step with [p10–p90] over individually timed steps; ratios are of medians from "
        "this run. `fastnn/GEMM floor` is the fastnn step against the same step's GEMMs alone "
        "(`fastnn.blas.gemm` into preallocated buffers); `reference/fastnn` and `torch/fastnn` above 1 "
        "mean fastnn is faster.",
    ]
    for run in report["runs"]:
        n = run["threads"]
        pools = "; ".join(f"{p.get('api')} {p.get('threads')} thr ({p.get('library')})" for p in run["threadpools"])
        lines += ["", f"## Training steps and inference, {n} thread(s)", "",
                  f"Thread pools while measuring: {pools}; torch threads {run['torch_threads']}; fastnn OpenMP "
                  f"max threads {run['fastnn_openmp_threads']}; settle sleep between torch and NumPy-BLAS "
                  f"blocks {run.get('settle_s', 0)} s; jax threads {run.get('jax_threads')}"
                  + (f" ({run['jax_note']})" if run.get("jax_note") else "") + ".", "",
                  "| config | fastnn | reference | torch | jax.jit | GEMM floor | reference/fastnn | torch/fastnn | "
                  "jax/fastnn | fastnn/GEMM floor | target | target met? | faster than torch? |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, s in run["steps"].items():
            p, r = s["peers"], s["ratios"]
            lines.append(f"| {name} | {_us(p['fastnn'])} | {_us(p['reference'])} | {_us(p.get('torch'))} | "
                         f"{_us(p.get('jax'))} | {_us(p['gemm-floor'])} | {_x(r['reference/fastnn'])} | "
                         f"{_x(r['torch/fastnn'])} | {_x(r.get('jax/fastnn'))} | {_x(r['fastnn/gemm-floor'])} | {s['target']} | {_yes(s['target_met'])} | "
                         f"{'–' if s['beats_torch'] is None else ('yes' if s['beats_torch'] else '**no**')} |")
        lines += ["", f"Ratios from the p10s ({n} thread(s)): noise only adds time, so on a busy machine these are "
                  "closer to the undisturbed cost; a large gap to the median ratios above marks a disturbed row.", "",
                  "| config | reference/fastnn | torch/fastnn | fastnn/GEMM floor |", "|---|---|---|---|"]
        for name, s in run["steps"].items():
            p = s["peers"]
            f10 = p["fastnn"]["p10"]
            t10 = _x(p["torch"]["p10"] / f10) if "torch" in p else "–"
            lines.append(f"| {name} | {_x(p['reference']['p10'] / f10)} | {t10} | {_x(f10 / p['gemm-floor']['p10'])} |")
        trained = [(name, s["peers"]) for name, s in run["steps"].items() if "fastnn-train-step" in s["peers"]]
        if trained:
            lines += ["", f"### Model.train's step, {n} thread(s)", "",
                      "`fastnn-train-step` is what `Model.train` runs per batch: the compiled plan's step "
                      "(fastnn/_plan.py) for the models it has one for, else `Model._train_step`.", "",
                      "| config | Model.train step | reference | torch | jax.jit | reference/train step | "
                      "torch/train step | jax/train step |",
                      "|---|---|---|---|---|---|---|---|"]
            for name, p in trained:
                t = p["fastnn-train-step"]["median"]
                torch_ratio = _x(p["torch"]["median"] / t) if "torch" in p else "–"
                jax_ratio = _x(p["jax"]["median"] / t) if "jax" in p else "–"
                lines.append(f"| {name} | {_us(p['fastnn-train-step'])} | {_us(p['reference'])} | "
                             f"{_us(p.get('torch'))} | {_us(p.get('jax'))} | {_x(p['reference']['median'] / t)} | "
                             f"{torch_ratio} | {jax_ratio} |")
        lines += ["", f"### The Python layer's cost per step, {n} thread(s)", "",
                  "`fastnn-raw` issues the same step's kernel calls straight to the entry points "
                  "(`fastnn._ext._dense.forward(layer.__dict__, x)`, ...): no class methods, no Python-side "
                  "checks. public − raw is what the Python layer costs; raw − floor is the kernels' non-GEMM "
                  "work plus their call cost.", "",
                  "| config | fastnn (book step) | Model._train_step | fastnn-raw | GEMM floor | public − raw | "
                  "raw − floor | other |", "|---|---|---|---|---|---|---|---|"]
        for name, s in run["steps"].items():
            p = s["peers"]
            f, raw, fl = p["fastnn"]["median"], p["fastnn-raw"]["median"], p["gemm-floor"]["median"]
            extra = [f"{k}: {_us(p[k])}" for k in ("fastnn-predict", "fastnn-manual", "reference-manual") if k in p]
            if "fastnn-manual" in p and "reference-manual" in p:
                extra.append(f"reference-manual/fastnn-manual {_x(p['reference-manual']['median'] / p['fastnn-manual']['median'])}")
            second = p.get("fastnn-train-step")
            lines.append(f"| {name} | {_us(p['fastnn'])} | {_us(second)} | {_us(p['fastnn-raw'])} | "
                         f"{_us(p['gemm-floor'])} | {f - raw:,.1f} ({(f - raw) / f:.0%}) | "
                         f"{raw - fl:,.1f} ({(raw - fl) / f:.0%}) | {'; '.join(extra)} |")
        if run["anatomy"]:
            lines += ["", f"### Step anatomy, {n} thread(s): median µs of each call inside one step", ""]
            for name, variants in run["anatomy"].items():
                lines += [f"<details><summary>{name}</summary>", ""]
                pub_f, pub_r = variants["fastnn"], variants["reference"]
                lines += ["| public call | fastnn | reference |", "|---|---|---|"]
                for (label, a), (_, b) in zip(pub_f, pub_r):
                    lines.append(f"| {label} | {a:,.2f} | {b:,.2f} |")
                lines.append(f"| **sum** | **{sum(a for _, a in pub_f):,.1f}** | **{sum(b for _, b in pub_r):,.1f}** |")
                lines += ["", "| raw kernel call | fastnn-raw |", "|---|---|"]
                for label, a in variants["fastnn-raw"]:
                    lines.append(f"| {label} | {a:,.2f} |")
                lines.append(f"| **sum** | **{sum(a for _, a in variants['fastnn-raw']):,.1f}** |")
                lines += ["", "</details>", ""]
        if run["ops"]:
            cols = ["fastnn", "fastnn-fast", "fastnn-book", "reference", "torch", "gemm-floor"]
            lines += ["", f"## Ops, {n} thread(s) (µs per call)", "",
                      "| op | " + " | ".join(cols) + " | reference/fastnn | torch/fastnn |",
                      "|---|" + "---|" * (len(cols) + 2)]
            for group, peers in run["ops"].items():
                base = peers.get("fastnn") or peers.get("fastnn-fast")
                refr = peers["reference"]["median"] / base["median"]
                tr = peers["torch"]["median"] / base["median"] if "torch" in peers else None
                lines.append(f"| {group} | " + " | ".join(_us(peers.get(c)) if c in peers else "" for c in cols)
                             + f" | {_x(refr)} | {_x(tr)} |")
    baselines = [(c.name, c.baseline) for c in CONFIGS.values() if c.baseline]
    lines += ["", "## The baselines measured before the kernels were tuned (µs per step, for context)", "",
              "| config | reference | torch | GEMMs |", "|---|---|---|---|"]
    lines += [f"| {n} | {b['reference']:,} | {b['torch']:,} | {b['gemm-floor']:,} |" for n, b in baselines]
    lines += ["", "## Configurations", ""]
    lines += [f"- `{c.name}`: {c.description}; target {target_text(c)} and faster than torch"
              for c in CONFIGS.values()]
    lines += ["", "## Run notes", "",
              "Other processes' share of the machine's CPU (all cores): just before each configuration "
              "(this process asleep) and averaged over its measurement (/proc/stat less this process's own "
              "CPU time); and the 1/5/15-minute load averages. Figures measured while others took a "
              "sizeable share are suspect, 2-thread ones most.", "",
              "| threads | config | seconds | waited for idle (s) | others' CPU before → during | "
              "load average before → after | data |", "|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        for name, s in run["steps"].items():
            b0, b1 = s["others_busy"]
            pct = (lambda b: "–" if b is None else f"{b:.0%}")
            lines.append(f"| {run['threads']} | {name} | {s['seconds']} | {s['waited_for_idle_s']} | {pct(b0)} → "
                         f"{pct(b1)} | {s['loadavg'][0]} → {s['loadavg'][1]} | {s['data']} |")
    lines += ["", "Note: a shared machine (other processes may run concurrently); the load averages above "
              "and the p10–p90 spreads say how noisy this run was.", ""]
    return "\n".join(lines)


def _user_path(peers: dict):
    """The median of what a user's script runs per batch: Model.train's step for the training
    configurations, Model.predict for the inference ones (None when neither was measured)."""
    for name in ("fastnn-train-step", "fastnn-predict"):
        if name in peers:
            return peers[name]["median"]
    return None


def _plot_user_path(ax, run: dict, names: list, x) -> None:
    """The peers (reference, torch, jax) over Model.train's step (Model.predict for inference)."""
    width = 0.27
    for offset, peer in ((-width, "reference"), (0.0, "torch"), (width, "jax")):
        values = []
        for n in names:
            peers = run["steps"][n]["peers"]
            mine = _user_path(peers)
            theirs = peers.get(peer, {}).get("median") if isinstance(peers.get(peer), dict) else None
            values.append(theirs / mine if mine and theirs else np.nan)
        ax.bar(x + offset, values, width, label=f"{peer} / Model.train (predict)")
    _axes(ax, names, x, "speed-up of fastnn (x)", f"{run['threads']} thread(s): what Model.train / Model.predict run",
          legend=True)


def _axes(ax, names: list, x, ylabel: str, title: str, legend: bool) -> None:
    """A panel's common frame: the line at 1, a log scale, the configurations' names."""
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)


def plot(report: dict, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    fig, axes = plt.subplots(len(runs), 3, figsize=(18, 3.8 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        names = list(run["steps"])
        x = np.arange(len(names))
        ref_r = [run["steps"][n]["ratios"]["reference/fastnn"] for n in names]
        tor_r = [run["steps"][n]["ratios"]["torch/fastnn"] or np.nan for n in names]
        ax = row[0]
        ax.bar(x - 0.2, ref_r, 0.4, label="reference / fastnn")
        ax.bar(x + 0.2, tor_r, 0.4, label="torch / fastnn")
        for i, n in enumerate(names):
            t = CONFIGS[n].target
            if t.get("kind") == "ref_ratio":
                ax.plot([i - 0.4, i], [t["value"]] * 2, "k--", lw=1)
        _axes(ax, names, x, "speed-up of fastnn (x)", f"{run['threads']} thread(s): fastnn vs peers (dashes: targets)",
              legend=True)
        ax = row[1]
        fl = [run["steps"][n]["ratios"]["fastnn/gemm-floor"] for n in names]
        ax.bar(x, fl, 0.5, color="tab:green")
        for i, n in enumerate(names):
            t = CONFIGS[n].target
            if t.get("kind") == "floor_ratio":
                ax.plot([i - 0.3, i + 0.3], [t["value"]] * 2, "k--", lw=1)
        _axes(ax, names, x, "fastnn / GEMM floor (x)", "time over the step's GEMMs alone (dashes: targets)",
              legend=False)
        _plot_user_path(row[2], run, names, x)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
