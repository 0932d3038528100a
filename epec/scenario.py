"""The MetaTrading EPEC of a :class:`models.Scenario`, solved and certified in one call.

The game of MODEL.md (MSPs lead with rewards, MUs follow with CPU) is built as Pyomo player
blocks by :func:`models.build_game` and solved by :func:`epec.solve_epec`; the answer is read
back as arrays and the followers' KKT conditions are checked once more by the independent numpy
implementation :func:`models.follower_kkt_residual`. This is the certified reference that the
command line, the learned pricing (``drl/``) and the scheme comparisons build on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .diagonalisation import solve_epec
from .options import CertificateOptions, LeaderStep
from .results import GameResult

__all__ = ["ScenarioSolution", "solve_scenario"]


@dataclass(frozen=True)
class ScenarioSolution:
    """The EPEC of one scenario.

    Attributes
    ----------
    scenario : models.Scenario
    result : GameResult
        The solve (status, message, certificate, history, timings).
    model : pyomo ConcreteModel
        The game (:func:`models.build_game`), the solution loaded into it when ``ok``.
    R : ndarray (M,) or None
        The MSPs' rewards at the equilibrium (None unless ``ok``).
    f : ndarray (N, M) or None
        The MUs' CPU allocations in GHz at the equilibrium (None unless ``ok``).
    numpy_kkt : models.FollowerKKTResidual or None
        The followers' KKT residual from the independent numpy checker (None unless ``ok``).
    """

    scenario: Any
    result: GameResult
    model: Any
    R: np.ndarray | None = None
    f: np.ndarray | None = None
    numpy_kkt: Any = None

    @property
    def ok(self) -> bool:
        """The solve ended certified (``result.ok``)."""
        return self.result.ok


def solve_scenario(
    scenario: Any,
    *,
    method: str = "gauss-seidel",
    mode: str = "scholtes",
    tol: float = 1e-6,
    max_iter: int = 50,
    damping: float = 1.0,
    grid: int = 41,
    certify: bool = True,
    leader_step: LeaderStep | str = LeaderStep.IMPLICIT,
    callback: Callable[[int, Any, float], Any] | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    **epec_options: Any,
) -> ScenarioSolution:
    """Build the game of ``scenario``, solve its EPEC with :func:`epec.solve_epec` and read the
    equilibrium back.

    Parameters
    ----------
    scenario : models.Scenario
    method, mode, tol, max_iter, damping, leader_step, callback, progress
        As :func:`epec.solve_epec` (defaults: Gauss-Seidel, Scholtes, 1e-6, 50 sweeps, no
        damping, implicit leader steps).
    grid : int, default 41
        Deviation-grid points per MSP in the certificate (:class:`epec.CertificateOptions`).
    certify : bool, default True
    **epec_options
        Any other keyword of :func:`epec.solve_epec`.

    Returns
    -------
    ScenarioSolution
        ``R``, ``f`` and ``numpy_kkt`` are filled when the solve is ``ok``.
    """
    from models.equilibrium import follower_kkt_residual
    from models.game import allocations, build_game, rewards

    model = build_game(scenario)
    res = solve_epec(
        model, leaders=[model.msp], followers=[model.mu], method=method, mode=mode, damping=damping,
        tol=tol, max_iter=max_iter, certify=certify, certificate=CertificateOptions(grid=grid),
        leader_step=LeaderStep(leader_step), callback=callback, progress=progress, **epec_options,
    )
    if not res.ok:
        return ScenarioSolution(scenario, res, model)
    R, f = rewards(model), allocations(model)
    return ScenarioSolution(scenario, res, model, R, f, follower_kkt_residual(scenario, R, f))
