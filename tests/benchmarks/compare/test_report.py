"""Means, intervals and the headline of a comparison (benchmarks/compare/report.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.compare import PAPER, CompareConfig, mean_ci, summarise
from models import preset

T975_DF1 = 12.706204736174698  # Student t, 97.5% quantile, 1 degree of freedom (tables)


def test_mean_ci_student_t():
    two = mean_ci([1.0, 3.0])  # s = sqrt(2): half width t * sqrt(2) / sqrt(2)
    assert two["mean"] == 2.0 and two["n"] == 2 and two["half_width"] == pytest.approx(T975_DF1)
    assert two["ci95"] == pytest.approx([2.0 - T975_DF1, 2.0 + T975_DF1])
    one = mean_ci([5.0, None])
    assert one["mean"] == 5.0 and one["ci95"] is None and one["n"] == 1
    assert mean_ci([None])["mean"] is None


def record(iom, acc, sim, R=10.0, group="naive", setting=None, missed=0):
    """A (scheme, seed) record of 2 rounds, 1 MSP, with the given IoM and accuracy per round."""
    rounds = [{"iom": [iom], "R": [R], "payment": [R], "msp_utility_sum": iom, "mu_utility_sum": 2.0,
               "social_utility": 3.0, "accuracy": [a], "sim_time": [s], "missed": [missed], "certified": True,
               "followers_converged": True}
              for a, s in zip(acc, sim)]
    describe = {"group": group, **({"level_setting": setting} if setting else {})}
    return {"rounds": rounds, "uncertified": [], "describe": describe}


def test_headline_averages_the_naive_group_only_in_each_level_setting():
    # Prepare: reference 'epec' (full information) against budget 'fixed', cap 'fixed_cap', the
    # unlevelled 'hill_climb' and the full-information 'single_leader', 2 seeds
    cfg = CompareConfig(schemes=("epec", "fixed", "fixed_cap", "hill_climb", "single_leader"), seeds=2, rounds=2,
                        reference="epec")
    fi = "full_information"
    recs = {
        ("epec", 0): record(3.0, [0.5, 0.95], [10, 20], group=fi), ("epec", 1): record(6.0, [0.95, 0.96], [10, 20], group=fi),
        ("fixed", 0): record(2.0, [0.5, 0.92], [20, 40], setting="budget_matched"),
        ("fixed", 1): record(4.0, [0.5, 0.91], [20, 40], setting="budget_matched"),
        ("fixed_cap", 0): record(1.5, [0.1, 0.2], [5, 9], setting="cap_relative"),
        ("fixed_cap", 1): record(5.0, [0.9, 0.9], [5, 10], setting="cap_relative"),
        ("hill_climb", 0): record(1.0, [0.5, 0.95], [10, 20], missed=1),
        ("hill_climb", 1): record(3.0, [0.95, 0.96], [10, 20], missed=2),
        ("single_leader", 0): record(6.0, [0.5, 0.95], [10, 20], group=fi),
        ("single_leader", 1): record(6.0, [0.95, 0.96], [10, 20], group=fi),
    }
    # Execute
    out = summarise(cfg, preset("tiny"), SimpleNamespace(name="mnist5k"), recs, reference="epec")
    h = out["headline"]
    # Assert: groups, and each setting's average over its naive baselines only
    assert out["groups"] == {"naive": ["fixed", "fixed_cap", "hill_climb"], "full_information": ["epec", "single_leader"]}
    bm, cr = h["settings"]["budget_matched"], h["settings"]["cap_relative"]
    assert bm["averaged_over"] == ["fixed", "hill_climb"] and cr["averaged_over"] == ["fixed_cap", "hill_climb"]
    assert h["per_baseline"]["fixed"]["iom_improvement"]["mean"] == pytest.approx(50.0)  # 3/2 and 6/4
    assert h["per_baseline"]["single_leader"]["iom_improvement"]["mean"] == pytest.approx(np.mean([-50.0, 0.0]))
    avg = [(50.0 + 200.0) / 2, (50.0 + 100.0) / 2]  # per seed over fixed and hill_climb
    assert bm["iom_improvement"]["average"]["mean"] == pytest.approx(np.mean(avg))
    assert bm["iom_improvement"]["average"]["half_width"] == pytest.approx(T975_DF1 * np.std(avg, ddof=1) / np.sqrt(2))
    assert cr["iom_improvement"]["average"]["mean"] == pytest.approx(np.mean([(100.0 + 200.0) / 2, (20.0 + 100.0) / 2]))
    # MSP utility (= the IoM in these records) improves by the same %, beside no paper figure
    assert bm["msp_utility_improvement"]["average"]["mean"] == pytest.approx(np.mean(avg))
    assert bm["msp_utility_improvement"]["paper"] is None and bm["iom_improvement"]["paper"] == 38.3
    # fixed_cap never reaches 0.9 in seed 0, so the cap-relative time average has seed 1 only
    assert cr["time_to_target_reduction"]["average"]["n"] == 1 and bm["time_to_target_reduction"]["average"]["n"] == 2
    assert bm["time_to_target_reduction"]["paper"] == 43.5
    # per-scheme numbers: payment, IoM per unit paid, missed updates
    e = out["schemes"]["hill_climb"]
    assert e["payment"]["mean"] == 10.0 and e["iom_per_payment"]["mean"] == pytest.approx(0.2)
    assert e["missed_updates"]["mean"] == pytest.approx(np.mean([2, 4]))


def test_headline_without_the_reference_says_so():
    cfg = CompareConfig(schemes=("fixed_cap",), seeds=1, rounds=2)
    out = summarise(cfg, preset("tiny"), SimpleNamespace(name="fashion-mnist"),
                    {("fixed_cap", 0): record(1, [0.5, 0.6], [1, 2], setting="cap_relative")})
    assert out["headline"]["available"] is False and "drl" in out["headline"]["reason"]
    assert out["headline"]["paper"] is None


def test_frontier_consistency_check():
    from benchmarks.compare import frontier_summary

    # Prepare: a 3-seed sweep whose curve at payment 10 has IoM 2.0; a fixed point at 10
    frontier = {"levels": [0.1, 0.5, 1.0], "iom": [[1.0, 2.0, 3.0], [1.1, 2.1, 3.1], [0.9, 1.9, 2.9]],
                "payment": [[5.0, 10.0, 20.0]] * 3}
    near = {"fixed": {"payment": mean_ci([10.0] * 3), "iom": mean_ci([2.05, 2.0, 1.95]),
                      "scheme": {"level_setting": "budget_matched"}}}
    far = {"fixed": {**near["fixed"], "iom": mean_ci([2.5, 2.5, 2.5])}}
    # Execute
    ok = frontier_summary(frontier, near)["consistency"]
    bad = frontier_summary(frontier, far)["consistency"]
    # Assert
    assert ok["curve_iom"] == pytest.approx(2.0) and ok["passes"] is True
    assert bad["passes"] is False and bad["gap"] == pytest.approx(0.5)
    assert frontier_summary(frontier, {})["consistency"]["available"] is False


def test_report_text_has_every_group_and_both_settings():
    from benchmarks.compare import report_text

    cfg = CompareConfig(schemes=("epec", "fixed", "fixed_cap"), seeds=1, rounds=2, reference="epec")
    recs = {("epec", 0): record(3.0, [0.5, 0.95], [10, 20], group="full_information"),
            ("fixed", 0): record(2.0, [0.5, 0.92], [20, 40], setting="budget_matched"),
            ("fixed_cap", 0): record(1.5, [0.1, 0.2], [5, 9], setting="cap_relative")}
    text = report_text(summarise(cfg, preset("tiny"), SimpleNamespace(name="mnist5k"), recs, reference="epec"))
    assert "## Naive baselines" in text and "## Full-information references" in text
    assert "| budget_matched | fixed |" in text and "| cap_relative | fixed_cap |" in text
    assert "(+38.3)" in text
