"""Catalogue of games with known solutions, written as Pyomo blocks (shared by the epec tests).

Each :class:`Problem` builds a fresh model and says which blocks are players, leaders and
followers, the known solution (Var name -> value) and its own tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyomo.environ as pyo

from epec.convexity import declare_convex_program


class Kind:
    NASH = "nash"
    BILEVEL = "bilevel"
    EPEC = "epec"


@dataclass(frozen=True)
class Problem:
    """A game, its known solution ``expected`` (Var name -> value) and tolerance ``tol``."""

    name: str
    kind: str
    build: Callable[[], pyo.ConcreteModel]
    expected: dict
    tol: float
    players: Callable[[pyo.ConcreteModel], list] = lambda m: []
    leaders: Callable[[pyo.ConcreteModel], list] = lambda m: []
    objective: float | None = None  # leader objective at the optimum (bilevel)
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # short ids in pytest output
        return self.name


# --- Tullock contest -------------------------------------------------------------------------
def tullock(n: int = 4, V: float = 10.0) -> pyo.ConcreteModel:
    """``max_{x_i >= 0} V x_i / sum_j x_j - x_i`` with the sum a model-level Expression."""
    m = pyo.ConcreteModel()
    m.I = pyo.RangeSet(0, n - 1)
    m.p = pyo.Block(m.I)
    for i in m.I:
        m.p[i].x = pyo.Var(domain=pyo.NonNegativeReals, initialize=1.0 + 0.3 * i)
    m.total = pyo.Expression(expr=sum(m.p[i].x for i in m.I))
    for i in m.I:
        m.p[i].U = pyo.Objective(expr=V * m.p[i].x / m.total - m.p[i].x, sense=pyo.maximize)
        m.p[i].cap = pyo.Constraint(expr=m.p[i].x <= V)  # never binding: exercises an inequality
    return m


TULLOCK = Problem(
    "tullock4", Kind.NASH, lambda: tullock(4, 10.0),
    # Symmetric Tullock contest: x* = V (n - 1) / n^2 (Tullock 1980; e.g. Konrad, Strategy and
    # Dynamics in Contests, 2009, sec. 2.2): 10 * 3 / 16.
    {f"p[{i}].x": 10.0 * 3 / 16 for i in range(4)}, 1e-4,
    players=lambda m: [m.p],
)


# --- Nash-Cournot oligopoly ------------------------------------------------------------------
COURNOT_A, COURNOT_B, COURNOT_C = 100.0, 1.0, (10.0, 15.0, 20.0)


def cournot() -> pyo.ConcreteModel:
    """Firms ``max_{q_i >= 0} (a - b Q) q_i - c_i q_i`` with ``Q`` a model-level Expression."""
    m = pyo.ConcreteModel()
    n = len(COURNOT_C)
    m.firm = pyo.Block(range(n))
    for i in range(n):
        m.firm[i].q = pyo.Var(bounds=(0, 200), initialize=1.0)
    m.Q = pyo.Expression(expr=sum(m.firm[i].q for i in range(n)))
    for i in range(n):
        m.firm[i].profit = pyo.Objective(
            expr=(COURNOT_A - COURNOT_B * m.Q) * m.firm[i].q - COURNOT_C[i] * m.firm[i].q, sense=pyo.maximize)
    return m


def _cournot_q() -> list[float]:
    # FOC a - b Q - b q_i - c_i = 0 summed: Q = (n a - sum c) / (b (n + 1)); q_i = (a - c_i - b Q) / b.
    n = len(COURNOT_C)
    Q = (n * COURNOT_A - sum(COURNOT_C)) / (COURNOT_B * (n + 1))
    return [(COURNOT_A - c - COURNOT_B * Q) / COURNOT_B for c in COURNOT_C]


COURNOT = Problem(
    "cournot3", Kind.NASH, cournot, {f"firm[{i}].q": q for i, q in enumerate(_cournot_q())}, 1e-4,
    players=lambda m: [m.firm],
)


# --- Stackelberg duopoly (bilevel) -----------------------------------------------------------
SA, SB, SC1, SC2 = 100.0, 1.0, 10.0, 20.0


def stackelberg() -> pyo.ConcreteModel:
    """Leader ``max_{q1 in [0, 100]} (a - b(q1 + q2) - c1) q1``; follower best response q2."""
    m = pyo.ConcreteModel()
    m.q1 = pyo.Var(bounds=(0, 100), initialize=10.0)
    m.f = pyo.Block()
    m.f.q2 = pyo.Var(domain=pyo.NonNegativeReals, initialize=10.0)
    m.f.profit = pyo.Objective(expr=(SA - SB * (m.q1 + m.f.q2) - SC2) * m.f.q2, sense=pyo.maximize)
    m.profit = pyo.Objective(expr=(SA - SB * (m.q1 + m.f.q2) - SC1) * m.q1, sense=pyo.maximize)
    return m


STACKELBERG = Problem(
    "stackelberg", Kind.BILEVEL, stackelberg,
    # Follower q2 = (a - c2 - b q1) / (2b); leader then q1 = (a - 2 c1 + c2) / (2b) = 50,
    # q2 = (a + 2 c1 - 3 c2) / (4b) = 15, leader profit 1250 (von Stackelberg 1934; any IO text).
    {"q1": (SA - 2 * SC1 + SC2) / (2 * SB), "f.q2": (SA + 2 * SC1 - 3 * SC2) / (4 * SB)}, 1e-3,
    players=lambda m: [m.f], objective=1250.0,
)


# --- Bard (1998), Example 5.1.1 (linear bilevel) ---------------------------------------------
def bard_511() -> pyo.ConcreteModel:
    """``min_{x >= 0} x - 4y`` s.t. ``y in argmin_{y >= 0} {y : -x - y <= -3, -2x + y <= 0,
    2x + y <= 12, 3x - 2y <= 4}``."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 10), initialize=3.0)
    m.sub = pyo.Block()
    m.sub.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=1.0)
    m.sub.o = pyo.Objective(expr=m.sub.y)
    m.sub.c1 = pyo.Constraint(expr=-m.x - m.sub.y <= -3)
    m.sub.c2 = pyo.Constraint(expr=-2 * m.x + m.sub.y <= 0)
    m.sub.c3 = pyo.Constraint(expr=2 * m.x + m.sub.y <= 12)
    m.sub.c4 = pyo.Constraint(expr=3 * m.x - 2 * m.sub.y <= 4)
    m.o = pyo.Objective(expr=m.x - 4 * m.sub.y)
    return m


BARD_511 = Problem(
    "bard1998_ex511", Kind.BILEVEL, bard_511,
    # Bard, Practical Bilevel Optimization (Kluwer 1998), Example 5.1.1: (x*, y*) = (4, 4),
    # F* = -12. By hand: y(x) = max(3 - x, (3x - 4)/2) on x in [1, 4]; F = 8 - 5x on [2, 4].
    {"x": 4.0, "sub.y": 4.0}, 1e-3, players=lambda m: [m.sub], objective=-12.0,
)


# --- Bard's quadratic example (BilevelJuMP "bard1") ------------------------------------------
def bard_quadratic() -> pyo.ConcreteModel:
    """``min_{x >= 0} (x - 3)^2 + (y - 2)^2`` s.t. ``y in argmin_{0 <= y <= 4} (y - x)^2``."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 10), initialize=0.5)
    m.low = pyo.Block()
    m.low.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.0)
    m.low.o = pyo.Objective(expr=(m.low.y - m.x) ** 2)
    m.low.cap = pyo.Constraint(expr=m.low.y <= 4)
    m.o = pyo.Objective(expr=(m.x - 3) ** 2 + (m.low.y - 2) ** 2)
    return m


BARD_QUAD = Problem(
    "bard_quadratic", Kind.BILEVEL, bard_quadratic,
    # Follower y = min(x, 4) (x >= 0); leader min (x-3)^2 + (x-2)^2 -> x* = y* = 2.5, F* = 0.5
    # (Bard 1998, Ch. 8 test problem; BilevelJuMP's academic test set "bard1").
    {"x": 2.5, "low.y": 2.5}, 1e-3, players=lambda m: [m.low], objective=0.5,
)


# --- Multi-leader common-follower Cournot (EPEC) ---------------------------------------------
MA, MB, MC, MCF, ML, MF = 100.0, 1.0, 10.0, 10.0, 2, 2


def multi_leader_cournot() -> pyo.ConcreteModel:
    """``ML`` Stackelberg leaders and ``MF`` Cournot followers on one market ``P = a - b(X + Y)``.

    Closed form (symmetric). Followers, given the leaders' total X, play Cournot:
    ``y = (a - c_f - b X) / (b (F + 1))`` each, so ``P = (a + F c_f - b X) / (F + 1)``. Leader i
    maximises ``(P - c) x_i``: FOC ``(a + F c_f - b X - b x_i) / (F + 1) = c``; symmetric
    ``x* = (a + F c_f - (F + 1) c) / (b (L + 1))`` = 30 and ``y* = (a - c_f - b L x*) / (b (F + 1))``
    = 10 for a = 100, b = 1, c = c_f = 10, L = F = 2. Each leader's reduced profit is concave in
    its own x_i, so the EPEC point is unique and diagonalisation converges to it.
    """
    m = pyo.ConcreteModel()
    m.leader = pyo.Block(range(ML))
    m.follower = pyo.Block(range(MF))
    for i in range(ML):
        m.leader[i].x = pyo.Var(bounds=(0, 60), initialize=10.0 + 5 * i)
    for j in range(MF):
        m.follower[j].y = pyo.Var(domain=pyo.NonNegativeReals, initialize=5.0)
    m.P = pyo.Expression(expr=MA - MB * (sum(m.leader[i].x for i in range(ML)) + sum(m.follower[j].y for j in range(MF))))
    for i in range(ML):
        m.leader[i].profit = pyo.Objective(expr=(m.P - MC) * m.leader[i].x, sense=pyo.maximize)
    for j in range(MF):
        m.follower[j].profit = pyo.Objective(expr=(m.P - MCF) * m.follower[j].y, sense=pyo.maximize)
    return m


_X = (MA + MF * MCF - (MF + 1) * MC) / (MB * (ML + 1))
_Y = (MA - MCF - MB * ML * _X) / (MB * (MF + 1))
MULTI_LEADER = Problem(
    "multi_leader_cournot", Kind.EPEC, multi_leader_cournot,
    {**{f"leader[{i}].x": _X for i in range(ML)}, **{f"follower[{j}].y": _Y for j in range(MF)}}, 1e-3,
    players=lambda m: [m.follower], leaders=lambda m: [m.leader],
)


# --- A MetaTrading-shaped proportional-share game (M leaders x N followers) ------------------
def proportional_share(n_mu: int, n_msp: int, seed: int = 0, Rmax: float = 50.0) -> pyo.ConcreteModel:
    """Leaders ``m`` post ``R_m in [0, Rmax]``; followers ``n`` pick ``f_nm >= 0``, ``sum_m f_nm <= F_n``.

    ``U_n = sum_m R_m I_nm / (S_m + eps0) - sum_m e_nm f_nm^2`` with ``I_nm = Q f / (alpha f + beta)``
    and the shared aggregate ``S_m = sum_k I_km`` (a model-level Expression);
    ``V_m = lam_m ln(1 + S_m) - R_m S_m / (S_m + eps0)`` (docs/model.md sections 3-4, random data).
    """
    rng = np.random.default_rng(seed)
    Q = rng.uniform(0.6, 0.95, (n_mu, n_msp))
    alpha = rng.uniform(1.0, 1.6, (n_mu, n_msp))
    beta = rng.uniform(0.05, 0.4, (n_mu, n_msp))
    e = rng.uniform(0.5, 2.0, (n_mu, n_msp))
    F = rng.uniform(1.0, 3.0, n_mu)
    lam = rng.uniform(40.0, 80.0, n_msp)
    eps0 = 1e-3
    m = pyo.ConcreteModel()
    m.N, m.M = pyo.RangeSet(0, n_mu - 1), pyo.RangeSet(0, n_msp - 1)
    m.msp = pyo.Block(m.M)
    m.mu = pyo.Block(m.N)
    for j in m.M:
        m.msp[j].R = pyo.Var(bounds=(0, Rmax), initialize=Rmax / 2)
    for n in m.N:
        m.mu[n].f = pyo.Var(m.M, domain=pyo.NonNegativeReals, initialize=float(F[n]) / (2 * n_msp))
        m.mu[n].budget = pyo.Constraint(expr=sum(m.mu[n].f[j] for j in m.M) <= float(F[n]))
    iom = {(n, j): Q[n, j] * m.mu[n].f[j] / (alpha[n, j] * m.mu[n].f[j] + beta[n, j]) for n in m.N for j in m.M}
    m.total = pyo.Expression(m.M, rule=lambda mm, j: sum(iom[n, j] for n in m.N))
    for n in m.N:
        m.mu[n].U = pyo.Objective(
            expr=sum(m.msp[j].R * iom[n, j] / (m.total[j] + eps0) - e[n, j] * m.mu[n].f[j] ** 2 for j in m.M),
            sense=pyo.maximize)
        # the MetaTrading share (docs/model.md section 4) is concave but not provable by the rules of
        # epec.convexity; declared as models.build_game declares it
        declare_convex_program(m.mu[n], "concave (docs/model.md §4)")
    for j in m.M:
        m.msp[j].V = pyo.Objective(
            expr=lam[j] * pyo.log(1 + m.total[j]) - m.msp[j].R * m.total[j] / (m.total[j] + eps0), sense=pyo.maximize)
    return m


NASH_PROBLEMS = [TULLOCK, COURNOT]
BILEVEL_PROBLEMS = [STACKELBERG, BARD_511, BARD_QUAD]
EPEC_PROBLEMS = [MULTI_LEADER]
