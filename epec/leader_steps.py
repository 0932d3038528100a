"""One leader's MPEC inside the diagonalisation, others' decisions fixed.

``implicit``: in the leader's own decisions, the followers' response by Newton on their smoothed
KKT system and the exact gradient of the leader's utility from the implicit function theorem
(:func:`implicit_step`: :func:`scalar_ascent` for one decision, :func:`box_ascent` for several);
``full-space``: Ipopt on the whole reformulated MPEC (:func:`full_space_step`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .game import Game
from .reformulation import HomotopyResult
from .response import Response

__all__ = ["StepFailed", "FollowerState", "implicit_step", "scalar_ascent", "box_ascent", "constrained_ascent",
           "full_space_step", "implicit_response"]


class StepFailed(Exception):
    """The implicit leader step could not find the followers' response at a trial point
    (``point``, None when the failure is not about one point)."""

    def __init__(self, message: str, point: np.ndarray | None = None) -> None:
        super().__init__(message)
        self.point = point


@dataclass
class FollowerState:
    """Numpy state of the implicit path: followers' unknowns ``z`` at inputs ``y``."""

    z: np.ndarray
    y: np.ndarray
    p: np.ndarray


def implicit_step(game: Game, i: int, state: FollowerState) -> tuple[np.ndarray, FollowerState, HomotopyResult, float]:
    """Leader ``i``'s MPEC in its own decisions: ``max_{x_i in box} V_i(x_i, x_-i, z(x))``.

    ``dV_i/dx_i`` comes from :meth:`FollowerResponse.utility_gradient`; one decision is
    maximised by :func:`scalar_ascent` (bracket and regula falsi on ``dV_i/dx_i``), several by
    L-BFGS-B (:func:`box_ascent`). Each trial point's response is warm-started from the last one
    (first-order predictor), then by continuation from the step's start. A trial point without a
    response (e.g. a reward of 0 under the proportional payment, where ``pay = R IoM / total`` is
    0/0) pulls the search back towards the good points, so the leader never needs Ipopt for it;
    the answer must still be stationary for the *original* box. Returns the decisions, the state,
    the run and the projected-gradient norm; raises :class:`StepFailed`.
    """
    from solvers import SolverStatus

    resp = game.response
    ld = game.leaders[i]
    t0 = time.perf_counter()
    x0 = state.y[resp.leader_pos[i]].copy()
    start = state
    last = {"z": state.z}
    count = {"newton": 0, "evals": 0}
    cache: dict[bytes, tuple[float, np.ndarray, Response, np.ndarray]] = {}

    def evaluate(xi: np.ndarray) -> tuple[float, np.ndarray]:
        key = np.asarray(xi, dtype=float).tobytes()
        if key not in cache:
            y = start.y.copy()
            y[resp.leader_pos[i]] = xi
            # warm from the last trial point (first-order predictor, dF/dx from its gradient),
            # then continuation from the step's start (which ends in a cold solve): a cold retry
            # here too would triple the cost of a point without a response (R = 0 under the
            # proportional payment)
            dF = last["Fx"] @ (np.asarray(xi, dtype=float) - last["x"]) if "Fx" in last else None
            r = resp.follow(last["z"], y, start.p, lu=last.get("lu"), dF=dF, anchor=(start.z, start.y),
                            sensitivity=True)
            count["newton"] += r.iterations
            count["evals"] += 1
            if not r.ok or r.lu is None:  # the caller's start for the followers, if any
                hinted = game.hinted_start(start.z, [y[pos] for pos in resp.leader_pos])
                if hinted is not None:
                    r2 = resp.solve(hinted, y, start.p, sensitivity=True, retry_cold=False)
                    count["newton"] += r2.iterations
                    r = r2 if r2.ok and r2.lu is not None else r
            if not r.ok or r.lu is None:
                raise StepFailed(f"no follower response at {ld.name} = {xi.tolist()} ({r.status.name})",
                                  np.array(xi, dtype=float))
            Fx = resp.system.input_columns(r.z, y, start.p, resp.options.mu, resp.leader_pos[i])
            last.update(z=r.z, x=np.array(xi, dtype=float), lu=r.lu, Fx=Fx)
            v, g = resp.utility_gradient(i, r, y, start.p, Fx=Fx)
            if not (math.isfinite(v) and np.all(np.isfinite(g))):  # never hand a NaN to a search
                raise StepFailed(f"non-finite utility or gradient of {ld.name} at {xi.tolist()}",
                                 np.array(xi, dtype=float))
            cache[key] = (v, g, r, y)
        v, g, _, _ = cache[key]
        return -v, -g

    lo, hi = ld.lower.copy(), ld.upper.copy()
    v0, g0 = evaluate(x0)
    scale = max(1.0, abs(v0))
    if ld.constraints is not None:
        x_new, v, g, opt_message, pg_max = constrained_ascent(evaluate, x0, lo, hi, ld.constraints, scale)
        _, _, r, y = cache[x_new.tobytes()]
        if not pg_max <= 1e-6 * scale:
            raise StepFailed(f"{ld.name}: the constrained ascent stopped at {x_new.tolist()} with KKT residual "
                              f"{pg_max:.3g} ({opt_message})")
        comp = resp.system.natural_residual(r.z, y, start.p)[2]
        run = HomotopyResult(True, SolverStatus.OPTIMAL, count["newton"], time.perf_counter() - t0, comp, -v, (),
                             f"implicit: {count['evals']} response evaluations ({opt_message})")
        return x_new, FollowerState(r.z, y, start.p), run, pg_max
    if x0.size == 1:
        x_new, v, g, game.curvature[i], kink = scalar_ascent(evaluate, x0, v0, g0, lo, hi, 1e-10 * scale,
                                                              game.curvature.get(i))
        opt_message = "scalar ascent"
    else:
        x_new, v, g, opt_message = box_ascent(evaluate, cache, x0, lo, hi, ld, scale)
        kink = None
    _, _, r, y = cache[x_new.tobytes()]
    # projected gradient on the leader's own box: zero where a bound blocks the ascent direction
    pg = -g.copy()
    pg[(x_new <= ld.lower + 1e-12) & (pg < 0)] = 0.0
    pg[(x_new >= ld.upper - 1e-12) & (pg > 0)] = 0.0
    pg_max = float(np.max(np.abs(pg), initial=0.0))
    if not pg_max <= 1e-6 * scale and kink is not None and kink[0] > 0 > kink[1]:
        # dV/dx changes sign from + to - within 2 _XTOL: a maximum at a kink of V, stationary in
        # Clarke's sense (0 lies between the one-sided derivatives)
        opt_message = f"scalar ascent: maximum at a kink, dV/dx from {kink[0]:.3g} to {kink[1]:.3g}"
        pg_max = 0.0
    if not pg_max <= 1e-6 * scale:
        raise StepFailed(f"{ld.name}: the ascent stopped at {x_new.tolist()} with projected gradient "
                          f"{pg_max:.3g} ({opt_message})")
    comp = resp.system.natural_residual(r.z, y, start.p)[2]
    run = HomotopyResult(True, SolverStatus.OPTIMAL, count["newton"], time.perf_counter() - t0, comp, -v, (),
                         f"implicit: {count['evals']} response evaluations ({opt_message})")
    return x_new, FollowerState(r.z, y, start.p), run, pg_max


#: relative width of the bracket at which :func:`scalar_ascent` stops (a maximum at a kink of
#: the utility, a follower entering or leaving, has no root of ``dV/dx`` to converge to)
_XTOL = 1e-12

#: times one implicit step may halve its box around a trial point without a follower response
_MAX_SHRINK = 6


def box_ascent(evaluate: Any, cache: dict, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, ld: Any,
                scale: float) -> tuple[np.ndarray, float, np.ndarray, str]:
    """L-BFGS-B on ``-V`` over the box (several decisions); a trial point without a follower
    response halves the box towards the best point so far and restarts. Returns ``(x, -V, -g, message)``."""
    from scipy.optimize import minimize

    bad_lo, bad_hi = np.full_like(lo, -math.inf), np.full_like(hi, math.inf)
    x_start = x0
    for attempt in range(_MAX_SHRINK + 1):
        bounds = list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None)))
        try:
            opt = minimize(evaluate, x_start, jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"ftol": 0.0, "gtol": 1e-10 * scale, "maxiter": 200, "maxls": 40})
        except StepFailed as err:
            if err.point is None or attempt == _MAX_SHRINK:
                raise
            # keep the half of the segment [best, bad] next to the best point evaluated so far
            best = np.frombuffer(max(cache, key=lambda k: cache[k][0]))
            bad = err.point
            low, high = bad < best, bad > best
            bad_lo = np.where(low, np.maximum(bad_lo, bad), bad_lo)
            bad_hi = np.where(high, np.minimum(bad_hi, bad), bad_hi)
            lo = np.where(low, best - 0.5 * (best - bad), lo)
            hi = np.where(high, best + 0.5 * (bad - best), hi)
            x_start = best
            continue
        xo = np.asarray(opt.x, dtype=float)
        _, go = evaluate(xo)
        # stopped on a bound of the shrunk box while ascent points outside it: widen that bound
        # half way towards the failing point and go on from there
        out_lo = (xo <= lo + 1e-12) & (lo > ld.lower) & (go > 0)
        out_hi = (xo >= hi - 1e-12) & (hi < ld.upper) & (go < 0)
        if not (out_lo.any() or out_hi.any()) or attempt == _MAX_SHRINK:
            break
        with np.errstate(invalid="ignore"):  # inf - inf on the sides that did not fail
            lo = np.where(out_lo, bad_lo + 0.5 * (lo - bad_lo), lo)
            hi = np.where(out_hi, bad_hi - 0.5 * (bad_hi - hi), hi)
        x_start = xo
    x_new = np.asarray(opt.x, dtype=float)
    v, g = evaluate(x_new)
    return x_new, v, g, str(opt.message)


def constrained_ascent(evaluate: Any, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, cons: Any,
                       scale: float, gtol: float | None = None) -> tuple[np.ndarray, float, np.ndarray, str, float]:
    """SLSQP on ``-V`` over the box and the leader's general constraints (Kraft 1988, as
    ``scipy.optimize.minimize(method="SLSQP")``), with the implicit gradient of ``V``.

    The answer is checked as a KKT point of ``max V s.t. s(x) >= 0, h(x) = 0, lo <= x <= hi``:
    the smallest ``|grad V + sum_k l_k grad s_k + sum_e m_e grad h_e + bounds|_inf`` over
    multipliers ``l >= 0`` of the active inequalities (nonnegative least squares, Lawson & Hanson
    1974). SLSQP stops on the change of ``V`` (``ftol = 1e-12 scale``: tighter, it ends on "positive
    directional derivative" after ~10x the evaluations); where that leaves the residual above
    ``gtol`` (default ``1e-6 scale``), a second run from there with ``ftol = 1e-15 scale`` polishes
    it. A point that breaks a constraint (by more than 1e-8, scaled) has residual inf. Returns
    ``(x, -V, -g, message, residual)``; raises :class:`StepFailed` from ``evaluate``.
    """
    from scipy.optimize import minimize

    gtol = 1e-6 * scale if gtol is None else gtol
    bounds = list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None)))
    x = cons.project(x0, lo, hi)
    for ftol in (1e-12, 1e-15):
        opt = minimize(evaluate, x, jac=True, method="SLSQP", bounds=bounds, constraints=cons.scipy_constraints(),
                       options={"ftol": ftol * scale, "maxiter": 300})
        x = np.clip(np.asarray(opt.x, dtype=float), lo, hi)
        v, g = evaluate(x)
        res = _kkt_residual(x, g, lo, hi, cons) if cons.feasible(x, 1e-8) else math.inf
        if res <= gtol:
            break
    return x, v, g, f"SLSQP: {opt.message}" + ("" if math.isfinite(res) else "; infeasible"), res


def _kkt_residual(x: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray, cons: Any) -> float:
    """``min_{l >= 0} |A l - g|_inf`` for ``g = grad(-V)`` and ``A``'s columns the gradients of the
    active inequalities (``s_k <= 1e-7 max(1, |x|)``), of the equalities (both signs) and of the
    active bounds: stationarity of ``min -V`` at ``x``."""
    from scipy.optimize import nnls

    s_in, d_in, _, d_eq = cons.slack(x)
    tol_act = 1e-7 * max(1.0, float(np.max(np.abs(x), initial=0.0)))
    n = x.size
    cols = [d_in[k] for k in range(len(s_in)) if s_in[k] <= tol_act]
    cols += [row for row in d_eq] + [-row for row in d_eq]
    cols += [np.eye(n)[j] for j in range(n) if x[j] <= lo[j] + tol_act]
    cols += [-np.eye(n)[j] for j in range(n) if x[j] >= hi[j] - tol_act]
    if not cols:
        return float(np.max(np.abs(g), initial=0.0))
    A = np.array(cols).T
    lam, _ = nnls(A, g)
    return float(np.max(np.abs(A @ lam - g), initial=0.0))


def scalar_ascent(evaluate: Any, x0: np.ndarray, v0: float, g0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   gtol: float, curvature: float | None = None,
                   max_evals: int = 80) -> tuple[np.ndarray, float, np.ndarray, float | None,
                                              tuple[float, float] | None]:
    """Maximise ``V`` over ``[lo, hi]`` in one decision: bracket a sign change of ``g = dV/dx``,
    then close the bracket by safeguarded secant / tangent-intersection steps.

    ``evaluate(x) -> (-V, -dV/dx)`` as for a minimiser; it raises :class:`StepFailed` at a point
    without a follower response. Bracketing walks uphill by Newton steps ``x - g / c``, ``c`` the
    secant curvature of the last two points (at first ``curvature``, e.g. the previous step's,
    else a probe of relative size 1e-4); while ``c`` is not negative it jumps half the way to the
    *wall* (the nearest point without a response, else the bound; 4 times the last step when
    unbounded). No step goes more than half the way to the wall; the bound itself is tried after
    two such halvings. Inside a bracket ``g(a) > 0 > g(b)`` (up to the direction) a secant step
    through the last two points is taken when it falls inside and is under half the step before
    last, as in Brent's method (*Algorithms for Minimization without Derivatives*, 1973, ch. 4);
    else the point where the tangents of ``V`` at ``a`` and ``b`` cross, when it lies well inside
    (exact at a kink between two linear pieces); else bisection. Superlinear near a smooth
    maximum, at worst bisection at a kink of ``V`` (a follower entering or leaving; the smoothed
    KKT system turns it into a steep but continuous ``g``). Stops when ``|g| <= gtol``, at a bound where ``g`` points out, or when the bracket is
    narrower than ``2 _XTOL max(1, |x|)``. Returns ``(x, -V, -g, c, kink)``: the point with the
    smallest ``|g|`` (the bracket's side with the larger ``V`` when it closed; the caller checks
    the projected gradient), the last secant curvature, and
    ``kink = (g_left, g_right)``, the derivatives at the two sides of the bracket, when it closed
    on a sign change of ``g`` before ``|g| <= gtol`` (at a maximum at a kink of ``V`` neither is
    small), else None.
    """
    lo_, hi_ = float(lo[0]), float(hi[0])
    f = _Probe(evaluate, max_evals)
    a = (float(x0[0]), -float(v0), -float(g0[0]))  # (x, V, g)
    c = curvature if curvature is not None and curvature < 0 and math.isfinite(curvature) else None
    if abs(a[2]) <= gtol or (a[2] < 0 and a[0] <= lo_) or (a[2] > 0 and a[0] >= hi_):
        return _ascent_result(a, c)
    d = 1.0 if a[2] > 0 else -1.0
    a, b, c = _bracket(f, a, c, d, hi_ if d > 0 else lo_, gtol)
    if b is None:
        return _ascent_result(a, c)
    return _close_bracket(f, a, b, c, d, gtol)


class _Probe:
    """:func:`scalar_ascent`'s evaluations: ``f(x) -> (V, g)``, None at a point without a follower
    response (``StepFailed`` with a point), counted against ``max_evals``."""

    def __init__(self, evaluate: Any, max_evals: int) -> None:
        self.evaluate, self.max_evals, self.evals = evaluate, max_evals, 0

    def __call__(self, x: float) -> tuple[float, float] | None:
        self.evals += 1
        try:
            mv, mg = self.evaluate(np.array([x]))
        except StepFailed as err:
            if err.point is None:
                raise
            return None
        return -float(mv), -float(mg[0])

    @property
    def spent(self) -> bool:
        """``max_evals`` reached."""
        return self.evals >= self.max_evals


def _ascent_result(p: tuple[float, float, float], c: float | None, kink: tuple[float, float] | None = None) -> tuple:
    """:func:`scalar_ascent`'s answer at ``p = (x, V, g)``, in the minimiser's signs."""
    return np.array([p[0]]), -p[1], np.array([-p[2]]), c, kink


def _rounding(u: float, w: float) -> bool:
    """``u`` and ``w`` equal up to rounding."""
    return abs(u - w) <= 4e-16 * max(1.0, abs(u), abs(w))


def _bracket(f: _Probe, a: tuple, c: float | None, d: float, bound: float,
             gtol: float) -> tuple[tuple, tuple | None, float | None]:
    """:func:`scalar_ascent`'s bracketing: uphill from ``a = (x, V, g)`` in direction ``d`` until
    ``g`` changes sign (or the ``bound`` stops the ascent). Returns ``(a, b, c)`` with the bracket
    ``g(a) d > 0 > g(b) d``, or ``(point, None, c)`` where the ascent stops at ``point``."""
    wall, wall_is_bound, halvings = bound, True, 0
    probe, last_step = 1e-4 * max(1.0, abs(a[0])), 0.0
    while True:
        if c is not None:
            t = a[0] - a[2] / c
        elif last_step > 0:  # no concave curvature yet: expand
            t = a[0] + d * (0.5 * abs(wall - a[0]) if math.isfinite(wall) else 4.0 * last_step)
        else:
            t = a[0] + d * probe
        if math.isfinite(wall) and (not math.isfinite(t) or (t - wall) * d >= 0
                                    or abs(t - a[0]) > 0.5 * abs(wall - a[0])):
            halvings += 1
            t = wall if wall_is_bound and halvings > 2 else a[0] + 0.5 * (wall - a[0])
        elif not math.isfinite(t):
            t = a[0] + d * 4.0 * max(last_step, probe)
        else:
            halvings = 0
        if f.spent or _rounding(t, a[0]):
            return a, None, c
        r = f(t)
        if r is None:
            wall, wall_is_bound = t, False
            continue
        pt = (t, r[0], r[1])
        if abs(pt[2]) <= gtol or (pt[2] * d > 0 and t == bound):
            return pt, None, c
        c_new = (pt[2] - a[2]) / (pt[0] - a[0])
        c = c_new if c_new < 0 and math.isfinite(c_new) else None
        if pt[2] * d < 0:
            return a, pt, c
        last_step, a = abs(pt[0] - a[0]), pt


def _close_bracket(f: _Probe, a: tuple, b: tuple, c: float | None, d: float, gtol: float) -> tuple:
    """:func:`scalar_ascent` inside the bracket ``[a, b]``, ``g(a) d > 0 > g(b) d``: safeguarded
    secant, tangent-intersection or bisection steps until ``|g| <= gtol`` or the bracket closes."""
    best = min((a, b), key=lambda q: abs(q[2]))
    last, prev = b, a
    older = step = abs(b[0] - a[0])
    while not f.spent:
        lo_b, hi_b = min(a[0], b[0]), max(a[0], b[0])
        xtol = _XTOL * max(1.0, abs(best[0]))
        if hi_b - lo_b <= 2.0 * xtol:
            left, right = (a, b) if a[0] < b[0] else (b, a)
            return _ascent_result(max((a, b), key=lambda q: q[1]), c, (left[2], right[2]))
        t = math.nan
        if last[2] != prev[2]:
            t = last[0] - last[2] * (last[0] - prev[0]) / (last[2] - prev[2])
        # Brent's safeguard: the secant step must lie inside and be under half the step before
        # last, else the tangents' intersection, else bisect; and it moves at least xtol (so a
        # kink ends in a bracket of ~xtol)
        if not (lo_b < t < hi_b) or abs(t - last[0]) >= 0.5 * older:
            # where the tangents of V at a and b cross: exact at a kink between two linear
            # pieces (a follower entering or leaving), the midpoint for a quadratic
            t = (b[1] - a[1] + a[2] * a[0] - b[2] * b[0]) / (a[2] - b[2])
            if not (lo_b + 0.01 * (hi_b - lo_b) < t < hi_b - 0.01 * (hi_b - lo_b)):
                t = 0.5 * (lo_b + hi_b)
        t = min(max(t, lo_b + xtol), hi_b - xtol)
        older, step = step, abs(t - last[0])
        r = f(t)
        if r is None:
            break  # no response between two that have one: leave it to the caller's check
        pt = (t, r[0], r[1])
        if abs(pt[2]) < abs(best[2]):
            best = pt
        if abs(pt[2]) <= gtol:
            break
        if last[2] != pt[2]:
            c_new = (pt[2] - last[2]) / (pt[0] - last[0])
            c = c_new if c_new < 0 and math.isfinite(c_new) else c
        prev, last = last, pt
        if pt[2] * d > 0:
            a = pt
        else:
            b = pt
    return _ascent_result(best, c)


def full_space_step(game: Game, i: int, x: list, state: FollowerState | None) -> tuple[HomotopyResult, FollowerState | None]:
    """Leader ``i``'s MPEC through Ipopt on the reformulated model (others fixed at ``x``)."""
    if state is not None:
        game.response.load(state.z)
    game.fix_leaders(x)
    for v in game.leaders[i].vars:
        v.unfix()
    run = game.mode.solve(game.data, game.solver, game.leaders[i].objective, warm=True)
    if state is not None:
        z, y = game.response.read()
        state = FollowerState(z, y, state.p)
    return run, state


def implicit_response(game: Game, x: Sequence[np.ndarray] | None, state: FollowerState | None,
                       cold: bool = False) -> tuple[HomotopyResult, FollowerState | None]:
    """The followers' equilibrium at leader decisions ``x`` by Newton (Ipopt's homotopy as the
    fallback); the point is written into the transformed model."""
    from solvers import SolverStatus

    resp = game.response
    t0 = time.perf_counter()
    if resp is not None:
        if state is None:
            z, y = resp.read()
            state = FollowerState(z, y, resp.system.read_params())
        y = resp.inputs_at(state.y, x)
        r = resp.solve(state.z, y, state.p, cold=cold)  # a warm solve retries cold itself
        hinted = None if r.ok else game.hinted_start(state.z, x)
        if hinted is not None:  # the caller's start for the followers, then a warm Newton solve
            r2 = resp.solve(hinted, y, state.p, retry_cold=False)
            r = Response(r2.ok, r2.z, r2.residual, r.iterations + r2.iterations, r.seconds + r2.seconds,
                         r2.status, r2.lu)
        if r.ok:
            resp.load(r.z)
            game.fix_leaders(x)
            comp = resp.system.natural_residual(r.z, y, state.p)[2]
            return (HomotopyResult(True, SolverStatus.OPTIMAL, r.iterations, time.perf_counter() - t0, comp, None, (),
                                   "newton"), FollowerState(r.z, y, state.p))
    run = game.respond(x, warm=not cold)
    if resp is not None and run.ok:
        z, y = resp.read()
        state = FollowerState(z, y, resp.system.read_params())
    return run, state
