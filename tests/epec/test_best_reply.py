"""The certificate's check (d): every follower at its best reply (epec/best_reply.py), and the
bilevel solve over nonconvex followers' global replies (issue 15, reproducers 2 and 3)."""
import pyomo.environ as pyo
import pytest

import epec
from epec import CertificateOptions, GlobalOptions, solve_bilevel
from epec.best_reply import CONVEX, MULTISTART, SCIP, UNIVARIATE


def reproducer_2():
    """A follower that maximises a convex function: ``max (y - x/2)^2`` on ``[-1, 1]``.

    Derivation (ours): the best reply is the end of ``[-1, 1]`` farthest from ``x/2 in [0, 1/2]``:
    ``y = -1`` for ``x > 0``; at ``x = 0`` both ends tie. The leader minimises
    ``(x - 0.6)^2 + (y - 0.3)^2``: over ``x > 0`` with ``y = -1`` the best is ``x = 0.6``,
    ``F = 1.69``; at ``x = 0`` the optimistic follower takes ``y = 1``, ``F = 0.36 + 0.49 = 0.85``.
    The optimistic bilevel solution is ``(0, 1)``, where the follower's reply is not unique; the
    KKT point ``y = x/2`` (the follower's *worst* reply) is no solution at all.
    """
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1), initialize=0.5)
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-1, 1), initialize=0.2)
    m.F.obj = pyo.Objective(expr=(m.F.y - m.x / 2) ** 2, sense=pyo.maximize)
    m.obj = pyo.Objective(expr=(m.x - 0.6) ** 2 + (m.F.y - 0.3) ** 2, sense=pyo.minimize)
    return m


def reproducer_3():
    """A nonconvex follower: ``min y^3/3 - x y`` on ``[-1, 1]``, ``x in [0.1, 1]``.

    Derivation (ours): the stationary points are ``y = +-sqrt(x)``; ``sqrt(x)`` is the local
    minimum, value ``-2/3 x^{3/2}``; the end ``y = -1`` has value ``x - 1/3``. With ``s = sqrt(x)``,
    ``-2/3 s^3 = s^2 - 1/3`` iff ``2 s^3 + 3 s^2 - 1 = (s + 1)^2 (2 s - 1) = 0``: for ``x < 1/4`` the
    best reply is ``y = -1``, for ``x > 1/4`` it is ``sqrt(x)``, at ``x = 1/4`` both (value -1/12).
    The leader's ``(x - 0.2)^2 + (y - 0.45)^2`` is at least 2.1025 on ``y = -1``; on ``y = sqrt(x)``
    its derivative ``2x + 0.6 - 0.45/sqrt(x)`` is 0.2 > 0 at ``x = 1/4`` and increasing, so the
    optimistic solution is ``x = 1/4, y = 1/2``, ``F = 0.005``, where the follower is indifferent.
    """
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0.1, 1), initialize=0.5)
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-1, 1), initialize=0.5)
    m.F.obj = pyo.Objective(expr=m.F.y ** 3 / 3 - m.x * m.F.y, sense=pyo.minimize)
    m.obj = pyo.Objective(expr=(m.x - 0.2) ** 2 + (m.F.y - 0.45) ** 2, sense=pyo.minimize)
    return m


def test_reproducer_2_never_ok_at_a_wrong_point():
    m = reproducer_2()
    res = solve_bilevel(m, followers=[m.F])
    x, y = pyo.value(m.x), pyo.value(m.F.y)
    # either refused, or at the optimistic solution (0, 1); never at y = x/2 (the worst reply)
    assert not res.ok or (abs(x) < 1e-4 and abs(y - 1) < 1e-4), (res.status, x, y)


def test_reproducer_2_names_the_followers_better_reply():
    m = reproducer_2()
    res = solve_bilevel(m, followers=[m.F], global_search=GlobalOptions(moves=0),
                        certificate=CertificateOptions(reply_univariate=False))
    cert = res.certificate
    assert not res.ok and cert.better_replies == (0,)
    reply = cert.replies[0]
    assert reply.method == SCIP and reply.proven
    assert reply.reply == pytest.approx((-1.0,), abs=1e-6)
    assert reply.gain == pytest.approx(1.69, abs=1e-5)  # (-1 - 0.3)^2 - 0 at x = 0.6, y = 0.3
    assert "follower F is not at its best reply" in res.message


def test_reproducer_3_never_ok_at_a_wrong_point():
    m = reproducer_3()
    res = solve_bilevel(m, followers=[m.F])
    x, y = pyo.value(m.x), pyo.value(m.F.y)
    assert not res.ok or (abs(x - 0.25) < 1e-4 and abs(y - 0.5) < 1e-4), (res.status, x, y)
    # here it ends at the optimistic solution and refuses it for the true cause: the follower is
    # indifferent between y = 1/2 and y = -1 there
    assert (x, y) == (pytest.approx(0.25, abs=1e-4), pytest.approx(0.5, abs=1e-4))
    assert res.certificate.reasons[0].startswith("followers' reply not unique")


def test_reproducer_3_multistart_without_scip():
    """SCIP off: the multistart finds the better end y = -1 and says it is not a proof."""
    m = reproducer_3()
    res = solve_bilevel(m, followers=[m.F], global_search=GlobalOptions(moves=0),
                        certificate=CertificateOptions(reply_scip=False, reply_univariate=False))
    reply = res.certificate.replies[0]
    assert not res.ok and reply.method == MULTISTART and not reply.proven
    assert reply.reply == pytest.approx((-1.0,), abs=1e-6)
    x = pyo.value(m.x)
    y = pyo.value(m.F.y)
    assert reply.gain == pytest.approx((y ** 3 / 3 - x * y) - (-1 / 3 + x), rel=1e-6)


def test_reproducer_2_univariate_follower_solved_exactly():
    """The default: a one-decision polynomial follower is solved by its bounds and the
    derivative's roots (no SCIP), proven, with the same better reply and gain as SCIP's."""
    m = reproducer_2()
    res = solve_bilevel(m, followers=[m.F], global_search=GlobalOptions(moves=0))
    reply = res.certificate.replies[0]
    assert not res.ok and res.certificate.better_replies == (0,)
    assert reply.method == UNIVARIATE and reply.proven
    assert reply.reply == pytest.approx((-1.0,), abs=1e-9)
    assert reply.gain == pytest.approx(1.69, abs=1e-5)


def _quartic(extra_constraint: bool = False):
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0.1, 1), initialize=0.5)
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-1, 1), initialize=-0.5)
    y = m.F.y
    m.F.obj = pyo.Objective(expr=m.x * (16 * y ** 4 + 2 * y ** 3 - 8 * y ** 2 - 1.5 * y + 0.5))
    if extra_constraint:
        m.F.c = pyo.Constraint(expr=y <= 0.9)
    return m


def test_univariate_candidates_find_the_global_minimum_of_a_quartic():
    """Mitsos & Barton's Example 3.10 follower, ``min x (16y^4 + 2y^3 - 8y^2 - 1.5y + 0.5)`` on
    ``[-1, 1]``: by hand its minimisers are ``y = 1/2`` (global, value ``-x``) and ``y = -1/2``
    (local, value 0)."""
    from epec.best_reply import univariate_candidates
    from epec.kkt import kkt

    # Prepare: x = 1/2, the follower at its local minimum
    m = _quartic()
    # Execute
    cands = dict(univariate_candidates(kkt(m.F)))
    # Assert: the global minimiser with its utility (U = -f = x = 1/2), the local one among the
    # candidates, the follower's value restored
    best = max(cands, key=cands.get)
    assert best == pytest.approx(0.5, abs=1e-12) and cands[best] == pytest.approx(0.5, abs=1e-12)
    assert any(abs(c + 0.5) < 1e-12 for c in cands) and m.F.y.value == -0.5
    # ... and a constraint beyond the bounds is not this method's
    m2 = _quartic(extra_constraint=True)
    assert univariate_candidates(kkt(m2.F)) is None


def test_convex_follower_is_proven_and_ok():
    """The README's Stackelberg duopoly: a concave follower, proven by the rules; q1 = 45, q2 = 22.5."""
    m = pyo.ConcreteModel()
    m.q1 = pyo.Var(bounds=(0, 100))
    m.firm2 = pyo.Block()
    m.firm2.q = pyo.Var(bounds=(0, 100))
    m.firm2.profit = pyo.Objective(expr=(90 - m.q1 - m.firm2.q) * m.firm2.q, sense=pyo.maximize)
    m.profit1 = pyo.Objective(expr=(90 - m.q1 - m.firm2.q) * m.q1, sense=pyo.maximize)
    res = solve_bilevel(m, followers=[m.firm2])
    assert res.ok, res.message
    assert (pyo.value(m.q1), pyo.value(m.firm2.q)) == (pytest.approx(45, abs=1e-4), pytest.approx(22.5, abs=1e-4))
    (reply,) = res.certificate.replies
    assert reply.method == CONVEX and reply.proven and reply.gain == 0.0


def test_metatrading_followers_declared():
    from models import preset
    from models.game import build_game

    model = build_game(preset("tiny"))
    res = epec.solve_epec(model, leaders=[model.msp], followers=[model.mu],
                          certificate=CertificateOptions(grid=11, refine_iter=8, starts=2))
    assert res.ok, res.message
    methods = {r.method for r in res.certificate.replies}
    assert methods == {"declared concave (docs/model.md §4)"} and len(res.certificate.replies) == 4


def test_custom_formulas_are_not_declared():
    """A custom formula may break concavity: build_game declares only its own."""
    from epec.convexity import declared_reason
    from models import preset
    from models.game import build_game
    from models.utility import payment

    model = build_game(preset("tiny"), payment_fn=lambda *a: payment(*a))
    assert declared_reason(model.mu[0]) is None


def test_reply_options_validated():
    with pytest.raises(ValueError):
        CertificateOptions(reply_starts=0)
    with pytest.raises(ValueError):
        CertificateOptions(reply_seconds=0)
    with pytest.raises(ValueError):
        CertificateOptions(best_reply=1)


def test_a_degenerate_quartic_follower_is_solved_at_its_exact_reply():
    """Mitsos & Barton's Example 3.12 (mb_1_1_05): the leader minimises ``-x + x y + 10 y^2``,
    the follower ``-x y^2 + y^4 / 2``, both on ``[-1, 1]``. Derivation (ours): for ``x > 0`` the
    follower's best replies are ``+-sqrt(x)``, the leader's better one ``-sqrt(x)`` gives
    ``9x - x^1.5 > 0``; for ``x <= 0`` the reply is ``y = 0`` and ``F = -x >= 0``: the solution
    is ``(0, 0)``, ``F = 0``. The follower is convex at ``x = 0`` only (its KKT reply at a
    deviation ``x > 0``, ``y = 0``, is its worst), and its optimum ``y^4`` is degenerate (a KKT
    point within ``kkt_tol`` sits ~2e-4 off it): the solve used to refuse after 11 s."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(-1, 1))
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-1, 1))
    m.F.obj = pyo.Objective(expr=-m.x * m.F.y ** 2 + 0.5 * m.F.y ** 4)
    m.obj = pyo.Objective(expr=-m.x + m.x * m.F.y + 10 * m.F.y ** 2)
    # Execute
    res = solve_bilevel(m, followers=[m.F])
    # Assert: certified at the published point, the follower on its exact reply
    assert res.ok, res.message
    assert m.x.value == pytest.approx(0.0, abs=1e-6) and m.F.y.value == pytest.approx(0.0, abs=1e-5)
    assert pyo.value(m.obj) == pytest.approx(0.0, abs=1e-6)
    assert res.certificate.follower_unique


def test_an_indifferent_univariate_follower_is_named_with_its_best_replies():
    """Mitsos & Barton's Example 3.14 (mb_1_1_07): at ``x = 1/4`` the follower
    ``min y^3/3 - x y`` on ``[-1, 1]`` ties ``y = 1/2`` and ``y = -1`` (both ``-1/12``, by hand):
    never ``ok``, and the refusal names both replies, found exactly."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(-1, 1))
    m.F = pyo.Block()
    m.F.y = pyo.Var(bounds=(-1, 1))
    m.F.obj = pyo.Objective(expr=m.F.y ** 3 / 3 - m.x * m.F.y)
    m.obj = pyo.Objective(expr=(m.x - 0.25) ** 2 + m.F.y ** 2)
    # Execute
    res = solve_bilevel(m, followers=[m.F])
    # Assert
    assert not res.ok
    why = [r for r in res.certificate.reasons if "not unique" in r]
    assert why and "[-1, 0.5]" in why[0] and UNIVARIATE in why[0], res.certificate.reasons
