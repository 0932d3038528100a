"""The certificate's Ipopt engine (:func:`epec.certificate.certify_game`): every follower response
of the deviation scan (docs/model.md section 5 (b)) and of the uniqueness check (c) solved by the
game's mode (Ipopt, iteration-capped), followers not proven convex for all the others' decisions
moved onto their global replies at every deviation."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .best_reply import convex_everywhere, follower_replies
from .deviation_scan import ADMISSIBLE_TOL, DeviationScan, Inadmissible, deviation_gains
from .optimistic import exact_best_replies, optimistic_game, optimistic_utility

__all__ = ["certify_ipopt"]

#: rounds of (global reply, followers' equilibrium from it) per deviation of a game with
#: followers not proven convex
_GLOBAL_ROUNDS = 3


@dataclass
class _IpoptGains:
    """Leader ``i``'s utility gain at a deviation, the followers' response solved by Ipopt.

    Attributes
    ----------
    game, options
        The game and the certificate's options.
    searched : list
        The followers not proven convex for all the others' decisions (convex_everywhere): every
        deviation is evaluated at their global replies (a local KKT reply there can hide the
        leader's gain: reproducer 3 of issue 15).
    optimistic : bool
        The optimistic reply is evaluated at every deviation (:func:`epec.optimistic.optimistic_game`).
    base : list of float
        Each leader's utility at the point, the baseline of its gains (rebased in place by
        :func:`_rebase`).
    """

    game: Any
    options: Any
    searched: list
    optimistic: bool
    base: list

    def _global_replies(self, pt: list, run: Any) -> tuple[Any, bool]:
        """Move the searched followers onto their better (global) replies and solve the
        followers' equilibrium from there, up to ``_GLOBAL_ROUNDS`` times; the last run and
        whether the replies settled (no better reply left, or the rounds spent)."""
        settled = not self.searched
        for r_ in range(_GLOBAL_ROUNDS + 1 if self.searched and run.ok else 0):
            better = [r for r in follower_replies(self.searched, self.options, search=True)
                      if not r.gain <= self.options.reply_tolerance(r.utility)]
            if not better:
                settled = True
                break
            by_name = {r.name: r for r in better}
            for k in self.searched:
                if k.player.name in by_name:
                    for v, val in zip(k.variables, by_name[k.player.name].reply):
                        v.set_value(val, skip_validation=True)
            if r_ == _GLOBAL_ROUNDS:
                # the followers' solve kept sliding off the global replies (back to a local
                # one): the leader's utility is the one at the global replies themselves
                settled = True
                break
            run = self.game.respond(pt, warm=True, capped=True)
            if not run.ok:
                break
        return run, settled

    def __call__(self, i: int, pt: list) -> float:
        """Leader ``i``'s gain at decisions ``pt`` (-inf without a follower response; raises
        :class:`epec.deviation_scan.Inadmissible` where the response breaks a coupling constraint)."""
        game = self.game
        run = game.respond(pt, warm=True, capped=True)
        if run.ok and game.coupling_broken(ADMISSIBLE_TOL):
            raise Inadmissible
        run, settled = self._global_replies(pt, run)
        if not run.ok:
            return -math.inf
        utility = game.leaders[i].utility()
        if self.optimistic:
            # one follower at its global reply: where it is indifferent, the optimistic
            # convention gives the leader its preferred best reply (reproducer 2 of issue 15:
            # at x = 0 the follower's replies -1 and 1 are equally good, and 1 is the leader's)
            u_opt, exact = optimistic_utility(game, i, self.options, at_best=bool(self.searched) and settled)
            # all its best replies known: the leader's best over them, the follower's solved
            # reply not among them unless it is one (a local minimum of its utility, mb_1_1_05)
            utility = u_opt if exact and math.isfinite(u_opt) else max(utility, u_opt)
        return utility - self.base[i]


def _rebase(gain_at: _IpoptGains, x_star: list, snap0: Any, replies: list) -> None:
    """Each leader's baseline utility (``gain_at.base``, in place) where the point's own reply is
    not the one the deviations are measured at."""
    game, options, base = gain_at.game, gain_at.options, gain_at.base
    if any(not r.gain <= options.reply_tolerance(r.utility) for r in replies):
        # a follower not at its best reply: the leader's decision is worth what it gets at the
        # followers' global replies, and its gains are measured from that (from the point's
        # local reply, every deviation looks worse and the scan points nowhere)
        for i in range(len(base)):
            try:
                g0 = gain_at(i, [a.copy() for a in x_star])
            except Inadmissible:  # the global replies break a coupling constraint at x*
                g0 = -math.inf
            game.restore(snap0)
            if math.isfinite(g0):
                base[i] += g0
    elif gain_at.optimistic:
        # the follower's best replies all known: the point is worth the leader's best over them,
        # as every deviation is (its solved reply, near a degenerate optimum, may sit a little off)
        for i in range(len(base)):
            u_opt, exact = optimistic_utility(game, i, options)
            if exact and math.isfinite(u_opt):
                base[i] = u_opt


def _uniqueness(game: Any, options: Any, x_star: list, snap0: Any, searched: list, rng: np.random.Generator,
                tick: Callable[[], None]) -> tuple[int, float, tuple | None]:
    """(c) uniqueness: random follower starts, cold homotopy, leaders at x*; or, where all the
    one follower's best replies are known, their spread (exact: a degenerate optimum such as
    y**4 leaves a random start's KKT point ~(kkt_tol)**(1/3) off it, spread no evidence of two).
    Returns ``(starts, spread, exact)``, ``exact`` those best replies (None where the starts decided)."""
    spread, starts = 0.0, 0
    fv = game.follower_vars
    ref = np.array([v.value for v in fv], dtype=float)
    game.restore(snap0)
    exact = exact_best_replies(game, options, wide=True)
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
    return starts, spread, None if exact is None else tuple(exact)


def certify_ipopt(game: Any, options: Any, tick: Callable[[], None], replies: list) -> DeviationScan:
    """:func:`epec.certificate.certify_game`'s scan with every follower response solved by Ipopt
    (the game's mode); the model state is restored afterwards."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    x_star = [ld.values() for ld in game.leaders]
    residual = game.residual()
    game.respond(x_star, warm=True)  # the baseline at the followers' exact response
    snap0 = game.snapshot()
    base = [ld.utility() for ld in game.leaders]
    searched = [k for k, r, ev in zip(game.kkts, replies, convex_everywhere(game)) if not ev]
    gain_at = _IpoptGains(game, options, searched, optimistic_game(game, options), base)
    _rebase(gain_at, x_star, snap0, replies)
    gains, bests, evals, failed = deviation_gains(game.leaders, x_star, rng, options, gain_at,
                                                  lambda: game.restore(snap0), tick, near=bool(searched))
    starts, spread, exact = _uniqueness(game, options, x_star, snap0, searched, rng, tick)
    game.restore(snap0)
    return DeviationScan(residual, gains, bests, evals, failed, starts, spread, base, x_star, t0, exact)
