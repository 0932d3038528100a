"""The certificates of several points of one game certified together: a sweep's path, each point
a solve of the same prepared game (:class:`epec.Workspace`) at other numbers.

Each point is prepared where the game stands at it (:func:`prepare_point`: the followers'
replies (d), the residual (a), the uniqueness starts (c) and the deviation lines, as
:func:`epec.certificate.certify_game` makes them, :func:`epec.scan_newton.lockstep_scan`), and the
game's state is kept; where the game's ``batch_starts`` has its deferred form, (c)'s starts are
only drawn, and :func:`certify_prepared` solves those of all its points in one stacked call. It
then searches the deviation lines (b) of every point in lockstep, each round's profiles of all
points solved by the batch engine in one call
(``engine_many``, e.g. :func:`epec.scenario.batch_responses`, which stacks the markets of the
points' scenarios): the round count of one point's scan is paid once for all of them. A profile
the engine leaves is solved by Newton with the game put back at its point. The verdict is
:func:`epec.certificate.verdict`'s, the same as one point certified alone: the same lines, the
same random draws in the same order, the same values (the engine solves each market on its own,
to its KKT tolerance). A point the scan cannot take (no batch engine, followers not proven convex
everywhere, leaders with constraints, the engine failing at the point) is left None by
:func:`prepare_point`: certify it alone.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .best_reply import follower_replies, is_convex_method
from .certificate import Certificate, verdict
from .scan_newton import LockstepScan, lockstep_scan

__all__ = ["PreparedPoint", "prepare_point", "certify_prepared"]


@dataclass
class PreparedPoint:
    """One point ready for :func:`certify_prepared`.

    Attributes
    ----------
    game : epec.game.Game
        The prepared game (shared by the points).
    state : tuple
        The game at the point (:meth:`epec.game.Game.state`).
    options : CertificateOptions
    replies : list
        (d) the followers' best-reply checks at the point.
    scan : LockstepScan
    respond : callable
        The point's batch engine (``game.batch_response`` when prepared).
    cpu_seconds : float
        CPU seconds spent on the point so far.
    follower_start, batch_starts : callable or None
        The point's ``game.follower_start`` and ``game.batch_starts`` when prepared.
    """

    game: Any
    state: tuple
    options: Any
    replies: list
    scan: LockstepScan
    respond: Callable
    cpu_seconds: float
    follower_start: Any = None
    batch_starts: Any = None

    def activate(self) -> None:
        """Put the game back at this point, with the point's own hooks (a scenario's numbers)."""
        self.game.set_state(self.state)
        self.game.batch_response, self.game.follower_start = self.respond, self.follower_start
        self.game.batch_starts = self.batch_starts


def prepare_point(game: Any, options: Any) -> PreparedPoint | None:
    """The certificate of the game's current point up to its deviation scan; None where the point
    must be certified alone (:func:`epec.certificate.certify_game`). The game is left as it was."""
    c0 = time.process_time()
    replies = follower_replies(game.kkts, options, utilities=game.follower_utilities()) if options.best_reply else []
    if game.response is None or not all(is_convex_method(r.method) for r in replies):
        return None
    scan = lockstep_scan(game, options, replies, lambda: None)
    if scan is None:
        return None
    return PreparedPoint(game, game.state(), options, replies, scan, game.batch_response, time.process_time() - c0,
                         game.follower_start, game.batch_starts)


def _separately(requests: Sequence[tuple[Callable, list]]) -> list[tuple[Any, Any]]:
    """Each request ``(engine, profiles)`` evaluated by its own engine."""
    return [engine(points) for engine, points in requests]


def _settle_uniqueness(points: Sequence[PreparedPoint]) -> None:
    """(c) of the points whose uniqueness starts wait (:class:`epec.scan_newton.LockstepScan`'s
    ``pending_starts``): the requests of all of them solved by one call of their hooks'
    ``solve_many`` (one per solver: :func:`epec.scenario.solve_start_requests` stacks the markets
    of every point), then each point, put back at its state with its hooks
    (:meth:`PreparedPoint.activate`), polishes its hints by Newton and falls back as one point
    certified alone does."""
    by_solver: dict[Any, list[PreparedPoint]] = {}
    for pt in points:
        if pt.scan.pending_starts is not None:
            by_solver.setdefault(pt.scan.pending_starts[1], []).append(pt)
    for solve_many, waiting in by_solver.items():
        hints = solve_many([pt.scan.pending_starts[0] for pt in waiting])
        for pt, got in zip(waiting, hints):
            pt.activate()
            pt.scan.settle_uniqueness(got)


def certify_prepared(points: Sequence[PreparedPoint],
                     engine_many: Callable[[list[tuple[Callable, list]]], list[tuple[Any, Any]]] | None = None
                     ) -> list[Certificate | None]:
    """The certificates of prepared points, their deviation scans searched in lockstep (module doc).

    ``engine_many([(engine, profiles), ...])`` returns each request's ``(utilities, solved)`` as
    its ``engine(profiles)`` would (default: one call per request). A point whose engine fails at
    the point itself gets None (certify it alone). Each certificate's ``seconds`` and
    ``cpu_seconds`` hold its own preparation and verdict and an even share of the lockstep scan
    (and of the uniqueness starts solved together).

    The uniqueness starts of the points prepared with the deferred form of their game's
    ``batch_starts`` (:meth:`epec.game.Game.draw_batch_starts`) are solved first, all points' in
    one stacked call, each point's hints then polished at the point (:func:`_settle_uniqueness`):
    the same draws, polish and fallbacks as the point certified alone.
    """
    engine_many = engine_many or _separately
    t0, c0 = time.perf_counter(), time.process_time()
    _settle_uniqueness(points)
    gens = {k: pt.scan.steps(pt.activate) for k, pt in enumerate(points)}
    pending = {k: next(g) for k, g in gens.items()}
    scans: dict[int, Any] = {}
    while pending:
        keys = list(pending)
        answers = engine_many([(points[k].respond, pending[k]) for k in keys])
        for k, answer in zip(keys, answers):
            try:
                pending[k] = gens[k].send(answer)
            except StopIteration as stop:
                scans[k] = stop.value
                del pending[k]
    share = (time.perf_counter() - t0) / max(1, len(points))
    cpu_share = (time.process_time() - c0) / max(1, len(points))
    out: list[Certificate | None] = []
    for k, pt in enumerate(points):
        if scans.get(k) is None:
            out.append(None)
            continue
        t1, c1 = time.perf_counter(), time.process_time()
        pt.activate()
        cert = verdict(scans[k], pt.game, pt.options, pt.replies)
        out.append(dataclasses.replace(cert, seconds=pt.scan.seconds + share + time.perf_counter() - t1,
                                       cpu_seconds=pt.cpu_seconds + cpu_share + time.process_time() - c1))
    return out
