"""Certificate of a bilevel / EPEC point (docs/model.md section 5).

(a) the followers' KKT residual, evaluated from the model (Pyomo expressions, or their compiled
functions on the Newton path), not from a solver's report;
(b) for every leader, the largest utility gain of a unilateral deviation, over a grid of its
decision range (a line search along random directions when it has several variables) refined
by a bounded golden-section search, each point evaluated at the followers' exact equilibrium
(warm-started along the grid; or, with a batch engine, every leader's line searched in lockstep and
each round of points solved at once, :func:`_batched_deviation_gains`); (c) the followers'
equilibrium from several random starts;
(d) every leader's own constraints hold at the point (:mod:`epec.constraints`), and the scan of
(b) skips the deviations that break them (a leader may not deviate outside its own constraints);
a leader with general constraints is also checked by its constrained step from the point and
from its best grid deviation (on the Newton path).
(e) every follower's best-response gain at the point, proven or searched
(:mod:`epec.best_reply`): a KKT point of a nonconvex follower need not be its best reply.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator, Sequence

import numpy as np

from pyomo.core.base.block import BlockData

from .best_reply import (FollowerReply, convex_everywhere, follower_replies, follower_utility, is_convex_method,
                         optimistic_reply, univariate_best)
from .game import leaders_game
from .kkt import KKTResidual
from .leader_steps import implicit_response
from .options import CertificateOptions
from .response import ResponseOptions

__all__ = ["Certificate", "certify", "certify_game"]


@dataclass(frozen=True)
class Certificate:
    """Numbers that certify (or refute) an equilibrium, and the verdict.

    Attributes
    ----------
    kkt_residual : float
        Max of the followers' stationarity, feasibility and complementarity residuals.
    residual : KKTResidual
        The three parts of it.
    max_deviation_gain : float
        ``max_i max_{x_i'} V_i(x_i', x_-i, y(x')) - V_i(x, y(x))`` >= 0 over the evaluated points.
    deviation_gains : tuple of float
        The same per leader.
    best_deviations : tuple of tuple of float
        Each leader's best evaluated decision.
    evaluations : int
        Follower equilibria solved for the deviation check.
    failed_evaluations : int
        Of those, solves that found no follower response or a non-finite utility (skipped in the
        maximum; see ``failed_by_leader``).
    follower_unique : bool
        Every random start that reached a follower equilibrium reached the point's (spread <=
        unique_tol), and at least one did.
    follower_spread : float
        Max abs difference of follower decisions between a random start and the point.
    starts : int
        Random starts that solved.
    seconds : float
    utilities : tuple of float
        Each leader's utility at the point (the baseline of its gains).
    failed_by_leader : tuple of int
        Failed evaluations per leader.
    holds : bool
        The point is certified: every leader's gain within
        :meth:`CertificateOptions.gain_tolerance` of its utility, the KKT residual within
        ``kkt_tol``, every leader's own constraints kept within ``kkt_tol max(1, |bound|)``, the
        followers unique, at most ``max_failed`` of each leader's evaluations failed, and (with
        ``best_reply``) every follower's best-response gain within
        :meth:`CertificateOptions.reply_tolerance` of its utility.
    reasons : tuple of str
        Why it does not hold (empty when it does), one line per failed condition; broken leader
        constraints first (a gain next to one is its symptom).
    profitable : tuple of int
        The leaders whose gain is beyond the tolerance.
    replies : tuple of FollowerReply
        (d) every follower's best-response gain, its best reply found and the method (empty
        with ``best_reply=False``).
    better_replies : tuple of int
        The followers (indices into ``replies``) whose gain is beyond
        :meth:`CertificateOptions.reply_tolerance`: they do better elsewhere.
    cpu_seconds : float
        This process's CPU time for the certificate (``time.process_time``): on a shared machine
        it varies less than ``seconds``, the wall clock.
    """

    kkt_residual: float
    residual: KKTResidual
    max_deviation_gain: float
    deviation_gains: tuple[float, ...]
    best_deviations: tuple[tuple[float, ...], ...]
    evaluations: int
    failed_evaluations: int
    follower_unique: bool
    follower_spread: float
    starts: int
    seconds: float
    utilities: tuple[float, ...] = ()
    failed_by_leader: tuple[int, ...] = ()
    holds: bool = False
    reasons: tuple[str, ...] = ()
    profitable: tuple[int, ...] = ()
    replies: tuple[FollowerReply, ...] = ()
    better_replies: tuple[int, ...] = ()
    cpu_seconds: float = 0.0

    @property
    def follower_gains(self) -> tuple[float, ...]:
        """Each follower's best-response gain (``replies``)."""
        return tuple(r.gain for r in self.replies)

    @property
    def relative_gains(self) -> tuple[float, ...]:
        """Each leader's gain over ``max(1, |V_i|)``."""
        return tuple(g / max(1.0, abs(v)) for g, v in zip(self.deviation_gains, self.utilities))


#: rounds of (global reply, followers' equilibrium from it) per deviation of a game with
#: followers not proven convex
_GLOBAL_ROUNDS = 3
#: random starts tried by Newton for one uniqueness start before Ipopt takes the last one
_NEWTON_DRAWS = 10
#: Newton draws of one uniqueness start before the caller's random start is tried (cheap draws
#: first: on the presets the first converges)
_HINT_AFTER = 2


def _box(lo: np.ndarray, hi: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decision range; an unbounded side becomes ``x -+ max(1, |x|)``."""
    width = np.maximum(1.0, np.abs(x))
    return np.where(np.isfinite(lo), lo, x - width), np.where(np.isfinite(hi), hi, x + width)


def _segments(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator, options: Any,
              keep: np.ndarray | None = None):
    """The deviation lines of one leader at ``x`` in its box ``[lo, hi]``: ``(u, ts)`` with the
    grid ``x + t u``, ``t in ts``, spanning the box. One decision: the whole range; several:
    random unit directions, projected on the null space of ``keep`` (the rows of the leader's
    linear equality constraints, so that every line keeps them)."""
    if x.size == 1:
        directions = [np.ones(1)]
    else:
        raw = rng.normal(size=(options.directions, x.size))
        if keep is not None and keep.size:
            # an orthonormal basis of the null space of the equality rows, from the SVD
            _, sv, vt = np.linalg.svd(keep)
            rank = int(np.sum(sv > 1e-12 * max(1.0, float(sv.max(initial=0.0)))))
            null = vt[rank:]
            raw = raw @ null.T @ null
        directions = [u / np.linalg.norm(u) for u in raw if np.linalg.norm(u) > 1e-12]
    for u in directions:
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = np.where(u != 0, (lo - x) / u, -np.inf)
            tb = np.where(u != 0, (hi - x) / u, np.inf)
        yield u, np.linspace(float(np.max(np.minimum(ta, tb))), float(np.min(np.maximum(ta, tb))), options.grid)


#: a coroutine of the deviation search: yields ``(restart, points)``, is sent their values
_Steps = Generator[tuple[bool, list[float]], list[float], tuple[float, float]]


def _line_steps(ts: np.ndarray, options: Any, near: bool = False) -> _Steps:
    """The deviation search along one line as a coroutine: it yields ``(restart, [t, ...])``, the
    points it wants evaluated next (``restart``: put the warm start back at the point first), and
    is sent their values (a deviation gain, -inf where the followers have no response); it returns
    ``(t, gain)``. The grid ``ts`` is walked outwards from ``t = 0`` in both directions (so that
    each sequential solve starts next to the last), then refined by a golden-section search
    between the best point's neighbours (:func:`_golden_steps`). :func:`_drive` evaluates the
    points one after another; :func:`_batched_deviation_gains` those of every line at once. The
    answer depends only on the values, so both give the same."""
    values: dict[float, float] = {}
    # next to the point, +-1e-6 and +-1e-4 of the line's span: a point just off a discontinuity
    # of the followers' reply (x = 1/4 + 5e-5 in reproducer 3, the follower's global reply
    # jumping at 1/4) gains by a step no grid or golden section sees
    span = float(ts[-1] - ts[0]) if len(ts) else 0.0
    # (with ``near``: followers not proven convex, whose replies jump; a convex follower's
    # reply is continuous, and a gain next to the point is the leader step's to find)
    steps = [s * h * span for h in (1e-6, 1e-4) for s in (1.0, -1.0)] if near and span > 0 else []
    ts_all = np.unique(np.concatenate([np.asarray(ts, dtype=float),
                                       [t for t in steps if ts[0] <= t <= ts[-1]]]))
    for part in ([float(t) for t in ts_all if t >= 0], [float(t) for t in ts_all[::-1] if t < 0]):
        got = yield True, part
        values.update(zip(part, got))
    t_best = max(values, key=values.get)
    if options.refine and len(ts) > 2:
        k = int(np.argmin(np.abs(ts - t_best)))
        a, b = float(ts[max(k - 1, 0)]), float(ts[min(k + 1, len(ts) - 1)])
        t, g = yield from _golden_steps(a, b, options.refine_iter)
        if g > values[t_best]:
            values[t] = g
            t_best = t
    return t_best, values[t_best]


def _drive(steps: Generator, evaluate: Callable[[float], float], restart: Callable[[], Any]) -> Any:
    """Run a coroutine of :func:`_line_steps` / :func:`_golden_steps` with ``evaluate(t)`` called
    for one point after another (``restart()`` where it asks); its return value."""
    try:
        again, ts = next(steps)
        while True:
            if again:
                restart()
            again, ts = steps.send([evaluate(t) for t in ts])
    except StopIteration as stop:
        return stop.value


def _line_gain(evaluate: Any, ts: np.ndarray, restart: Any, options: Any, near: bool = False) -> tuple[float, float]:
    """Largest ``evaluate(t)`` over the grid ``ts`` and its refinement (:func:`_line_steps`),
    evaluated one point after another. Returns ``(t, gain)``."""
    return _drive(_line_steps(ts, options, near), evaluate, restart)


#: the golden ratio's conjugate, (sqrt(5) - 1) / 2
_INVPHI = (math.sqrt(5.0) - 1.0) / 2.0


def _golden_steps(a: float, b: float, evals: int) -> _Steps:
    """Golden-section search for the largest ``f`` on ``[a, b]`` with ``evals`` evaluations
    (Kiefer 1953), as a coroutine like :func:`_line_steps` (a restart before its first pair). It
    only compares values, so a failed evaluation (``-inf``) is simply the worst and no arithmetic
    ever meets an infinity or a NaN (Brent's parabolic steps, as in scipy's ``fminbound``,
    subtract function values and did: "invalid value encountered"). Returns the best
    ``(t, f(t))`` evaluated."""
    c, d = b - _INVPHI * (b - a), a + _INVPHI * (b - a)
    fc, fd = yield True, [c, d]
    best = max(((c, fc), (d, fd)), key=lambda p: p[1])
    for _ in range(evals - 2):
        if fc >= fd:  # the maximum is in [a, d]
            b, d, fd = d, c, fc
            c = b - _INVPHI * (b - a)
            (fc,) = yield False, [c]
            new = (c, fc)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + _INVPHI * (b - a)
            (fd,) = yield False, [d]
            new = (d, fd)
        if new[1] > best[1]:
            best = new
    return best


def _golden_max(f: Any, a: float, b: float, evals: int) -> tuple[float, float]:
    """:func:`_golden_steps` with ``f`` evaluated one point after another: the best ``(t, f(t))``."""
    return _drive(_golden_steps(a, b, evals), f, lambda: None)


def _deviation_gains(leaders: list, x_star: list, rng: np.random.Generator, options: Any,
                     gain_at: Callable[[int, list], float], restart: Callable[[], Any],
                     tick: Callable[[], None], near: bool = False) -> tuple[list, list, list, list]:
    """(b) for every leader ``i``: the largest ``gain_at(i, point)`` (its utility gain at the
    followers' response, -inf where they have none) over its deviation lines (:func:`_segments`,
    :func:`_line_gain`; ``restart()`` puts the warm start back at the point), others at ``x*``.
    A non-finite gain counts as a failed evaluation. Returns ``(gains, best decisions,
    evaluations per leader, failed evaluations per leader)``."""
    gains, bests, evals, failed = [], [], [], []
    for i, ld in enumerate(leaders):
        lo, hi = _box(ld.lower, ld.upper, x_star[i])
        best_gain, best_x = 0.0, x_star[i].copy()
        count = {"evals": 0, "failed": 0}
        keep = ld.constraints.equality_rows(x_star[i]) if ld.constraints is not None else None
        # a leader whose box is a single point (a reward cap of 0) has no deviation to check
        for u, ts in _segments(x_star[i], lo, hi, rng, options, keep) if np.any(hi > lo) else ():

            def evaluate(t: float) -> float:
                pt = [a.copy() for a in x_star]
                pt[i] = np.clip(x_star[i] + t * u, lo, hi)
                if not ld.admissible(pt[i]):
                    # outside the leader's own constraints: no deviation it may make (neither a
                    # gain nor a failed evaluation)
                    return -math.inf
                try:
                    gain = gain_at(i, pt)
                except _Inadmissible:
                    return -math.inf
                count["evals"] += 1
                if not math.isfinite(gain):
                    count["failed"] += 1
                    return -math.inf
                return gain

            t_best, gain = _line_gain(evaluate, ts, restart, options, near)
            if gain > best_gain:
                best_gain, best_x = gain, np.clip(x_star[i] + t_best * u, lo, hi)
        gains.append(best_gain)
        bests.append(tuple(float(t) for t in best_x))
        evals.append(count["evals"])
        failed.append(count["failed"])
        tick()
        restart()
    return gains, bests, evals, failed


def _batched_deviation_gains(leaders: list, x_star: list, rng: np.random.Generator, options: Any,
                             gains_at: Callable[[list[tuple[int, list]]], list[float | None]],
                             tick: Callable[[], None]) -> tuple[list, list, list, list]:
    """:func:`_deviation_gains` with the points of every leader's every line evaluated together:
    the lines' searches (:func:`_line_steps`) advance in lockstep, and each round's points go to
    ``gains_at([(i, point), ...])`` at once (a gain, -inf where the followers have no response,
    None for a deviation that breaks a coupling constraint). The lines, their random directions
    and each line's answer are those of :func:`_deviation_gains` (a line's search depends only
    on its values), so the verdict is the same when the values are. Returns the same tuple."""
    lines = []  # (leader, direction, box, search)
    for i, ld in enumerate(leaders):
        lo, hi = _box(ld.lower, ld.upper, x_star[i])
        keep = ld.constraints.equality_rows(x_star[i]) if ld.constraints is not None else None
        for u, ts in _segments(x_star[i], lo, hi, rng, options, keep) if np.any(hi > lo) else ():
            lines.append((i, u, lo, hi, _line_steps(ts, options)))
    evals, failed = [0] * len(leaders), [0] * len(leaders)
    asked = {k: next(line[4])[1] for k, line in enumerate(lines)}
    answers: dict[int, tuple[float, float]] = {}
    while asked:
        values = {k: [-math.inf] * len(ts) for k, ts in asked.items()}
        items, where = [], []
        for k, ts in asked.items():
            i, u, lo, hi, _ = lines[k]
            for j, t in enumerate(ts):
                pt = [a.copy() for a in x_star]
                pt[i] = np.clip(x_star[i] + t * u, lo, hi)
                if leaders[i].admissible(pt[i]):  # else no deviation it may make (as sequentially)
                    items.append((i, pt))
                    where.append((k, j))
        for (i, _), (k, j), gain in zip(items, where, gains_at(items) if items else []):
            if gain is None:
                continue
            evals[i] += 1
            if not math.isfinite(gain):
                failed[i] += 1
            else:
                values[k][j] = gain
        for k in list(asked):
            try:
                asked[k] = lines[k][4].send(values[k])[1]
            except StopIteration as stop:
                answers[k] = stop.value
                del asked[k]
    gains, bests = [0.0] * len(leaders), [x.copy() for x in x_star]
    for k, (i, u, lo, hi, _) in enumerate(lines):  # in line order, as :func:`_deviation_gains` keeps its best
        t_best, gain = answers[k]
        if gain > gains[i]:
            gains[i], bests[i] = gain, np.clip(x_star[i] + t_best * u, lo, hi)
    for _ in leaders:
        tick()
    return gains, [tuple(float(t) for t in b) for b in bests], evals, failed


def _certificate(residual: KKTResidual, gains: list, bests: list, evals: list, failed: list, starts: int,
                 spread: float, utilities: list, names: list, options: Any, t0: float,
                 broken: Sequence[str] = (),
                 replies: Sequence[FollowerReply] = (), x_star: Sequence[np.ndarray] = ()) -> Certificate:
    """The :class:`Certificate` of (a)-(e) and its verdict. The followers are called unique when
    no random start that reached an equilibrium ended further than ``unique_tol`` from the point,
    and at least one did (unless ``options.starts`` is 0): a start from which the solver found
    no equilibrium is no evidence of another one (it is counted in ``starts``, which says how
    many solved). ``broken``: the leaders' own constraints the point breaks, one line each.
    (e): a follower whose best-response gain is beyond
    :meth:`CertificateOptions.reply_tolerance` has a better reply.

    The reasons name causes before symptoms: a broken constraint, a follower's better reply, then the followers'
    non-unique reply, then the leaders' gains. A leader that "gains" at its own decision
    (``x_star``) gains only because the followers' reply there moved: that is the followers'
    non-unique reply (an indifferent follower), and it is named so."""
    unique = (options.starts == 0 or starts >= 1) and spread <= options.unique_tol
    better = tuple(j for j, r in enumerate(replies) if not r.gain <= options.reply_tolerance(r.utility))
    profitable = tuple(i for i, (g, v) in enumerate(zip(gains, utilities)) if g > options.gain_tolerance(v))
    reasons = list(broken) + [f"follower {replies[j].name} is not at its best reply: it gains {replies[j].gain:.6g} (utility "
               f"{replies[j].utility:.6g}) by replying {format_decision(replies[j].reply)} ({replies[j].method})"
               for j in better]
    at_point = {i for i in profitable if i < len(x_star)
                and np.allclose(np.asarray(bests[i], dtype=float), x_star[i], rtol=1e-9, atol=1e-12)}
    if not unique:
        reasons.append(f"followers' reply not unique: {starts}/{options.starts} random starts reached an "
                       f"equilibrium, spread {spread:.3g} (unique_tol {options.unique_tol:g})")
    for i in sorted(at_point):
        reasons.append(f"followers' reply not unique at leader {names[i]}'s decision {format_decision(bests[i])}: "
                       f"another reply there changes its utility by {gains[i]:.6g} (an indifferent follower)")
    reasons += [f"leader {names[i]} gains {gains[i]:.6g} (utility {utilities[i]:.6g}) by deviating to "
                f"{format_decision(bests[i])}" for i in profitable if i not in at_point]
    profitable = tuple(i for i in profitable if i not in at_point)  # no move mends a non-unique reply
    if not residual.max <= options.kkt_tol:
        reasons.append(f"followers' KKT residual {residual.max:.3g} > kkt_tol {options.kkt_tol:g}")
    for i, (n_i, f_i) in enumerate(zip(evals, failed)):
        if f_i > options.max_failed * n_i:
            reasons.append(f"leader {names[i]}: {f_i} of {n_i} deviation evaluations found no follower response "
                           f"(max_failed {options.max_failed:g})")
    return Certificate(
        kkt_residual=residual.max, residual=residual,
        max_deviation_gain=max(gains, default=0.0), deviation_gains=tuple(gains),
        best_deviations=tuple(bests), evaluations=sum(evals), failed_evaluations=sum(failed),
        follower_unique=unique, follower_spread=spread, starts=starts, seconds=time.perf_counter() - t0,
        utilities=tuple(float(v) for v in utilities), failed_by_leader=tuple(failed), holds=not reasons,
        reasons=tuple(reasons), profitable=profitable, replies=tuple(replies), better_replies=better,
    )


def _broken(game: Any, x: list, options: Any, coupling: bool = True) -> list[str]:
    """The leaders' own constraints broken at decisions ``x`` (beyond ``kkt_tol``, scaled by
    ``max(1, |bound|)``), and with ``coupling`` the coupling constraints broken at the model's
    current point (:func:`epec.solve_bilevel`), one line each."""
    out = [r for ld, a in zip(game.leaders, x) for r in ld.broken(a, options.kkt_tol)]
    return out + game.coupling_broken(options.kkt_tol) if coupling else out


#: followers' decisions beyond which the optimistic reply is not searched at every deviation
_OPTIMISTIC_MAX = 20


def _optimistic_game(game: Any, options: Any) -> bool:
    """The deviation scan evaluates the optimistic reply (:func:`_optimistic_utility`): a game of
    one leader over one follower of at most ``_OPTIMISTIC_MAX`` decisions, with SCIP in use, a
    leader objective without follower multipliers, unless the follower's reply is unique everywhere (a strictly convex quadratic objective
    over its convex feasible set: :func:`epec.convexity.strictly_convex_quadratic`)."""
    from .convexity import strictly_convex_quadratic

    if not (options.best_reply and options.reply_scip and len(game.leaders) == 1 and len(game.kkts) == 1):
        return False
    from pyomo.core.expr.visitor import identify_variables

    from .multipliers import bound_multipliers

    # a leader objective with a follower's multiplier (epec.multiplier) is not evaluated away
    # from the followers' KKT point: the multiplier of another reply is not at hand (outrata34)
    placeholders = {id(p) for p, _ in bound_multipliers(game.work)}
    if placeholders and any(id(v) in placeholders for v in identify_variables(game.leaders[0].objective.expr)):
        return False
    k = game.kkts[0]
    xs = list(k.variables)
    return len(xs) <= _OPTIMISTIC_MAX and not strictly_convex_quadratic(k.objective, xs)


def _optimistic_utility(game: Any, i: int, options: Any, at_best: bool = False) -> tuple[float, bool]:
    """Leader ``i``'s utility at the follower's best reply that the leader prefers (the optimistic
    convention of bilevel programming, Dempe 2002, sec. 1.3, which the published bilevel answers
    assume: :func:`epec.best_reply.optimistic_reply`), evaluated on the model with the leader's
    decisions and the follower's current reply as they stand; the follower's values are
    restored. ``-inf`` where SCIP proves nothing or its reply is within ``unique_tol`` of the
    follower's (the same reply, as check (c) counts it). The reply is a global best reply within
    ``reply_tolerance`` (SCIP's), so it is evaluated as it is: a local solve from it may slide
    off it (Ipopt's interior point leaves a bound where the follower is indifferent).

    Returns ``(utility, exact)``: ``exact`` where the follower's best replies are all known
    (:func:`epec.best_reply.univariate_best`): the utility is then the leader's best over them,
    the follower's current reply counting only where it is one of them."""
    k = game.kkts[0]
    xs = list(k.variables)
    saved = [v.value for v in xs]
    exact = _exact_best_replies(game, options)
    if exact is not None:
        try:
            values = []
            for y in exact:
                xs[0].set_value(y, skip_validation=True)
                values.append(game.leaders[i].utility())
        finally:
            xs[0].set_value(saved[0], skip_validation=True)
        out = max(values)
        return (out if math.isfinite(out) else -math.inf), True
    y = optimistic_reply(k, game.leaders[i].objective, options, at_best)
    if y is None or all(abs(float(a) - float(b)) <= options.unique_tol * max(1.0, abs(float(b)))
                        for a, b in zip(y, saved)):
        # a reply within unique_tol (relative beyond 1) of the follower's is the same reply: the leader's utility is the one at the follower's reply
        return -math.inf, False
    try:
        for v, val in zip(xs, y):
            v.set_value(float(val), skip_validation=True)
        out = game.leaders[i].utility()
    finally:
        for v, val in zip(xs, saved):
            v.set_value(val, skip_validation=True)
    return (out if math.isfinite(out) else -math.inf), False


def _exact_best_replies(game: Any, options: Any, wide: bool = False) -> list[float] | None:
    """Every best reply of the game's one follower at the model's point, where the
    univariate-polynomial method applies (:func:`epec.best_reply.univariate_best`; ``wide``: every
    one within the reply tolerance, the point's own reply not added); else None."""
    if not (options.best_reply and options.reply_univariate and len(game.kkts) == 1):
        return None
    k = game.kkts[0]
    return univariate_best(k, options, None if wide else follower_utility(k.objective), wide=wide)


class _Inadmissible(Exception):
    """A deviation whose followers' response breaks a coupling constraint ``G(x', y(x')) <= 0``:
    no deviation the leader may make (neither a gain nor a failed evaluation)."""


#: tolerance (times ``max(1, |bound|)``) of the constraints at a deviation of the scan
_ADMISSIBLE_TOL = 1e-9


def format_decision(x: Any) -> str:
    """A decision for a message: ``1.234`` for one value, ``[1.234, 5.678]`` for several."""
    vals = [f"{float(t):.6g}" for t in x]
    return vals[0] if len(vals) == 1 else "[" + ", ".join(vals) + "]"


def _ticker(progress: Callable[[str, int, int], Any] | None, total: int) -> Callable[[], None]:
    """``tick()`` reports one more finished part of the certificate as
    ``progress("certificate", done, total)`` (a no-op without ``progress``)."""
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress("certificate", done[0], total)

    return tick


def certify_game(game: Any, options: Any, progress: Callable[[str, int, int], Any] | None = None) -> Certificate:
    """Certify a prepared :class:`epec.game.Game`'s current point (leaders' decisions and
    followers' equilibrium); the public entry is :func:`epec.certify`. ``progress("certificate",
    done, total)`` after each leader's deviation check and each random follower start.

    The model state is restored afterwards. See the module doc for (a), (b), (c). Every follower
    response is solved by Newton (:mod:`epec.response`) when the game has one, with Ipopt (the
    game's mode, iteration-capped) as the fallback; otherwise by Ipopt throughout.
    """
    import dataclasses

    c0 = time.process_time()
    tick = _ticker(progress, len(game.leaders) + options.starts)
    # (d) first, at the point as it stands in the model (the checks below move the followers)
    replies = follower_replies(game.kkts, options) if options.best_reply else []
    cert = None
    if game.response is not None and all(is_convex_method(r.method) for r in replies):
        cert = _certify_newton(game, options, tick, replies)  # None: convexity not proven where it went
    if cert is None:
        cert = _certify_ipopt(game, options, tick, replies)
    return dataclasses.replace(cert, cpu_seconds=time.process_time() - c0)


def _certify_newton(game: Any, options: Any, tick: Callable[[], None], replies: list) -> Certificate | None:
    """:func:`certify_game` with Newton responses: each grid point warm-started from its neighbour
    (first-order predictor, :meth:`FollowerResponse.solve_near`), then by continuation from the
    point, then Ipopt; a response counts only if its natural KKT
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
    r_star = resp.solve(z0, y_star, p, sensitivity=True)  # a failed warm solve retries cold itself
    if not r_star.ok:  # no Newton baseline: certify with Ipopt throughout
        return _certify_ipopt(game, options, tick, replies)
    z_star = r_star.z
    base = resp.utilities(z_star, y_star, p)
    fallbacks = [options.fallbacks]
    star = {"z": z_star, "y": y_star, "lu": r_star.lu}
    warm = dict(star)
    hull = _Hull(resp, z_star, y_star) if hull_needed else None
    optimistic = _optimistic_game(game, options) and getattr(game, "batch_response", None) is None

    def response_at(warm: dict, y: np.ndarray, pt: list) -> np.ndarray | None:
        """The followers' response at ``y``, from the grid neighbour ``warm`` (first-order
        predictor), else by continuation from the point (ending in a cold solve), else Ipopt;
        ``warm`` moves to the new point."""
        dF = None
        if warm["lu"] is not None:
            dF = resp.system.input_jacobian(warm["z"], warm["y"], p, resp.options.mu) @ (y - warm["y"])
        r = resp.follow(warm["z"], y, p, lu=warm["lu"], dF=dF, anchor=(z_star, y_star), sensitivity=True)
        hinted = None if r.ok else game.hinted_start(z_star, pt)
        if hinted is not None:  # the caller's start for the followers (see solve_epec)
            r = resp.solve(hinted, y, p, sensitivity=True, retry_cold=False)
        if r.ok:
            warm.update(z=r.z, y=y, lu=r.lu)
            return r.z
        if fallbacks[0] <= 0:
            return None
        fallbacks[0] -= 1
        game.restore(snap0)
        run = game.respond(pt, warm=True, capped=True)
        if not run.ok:
            return None
        z = resp.read()[0]
        if max(resp.system.natural_residual(z, y, p)) > resp.options.kkt_tol:
            return None
        warm.update(z=z, y=y, lu=None)
        return z

    def gain_at(i: int, pt: list) -> float:
        y = resp.inputs_at(y_star, pt)
        z = response_at(warm, y, pt)
        if z is None:
            return -math.inf
        if hull is not None:
            hull.add(z, y)
        if game.coupling:  # G(x', y(x')) <= 0, evaluated on the model at the response
            resp.load(z)
            game.fix_leaders(pt)
            if game.coupling_broken(_ADMISSIBLE_TOL):
                raise _Inadmissible
        utility = float(resp.utilities(z, y, p)[i])
        if optimistic:  # the leader's preferred best reply where the follower is indifferent
            resp.load(z)
            game.fix_leaders(pt)
            # (the Newton reply of a convex follower is its optimum to the smoothing's mu^2)
            utility = max(utility, _optimistic_utility(game, i, options, at_best=True)[0])
        return utility - float(base[i])

    batch = None if hull is not None else _batch_gains(game, options, x_star, gain_at, lambda: warm.update(star))
    if batch is not None:
        gains, bests, evals, failed = _batched_deviation_gains(game.leaders, x_star, rng, options, batch, tick)
    else:
        gains, bests, evals, failed = _deviation_gains(game.leaders, x_star, rng, options, gain_at,
                                                       lambda: warm.update(star), tick)
    for i, ld in enumerate(game.leaders):
        if ld.constraints is not None:
            _constrained_refinement(game, i, x_star, [x_star[i], np.asarray(bests[i], dtype=float)],
                                    lambda y, pt: response_at(dict(star), y, pt), y_star, p,
                                    float(base[i]), gains, bests, evals)
    if hull is not None and not hull.proven(game):
        game.restore(snap0)
        return None

    # (c) uniqueness: random follower starts, cold continuation in mu, leaders at x*. The
    # followers' own variables uniform in their box; the other unknowns (multipliers, lifted
    # aggregates) drawn around the point's magnitudes, ``[0, 2 s]`` when bounded below and
    # ``z* +- s`` otherwise, ``s = max(|z*_j|, 0.1 max |z*_mult|)``: at 100x5 Newton reached no
    # equilibrium from multipliers all 1 or all 10 (0/5 draws each), 4/5 from these.
    spread, starts = 0.0, 0
    P = resp.primal_index
    lb = np.array([-math.inf if v.lb is None else v.lb for v in resp.system.unknowns], dtype=float)
    ub = np.array([math.inf if v.ub is None else v.ub for v in resp.system.unknowns], dtype=float)
    other = np.ones(len(z_star), dtype=bool)
    other[P] = False

    # the draws follow the point's own magnitudes (a scenario whose utilities are 1e-2 has
    # multipliers of 1e-7; draws of order 1 put Newton's continuation far outside its basin)
    primal_scale = max(float(np.max(np.abs(z_star[P]), initial=0.0)), 1e-12)

    def random_start() -> np.ndarray:
        z = z_star.copy()
        lo = np.where(np.isfinite(lb[P]), lb[P], z[P] - primal_scale)
        hi = np.where(np.isfinite(ub[P]), np.minimum(ub[P], lo + 2.0 * primal_scale), lo + 2.0 * primal_scale)
        z[P] = rng.uniform(lo, hi)
        zo = z_star[other]
        scale = np.maximum(np.abs(zo), max(0.1 * float(np.max(np.abs(zo), initial=0.0)), 1e-12))
        z[other] = np.where(np.isfinite(lb[other]), np.maximum(lb[other], 0.0) + rng.uniform(0.0, 2.0, zo.size) * scale,
                            zo + rng.uniform(-1.0, 1.0, zo.size) * scale)
        return z

    for _ in range(options.starts):
        # Newton's basin from a far start is not global (about half of the uniform starts on the
        # default scenario): a few draws before Ipopt's homotopy, which costs ~30x more
        z_end = None
        for attempt in range(_NEWTON_DRAWS):
            if attempt == _HINT_AFTER:
                # the caller's random start (see solve_epec's follower_start), polished by Newton
                hinted = game.hinted_start(z_star, x_star, rng)
                r = resp.solve(hinted, y_star, p, retry_cold=False) if hinted is not None else None
                if r is not None and r.ok:
                    z_end = r.z
                    break
            z = random_start()
            r = resp.solve(z, y_star, p, cold=True)
            if r.ok:
                z_end = r.z
                break
        if z_end is None:
            resp.load(z)
            game.fix_leaders(x_star)
            run = game.respond(x_star, warm=False, capped=True)
            if run.ok:
                # Ipopt's relaxed complementarity leaves the point ~1e-4 off: Newton polishes it
                # (without that a start at the same equilibrium looked 2e-3 away), and a point it
                # cannot polish is not an equilibrium to compare
                r = resp.solve(resp.read()[0], y_star, p, retry_cold=False)
                z_end = r.z if r.ok else None
        if z_end is not None:
            starts += 1
            spread = max(spread, float(np.max(np.abs(z_end[P] - z_star[P]), initial=0.0)))
        tick()
    game.restore(snap0)
    return _certificate(residual, gains, bests, evals, failed, starts, spread, [float(b) for b in base],
                        [ld.name for ld in game.leaders], options, t0, _broken(game, x_star, options),
                        replies, x_star)


class _Hull:
    """Every response the Newton certificate evaluated (each unknown: followers' decisions,
    multipliers, lifted aggregates; and input: leaders' decisions), in the order evaluated, and
    whether the followers are proven convex at all of them (:func:`_certify_newton`)."""

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


def _batch_gains(game: Any, options: Any, x_star: list, gain_at: Callable[[int, list], float],
                 restart: Callable[[], Any]) -> Callable[[list[tuple[int, list]]], list[float | None]] | None:
    """``gains_at([(i, point), ...])`` for :func:`_batched_deviation_gains`: leader ``i``'s utility
    gain at each point, from the game's batch engine (``game.batch_response(points) ->
    (utilities (B, L), solved (B,))``, see :func:`epec.solve_epec`) against its own utilities at
    ``x*``; a point the engine does not solve is evaluated by ``gain_at(i, point)`` (the Newton
    response from the point, ``restart()`` first; None where it breaks a coupling constraint).
    None when there is no engine, ``options.batched`` is off, or the engine fails at ``x*``."""
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
            except _Inadmissible:
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


def _certify_ipopt(game: Any, options: Any, tick: Callable[[], None], replies: list) -> Certificate:
    """:func:`certify_game` with every follower response solved by Ipopt (the game's mode)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    x_star = [ld.values() for ld in game.leaders]
    residual = game.residual()
    game.respond(x_star, warm=True)  # the baseline at the followers' exact response
    snap0 = game.snapshot()
    base = [ld.utility() for ld in game.leaders]

    # followers not proven convex for all the others' decisions (convex_everywhere): every
    # deviation is evaluated at their global replies (a
    # local KKT reply there can hide the leader's gain: reproducer 3 of issue 15)
    searched = [k for k, r, ev in zip(game.kkts, replies, convex_everywhere(game)) if not ev]
    optimistic = _optimistic_game(game, options)

    def gain_at(i: int, pt: list) -> float:
        run = game.respond(pt, warm=True, capped=True)
        if run.ok and game.coupling_broken(_ADMISSIBLE_TOL):
            raise _Inadmissible
        settled = not searched
        for r_ in range(_GLOBAL_ROUNDS + 1 if searched and run.ok else 0):
            better = [r for r in follower_replies(searched, options, search=True)
                      if not r.gain <= options.reply_tolerance(r.utility)]
            if not better:
                settled = True
                break
            by_name = {r.name: r for r in better}
            for k in searched:
                if k.player.name in by_name:
                    for v, val in zip(k.variables, by_name[k.player.name].reply):
                        v.set_value(val, skip_validation=True)
            if r_ == _GLOBAL_ROUNDS:
                # the followers' solve kept sliding off the global replies (back to a local
                # one): the leader's utility is the one at the global replies themselves
                settled = True
                break
            run = game.respond(pt, warm=True, capped=True)
            if not run.ok:
                break
        if not run.ok:
            return -math.inf
        utility = game.leaders[i].utility()
        if optimistic:
            # one follower at its global reply: where it is indifferent, the optimistic
            # convention gives the leader its preferred best reply (reproducer 2 of issue 15:
            # at x = 0 the follower's replies -1 and 1 are equally good, and 1 is the leader's)
            u_opt, exact = _optimistic_utility(game, i, options, at_best=bool(searched) and settled)
            # all its best replies known: the leader's best over them, the follower's solved
            # reply not among them unless it is one (a local minimum of its utility, mb_1_1_05)
            utility = u_opt if exact and math.isfinite(u_opt) else max(utility, u_opt)
        return utility - base[i]

    if any(not r.gain <= options.reply_tolerance(r.utility) for r in replies):
        # a follower not at its best reply: the leader's decision is worth what it gets at the
        # followers' global replies, and its gains are measured from that (from the point's
        # local reply, every deviation looks worse and the scan points nowhere)
        for i in range(len(base)):
            try:
                g0 = gain_at(i, [a.copy() for a in x_star])
            except _Inadmissible:  # the global replies break a coupling constraint at x*
                g0 = -math.inf
            game.restore(snap0)
            if math.isfinite(g0):
                base[i] += g0
    elif optimistic:
        # the follower's best replies all known: the point is worth the leader's best over them,
        # as every deviation is (its solved reply, near a degenerate optimum, may sit a little off)
        for i in range(len(base)):
            u_opt, exact = _optimistic_utility(game, i, options)
            if exact and math.isfinite(u_opt):
                base[i] = u_opt
    gains, bests, evals, failed = _deviation_gains(game.leaders, x_star, rng, options, gain_at,
                                                   lambda: game.restore(snap0), tick, near=bool(searched))

    # (c) uniqueness: random follower starts, cold homotopy, leaders at x*; or, where all the
    # one follower's best replies are known, their spread (exact: a degenerate optimum such as
    # y**4 leaves a random start's KKT point ~(kkt_tol)**(1/3) off it, spread no evidence of two)
    spread, starts = 0.0, 0
    fv = game.follower_vars
    ref = np.array([v.value for v in fv], dtype=float)
    game.restore(snap0)
    exact = _exact_best_replies(game, options, wide=True)
    if exact is not None:
        spread, starts = float(max(exact) - min(exact)), options.starts
        for _ in range(options.starts):
            tick()
    for _ in range(options.starts if exact is None else 0):
        game.restore(snap0)
        for v in fv:
            lo = v.lb if v.lb is not None else (v.value or 0.0) - 1.0
            hi = v.ub if v.ub is not None else lo + 2.0 * max(1.0, abs(v.value or 0.0))
            v.set_value(float(rng.uniform(lo, hi)), skip_validation=True)
        for m in game.follower_mults:
            m.set_value(1.0 if m.lb is not None else 0.0, skip_validation=True)
        run = game.respond(x_star, warm=False, capped=True)
        if run.ok and searched and any(not r.gain <= options.reply_tolerance(r.utility)
                                       for r in follower_replies(searched, options, search=True)):
            # a KKT point where a follower not proven convex has a better reply is no
            # equilibrium (a local optimum, a saddle): no evidence of another best reply
            run = None
        if run is not None and run.ok:
            starts += 1
            spread = max(spread, float(np.max(np.abs(np.array([v.value for v in fv], dtype=float) - ref))))
        tick()
    game.restore(snap0)
    return _certificate(residual, gains, bests, evals, failed, starts, spread, base,
                        [ld.name for ld in game.leaders], options, t0, _broken(game, x_star, options),
                        replies, x_star)


def certify(
    model: BlockData,
    leaders: Sequence[Any],
    followers: Sequence[Any],
    *,
    certificate: CertificateOptions = CertificateOptions(),
    mode: Any = "scholtes",
    lift: bool = True,
    response: ResponseOptions = ResponseOptions(),
    solver: Any = None,
    options: Any = None,
    progress: Callable[[str, int, int], Any] | None = None,
    batch_response: Callable[[list], tuple[Any, Any]] | None = None,
) -> Any:
    """Certify the leaders' decisions as they stand in ``model``: is this an equilibrium?

    For decisions from anywhere (another solver, a learned pricing policy, a paper's table):
    the followers' equilibrium at those decisions is solved first (Newton on their smoothed KKT
    system from a cold start, the ``mode``'s Ipopt homotopy as the fallback), then the
    certificate of docs/model.md section 5 is computed there, as :func:`solve_epec` does at its own
    answer: the followers' KKT residual, every leader's largest unilateral deviation gain over
    a grid plus refinement (each point at the followers' exact response) and the followers'
    agreement from random starts. A positive ``max_deviation_gain`` measures how far from an
    equilibrium the decisions are; ``best_deviations`` says where each leader would rather be.
    ``model`` is not modified (the work happens on a clone).

    Parameters
    ----------
    model : BlockData
    leaders, followers : sequence of blocks
        As :func:`solve_epec`; the leaders' decision Vars hold the point to certify.
    certificate : CertificateOptions
    mode, lift, response, solver, options, progress, batch_response
        As :func:`solve_epec` (``progress`` sees the ``"certificate"`` stage only).

    Returns
    -------
    epec.Certificate

    Raises
    ------
    RuntimeError
        The followers have no equilibrium at the leaders' decisions (with the solver's status).
    """
    if not isinstance(certificate, CertificateOptions):
        raise ValueError(f"certificate: must be a CertificateOptions, got {type(certificate).__name__}")
    if not isinstance(response, ResponseOptions):
        raise ValueError(f"response: must be a ResponseOptions, got {type(response).__name__}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress: must be callable, got {progress!r}")
    if batch_response is not None and not callable(batch_response):
        raise ValueError(f"batch_response: must be callable, got {batch_response!r}")
    game = leaders_game(model, leaders, followers, mode, solver, options, lift, response)
    game.batch_response = batch_response
    x = [ld.values() for ld in game.leaders]
    # the decisions as given: the response below projects them on the (constraint-tightened)
    # boxes, so a broken constraint is seen here or never
    broken = _broken(game, x, certificate, coupling=False)
    run, _ = implicit_response(game, x, None, cold=True)  # Ipopt's homotopy without a Newton response
    if not run.ok:
        point = {ld.name: [float(t) for t in a] for ld, a in zip(game.leaders, x)}
        raise RuntimeError(f"certify: no follower equilibrium at the leaders' decisions {point} "
                           f"({run.status.name}: {run.message})")
    cert = certify_game(game, certificate, progress)
    if broken:
        import dataclasses

        extra = tuple(r for r in broken if r not in cert.reasons)
        cert = dataclasses.replace(cert, holds=False, reasons=extra + cert.reasons)
    return cert
