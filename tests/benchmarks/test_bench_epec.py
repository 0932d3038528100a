"""``metatrading bench epec``: smoke test on a tiny size and bad input."""
from __future__ import annotations

import json

import pytest

from benchmarks.bench_epec import parse_sizes
from benchmarks.plots import loglog_slope
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
    assert 0 <= r["certificate_failed_evaluations"] < r["certificate_evaluations"]
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


def test_naive_max_n_zero_skips_naive_and_fits_slope(tmp_path):
    # Prepare / Execute: two N at one M, naive skipped everywhere
    out = tmp_path / "b"
    rc = main(["bench", "epec", "--sizes", "3x2,6x2", "--out", str(out), "--grid", "3", "--naive-max-n", "0"])
    # Assert
    assert rc == 0
    data = json.loads((out / "epec_scaling.json").read_text())
    assert [r["naive_seconds"] for r in data["rows"]] == [None, None]
    slope = data["options"]["time_exponents"]["2"]["seconds"]
    assert slope == pytest.approx(loglog_slope([3, 6], [r["seconds"] for r in data["rows"]]))
    assert "naive_seconds" not in data["options"]["time_exponents"]["2"]
    assert (out / "epec_scaling.png").stat().st_size > 1000


def test_negative_naive_max_n_exit_2(tmp_path, capsys):
    rc = main(["bench", "epec", "--sizes", "4x2", "--out", str(tmp_path / "b"), "--naive-max-n", "-1"])
    assert rc == 2
    assert "--naive-max-n" in capsys.readouterr().err


@pytest.mark.parametrize("x, y, expected", [
    ([10, 100, 1000], [2.0, 20.0, 200.0], 1.0),
    ([10, 100], [1.0, 100.0], 2.0),
    ([10, 20, 40], [None, 3.0, 3.0], 0.0),
    ([10], [1.0], None),
    ([10, 20], [1.0, None], None),
])
def test_loglog_slope(x, y, expected):
    got = loglog_slope(x, y)
    assert got == (None if expected is None else pytest.approx(expected, abs=1e-12))
