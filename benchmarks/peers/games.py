"""Equilibrium problems with several leaders (EPEC) and Nash games with published or closed-form
answers: Pang & Fukushima's game without a pure equilibrium, Sherali's multiple-leader
Stackelberg-Cournot market, a capacity-constrained variant (issue 15's first reproducer),
electricity markets whose generators are paid the system operator's locational price (the
multiplier of its balance constraint), Tullock's contest and Harker's generalised Nash game.

Closed forms marked "by hand" are our derivations, written out in the builder's docstring.
"""
from __future__ import annotations

import pyomo.environ as pyo

from .build import multiplier
from .instance import Built, Expect, Instance, Kind, Need

__all__ = ["INSTANCES"]


def pang_fukushima() -> Built:
    """Two leaders, one follower ``y = max(0, 1 - x1 - x2)``; leader 1 minimises ``x1/2 + y``,
    leader 2 minimises ``-x2/2 - y``, ``x in [0, 1]^2``. The best replies cycle
    ``(1, 0) -> (1, 1) -> (0, 1) -> (0, 0)``: no pure equilibrium (Pang & Fukushima,
    Comput. Manag. Sci. 2(1), 2005, the example of Sec. 5)."""
    m = pyo.ConcreteModel()
    m.leader = pyo.Block([0, 1])
    for i in (0, 1):
        m.leader[i].x = pyo.Var(bounds=(0.0, 1.0), initialize=0.3 + 0.2 * i)
    m.follower = pyo.Block()
    m.follower.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.5)
    m.follower.cost = pyo.Objective(expr=m.follower.y * (-1.0 + m.leader[0].x + m.leader[1].x)
                                    + 0.5 * m.follower.y ** 2)
    m.leader[0].cost = pyo.Objective(expr=0.5 * m.leader[0].x + m.follower.y)
    m.leader[1].cost = pyo.Objective(expr=-0.5 * m.leader[1].x - m.follower.y)
    return Built(m, followers=[m.follower], leaders=[m.leader[0], m.leader[1]])


def sherali(n_leaders: int = 2, n_followers: int = 2, a: float = 100.0, c: float = 10.0) -> Built:
    """Sherali's multiple-leader Stackelberg-Cournot market (Oper. Res. 32(2), 1984) with linear
    inverse demand ``P = a - (X + Y)`` and unit costs ``c`` for everyone.

    By hand: the followers' Cournot reply to the leaders' total X is ``y = (a - c - X)/(F + 1)``
    each, so ``P = (a + F c - X)/(F + 1)``; leader i's FOC ``P - c - x_i/(F + 1) = 0`` gives,
    symmetric, ``x* = (a - c)/(L + 1)`` = 30 and ``y* = (a - c - L x*)/(F + 1)`` = 10, profit
    ``(P - c) x* = 300`` (a = 100, c = 10, L = F = 2). Each leader's reduced profit is concave
    in its own decision: the equilibrium is unique.
    """
    m = pyo.ConcreteModel()
    m.leader = pyo.Block(range(n_leaders))
    m.follower = pyo.Block(range(n_followers))
    for i in range(n_leaders):
        m.leader[i].x = pyo.Var(bounds=(0, 60), initialize=10.0 + 5 * i)
    for j in range(n_followers):
        m.follower[j].y = pyo.Var(domain=pyo.NonNegativeReals, initialize=5.0)
    m.P = pyo.Expression(expr=a - sum(m.leader[i].x for i in range(n_leaders))
                         - sum(m.follower[j].y for j in range(n_followers)))
    for i in range(n_leaders):
        m.leader[i].profit = pyo.Objective(expr=(m.P - c) * m.leader[i].x, sense=pyo.maximize)
    for j in range(n_followers):
        m.follower[j].profit = pyo.Objective(expr=(m.P - c) * m.follower[j].y, sense=pyo.maximize)
    leaders = [m.leader[i] for i in range(n_leaders)]
    return Built(m, followers=[m.follower], leaders=leaders, objectives=[b.profit for b in leaders])


def capacity_cournot() -> Built:
    """Issue 15's first reproducer: firms A and B lead with capacities 5, firm F follows.

    ``P = 100 - qA - qB - qF``; A and B earn ``(P - 10) qA`` and ``(P - 20) qB``; F earns
    ``(P - 30) qF - qF^2 / 2``. By hand: ``qF = (70 - qA - qB)/3``, so A's reduced profit is
    ``(200 - 2 qA - 2 qB) qA / 3``, increasing on [0, 5] at qB = 5 (peak 47.5), B's
    ``(170 - 2 qA - 2 qB) qB / 3`` increasing on [0, 5] (peak 40): both capacities bind,
    ``qA = qB = 5``, ``qF = 20``, ``P = 70``, profits 300 and 250. Without the capacities the
    answer is ``qA = 38.33, qB = 23.33`` (the issue's wrong ``ok``).
    """
    m = pyo.ConcreteModel()
    m.A, m.B, m.F = pyo.Block(), pyo.Block(), pyo.Block()
    for L in (m.A, m.B):
        L.q = pyo.Var(bounds=(0, 100))
        L.cap = pyo.Constraint(expr=L.q <= 5.0)
    m.F.q = pyo.Var(bounds=(0, 100))
    P = 100 - m.A.q - m.B.q - m.F.q
    m.A.obj = pyo.Objective(expr=(P - 10) * m.A.q, sense=pyo.maximize)
    m.B.obj = pyo.Objective(expr=(P - 20) * m.B.q, sense=pyo.maximize)
    m.F.obj = pyo.Objective(expr=(P - 30) * m.F.q - 0.5 * m.F.q ** 2, sense=pyo.maximize)
    return Built(m, followers=[m.F], leaders=[m.A, m.B], objectives=[m.A.obj, m.B.obj])


def one_node_market(alpha: float = 100.0, beta: float = 1.0, costs: tuple = (10.0, 20.0)) -> Built:
    """Two generators offer capacities ``x_i``; the system operator (the follower) dispatches
    ``max alpha d - beta d^2/2 - sum c_i g_i`` s.t. ``g_i <= x_i`` and the balance
    ``g_1 + g_2 >= d``, whose multiplier is the price ``lambda``; generator i earns
    ``(lambda - c_i) g_i``.

    By hand: while ``lambda > c_i`` every offer is dispatched and ``lambda = alpha - beta(x_1 + x_2)``:
    Cournot, ``x_i = (alpha - 2 c_i + c_j)/(3 beta)`` = 100/3 and 70/3, ``lambda`` = 130/3,
    profits 10000/9 and 4900/9. Offering more than ``alpha - c_i - x_j`` only lowers the price to
    the rival's cost (the rival is curtailed): at most ``10 x_1 <= 800`` for generator 1, so the
    equilibrium is global. The balance is an inequality so that its multiplier is >= 0 whatever
    the sign convention of equalities.
    """
    m = pyo.ConcreteModel()
    m.gen = pyo.Block(range(2))
    for i in range(2):
        m.gen[i].x = pyo.Var(bounds=(0, 100), initialize=20.0)
    m.iso = iso = pyo.Block()
    iso.d = pyo.Var(domain=pyo.NonNegativeReals, initialize=40.0)
    iso.g = pyo.Var(range(2), domain=pyo.NonNegativeReals, initialize=20.0)
    iso.cap = pyo.Constraint(range(2), rule=lambda b, i: b.g[i] <= m.gen[i].x)
    iso.balance = pyo.Constraint(expr=iso.g[0] + iso.g[1] >= iso.d)
    iso.welfare = pyo.Objective(expr=alpha * iso.d - 0.5 * beta * iso.d ** 2 - sum(costs[i] * iso.g[i] for i in range(2)),
                                sense=pyo.maximize)
    price = multiplier(iso.balance)
    for i in range(2):
        m.gen[i].profit = pyo.Objective(expr=(price - costs[i]) * iso.g[i], sense=pyo.maximize)
    leaders = [m.gen[0], m.gen[1]]
    return Built(m, followers=[iso], leaders=leaders, objectives=[b.profit for b in leaders])


def two_node_market() -> Built:
    """Generator 1 at node A, generator 2 at node B, a line of capacity 10 from A to B.

    Demands ``p_A = 60 - d_A``, ``p_B = 100 - d_B``, costs 10 and 10; the operator maximises
    welfare s.t. ``g_1 >= d_A + f`` (multiplier ``lambda_A``), ``g_2 + f >= d_B``
    (``lambda_B``), ``|f| <= 10``, ``g_i <= x_i``. Generator i earns its node's price.

    By hand: unconstrained the flow would be ``(40 + x_1 - x_2)/2``; congested (``x_1 - x_2 >
    -20``) the prices are ``70 - x_1`` and ``90 - x_2``, so each generator is a monopolist at its
    node: ``x = (30, 40)``, ``lambda = (40, 50)``, flow 10 (its limit, multiplier 10 > 0),
    profits 900 and 1600. Decongesting does not pay: generator 1 at ``x_1 <= 20`` earns at most
    ``(50 - x_1/2) x_1 <= 800``, generator 2 at ``x_2 >= 50`` at most ``(55 - x_2/2) x_2 <= 1512.5``.
    """
    m = pyo.ConcreteModel()
    m.gen = pyo.Block(range(2))
    for i in range(2):
        m.gen[i].x = pyo.Var(bounds=(0, 100), initialize=20.0)
    m.iso = iso = pyo.Block()
    iso.dA = pyo.Var(domain=pyo.NonNegativeReals, initialize=20.0)
    iso.dB = pyo.Var(domain=pyo.NonNegativeReals, initialize=20.0)
    iso.g = pyo.Var(range(2), domain=pyo.NonNegativeReals, initialize=20.0)
    iso.f = pyo.Var(bounds=(-10, 10), initialize=0.0)
    iso.cap = pyo.Constraint(range(2), rule=lambda b, i: b.g[i] <= m.gen[i].x)
    iso.balance_A = pyo.Constraint(expr=iso.g[0] >= iso.dA + iso.f)
    iso.balance_B = pyo.Constraint(expr=iso.g[1] + iso.f >= iso.dB)
    iso.welfare = pyo.Objective(expr=60 * iso.dA - 0.5 * iso.dA ** 2 + 100 * iso.dB - 0.5 * iso.dB ** 2
                                - 10 * iso.g[0] - 10 * iso.g[1], sense=pyo.maximize)
    lam = (multiplier(iso.balance_A), multiplier(iso.balance_B))
    for i in range(2):
        m.gen[i].profit = pyo.Objective(expr=(lam[i] - 10) * iso.g[i], sense=pyo.maximize)
    leaders = [m.gen[0], m.gen[1]]
    return Built(m, followers=[iso], leaders=leaders, objectives=[b.profit for b in leaders])


def tullock(n: int = 4, V: float = 10.0) -> Built:
    """Tullock's contest: ``max_{x_i >= 0} V x_i / sum_j x_j - x_i``."""
    m = pyo.ConcreteModel()
    m.p = pyo.Block(range(n))
    for i in range(n):
        m.p[i].x = pyo.Var(domain=pyo.NonNegativeReals, initialize=1.0 + 0.3 * i)
    m.total = pyo.Expression(expr=sum(m.p[i].x for i in range(n)))
    for i in range(n):
        m.p[i].U = pyo.Objective(expr=V * m.p[i].x / m.total - m.p[i].x, sense=pyo.maximize)
    return Built(m, followers=[m.p])


def harker() -> Built:
    """Harker's generalised Nash game: ``min x1^2 + (8/3) x1 x2 - 34 x1`` and
    ``min x2^2 + (5/4) x1 x2 - 24.25 x2`` over ``[0, 10]^2`` with the shared constraint
    ``x1 + x2 <= 15``. Its variational equilibrium is (5, 9), where the shared constraint is
    slack (by hand: both gradients vanish there)."""
    m = pyo.ConcreteModel()
    m.p = pyo.Block(range(2))
    for i in range(2):
        m.p[i].x = pyo.Var(bounds=(0, 10), initialize=2.0)
    x1, x2 = m.p[0].x, m.p[1].x
    m.p[0].cost = pyo.Objective(expr=x1 ** 2 + 8 / 3 * x1 * x2 - 34 * x1)
    m.p[1].cost = pyo.Objective(expr=x2 ** 2 + 5 / 4 * x1 * x2 - 24.25 * x2)
    m.shared = pyo.Constraint(expr=x1 + x2 <= 15)
    return Built(m, followers=[m.p[0], m.p[1]])


_SHERALI_X = (100.0 - 10.0) / 3  # by hand, see sherali()

INSTANCES = [
    Instance(
        "pang_fukushima_2005",
        "Pang & Fukushima, Comput. Manag. Sci. 2(1), 2005: a two-leader game without a pure equilibrium",
        Kind.EPEC, pang_fukushima, expect=Expect.NONE,
    ),
    Instance(
        "sherali_1984_2x2",
        "Sherali, Oper. Res. 32(2), 1984: multiple-leader Stackelberg-Cournot, 2 leaders and 2 "
        "followers; closed form by hand",
        Kind.EPEC, sherali, objective=(300.0, 300.0),
        point={"leader[0].x": _SHERALI_X, "leader[1].x": _SHERALI_X, "follower[0].y": 10.0, "follower[1].y": 10.0},
    ),
    Instance(
        "capacity_cournot",
        "issue 15 reproducer 1 (two capacity-constrained leaders, one follower); closed form by hand",
        Kind.EPEC, capacity_cournot, objective=(300.0, 250.0),
        point={"A.q": 5.0, "B.q": 5.0, "F.q": 20.0}, needs=frozenset({Need.LEADER_CONSTRAINTS}),
    ),
    Instance(
        "electricity_one_node",
        "capacity offers cleared by a welfare-maximising operator, paid its balance multiplier "
        "(the Cournot electricity market of Hobbs, IEEE TPWRS 16(2), 2001, one node); closed form by hand",
        Kind.EPEC, one_node_market, objective=(10000 / 9, 4900 / 9),
        point={"gen[0].x": 100 / 3, "gen[1].x": 70 / 3, "iso.d": 170 / 3},
        needs=frozenset({Need.MULTIPLIERS}),
    ),
    Instance(
        "electricity_two_node",
        "two-node market with a congested line, generators paid their locational prices (the "
        "multipliers of the operator's nodal balances; cf. Hu & Ralph, Oper. Res. 55(5), 2007); "
        "closed form by hand",
        Kind.EPEC, two_node_market, objective=(900.0, 1600.0),
        point={"gen[0].x": 30.0, "gen[1].x": 40.0, "iso.f": 10.0},
        needs=frozenset({Need.MULTIPLIERS}),
    ),
    Instance(
        "tullock_4",
        "Tullock, 'Efficient rent seeking', 1980: symmetric contest x* = V (n - 1)/n^2 "
        "(Konrad, Strategy and Dynamics in Contests, 2009, Sec. 2.2), n = 4, V = 10",
        Kind.NASH, tullock, point={f"p[{i}].x": 10.0 * 3 / 16 for i in range(4)},
    ),
    Instance(
        "harker_1991",
        "Harker, Eur. J. Oper. Res. 54(1), 1991: generalised Nash game with a shared constraint; "
        "variational equilibrium (5, 9) (Facchinei & Kanzow, 4OR 5(3), 2007)",
        Kind.NASH, harker, point={"p[0].x": 5.0, "p[1].x": 9.0},
        needs=frozenset({Need.SHARED_CONSTRAINTS}),
    ),
]
