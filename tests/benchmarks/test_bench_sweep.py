"""``metatrading bench sweep``: the continuation's path and the cold solves interleaved, on a
short sweep of ``tiny`` (every path the same certified points, the cold solves beside them), and
bad input."""
from __future__ import annotations

import json

import pytest

from benchmarks.cli import main


def test_bench_sweep_interleaves_paths_and_cold_chunks(tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["bench", "sweep", "--scenario", "tiny", "--values", "0.4:0.6:5", "--repeats", "2", "--grid", "11",
               "--out", str(out)])
    assert rc == 0
    rec = json.loads((out / "sweep_bench.json").read_text())
    assert rec["repeats"] == 2 and rec["points"] == 5
    assert rec["paths_certified"] == [5, 5] and rec["paths_same_rewards"]
    # the cold solves in two consecutive chunks covering every point once
    assert [c["points"] for c in rec["cold"]] == [[0, 1, 2], [3, 4]]
    assert rec["cold_certified"] == 5
    assert rec["ratio"] == pytest.approx(rec["cold_seconds"] / rec["continuation_seconds_mean"])
    assert len(rec["path_ratios"]) == 2 and min(rec["path_ratios"]) <= rec["ratio"] * 1.000001
    assert rec["max_reward_difference_smooth"] < 1e-4
    assert "ratio cold / continuation" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value", [("--repeats", "0"), ("--repeats", "9"), ("--param", "nope"),
                                         ("--values", "0.4:x:3")])
def test_bench_sweep_bad_input_exit_2(tmp_path, capsys, flag, value):
    out = tmp_path / "b"
    args = ["bench", "sweep", "--scenario", "tiny", "--values", "0.4:0.6:5", "--out", str(out)]
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    rc = main(args)
    assert rc == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()
