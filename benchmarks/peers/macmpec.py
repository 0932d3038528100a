"""MPECs of MacMPEC (Leyffer, *MacMPEC: AMPL collection of MPECs*, 2000-; the objective values
are those of the collection's table), each read as the bilevel program whose follower's KKT
conditions are the MPEC's complementarity rows.

The reading is ours and stated per instance: a follower whose stationarity row is the MPEC's
row (so its KKT system is the MPEC's constraints). Where the AMPL model leaves a leader variable
unbounded, a box that holds the optimum well inside is added (the certificate scans a box).
The table gives objective values only; points are derived by hand where the derivation is
short (marked), and not compared otherwise.
"""
from __future__ import annotations

import pyomo.environ as pyo

from .build import bilevel, multiplier
from .instance import Built, Instance, Kind, Need

__all__ = ["INSTANCES"]


def _outrata(variant: int) -> Built:
    """outrata3x: ``min_y`` a quadratic in the follower's reply and, for 32-34, in its
    multipliers, ``y in [0, 10]``.

    Follower (our reading of the rows ``nlcs1..4``, whose unknowns ``x3, x4`` are the
    multipliers of the two constraints below)::

        min_{x1, x2 >= 0} (1 + 0.2 y) x1^2 / 2 - (3 + 1.333 y) x1 + (1 + 0.1 y) x2^2 / 2 - y x2
        s.t. 0.333 x1 - x2 + 1 - 0.1 y >= 0      (multiplier x3)
             9 + 0.1 y - x1^2 - x2^2 >= 0          (multiplier x4)

    Its Lagrangian's gradient is ``nlcs1`` and ``nlcs2`` (by hand). A convex follower.
    """
    def f(x, y):
        return (0.5 * (1 + 0.2 * x[1]) * y[1] ** 2 - (3 + 1.333 * x[1]) * y[1]
                + 0.5 * (1 + 0.1 * x[1]) * y[2] ** 2 - x[1] * y[2])

    built = bilevel([(0, 10)], [(0, None)] * 2,
                    F=lambda x, y: 0.5 * ((y[1] - 3) ** 2 + (y[2] - 4) ** 2), f=f,
                    g=[lambda x, y: 0.333 * y[1] - y[2] + 1 - 0.1 * x[1] >= 0,
                       lambda x, y: 9 + 0.1 * x[1] - y[1] ** 2 - y[2] ** 2 >= 0])
    m = built.model
    if variant == 31:
        return built
    x3, x4 = multiplier(m.follower.g[1]), multiplier(m.follower.g[2])
    y1, y2 = m.follower.y[1], m.follower.y[2]
    base = (y1 - 3) ** 2 + (y2 - 4) ** 2
    expr = {32: base + (x3 - 1) ** 2,
            33: base + 10 * x4 ** 2,
            34: base + (x3 - 1) ** 2 + (x4 - 1) ** 2 + m.x[1] ** 2}[variant]
    m.obj.set_value(0.5 * expr)
    return built


def _gnash(L: float, gamma: float) -> Built:
    """gnash1x: a Stackelberg leader and four Cournot followers (Nash among themselves).

    Price ``p(Q) = 5000^(1/gamma) Q^(-1/gamma)``, ``Q = x + sum_i y_i``. Leader (firm 1):
    ``min_{0 <= x <= L} c1 x + b1/(b1+1) K1^(-1/b1) x^((1+b1)/b1) - x p(Q)``. Follower i
    (firms 2-5): ``max_{0 <= y_i <= L} y_i p(Q) - c y_i - K^(-1/b) y_i^2 / 2``, whose
    stationarity is MacMPEC's row ``F_i`` (its marginal cost is ``c + K^(-1/b) y_i``, as the
    rows are written). Each follower maximises a concave function (by hand: ``2p' + y p'' <= 0``
    for ``y <= Q``, ``gamma >= 1``).
    """
    c, K, b = (10, 8, 6, 4, 2), (5,) * 5, (1.2, 1.1, 1.0, 0.9, 0.8)
    gg = 5000.0 ** (1.0 / gamma)
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, L), initialize=L / 2)
    m.firm = pyo.Block(range(4))
    for i in range(4):
        m.firm[i].y = pyo.Var(bounds=(0, L), initialize=min(10.0, L / 2))
    m.Q = pyo.Expression(expr=m.x + sum(m.firm[i].y for i in range(4)))
    price = gg * m.Q ** (-1.0 / gamma)
    for i in range(4):
        ci, Ki, bi = c[i + 1], K[i + 1], b[i + 1]
        m.firm[i].profit = pyo.Objective(
            expr=m.firm[i].y * price - ci * m.firm[i].y - 0.5 * Ki ** (-1.0 / bi) * m.firm[i].y ** 2,
            sense=pyo.maximize)
    m.obj = pyo.Objective(expr=c[0] * m.x + b[0] / (b[0] + 1) * K[0] ** (-1 / b[0]) * m.x ** ((1 + b[0]) / b[0])
                          - m.x * price)
    return Built(m, followers=[m.firm], objectives=[m.obj])


def _mm(name: str, reading: str) -> str:
    return f"MacMPEC {name} (Leyffer); {reading}"


INSTANCES = [
    Instance(
        "stackelberg1",
        _mm("stackelberg1", "Facchinei, Jiang & Qi, Math. Program. 85, 1999, problem 6"),
        Kind.BILEVEL,
        # follower min y^2 + x y / 2 - 100 y, y >= 0 (its KKT row is F); by hand y = 50 - x/4,
        # x* = 280/3, y* = 80/3, F* = -9800/3 (the table: -3266.67)
        lambda: bilevel([(0, 200)], [(0, None)],
                        F=lambda x, y: 0.5 * x[1] ** 2 + 0.5 * x[1] * y[1] - 95 * x[1],
                        f=lambda x, y: y[1] ** 2 + 0.5 * x[1] * y[1] - 100 * y[1]),
        objective=(-3266.67,), point={"x[1]": 280 / 3, "follower.y[1]": 80 / 3}, digits=2,
    ),
    Instance(
        "jr1",
        _mm("jr1", "Jiang & Ralph; z1 boxed to [-10, 10]"),
        Kind.BILEVEL,
        # follower min z2^2/2 - z1 z2, z2 >= 0 (KKT: 0 <= z2 _|_ z2 - z1 >= 0); by hand
        # z2 = max(0, z1), z1* = z2* = 1/2
        lambda: bilevel([(-10, 10)], [(0, None)],
                        F=lambda x, y: (x[1] - 1) ** 2 + y[1] ** 2,
                        f=lambda x, y: 0.5 * y[1] ** 2 - x[1] * y[1]),
        objective=(0.5,), point={"x[1]": 0.5, "follower.y[1]": 0.5},
    ),
    Instance(
        "jr2",
        _mm("jr2", "Jiang & Ralph; z1 boxed to [-10, 10]"),
        Kind.BILEVEL,
        # the follower of jr1; by hand z1* = z2* = 1/2
        lambda: bilevel([(-10, 10)], [(0, None)],
                        F=lambda x, y: (y[1] - 1) ** 2 + x[1] ** 2,
                        f=lambda x, y: 0.5 * y[1] ** 2 - x[1] * y[1]),
        objective=(0.5,), point={"x[1]": 0.5, "follower.y[1]": 0.5},
    ),
    Instance(
        "outrata31",
        _mm("outrata31", "Outrata, SIAM J. Optim. 4(2), 1994; Scholtes 1997"),
        Kind.BILEVEL, lambda: _outrata(31), objective=(3.2077,), digits=4,
    ),
    Instance(
        "outrata32",
        _mm("outrata32", "Outrata, SIAM J. Optim. 4(2), 1994; the leader pays for the multiplier x3"),
        Kind.BILEVEL, lambda: _outrata(32), objective=(3.4494,), digits=4,
        needs=frozenset({Need.MULTIPLIERS}),
    ),
    Instance(
        "outrata33",
        _mm("outrata33", "Outrata, SIAM J. Optim. 4(2), 1994; the leader pays for the multiplier x4"),
        Kind.BILEVEL, lambda: _outrata(33), objective=(4.60425,), digits=5,
        needs=frozenset({Need.MULTIPLIERS}),
    ),
    Instance(
        "outrata34",
        _mm("outrata34", "Outrata, SIAM J. Optim. 4(2), 1994; both multipliers and y in the objective"),
        Kind.BILEVEL, lambda: _outrata(34), objective=(6.59268,), digits=5,
        needs=frozenset({Need.MULTIPLIERS}),
    ),
    Instance(
        "gnash10",
        _mm("gnash10", "Harker 1984 / Outrata oligopoly: L = 150, gamma = 1.0"),
        Kind.BILEVEL, lambda: _gnash(150.0, 1.0), objective=(-230.823,), digits=3,
    ),
    Instance(
        "gnash15",
        _mm("gnash15", "Harker 1984 / Outrata oligopoly: L = 50, gamma = 1.0"),
        Kind.BILEVEL, lambda: _gnash(50.0, 1.0), objective=(-354.699,), digits=3,
    ),
    Instance(
        "gnash19",
        _mm("gnash19", "Harker 1984 / Outrata oligopoly: L = 20, gamma = 1.7"),
        Kind.BILEVEL, lambda: _gnash(20.0, 1.7), objective=(-6.11671,), digits=5,
    ),
]
