"""Games from Pyomo blocks: automatic KKT systems, MPEC reformulations, Nash / bilevel / EPEC
solves with certificates.

One import line::

    from epec import kkt, multiplier, solve_nash, solve_bilevel, solve_epec, ScholtesRelaxation

``epec.sweep`` is the function (certified equilibrium paths, :mod:`epec.sweep`); ``epec.Sweep``
is one diagonalisation sweep of a solve's history.
"""
from .bilevel import solve_bilevel
from .certificate import Certificate, certify
from .constraints import GameStructureError
from .diagonalisation import solve_epec
from .game import Workspace
from .kkt import KKTError, KKTResidual, KKTSystem, LiftedAggregates, kkt, player_objective, player_variables
from .multipliers import MultiplierError, multiplier
from .nash import solve_nash
from .options import CertificateOptions, GlobalOptions, LeaderStep, Method
from .response import FollowerResponse, Response, ResponseOptions
from .reformulation import (
    HomotopyResult,
    HomotopyStep,
    InverseData,
    Reformulation,
    ReformulationError,
    complementarity_pairs,
)
from .checks import check_int, check_positive
from .modes import MODES, make_mode, mode_help, mode_names, register_mode
# the built-in modes register themselves when imported (this order: the CLI's)
from .scholtes import ScholtesRelaxation
from .smoothing import FischerBurmeisterSmoothing
from .penalty import PenaltyMode
from .results import GameResult, GameStatus, GlobalMove, Sweep
from .scenario import ScenarioSolution, solve_scenario
from .sweep import PARAMETERS as SWEEP_PARAMETERS
from .sweep import SweepOptions, apply_parameter, sensitivities, sweep, sweep_path

__all__ = [
    "Certificate", "certify", "GameStructureError", "ScenarioSolution", "solve_scenario",
    "sweep", "sweep_path", "SweepOptions", "SWEEP_PARAMETERS", "apply_parameter", "sensitivities",
    "CertificateOptions", "GameResult", "GameStatus", "GlobalMove", "GlobalOptions", "LeaderStep", "Method", "Sweep",
    "FollowerResponse", "Response", "ResponseOptions",
    "solve_bilevel", "solve_epec", "solve_nash", "Workspace",
    "KKTError", "KKTResidual", "KKTSystem", "LiftedAggregates", "kkt", "player_objective",
    "player_variables", "MultiplierError", "multiplier",
    "PenaltyMode", "ScholtesRelaxation", "FischerBurmeisterSmoothing",
    "HomotopyResult", "HomotopyStep", "InverseData", "Reformulation",
    "ReformulationError", "complementarity_pairs",
    "MODES", "make_mode", "mode_help", "mode_names", "register_mode", "check_int", "check_positive",
]
