"""The disciplined-convex detector (epec/convexity.py): a table of expressions with their
curvature in the decision ``y``, every other Var (``x``) a constant at its value."""
import pyomo.environ as pyo
import pytest

from epec.convexity import Curvature, convex_program, curvature, declare_convex_program, declared_reason
from epec.reformulation import clone_with_map

VX, CV, A, C, U = (Curvature.CONVEX, Curvature.CONCAVE, Curvature.AFFINE, Curvature.CONSTANT,
                   Curvature.UNKNOWN)


def _model():
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1), initialize=0.5)  # another player's decision: a constant
    m.y = pyo.Var(bounds=(-1, 1), initialize=0.2)
    m.z = pyo.Var(bounds=(0.5, 4), initialize=1.0)
    m.w = pyo.Var(bounds=(-2, 3), initialize=0.0)
    m.p = pyo.Param(initialize=-2.0, mutable=True)
    return m


TABLE = [
    ("x", lambda m: m.x * 3 + m.p, C),
    ("affine", lambda m: 2 * m.y - m.x * m.z + 1, A),
    ("square of affine", lambda m: (m.y - m.x / 2) ** 2, VX),
    ("maximised square (reproducer 2)", lambda m: -(m.y - m.x / 2) ** 2, CV),
    ("cubic on a box through 0 (reproducer 3)", lambda m: m.y ** 3 / 3 - m.x * m.y, U),
    ("cubic on z > 0", lambda m: m.z ** 3, VX),
    ("cubic on y <= 0 side unknown", lambda m: m.y ** 3, U),
    ("fourth power", lambda m: (m.y + m.w) ** 4, VX),
    ("p in (0,1) on z > 0", lambda m: m.z ** 0.5, CV),
    ("p in (0,1) on y, sign unknown", lambda m: m.y ** 0.5, U),
    ("p < 0 on z > 0", lambda m: m.z ** -1, VX),
    ("constant over positive", lambda m: 3 / (m.z + 1), VX),
    ("negative constant over positive", lambda m: m.p / m.z, CV),
    ("division by a positive constant", lambda m: (m.y ** 2) / 4, VX),
    ("division by the negative Param", lambda m: (m.y ** 2) / m.p, CV),
    ("log", lambda m: pyo.log(m.z), CV),
    ("log of concave", lambda m: pyo.log(pyo.sqrt(m.z) + 1), CV),
    ("log of convex", lambda m: pyo.log(m.z ** 2), U),
    ("sqrt", lambda m: pyo.sqrt(m.y + 1), CV),
    ("exp", lambda m: pyo.exp(m.y), VX),
    ("exp of convex", lambda m: pyo.exp(m.y ** 2), VX),
    ("exp of concave", lambda m: pyo.exp(pyo.log(m.z)), U),
    ("negation", lambda m: -pyo.exp(m.y), CV),
    ("abs of affine", lambda m: abs(m.y - 0.3), VX),
    ("constant base power", lambda m: 2 ** m.y, VX),
    ("sum convex + concave", lambda m: m.y ** 2 + pyo.log(m.z), U),
    ("product by negative constant", lambda m: -3 * m.z ** 2, CV),
    ("product by other player's variable (x >= 0)", lambda m: m.x * m.y ** 2, VX),
    ("PSD quadratic form", lambda m: m.y * m.w + m.y ** 2 + m.w ** 2, VX),
    ("indefinite quadratic form", lambda m: m.y * m.w, U),
    ("NSD bilinear", lambda m: -(m.y * m.y) - m.w * m.w + m.y * m.w, CV),
    ("ratio of decisions", lambda m: m.y / m.z, U),
    ("sin", lambda m: pyo.sin(m.y), U),
    ("named expression", lambda m: m.e, VX),
]


@pytest.mark.parametrize("name, build, expected", TABLE, ids=[t[0] for t in TABLE])
def test_curvature_table(name, build, expected):
    m = _model()
    m.e = pyo.Expression(expr=(m.y - 1) ** 2 + m.z)
    assert curvature(build(m), [m.y, m.z, m.w]) is expected


def test_convex_program_feasible_set():
    m = _model()
    decisions = [m.y, m.z]
    obj = pyo.Objective(expr=pyo.log(m.z) - m.y ** 2, sense=pyo.maximize)
    m.obj = obj
    m.budget = pyo.Constraint(expr=m.y ** 2 + m.z <= 3)
    m.floor = pyo.Constraint(expr=pyo.sqrt(m.z) >= 0.1)
    m.eq = pyo.Constraint(expr=m.y + m.x * m.z == 0.1)
    assert convex_program(m.obj, [m.budget, m.floor, m.eq], decisions) == (True, "")
    m.bad = pyo.Constraint(expr=m.y ** 2 >= 0.1)  # a reverse-convex constraint
    ok, why = convex_program(m.obj, [m.budget, m.bad], decisions)
    assert not ok and "bad" in why
    m.bad_eq = pyo.Constraint(expr=m.y ** 2 == 0.1)
    assert not convex_program(m.obj, [m.bad_eq], decisions)[0]
    m.obj.sense = pyo.minimize  # a concave objective minimised
    assert not convex_program(m.obj, [], decisions)[0]


def test_metatrading_follower_is_not_provable_by_the_rules():
    """The proportional share R IoM / (sum_k IoM_k + eps0) is a quotient of decisions: the rules
    do not prove it, which is why solve_scenario declares it (docs/model.md section 4)."""
    from epec.kkt import player_objective, player_variables
    from models import build_game, preset

    game = build_game(preset("default"))
    b = game.mu[0]
    ok, why = convex_program(player_objective(b), [], player_variables(b))
    assert not ok and "not proven concave" in why


def test_declaration_travels_with_the_clone():
    m = _model()
    m.F = pyo.Block()
    with pytest.raises(ValueError):
        declare_convex_program(m.F, "")
    declare_convex_program(m.F, "concave (a reason)")
    clone, memo = clone_with_map(m)
    assert declared_reason(memo[id(m.F)]) == "concave (a reason)"
    assert declared_reason(m) is None


def test_interval_hessian_proves_a_cournot_revenue_concave():
    """A Cournot follower's profit y p(x + y) - c y - k y^2 / 2 with p(Q) = a / Q is not
    disciplined-convex (a product of y and a function of y), but its second derivative,
    bounded by interval arithmetic over the box, is negative: proven concave (the MacMPEC gnash
    followers). Without the quadratic cost the bound does not settle the sign (x small): UNKNOWN."""
    from epec.convexity import hessian_curvature

    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(0, 1000), initialize=400.0)  # the other firms' total output
    m.y = pyo.Var(bounds=(0, 150), initialize=30.0)
    profit = m.y * 5000.0 / (m.x + m.y) - 8 * m.y - 0.5 * 0.23 * m.y ** 2
    # Execute / Assert
    assert curvature(profit, [m.y]) is U
    assert hessian_curvature(profit, [m.y]) is CV
    m.obj = pyo.Objective(expr=profit, sense=pyo.maximize)
    assert convex_program(m.obj, [], [m.y]) == (True, "")
    m.x.set_value(1e-3)
    assert hessian_curvature(m.y * 5000.0 / (m.x + m.y), [m.y]) is U


def test_interval_hessian_refuses_a_cubic_through_zero_and_an_unbounded_decision():
    m = pyo.ConcreteModel()
    m.y = pyo.Var(bounds=(-1, 1))
    m.u = pyo.Var()
    from epec.convexity import hessian_curvature

    assert hessian_curvature(m.y ** 3, [m.y]) is U
    assert hessian_curvature(m.y ** 4 + m.y ** 2, [m.y]) is VX
    assert hessian_curvature(m.u ** 2 * m.y, [m.u, m.y]) is U


def test_convexity_for_every_decision_of_the_others():
    """``-x y^2 + y^4 / 2`` minimised over ``y in [-1, 1]`` is convex at ``x = 0`` (only ``y^4``
    is left) and at every ``x <= 0``; at ``x > 0`` it has two minima ``+-sqrt(x)``: proven at
    the point, refused for ``x`` over its bounds, proven again over the box ``x in [-1, 0]``."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(bounds=(-1, 1), initialize=0.0)
    m.y = pyo.Var(bounds=(-1, 1))
    m.obj = pyo.Objective(expr=-m.x * m.y ** 2 + m.y ** 4 / 2)
    # Execute / Assert
    assert convex_program(m.obj, [], [m.y]) == (True, "")
    assert convex_program(m.obj, [], [m.y], varying=[m.x])[0] is False
    from pyomo.common.collections import ComponentMap

    assert convex_program(m.obj, [], [m.y], varying=ComponentMap([(m.x, (-1.0, 0.0))])) == (True, "")


def test_interval_hessian_bisects_the_decisions_box():
    """The MacMPEC gnash10 follower at a deviation (the other outputs summing to 188.2): its
    profit ``y 5000 / (188.2 + y) - 2 y - 0.0669 y^2`` has second derivative
    ``10000 (y - Q) / Q^3 - 0.134 < 0`` (``Q = 188.2 + y > y``), but interval bounds over the
    whole ``y in [0, 150]`` lose the link between ``y`` and ``Q`` and do not settle the sign
    (upper bound ~ +0.004); over the two halves they do: proven concave by bisection."""
    from epec.convexity import _hessian_box, _second_derivatives, hessian_curvature
    from pyomo.common.collections import ComponentMap

    m = pyo.ConcreteModel()
    m.rest = pyo.Var(bounds=(0, 600), initialize=188.2)
    m.y = pyo.Var(bounds=(0, 150))
    profit = m.y * (5000.0 * (m.rest + m.y) ** -1.0) - 2 * m.y - 0.0668740304976422 * m.y ** 2
    H = _second_derivatives(profit, [m.y])
    fixed = ComponentMap([(m.rest, (188.2, 188.2))])
    # Execute / Assert: one box is not enough, the bisection is
    assert _hessian_box(H, [m.y], [(0.0, 150.0)], fixed) is U
    assert hessian_curvature(profit, [m.y]) is CV
    # ... and a function that is not concave is never proven so by splitting (y^3 through 0)
    assert hessian_curvature(m.y ** 3 - 75 * m.y ** 2, [m.y]) is U
