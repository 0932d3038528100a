"""Summaries of a scheme comparison: means and 95% confidence intervals over seeds, the
headline against the paper's figures, and the plots.

Per (scheme, seed) run, averaged over its T trading rounds:

- ``iom``: the real total IoM an MSP receives per round (mean over MSPs and rounds);
- ``msp_utility``, ``mu_utility``, ``social_utility``: the sum of the MSPs' ``V_m``, of the
  MUs' ``U_n`` and of both, per round;
- ``reward``: the mean reward posted;
- ``final_accuracy``: the MSPs' mean test accuracy after the last round;
- ``time_to_target``: the MSPs' mean simulated time at which their test accuracy first reaches
  the target (null for a run where some MSP never reaches it in T rounds).

Over seeds: the mean and the 95% interval ``mean +- t(0.975, n-1) s / sqrt(n)`` (Student t,
sample standard deviation ``s``; no interval from one seed). The headline compares the
reference scheme (``drl``) with each baseline seed by seed (the same market trajectory, so
paired): IoM improvement ``100 (IoM_ref / IoM_b - 1)`` % and time-to-target reduction
``100 (1 - T_ref / T_b)`` %, and their mean over the baselines (the full-information ``epec``
oracle is reported but left out of that average); each with its interval over seeds.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["PAPER", "mean_ci", "run_metrics", "summarise", "write_plots", "METRICS"]

#: the paper's headline figures (arXiv 2410.19665, abstract): IoM improvement and time-to-target
#: reduction of the learned pricing over the baselines, on average, in %
PAPER: dict[str, dict[str, float]] = {
    "MNIST": {"iom_improvement": 38.3, "time_to_target_reduction": 43.5},
    "GTSRB": {"iom_improvement": 37.2, "time_to_target_reduction": 49.8},
}
_PAPER_SET = {"mnist5k": "MNIST", "mnist": "MNIST", "gtsrb": "GTSRB"}

METRICS = ("iom", "reward", "msp_utility", "mu_utility", "social_utility", "final_accuracy", "time_to_target")
ORACLE = "epec"


def mean_ci(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and 95% Student-t interval of the non-null ``values`` (``n`` of them)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = int(v.size)
    if n == 0:
        return {"mean": None, "ci95": None, "half_width": None, "n": 0}
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "ci95": None, "half_width": None, "n": 1}
    from scipy.stats import t as student_t

    hw = float(student_t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci95": [mean - hw, mean + hw], "half_width": hw, "n": n}


def _first_time(acc: Sequence[float], times: Sequence[float], target: float) -> float | None:
    for a, t in zip(acc, times):
        if a >= target:
            return float(t)
    return None


def run_metrics(rec: Mapping[str, Any], target: float) -> dict[str, float | None]:
    """The per-run numbers of the module docstring from one (scheme, seed) record."""
    rounds = rec["rounds"]
    acc = np.array([r["accuracy"] for r in rounds])  # (T, M)
    sim = np.array([r["sim_time"] for r in rounds])  # (T, M), cumulative per MSP
    ttt = [_first_time(acc[:, m], sim[:, m], target) for m in range(acc.shape[1])]
    return {
        "iom": float(np.mean([r["iom"] for r in rounds])),
        "reward": float(np.mean([r["R"] for r in rounds])),
        "msp_utility": float(np.mean([r["msp_utility_sum"] for r in rounds])),
        "mu_utility": float(np.mean([r["mu_utility_sum"] for r in rounds])),
        "social_utility": float(np.mean([r["social_utility"] for r in rounds])),
        "final_accuracy": float(acc[-1].mean()),
        "time_to_target": None if any(v is None for v in ttt) else float(np.mean(ttt)),
    }


def _curve(recs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Accuracy against simulated time, averaged over MSPs and seeds round by round."""
    acc = np.array([[r["accuracy"] for r in rec["rounds"]] for rec in recs])  # (S, T, M)
    sim = np.array([[r["sim_time"] for r in rec["rounds"]] for rec in recs])
    return {"sim_time": sim.mean(axis=(0, 2)).tolist(), "accuracy": acc.mean(axis=(0, 2)).tolist()}


def _paired(ref: Sequence[dict], base: Sequence[dict], key: str, fn) -> list[float | None]:
    out = []
    for a, b in zip(ref, base):
        x, y = a[key], b[key]
        out.append(None if x is None or y is None or y == 0 else fn(x, y))
    return out


def _headline(schemes: Sequence[str], per_seed: Mapping[str, list[dict]], reference: str,
              dataset: str) -> dict[str, Any]:
    paper_set = _PAPER_SET.get(dataset)
    paper = PAPER.get(paper_set) if paper_set else None
    head: dict[str, Any] = {
        "reference": reference,
        "paper_dataset": paper_set,
        "paper": paper,
        "paper_note": None if paper else f"the paper reports MNIST and GTSRB only, not {dataset}",
    }
    if reference not in per_seed:
        head.update(available=False, reason=f"scheme {reference!r} was not run")
        return head
    baselines = [s for s in schemes if s != reference]
    averaged = [s for s in baselines if s != ORACLE or reference == ORACLE]
    ref = per_seed[reference]
    imp = {b: _paired(ref, per_seed[b], "iom", lambda x, y: 100.0 * (x / y - 1.0)) for b in baselines}
    red = {b: _paired(ref, per_seed[b], "time_to_target", lambda x, y: 100.0 * (1.0 - x / y)) for b in baselines}

    def seed_avg(d: dict[str, list]) -> list[float | None]:
        n = len(ref)
        out = []
        for k in range(n):
            vals = [d[b][k] for b in averaged]
            out.append(None if not vals or any(v is None for v in vals) else float(np.mean(vals)))
        return out

    head.update(
        available=True,
        baselines=baselines,
        averaged_over=averaged,
        iom_improvement={"per_baseline": {b: mean_ci(v) for b, v in imp.items()},
                         "average": mean_ci(seed_avg(imp)),
                         "paper": paper["iom_improvement"] if paper else None},
        time_to_target_reduction={"per_baseline": {b: mean_ci(v) for b, v in red.items()},
                                  "average": mean_ci(seed_avg(red)),
                                  "paper": paper["time_to_target_reduction"] if paper else None},
    )
    return head


def summarise(cfg: Any, base: Any, ds: Any, records: Mapping[tuple[str, int], Mapping[str, Any]],
              reference: str = "drl") -> dict[str, Any]:
    """``compare.json``: settings, per scheme the means and intervals, and the headline."""
    target = cfg.accuracy_target
    per_seed: dict[str, list[dict]] = {}
    schemes: dict[str, Any] = {}
    for name in cfg.schemes:
        recs = [records[(name, s)] for s in range(cfg.seeds)]
        per_seed[name] = [run_metrics(r, target) for r in recs]
        entry = {m: mean_ci([p[m] for p in per_seed[name]]) for m in METRICS}
        entry["per_seed"] = per_seed[name]
        entry["target_reached_seeds"] = sum(p["time_to_target"] is not None for p in per_seed[name])
        entry["uncertified_rounds"] = sum(len(r["uncertified"]) for r in recs)
        entry["uncertified"] = [u for r in recs for u in r["uncertified"]]
        entry["followers_unconverged_rounds"] = sum(not x["followers_converged"] for r in recs for x in r["rounds"])
        entry["accuracy_curve"] = _curve(recs)
        entry["scheme"] = recs[0]["describe"]
        schemes[name] = entry
    return {
        "settings": {
            "scenario": cfg.scenario, "base": base.name, "n_mu": base.n_mu, "n_msp": base.n_msp,
            "dataset": ds.name, "seeds": cfg.seeds, "rounds": cfg.rounds, "target": target,
            "local_epochs": cfg.epochs if cfg.epochs is not None else base.L, "alpha": cfg.alpha,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "momentum": cfg.momentum,
            "aggregation": cfg.aggregation, "schemes": list(cfg.schemes),
        },
        "schemes": schemes,
        "headline": _headline(list(cfg.schemes), per_seed, reference, ds.name),
    }


def write_plots(out: str | Path, compare: Mapping[str, Any]) -> list[Path]:
    """``iom.png`` (IoM per scheme, 95% error bars), ``accuracy.png`` (accuracy against simulated
    time per scheme) and ``time_to_target.png``."""
    from benchmarks.plots import bar_plot, curves_plot

    out = Path(out)
    names = list(compare["schemes"])
    sch = compare["schemes"]
    st = compare["settings"]
    ci = "95% CI over seeds" if st["seeds"] > 1 else "one seed"

    def bars(key):
        return [sch[n][key]["mean"] for n in names], [sch[n][key]["half_width"] for n in names]

    bar_plot(out / "iom.png", names, *bars("iom"), "real IoM per MSP and round",
             f"IoM per scheme ({st['base']}, {st['dataset']}; {ci})")
    bar_plot(out / "time_to_target.png", names, *bars("time_to_target"),
             f"simulated s to {st['target']:g} accuracy", f"Time to target ({st['dataset']}; {ci})",
             missing="target not reached")
    curves_plot(out / "accuracy.png", {n: (sch[n]["accuracy_curve"]["sim_time"], sch[n]["accuracy_curve"]["accuracy"])
                                      for n in names},
                st["target"], "simulated time (s), mean over MSPs and seeds",
                "test accuracy, mean over MSPs and seeds", f"Accuracy against simulated time ({st['dataset']})")
    return [out / "iom.png", out / "accuracy.png", out / "time_to_target.png"]
