"""Payments and utilities against hand computations (models/utility.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from models import Mechanism, preset
from models.iom import GHZ, iom_matrix
from models.utility import msp_utilities, mu_utilities


@pytest.mark.parametrize("mechanism", list(Mechanism))
def test_utilities_by_hand(mechanism):
    sc = preset("tiny", seed=4).replace(mechanism=mechanism)
    rng = np.random.default_rng(1)
    f = rng.uniform(0.05, 0.5, sc.D.shape)
    R = np.array([3.0, 7.0])
    I = iom_matrix(sc, f)
    n = 2
    pay = 0.0
    for m in range(2):
        pay += R[m] * I[n, m] / (I[:, m].sum() + sc.eps0) if mechanism is Mechanism.PROPORTIONAL else R[m] * I[n, m]
    cost = sum(sc.rho[n] * sc.kappa[n] * sc.L * sc.c[n] * sc.D[n, m] * (f[n, m] * GHZ) ** 2 for m in range(2))
    assert mu_utilities(sc, R, f)[n] == pytest.approx(pay - cost, rel=1e-12)
    m = 1
    paid = R[m] * I[:, m].sum() / (I[:, m].sum() + sc.eps0) if mechanism is Mechanism.PROPORTIONAL else R[m] * I[:, m].sum()
    assert msp_utilities(sc, R, f)[m] == pytest.approx(sc.lam[m] * math.log1p(I[:, m].sum()) - paid, rel=1e-12)


def test_no_work_is_individually_rational():
    sc = preset("tiny")
    np.testing.assert_array_equal(mu_utilities(sc, sc.Rmax, np.zeros(sc.D.shape)), 0.0)
