"""Pricing schemes and the scheme comparison loop (docs/model.md section 8), beside the market they
act in: the schemes and their registry (:mod:`drl.compare.schemes`) and one comparison run with
FL per trading round (:mod:`drl.compare.run`: the loop uses ``fl`` at run time), its options
(:mod:`drl.compare.config`) and the reward levels, round deadlines and frontier shared by every
scheme (:mod:`drl.compare.levels`). The report, the
plots and the command are in ``benchmarks.compare``.

One import line::

    from drl.compare import Scheme, Decision, register_scheme, CompareConfig, run_runs
"""
from .config import DEFAULT_TARGETS, CompareConfig
from .levels import (FRONTIER_LEVELS, budget_level, fixed_frontier, levels_for, market_means, mean_payment,
                     round_deadlines)
from .run import record_path, run_runs, run_scheme
from .schemes import (
    BUILTIN_SCHEMES,
    SCHEMES,
    Decision,
    DRLScheme,
    EpecScheme,
    FixedScheme,
    Group,
    HillClimber,
    HillClimbOptions,
    HillClimbScheme,
    LevelledScheme,
    LevelSetting,
    RandomScheme,
    RoundInfo,
    RoundOutcome,
    Scheme,
    SchemeSetup,
    SingleLeaderScheme,
    StaticScheme,
    UncertifiedStart,
    drl_available,
    make_scheme,
    register_scheme,
    scheme_names,
)

__all__ = [
    "DEFAULT_TARGETS", "FRONTIER_LEVELS", "CompareConfig", "budget_level", "fixed_frontier", "levels_for",
    "market_means", "mean_payment", "record_path", "round_deadlines", "run_runs", "run_scheme",
    "BUILTIN_SCHEMES", "SCHEMES", "Decision", "DRLScheme", "EpecScheme", "FixedScheme", "Group", "HillClimber",
    "HillClimbOptions", "HillClimbScheme", "LevelledScheme", "LevelSetting", "RandomScheme", "RoundInfo",
    "RoundOutcome", "Scheme", "SchemeSetup", "SingleLeaderScheme", "StaticScheme", "UncertifiedStart",
    "drl_available", "make_scheme", "register_scheme", "scheme_names",
]
