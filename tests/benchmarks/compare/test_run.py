"""One comparison run on a tiny market with FL on real images (drl/compare/run.py, through benchmarks.compare.run_comparison)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import drl.compare.run as run_mod
from benchmarks.compare import CompareConfig, record_path, round_deadlines, run_comparison
from models import follower_equilibrium, iom_matrix, median_deadline, preset, round_time
from models.dynamics import trajectory

CFG = dict(scenario="tiny", dataset="mnist5k", seeds=2, rounds=2, epochs=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    cfg = CompareConfig(schemes=("fixed", "epec", "fixed_cap"), reference="epec", **CFG)
    compare, timing = run_comparison(cfg, out, log=lambda s: None)
    return cfg, out, compare


def test_tiny_comparison_records_computed_outcomes(tiny_run):
    cfg, out, compare = tiny_run
    rec = json.loads(record_path(out, "fixed_cap", 0).read_text())
    base = preset("tiny")
    # Round 0 of seed 0 is the base market: the MUs' exact response to R = level Rmax = Rmax / 2
    r0 = rec["rounds"][0]
    f = follower_equilibrium(base, base.Rmax / 2).f
    np.testing.assert_allclose(r0["R"], base.Rmax / 2)
    np.testing.assert_allclose(r0["f"], f, atol=1e-9)
    np.testing.assert_allclose(r0["iom"], iom_matrix(base, f).sum(0), rtol=1e-9)
    # The simulated clock adds each round's min(deadline, slowest participant); the deadlines are
    # 2 x the median participant's time at the round's EPEC
    from epec import solve_scenario

    eq0 = follower_equilibrium(base, solve_scenario(base).R).f
    T, _ = round_deadlines(base, 2, 0)
    np.testing.assert_allclose(T[0], [median_deadline(base, eq0, m) for m in range(base.n_msp)], rtol=1e-9)
    np.testing.assert_allclose(r0["deadline"], T[0], rtol=1e-12)
    traj = trajectory(base, 2, 0)
    f1 = np.array(rec["rounds"][1]["f"])
    expect = [round_time(base, f, m, T[0, m]) + round_time(traj.scenario(1), f1, m, T[1, m]) for m in range(base.n_msp)]
    np.testing.assert_allclose(rec["rounds"][1]["sim_time"], expect, rtol=1e-12)
    assert all(len(r["missed"]) == base.n_msp for r in rec["rounds"])
    assert all(0.0 <= a <= 1.0 for r in rec["rounds"] for a in r["accuracy"])
    # compare.json: means over one seed, no interval, the headline against fixed
    e = compare["schemes"]["fixed_cap"]
    assert e["per_seed"][0]["iom"] == pytest.approx(np.mean([r["iom"] for r in rec["rounds"]]))
    assert e["iom"]["n"] == 2 and e["uncertified_rounds"] == 0
    assert compare["schemes"]["epec"]["uncertified_rounds"] == 0
    h = compare["headline"]
    assert h["available"] and h["baselines"] == ["fixed", "fixed_cap"]
    assert compare["groups"] == {"naive": ["fixed", "fixed_cap"], "full_information": ["epec"]}
    for name in ("compare.json", "report.md", "iom.png", "accuracy.png", "time_to_target.png", "frontier.png",
                 "timing.json"):
        assert (out / name).stat().st_size > 0


def test_budget_matched_fixed_pays_the_references_mean_payment_per_seed(tiny_run):
    # fixed in seed s pays, per MSP and on average over the run, what epec paid in seed s (paired
    # by seed); its posted level is a little above it (the proportional mechanism pays
    # R total / (total + eps0) < R)
    cfg, out, compare = tiny_run
    for s in range(cfg.seeds):
        ref = json.loads(record_path(out, "epec", s).read_text())
        rec = json.loads(record_path(out, "fixed", s).read_text())
        want = np.mean([r["payment"] for r in ref["rounds"]], axis=0)
        np.testing.assert_allclose(np.mean([r["payment"] for r in rec["rounds"]], axis=0), want, rtol=1e-8)
        assert np.all(np.asarray(rec["level"]) > want)
        np.testing.assert_allclose([r["R"] for r in rec["rounds"]], [rec["level"]] * cfg.rounds, rtol=0)
        assert compare["schemes"]["fixed"]["per_seed"][s]["payment"] == pytest.approx(
            compare["schemes"]["epec"]["per_seed"][s]["payment"], rel=1e-6)
    levels = compare["schemes"]["fixed"]["level_per_seed"]
    assert not np.allclose(levels[0], levels[1])  # another seed, another market, another budget


def test_frontier_is_the_fixed_sweep_on_the_markets(tiny_run):
    # Prepare: the frontier's level 0.5 is fixed_cap at 0.5 without FL: the same IoM and payment
    cfg, out, compare = tiny_run
    fr = compare["frontier"]
    k = fr["levels"].index(0.5)
    # Assert
    for s in range(cfg.seeds):
        point = compare["schemes"]["fixed_cap"]["per_seed"][s]
        assert fr["per_seed"]["iom"][s][k] == pytest.approx(point["iom"], rel=1e-9)
        assert fr["per_seed"]["payment"][s][k] == pytest.approx(point["payment"], rel=1e-9)
    pays = [c["mean"] for c in fr["payment"]]
    assert pays == sorted(pays)  # paying more per MSP, level by level
    c = fr["consistency"]
    assert c["available"] and c["gap"] == pytest.approx(abs(c["curve_iom"] - c["point_iom"]))
    assert c["passes"] is (c["gap"] <= c["tolerance"] and c["within_sweep"])


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
    assert record_path(tmp_path, "epec", 0).is_file() and not (tmp_path / "compare.json").exists()
    # Execute: resume runs only what is missing
    calls.clear()
    monkeypatch.setattr(run_mod, "run_scheme", lambda scheme, *a, **k: (calls.append(scheme.name), real(scheme, *a, **k))[1])
    compare, _ = run_comparison(cfg, tmp_path, resume=True, log=lambda s: None)
    # Assert: the reference runs first in each seed
    assert calls == ["fixed", "fixed_cap", "epec", "fixed", "fixed_cap"]
    assert json.loads((tmp_path / "compare.json").read_text()) == json.loads((ref_out / "compare.json").read_text())


def test_resume_with_other_settings_is_refused(tmp_path, tiny_run):
    from models import InputError

    cfg, out, _ = tiny_run
    other = CompareConfig(schemes=("fixed_cap",), reference="epec", **{**CFG, "epochs": 2})
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
    assert compare["schemes"]["fixed"]["target_reached_seeds"] == 2  # any trained model beats 5%
    assert timing["runs"] == before["runs"]
    assert timing["invocations_wall_seconds"][0] == before["wall_seconds"]
    assert timing["wall_seconds"] == pytest.approx(sum(timing["invocations_wall_seconds"]))


def test_resume_at_another_level_reruns_only_the_cap_relative_runs(tmp_path, tiny_run, monkeypatch):
    import shutil

    cfg, ref_out, ref = tiny_run
    out = tmp_path / "cmp"
    shutil.copytree(ref_out, out)
    real = run_mod.run_scheme
    calls = []
    monkeypatch.setattr(run_mod, "run_scheme", lambda scheme, *a, **k: (calls.append(scheme.name), real(scheme, *a, **k))[1])
    # Execute
    other = CompareConfig(schemes=cfg.schemes, reference=cfg.reference, level=0.25, **CFG)
    compare, _ = run_comparison(other, out, resume=True, log=lambda s: None)
    # Assert
    assert calls == ["fixed_cap", "fixed_cap"]
    assert compare["schemes"]["fixed_cap"]["reward"]["mean"] == pytest.approx(0.25 * 30.0)
    assert compare["schemes"]["fixed"] == ref["schemes"]["fixed"]


def test_no_deadline_is_the_old_rule_and_a_deadline_caps_the_straggler(monkeypatch):
    # Prepare: one round of fixed at a tiny level, where some MU works at a small f
    from benchmarks.compare import make_scheme, run_scheme
    from fl.data import load_dataset

    base = preset("tiny")
    ds = load_dataset("mnist5k")
    cfg = CompareConfig(schemes=("fixed_cap",), reference="epec", scenario="tiny", seeds=1, rounds=1, epochs=1)
    f = follower_equilibrium(base, 0.02 * base.Rmax).f
    slowest = [round_time(base, f, m) for m in range(base.n_msp)]
    T = np.array([[0.5 * min(slowest)] * base.n_msp])
    # Execute
    waited = run_scheme(make_scheme("fixed_cap"), base, cfg, 0, ds, deadlines=np.full((1, base.n_msp), np.inf),
                        level=0.02 * base.Rmax)
    capped = run_scheme(make_scheme("fixed_cap"), base, cfg, 0, ds, deadlines=T, level=0.02 * base.Rmax)
    # Assert: without a deadline the round lasts the slowest's time; with one it lasts T_m and
    # the participants slower than T_m are counted as missed
    np.testing.assert_allclose(waited["rounds"][0]["sim_time"], slowest, rtol=1e-12)
    assert waited["rounds"][0]["missed"] == [0] * base.n_msp
    np.testing.assert_allclose(capped["rounds"][0]["sim_time"], T[0], rtol=1e-12)
    from models import on_time

    assert capped["rounds"][0]["missed"] == [int((~on_time(base, f, m, T[0, m])).sum()) for m in range(base.n_msp)]
    assert sum(capped["rounds"][0]["missed"]) > 0


def test_shared_work_caches_never_change_a_result(tmp_path, monkeypatch):
    # Prepare: schemes that share work (the deadlines', epec's and static's solves; fixed's and
    # random's budget level; every round-0 FL update), with the caches and without
    from drl.compare.cache import ENV

    cfg = CompareConfig(schemes=("epec", "static", "fixed", "random", "hill_climb"), reference="epec",
                        **{**CFG, "seeds": 1})
    # Execute
    with_cache, timing = run_comparison(cfg, tmp_path / "on", log=lambda s: None, cache=True)
    monkeypatch.setenv(ENV, "0")
    without, timing_off = run_comparison(cfg, tmp_path / "off", log=lambda s: None)
    # Assert: the same compare.json and the same records, number for number
    assert not timing_off["cache"]["enabled"] and timing["cache"]["enabled"]
    assert json.loads((tmp_path / "on" / "compare.json").read_text()) == \
        json.loads((tmp_path / "off" / "compare.json").read_text())
    for name in cfg.schemes:
        assert json.loads(record_path(tmp_path / "on", name, 0).read_text()) == \
            json.loads(record_path(tmp_path / "off", name, 0).read_text())
    # and the caches were used: each kind of shared work was found at least once
    for kind in ("epec", "followers", "levels", "updates"):
        assert timing["cache"][kind]["hits"] > 0, kind
    # timing.json: wall and CPU seconds per phase (the report's included)
    saved = json.loads((tmp_path / "on" / "timing.json").read_text())
    assert {"equilibrium", "fl", "report", "other"} <= set(saved["phases"])
    for p in saved["phases"].values():
        assert p["wall_seconds"] >= 0 and p["cpu_seconds"] >= 0
    assert sum(p["wall_seconds"] for p in saved["phases"].values()) == pytest.approx(
        saved["invocation_wall_seconds"], rel=1e-6)
