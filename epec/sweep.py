"""Certified equilibrium paths: the EPEC of a scenario swept over one parameter (or two), by
continuation, with the sensitivities of the equilibrium at every certified point.

A sweep is one loop per *path* (the values of ``param`` in order; a second parameter ``param2``
gives one independent path per value of it). Each point is the ordinary solve,
:func:`epec.solve_scenario`, started from the previous point's equilibrium moved along its
tangent (the first-order predictor ``R + dR/dtheta * dtheta``) and corrected by chord Newton on
the equilibrium conditions ``G_I(R, theta) = 0`` with the last smooth point's ``dG_I/dR_I``
(the predictor-corrector continuation of homotopy codes): the diagonalisation then starts at
the equilibrium and confirms it in one sweep. The game is built and compiled once per path (its
numbers are mutable Params, :class:`epec.Workspace`), and up to ``together`` consecutive points
are solved first and then certified together (:mod:`epec.certify_together`): every point is
certified exactly as alone. A point whose warm start does not end certified is solved again
cold; a point that ends uncertified is marked, never interpolated, and the next point of the path
starts cold.

Sensitivities (:func:`sensitivities`) follow from the implicit function theorem on the
equilibrium conditions. For fixed ``theta`` the followers' response ``z(R, theta)`` solves their
smoothed KKT system (:class:`epec.FollowerResponse`) and each MSP's reduced utility
``V_m(R, z(R, theta))`` has the exact gradient ``G_m = dV_m/dR_m`` of the implicit leader step.
At an equilibrium ``G_m = 0`` for every interior reward, so::

    dR_I/dtheta = -(dG_I/dR_I)^-1 (dG_I/dtheta + dG_I/dR_B dR_B/dtheta),

``I`` the interior rewards and ``B`` the rewards at a bound (``dR_B/dtheta = 0`` at 0, the
bound's own derivative at ``Rmax``: 1 when ``Rmax`` itself is swept). The second-order terms
``dG/dR`` (at ``theta``) and ``dG/dtheta`` are central differences of the exact gradient ``G``
(step ``fd_step`` relative), on the followers' system compiled once per path with the
scenario's numbers as Params and moved to ``theta``, ``theta -+ h``. The derivatives of the utilities, the IoM and the allocation are
central differences along the tangent ``(theta -+ h, R -+ h dR/dtheta)``, where the followers
are solved exactly.

A derivative exists only where the followers' active set does not change: a point where an MU
enters or leaves (``f_nm = 0`` with a zero multiplier: degenerate complementarity), a budget
starts or stops binding with a zero multiplier, a reward touches its bound with ``G_m = 0``, or
the active set differs at ``theta -+ h``, is reported as a ``kink`` with the reason, and no
derivative.

Parameters (:data:`PARAMETERS`): any field of :class:`models.Scenario` with a number (an array
field takes one value broadcast to its shape: ``rho = 0.5`` for every MU); the IoM weights keep
their sum 1 (sweeping ``w_acc`` rescales ``w_amt`` and ``w_val`` in proportion); ``n_mu`` and
``n_msp`` redraw the scenario (:func:`apply_parameter`).

The unit of work is :func:`sweep_path`: one pure function of plain data (the scenario as a dict,
the values, the options as a dict, the points already computed) returning plain records, so
paths run in-process or as Ray tasks with the same results (``benchmarks/`` maps them).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from models.errors import InputError
from models.scenario import clip_rewards

__all__ = ["PARAMETERS", "SweepOptions", "apply_parameter", "check_values", "sensitivities", "sweep",
           "sweep_path", "path_tasks"]

#: the parameters whose values a sweep redraws the scenario for (not continuous: no derivative)
DISCRETE = ("n_mu", "n_msp")
_WEIGHTS = ("w_acc", "w_amt", "w_val")


def _fields() -> tuple[str, ...]:
    from models.scenario import MSP_FIELDS, MU_FIELDS, PAIR_FIELDS, SCALAR_FIELDS

    return MU_FIELDS + PAIR_FIELDS + MSP_FIELDS + SCALAR_FIELDS


#: every parameter a sweep can move
PARAMETERS: tuple[str, ...] = _fields() + DISCRETE


@dataclass(frozen=True)
class SweepOptions:
    """How each point is solved and what is computed there.

    Parameters
    ----------
    method, mode, tol, max_iter, grid, leader_step
        As :func:`epec.solve_scenario` (defaults Gauss-Seidel, Scholtes, 1e-6, 50, 41, implicit).
    global_moves, starts : int
        :class:`epec.GlobalOptions` of each solve (defaults 8 and 2).
    continuation : bool
        Start each point from the previous certified one (default True); False solves every
        point cold (the baseline).
    predict : bool
        Move that start along the previous point's tangent (default True; needs
        ``sensitivities``).
    sensitivities : bool
        Compute the derivatives at every certified point (default True).
    fd_step : float
        Relative step of the central differences of the exact gradients (default 1e-4: the
        responses are solved to ``max |F| <= 1e-10``, so the truncation ``~h^2`` and the noise
        ``~1e-10 / h`` are both below 1e-6 relative).
    kink_tol : float
        A multiplier or a reward gradient within ``kink_tol`` times its scale counts as zero (a
        kink). Default 1e-6.
    together : int
        With continuation: up to this many consecutive points are solved one after another and
        then certified together (:mod:`epec.certify_together`: their deviation scans searched in
        lockstep, each round of all of them one batch); the first that fails is solved again
        alone, as without it. 1 certifies every point alone. Default 10.
    """

    method: str = "gauss-seidel"
    mode: str = "scholtes"
    tol: float = 1e-6
    max_iter: int = 50
    grid: int = 41
    leader_step: str = "implicit"
    global_moves: int = 8
    starts: int = 2
    continuation: bool = True
    predict: bool = True
    sensitivities: bool = True
    fd_step: float = 1e-4
    kink_tol: float = 1e-6
    together: int = 10

    def __post_init__(self) -> None:
        for name in ("tol", "fd_step", "kink_tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise InputError(name, f"must be in (0, 1), got {value!r}")
        for name, low in (("max_iter", 1), ("grid", 2), ("global_moves", 0), ("starts", 0), ("together", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(name, f"must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- the parameter
def apply_parameter(scenario: Any, name: str, value: float) -> Any:
    """``scenario`` with parameter ``name`` set to ``value`` (validated; InputError naming the
    parameter otherwise).

    An array field takes ``value`` everywhere (``rho = 0.5`` for every MU). ``w_acc``, ``w_amt``
    or ``w_val`` set to ``value`` rescales the other two in proportion so the three still sum to
    1 (equally when both are 0). ``n_mu`` / ``n_msp`` redraw the scenario: the per-MU, per-pair
    and per-MSP fields are drawn again by :func:`models.scenario.generate` from the scenario's
    seed (0 when it has none) at the new size, so a file's overrides of those fields are not
    kept; the scalars, the mechanism, the metric and the name are.
    """
    from models.scenario import MSP_FIELDS, MU_FIELDS, PAIR_FIELDS, SCALAR_FIELDS, generate

    if name not in PARAMETERS:
        raise InputError("param", f"unknown parameter {name!r} (choose: {', '.join(PARAMETERS)})")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise InputError(name, f"expected a finite number, got {value!r}")
    value = float(value)
    sc = scenario
    if name in DISCRETE:
        if value != int(value) or value < 1:
            raise InputError(name, f"must be a whole number >= 1, got {value:g}")
        n, m = (int(value), sc.n_msp) if name == "n_mu" else (sc.n_mu, int(value))
        base = generate(n, m, seed=sc.seed if sc.seed is not None else 0, name=sc.name)
        return base.replace(mechanism=sc.mechanism, metric=sc.metric, **{k: getattr(sc, k) for k in SCALAR_FIELDS})
    if name in _WEIGHTS:
        if not 0 <= value <= 1:
            raise InputError(name, f"must be in [0, 1], got {value:g}")
        others = [k for k in _WEIGHTS if k != name]
        rest = sum(getattr(sc, k) for k in others)
        share = [getattr(sc, k) / rest if rest > 0 else 0.5 for k in others]
        w = {name: value, others[0]: (1 - value) * share[0]}
        w[others[1]] = 1.0 - value - w[others[0]]  # the sum is exactly 1 in floating point
        return sc.replace(**{k: max(v, 0.0) for k, v in w.items()})
    if name in MU_FIELDS + PAIR_FIELDS + MSP_FIELDS:
        return sc.replace(**{name: np.full(getattr(sc, name).shape, value)})
    return sc.replace(**{name: value})


def check_values(scenario: Any, name: str, values: Sequence[float]) -> list[float]:
    """The sweep values of ``name`` as floats, each checked by :func:`apply_parameter` (an
    InputError names the parameter and the first bad value)."""
    if not len(values):
        raise InputError(name, "no values to sweep")
    out = []
    for v in values:
        apply_parameter(scenario, name, v)
        out.append(float(v))
    return out


# ---------------------------------------------------------------------------- one point
def _solve(sc: Any, opts: SweepOptions, R0: Any = None, f0: Any = None, workspace: Any = None,
           certify: bool = True) -> Any:
    from .options import GlobalOptions
    from .scenario import solve_scenario

    return solve_scenario(sc, method=opts.method, mode=opts.mode, tol=opts.tol, max_iter=opts.max_iter,
                          grid=opts.grid, leader_step=opts.leader_step, R0=R0, f0=f0, workspace=workspace,
                          certify=certify, global_search=GlobalOptions(moves=opts.global_moves, starts=opts.starts))


def _outcome(sc: Any, R: np.ndarray, f: np.ndarray) -> dict[str, Any]:
    """What a point reports (and what the tangent differentiates): rewards, utilities, IoM,
    participation at ``(R, f)``."""
    from models.iom import iom_matrix
    from models.utility import msp_utilities, mu_utilities

    I = iom_matrix(sc, f)
    V, U = msp_utilities(sc, R, f), mu_utilities(sc, R, f)
    return {"rewards": R.tolist(), "msp_utility": V.tolist(),
            "mu_utility": {"mean": float(U.mean()), "min": float(U.min()), "max": float(U.max()),
                           "total": float(U.sum())},
            "iom": I.sum(0).tolist(), "participation": (f > _ACTIVE * sc.F[:, None]).sum(0).tolist()}


#: an allocation below this times the MU's budget is "no work" (the models' numpy checker's rule)
_ACTIVE = 1e-7


def _pattern(sc: Any, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The followers' active set: which pairs work, which budgets bind."""
    working = f > _ACTIVE * sc.F[:, None]
    binding = sc.F - f.sum(1) <= _ACTIVE * sc.F
    return working, binding


def _degenerate(sc: Any, R: np.ndarray, f: np.ndarray, kink_tol: float) -> list[str]:
    """Degenerate complementarity of the followers at ``(R, f)`` (a kink of the equilibrium path):
    a pair not working whose multiplier ``nu_nm = mu_n - dU_n/df_nm`` is zero (the MU is about to
    enter or has just left), a binding budget whose multiplier ``mu_n`` is zero."""
    from models.equilibrium import follower_kkt_residual

    chk = follower_kkt_residual(sc, R, f)
    g, mu = chk.gradient, chk.mu
    scale = np.maximum(1.0, np.abs(g).max(1))
    working, binding = _pattern(sc, f)
    out = []
    idle = (~working) & (sc.D > 0)
    nu = mu[:, None] - g
    for n, m in zip(*np.nonzero(idle & (np.abs(nu) <= kink_tol * scale[:, None]))):
        out.append(f"MU {n} at the edge of working for MSP {m} (f = 0 with multiplier {nu[n, m]:.2g})")
    for n in np.flatnonzero(binding & working.any(1) & (mu <= kink_tol * scale)):
        out.append(f"MU {n}'s budget binds with multiplier {mu[n]:.2g}")
    return out


class _Followers:
    """The followers' response compiled once (the machinery of the implicit leader step), on a
    parametric game (:func:`models.game.build_game`, ``parametric=True``): Newton on their
    smoothed KKT system at any scenario of the same structure (:meth:`at`)."""

    def __init__(self, sc: Any, R: np.ndarray, f: np.ndarray) -> None:
        from models.game import build_game

        from .kkt import kkt
        from .response import FollowerResponse

        self.model = model = build_game(sc, R0=clip_rewards(R, sc.Rmax), f0=f, parametric=True)
        kkts = [kkt(b) for b in model.mu.values()]
        self.resp = FollowerResponse(kkts, [[model.msp[m].R] for m in model.MSP],
                                     [model.msp[m].utility for m in model.MSP])
        if any(len(pos) != 1 for pos in self.resp.leader_pos):
            raise _NoDerivative("an MSP's reward does not enter the followers' system")

    def fits(self, sc: Any) -> bool:
        from models.game import same_structure

        return same_structure(self.model, sc)

    def at(self, sc: Any, R: np.ndarray, f: np.ndarray) -> _FollowersAt:
        """The response at scenario ``sc`` (the same structure), started from ``(R, f)``."""
        from models.game import update_game

        update_game(self.model, sc, R0=R, f0=f)
        z, y = self.resp.read()
        return _FollowersAt(self, z, y, self.resp.system.read_params())


@dataclass
class _FollowersAt:
    """:class:`_Followers` at one scenario: its parameters ``p`` and the start ``z``, ``y``."""

    base: _Followers
    z: np.ndarray
    y: np.ndarray
    p: np.ndarray

    def respond(self, R: np.ndarray) -> tuple[Any, np.ndarray]:
        resp = self.base.resp
        y = resp.inputs_at(self.y, [np.array([r]) for r in R])
        r = resp.solve(self.z, y, self.p, sensitivity=True)
        if not (r.ok and r.lu is not None):
            r = resp.solve(self.z, y, self.p, cold=True, sensitivity=True)
        if not (r.ok and r.lu is not None):
            raise _NoDerivative(f"no follower response at R = {np.round(R, 6).tolist()} ({r.status})")
        return r, y

    def gradient(self, R: np.ndarray) -> np.ndarray:
        """``G_m = dV_m/dR_m`` for every MSP, at the followers' response to ``R``."""
        r, y = self.respond(R)
        return np.array([self.base.resp.utility_gradient(m, r, y, self.p)[1][0] for m in range(len(R))])

    def allocation(self, R: np.ndarray) -> np.ndarray:
        from models.game import allocations

        r, _ = self.respond(R)
        self.base.resp.load(r.z)
        return allocations(self.base.model)


class _NoDerivative(Exception):
    """The sensitivities cannot be computed at this point (the reason is the message)."""


def sensitivities(scenario: Any, name: str, value: float, R: Any, f: Any,
                  options: SweepOptions = SweepOptions(), reuse: dict | None = None) -> dict[str, Any]:
    """The derivatives of the certified equilibrium ``(R, f)`` of ``scenario`` (whose ``name`` is
    ``value``) with respect to that parameter, by the implicit function theorem (module doc).

    Returns a plain record: ``status`` ``"ok"`` with ``dR`` (M), ``dV`` (M), ``dU`` (the MU
    utilities' mean, total, min and max), ``dIoM`` (M, total IoM per MSP), ``df`` (N x M), ``step``
    (the ``h`` of the differences) and ``stationarity`` (largest ``|G_m|`` of an interior reward);
    ``"kink"`` with ``kinks`` (the reasons, no derivative); ``"discrete"`` for ``n_mu`` /
    ``n_msp``; ``"boundary"`` when ``value -+ h`` leaves the parameter's range; ``"failed"`` with
    ``reason``.

    ``reuse``: a dict kept between calls (a sweep's path): the followers' response is compiled
    once, on a parametric game, and kept there for the next point of the same structure.
    """
    if name in DISCRETE:
        return {"status": "discrete", "reason": f"{name} is a whole number: no derivative"}
    sc = scenario
    R, f = np.asarray(R, dtype=float), np.asarray(f, dtype=float)
    kinks = _degenerate(sc, R, f, options.kink_tol)
    h = options.fd_step * (abs(value) if value != 0 else 1.0)
    try:
        sc_p, sc_m = apply_parameter(sc, name, value + h), apply_parameter(sc, name, value - h)
    except InputError as err:
        return {"status": "boundary", "reason": f"{name} -+ {h:.3g} leaves its range ({err.reason})"}
    reuse = {} if reuse is None else reuse
    try:
        fl = reuse.get("followers")
        if fl is None or not fl.fits(sc):
            fl = reuse["followers"] = _Followers(sc, R, f)
        plus, minus = fl.at(sc_p, R, f), fl.at(sc_m, R, f)
        Gp, Gm = plus.gradient(R), minus.gradient(R)
        G = 0.5 * (Gp + Gm)
        V = np.asarray(_outcome(sc, R, f)["msp_utility"])
        scale = np.maximum(1.0, np.abs(V))
        span = np.maximum(1.0, sc.Rmax)
        at_lo = R <= 1e-9 * span
        at_hi = (R >= sc.Rmax - 1e-9 * span) & ~at_lo
        for m in np.flatnonzero(at_lo | at_hi):
            if abs(G[m]) <= options.kink_tol * scale[m]:
                kinks.append(f"MSP {m}'s reward touches its bound {R[m]:.6g} with dV/dR = {G[m]:.2g}")
        if kinks:
            return {"status": "kink", "kinks": kinks}
        interior = np.flatnonzero(~(at_lo | at_hi))
        dR = np.zeros_like(R)
        dR[at_hi] = (sc_p.Rmax[at_hi] - sc_m.Rmax[at_hi]) / (2 * h)  # the bound moves (Rmax swept)
        moving = np.flatnonzero(~(at_lo | at_hi) | (dR != 0))
        if interior.size:
            # dG/dR at theta itself: central differences of the exact gradient, 2 responses per column
            center = fl.at(sc, R, f)
            A = np.zeros((R.size, R.size))
            for k in moving:
                d = options.fd_step * max(1.0, abs(R[k]))
                e = np.zeros_like(R)
                e[k] = d
                A[:, k] = (center.gradient(R + e) - center.gradient(R - e)) / (2 * d)
            b = (Gp - Gm) / (2 * h)
            bound = np.setdiff1d(moving, interior)
            rhs = -(b[interior] + A[np.ix_(interior, bound)] @ dR[bound])
            dR[interior] = np.linalg.solve(A[np.ix_(interior, interior)], rhs)
        # the tangent: the followers solved exactly at (theta -+ h, R -+ h dR)
        Rp, Rm = R + h * dR, R - h * dR
        fp, fm = plus.allocation(Rp), minus.allocation(Rm)
    except (_NoDerivative, np.linalg.LinAlgError) as err:
        return {"status": "failed", "reason": str(err)}
    base = _pattern(sc, f)
    for side, fs, scs in (("+", fp, sc_p), ("-", fm, sc_m)):
        pat = _pattern(scs, fs)
        if not (np.array_equal(pat[0], base[0]) and np.array_equal(pat[1], base[1])):
            changed = int((pat[0] != base[0]).sum() + (pat[1] != base[1]).sum())
            kinks.append(f"the followers' active set changes within {name} {side} {h:.3g} ({changed} switches)")
    if kinks:
        return {"status": "kink", "kinks": kinks}
    op, om = _outcome(sc_p, Rp, fp), _outcome(sc_m, Rm, fm)

    def diff(key: str) -> Any:
        a, c = op[key], om[key]
        if isinstance(a, dict):
            return {k: (a[k] - c[k]) / (2 * h) for k in a}
        return ((np.asarray(a) - np.asarray(c)) / (2 * h)).tolist()

    return {"status": "ok", "step": h, "dR": dR.tolist(), "dV": diff("msp_utility"), "dU": diff("mu_utility"),
            "dIoM": diff("iom"), "df": ((fp - fm) / (2 * h)).tolist(),
            "stationarity": float(np.max(np.abs(G[interior]), initial=0.0)),
            "dG_dR": A.tolist() if interior.size else None, "interior": interior.tolist()}


# ---------------------------------------------------------------------------- one path
def _start(prev: dict, sc: Any, value: float, opts: SweepOptions) -> tuple[np.ndarray, np.ndarray, str]:
    """The continuation's start at ``value`` from the previous certified point ``prev``: its
    equilibrium, moved along its tangent when it has one (projected on the boxes)."""
    R, f = np.asarray(prev["rewards"], dtype=float), np.asarray(prev["allocations"], dtype=float)
    kind = "previous"
    sens = prev.get("sensitivity") or {}
    if opts.predict and sens.get("status") == "ok":
        dt = value - prev["value"]
        R = R + dt * np.asarray(sens["dR"], dtype=float)
        f = f + dt * np.asarray(sens["df"], dtype=float)
        kind = "predicted"
    R = clip_rewards(R, sc.Rmax)
    f = np.maximum(f, 0.0)
    over = f.sum(1) / sc.F
    f = np.where(over[:, None] > 1, f / np.maximum(over, 1.0)[:, None], f)
    return R, f, kind


def _corrected(sc: Any, R: np.ndarray, f: np.ndarray, anchor: dict | None,
               reuse: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The continuation's start corrected by chord Newton on the equilibrium conditions
    ``G_I(R, theta) = 0`` at the new ``theta``, with ``dG_I/dR_I`` of the path's last point with
    sensitivities, ``anchor`` (its record's ``dG_dR``; the rewards at a bound stay there), up to
    3 steps: the diagonalisation
    then starts next to the equilibrium and confirms it in a sweep or two. None where there is no
    such matrix, a step leaves the box, or ``|G_I|`` does not fall 100-fold (the start as
    predicted is kept: this only saves sweeps, the solve decides)."""
    sens = (anchor or {}).get("sensitivity") or {}
    if sens.get("status") != "ok" or sens.get("dG_dR") is None:
        return None
    A, interior = np.asarray(sens["dG_dR"], dtype=float), np.asarray(sens["interior"], dtype=np.int64)
    if A.shape != (R.size, R.size):
        return None
    try:
        fl = reuse.get("followers")
        if fl is None or not fl.fits(sc):  # as the point's sensitivities would (a resumed path too)
            fl = reuse["followers"] = _Followers(sc, R, f)
        at = fl.at(sc, R, f)
        G0 = G = at.gradient(R)[interior]
        for _ in range(3):
            if not np.max(np.abs(G)) > 1e-10 * max(1.0, float(np.max(np.abs(R)))):
                break
            R_new = R.copy()
            R_new[interior] -= np.linalg.solve(A[np.ix_(interior, interior)], G)
            if np.any(R_new < 0.0) or np.any(R_new > sc.Rmax):
                return None
            R, G = R_new, at.gradient(R_new)[interior]
        if not np.max(np.abs(G)) <= 1e-2 * np.max(np.abs(G0)):
            return None
        return R, at.allocation(R)
    except (_NoDerivative, np.linalg.LinAlgError):
        return None


def _point(sc: Any, name: str, value: float, prev: dict | None, opts: SweepOptions,
           reuse: dict | None = None) -> dict[str, Any]:
    """One point of a path: the certified solve (warm from ``prev`` by continuation) and its
    sensitivities. ``reuse`` (continuation only): the path's prepared games, kept between points
    (the game's numbers are Params: built and compiled once per path)."""
    t0 = time.perf_counter()
    reuse = reuse if reuse is not None and opts.continuation else {}
    if opts.continuation and "workspace" not in reuse:
        from .game import Workspace

        reuse["workspace"] = Workspace()
    workspace = reuse.get("workspace")
    rec: dict[str, Any] = {"value": value}
    warm_note = ""
    try:
        sol = None
        if opts.continuation and prev is not None and prev.get("ok") \
                and np.shape(prev["allocations"]) == (sc.n_mu, sc.n_msp):
            R0, f0, kind = _start(prev, sc, value, opts)
            sol = _solve(sc, opts, R0, f0, workspace)
            if not sol.ok:
                warm_note = f"warm start ({kind}) ended {sol.result.status.value}: {sol.result.message}"
                sol, kind = None, "cold (warm start failed)"
        else:
            kind = "cold"
        if sol is None:
            sol = _solve(sc, opts, workspace=workspace)
    except Exception as err:  # recorded, never interpolated: the sweep goes on
        rec.update(ok=False, status="error", message=f"{type(err).__name__}: {err}", start="cold",
                   seconds=time.perf_counter() - t0, sensitivity={"status": "not_certified"})
        return rec
    res = sol.result
    rec.update(ok=res.ok, status=res.status.value, message=res.message, start=kind, sweeps=res.sweeps,
               solve_seconds=res.seconds, timings=dict(res.timings))
    if warm_note:
        rec["warm_start_failed"] = warm_note
    if res.certificate is not None:
        rec["max_deviation_gain"] = res.certificate.max_deviation_gain
        rec["certificate_holds"] = res.certificate.holds
    if res.ok:
        rec.update(_outcome(sc, sol.R, sol.f))
        rec["allocations"] = sol.f.tolist()
    ts = time.perf_counter()
    if not res.ok:
        rec["sensitivity"] = {"status": "not_certified"}
    elif not opts.sensitivities:
        rec["sensitivity"] = {"status": "off"}
    else:
        rec["sensitivity"] = sensitivities(sc, name, value, sol.R, sol.f, opts, reuse)
    rec["sensitivity_seconds"] = time.perf_counter() - ts
    rec["seconds"] = time.perf_counter() - t0
    return rec


def _tentative(sc: Any, name: str, value: float, prev: dict, anchor: dict | None, opts: SweepOptions,
               reuse: dict) -> tuple | None:
    """One point of a block (:func:`_block`): the continuation's solve without its certificate,
    the certificate prepared at the point (:func:`epec.certify_together.prepare_point`), and the
    sensitivities (the next point's predictor); ``(record, prepared)``, or None where the point
    must be solved alone (the solve did not stop at a point, or its certificate cannot wait)."""
    from models.game import allocations, rewards

    from .certify_together import prepare_point
    from .options import CertificateOptions
    from .results import GameStatus

    t0 = time.perf_counter()
    R0, f0, kind = _start(prev, sc, value, opts)
    got = _corrected(sc, R0, f0, anchor, reuse)
    if got is not None:
        (R0, f0), kind = got, "corrected"
    sol = _solve(sc, opts, R0, f0, reuse["workspace"], certify=False)
    res = sol.result
    if res.status is not GameStatus.UNCERTIFIED:
        return None
    prep = prepare_point(reuse["workspace"].game, CertificateOptions(grid=opts.grid, max_failed=0.5))
    if prep is None:
        return None
    R, f = rewards(sol.model), allocations(sol.model)
    rec: dict[str, Any] = {"value": value, "ok": True, "status": GameStatus.CONVERGED.value, "message": "",
                           "start": kind, "sweeps": res.sweeps, "solve_seconds": res.seconds,
                           "timings": dict(res.timings)}
    rec.update(_outcome(sc, R, f))
    rec["allocations"] = f.tolist()
    ts = time.perf_counter()
    rec["sensitivity"] = sensitivities(sc, name, value, R, f, opts, reuse) if opts.sensitivities else {"status": "off"}
    rec["sensitivity_seconds"] = time.perf_counter() - ts
    rec["seconds"] = time.perf_counter() - t0
    return rec, prep, sc, R, f


def _block(points: list[tuple[Any, float]], name: str, prev: dict, anchor: dict | None, opts: SweepOptions,
           reuse: dict) -> list[dict]:
    """Consecutive points of a path, each solved by continuation from the last without its
    certificate, then all certified together (:func:`epec.certify_together.certify_prepared`);
    the records of the leading points that end certified (the certificate, and the independent
    numpy check of the followers' KKT conditions, as :func:`epec.solve_scenario` enforces it).
    The first point that does not is left to the caller (solved alone), and those after it too."""
    from models.equilibrium import follower_kkt_residual

    from .certify_together import certify_prepared
    from .scenario import batch_responses

    pending = []
    for sc, value in points:
        got = _tentative(sc, name, value, prev, anchor, opts, reuse)
        if got is None:
            break
        pending.append(got)
        prev = got[0]
        anchor = prev if prev["sensitivity"].get("status") == "ok" else anchor
    if not pending:
        return []
    certs = certify_prepared([p[1] for p in pending], batch_responses)
    out = []
    for (rec, prep, sc, R, f), cert in zip(pending, certs):
        if cert is None or not cert.holds or not follower_kkt_residual(sc, R, f).max <= prep.options.kkt_tol:
            break
        rec["max_deviation_gain"] = cert.max_deviation_gain
        rec["certificate_holds"] = cert.holds
        rec["timings"]["certificate"] = cert.seconds
        rec["seconds"] += cert.seconds - prep.scan.seconds  # its preparation is in the solve's seconds already
        rec["certified_together"] = len(pending)
        out.append(rec)
    return out


def path_tasks(scenario: Any, param: str, values: Sequence[float], param2: str | None = None,
               values2: Sequence[float] | None = None, options: SweepOptions = SweepOptions(),
               done: Sequence[dict] = ()) -> list[dict[str, Any]]:
    """The plain-data tasks of a sweep, one per path (one in all without ``param2``), each with
    the points of it already in ``done`` (a resumed run). Paths already complete are left out."""
    outer = [None] if param2 is None else list(values2)
    by_path: dict[int, list[dict]] = {}
    for rec in done:
        by_path.setdefault(int(rec["path"]), []).append(rec)
    tasks = []
    for j, v2 in enumerate(outer):
        have = sorted(by_path.get(j, []), key=lambda r: r["i"])
        if len(have) >= len(values):
            continue
        tasks.append({"scenario": scenario.to_dict(), "param": param, "values": [float(v) for v in values],
                      "param2": param2, "value2": None if v2 is None else float(v2), "path": j,
                      "options": options.to_dict(), "done": have})
    return tasks


def sweep_path(task: dict[str, Any], on_point: Callable[[dict], Any] | None = None) -> list[dict[str, Any]]:
    """One path of a sweep: the points of ``task["values"]`` in order, each by continuation from
    the last (the unit of work: plain data in, plain records out; the same in-process and on Ray).

    ``task`` as :func:`path_tasks` makes it; the points in ``task["done"]`` are kept and the path
    goes on after the last of them, exactly as it would have (the continuation's start is read
    from the records). ``on_point(record)`` after every new point (in-process only).
    """
    from models.scenario import scenario_from_dict

    opts = SweepOptions(**task["options"])
    name, name2, v2 = task["param"], task.get("param2"), task.get("value2")
    base = scenario_from_dict(task["scenario"])
    values = task["values"]
    n = len(values)
    records = [dict(r) for r in task.get("done", ())]
    prev = records[-1] if records else None
    reuse: dict[str, Any] = {}  # the path's prepared games (continuation)
    if opts.continuation:
        from .game import Workspace

        reuse["workspace"] = Workspace()

    def scenario_at(value: float) -> Any:
        # a discrete parameter redraws the scenario: it goes first, so the other one stays set
        if name2 is None:
            return apply_parameter(base, name, value)
        if name2 in DISCRETE:
            return apply_parameter(apply_parameter(base, name2, v2), name, value)
        return apply_parameter(apply_parameter(base, name, value), name2, v2)

    def keep(i: int, rec: dict) -> None:
        rec = {"index": task["path"] * n + i, "path": task["path"], "i": i,
               "params": {name: values[i], **({name2: v2} if name2 is not None else {})}, **rec}
        records.append(rec)
        if on_point is not None:
            on_point(rec)

    i = len(records)
    while i < n:
        if opts.continuation and opts.together > 1 and prev is not None and prev.get("ok") \
                and name not in DISCRETE:
            block = [(scenario_at(values[j]), values[j]) for j in range(i, min(n, i + opts.together))]
            anchor = next((r for r in reversed(records) if (r.get("sensitivity") or {}).get("status") == "ok"), None)
            certified = _block(block, name, prev, anchor, opts, reuse)
            for rec in certified:
                keep(i, rec)
                prev, i = records[-1], i + 1
            if len(certified) == len(block):
                continue  # the next block; else the first point it did not certify is solved alone
        rec = _point(scenario_at(values[i]), name, values[i], prev, opts, reuse)
        keep(i, rec)
        prev, i = records[-1], i + 1
    return records


Mapper = Callable[[Callable[[dict], list], Iterable[dict]], Iterable[list]]


def sweep(scenario: Any, param: str, values: Sequence[float], *, param2: str | None = None,
          values2: Sequence[float] | None = None, options: SweepOptions = SweepOptions(),
          done: Sequence[dict] = (), on_point: Callable[[dict], Any] | None = None,
          on_path: Callable[[list], Any] | None = None, map_paths: Mapper | None = None) -> list[dict[str, Any]]:
    """The certified equilibria of ``scenario`` over ``param`` (and ``param2``), by continuation
    along each path (module doc).

    Parameters
    ----------
    scenario : models.Scenario
    param, values
        The parameter of each path and its values in order (:data:`PARAMETERS`); the
        sensitivities are with respect to it.
    param2, values2
        Optional second parameter: one independent path per value of it (each starts cold).
    options : SweepOptions
    done : records
        Points already computed (a resumed run): kept, and their paths go on after them.
    on_point : callable, optional
        ``on_point(record)`` after every point computed in this process (progress, checkpoint).
    on_path : callable, optional
        ``on_path(records)`` after every path (with ``map_paths``, the only news of a remote path).
    map_paths : callable, optional
        ``map_paths(sweep_path, tasks)`` -> the paths' records in the order of ``tasks`` (e.g.
        Ray tasks); default in-process, one path after the other.

    Returns
    -------
    list of dict
        Every point's record, in the order of the grid (``index = path * len(values) + i``).
    """
    if param2 is not None:
        if param2 == param:
            raise InputError("param2", f"must differ from param ({param})")
        values2 = check_values(scenario, param2, values2 or [])
    values = check_values(scenario, param, values)
    tasks = path_tasks(scenario, param, values, param2, values2, options, done)
    kept = {int(t["path"]) for t in tasks}
    out = {r["index"]: r for r in done if int(r["path"]) not in kept}
    if map_paths is None:
        results: Iterable[list] = (sweep_path(t, on_point) for t in tasks)
    else:
        results = map_paths(sweep_path, tasks)
    for recs in results:
        for r in recs:
            out[r["index"]] = r
        if on_path is not None:
            on_path(recs)
    return [out[k] for k in sorted(out)]
