"""Certificate of a bilevel / EPEC point (docs/model.md section 5).

(a) the followers' KKT residual, evaluated from the model (Pyomo expressions, or their compiled
functions on the Newton path), not from a solver's report;
(b) for every leader, the largest utility gain of a unilateral deviation, over a grid of its
decision range (a line search along random directions when it has several variables) refined
by a bounded golden-section search, each point evaluated at the followers' exact equilibrium
(warm-started along the grid; or, with a batch engine, every leader's line searched in lockstep and
each round of points solved at once, :func:`epec.deviation_scan.batched_deviation_gains`); (c) the
followers' equilibrium from several random starts;
(d) every leader's own constraints hold at the point (:mod:`epec.constraints`), and the scan of
(b) skips the deviations that break them (a leader may not deviate outside its own constraints);
a leader with general constraints is also checked by its constrained step from the point and
from its best grid deviation (on the Newton path).
(e) every follower's best-response gain at the point, proven or searched
(:mod:`epec.best_reply`): a KKT point of a nonconvex follower need not be its best reply.

This module is the public face (:class:`Certificate`, :func:`certify`, :func:`certify_game`) and
the verdict; (b) and (c) are measured by one of two engines, :mod:`epec.scan_newton` (Newton
responses) and :mod:`epec.scan_ipopt` (Ipopt responses), on the scan of
:mod:`epec.deviation_scan`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from pyomo.core.base.block import BlockData

from .best_reply import UNIVARIATE, FollowerReply, follower_replies, is_convex_method
from .deviation_scan import DeviationScan
from .game import leaders_game
from .kkt import KKTResidual
from .leader_steps import implicit_response
from .options import CertificateOptions
from .response import ResponseOptions
from .scan_ipopt import certify_ipopt
from .scan_newton import certify_newton

__all__ = ["Certificate", "certify", "certify_game", "verdict"]


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


def _certificate(residual: KKTResidual, gains: list, bests: list, evals: list, failed: list, starts: int,
                 spread: float, utilities: list, names: list, options: Any, t0: float,
                 broken: Sequence[str] = (),
                 replies: Sequence[FollowerReply] = (), x_star: Sequence[np.ndarray] = (),
                 exact_replies: Sequence[float] | None = None) -> Certificate:
    """The :class:`Certificate` of (a)-(e) and its verdict. The followers are called unique when
    no random start that reached an equilibrium ended further than ``unique_tol`` from the point,
    and at least one did (unless ``options.starts`` is 0): a start from which the solver found
    no equilibrium is no evidence of another one (it is counted in ``starts``, which says how
    many solved); ``exact_replies``: the one follower's best replies, all known (the spread is
    theirs). ``broken``: the leaders' own constraints the point breaks, one line each.
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
    if not unique and exact_replies is not None:
        reasons.append(f"followers' reply not unique: the follower's best replies are "
                       f"{format_decision(exact_replies)} (all of them, {UNIVARIATE}), spread {spread:.3g} "
                       f"(unique_tol {options.unique_tol:g})")
    elif not unique:
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


def verdict(scan: DeviationScan, game: Any, options: Any, replies: list) -> Certificate:
    """The :class:`Certificate` of an engine's scan (:func:`_certificate`), the leaders' own and
    coupling constraints checked at the point as the engine left the model (:func:`_broken`)."""
    return _certificate(scan.residual, scan.gains, scan.bests, scan.evals, scan.failed, scan.starts, scan.spread,
                        scan.utilities, [ld.name for ld in game.leaders], options, scan.t0,
                        _broken(game, scan.x_star, options), replies, scan.x_star, scan.exact_replies)


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
    scan = None
    if game.response is not None and all(is_convex_method(r.method) for r in replies):
        scan = certify_newton(game, options, tick, replies)  # None: convexity not proven where it went
    if scan is None:
        scan = certify_ipopt(game, options, tick, replies)
    cert = verdict(scan, game, options, replies)
    return dataclasses.replace(cert, cpu_seconds=time.process_time() - c0)


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
    batch_starts: Callable[[list, Any, int], list] | None = None,
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
    mode, lift, response, solver, options, progress, batch_response, batch_starts
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
    for name, fn in (("batch_response", batch_response), ("batch_starts", batch_starts)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: must be callable, got {fn!r}")
    game = leaders_game(model, leaders, followers, mode, solver, options, lift, response)
    game.batch_response, game.batch_starts = batch_response, batch_starts
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
