"""Tests of solvers/equations.py: compiled square systems and Newton's method."""
from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
import pytest

from models.errors import InputError
from solvers import NewtonOptions, compile_equations, solve_newton


def _lcp():
    """Vars x, y (unknowns) and c (a fixed input)."""
    m = pyo.ConcreteModel()
    m.x = pyo.Var(initialize=1.0)
    m.y = pyo.Var(initialize=1.0)
    m.c = pyo.Var(initialize=2.0)
    m.c.fix()
    return m


@pytest.mark.parametrize("c, expected_x", [(2.0, 0.0), (-2.0, 2.0)])
def test_newton_solves_a_complementarity_system(c, expected_x):
    # Prepare: x + y = 1 and 0 <= x _|_ x + c >= 0, so x = max(0, -c) and y = 1 - x
    m = _lcp()
    m.c.fix(c)
    sys_ = compile_equations([m.x + m.y - 1], [(m.x, m.x + m.c)], unknowns=[m.x, m.y])
    z0 = sys_.read_unknowns()
    # Execute
    res = solve_newton(sys_, z0, sys_.read_inputs(), sys_.read_params(), 1e-10, factorize_at_solution=True)
    # Assert: check the exact complementarity solution by hand
    x, y = res.z
    assert res.ok and res.lu is not None
    assert x == pytest.approx(expected_x, abs=1e-9)
    assert y == pytest.approx(1.0 - expected_x, abs=1e-9)
    assert max(sys_.natural_residual(res.z, sys_.read_inputs(), sys_.read_params())) < 1e-9


def test_newton_reports_a_singular_system():
    m = _lcp()
    sys_ = compile_equations([m.x + m.y - 1, 2 * m.x + 2 * m.y - 3], [], unknowns=[m.x, m.y])
    res = solve_newton(sys_, sys_.read_unknowns(), sys_.read_inputs(), sys_.read_params(), 0.0)
    assert not res.ok


@pytest.mark.parametrize("window, expected", [(8, "stalled"), (0, "max_iter")])
def test_newton_gives_up_on_a_stalled_system(window, expected):
    # Prepare: 1 / log(log x) = 0 has no root; Newton's steps are all accepted but the residual
    # only creeps down (log log x grows by ~ a log per step)
    m = _lcp()
    sys_ = compile_equations([1 / pyo.log(pyo.log(m.x)), m.y - 1], [], unknowns=[m.x, m.y])
    options = NewtonOptions(max_iter=60, stall_window=window)
    # Execute
    res = solve_newton(sys_, np.array([20.0, 0.0]), sys_.read_inputs(), sys_.read_params(), 0.0, options)
    # Assert: stopped as stalled before max_iter (or ran all 60 with the test off)
    assert not res.ok and res.status.value == expected
    assert (res.iterations < 60) if window else (res.iterations == 60)


@pytest.mark.parametrize("bad", [dict(tol=0.0), dict(max_iter=0), dict(armijo=0.7), dict(ordering="AMD"),
                                 dict(stall_window=-1), dict(stall_ratio=1.0)])
def test_newton_options_validate(bad):
    with pytest.raises(InputError):
        NewtonOptions(**bad)


class _Rows:
    """Stands in for a compiled system in ``_factorize``: only its pivoting weights are read."""

    def __init__(self, row_scale):
        self.row_scale = row_scale


def _arrowhead(n_blocks: int = 30, seed: int = 0):
    """Block-diagonal 2x2 blocks with small entries, coupled by one last row (an aggregate's
    definition) holding large entries in every column, and a last column in every row."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n = 2 * n_blocks + 1
    A = sp.lil_matrix((n, n))
    for k in range(n_blocks):
        A[2 * k:2 * k + 2, 2 * k:2 * k + 2] = rng.uniform(0.01, 0.1, (2, 2)) + 0.05 * np.eye(2)
        A[2 * k:2 * k + 2, n - 1] = rng.uniform(0.01, 0.1, 2)
    A[n - 1, :] = rng.uniform(5.0, 10.0, n)
    return sp.csc_matrix(A)


def test_down_weighted_heavy_rows_keep_the_factors_sparse_and_the_solves_exact():
    # Prepare
    from solvers.equations import _HEAVY_ROW_SCALE, _factorize

    J = _arrowhead()
    n = J.shape[0]
    scale = np.ones(n)
    scale[-1] = _HEAVY_ROW_SCALE
    b = np.random.default_rng(1).normal(size=n)
    # Execute
    plain = _factorize(_Rows(None), J, "NATURAL")
    scaled = _factorize(_Rows(scale), J, "NATURAL")
    # Assert: partial pivoting on J takes the dense row as a pivot and fills the factors; the
    # down-weighted row does not, and both solve J x = b and J^T x = b to rounding
    assert scaled.L.nnz + scaled.U.nnz < 0.5 * (plain.L.nnz + plain.U.nnz)
    dense = J.toarray()
    for lu in (plain, scaled):
        assert np.allclose(dense @ lu.solve(b), b, atol=1e-10)
        assert np.allclose(dense.T @ lu.solve(b, trans="T"), b, atol=1e-10)


def _vars(m, **initial):
    """Scalar Vars of ``m`` with these names and initial values."""
    for name, value in initial.items():
        setattr(m, name, pyo.Var(initialize=value))
    return m


def test_dense_columns_and_output_gradients_are_the_sparse_matrices_entries():
    # Prepare: two outputs and three inputs, nonlinear in both
    m = _vars(pyo.ConcreteModel(), x=0.7, y=1.3, a=0.5, b=2.0, c=-1.5)
    sys_ = compile_equations([m.x * m.a + m.y - m.b, m.y ** 2 - m.c * m.x], unknowns=[m.x, m.y],
                             outputs=[m.x * m.y * m.a, pyo.exp(m.x) + m.b * m.c])
    z, y, p = sys_.read_unknowns(), sys_.read_inputs(), sys_.read_params()
    # Execute / Assert: the dense shortcuts equal the sparse matrices they avoid building
    Jy = sys_.input_jacobian(z, y, p, 0.0).toarray()
    for pos in ([0], [2, 1], [0, 1, 2]):
        np.testing.assert_array_equal(sys_.input_columns(z, y, p, 0.0, pos), Jy[:, pos])
    o, oz, oy = sys_.outputs(z, y, p)
    for i in range(2):
        oi, gz, gy = sys_.output_gradient(z, y, p, i)
        assert oi == o[i]
        np.testing.assert_array_equal(gz, oz.toarray()[i])
        np.testing.assert_array_equal(gy, oy.toarray()[i])


def test_lagrangian_hvp_and_directional_derivative_match_finite_differences():
    # Prepare: two equations and a smoothed pair in (x, y), an input a, a mutable Param k, two outputs
    m = _vars(pyo.ConcreteModel(), x=0.7, y=1.3, u=0.4, a=0.5)
    m.k = pyo.Param(initialize=1.7, mutable=True)
    sys_ = compile_equations([m.x * m.a * m.k + m.y ** 2 - 2.0, pyo.exp(m.y * m.k) - m.x * m.u],
                             pairs=[(m.u * m.x, m.a + m.k * m.u)], unknowns=[m.x, m.y, m.u],
                             outputs=[m.x * m.y * m.a * m.k, pyo.exp(m.x) * m.k ** 2 + m.a * m.y])
    z, y, p = sys_.read_unknowns(), sys_.read_inputs(), sys_.read_params()
    mu, nz = 0.3, 3
    rng = np.random.default_rng(0)
    c, w = rng.normal(size=2), rng.normal(size=3)
    v_zy, v_p = rng.normal(size=4), rng.normal(size=1)

    def grad(t):  # the gradient of L = c^T O - w^T F in (z, y) at (z, y, p) + t v
        zt, yt, pt = z + t * v_zy[:nz], y + t * v_zy[nz:], p + t * v_p
        _, oz, oy = sys_.outputs(zt, yt, pt)
        Fz, Fy = sys_.jacobian(zt, yt, pt, mu).toarray(), sys_.input_jacobian(zt, yt, pt, mu).toarray()
        return np.concatenate([c @ oz.toarray() - w @ Fz, c @ oy.toarray() - w @ Fy])

    # Execute
    Hzy, Hp = sys_.lagrangian_hvp(z, y, p, mu, c, w, v_zy, v_p)
    dF = sys_.directional(z, y, p, mu, v_zy, v_p)
    # Assert: (H v)_zy and dF are central differences along v; (H v)_p by the Hessian's symmetry
    t = 1e-6
    np.testing.assert_allclose(Hzy, (grad(t) - grad(-t)) / (2 * t), rtol=1e-6, atol=1e-7)
    F = [sys_.residual(z + s * v_zy[:nz], y + s * v_zy[nz:], p + s * v_p, mu) for s in (t, -t)]
    np.testing.assert_allclose(dF, (F[0] - F[1]) / (2 * t), rtol=1e-6, atol=1e-7)
    Hzy_p, _ = sys_.lagrangian_hvp(z, y, p, mu, c, w, np.zeros(4), np.ones(1))
    _, Hp_zy = sys_.lagrangian_hvp(z, y, p, mu, c, w, v_zy, np.zeros(1))
    np.testing.assert_allclose(Hp_zy, [Hzy_p @ v_zy], rtol=1e-12)
