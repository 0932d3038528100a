"""The optimistic convention at a deviation of the certificate's scan (Dempe 2002, sec. 1.3): where
the one follower is indifferent between replies, the leader gets the one it prefers; and every
best reply of a univariate follower, exactly (:func:`epec.best_reply.univariate_best`). Shared by
the certificate's two engines (:mod:`epec.scan_newton`, :mod:`epec.scan_ipopt`)."""
from __future__ import annotations

import math
from typing import Any

from .best_reply import follower_utility, optimistic_reply, univariate_best

__all__ = ["exact_best_replies", "optimistic_game", "optimistic_utility"]


#: followers' decisions beyond which the optimistic reply is not searched at every deviation
_OPTIMISTIC_MAX = 20


def optimistic_game(game: Any, options: Any) -> bool:
    """The deviation scan evaluates the optimistic reply (:func:`optimistic_utility`): a game of
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


def optimistic_utility(game: Any, i: int, options: Any, at_best: bool = False) -> tuple[float, bool]:
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
    exact = exact_best_replies(game, options)
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


def exact_best_replies(game: Any, options: Any, wide: bool = False) -> list[float] | None:
    """Every best reply of the game's one follower at the model's point, where the
    univariate-polynomial method applies (:func:`epec.best_reply.univariate_best`; ``wide``: every
    one within the reply tolerance, the point's own reply not added); else None."""
    if not (options.best_reply and options.reply_univariate and len(game.kkts) == 1):
        return None
    k = game.kkts[0]
    return univariate_best(k, options, None if wide else follower_utility(k.objective), wide=wide)
