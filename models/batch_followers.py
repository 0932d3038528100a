"""The MUs' Nash equilibrium for a whole batch of markets at once, in torch (CPU or CUDA).

Each market b has its own scenario and rewards ``R_b`` (M,). MU n maximises
``U_n = sum_m pay(R_m, IoM_nm, T_m) - sum_m cost(e_nm, f_nm)`` over ``f_n >= 0``,
``sum_m f_nm <= F_n``, with ``T_m = sum_k IoM_km`` the MSP's total (docs/model.md sections 3-5).
Its KKT conditions, written with ``g_nm = dU_n/df_nm``::

    min(f_nm, mu_n - g_nm) = 0,     min(mu_n, F_n - sum_m f_nm) = 0.

``g_nm`` depends on the pair's own ``f_nm`` and on the aggregate ``T_m`` only, so the
Jacobian is one diagonal entry per pair plus the M aggregates. The solver is a semismooth
(primal-dual active-set) Newton method on that system (Hintermueller, Ito & Kunisch,
SIAM J. Optim. 13, 2003): each iteration picks the pairs at ``f = 0`` and the binding budgets
from the current point, eliminates ``f`` and ``mu`` in closed form per MU, and leaves an
M x M linear system in the change of the aggregates ``dT``, solved batched. It reaches the
natural residual 1e-12 in 7-12 iterations from a cold start on the 20x3 default; the numpy
solver's damped Jacobi best response needs many sweeps, each an inner root search per MU
(``metatrading bench pricing`` times both in one run).

Every formula comes from :mod:`models` (``models.iom.iom``, ``models.utility.payment``,
``models.utility.energy_cost`` and the parameter functions): the derivatives are taken by
second-order Taylor arithmetic (:mod:`models.taylor`), nothing is re-typed here.

It lives in ``models`` (it was ``drl/followers.py``) so that the certificate of :mod:`epec`
(one layer below ``drl``) solves its deviation responses with it as batches; ``drl.followers``
re-exports it. Not imported by ``models/__init__`` (torch would load with every ``import models``):
import it as ``models.batch_followers``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .iom import freshness_coefficients, iom, quality
from .scenario import MU_FIELDS, MSP_FIELDS, PAIR_FIELDS, SCALAR_FIELDS, Mechanism, Scenario
from .utility import energy_cost, energy_cost_coefficient, msp_payment, msp_value, payment

from .taylor import variables

__all__ = ["SolverOptions", "Coefficients", "BatchEquilibrium", "solve_followers", "market_utilities",
           "scenario_arrays"]


@dataclass(frozen=True)
class SolverOptions:
    """Options of :func:`solve_followers`.

    Parameters
    ----------
    tol : float
        Natural KKT residual (GHz for ``f``, utility per GHz for ``mu``) at which a market counts as
        solved (default 1e-12).
    max_iter : int
        Most Newton iterations (default 60).
    compact : bool
        In a batch of :data:`_COMPACT_FROM` markets or more, each market stops at its first
        iterate within ``tol`` and the markets still iterating are gathered into smaller tensors
        (:func:`_iterate`); the answers agree with the default's to ``tol``, not bit for bit
        (default False: every market steps until all are within ``tol``, as the learned
        pricing's environments were measured).
    """

    tol: float = 1e-12
    max_iter: int = 60
    compact: bool = False

    def __post_init__(self) -> None:
        if not (self.tol > 0):
            raise InputError("tol", f"must be > 0, got {self.tol}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise InputError("max_iter", f"must be an integer >= 1, got {self.max_iter!r}")
        if not isinstance(self.compact, bool):
            raise InputError("compact", f"must be True or False, got {self.compact!r}")


def scenario_arrays(base: Scenario, **pair_fields: np.ndarray) -> Any:
    """A scenario view whose pair fields carry a leading batch axis, e.g. ``D`` of shape (E, N, M).

    The parameter functions of :mod:`models.iom` and :mod:`models.utility` broadcast, so they
    evaluate every market of a batch at once on this view; every field not given (per-MU,
    per-MSP, scalar, and the pair fields left out) is the base's.
    """
    ns = {k: getattr(base, k) for k in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS + SCALAR_FIELDS}
    ns.update(pair_fields)
    ns["mechanism"] = base.mechanism
    ns["metric"] = base.metric  # a partial-metric game stays one in the batch (models.iom.quality)
    return SimpleNamespace(**ns)


@dataclass(frozen=True)
class Coefficients:
    """Per-pair constants of a batch of markets as tensors.

    ``IoM_nm(f) = iom(f, Q, alpha, beta)``; cost ``energy_cost(e, f)``; shapes (B, N, M) or
    (1, N, M) for one scenario shared by the batch; ``F`` (B|1, N); ``lam`` (M,), or (B, M) per
    market.
    A pair without data has ``Q = 0`` (``beta = 1`` keeps the formula finite), so its IoM is 0.
    """

    Q: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    e: torch.Tensor
    F: torch.Tensor
    lam: torch.Tensor
    eps0: float
    mechanism: Mechanism

    @classmethod
    def of(cls, sc: Any, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> "Coefficients":
        """From a :class:`Scenario` or a :func:`scenario_arrays` view (pair fields (E, N, M))."""
        alpha, beta = freshness_coefficients(sc)
        Q = quality(sc)
        e = energy_cost_coefficient(sc)
        has = np.asarray(sc.D) > 0
        alpha, beta, Q, e, has = np.broadcast_arrays(alpha, beta, Q, e, has)
        t = lambda a: torch.as_tensor(np.array(a, dtype=float), dtype=dtype, device=device)  # noqa: E731
        batch = lambda a: a if a.dim() == 3 else a.unsqueeze(0)  # noqa: E731
        return cls(
            Q=batch(t(np.where(has, Q, 0.0))), alpha=batch(t(alpha)), beta=batch(t(np.where(has, beta, 1.0))),
            e=batch(t(e)), F=t(sc.F).reshape(1, -1), lam=t(sc.lam),
            eps0=float(sc.eps0), mechanism=Mechanism(sc.mechanism),
        )

    def take(self, index: Any) -> "Coefficients":
        """The coefficients of the markets ``index`` (a mask, indices or a slice) of a batch with
        one set per market; a field shared by all (first axis 1, or ``lam`` of shape (M,)) stays
        as it is, and so does the whole of a one-scenario batch."""
        count = int(self.Q.shape[0])
        if count == 1:
            return self
        pick = lambda t: t[index] if t.dim() >= 2 and t.shape[0] == count else t  # noqa: E731
        return Coefficients(Q=pick(self.Q), alpha=pick(self.alpha), beta=pick(self.beta), e=pick(self.e),
                            F=pick(self.F), lam=pick(self.lam), eps0=self.eps0, mechanism=self.mechanism)

    @property
    def shape(self) -> tuple[int, int]:
        """(N, M)."""
        return int(self.Q.shape[-2]), int(self.Q.shape[-1])


@dataclass(frozen=True)
class BatchEquilibrium:
    """The followers' equilibria of a batch.

    Attributes
    ----------
    f : Tensor (B, N, M)
        CPU frequencies in GHz.
    mu : Tensor (B, N)
        Budget multipliers.
    iom : Tensor (B, N, M)
        ``IoM_nm`` at ``f``.
    residual : Tensor (B,)
        Natural KKT residual of each market.
    converged : Tensor (B,) bool
        ``residual <= tol``.
    iterations : int
    """

    f: torch.Tensor
    mu: torch.Tensor
    iom: torch.Tensor
    residual: torch.Tensor
    converged: torch.Tensor
    iterations: int


def _total(*terms: Any) -> Any:
    """Sum of the derivative entries that are not identically zero (``None``)."""
    out = None
    for t in terms:
        if t is not None:
            out = t if out is None else out + t
    return 0.0 if out is None else out


def _iom_derivatives(cf: Coefficients, f: torch.Tensor) -> tuple[torch.Tensor, Any, Any]:
    """``IoM, IoM', IoM''`` of every pair: :func:`models.iom.iom` evaluated on a jet."""
    (x,) = variables(f)
    I = iom(x, cf.Q, cf.alpha, cf.beta)
    return I.v, _total(I.g[0]), _total(I.h[0][0])


def _payment_derivatives(cf: Coefficients, R: torch.Tensor, I: torch.Tensor, T: torch.Tensor) -> tuple[Any, Any, Any]:
    """``q = (d/dI + d/dT) pay(R, I, T)`` (the marginal payment of one unit of own IoM, the
    MU's own share of the total included), and ``dq/dI``, ``dq/dT``, from
    :func:`models.utility.payment` evaluated on jets (``T`` (B, 1, M) broadcasts)."""
    i, t = variables(I, T)
    P = payment(cf.mechanism, R, i, t, cf.eps0)
    return _total(P.g[0], P.g[1]), _total(P.h[0][0], P.h[0][1]), _total(P.h[0][1], P.h[1][1])


def _cost_derivatives(cf: Coefficients, f: torch.Tensor) -> tuple[Any, Any]:
    """First and second derivative of :func:`models.utility.energy_cost` in ``f``."""
    (x,) = variables(f)
    c = energy_cost(cf.e, x)
    return _total(c.g[0]), _total(c.h[0][0])


def _sum_msps(x: torch.Tensor) -> torch.Tensor:
    """``x.sum(-1)`` over the M MSPs: unrolled for small M, where torch's reduction over a short
    last axis was measured ~20x slower than M - 1 additions (batch 1024, 20x3)."""
    M = x.shape[-1]
    if M > 8:
        return x.sum(-1)
    out = x[..., 0]
    for m in range(1, M):
        out = out + x[..., m]
    return out


def _natural_residual(f: torch.Tensor, mu: torch.Tensor, g: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    stat = torch.minimum(f, mu.unsqueeze(-1) - g).abs().amax((-2, -1))
    bud = torch.minimum(mu, F - _sum_msps(f)).abs().amax(-1)
    return torch.maximum(stat, bud)


def _newton_step(cf: Coefficients, Rb: torch.Tensor, has: torch.Tensor, F: torch.Tensor, F3: torch.Tensor,
                 f: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One semismooth Newton step from ``(f, mu)``; also the natural residual at ``(f, mu)``.
    ``F`` (B, N) and ``F3`` (B, N, M) are the budgets, contiguous (broadcasting an expanded
    tensor was measured ~4x slower)."""
    M = f.shape[-1]
    zero = torch.zeros((), dtype=f.dtype, device=f.device)
    eye = torch.eye(M, dtype=f.dtype, device=f.device)
    I, I1, I2 = _iom_derivatives(cf, f)
    T = I.sum(-2, keepdim=True)
    q, qI, qT = _payment_derivatives(cf, Rb, I, T)
    c1, c2 = _cost_derivatives(cf, f)
    g = q * I1 - c1
    residual = _natural_residual(f, mu, g, F)
    a = qI * I1 * I1 + q * I2 - c2  # dg/df at fixed T (< 0)
    b = qT * I1  # dg/dT
    x = 1.0 / a
    # Active sets (primal-dual): a pair is free when its own Newton step keeps f > 0; a
    # budget binds when the free pairs' allocation at mu = 0 would exceed it.
    free = has & (f + (mu.unsqueeze(-1) - g) * x > 0)
    xf = torch.where(free, x, zero)
    s = _sum_msps(xf)  # sum of 1/a over the free pairs (< 0 when any)
    base = torch.where(free, f - g * x, zero)
    cap = _sum_msps(base)
    binding = (s < 0) & (cap > F)
    ssafe = torch.where(binding, s, -torch.ones_like(s))
    # f_new = base + x (mu_new - b dT) on free pairs (0 elsewhere), mu_new = alpha_n + beta_n . dT:
    # mu and f are eliminated per MU, leaving M unknowns dT per market.
    alpha_n = torch.where(binding, (F - cap) / ssafe, zero)
    beta_nm = torch.where(binding.unsqueeze(-1), b * xf / ssafe.unsqueeze(-1), zero)
    c = torch.where(free, base + xf * alpha_n.unsqueeze(-1), zero)
    # dT = sum_n I1 (f_new - f):  (1 - A) dT = r with A = (I1 x)^T beta - diag(sum_n I1 x b).
    w = I1 * xf
    A = torch.einsum("bnm,bnk->bmk", w, beta_nm) - torch.diag_embed((w * b).sum(-2))
    r = (I1 * (c - f)).sum(-2)
    dT = torch.linalg.solve(eye - A, r.unsqueeze(-1)).squeeze(-1)  # (B, M)
    bdT = _sum_msps(beta_nm * dT.unsqueeze(-2))
    f_new = c + xf * (bdT.unsqueeze(-1) - b * dT.unsqueeze(-2))
    mu_new = alpha_n + bdT
    return torch.minimum(f_new.clamp(min=0.0), F3), mu_new.clamp(min=0.0), residual


#: a batch of at least this many markets sets its converged markets aside (below it the
#: bookkeeping costs more than the steps it saves)
_COMPACT_FROM = 256


def _iterate(cf: Coefficients, Rb: torch.Tensor, has: torch.Tensor, F: torch.Tensor, F3: torch.Tensor,
             f: torch.Tensor, mu: torch.Tensor, options: SolverOptions
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """:func:`solve_followers`' Newton steps: ``(f, mu, residual, iterations)``. With
    ``options.compact``, in a batch of :data:`_COMPACT_FROM` markets or more, each market stops
    at its first iterate within ``options.tol`` (its steps depend on its own data alone) and the
    markets still iterating are gathered into smaller tensors once they are under half of those
    in hand (a certificate's 3,075 deviation markets of 20x3: after five steps 395 were left,
    then 8; 13% less time), so the last steps cost what those markets cost. Otherwise every
    market steps until all are within ``tol``."""
    B = Rb.shape[0]
    if B < _COMPACT_FROM or not options.compact:  # every market steps until all are within tol
        it, residual = 0, torch.full((B,), math.inf, dtype=f.dtype, device=f.device)
        for it in range(1, options.max_iter + 1):
            f_new, mu_new, residual = _newton_step(cf, Rb, has, F, F3, f, mu)
            if bool((residual <= options.tol).all()):
                break
            f, mu = f_new, mu_new
        return f, mu, residual, it
    residual = torch.full((B,), math.inf, dtype=f.dtype, device=f.device)
    f_out, mu_out = f.clone(), mu.clone()
    idx = torch.arange(B, device=f.device)  # the markets in hand, in the full batch
    part = (cf, Rb, has, F, F3)
    it = 0
    for it in range(1, options.max_iter + 1):
        f_new, mu_new, res = _newton_step(*part, f, mu)
        residual[idx] = res  # at the iterate in hand, as each market's answer is
        done = res <= options.tol
        if bool(done.all()):
            break
        if bool(done.any()):  # the converged keep this iterate; the others step on
            left = ~done
            f, mu = torch.where(left[:, None, None], f_new, f), torch.where(left[:, None], mu_new, mu)
            if 2 * int(left.sum()) <= len(idx):
                f_out[idx], mu_out[idx] = f, mu
                keep = torch.nonzero(left).squeeze(-1)
                part = (part[0].take(keep), *(t[keep] for t in part[1:]))
                idx, f, mu = idx[keep], f[keep], mu[keep]
        else:
            f, mu = f_new, mu_new
    f_out[idx], mu_out[idx] = f, mu
    return f_out, mu_out, residual, it


def solve_followers(
    cf: Coefficients,
    R: Any,
    f0: torch.Tensor | None = None,
    options: SolverOptions = SolverOptions(),
) -> BatchEquilibrium:
    """The followers' Nash equilibrium of every market of the batch (semismooth Newton).

    Parameters
    ----------
    cf : Coefficients
        The markets (B, N, M), or one scenario (1, N, M) shared by all.
    R : array or Tensor (B, M)
        Rewards, each in ``[0, Rmax_m]`` (not checked here: the environment clips).
    f0 : Tensor (B, N, M), optional
        Warm start (default: each budget split evenly over the pairs with data).
    options : SolverOptions

    Returns
    -------
    BatchEquilibrium
    """
    dev, dt = cf.Q.device, cf.Q.dtype
    R = torch.as_tensor(R, dtype=dt, device=dev)
    if R.dim() != 2 or R.shape[-1] != cf.shape[1]:
        raise InputError("R", f"expected shape (B, {cf.shape[1]}), got {tuple(R.shape)}")
    B = R.shape[0]
    N, M = cf.shape
    has = (cf.Q > 0).expand(B, N, M).contiguous()
    F = cf.F.expand(B, N).contiguous()
    F3 = F.unsqueeze(-1).expand(B, N, M).contiguous()
    Rb = R.unsqueeze(-2)  # (B, 1, M) against pairs
    if f0 is None:
        k = has.sum(-1, keepdim=True).clamp(min=1)
        f = torch.where(has, F3 / k, torch.zeros((), dtype=dt, device=dev))
    else:
        f = torch.as_tensor(f0, dtype=dt, device=dev).expand(B, N, M).clone()
    mu = torch.zeros(B, N, dtype=dt, device=dev)
    f, mu, residual, it = _iterate(cf, Rb, has, F, F3, f, mu, options)
    zero = torch.zeros((), dtype=dt, device=dev)
    # Newton reaches a pair's zero only in the limit: a leftover below 1e-14 F_n is that zero.
    f = torch.where(f <= 1e-14 * F3, zero, f)
    I = iom(f, cf.Q, cf.alpha, cf.beta)
    return BatchEquilibrium(f=f, mu=mu, iom=I, residual=residual, converged=residual <= options.tol, iterations=it)


def market_utilities(cf: Coefficients, R: torch.Tensor, I: torch.Tensor) -> torch.Tensor:
    """``V_m = value(lambda_m, T_m) - msp_payment(R_m, T_m)`` of every market (B, M), from
    :mod:`models.utility`."""
    T = I.sum(-2)
    return msp_value(cf.lam, T, log=torch.log) - msp_payment(cf.mechanism, R, T, cf.eps0)
