"""Scheme comparisons (MODEL.md section 8): pricing schemes, one comparison run with FL per
trading round, and its report (means and 95% intervals over seeds, the headline beside the
paper's figures, plots).

One import line::

    from benchmarks.compare import Scheme, Decision, register_scheme, CompareConfig, run_comparison
"""
from .report import PAPER, frontier_summary, mean_ci, report_text, run_comparison, run_metrics, summarise, write_plots
from .run import (DEFAULT_TARGETS, FRONTIER_LEVELS, CompareConfig, budget_level, fixed_frontier, levels_for,
                  market_means, mean_payment, record_path, round_deadlines, run_runs, run_scheme)
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
    StaticScheme,
    UncertifiedStart,
    RoundInfo,
    RoundOutcome,
    Scheme,
    SchemeSetup,
    SingleLeaderScheme,
    drl_available,
    make_scheme,
    register_scheme,
    scheme_names,
)

__all__ = [
    "PAPER", "frontier_summary", "mean_ci", "report_text", "run_metrics", "summarise", "write_plots",
    "DEFAULT_TARGETS", "FRONTIER_LEVELS", "CompareConfig", "fixed_frontier", "levels_for", "mean_payment",
    "record_path", "round_deadlines", "run_comparison", "run_runs", "run_scheme", "budget_level", "market_means",
    "BUILTIN_SCHEMES", "SCHEMES", "Decision", "DRLScheme", "EpecScheme", "FixedScheme", "Group", "HillClimber",
    "HillClimbOptions", "HillClimbScheme", "LevelledScheme", "LevelSetting", "RandomScheme", "StaticScheme",
    "UncertifiedStart",
    "RoundInfo", "RoundOutcome", "Scheme", "SchemeSetup", "SingleLeaderScheme", "drl_available",
    "make_scheme", "register_scheme", "scheme_names",
]
