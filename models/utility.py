"""Payments and utilities of MUs and MSPs (docs/model.md section 4).

Like :mod:`models.iom`, the functions of the decision variables use only
arithmetic plus an injectable ``log``, so they build Pyomo expressions
(``log=pyomo.environ.log``) as well as numpy values (the default ``np.log``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import InputError
from .iom import GHZ, compute_cycles, iom_matrix
from .scenario import Mechanism, Scenario

__all__ = [
    "payment",
    "msp_payment",
    "energy_cost_coefficient",
    "energy_cost",
    "msp_value",
    "mu_utilities",
    "msp_utilities",
]


def payment(mechanism: Mechanism, R: Any, iom_nm: Any, total_m: Any, eps0: float) -> Any:
    """What MU n receives from MSP m.

    Proportional: ``R_m IoM_nm / (sum_k IoM_km + eps0)``; unit price: ``R_m IoM_nm``.
    """
    if mechanism is Mechanism.PROPORTIONAL:
        return R * iom_nm / (total_m + eps0)
    if mechanism is Mechanism.UNIT_PRICE:
        return R * iom_nm
    raise InputError("mechanism", f"unknown {mechanism!r}")


def msp_payment(mechanism: Mechanism, R: Any, total_m: Any, eps0: float) -> Any:
    """What MSP m pays in all: the sum over n of :func:`payment`."""
    if mechanism is Mechanism.PROPORTIONAL:
        return R * total_m / (total_m + eps0)
    if mechanism is Mechanism.UNIT_PRICE:
        return R * total_m
    raise InputError("mechanism", f"unknown {mechanism!r}")


def energy_cost_coefficient(sc: Scenario) -> np.ndarray:
    """``e_nm`` with energy cost ``e_nm f_nm^2`` (f in GHz): ``rho kappa L c D GHZ^2``, (N, M)."""
    return sc.rho[:, None] * sc.kappa[:, None] * compute_cycles(sc) * GHZ**2


def energy_cost(e_nm: Any, f: Any) -> Any:
    """``rho_n kappa_n L c_n D_nm f_nm^2`` = ``e_nm f_nm^2`` (f in GHz)."""
    return e_nm * f * f


def msp_value(lam: Any, total_m: Any, log: Callable[[Any], Any] = np.log) -> Any:
    """``lambda_m ln(1 + sum_n IoM_nm)``."""
    return lam * log(1.0 + total_m)


def mu_utilities(sc: Scenario, R: Any, f: Any) -> np.ndarray:
    """``U_n`` of every MU for rewards ``R`` (M,) and allocation ``f`` (N, M), numpy."""
    f = np.asarray(f, dtype=float)
    R = np.asarray(R, dtype=float)
    I = iom_matrix(sc, f)
    pay = payment(sc.mechanism, R[None, :], I, I.sum(0)[None, :], sc.eps0)
    return pay.sum(1) - energy_cost(energy_cost_coefficient(sc), f).sum(1)


def msp_utilities(sc: Scenario, R: Any, f: Any) -> np.ndarray:
    """``V_m = lambda_m ln(1 + sum_n IoM_nm) - payment_m`` for every MSP, numpy."""
    R = np.asarray(R, dtype=float)
    total = iom_matrix(sc, f).sum(0)
    return msp_value(sc.lam, total) - msp_payment(sc.mechanism, R, total, sc.eps0)
