"""Small NLPs with known optima, shared by the solver tests.

Each builder returns ``(model, x_star, f_star)`` with ``x_star`` a ComponentMap {VarData: value}
(VarData is unhashable).
"""
from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap


def rosenbrock():
    m = pyo.ConcreteModel(name="rosenbrock")
    m.x = pyo.Var(initialize=-1.2)
    m.y = pyo.Var(initialize=1.0)
    m.obj = pyo.Objective(expr=(1 - m.x) ** 2 + 100 * (m.y - m.x ** 2) ** 2)
    return m, ComponentMap([(m.x, 1.0), (m.y, 1.0)]), 0.0


def hs071():
    """Hock & Schittkowski (1981) problem 71."""
    m = pyo.ConcreteModel(name="hs071")
    m.x = pyo.Var(range(4), bounds=(1, 5))
    for i, v in enumerate((1, 5, 5, 1)):
        m.x[i].value = v
    x = m.x
    m.obj = pyo.Objective(expr=x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2])
    m.prod = pyo.Constraint(expr=x[0] * x[1] * x[2] * x[3] >= 25)
    m.sphere = pyo.Constraint(expr=sum(x[i] ** 2 for i in range(4)) == 40)
    x_star = ComponentMap(zip((x[0], x[1], x[2], x[3]), (1.0, 4.74299963, 3.82114998, 1.37940829)))
    return m, x_star, 17.0140173


def projection_qp(n: int = 6, b: float = 1.0):
    """min 1/2 ||x - a||^2 s.t. sum x = b  ->  x = a - (sum a - b)/n."""
    a = np.linspace(-1.0, 2.0, n)
    m = pyo.ConcreteModel(name="projection_qp")
    m.I = pyo.RangeSet(0, n - 1)
    m.a = pyo.Param(m.I, initialize=dict(enumerate(a)), mutable=True)
    m.b = pyo.Param(initialize=b, mutable=True)
    m.x = pyo.Var(m.I)
    m.obj = pyo.Objective(expr=0.5 * sum((m.x[i] - m.a[i]) ** 2 for i in m.I))
    m.total = pyo.Constraint(expr=sum(m.x[i] for i in m.I) == m.b)
    shift = (a.sum() - b) / n
    return m, ComponentMap((m.x[i], a[i] - shift) for i in m.I), 0.5 * n * shift ** 2


def maximise_product():
    """max x y s.t. x + y <= 4, x, y >= 0  ->  (2, 2), 4."""
    m = pyo.ConcreteModel(name="maximise_product")
    m.x = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.5)
    m.y = pyo.Var(domain=pyo.NonNegativeReals, initialize=0.5)
    m.obj = pyo.Objective(expr=m.x * m.y, sense=pyo.maximize)
    m.budget = pyo.Constraint(expr=m.x + m.y <= 4)
    return m, ComponentMap([(m.x, 2.0), (m.y, 2.0)]), 4.0


def mixed_constraints():
    """min x^2 + y^2 + z^2 s.t. x + y = 2, z >= 1, 0.5 <= x - y <= 1  ->  (1.25, 0.75, 1), 3.125."""
    m = pyo.ConcreteModel(name="mixed_constraints")
    m.x = pyo.Var()
    m.y = pyo.Var()
    m.z = pyo.Var()
    m.sq = pyo.Expression(expr=m.x ** 2 + m.y ** 2)  # a named Expression used twice below
    m.obj = pyo.Objective(expr=m.sq + m.z ** 2)
    m.eq = pyo.Constraint(expr=m.x + m.y == 2)
    m.ineq = pyo.Constraint(expr=m.z >= 1)
    m.ranged = pyo.Constraint(expr=pyo.inequality(0.5, m.x - m.y, 1))
    m.cap = pyo.Constraint(expr=m.sq <= 10)
    return m, ComponentMap([(m.x, 1.25), (m.y, 0.75), (m.z, 1.0)]), 3.125


def log_exp():
    """min exp(x) - 2x + y - log(y)  ->  (ln 2, 1), 3 - 2 ln 2."""
    m = pyo.ConcreteModel(name="log_exp")
    m.x = pyo.Var(initialize=0.0)
    m.y = pyo.Var(bounds=(1e-6, None), initialize=3.0)
    m.obj = pyo.Objective(expr=pyo.exp(m.x) - 2 * m.x + m.y - pyo.log(m.y))
    return m, ComponentMap([(m.x, math.log(2.0)), (m.y, 1.0)]), 3.0 - 2.0 * math.log(2.0)


PROBLEMS = {
    "rosenbrock": (rosenbrock, 1e-6),
    "hs071": (hs071, 1e-6),
    "projection_qp": (projection_qp, 1e-7),
    "maximise_product": (maximise_product, 1e-6),
    "mixed_constraints": (mixed_constraints, 1e-7),
    "log_exp": (log_exp, 1e-7),
}
