"""The leaders' deviation scan of the certificate (docs/model.md section 5 (b)), shared by its
two engines (:mod:`epec.scan_newton`, :mod:`epec.scan_ipopt`): every leader's deviation lines
(a grid over its decision range, random directions when it has several variables), each searched
by a coroutine (:func:`_line_steps`: the grid, then a bounded golden-section refinement) that
one driver evaluates point by point (:func:`deviation_gains`) and another in lockstep with every
other line (:func:`batched_deviation_gains`); and :class:`DeviationScan`, what an engine
measured, from which :func:`epec.certificate.certify_game` draws the verdict."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np

from .kkt import KKTResidual

__all__ = ["ADMISSIBLE_TOL", "DeviationScan", "Inadmissible", "batched_deviation_gains", "batched_deviation_steps",
           "deviation_gains", "deviation_lines", "golden_max"]


@dataclass(frozen=True)
class DeviationScan:
    """What a certificate engine measured at the point, before the verdict
    (:func:`epec.certificate.certify_game`).

    Attributes
    ----------
    residual : KKTResidual
        (a) the followers' KKT residual at the point.
    gains, bests, evals, failed : list
        (b) per leader: its largest deviation gain, the decision reaching it, the evaluations
        and the failed ones (:func:`deviation_gains`).
    starts : int
        (c) random follower starts that reached an equilibrium.
    spread : float
        (c) the largest distance of their equilibria from the point's.
    utilities : list of float
        Each leader's utility at the point (the baseline of its gains).
    x_star : list of ndarray
        The leaders' decisions at the point.
    t0 : float
        ``time.perf_counter()`` when the engine started.
    exact_replies : tuple of float or None
        (c) decided exactly instead: the one follower's best replies, all of them
        (:func:`epec.optimistic.exact_best_replies`); None where the starts decided.
    """

    residual: KKTResidual
    gains: list
    bests: list
    evals: list
    failed: list
    starts: int
    spread: float
    utilities: list
    x_star: list
    t0: float
    exact_replies: tuple | None = None


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
    points one after another; :func:`batched_deviation_gains` those of every line at once. The
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


def golden_max(f: Any, a: float, b: float, evals: int) -> tuple[float, float]:
    """:func:`_golden_steps` with ``f`` evaluated one point after another: the best ``(t, f(t))``."""
    return _drive(_golden_steps(a, b, evals), f, lambda: None)


def deviation_gains(leaders: list, x_star: list, rng: np.random.Generator, options: Any,
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
                except Inadmissible:
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


def batched_deviation_gains(leaders: list, x_star: list, rng: np.random.Generator, options: Any,
                             gains_at: Callable[[list[tuple[int, list]]], list[float | None]],
                             tick: Callable[[], None]) -> tuple[list, list, list, list]:
    """:func:`deviation_gains` with the points of every leader's every line evaluated together:
    the lines' searches (:func:`_line_steps`) advance in lockstep, and each round's points go to
    ``gains_at([(i, point), ...])`` at once (a gain, -inf where the followers have no response,
    None for a deviation that breaks a coupling constraint). The lines, their random directions
    and each line's answer are those of :func:`deviation_gains` (a line's search depends only
    on its values), so the verdict is the same when the values are. Returns the same tuple."""
    steps = batched_deviation_steps(leaders, x_star, deviation_lines(leaders, x_star, rng, options), options)
    try:
        items = next(steps)
        while True:
            items = steps.send(gains_at(items))
    except StopIteration as stop:
        result = stop.value
    for _ in leaders:
        tick()
    return result


def deviation_lines(leaders: list, x_star: list, rng: np.random.Generator, options: Any) -> list[tuple]:
    """Every leader's deviation lines at ``x_star`` (:func:`_segments`; the random directions
    drawn from ``rng`` here): ``(leader, direction, lower, upper, grid)`` each."""
    lines = []
    for i, ld in enumerate(leaders):
        lo, hi = _box(ld.lower, ld.upper, x_star[i])
        keep = ld.constraints.equality_rows(x_star[i]) if ld.constraints is not None else None
        for u, ts in _segments(x_star[i], lo, hi, rng, options, keep) if np.any(hi > lo) else ():
            lines.append((i, u, lo, hi, ts))
    return lines


def batched_deviation_steps(leaders: list, x_star: list, lines: list[tuple], options: Any
                            ) -> Generator[list[tuple[int, list]], list[float | None], tuple[list, list, list, list]]:
    """The lockstep search of :func:`batched_deviation_gains` over ``lines``
    (:func:`deviation_lines`) as a coroutine: it yields each round's ``[(leader, point), ...]``
    and is sent their gains (a caller may evaluate the rounds of several scans together); it
    returns ``(gains, best decisions, evaluations per leader, failed evaluations per leader)``."""
    searches = [(i, u, lo, hi, _line_steps(ts, options)) for i, u, lo, hi, ts in lines]
    evals, failed = [0] * len(leaders), [0] * len(leaders)
    asked = {k: next(line[4])[1] for k, line in enumerate(searches)}
    answers: dict[int, tuple[float, float]] = {}
    while asked:
        values = {k: [-math.inf] * len(ts) for k, ts in asked.items()}
        items, where = [], []
        for k, ts in asked.items():
            i, u, lo, hi, _ = searches[k]
            for j, t in enumerate(ts):
                pt = [a.copy() for a in x_star]
                pt[i] = np.clip(x_star[i] + t * u, lo, hi)
                if leaders[i].admissible(pt[i]):  # else no deviation it may make (as sequentially)
                    items.append((i, pt))
                    where.append((k, j))
        gains = (yield items) if items else []
        for (i, _), (k, j), gain in zip(items, where, gains):
            if gain is None:
                continue
            evals[i] += 1
            if not math.isfinite(gain):
                failed[i] += 1
            else:
                values[k][j] = gain
        for k in list(asked):
            try:
                asked[k] = searches[k][4].send(values[k])[1]
            except StopIteration as stop:
                answers[k] = stop.value
                del asked[k]
    gains_out, bests = [0.0] * len(leaders), [x.copy() for x in x_star]
    for k, (i, u, lo, hi, _) in enumerate(searches):  # in line order, as :func:`deviation_gains` keeps its best
        t_best, gain = answers[k]
        if gain > gains_out[i]:
            gains_out[i], bests[i] = gain, np.clip(x_star[i] + t_best * u, lo, hi)
    return gains_out, [tuple(float(t) for t in b) for b in bests], evals, failed


class Inadmissible(Exception):
    """A deviation whose followers' response breaks a coupling constraint ``G(x', y(x')) <= 0``:
    no deviation the leader may make (neither a gain nor a failed evaluation)."""


#: tolerance (times ``max(1, |bound|)``) of the constraints at a deviation of the scan
ADMISSIBLE_TOL = 1e-9
