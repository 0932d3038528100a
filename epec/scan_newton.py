"""The certificate's Newton engine (:func:`epec.certificate.certify_game`): every follower response
of the deviation scan (docs/model.md section 5 (b)) and of the uniqueness check (c) solved by
Newton on the followers' smoothed KKT system (:mod:`epec.response`), warm-started along the
deviation lines, with Ipopt as the fallback; or, with a batch engine, each round of the scan's
points solved at once."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .best_reply import convex_everywhere
from .deviation_scan import (ADMISSIBLE_TOL, DeviationScan, Inadmissible, batched_deviation_gains,
                             batched_deviation_steps, deviation_gains, deviation_lines)
from .optimistic import optimistic_game, optimistic_utility
from .scan_ipopt import certify_ipopt

__all__ = ["certify_newton", "LockstepScan", "lockstep_scan"]

#: random starts tried by Newton for one uniqueness start before Ipopt takes the last one
_NEWTON_DRAWS = 10
#: Newton draws of one uniqueness start before the caller's random start is tried (cheap draws
#: first: on the presets the first converges)
_HINT_AFTER = 2


class _Hull:
    """Every response the Newton certificate evaluated (each unknown: followers' decisions,
    multipliers, lifted aggregates; and input: leaders' decisions), in the order evaluated, and
    whether the followers are proven convex at all of them (:func:`certify_newton`)."""

    def __init__(self, resp: Any, z: np.ndarray, y: np.ndarray) -> None:
        self.vars = list(resp.system.unknowns) + list(resp.system.inputs)
        self.points = [np.concatenate([z, y]).astype(float)]

    def add(self, z: np.ndarray, y: np.ndarray) -> None:
        self.points.append(np.concatenate([z, y]).astype(float))

    def _box(self, pts: list) -> dict[int, tuple[float, float]]:
        lo, hi = np.min(pts, axis=0), np.max(pts, axis=0)
        return {id(v): (float(a), float(b)) for v, a, b in zip(self.vars, lo, hi)}

    def proven(self, game: Any) -> bool:
        """The followers convex over the smallest box around each run of consecutive points
        (neighbours on a deviation line: the box of all of them loses the link between a
        leader's decision and the followers' replies, which interval arithmetic needs), halving
        a run whose box the rules cannot prove, down to single points (convexity at the point)."""
        runs = [self.points]
        while runs:
            pts = runs.pop()
            if all(convex_everywhere(game, self._box(pts))):
                continue
            if len(pts) == 1:
                return False
            half = len(pts) // 2
            runs += [pts[:half], pts[half:]]
        return True


@dataclass
class _NewtonPoint:
    """The point the Newton certificate checks, and the followers' responses at deviations from it.

    Attributes
    ----------
    game, options
        The game and the certificate's options.
    x_star : list of ndarray
        The leaders' decisions.
    snap0
        The game's snapshot at the point.
    p : ndarray
        The followers' parameters.
    z_star, y_star : ndarray
        The followers' unknowns and the inputs (leaders' decisions) at the point.
    star : dict
        The point's warm start (``z``, ``y`` and the Jacobian's factorisation ``lu``).
    base : ndarray
        Each leader's utility at the point.
    fallbacks : int
        Ipopt fallbacks left (``options.fallbacks`` at first).
    hull : _Hull or None
        The responses evaluated, where the followers' convexity must be proven over them.
    optimistic : bool
        The optimistic reply is evaluated at every deviation (:func:`epec.optimistic.optimistic_game`).
    warm : dict
        The warm start of the next deviation (the last grid neighbour's response).
    """

    game: Any
    options: Any
    x_star: list
    snap0: Any
    p: np.ndarray
    z_star: np.ndarray
    y_star: np.ndarray
    star: dict
    base: np.ndarray
    fallbacks: int
    hull: _Hull | None
    optimistic: bool
    warm: dict

    @property
    def resp(self) -> Any:
        """The game's Newton follower response."""
        return self.game.response

    def restart(self) -> None:
        """Put the warm start back at the point."""
        self.warm.update(self.star)

    def response_at(self, warm: dict, y: np.ndarray, pt: list) -> np.ndarray | None:
        """The followers' response at ``y``, from the grid neighbour ``warm`` (first-order
        predictor), else by continuation from the point (ending in a cold solve), else Ipopt;
        ``warm`` moves to the new point."""
        resp, p, game = self.resp, self.p, self.game
        dF = None
        if warm["lu"] is not None:
            dF = resp.system.input_jacobian(warm["z"], warm["y"], p, resp.options.mu) @ (y - warm["y"])
        r = resp.follow(warm["z"], y, p, lu=warm["lu"], dF=dF, anchor=(self.z_star, self.y_star), sensitivity=True)
        hinted = None if r.ok else game.hinted_start(self.z_star, pt)
        if hinted is not None:  # the caller's start for the followers (see solve_epec)
            r = resp.solve(hinted, y, p, sensitivity=True, retry_cold=False)
        if r.ok:
            warm.update(z=r.z, y=y, lu=r.lu)
            return r.z
        if self.fallbacks <= 0:
            return None
        self.fallbacks -= 1
        game.restore(self.snap0)
        run = game.respond(pt, warm=True, capped=True)
        if not run.ok:
            return None
        z = resp.read()[0]
        if max(resp.system.natural_residual(z, y, p)) > resp.options.kkt_tol:
            return None
        warm.update(z=z, y=y, lu=None)
        return z

    def gain_at(self, i: int, pt: list) -> float:
        """Leader ``i``'s gain at decisions ``pt`` (-inf without a follower response; raises
        :class:`epec.deviation_scan.Inadmissible` where the response breaks a coupling constraint)."""
        resp, game = self.resp, self.game
        y = resp.inputs_at(self.y_star, pt)
        z = self.response_at(self.warm, y, pt)
        if z is None:
            return -math.inf
        if self.hull is not None:
            self.hull.add(z, y)
        if game.coupling:  # G(x', y(x')) <= 0, evaluated on the model at the response
            resp.load(z)
            game.fix_leaders(pt)
            if game.coupling_broken(ADMISSIBLE_TOL):
                raise Inadmissible
        utility = float(resp.utilities(z, y, self.p)[i])
        if self.optimistic:  # the leader's preferred best reply where the follower is indifferent
            resp.load(z)
            game.fix_leaders(pt)
            # (the Newton reply of a convex follower is its optimum to the smoothing's mu^2)
            utility = max(utility, optimistic_utility(game, i, self.options, at_best=True)[0])
        return utility - float(self.base[i])


def _batch_gains(game: Any, options: Any, x_star: list, gain_at: Callable[[int, list], float],
                 restart: Callable[[], Any]) -> Callable[[list[tuple[int, list]]], list[float | None]] | None:
    """``gains_at([(i, point), ...])`` for :func:`epec.deviation_scan.batched_deviation_gains`:
    leader ``i``'s utility gain at each point, from the game's batch engine
    (``game.batch_response(points) -> (utilities (B, L), solved (B,))``, see
    :func:`epec.solve_epec`) against its own utilities at ``x*``; a point the engine does not
    solve is evaluated by ``gain_at(i, point)`` (the Newton response from the point, ``restart()``
    first; None where it breaks a coupling constraint). None when there is no engine,
    ``options.batched`` is off, or the engine fails at ``x*``."""
    engine = getattr(game, "batch_response", None)
    if engine is None or not options.batched:
        return None
    V0, ok0 = engine([x_star])
    if not bool(np.asarray(ok0)[0]):
        return None
    base = np.asarray(V0, dtype=float)[0]

    def gains_at(items: list[tuple[int, list]]) -> list[float | None]:
        V, ok = engine([pt for _, pt in items])
        out: list[float | None] = []
        for (i, pt), v, solved in zip(items, np.asarray(V, dtype=float), np.asarray(ok)):
            if solved:
                out.append(float(v[i] - base[i]))
                continue
            restart()
            try:
                out.append(gain_at(i, pt))
            except Inadmissible:
                out.append(None)
        return out

    return gains_at


def _constrained_refinement(game: Any, i: int, x_star: list, starts: list, response: Callable, y_star: np.ndarray,
                            p: np.ndarray, base: float, gains: list, bests: list, evals: list) -> None:
    """(b) for a leader with general constraints: the grid's lines through the point rarely run
    along a constraint that binds there, so the constrained leader step (SLSQP with the implicit
    gradient, :func:`epec.leader_steps.constrained_ascent`) climbs from the point and from the
    best grid deviation, others at ``x*``; a better feasible decision it reaches replaces leader
    ``i``'s gain and best deviation (in place). A start without a follower response or a step
    that fails adds nothing."""
    from .leader_steps import FollowerState, StepFailed, implicit_step

    resp = game.response
    for start in starts:
        pt = [a.copy() for a in x_star]
        pt[i] = start
        y = resp.inputs_at(y_star, pt)
        z = response(y, pt)
        if z is None:
            continue
        try:
            x_new, _, run, _ = implicit_step(game, i, FollowerState(z, y, p))
        except StepFailed:
            continue
        evals[i] += 1
        gain = float(run.objective) - base
        # the step's own tolerance (1e-8, scaled): a gain it finds counts (refuting is the safe side)
        if gain > gains[i] and game.leaders[i].constraints.feasible(x_new, 1e-8):
            gains[i], bests[i] = gain, tuple(float(t) for t in x_new)


def _deviations(pt: _NewtonPoint, rng: np.random.Generator, tick: Callable[[], None]) -> tuple[list, list, list, list]:
    """(b) every leader's largest deviation gain from the point: batched where the game has a
    batch engine (and no hull is needed), else one point after another; then each leader with
    general constraints refined by its constrained step (:func:`_constrained_refinement`)."""
    game, options, x_star = pt.game, pt.options, pt.x_star
    batch = None if pt.hull is not None else _batch_gains(game, options, x_star, pt.gain_at, pt.restart)
    if batch is not None:
        gains, bests, evals, failed = batched_deviation_gains(game.leaders, x_star, rng, options, batch, tick)
    else:
        gains, bests, evals, failed = deviation_gains(game.leaders, x_star, rng, options, pt.gain_at,
                                                      pt.restart, tick)
    for i, ld in enumerate(game.leaders):
        if ld.constraints is not None:
            _constrained_refinement(game, i, x_star, [x_star[i], np.asarray(bests[i], dtype=float)],
                                    lambda y, at: pt.response_at(dict(pt.star), y, at), pt.y_star, pt.p,
                                    float(pt.base[i]), gains, bests, evals)
    return gains, bests, evals, failed


@dataclass(frozen=True)
class _StartBox:
    """Where the uniqueness check (c) draws its random follower starts. The followers' own
    variables uniform in their box; the other unknowns (multipliers, lifted aggregates) drawn
    around the point's magnitudes, ``[0, 2 s]`` when bounded below and ``z* +- s`` otherwise,
    ``s = max(|z*_j|, 0.1 max |z*_mult|)``: at 100x5 Newton reached no equilibrium from
    multipliers all 1 or all 10 (0/5 draws each), 4/5 from these."""

    z_star: np.ndarray
    P: Any
    lb: np.ndarray
    ub: np.ndarray
    other: np.ndarray
    primal_scale: float

    @classmethod
    def at(cls, resp: Any, z_star: np.ndarray) -> _StartBox:
        """The box around the point's followers' unknowns ``z_star``."""
        P = resp.primal_index
        lb = np.array([-math.inf if v.lb is None else v.lb for v in resp.system.unknowns], dtype=float)
        ub = np.array([math.inf if v.ub is None else v.ub for v in resp.system.unknowns], dtype=float)
        other = np.ones(len(z_star), dtype=bool)
        other[P] = False
        # the draws follow the point's own magnitudes (a scenario whose utilities are 1e-2 has
        # multipliers of 1e-7; draws of order 1 put Newton's continuation far outside its basin)
        primal_scale = max(float(np.max(np.abs(z_star[P]), initial=0.0)), 1e-12)
        return cls(z_star, P, lb, ub, other, primal_scale)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One random start of the followers' unknowns."""
        P, lb, ub, other, s = self.P, self.lb, self.ub, self.other, self.primal_scale
        z = self.z_star.copy()
        lo = np.where(np.isfinite(lb[P]), lb[P], z[P] - s)
        hi = np.where(np.isfinite(ub[P]), np.minimum(ub[P], lo + 2.0 * s), lo + 2.0 * s)
        z[P] = rng.uniform(lo, hi)
        zo = self.z_star[other]
        scale = np.maximum(np.abs(zo), max(0.1 * float(np.max(np.abs(zo), initial=0.0)), 1e-12))
        z[other] = np.where(np.isfinite(lb[other]), np.maximum(lb[other], 0.0) + rng.uniform(0.0, 2.0, zo.size) * scale,
                            zo + rng.uniform(-1.0, 1.0, zo.size) * scale)
        return z


def _equilibrium_from_random_start(pt: _NewtonPoint, box: _StartBox, rng: np.random.Generator) -> np.ndarray | None:
    """The followers' equilibrium at the point from one random start: Newton from up to
    ``_NEWTON_DRAWS`` draws (the caller's random start after ``_HINT_AFTER``), else Ipopt's
    homotopy from the last draw, polished by Newton; None where neither reaches one."""
    resp, game, p, y_star, x_star = pt.resp, pt.game, pt.p, pt.y_star, pt.x_star
    # Newton's basin from a far start is not global (about half of the uniform starts on the
    # default scenario): a few draws before Ipopt's homotopy, which costs ~30x more
    for attempt in range(_NEWTON_DRAWS):
        if attempt == _HINT_AFTER:
            # the caller's random start (see solve_epec's follower_start), polished by Newton
            hinted = game.hinted_start(pt.z_star, x_star, rng)
            r = resp.solve(hinted, y_star, p, retry_cold=False) if hinted is not None else None
            if r is not None and r.ok:
                return r.z
        z = box.draw(rng)
        r = resp.solve(z, y_star, p, cold=True)
        if r.ok:
            return r.z
    resp.load(z)
    game.fix_leaders(x_star)
    run = game.respond(x_star, warm=False, capped=True)
    if run.ok:
        # Ipopt's relaxed complementarity leaves the point ~1e-4 off: Newton polishes it
        # (without that a start at the same equilibrium looked 2e-3 away), and a point it
        # cannot polish is not an equilibrium to compare
        r = resp.solve(resp.read()[0], y_star, p, retry_cold=False)
        return r.z if r.ok else None
    return None


def _uniqueness(pt: _NewtonPoint, rng: np.random.Generator, tick: Callable[[], None]) -> tuple[int, float]:
    """(c) uniqueness: ``options.starts`` random follower starts, leaders at x*: with the game's
    ``batch_starts`` all of them from one call (:meth:`epec.game.Game.batch_hinted_starts`), each
    polished by Newton (:func:`_polished_starts`). Returns ``(starts that reached an equilibrium,
    their largest distance from the point's followers' decisions)``."""
    count = pt.options.starts
    hinted = (pt.game.batch_hinted_starts(pt.z_star, pt.x_star, rng, count)
              if getattr(pt.game, "batch_starts", None) is not None else [None] * count)
    return _polished_starts(pt, hinted, rng, tick)


def _polished_starts(pt: _NewtonPoint, hinted: list, rng: np.random.Generator,
                     tick: Callable[[], None]) -> tuple[int, float]:
    """(c) from the starts ``hinted`` (the followers' unknowns, or None): each polished by Newton;
    a start without a hint, or whose polish fails, from :func:`_equilibrium_from_random_start`
    (:class:`_StartBox`, cold continuation in mu, its draws from ``rng``). Returns ``(starts that
    reached an equilibrium, their largest distance from the point's followers' decisions)``."""
    spread, starts = 0.0, 0
    box = _StartBox.at(pt.resp, pt.z_star)
    P = box.P
    for z_hint in hinted:
        z_end = None
        if z_hint is not None:
            r = pt.resp.solve(z_hint, pt.y_star, pt.p, retry_cold=False)
            z_end = r.z if r.ok else None
        if z_end is None:
            z_end = _equilibrium_from_random_start(pt, box, rng)
        if z_end is not None:
            starts += 1
            spread = max(spread, float(np.max(np.abs(z_end[P] - pt.z_star[P]), initial=0.0)))
        tick()
    return starts, spread


def _at_point(game: Any, options: Any) -> tuple:
    """What a Newton certificate starts from at the game's loaded point: ``(rng, x_star, snapshot,
    params, residual, y_star, r_star)``; ``r_star`` the followers' response at ``x_star`` with its
    factorisation (a failed warm solve retries cold itself; not ok: no Newton baseline)."""
    rng = np.random.default_rng(options.seed)
    resp = game.response
    x_star = [ld.values() for ld in game.leaders]
    snap0 = game.snapshot()
    z0, y0 = resp.read()
    p = resp.system.read_params()
    # (a) at the loaded point, from the compiled KKT functions (the same residual as
    # KKTSystem.residual, which walks the Pyomo expressions: ~15 s at 500x10)
    residual = resp.kkt_residual(z0, y0, p)
    y_star = resp.inputs_at(y0, x_star)
    return rng, x_star, snap0, p, residual, y_star, resp.solve(z0, y_star, p, sensitivity=True)


def certify_newton(game: Any, options: Any, tick: Callable[[], None], replies: list) -> DeviationScan | None:
    """:func:`epec.certificate.certify_game`'s scan with Newton responses: each grid point
    warm-started from its neighbour (first-order predictor, :meth:`FollowerResponse.solve_near`),
    then by continuation from the point, then Ipopt; a response counts only if its natural KKT
    residual (stationarity, feasibility, ``max |min(a, b)|``) is within ``kkt_tol``.

    The followers are convex at the point; a KKT reply at a deviation is a best reply only where
    they are convex too. Followers not proven convex for all the others' decisions
    (:func:`epec.best_reply.convex_everywhere`) are proven convex over the box the deviations
    visited (every leader's and follower's value seen, :class:`_Hull`) after the scan; None
    (certify with Ipopt and global replies instead) where that fails, or where a leader's
    constraints would send the refinement to points the box does not record."""
    hull_needed = bool(options.best_reply) and not all(convex_everywhere(game))
    if hull_needed and any(ld.constraints is not None for ld in game.leaders):
        return None
    t0 = time.perf_counter()
    rng, x_star, snap0, p, residual, y_star, r_star = _at_point(game, options)
    if not r_star.ok:  # no Newton baseline: certify with Ipopt throughout
        return certify_ipopt(game, options, tick, replies)
    resp, z_star = game.response, r_star.z
    star = {"z": z_star, "y": y_star, "lu": r_star.lu}
    pt = _NewtonPoint(game, options, x_star, snap0, p, z_star, y_star, star,
                      base=resp.utilities(z_star, y_star, p), fallbacks=options.fallbacks,
                      hull=_Hull(resp, z_star, y_star) if hull_needed else None,
                      optimistic=optimistic_game(game, options) and getattr(game, "batch_response", None) is None,
                      warm=dict(star))
    gains, bests, evals, failed = _deviations(pt, rng, tick)
    if pt.hull is not None and not pt.hull.proven(game):
        game.restore(snap0)
        return None
    starts, spread = _uniqueness(pt, rng, tick)
    game.restore(snap0)
    return DeviationScan(residual, gains, bests, evals, failed, starts, spread, [float(b) for b in pt.base],
                         x_star, t0)


@dataclass
class LockstepScan:
    """:func:`certify_newton` at one point with its deviation scan left to the caller, who may
    evaluate the scans of several points in one batch (a sweep's path, :mod:`epec.certify_together`).
    Everything else, (a) the residual and (c) the uniqueness starts, is done at the point by
    :func:`lockstep_scan`, with the random draws in the order :func:`certify_newton` makes them
    (the lines' directions, then the starts), so the scan is the same as the one-point one.

    Where the game's ``batch_starts`` hook has its deferred form
    (:meth:`epec.game.Game.draw_batch_starts`), (c) waits: the starts are drawn at the point
    (``pending_starts``: the request and the hook's ``solve_many``) and ``starts``/``spread``
    are None until :meth:`settle_uniqueness` is given the request's hints (the caller may solve the
    requests of several points in one call, :func:`epec.certify_together.certify_prepared`);
    :meth:`steps` settles a request still waiting by itself first.

    Attributes
    ----------
    pt : _NewtonPoint
        The point and its Newton responses (the fallback of a deviation the engine leaves).
    lines : list
        The deviation lines (:func:`epec.deviation_scan.deviation_lines`).
    residual : KKTResidual
    starts, spread
        (c), as :class:`epec.deviation_scan.DeviationScan` (None while ``pending_starts``).
    seconds : float
        Wall seconds spent on this point so far (the scan's share is added by the caller).
    rng : numpy Generator or None
        The point's random draws, after the starts' (the fallbacks of a deferred (c) draw on).
    pending_starts : tuple or None
        ``(request, solve_many)`` of a deferred (c).
    """

    pt: _NewtonPoint
    lines: list
    residual: Any
    starts: int | None
    spread: float | None
    seconds: float
    rng: Any = None
    pending_starts: tuple | None = None

    def settle_uniqueness(self, hints: list) -> None:
        """(c) of a deferred point from the hints ``solve_many`` gave for its request: each start
        polished by Newton, falling back as :func:`_uniqueness` does (the game must be at this
        point, with its hooks: :meth:`epec.certify_together.PreparedPoint.activate`); the game's
        values are put back after."""
        pt = self.pt
        hinted = pt.game.hinted_starts(pt.z_star, hints, pt.options.starts)
        self.starts, self.spread = _polished_starts(pt, hinted, self.rng, lambda: None)
        pt.game.restore(pt.snap0)
        self.pending_starts = None

    def steps(self, activate: Callable[[], None]):
        """The scan as a coroutine: it yields lists of decision profiles for the game's batch
        engine and is sent ``(utilities (B, L), solved (B,))`` for each; it returns the
        :class:`epec.deviation_scan.DeviationScan`, or None where the engine fails at the point
        itself (certify it alone then). A profile the engine leaves unsolved is solved by Newton
        on the game after ``activate()`` has put the game back at this point."""
        pt = self.pt
        if self.pending_starts is not None:  # (c) not settled by the caller: alone
            activate()
            request, solve_many = self.pending_starts
            self.settle_uniqueness(solve_many([request])[0])
        V0, ok0 = yield [pt.x_star]
        if not bool(np.asarray(ok0)[0]):
            return None
        pt.base = base = np.asarray(V0, dtype=float)[0]
        scan = batched_deviation_steps(pt.game.leaders, pt.x_star, self.lines, pt.options)
        active = False
        try:
            items = next(scan)
            while True:
                V, ok = yield [p for _, p in items]
                gains: list[float | None] = []
                for (i, p), v, solved in zip(items, np.asarray(V, dtype=float), np.asarray(ok)):
                    if solved:
                        gains.append(float(v[i] - base[i]))
                        continue
                    if not active:
                        activate()
                        active = True
                    pt.restart()
                    try:
                        gains.append(pt.gain_at(i, p))
                    except Inadmissible:
                        gains.append(None)
                items = scan.send(gains)
        except StopIteration as stop:
            gains_, bests, evals, failed = stop.value
        t0 = time.perf_counter() - self.seconds
        return DeviationScan(self.residual, gains_, bests, evals, failed, self.starts, self.spread,
                             [float(b) for b in base], pt.x_star, t0)


def lockstep_scan(game: Any, options: Any, replies: list, tick: Callable[[], None]) -> LockstepScan | None:
    """:func:`certify_newton` up to its deviation scan (:class:`LockstepScan`), for a game with a
    batch engine whose followers are convex for all the others' decisions and whose leaders
    have no constraints of their own; None otherwise (certify the point alone). The game is
    left as it was. With the deferred form of the game's ``batch_starts`` (c) is drawn and left
    waiting (:class:`LockstepScan`)."""
    if getattr(game, "batch_response", None) is None or not options.batched or game.response is None:
        return None
    if any(ld.constraints is not None for ld in game.leaders):
        return None
    if options.best_reply and not all(convex_everywhere(game)):
        return None
    t0 = time.perf_counter()
    rng, x_star, snap0, p, residual, y_star, r_star = _at_point(game, options)
    if not r_star.ok:
        return None
    star = {"z": r_star.z, "y": y_star, "lu": r_star.lu}
    pt = _NewtonPoint(game, options, x_star, snap0, p, r_star.z, y_star, star, base=np.zeros(len(x_star)),
                      fallbacks=options.fallbacks, hull=None, optimistic=False, warm=dict(star))
    lines = deviation_lines(game.leaders, x_star, rng, options)
    for _ in game.leaders:
        tick()
    request = game.draw_batch_starts(x_star, rng, options.starts)
    if request is not None:  # (c) deferred (LockstepScan)
        game.restore(snap0)
        return LockstepScan(pt, lines, residual, None, None, time.perf_counter() - t0, rng,
                            (request, game.batch_starts.solve_many))
    starts, spread = _uniqueness(pt, rng, tick)
    game.restore(snap0)
    return LockstepScan(pt, lines, residual, starts, spread, time.perf_counter() - t0)
