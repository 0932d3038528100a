"""One comparison run on a tiny market with FL on real images (benchmarks/compare/run.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import benchmarks.compare.run as run_mod
from benchmarks.compare import CompareConfig, record_path, run_comparison
from models import follower_equilibrium, iom_matrix, preset, round_time
from models.dynamics import trajectory

CFG = dict(scenario="tiny", dataset="mnist5k", seeds=1, rounds=2, epochs=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    cfg = CompareConfig(schemes=("fixed", "epec"), reference="epec", **CFG)
    compare, timing = run_comparison(cfg, out, log=lambda s: None)
    return cfg, out, compare


def test_tiny_comparison_records_computed_outcomes(tiny_run):
    cfg, out, compare = tiny_run
    rec = json.loads(record_path(out, "fixed", 0).read_text())
    base = preset("tiny")
    # Round 0 of seed 0 is the base market: the MUs' exact response to R = Rmax / 2
    r0 = rec["rounds"][0]
    f = follower_equilibrium(base, base.Rmax / 2).f
    np.testing.assert_allclose(r0["R"], base.Rmax / 2)
    np.testing.assert_allclose(r0["f"], f, atol=1e-9)
    np.testing.assert_allclose(r0["iom"], iom_matrix(base, f).sum(0), rtol=1e-9)
    # The simulated clock adds each round's slowest participant
    traj = trajectory(base, 2, 0)
    f1 = np.array(rec["rounds"][1]["f"])
    expect = [round_time(base, f, m) + round_time(traj.scenario(1), f1, m) for m in range(base.n_msp)]
    np.testing.assert_allclose(rec["rounds"][1]["sim_time"], expect, rtol=1e-12)
    assert all(0.0 <= a <= 1.0 for r in rec["rounds"] for a in r["accuracy"])
    # compare.json: means over one seed, no interval, the headline against fixed
    e = compare["schemes"]["fixed"]
    assert e["iom"]["mean"] == pytest.approx(np.mean([r["iom"] for r in rec["rounds"]]))
    assert e["iom"]["ci95"] is None and e["uncertified_rounds"] == 0
    assert compare["schemes"]["epec"]["uncertified_rounds"] == 0
    h = compare["headline"]
    assert h["available"] and h["baselines"] == ["fixed"]
    for name in ("compare.json", "iom.png", "accuracy.png", "time_to_target.png", "timing.json"):
        assert (out / name).stat().st_size > 0


def test_epec_rewards_are_the_rounds_equilibria(tiny_run):
    from epec import solve_scenario

    cfg, out, compare = tiny_run
    rec = json.loads(record_path(out, "epec", 0).read_text())
    sol = solve_scenario(preset("tiny"))
    np.testing.assert_allclose(rec["rounds"][0]["R"], sol.R, rtol=1e-9)
    assert all(r["certified"] for r in rec["rounds"])


def test_resumed_comparison_equals_uninterrupted(tmp_path, tiny_run, monkeypatch):
    # Prepare: the same comparison, interrupted after its first (scheme, seed)
    cfg, ref_out, ref = tiny_run
    real = run_mod.run_scheme
    calls = []

    def interrupted(scheme, *args, **kw):
        calls.append(scheme.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(scheme, *args, **kw)

    monkeypatch.setattr(run_mod, "run_scheme", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_comparison(cfg, tmp_path, log=lambda s: None)
    assert record_path(tmp_path, "fixed", 0).is_file() and not (tmp_path / "compare.json").exists()
    # Execute: resume runs only what is missing
    calls.clear()
    monkeypatch.setattr(run_mod, "run_scheme", lambda scheme, *a, **k: (calls.append(scheme.name), real(scheme, *a, **k))[1])
    compare, _ = run_comparison(cfg, tmp_path, resume=True, log=lambda s: None)
    # Assert
    assert calls == ["epec"]
    assert json.loads((tmp_path / "compare.json").read_text()) == json.loads((ref_out / "compare.json").read_text())


def test_resume_with_other_settings_is_refused(tmp_path, tiny_run):
    from models import InputError

    cfg, out, _ = tiny_run
    other = CompareConfig(schemes=("fixed",), reference="epec", **{**CFG, "epochs": 2})
    with pytest.raises(InputError, match="--resume"):
        run_comparison(other, out, resume=True, log=lambda s: None)


def test_resume_at_another_target_reports_again_without_training(tmp_path, tiny_run, monkeypatch):
    # Prepare: a finished comparison (copied), and a comparison that must not train again
    import shutil

    cfg, ref_out, ref = tiny_run
    out = tmp_path / "cmp"
    shutil.copytree(ref_out, out)
    before = json.loads((out / "timing.json").read_text())
    monkeypatch.setattr(run_mod, "run_scheme", lambda *a, **k: pytest.fail("trained again"))
    low = CompareConfig(schemes=cfg.schemes, reference=cfg.reference, **{**CFG, "target": 0.05})
    # Execute
    compare, timing = run_comparison(low, out, resume=True, log=lambda s: None)
    # Assert: the same records, reported at the new target; the first invocation's times are kept
    assert compare["settings"]["target"] == 0.05 and ref["settings"]["target"] != 0.05
    assert compare["schemes"]["fixed"]["iom"] == ref["schemes"]["fixed"]["iom"]
    assert compare["schemes"]["fixed"]["target_reached_seeds"] == 1  # any trained model beats 5%
    assert timing["runs"] == before["runs"]
    assert timing["invocations_wall_seconds"][0] == before["wall_seconds"]
    assert timing["wall_seconds"] == pytest.approx(sum(timing["invocations_wall_seconds"]))
