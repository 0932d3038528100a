"""The followers' exact response to the leaders, by Newton's method on their KKT system.

With the leaders' decisions ``x`` fixed, the followers' KKT conditions (:func:`epec.kkt`, the
lifted aggregate definitions ``s = S(y)`` and the multipliers named by :func:`epec.multiplier`
included) are a square system in ``z = (y, multipliers, named multipliers, s)``::

    stationarity(z; x) = 0,   h(z; x) = 0,   phi_mu(a_j(z; x), b_j(z; x)) = 0  for every pair,

with ``phi_mu`` the smoothed Fischer-Burmeister function (Kanzow 1996; ``mu`` small, so
``a_j b_j = mu^2``). It is solved by Newton's method with a line search
(:func:`solvers.solve_newton`), warm-started from a neighbouring solution; a cold start
follows a ``mu`` continuation. The sensitivity of a leader's utility ``V(x, z(x))`` to ``x``
follows from the implicit function theorem (Outrata, Kocvara & Zowe, *Nonsmooth Approach to
Optimization Problems with Equilibrium Constraints*, 1998, ch. 4)::

    dV/dx = V_x - w^T F_x,   with   (dF/dz)^T w = V_z^T,

one transposed solve with the factorisation Newton already holds. All state is numpy; the
Pyomo Vars are written only on :meth:`FollowerResponse.load`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyomo.environ as pyo

from .checks import check_int, check_positive

__all__ = ["ResponseOptions", "Response", "FollowerResponse"]


@dataclass(frozen=True)
class ResponseOptions:
    """Options of the Newton follower response.

    Parameters
    ----------
    mu : float
        Smoothing of the pairs, ``a b = mu^2``, > 0. Default 1e-8.
    tol : float
        ``max |F|`` at a solution, > 0. Default 1e-10.
    max_iter : int
        Newton iterations per solve. Default 60.
    mu_start : float
        First smoothing of a cold start's continuation ``mu_start, mu_start/10, ..., mu``. Default 1
        (from random starts 1 converged more often than 0.1 on the default scenario: 3/6 against 1/6).
    kkt_tol : float
        Natural KKT residual (``max |stationarity|``, feasibility, ``max |min(a, b)|``) a response must
        meet to count as the followers' equilibrium. Default 1e-6.
    mu_min : float
        Smallest smoothing a converged response that misses ``kkt_tol`` is refined to, ``<= mu``.
        Default 1e-16.
    warm_max_iter : int
        Newton iterations of a warm solve (from a neighbouring solution, at the final ``mu``), capped
        at ``max_iter``; one that needs more falls back to continuation. Default 20: at 500x10 the
        warm solves that converged took at most 9, and a trial point without a response spent the
        full 60 (2.5-2.8 s each) before its fallbacks.
    """

    mu: float = 1e-8
    tol: float = 1e-10
    max_iter: int = 60
    mu_start: float = 1.0
    kkt_tol: float = 1e-6
    warm_max_iter: int = 20
    mu_min: float = 1e-16

    def __post_init__(self) -> None:
        for name in ("mu", "tol", "mu_start", "kkt_tol", "mu_min"):
            check_positive(name, getattr(self, name))
        if self.mu_min > self.mu:
            raise ValueError(f"mu_min: must be <= mu ({self.mu:g}), got {self.mu_min!r}")
        for name in ("max_iter", "warm_max_iter"):
            check_int(name, getattr(self, name), 1)


@dataclass(frozen=True)
class Response:
    """One follower response: ``ok`` iff Newton converged and the natural KKT residual is within
    ``kkt_tol``; ``z`` the unknowns, ``residual`` that natural residual, ``iterations`` Newton's."""

    ok: bool
    z: np.ndarray
    residual: float
    iterations: int
    seconds: float
    status: Any
    lu: Any = None


#: first smoothing of the warm continuation that :meth:`FollowerResponse.path` tries before a cold one
_WARM_MU = 1e-4


class FollowerResponse:
    """Newton solver of the followers' KKT system of a :class:`epec.game.Game`.

    Parameters
    ----------
    kkts : list of KKTSystem
        The followers' KKT systems (in the game's transformed model).
    leaders : list of list of VarData
        Each leader's decision Vars (inputs of the system).
    objectives : list of ObjectiveData
        Each leader's objective, evaluated with its gradient as a utility (maximised).
    options : ResponseOptions
    """

    def __init__(self, kkts: Sequence[Any], leaders: Sequence[Sequence[Any]], objectives: Sequence[Any],
                 options: ResponseOptions = ResponseOptions()) -> None:
        from solvers import NewtonOptions, compile_equations

        self.options = options
        self.newton = NewtonOptions(tol=options.tol, max_iter=options.max_iter, min_iter=1)
        self.newton_warm = NewtonOptions(tol=options.tol, max_iter=min(options.warm_max_iter, options.max_iter),
                                         min_iter=1)
        equations, pairs, unknowns = [], [], []
        stationarity_rows: list[int] = []
        seen: set[int] = set()

        def add(v: Any) -> None:
            if id(v) not in seen:
                seen.add(id(v))
                unknowns.append(v)

        for k in kkts:
            for v in k.variables:
                add(v)
            for v in k.block.component_data_objects(pyo.Var, descend_into=True):
                add(v)
            for con in k.block.stationarity.values():
                stationarity_rows.append(len(equations))
                equations.append(con.body - con.upper)
            for con, _ in k.equalities:
                equations.append(con.body - con.upper)
            for placeholder, _, definition in k.multipliers:  # epec.multiplier: part of the response
                add(placeholder)
                equations.append(definition.body - definition.upper)
            pairs.extend(k.pairs)
        lifted = kkts[0].lifted if kkts else None
        if lifted is not None:
            for _, s, con in lifted.pairs:
                add(s)
                equations.append(con.body - con.upper)
        self.signs = np.array([1.0 if o.sense == pyo.maximize else -1.0 for o in objectives])
        self.system = compile_equations(equations, pairs, unknowns, [o.expr for o in objectives],
                                        name="followers' KKT system")
        if not self.system.square:
            raise ValueError(f"followers' KKT system is not square: {len(unknowns)} unknowns, "
                             f"{self.system.n_equations + self.system.n_pairs} equations")
        # which rows of ``e`` are stationarity (the rest: equalities and lifted definitions)
        self.stationarity_rows = np.zeros(self.system.n_equations, dtype=bool)
        self.stationarity_rows[stationarity_rows] = True
        pos = {id(v): k for k, v in enumerate(self.system.inputs)}
        self.leader_pos = [np.array([pos[id(v)] for v in vs if id(v) in pos], dtype=np.int64) for vs in leaders]
        self.leader_vars = [list(vs) for vs in leaders]
        self.compile_seconds = self.system.compile_seconds
        # the followers' own variables (interleaved with their multipliers in ``z``): their
        # positions, for random starts and spread checks
        own = {id(v) for k in kkts for v in k.variables}
        self.primal_index = np.array([k for k, v in enumerate(self.system.unknowns) if id(v) in own], dtype=np.int64)
        self.n_primal = len(self.primal_index)

    # --- state ----------------------------------------------------------------------------------
    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """``(z, y)`` from the model's current values."""
        return self.system.read_unknowns(), self.system.read_inputs()

    def inputs_at(self, y: np.ndarray, values: Sequence[np.ndarray] | None) -> np.ndarray:
        """``y`` with every leader's decisions set to ``values`` (None: unchanged)."""
        y = np.array(y, dtype=float)
        if values is not None:
            for pos, vs, val in zip(self.leader_pos, self.leader_vars, values):
                if len(pos) == len(vs):
                    y[pos] = np.asarray(val, dtype=float)
        return y

    def load(self, z: np.ndarray) -> None:
        """Write the unknowns ``z`` into the model's Vars."""
        self.system.write_unknowns(z)

    # --- solves ---------------------------------------------------------------------------------
    def _check(self, res: Any, y: np.ndarray, p: np.ndarray, seconds_before: float = 0.0,
               iterations_before: int = 0, sensitivity: bool = False) -> Response:
        """The :class:`Response` of a Newton run at ``options.mu``: ok when it converged and the
        natural KKT residual is within ``kkt_tol``. A converged run that misses ``kkt_tol`` is
        refined at smaller smoothings, ``mu / 100, mu / 10^4, ...`` down to ``mu_min``, each warm
        from the last: the smoothing puts ``a b = mu^2`` on every pair, so a pair whose sides are
        both small (a follower with almost no cost curvature, ``f = mu / sqrt(2 e)`` where the
        exact answer is 0) needs a smaller ``mu`` to meet ``kkt_tol``."""
        from solvers import solve_newton

        iters, secs = iterations_before + res.iterations, seconds_before + res.seconds
        if not res.ok:
            return Response(False, res.z, math.inf, iters, secs, res.status)
        r = max(self.system.natural_residual(res.z, y, p))
        mu = self.options.mu
        while r > self.options.kkt_tol and mu > self.options.mu_min:
            mu = max(mu * 1e-2, self.options.mu_min)
            nxt = solve_newton(self.system, res.z, y, p, mu, self.newton, sensitivity)
            iters, secs = iters + nxt.iterations, secs + nxt.seconds
            if not nxt.ok:
                break
            res, r = nxt, max(self.system.natural_residual(nxt.z, y, p))
        return Response(r <= self.options.kkt_tol, res.z, r, iters, secs, res.status, res.lu)

    def solve(self, z0: np.ndarray, y: np.ndarray, p: np.ndarray | None = None, *,
              cold: bool = False, sensitivity: bool = False, retry_cold: bool = True) -> Response:
        """Followers' response at inputs ``y`` from ``z0``; ``cold`` follows the ``mu`` continuation
        from ``mu_start`` (for a start far from the solution); a warm solve that fails retries cold
        unless ``retry_cold`` is False (a caller with its own fallback: a point without any
        response then costs one warm run, not a full continuation more)."""
        from solvers import solve_newton

        p = self.system.read_params() if p is None else p
        if not cold:
            res = solve_newton(self.system, z0, y, p, self.options.mu, self.newton_warm, sensitivity)
            out = self._check(res, y, p, sensitivity=sensitivity)
            if out.ok or not retry_cold:
                return out
            iters, secs = out.iterations, out.seconds
        else:
            iters, secs = 0, 0.0
        return self._continuation(z0, y, p, self.options.mu_start, sensitivity, iters, secs)

    def solve_near(self, z: np.ndarray, y: np.ndarray, p: np.ndarray | None = None, *, lu: Any = None,
                   dF: np.ndarray | None = None, sensitivity: bool = False) -> Response:
        """Response at ``y`` from the solution ``z`` of a neighbouring point ``y_z``: a warm solve
        from the first-order predictor ``z - (dF/dz)^-1 dF``, ``dF = (dF/dy)(y - y_z)`` (``lu``
        the factorisation of ``dF/dz`` at ``z``; the implicit function theorem's tangent), then,
        if that misses (a pair switched on the way), from ``z`` itself. No cold retry: the
        caller's fallback (:meth:`path`) follows. With ``sensitivity`` a response counts only
        with its factorisation."""
        p = self.system.read_params() if p is None else p
        iters, secs = 0, 0.0
        if lu is not None and dF is not None and np.any(dF):
            z_pred = z - lu.solve(dF)
            if np.all(np.isfinite(z_pred)):
                r = self.solve(z_pred, y, p, sensitivity=sensitivity, retry_cold=False)
                if r.ok and (r.lu is not None or not sensitivity):
                    return r
                iters, secs = r.iterations, r.seconds
        r = self.solve(z, y, p, sensitivity=sensitivity, retry_cold=False)
        return Response(r.ok, r.z, r.residual, iters + r.iterations, secs + r.seconds, r.status, r.lu)

    def follow(self, z: np.ndarray, y: np.ndarray, p: np.ndarray, *, lu: Any, dF: np.ndarray | None,
               anchor: tuple[np.ndarray, np.ndarray], sensitivity: bool = False) -> Response:
        """Response at ``y`` while walking from a neighbouring solution ``z``: :meth:`solve_near`
        (predictor, then warm start), and if that fails :meth:`path` from ``anchor = (z_a, y_a)``
        (a solved point: continuation, ending in a cold solve); iterations and seconds add up."""
        r = self.solve_near(z, y, p, lu=lu, dF=dF, sensitivity=sensitivity)
        if r.ok and (r.lu is not None or not sensitivity):
            return r
        r2 = self.path(anchor[0], anchor[1], y, p, sensitivity=sensitivity)
        return Response(r2.ok, r2.z, r2.residual, r.iterations + r2.iterations, r.seconds + r2.seconds,
                        r2.status, r2.lu)

    def _continuation(self, z0: np.ndarray, y: np.ndarray, p: np.ndarray, mu: float, sensitivity: bool,
                      iters: int = 0, secs: float = 0.0) -> Response:
        """Newton solves at ``mu, mu/10, ..., options.mu``, each from the last."""
        from solvers import solve_newton

        z = np.array(z0, dtype=float)
        while True:
            last = mu <= self.options.mu * (1 + 1e-12)
            res = solve_newton(self.system, z, y, p, max(mu, self.options.mu), self.newton,
                               sensitivity and last)
            iters, secs = iters + res.iterations, secs + res.seconds
            if not res.ok:
                return Response(False, res.z, math.inf, iters, secs, res.status)
            z = res.z
            if last:
                return self._check(res, y, p, secs - res.seconds, iters - res.iterations, sensitivity)
            mu *= 0.1

    def path(self, z0: np.ndarray, y0: np.ndarray, y1: np.ndarray, p: np.ndarray | None = None,
             pieces: int = 8, sensitivity: bool = False) -> Response:
        """Response at ``y1`` by continuation from the solution ``z0`` at ``y0``: warm solves at
        ``y0 + k/pieces (y1 - y0)``, then (the first piece that fails stops the walk) a cold one
        at ``y1`` as the last resort."""
        p = self.system.read_params() if p is None else p
        z, iters, secs = np.array(z0, dtype=float), 0, 0.0
        for k in range(1, pieces + 1):
            y = y0 + (k / pieces) * (y1 - y0)
            # no cold retry per piece: the cold solve at y1 below is the one fallback (a y1 with no
            # response cost three continuations in mu before, ~19 s in one leader step at 500x10)
            r = self.solve(z, y, p, sensitivity=sensitivity and k == pieces, retry_cold=False)
            iters, secs = iters + r.iterations, secs + r.seconds
            if not r.ok:
                break
            z = r.z
        else:
            return Response(True, r.z, r.residual, iters, secs, r.status, r.lu)
        # a short continuation in mu from the last solved piece (the smoothing lets many pairs
        # switch at once, which the warm solve at mu = 1e-8 could not), then a cold one
        r = self._continuation(z, y1, p, max(_WARM_MU, self.options.mu), sensitivity)
        iters, secs = iters + r.iterations, secs + r.seconds
        if r.ok:
            return Response(True, r.z, r.residual, iters, secs, r.status, r.lu)
        r = self.solve(z0, y1, p, cold=True, sensitivity=sensitivity)
        return Response(r.ok, r.z, r.residual, iters + r.iterations, secs + r.seconds, r.status, r.lu)

    def kkt_residual(self, z: np.ndarray, y: np.ndarray, p: np.ndarray | None = None) -> Any:
        """The followers' :class:`epec.kkt.KKTResidual` at ``(z, y)`` from the compiled functions:
        ``max |stationarity|``, ``max(|h|, |s - S(y)|, -a, -b)``, ``max |min(a, b)|`` (exact, not
        smoothed; the same numbers as :meth:`epec.kkt.KKTSystem.residual` without walking the
        Pyomo expressions, which costs seconds at 500x10)."""
        from .kkt import KKTResidual

        p = self.system.read_params() if p is None else p
        e, a, b = self.system.parts(z, y, p)
        e = np.abs(e)
        stat = float(np.max(e[self.stationarity_rows], initial=0.0))
        feas = float(max(np.max(e[~self.stationarity_rows], initial=0.0), np.max(-a, initial=0.0),
                         np.max(-b, initial=0.0), 0.0))
        comp = float(np.max(np.abs(np.minimum(a, b)), initial=0.0))
        return KKTResidual(stat, feas, comp)

    # --- leader utilities -----------------------------------------------------------------------
    def utilities(self, z: np.ndarray, y: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
        """Every leader's utility (its objective in the maximisation sense) at ``(z, y)``."""
        p = self.system.read_params() if p is None else p
        return self.signs * self.system.outputs(z, y, p)[0]

    def utility_gradient(self, i: int, resp: Response, y: np.ndarray,
                         p: np.ndarray | None = None, Fx: Any = None) -> tuple[float, np.ndarray]:
        """Leader ``i``'s utility and its total derivative in its own decisions at the response
        ``resp`` (which must carry its factorisation: ``sensitivity=True``); ``Fx``, when given, is
        ``dF/dx_i`` there (the caller's, to save its evaluation)."""
        p = self.system.read_params() if p is None else p
        o, oz, oy = self.system.output_gradient(resp.z, y, p, i)
        pos = self.leader_pos[i]
        vz = self.signs[i] * oz
        vx = self.signs[i] * oy[pos]
        w = resp.lu.solve(vz, trans="T")
        if Fx is None:
            Fx = self.system.input_columns(resp.z, y, p, self.options.mu, pos)
        return float(self.signs[i] * o), vx - Fx.T @ w
