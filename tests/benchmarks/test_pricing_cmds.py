"""``metatrading train-pricing``, ``validate`` and ``bench pricing``: smoke tests on tiny budgets,
outputs, bad input."""
from __future__ import annotations

import json

import pytest

from benchmarks.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pricing") / "run"
    rc = main(["train-pricing", "--scenario", "tiny", "--seconds", "120", "--updates", "2", "--markets", "8",
               "--seed", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_train_pricing_writes_its_outputs(trained, capsys):
    data = json.loads((trained / "training.json").read_text())
    assert data["budget"]["updates"] == 2 and data["budget"]["market_rounds"] == 2 * 8 * 8
    assert data["epec_rewards"] is not None and len(data["epec_rewards"]) == 2
    assert "reward_gap_pct" in data["updates"][-1]
    for name in ("policy.pt", "checkpoint.pt", "training.png"):
        assert (trained / name).stat().st_size > 1000
    # resume to 3 updates continues the same run
    rc = main(["train-pricing", "--scenario", "tiny", "--seconds", "120", "--updates", "3", "--markets", "8",
               "--seed", "1", "--out", str(trained), "--resume", "--no-progress"])
    assert rc == 0
    data = json.loads((trained / "training.json").read_text())
    assert [u["update"] for u in data["updates"]] == [1, 2, 3]


def test_validate_a_policy_and_given_rewards(trained, tmp_path):
    rc = main(["validate", "--policy", str(trained), "--scenario", "tiny", "--out", str(tmp_path / "v"),
               "--grid", "11", "--warmup", "4", "--no-progress"])
    assert rc == 0
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    for key in ("rewards", "epec_rewards", "msp_utility", "epec_msp_utility", "utility_gap_pct", "reward_gap_pct",
                "deviation_gain_pct", "max_deviation_gain_pct"):
        assert key in v, key
    assert (tmp_path / "v" / "validation.png").stat().st_size > 1000
    # the EPEC's own rewards: no gap, no profitable deviation
    R = ",".join(f"{r:.10f}" for r in v["epec_rewards"])
    assert main(["validate", "--rewards", R, "--scenario", "tiny", "--out", str(tmp_path / "e"), "--grid", "11",
                 "--no-progress"]) == 0
    e = json.loads((tmp_path / "e" / "validation.json").read_text())
    assert max(abs(x) for x in e["reward_gap_pct"]) < 1e-6 and e["max_deviation_gain_pct"] < 1e-2
    # rewards 30% below: negative reward gaps, and a profitable deviation
    R = ",".join(f"{0.7 * r:.6f}" for r in v["epec_rewards"])
    assert main(["validate", "--rewards", R, "--scenario", "tiny", "--out", str(tmp_path / "b"), "--grid", "11",
                 "--no-progress"]) == 0
    b = json.loads((tmp_path / "b" / "validation.json").read_text())
    assert all(g < -29 for g in b["reward_gap_pct"]) and b["max_deviation_gain_pct"] > 0.01


def test_validate_dynamic(trained, tmp_path):
    rc = main(["validate", "--policy", str(trained), "--scenario", "tiny", "--dynamic", "--rounds", "3", "--seeds", "0,1",
               "--out", str(tmp_path / "d"), "--grid", "11", "--no-progress"])
    assert rc == 0
    d = json.loads((tmp_path / "d" / "validation.json").read_text())
    assert len(d["per_round"]) == 6 and d["mean_gap_pct"]["n"] == 2
    ci = d["mean_gap_pct"]
    assert ci["low"] <= ci["mean"] <= ci["high"]
    assert (tmp_path / "d" / "validation.png").exists()


@pytest.mark.parametrize("argv, flag", [
    (["train-pricing", "--scenario", "nope"], "--scenario"),
    (["train-pricing", "--scenario", "tiny", "--seconds", "0"], "--seconds"),
    (["train-pricing", "--scenario", "tiny", "--seconds", "-5"], "--seconds"),
    (["validate", "--rewards", "1,2,3", "--scenario", "tiny"], "--rewards"),
    (["validate", "--rewards", "1,x", "--scenario", "tiny"], "--rewards"),
    (["validate", "--rewards", "1,31", "--scenario", "tiny"], "--rewards[1]"),
    (["validate", "--rewards=-1,3", "--scenario", "tiny"], "--rewards[0]"),
    (["validate", "--policy", "/nonexistent/policy", "--scenario", "tiny"], "--policy"),
    (["validate", "--rewards", "1,2", "--scenario", "nope"], "--scenario"),
    (["bench", "pricing", "--batches", "0"], "--batches"),
])
def test_bad_input_exits_2_and_writes_nothing(argv, flag, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(argv + ["--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and f"error: {flag}" in err[0]
    assert not out.exists()


def test_incompatible_policy(trained, tmp_path, capsys):
    rc = main(["validate", "--policy", str(trained), "--scenario", "default", "--out", str(tmp_path / "x")])
    assert rc == 2 and "--policy" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_bench_pricing_smoke(tmp_path):
    rc = main(["bench", "pricing", "--out", str(tmp_path), "--scenario", "tiny", "--batches", "1,16", "--repeats", "1",
               "--reference-solves", "2", "--numpy-batch", "4", "--train-seconds", "2"])
    assert rc == 0
    data = json.loads((tmp_path / "pricing_throughput.json").read_text())
    methods = {(r["method"], r["batch"]) for r in data["rows"]}
    assert methods == {("batched", 1), ("batched", 16), ("reference", 1), ("numpy", 4)}
    assert all(r["per_s"] > 0 for r in data["rows"])
    batched = [r for r in data["rows"] if r["method"] == "batched"]
    assert all(r["converged"] and r["max_abs_f_diff_numpy"] < 1e-8 for r in batched)
    assert data["rows"][2]["max_abs_f_diff_batched"] < 1e-8
    assert data["training"]["market_rounds"] > 0


def test_validate_several_policies_gives_confidence_intervals(trained, tmp_path):
    rc = main(["validate", "--policy", f"{trained},{trained}", "--scenario", "tiny", "--out", str(tmp_path / "m"),
               "--grid", "11", "--warmup", "4", "--no-progress"])
    assert rc == 0
    m = json.loads((tmp_path / "m" / "validation.json").read_text())
    assert m["policies"] == 2 and len(m["runs"]) == 2
    assert len(m["reward_gap_pct_ci"]) == 2 and m["reward_gap_pct_ci"][0]["n"] == 2
    # the same policy twice: zero spread
    assert m["reward_gap_pct_ci"][0]["half_width"] == pytest.approx(0.0, abs=1e-9)
    assert len(m["within_targets"]) == 2


def test_rounds_to_stay_within(tmp_path):
    from benchmarks.validate_cmd import rounds_to_stay_within

    path = tmp_path / "training.json"
    gaps = [[5.0, 1.0], [1.0, 1.5], [3.0, 0.1], [1.0, -1.9], [0.5, 0.2]]
    path.write_text(json.dumps({"updates": [{"market_rounds": 10 * (k + 1), "reward_gap_pct": g} for k, g in enumerate(gaps)]}))
    assert rounds_to_stay_within(path) == 40
    assert rounds_to_stay_within(path, pct=0.1) is None
    assert rounds_to_stay_within(tmp_path / "missing.json") is None
