"""IoM formulas against hand computations (models/iom.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models import InputError, Metric, preset
from models.iom import (GHZ, aoi, compute_time, freshness, freshness_coefficients, full_quality, iom, iom_matrix,
                        quality, round_time, upload_rate, upload_time)


@pytest.fixture
def sc():
    return preset("tiny", seed=2)


def test_upload_rate_is_shannon(sc):
    n, m = 1, 0
    hand = sc.B[n, m] * math.log2(1 + sc.p[n] * sc.h[n, m] / (sc.N0 * sc.B[n, m]))
    assert upload_rate(sc)[n, m] == pytest.approx(hand, rel=1e-12)
    assert upload_time(sc)[n, m] == pytest.approx(sc.S[m] / hand, rel=1e-12)


def test_aoi_identity_matches_freshness(sc):
    f = np.random.default_rng(0).uniform(0.1, 2.0, sc.D.shape)
    alpha, beta = freshness_coefficients(sc)
    lhs = 1.0 / (1.0 + aoi(sc, f) / sc.A0)
    np.testing.assert_allclose(lhs, freshness(f, alpha, beta), rtol=1e-12)
    np.testing.assert_allclose(compute_time(sc, f), sc.L * sc.c[:, None] * sc.D / (f * GHZ), rtol=1e-12)


def test_no_work_no_model(sc):
    np.testing.assert_array_equal(iom_matrix(sc, np.zeros(sc.D.shape)), 0.0)


def test_iom_concave_increasing(sc):
    alpha, beta = freshness_coefficients(sc)
    Q = quality(sc)
    f = np.linspace(0.0, 3.0, 301)
    y = iom(f, Q[0, 0], alpha[0, 0], beta[0, 0])
    assert np.all(np.diff(y) > 0)
    assert np.all(np.diff(y, 2) < 0)


def test_quality_by_hand(sc):
    n, m = 2, 1
    hand = sc.w_acc * sc.zeta[n, m] + sc.w_amt * math.log(1 + sc.D[n, m]) / math.log(1 + sc.Dref) + sc.w_val * sc.v[n, m]
    assert quality(sc)[n, m] == pytest.approx(hand, rel=1e-12)


def test_pair_without_data_has_zero_iom(sc):
    D = sc.D.copy()
    D[0, 1] = 0.0
    s2 = sc.replace(D=D)
    I = iom_matrix(s2, np.ones(D.shape))
    assert I[0, 1] == 0.0 and I[0, 0] > 0


def test_round_time_is_slowest_participant(sc):
    f = np.ones(sc.D.shape)
    f[1, 0] = 0.0
    part = [0, 2, 3]
    hand = max(sc.L * sc.c[n] * sc.D[n, 0] / GHZ + upload_time(sc)[n, 0] for n in part)
    assert round_time(sc, f, 0) == pytest.approx(hand, rel=1e-12)
    assert round_time(sc, np.zeros(sc.D.shape), 0) == 0.0


@pytest.mark.parametrize("metric, expected", [
    (Metric.AOI, lambda sc: np.ones_like(sc.zeta)),
    (Metric.ACCURACY, lambda sc: sc.zeta),
    (Metric.DATA, lambda sc: (sc.w_amt * np.log1p(sc.D) / np.log1p(sc.Dref) + sc.w_val * sc.v)
     / (sc.w_amt + sc.w_val)),
])
def test_partial_metric_replaces_the_quality(sc, metric, expected):
    # Prepare
    part = sc.replace(metric=metric)
    f = np.full(sc.D.shape, 0.3)
    alpha, beta = freshness_coefficients(sc)
    # Execute / Assert: IoM = partial Q times the same freshness; full_quality is the model's
    np.testing.assert_allclose(quality(part), expected(sc), rtol=1e-14)
    np.testing.assert_allclose(iom_matrix(part, f), expected(sc) * f / (alpha * f + beta), rtol=1e-13)
    np.testing.assert_allclose(full_quality(part), quality(sc), rtol=1e-14)
    assert not np.allclose(quality(part), quality(sc))


def test_unknown_metric_is_refused(sc):
    with pytest.raises(InputError, match="metric"):
        sc.replace(metric="speed")
