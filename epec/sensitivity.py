"""Sensitivities of a certified equilibrium of a scenario with respect to one of its numbers,
and the corrector of a continuation's start, both by the implicit function theorem on the
equilibrium conditions (:mod:`epec.sweep` runs them along a path).

For fixed ``theta`` the followers' response ``z(R, theta)`` solves their smoothed KKT system
(:class:`epec.FollowerResponse`) and each MSP's reduced utility ``V_m(R, z(R, theta))`` has the
exact gradient ``G_m = dV_m/dR_m`` of the implicit leader step. At an equilibrium ``G_m = 0``
for every interior reward, so::

    dR_I/dtheta = -(dG_I/dR_I)^-1 (dG_I/dtheta + dG_I/dR_B dR_B/dtheta),

``I`` the interior rewards and ``B`` the rewards at a bound (``dR_B/dtheta = 0`` at 0, the
bound's own derivative at ``Rmax``: 1 when ``Rmax`` itself is swept), on the followers' system
compiled once per path with the scenario's numbers as Params (:class:`CompiledFollowers`).

The second-order terms are exact, by the second-order adjoint (forward over adjoint) at one
follower response at ``(R, theta)``. With ``F(z; y, p) = 0`` the followers' smoothed system
(``z`` their unknowns, ``y`` its inputs, the rewards among them, ``p`` its Params; smoothed at
the response's ``mu``, as ``G`` is), ``J = F_z``,
``O_m`` MSP ``m``'s utility output, ``s_m`` its sign and ``w_m`` its adjoint ``J^T w_m = s_m O_mz``,
the gradient is ``G_m = [L_m,y]_{R_m}`` of ``L_m = s_m O_m - w_m^T F``. Along a direction
``v = (dz, dy, dp)`` that keeps ``F = 0`` (``J dz = -(F_y dy + F_p dp)``), ``w_m`` moves by
``dw_m = J^-T (H_m v)_z`` (``H_m`` the Hessian of ``L_m`` in ``(z, y, p)``), so::

    dG_m = (H_m v)_{R_m} - F_{R_m}^T J^-T (H_m v)_z = u_m^T H_m v,   u_m = (dz_m, e_m, 0),

``dz_m = -J^-1 F_{R_m}`` the response to ``R_m``. ``dG/dR`` takes ``v = u_k`` (column ``k``),
``dG/dtheta`` ``v = (dz, dy, dp)`` with ``dy``, ``dp`` the central differences of the system's
inputs and Params between the scenarios at ``theta -+ h`` (step ``fd_step`` relative; exact for
a Param linear in ``theta``) at fixed ``R``: ``M + 1`` solves with ``J``, and per MSP one
transposed solve and one Hessian-vector product ``H_m u_m`` (compiled by CasADi,
:meth:`solvers.CompiledEquations.lagrangian_hvp`), since ``u_m^T H_m v = (H_m u_m)^T v``.
The derivatives of the utilities, the IoM and the allocation are central differences along the
tangent ``(theta -+ h, R -+ h dR/dtheta)``, where the followers are solved exactly.

A derivative exists only where the followers' active set does not change: a point where an MU
enters or leaves (``f_nm = 0`` with a zero multiplier: degenerate complementarity), a budget
starts or stops binding with a zero multiplier, a reward touches its bound with ``G_m = 0``, or
the active set differs at ``theta -+ h``, is reported as a ``kink`` with the reason, and no
derivative.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.errors import InputError
from models.game import AllocationIndex, ParamPlan
from models.scenario import clip_rewards

from .sweep_params import DISCRETE, SweepOptions, apply_parameter

__all__ = ["CompiledFollowers", "corrected_start", "outcome", "sensitivities"]


def outcome(sc: Any, R: np.ndarray, f: np.ndarray) -> dict[str, Any]:
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


class CompiledFollowers:
    """The followers' response compiled once (the machinery of the implicit leader step), on a
    parametric game (:func:`models.game.build_game`, ``parametric=True``): Newton on their
    smoothed KKT system at any scenario of the same structure (:meth:`at`)."""

    def __init__(self, model: Any, resp: Any) -> None:
        """``resp`` the followers' response compiled on ``model`` (a parametric game or a
        prepared game's working copy of one); ``_NoDerivative`` where it has no Newton response
        with one reward per MSP, or Params that are not a MetaTrading game's."""
        self.model, self.resp = model, resp
        if resp is None or any(len(pos) != 1 for pos in resp.leader_pos):
            raise _NoDerivative("no Newton response of the followers with one reward per MSP")
        try:
            self.plan = ParamPlan(resp.system.params)
        except InputError as err:
            raise _NoDerivative(str(err)) from None
        self.index = AllocationIndex(model, resp.system.unknowns)

    @classmethod
    def compiled(cls, sc: Any, R: np.ndarray, f: np.ndarray) -> "CompiledFollowers":
        """The response compiled on a parametric game of ``sc`` built for it, started at ``(R, f)``."""
        from models.game import build_game

        from .kkt import kkt
        from .response import FollowerResponse

        model = build_game(sc, R0=R, f0=f, parametric=True)
        return cls(model, FollowerResponse([kkt(b) for b in model.mu.values()], [[model.msp[m].R] for m in model.MSP],
                                           [model.msp[m].utility for m in model.MSP]))

    @classmethod
    def on_game(cls, game: Any) -> "CompiledFollowers":
        """The followers' response a prepared game has compiled already (:class:`epec.Workspace`'s,
        a sweep's path: one compilation less per path), on the game's working copy of the model.
        Its responses start from the multipliers that copy holds; an allocation leaves its
        response there (the next solve takes the user's values in again,
        :meth:`epec.game.Game.refresh`)."""
        return cls(game.work, game.response)

    def fits(self, sc: Any) -> bool:
        from models.game import same_structure

        return same_structure(self.model, sc)

    def at(self, sc: Any, R: np.ndarray, f: np.ndarray) -> _FollowersAt:
        """The response at scenario ``sc`` (the same structure), started from ``(R, f)`` (the
        other unknowns, the multipliers, as the model holds them); the model's Vars and Params
        are left alone (the compiled system takes the scenario's numbers as the vector ``p``,
        :class:`models.game.ParamPlan`)."""
        z, y = self.resp.read()
        z = self.index.write(z, np.where(sc.D > 0, f, 0.0))
        y = self.resp.inputs_at(y, [np.array([r]) for r in clip_rewards(R, sc.Rmax)])
        return _FollowersAt(self, z, y, self.plan.values(sc))


@dataclass
class _FollowersAt:
    """:class:`CompiledFollowers` at one scenario: its parameters ``p`` and the start ``z``, ``y``."""

    base: CompiledFollowers
    z: np.ndarray
    y: np.ndarray
    p: np.ndarray
    last: dict = field(default_factory=dict)
    #: a solved response nearby, ``(z, lu, y, p)``: the next one starts from its tangent
    near: tuple | None = None

    def respond(self, R: np.ndarray) -> tuple[Any, np.ndarray]:
        """The followers' response to ``R`` (with its factorisation) and the inputs ``y``; the
        last one is kept, so the gradient and the allocation at one ``R`` share a solve."""
        key = np.asarray(R, dtype=float).tobytes()
        if key in self.last:
            return self.last[key]
        resp = self.base.resp
        y = resp.inputs_at(self.y, [np.array([r]) for r in R])
        r = None
        if self.near is not None:  # the first-order predictor from the response nearby
            z0, lu, y0, p0 = self.near
            dF = resp.system.directional(z0, y0, p0, resp.options.mu, np.concatenate([np.zeros_like(z0), y - y0]),
                                         self.p - p0)
            r = resp.solve_near(z0, y, self.p, lu=lu, dF=dF, sensitivity=True)
        if r is None or not (r.ok and r.lu is not None):
            r = resp.solve(self.z, y, self.p, sensitivity=True)
        if not (r.ok and r.lu is not None):
            r = resp.solve(self.z, y, self.p, cold=True, sensitivity=True)
        if not (r.ok and r.lu is not None):
            raise _NoDerivative(f"no follower response at R = {np.round(R, 6).tolist()} ({r.status})")
        self.last.clear()
        self.last[key] = (r, y)
        self.near = (r.z, r.lu, y, self.p)
        return r, y

    def gradient(self, R: np.ndarray) -> np.ndarray:
        """``G_m = dV_m/dR_m`` for every MSP, at the followers' response to ``R``."""
        r, y = self.respond(R)
        return np.array([self.base.resp.utility_gradient(m, r, y, self.p)[1][0] for m in range(len(R))])

    def second_order(self, R: np.ndarray, dy: np.ndarray, dp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At the followers' response to ``R``: ``G`` (M), ``dG/dR`` (M x M, row ``m`` leader
        ``m``'s gradient, column ``k`` the reward ``R_k``) and ``dG/dtheta`` (M) along the
        direction ``(dy, dp)`` of the inputs and the Params (``dy`` zero at the rewards), by the
        second-order adjoint (module doc): one response, ``M + 1`` solves with ``dF/dz`` for the
        directions, one transposed solve and one Hessian-vector product per leader."""
        resp = self.base.resp
        system, mu, p = resp.system, resp.options.mu, self.p
        r, y = self.respond(R)
        M, nz = len(R), r.z.size
        pos = np.array([q[0] for q in resp.leader_pos], dtype=np.int64)
        Fx = system.input_columns(r.z, y, p, mu, pos)
        # the directions u = (dz, dy) of (z, y): the rewards' unit vectors, then theta's
        U = np.zeros((nz + y.size, M + 1))
        U[nz + pos, np.arange(M)] = 1.0
        U[nz:, M] = dy
        U[:nz, M] = -system.directional(r.z, y, p, mu, U[:, M], dp)
        U[:nz] = r.lu.solve(np.vstack([-Fx.T, U[:nz, M]]).T)  # J dz = -(F_y dy + F_p dp)
        G, A, b = np.zeros(M), np.zeros((M, M)), np.zeros(M)
        no_p = np.zeros_like(p)
        for m in range(M):
            _, oz, oy = system.output_gradient(r.z, y, p, m)
            s = resp.signs[m]
            w = r.lu.solve(s * oz, trans="T")  # the adjoint: J^T w = s dO_m/dz
            G[m] = s * oy[pos[m]] - Fx[:, m] @ w
            c = np.zeros(system.n_outputs)
            c[m] = s
            # H u_m, u_m = (dz_m, e_m): dG_m along v is u_m^T H v (H symmetric), the dw term
            # -F_{R_m}^T J^-T (H v)_z being dz_m^T (H v)_z
            Hzy, Hp = system.lagrangian_hvp(r.z, y, p, mu, c, w, U[:, m], no_p)
            A[m] = Hzy @ U[:, :M]
            b[m] = Hzy @ U[:, M] + Hp @ dp
        return G, A, b

    def allocation(self, R: np.ndarray) -> np.ndarray:
        """The followers' allocation at their response to ``R``; the response is left in the
        model's Vars (the next :meth:`CompiledFollowers.at` starts its multipliers there)."""
        r, _ = self.respond(R)
        self.base.resp.load(r.z)
        return self.base.index.read(r.z)


class _NoDerivative(Exception):
    """The sensitivities cannot be computed at this point (the reason is the message)."""


def path_followers(reuse: dict, sc: Any, R: np.ndarray, f: np.ndarray) -> CompiledFollowers:
    """The path's followers kept in ``reuse``: the workspace game's own response when the path
    has one of this structure (:meth:`CompiledFollowers.on_game`), else compiled here."""
    fl = reuse.get("followers")
    if fl is not None and fl.fits(sc):
        return fl
    game = getattr(reuse.get("workspace"), "game", None)
    fl = None
    if game is not None:
        try:
            fl = CompiledFollowers.on_game(game)
        except _NoDerivative:
            fl = None
    if fl is None or not fl.fits(sc):
        fl = CompiledFollowers.compiled(sc, R, f)
    reuse["followers"] = fl
    return fl


def sensitivities(scenario: Any, name: str, value: float, R: Any, f: Any,
                  options: SweepOptions = SweepOptions(), reuse: dict | None = None) -> dict[str, Any]:
    """The derivatives of the certified equilibrium ``(R, f)`` of ``scenario`` (whose ``name`` is
    ``value``) with respect to that parameter, by the implicit function theorem (module doc).

    Returns a plain record: ``status`` ``"ok"`` with ``dR`` (M), ``dV`` (M), ``dU`` (the MU
    utilities' mean, total, min and max), ``dIoM`` (M, total IoM per MSP), ``df`` (N x M), ``step``
    (the ``h`` of the differences), ``stationarity`` (largest ``|G_m|`` of an interior reward),
    ``dG_dR`` (M x M, exact; None without an interior reward) and ``interior`` (their indices);
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
        fl = path_followers(reuse, sc, R, f)
        plus, minus, center = fl.at(sc_p, R, f), fl.at(sc_m, R, f), fl.at(sc, R, f)
        # theta's direction at fixed R: the compiled system's inputs and Params at theta -+ h
        rewards = [np.array([r]) for r in R]
        dy = (fl.resp.inputs_at(plus.y, rewards) - fl.resp.inputs_at(minus.y, rewards)) / (2 * h)
        G, A, b = center.second_order(R, dy, (plus.p - minus.p) / (2 * h))
        reuse["tangent"] = (fl, center.near)  # the next point's corrector starts from this response
        V = np.asarray(outcome(sc, R, f)["msp_utility"])
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
        if interior.size:
            bound = np.flatnonzero((at_lo | at_hi) & (dR != 0))
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
    op, om = outcome(sc_p, Rp, fp), outcome(sc_m, Rm, fm)

    def diff(key: str) -> Any:
        a, c = op[key], om[key]
        if isinstance(a, dict):
            return {k: (a[k] - c[k]) / (2 * h) for k in a}
        return ((np.asarray(a) - np.asarray(c)) / (2 * h)).tolist()

    return {"status": "ok", "step": h, "dR": dR.tolist(), "dV": diff("msp_utility"), "dU": diff("mu_utility"),
            "dIoM": diff("iom"), "df": ((fp - fm) / (2 * h)).tolist(),
            "stationarity": float(np.max(np.abs(G[interior]), initial=0.0)),
            "dG_dR": A.tolist() if interior.size else None, "interior": interior.tolist()}


#: chord steps of :func:`corrected_start` at most (each one follower response; a sweep of the
#: diagonalisation costs about four)
_CHORD_STEPS = 6


def corrected_start(sc: Any, R: np.ndarray, f: np.ndarray, anchor: dict | None,
                    reuse: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The continuation's start corrected by chord Newton on the equilibrium conditions
    ``G_I(R, theta) = 0`` at the new ``theta``, with ``dG_I/dR_I`` of the path's last point with
    sensitivities, ``anchor`` (its record's ``dG_dR``; the rewards at a bound stay there), while
    each step halves ``|G_I|`` (at most :data:`_CHORD_STEPS`): the diagonalisation
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
        fl = path_followers(reuse, sc, R, f)  # as the point's sensitivities would (a resumed path too)
        at = fl.at(sc, R, f)
        last = reuse.get("tangent")
        if last is not None and last[0] is fl:
            at.near = last[1]
        G0 = G = at.gradient(R)[interior]
        for _ in range(_CHORD_STEPS):
            if not np.max(np.abs(G)) > 1e-10 * max(1.0, float(np.max(np.abs(R)))):
                break
            R_new = R.copy()
            R_new[interior] -= np.linalg.solve(A[np.ix_(interior, interior)], G)
            if np.any(R_new < 0.0) or np.any(R_new > sc.Rmax):
                return None
            G_new = at.gradient(R_new)[interior]
            if not np.max(np.abs(G_new)) <= 0.5 * np.max(np.abs(G)):  # not contracting: keep the last
                break
            R, G = R_new, G_new
        if not np.max(np.abs(G)) <= 1e-2 * np.max(np.abs(G0)):
            return None
        return R, at.allocation(R)
    except (_NoDerivative, np.linalg.LinAlgError):
        return None
