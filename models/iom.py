"""Immersion of a model (IoM) and its latency terms (docs/model.md section 3).

Each term is a small named function. Those that depend on the CPU frequency
``f`` use only ``+ - * /``, so the same function builds a Pyomo expression, a
numpy array or a torch tensor; the others depend on parameters only and are
evaluated with numpy. Frequencies are in GHz (the decision variables are
scaled so); cycle counts are converted with ``GHZ = 1e9``.

Replace any of them by passing your own function where it is used (see
:mod:`models.game`) -- everything downstream (KKT, certificate, FL clock) is
derived from these.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InputError
from .scenario import Metric, Scenario

__all__ = [
    "GHZ",
    "upload_rate",
    "upload_time",
    "compute_cycles",
    "compute_time",
    "aoi",
    "freshness_coefficients",
    "freshness",
    "quality",
    "full_quality",
    "iom",
    "iom_matrix",
    "round_time",
    "participant_times",
    "median_deadline",
    "on_time",
    "DEADLINE_MULTIPLE",
]

GHZ = 1e9  #: Hz per GHz


def upload_rate(sc: Scenario) -> np.ndarray:
    """``r_nm = B_nm log2(1 + p_n h_nm / (N0 B_nm))`` in bit/s, shape (N, M) (Shannon)."""
    snr = sc.p[:, None] * sc.h / (sc.N0 * sc.B)
    return sc.B * np.log2(1.0 + snr)


def upload_time(sc: Scenario) -> np.ndarray:
    """``Tup_nm = S_m / r_nm`` in s, shape (N, M)."""
    return sc.S[None, :] / upload_rate(sc)


def compute_cycles(sc: Scenario) -> np.ndarray:
    """CPU cycles of the local training ``L c_n D_nm``, shape (N, M)."""
    return sc.L * sc.c[:, None] * sc.D


def compute_time(sc: Scenario, f: Any) -> Any:
    """``Tcmp_nm = L c_n D_nm / f_nm`` in s (f in GHz; f = 0 gives inf)."""
    with np.errstate(divide="ignore"):
        return compute_cycles(sc) / (np.asarray(f, dtype=float) * GHZ)


def aoi(sc: Scenario, f: Any) -> Any:
    """Age of the delivered model ``tau_nm + Tcmp_nm + Tup_nm`` in s."""
    return sc.tau + compute_time(sc, f) + upload_time(sc)


def freshness_coefficients(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, beta)`` with ``phi(f) = f / (alpha f + beta)``, shapes (N, M).

    ``alpha = 1 + (tau + Tup) / A0`` and ``beta = L c D / (A0 GHZ)`` (f in GHz).
    """
    alpha = 1.0 + (sc.tau + upload_time(sc)) / sc.A0
    beta = compute_cycles(sc) / (sc.A0 * GHZ)
    return alpha, beta


def freshness(f: Any, alpha: Any, beta: Any) -> Any:
    """``phi = 1 / (1 + AoI / A0) = f / (alpha f + beta)``: concave, increasing, phi(0) = 0."""
    return f / (alpha * f + beta)


def quality(sc: Scenario) -> np.ndarray:
    """``Q_nm`` of the scenario's metric (:class:`models.Metric`), shape (N, M).

    Full IoM (default): ``w_acc zeta + w_amt ln(1 + D)/ln(1 + Dref) + w_val v``. The partial
    metrics keep one part: ``aoi`` ``Q = 1`` (freshness alone), ``accuracy`` ``Q = zeta``,
    ``data`` ``Q = (w_amt amount + w_val v) / (w_amt + w_val)``. Everything built on ``quality``
    (the Pyomo game, the numpy follower solver, the KKT checker, the FL weights) then plays the
    partial game; :func:`full_quality` is the model's IoM whatever the metric.
    """
    amount = np.log1p(sc.D) / math.log1p(sc.Dref)
    if sc.metric is Metric.AOI:
        return np.ones_like(sc.zeta)
    if sc.metric is Metric.ACCURACY:
        return np.array(sc.zeta, dtype=float)
    if sc.metric is Metric.DATA:
        w = sc.w_amt + sc.w_val
        if w <= 0:
            raise InputError("metric", "the data metric needs w_amt + w_val > 0")
        return (sc.w_amt * amount + sc.w_val * sc.v) / w
    return sc.w_acc * sc.zeta + sc.w_amt * amount + sc.w_val * sc.v


def full_quality(sc: Scenario) -> np.ndarray:
    """The model's ``Q_nm`` (the full IoM's), whatever ``sc.metric``."""
    return quality(sc.replace(metric=Metric.FULL)) if sc.metric is not Metric.FULL else quality(sc)


def iom(f: Any, Q: Any, alpha: Any, beta: Any) -> Any:
    """``IoM_nm(f) = Q_nm phi_nm(f)``; works on scalars, arrays, tensors and Pyomo expressions."""
    return Q * freshness(f, alpha, beta)


def iom_matrix(sc: Scenario, f: Any) -> np.ndarray:
    """IoM of every pair for allocation ``f`` (..., N, M) in GHz (numpy).

    A pair without data (``D_nm = 0``) delivers no model: its IoM is 0 whatever ``f``.
    """
    f = np.asarray(f, dtype=float)
    alpha, beta = freshness_coefficients(sc)
    has_data = sc.D > 0
    return np.where(has_data, iom(f, quality(sc), alpha, np.where(has_data, beta, 1.0)), 0.0)


#: the default round deadline is this multiple of the median participant's ``Tcmp + Tup``
#: (docs/model.md section 7)
DEADLINE_MULTIPLE = 2.0


def participant_times(sc: Scenario, f: Any, msp: int) -> np.ndarray:
    """``Tcmp_nm + Tup_nm`` in s of MSP ``msp``'s participants (the MUs with ``f_nm > 0``, in MU
    order), shape (P,)."""
    f = np.asarray(f, dtype=float)[:, msp]
    part = f > 0
    return compute_cycles(sc)[part, msp] / (f[part] * GHZ) + upload_time(sc)[part, msp]


def median_deadline(sc: Scenario, f: Any, msp: int, multiple: float = DEADLINE_MULTIPLE) -> float:
    """The default round deadline ``T_m = multiple * median_n (Tcmp_nm + Tup_nm)`` over MSP
    ``msp``'s participants at allocation ``f`` (docs/model.md section 7; ``multiple`` default 2).
    ``inf`` when nobody participates."""
    if not (math.isfinite(multiple) and multiple > 0):
        raise InputError("deadline multiple", f"must be a finite number > 0, got {multiple!r}")
    t = participant_times(sc, f, msp)
    return float(multiple * np.median(t)) if t.size else math.inf


def on_time(sc: Scenario, f: Any, msp: int, deadline: float = math.inf) -> np.ndarray:
    """Which participants of MSP ``msp`` deliver within ``deadline`` s (``Tcmp + Tup <= T_m``),
    bool (P,) in MU order; the others miss the round (docs/model.md section 7)."""
    return participant_times(sc, f, msp) <= deadline


def round_time(sc: Scenario, f: Any, msp: int, deadline: float = math.inf) -> float:
    """Simulated wall-clock time of one FL round of MSP ``msp``:
    ``min(T_m, max_n (Tcmp_nm + Tup_nm))`` over its participants (docs/model.md section 7; the
    default ``deadline = inf`` waits for the slowest). 0 if nobody participates."""
    if not (deadline > 0):
        raise InputError("deadline", f"must be > 0 seconds (or inf), got {deadline!r}")
    t = participant_times(sc, f, msp)
    if not t.size:
        return 0.0
    return float(min(deadline, t.max()))
