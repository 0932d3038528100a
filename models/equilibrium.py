"""Fast numpy follower equilibrium and independent KKT / deviation checks (docs/model.md sections 5-6).

Given the MSPs' rewards ``R``, the MUs play a Nash game: MU n solves

    max_{f_n >= 0, sum_m f_nm <= F_n}  U_n = sum_m pay_nm(f) - sum_m e_nm f_nm^2.

Each MU's problem is concave (a concave increasing share of a concave increasing
IoM minus a convex cost), separable across MSPs but for the budget. Its best
response is therefore found exactly by bisection on the budget multiplier
``mu_n``: for a given ``mu_n`` each ``f_nm`` solves the scalar equation
``dU_n/df_nm = mu_n`` (safeguarded Newton, the left side is decreasing in
``f_nm``), and ``sum_m f_nm(mu_n)`` is non-increasing in ``mu_n``. The Nash
point is reached by damped Jacobi best-response sweeps, all MUs at once.

Every operation broadcasts over leading batch axes: ``R`` of shape
``(..., M)`` gives allocations ``(..., N, M)``, so a leader's utility on a
whole grid of rewards is one call (used by :func:`leader_deviation_gain`).

The derivatives here are written by hand for the default formulas of
:mod:`models.iom` and :mod:`models.utility`; they are the independent check
of the Pyomo/Ipopt reference (Facchinei & Pang, *Finite-Dimensional Variational
Inequalities*, 2003, ch. 1 for the KKT / natural-residual form).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .iom import freshness_coefficients, quality
from .scenario import Mechanism, Scenario
from .utility import energy_cost_coefficient, msp_utilities, mu_utilities

__all__ = [
    "FollowerEquilibrium",
    "EquilibriumOptions",
    "follower_gradient",
    "best_response",
    "follower_equilibrium",
    "follower_kkt_residual",
    "FollowerKKTResidual",
    "leader_deviation_gain",
    "follower_uniqueness",
    "utilities",
]


@dataclass(frozen=True)
class EquilibriumOptions:
    """Options of :func:`follower_equilibrium`.

    Parameters
    ----------
    tol : float
        Stop when the largest change of any ``f_nm`` (GHz) in a sweep is below ``tol`` (default 1e-10).
    max_iter : int
        Most best-response sweeps (default 5000).
    damping : float
        Weight of the new best response in a Jacobi sweep, in (0, 1] (default 0.5).
    bisection_steps : int
        Most bracketing steps on each budget multiplier (default 100).
    newton_steps : int
        Most safeguarded Newton steps for each ``f_nm`` given its multiplier (default 50).
    """

    tol: float = 1e-10
    max_iter: int = 5000
    damping: float = 0.5
    bisection_steps: int = 100
    newton_steps: int = 50

    def __post_init__(self) -> None:
        if not (self.tol > 0):
            raise InputError("tol", f"must be > 0, got {self.tol}")
        if self.max_iter < 1:
            raise InputError("max_iter", f"must be >= 1, got {self.max_iter}")
        if not (0.0 < self.damping <= 1.0):
            raise InputError("damping", f"must be in (0, 1], got {self.damping}")
        if self.bisection_steps < 1 or self.newton_steps < 1:
            raise InputError("bisection_steps, newton_steps", "must be >= 1")


@dataclass(frozen=True)
class FollowerEquilibrium:
    """The MUs' Nash allocation for given rewards.

    Attributes
    ----------
    f : ndarray (..., N, M)
        CPU frequencies in GHz.
    mu : ndarray (..., N)
        Budget multipliers.
    iterations : int
        Best-response sweeps used.
    converged : bool
        Whether the last sweep moved every ``f_nm`` by less than ``tol``.
    step : float
        Largest change of the last sweep (GHz).
    """

    f: np.ndarray
    mu: np.ndarray
    iterations: int
    converged: bool
    step: float


class _Coef:
    """Per-pair constants of the default formulas: IoM_nm(f) = Q f / (alpha f + beta), cost e f^2."""

    def __init__(self, sc: Scenario) -> None:
        alpha, beta = freshness_coefficients(sc)
        has_data = sc.D > 0
        # A pair without data has IoM = 0: Q = 0 makes its marginal payment 0, so f_nm = 0.
        self.alpha, self.beta = alpha, np.where(has_data, beta, 1.0)
        self.Q = np.where(has_data, quality(sc), 0.0)
        self.e = energy_cost_coefficient(sc)
        self.F = sc.F
        self.eps0 = sc.eps0
        self.proportional = sc.mechanism is Mechanism.PROPORTIONAL

    def iom(self, f: np.ndarray) -> np.ndarray:
        return self.Q * f / (self.alpha * f + self.beta)

    def diom(self, f: np.ndarray) -> np.ndarray:
        """``IoM'(f) = Q beta / (alpha f + beta)^2``."""
        return self.Q * self.beta / (self.alpha * f + self.beta) ** 2

    def grad(self, R: np.ndarray, f: np.ndarray, C: np.ndarray) -> np.ndarray:
        """``dU_n/df_nm`` with ``C = sum_{k != n} IoM_km + eps0`` held fixed (proportional) or unused."""
        I, dI = self.iom(f), self.diom(f)
        if self.proportional:
            return R * C / (I + C) ** 2 * dI - 2.0 * self.e * f
        return R * dI - 2.0 * self.e * f


def _broadcast_R(sc: Scenario, R: Any) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.shape[-1:] != (sc.n_msp,):
        raise InputError("R", f"expected shape (..., {sc.n_msp}), got {R.shape}")
    return R[..., None, :]  # (..., 1, M) against pairs (N, M)


def _others(cf: _Coef, f: np.ndarray) -> np.ndarray:
    """``C_nm = sum_{k != n} IoM_km + eps0``."""
    I = cf.iom(f)
    return I.sum(-2, keepdims=True) - I + cf.eps0


@dataclass(frozen=True)
class _Ends:
    """What :func:`_f_given_mu` needs that does not depend on ``mu`` (computed once per best
    response, not once per step of the search in ``mu``): ``ln(R C Q beta)`` and the gradient
    at both ends of ``[0, F_n]``."""

    F: np.ndarray
    logRC: np.ndarray
    grad0: np.ndarray
    gradF: np.ndarray

    @classmethod
    def of(cls, cf: _Coef, R: np.ndarray, C: np.ndarray, shape: tuple) -> "_Ends":
        F = np.broadcast_to(cf.F[:, None], shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            logRC = np.log(R) + (np.log(C) if cf.proportional else 0.0) + np.log(cf.Q * cf.beta)
        return cls(F, logRC, cf.grad(R, np.zeros(shape), C), cf.grad(R, F, C))


def _f_given_mu(cf: _Coef, R: np.ndarray, C: np.ndarray, mu: np.ndarray, f0: np.ndarray, steps: int,
                ends: _Ends) -> np.ndarray:
    """Solve ``grad_nm(f) = mu_n`` on ``[0, F_n]`` for every pair.

    Written as ``h(f) = ln A(f) - ln(mu + 2 e f) = 0`` with ``A`` the marginal payment: ``h`` is
    convex and decreasing, so bracketed Newton converges monotonically, and the logarithm makes
    the steep start (tiny ``C``: the MU alone at an MSP) take a few steps instead of dozens.
    """
    F, logRC = ends.F, ends.logRC
    target = mu[..., None]
    at0 = ends.grad0 <= target
    atF = ends.gradF >= target
    lo = np.zeros_like(f0)
    hi = F.copy()
    f = np.clip(f0, 0.0, F)
    for _ in range(steps):
        y = cf.alpha * f + cf.beta
        b = target + 2.0 * cf.e * f
        with np.errstate(divide="ignore", invalid="ignore"):
            # the Newton step -h / h' is taken as -(b h) / (b h'): h' holds -2e / b, and b =
            # mu + 2 e f is subnormal where mu = 0 and f is tiny, so 2e / b overflowed
            # (proportional, n_mu 2, n_msp 6, seed 3157); b h' = b (rest) - 2e has no division by b
            if cf.proportional:
                I = cf.iom(f)
                h = logRC - 2.0 * np.log(y) - 2.0 * np.log(I + C) - np.log(b)
                bdh = -(2.0 * cf.alpha / y + 2.0 * cf.diom(f) / (I + C)) * b - 2.0 * cf.e
            else:
                h = logRC - 2.0 * np.log(y) - np.log(b)
                bdh = -(2.0 * cf.alpha / y) * b - 2.0 * cf.e
            newton = f - (b * h) / bdh
        pos = h > 0
        lo = np.where(pos, f, lo)
        hi = np.where(pos, hi, f)
        ok = np.isfinite(newton) & (newton > lo) & (newton < hi)
        root = np.abs(h) <= 1e-14
        f_new = np.where(root, f, np.where(ok, newton, 0.5 * (lo + hi)))
        done = root | (np.abs(f_new - f) <= 1e-14 * (1.0 + F))
        f = f_new
        if np.all(done | at0 | atF):
            break
    return np.where(at0, 0.0, np.where(atF, F, f))


def best_response(sc: Scenario, R: Any, f: Any, options: EquilibriumOptions = EquilibriumOptions()) -> tuple[np.ndarray, np.ndarray]:
    """Every MU's exact best response to the others' allocation ``f``.

    ``argmax_{f_n >= 0, 1'f_n <= F_n} U_n(f_n, f_-n)`` through its KKT conditions
    ``dU_n/df_nm = mu_n - nu_nm``, ``nu_nm f_nm = 0``: ``mu_n = 0`` if the unconstrained
    allocation fits the budget, else the root of ``sum_m f_nm(mu_n) = F_n`` (decreasing in
    ``mu_n``), found by bracketed regula falsi (Illinois variant).

    Returns
    -------
    f_br : ndarray (..., N, M)
    mu : ndarray (..., N)
    """
    cf = _Coef(sc)
    Rb = _broadcast_R(sc, R)
    f = np.asarray(f, dtype=float)
    f = np.broadcast_to(f, np.broadcast_shapes(f.shape, Rb.shape[:-2] + sc.D.shape)).copy()
    C = _others(cf, f) if cf.proportional else np.ones_like(f)
    zero_mu = np.zeros(f.shape[:-1])
    ends = _Ends.of(cf, Rb, C, f.shape)
    f_free = _f_given_mu(cf, Rb, C, zero_mu, f, options.newton_steps, ends)
    slack = f_free.sum(-1) <= cf.F
    if np.all(slack):
        return f_free, zero_mu
    # Above the largest marginal utility of the first GHz, nobody works: S(mu_hi) = -F_n < 0.
    mu_lo, s_lo = zero_mu, f_free.sum(-1) - cf.F
    mu_hi = np.maximum(ends.grad0.max(-1), 0.0)
    s_hi = -np.broadcast_to(cf.F, mu_hi.shape).astype(float)
    fb, mu = f_free, mu_hi
    side = np.zeros(mu_hi.shape)
    tol = 1e-12 * (1.0 + cf.F)
    for _ in range(options.bisection_steps):
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = (mu_lo * s_hi - mu_hi * s_lo) / (s_hi - s_lo)
        mu = np.where(np.isfinite(mu) & (mu > mu_lo) & (mu < mu_hi), mu, 0.5 * (mu_lo + mu_hi))
        fb = _f_given_mu(cf, Rb, C, mu, fb, options.newton_steps, ends)
        s = fb.sum(-1) - cf.F
        over = s > 0
        # Illinois: halve the stale end's value when the same end moves twice, so convergence stays superlinear.
        s_hi = np.where(over & (side > 0), 0.5 * s_hi, s_hi)
        s_lo = np.where(~over & (side < 0), 0.5 * s_lo, s_lo)
        mu_lo, s_lo = np.where(over, mu, mu_lo), np.where(over, s, s_lo)
        mu_hi, s_hi = np.where(over, mu_hi, mu), np.where(over, s_hi, s)
        side = np.where(over, 1.0, -1.0)
        if np.all(slack | (np.abs(s) <= tol) | (mu_hi - mu_lo <= 1e-14 * (1.0 + mu_hi))):
            break
    mu = np.where(slack, 0.0, mu)
    # The root is met to ~1e-12 from either side; shrink an overshoot so the point is feasible.
    tot = fb.sum(-1, keepdims=True)
    fb = np.where(tot > cf.F[:, None], fb * (cf.F[:, None] / np.maximum(tot, 1e-300)), fb)
    f_br = np.where(slack[..., None], f_free, fb)
    return f_br, mu


def follower_equilibrium(
    sc: Scenario,
    R: Any,
    f0: Any = None,
    options: EquilibriumOptions = EquilibriumOptions(),
) -> FollowerEquilibrium:
    """The MUs' Nash allocation for rewards ``R`` (``(M,)`` or a batch ``(..., M)``).

    Damped Jacobi best-response iteration ``f <- (1 - d) f + d BR(f)`` from ``f0``
    (default: each budget split evenly), stopped when no ``f_nm`` moves more than
    ``options.tol`` GHz. With the unit-price mechanism the MUs do not interact
    and one sweep is exact.
    """
    R = np.asarray(R, dtype=float)
    shape = R.shape[:-1] + sc.D.shape
    if f0 is None:
        f = np.broadcast_to(sc.F[:, None] / sc.n_msp, shape).copy()
    else:
        f = np.broadcast_to(np.asarray(f0, dtype=float), shape).copy()
    d = options.damping if sc.mechanism is Mechanism.PROPORTIONAL else 1.0
    step = np.inf
    mu = np.zeros(shape[:-1])
    for it in range(1, options.max_iter + 1):
        f_br, mu = best_response(sc, R, f, options)
        new = (1.0 - d) * f + d * f_br
        step = float(np.abs(new - f).max())
        f = new
        if step < options.tol:
            f, mu = best_response(sc, R, f, options) if d < 1.0 else (f, mu)
            return FollowerEquilibrium(f=f, mu=mu, iterations=it, converged=True, step=step)
    return FollowerEquilibrium(f=f, mu=mu, iterations=options.max_iter, converged=False, step=step)


def follower_gradient(sc: Scenario, R: Any, f: Any) -> np.ndarray:
    """``dU_n/df_nm`` at ``f`` (N, M), with the MU's own effect on the MSP totals included."""
    cf = _Coef(sc)
    f = np.asarray(f, dtype=float)
    Rb = _broadcast_R(sc, R)
    C = _others(cf, f) if cf.proportional else np.ones_like(f)
    return cf.grad(Rb, f, C)


@dataclass(frozen=True)
class FollowerKKTResidual:
    """Natural residuals of the followers' KKT system at a point (all >= 0; 0 at a KKT point).

    Attributes
    ----------
    stationarity : float
        ``max |min(f_nm, mu_n - dU_n/df_nm)|``: stationarity, sign of ``nu_nm = mu_n - grad`` and
        ``nu_nm f_nm = 0`` in one natural residual (GHz-scaled).
    budget : float
        ``max |min(mu_n, F_n - sum_m f_nm)|``: budget complementarity.
    feasibility : float
        ``max(0, -f_nm, sum_m f_nm - F_n)``.
    mu : ndarray (N,)
        Recovered budget multipliers.
    gradient : ndarray (N, M)
        ``dU_n/df_nm`` at the point.
    """

    stationarity: float
    budget: float
    feasibility: float
    mu: np.ndarray
    gradient: np.ndarray

    @property
    def max(self) -> float:
        """The largest of the three residuals."""
        return max(self.stationarity, self.budget, self.feasibility)


def follower_kkt_residual(sc: Scenario, R: Any, f: Any, active_tol: float = 1e-7) -> FollowerKKTResidual:
    """Residual of the MUs' KKT conditions at allocation ``f`` (N, M) for rewards ``R`` (M,).

    KKT of MU n: ``grad_nm - mu_n + nu_nm = 0``, ``0 <= f_nm _|_ nu_nm >= 0``,
    ``0 <= mu_n _|_ F_n - sum_m f_nm >= 0``. The multipliers are recovered by hand:
    ``mu_n`` = mean gradient over the MSPs MU n works for (``f_nm > active_tol F_n``),
    clipped at 0, and 0 for an MU that works for nobody; then ``nu = mu - grad``.
    Independent of any solver: gradients are :func:`follower_gradient`.
    """
    f = np.asarray(f, dtype=float)
    if f.shape != sc.D.shape:
        raise InputError("f", f"expected shape {sc.D.shape}, got {f.shape}")
    g = follower_gradient(sc, R, f)
    active = f > active_tol * sc.F[:, None]
    cnt = active.sum(1)
    mean_g = np.where(cnt > 0, np.where(active, g, 0.0).sum(1) / np.maximum(cnt, 1), 0.0)
    mu = np.maximum(mean_g, 0.0)
    slack = sc.F - f.sum(1)
    stat = np.abs(np.minimum(np.maximum(f, 0.0), mu[:, None] - g))
    bud = np.abs(np.minimum(mu, np.maximum(slack, 0.0)))
    feas = np.maximum(0.0, np.maximum(-f.min(initial=0.0), (-slack).max(initial=0.0)))
    return FollowerKKTResidual(
        stationarity=float(stat.max()),
        budget=float(bud.max()),
        feasibility=float(feas),
        mu=mu,
        gradient=g,
    )


def leader_deviation_gain(
    sc: Scenario,
    R: Any,
    grid_points: int = 201,
    options: EquilibriumOptions = EquilibriumOptions(tol=1e-9),
) -> np.ndarray:
    """Each MSP's best unilateral gain ``max_{r in grid} V_m(r, R_-m) - V_m(R)`` (M,).

    The grid is ``grid_points`` evenly spaced rewards on ``[0, Rmax_m]`` plus ``R_m`` itself (so the
    gain is >= 0 up to the follower tolerance); every utility is
    evaluated at the followers' exact numpy response (docs/model.md section 5, certificate (b)).
    """
    R = np.asarray(R, dtype=float)
    base_f = follower_equilibrium(sc, R, options=options).f
    base = msp_utilities(sc, R, base_f)
    gains = np.empty(sc.n_msp)
    for m in range(sc.n_msp):
        grid = np.sort(np.append(np.linspace(0.0, sc.Rmax[m], grid_points), R[m]))
        Rs = np.repeat(R[None, :], grid.size, axis=0)
        Rs[:, m] = grid
        fs = follower_equilibrium(sc, Rs, f0=base_f, options=options).f
        V = np.array([msp_utilities(sc, Rs[k], fs[k])[m] for k in range(grid.size)])
        gains[m] = float(V.max() - base[m])
    return gains


def follower_uniqueness(
    sc: Scenario,
    R: Any,
    starts: int = 5,
    seed: int = 0,
    options: EquilibriumOptions = EquilibriumOptions(),
) -> float:
    """Largest distance (GHz) between the follower equilibria reached from ``starts`` random
    feasible starting points (docs/model.md section 5, certificate (c)); ~0 means unique."""
    rng = np.random.default_rng(seed)
    sols = []
    for _ in range(starts):
        w = rng.dirichlet(np.ones(sc.n_msp + 1), size=sc.n_mu)[:, : sc.n_msp]
        sols.append(follower_equilibrium(sc, R, f0=w * sc.F[:, None], options=options).f)
    ref = sols[0]
    return float(max(np.abs(s - ref).max() for s in sols))


def utilities(sc: Scenario, R: Any, f: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(V, U)``: MSP utilities (M,) and MU utilities (N,) at ``(R, f)``."""
    return msp_utilities(sc, R, f), mu_utilities(sc, R, f)
