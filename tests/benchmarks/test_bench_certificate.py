"""``metatrading bench certificate``: smoke test on a tiny size (both paths, same verdict) and bad input."""
from __future__ import annotations

import json

from benchmarks.cli import main


def test_bench_certificate_tiny(tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["bench", "certificate", "--sizes", "4x2", "--out", str(out), "--grid", "5"])
    assert rc == 0
    row = json.loads((out / "certificate_bench.json").read_text())["rows"][0]
    assert (row["n"], row["m"]) == (4, 2) and row["same_verdict"]
    for path in ("sequential", "batched"):
        r = row[path]
        assert r["status"] == "converged" and r["holds"] and r["certificate_seconds"] > 0
        assert r["evaluations"] > 0
    assert row["max_relative_gain_diff"] < 1e-6 and row["reward_diff"] < 1e-9
    assert row["batched"]["evaluations"] == row["sequential"]["evaluations"]
    assert "same verdict: True" in capsys.readouterr().out


def test_bench_certificate_bad_seed_exit_2(tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["bench", "certificate", "--sizes", "4x2", "--seed", "-1", "--out", str(out)])
    assert rc == 2
    assert "--seed" in capsys.readouterr().err
    assert not out.exists()
