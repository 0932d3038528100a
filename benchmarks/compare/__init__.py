"""Scheme comparisons (docs/model.md section 8): the report of a comparison (means and 95% intervals
over seeds, groups, the headline beside the paper's figures, the frontier, plots). The schemes,
their registry and the comparison loop live in :mod:`drl.compare` and are re-exported here.

One import line::

    from benchmarks.compare import Scheme, Decision, register_scheme, CompareConfig, run_comparison
"""
from .report import PAPER, frontier_summary, mean_ci, report_text, run_comparison, run_metrics, summarise, write_plots
from drl.compare import *  # noqa: F401,F403  (the schemes and the loop live beside the market)
from drl.compare import __all__ as _LOOP

__all__ = ["PAPER", "frontier_summary", "mean_ci", "report_text", "run_comparison", "run_metrics", "summarise",
           "write_plots", *_LOOP]
