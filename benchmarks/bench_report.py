"""The report runner (run.py) end to end on a tiny setting, so the command cannot rot: one
round, two configurations, every section of the report, the plot when matplotlib is there."""
import json

import pytest

import run
from configs import CONFIGS, peers_for


def test_runner_writes_report(tmp_path):
    args = ["--quick", "--rounds", "1", "--budget", "0.02", "--threads", "1", "--configs", "spiral,infer-1",
            "--ops", "relu forward 300x64,Adam",
            "--out", str(tmp_path), "--name", "smoke"]
    try:
        import matplotlib  # noqa: F401
        args.append("--plot")
    except ImportError:  # pragma: no cover - matplotlib is in the test extra
        pass
    report = run.main(args)
    md = (tmp_path / "smoke.md").read_text()
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["runs"][0]["threads"] == 1
    for name in ("spiral", "infer-1"):
        assert f"| {name} |" in md
        peers = report["runs"][0]["steps"][name]["peers"]
        with_jax = report["runs"][0]["jax_threads"] is not None
        assert set(peers) == set(peers_for(CONFIGS[name], with_jax=with_jax))
        assert all(p["median"] > 0 for p in peers.values())
    assert "## Ops, 1 thread(s)" in md and "Step anatomy" in md and "Python layer" in md
    if "--plot" in args:
        assert (tmp_path / "smoke.png").stat().st_size > 0


def test_runner_rejects_unknown_config():
    with pytest.raises(SystemExit):
        run.parse_args(["--configs", "nope"])
