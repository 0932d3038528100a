"""``metatrading bench epec``: smoke test on a tiny size and bad input."""
from __future__ import annotations

import json

import pytest

from benchmarks.bench_epec import parse_sizes
from benchmarks.cli import main


def test_bench_epec_tiny(tmp_path):
    out = tmp_path / "b"
    rc = main(["bench", "epec", "--sizes", "4x2", "--out", str(out), "--grid", "5"])
    assert rc == 0
    rows = json.loads((out / "epec_scaling.json").read_text())["rows"]
    assert len(rows) == 1
    r = rows[0]
    assert (r["n"], r["m"]) == (4, 2)
    assert r["status"] == "converged" and r["naive_status"] == "converged"
    assert r["seconds"] > 0 and r["naive_seconds"] > 0 and r["iterations"] > 0
    assert r["max_deviation_gain"] is not None and r["max_deviation_gain"] < 1e-2
    # Same equilibrium from both approaches.
    assert r["naive_reward_diff"] < 1e-3
    assert (out / "epec_scaling.png").stat().st_size > 1000


def test_naive_skipped_above_limit(tmp_path):
    out = tmp_path / "b"
    rc = main(["bench", "epec", "--sizes", "4x2", "--out", str(out), "--grid", "3", "--naive-max-n", "3"])
    assert rc == 0
    assert json.loads((out / "epec_scaling.json").read_text())["rows"][0]["naive_seconds"] is None


@pytest.mark.parametrize("sizes", ["4", "4x0", "ax2", "4x2,"])
def test_bad_sizes_exit_2(tmp_path, capsys, sizes):
    out = tmp_path / "b"
    rc = main(["bench", "epec", "--sizes", sizes, "--out", str(out)])
    assert rc == 2
    assert "--sizes" in capsys.readouterr().err
    assert not out.exists()


def test_parse_sizes():
    assert parse_sizes("20x3, 100X5") == [(20, 3), (100, 5)]
