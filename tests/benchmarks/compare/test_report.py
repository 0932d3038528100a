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


def record(iom, acc, sim, R=10.0):
    """A (scheme, seed) record of 2 rounds, 1 MSP, with the given IoM and accuracy per round."""
    rounds = [{"iom": [iom], "R": [R], "msp_utility_sum": 1.0, "mu_utility_sum": 2.0, "social_utility": 3.0,
               "accuracy": [a], "sim_time": [s], "certified": True, "followers_converged": True}
              for a, s in zip(acc, sim)]
    return {"rounds": rounds, "uncertified": [], "describe": {}}


def test_headline_is_paired_by_seed_and_averages_the_baselines_without_the_oracle():
    # Prepare: reference 'fixed' against 'random' and 'single_leader' (and the oracle 'epec'), 2 seeds
    cfg = CompareConfig(schemes=("fixed", "random", "single_leader", "epec"), seeds=2, rounds=2, reference="fixed")
    recs = {
        ("fixed", 0): record(3.0, [0.5, 0.95], [10, 20]), ("fixed", 1): record(6.0, [0.95, 0.96], [10, 20]),
        ("random", 0): record(2.0, [0.5, 0.92], [20, 40]), ("random", 1): record(4.0, [0.5, 0.91], [20, 40]),
        ("single_leader", 0): record(1.5, [0.1, 0.2], [5, 9]), ("single_leader", 1): record(5.0, [0.9, 0.9], [5, 10]),
        ("epec", 0): record(6.0, [0.5, 0.95], [10, 20]), ("epec", 1): record(6.0, [0.95, 0.96], [10, 20]),
    }
    # Execute
    out = summarise(cfg, preset("tiny"), SimpleNamespace(name="mnist5k"), recs, reference="fixed")
    h = out["headline"]
    # Assert
    assert h["available"] and h["paper"] == PAPER["MNIST"] and h["averaged_over"] == ["random", "single_leader"]
    imp = h["iom_improvement"]
    assert imp["per_baseline"]["random"]["mean"] == pytest.approx(50.0)  # 3/2 and 6/4 -> +50% both seeds
    assert imp["per_baseline"]["random"]["half_width"] == pytest.approx(0.0, abs=1e-9)
    assert imp["per_baseline"]["epec"]["mean"] == pytest.approx(np.mean([-50.0, 0.0]))
    # average per seed over random and single_leader: seed 0 (50 + 100)/2, seed 1 (50 + 20)/2
    avg = [75.0, 35.0]
    assert imp["average"]["mean"] == pytest.approx(55.0)
    assert imp["average"]["half_width"] == pytest.approx(T975_DF1 * np.std(avg, ddof=1) / np.sqrt(2))
    red = h["time_to_target_reduction"]
    assert red["per_baseline"]["random"]["mean"] == pytest.approx(np.mean([50.0, 75.0]))
    # single_leader never reaches 0.9 in seed 0, so the average has seed 1 only
    assert red["per_baseline"]["single_leader"]["n"] == 1 and red["average"]["n"] == 1
    assert red["paper"] == 43.5
    assert out["schemes"]["single_leader"]["time_to_target"]["n"] == 1
    assert out["schemes"]["fixed"]["iom"]["mean"] == pytest.approx(4.5)


def test_headline_without_the_reference_says_so():
    cfg = CompareConfig(schemes=("fixed",), seeds=1, rounds=2)
    out = summarise(cfg, preset("tiny"), SimpleNamespace(name="fashion-mnist"), {("fixed", 0): record(1, [0.5, 0.6], [1, 2])})
    assert out["headline"]["available"] is False and "drl" in out["headline"]["reason"]
    assert out["headline"]["paper"] is None
