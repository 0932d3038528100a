"""IpoptOptions validation and the Ipopt status table."""
from __future__ import annotations

import pytest

from models.errors import InputError
from solvers import IpoptOptions, SolverStatus


@pytest.mark.parametrize("kwargs, field", [
    ({"tol": 0.0}, "tol"),
    ({"tol": -1e-8}, "tol"),
    ({"tol": float("nan")}, "tol"),
    ({"tol": "1e-8"}, "tol"),
    ({"max_iter": -1}, "max_iter"),
    ({"max_iter": 10.5}, "max_iter"),
    ({"max_iter": True}, "max_iter"),
    ({"print_level": 13}, "print_level"),
    ({"acceptable_tol": 0}, "acceptable_tol"),
    ({"max_cpu_time": float("inf")}, "max_cpu_time"),
    ({"warm_start_init_point": "yes"}, "warm_start_init_point"),
    ({"load_on_failure": 1}, "load_on_failure"),
    ({"extra": ["mu_strategy"]}, "extra"),
    ({"extra": {"mu_strategy": None}}, "extra.mu_strategy"),
    ({"extra": {"tol": 1e-3}}, "extra.tol"),
    ({"extra": {"fixed_variable_treatment": "relax_bounds"}}, "extra.fixed_variable_treatment"),
])
def test_invalid_options_name_the_field(kwargs, field):
    with pytest.raises(InputError) as err:
        IpoptOptions(**kwargs)
    assert err.value.field == field


def test_options_are_frozen_and_extra_is_copied():
    # Prepare
    extra = {"mu_strategy": "adaptive"}
    opts = IpoptOptions(tol=1e-6, max_iter=5, extra=extra)
    # Execute
    extra["mu_strategy"] = "monotone"
    # Assert
    assert opts.extra["mu_strategy"] == "adaptive"
    with pytest.raises(AttributeError):
        opts.tol = 1.0  # type: ignore[misc]
    assert opts.ipopt_options(warm=True)["warm_start_init_point"] == "yes"
    assert "warm_start_init_point" not in opts.ipopt_options(warm=False)


@pytest.mark.parametrize("code, status, ok", [
    (0, SolverStatus.OPTIMAL, True),
    (1, SolverStatus.ACCEPTABLE, True),
    (2, SolverStatus.INFEASIBLE, False),
    (4, SolverStatus.DIVERGING, False),
    (-1, SolverStatus.MAX_ITER, False),
    (-2, SolverStatus.RESTORATION_FAILED, False),
    (-4, SolverStatus.MAX_TIME, False),
    (-13, SolverStatus.INVALID_NUMBER, False),
    (-199, SolverStatus.INTERNAL_ERROR, False),
    (42, SolverStatus.ERROR, False),
])
def test_status_table(code, status, ok):
    assert SolverStatus.from_ipopt(code) is status and status.ok is ok
