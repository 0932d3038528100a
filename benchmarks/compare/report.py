"""Summaries of a scheme comparison: means and 95% confidence intervals over seeds, the
groups of docs/model.md section 8, the headline against the paper's figures in both level settings,
the frontier, the report text and the plots.

Per (scheme, seed) run, averaged over its T trading rounds:

- ``iom``: the real total IoM an MSP receives per round (mean over MSPs and rounds);
- ``payment``: what an MSP pays per round (mean over MSPs and rounds); ``iom_per_payment``:
  ``iom / payment``;
- ``msp_utility``, ``mu_utility``, ``social_utility``: the sum of the MSPs' ``V_m``, of the
  MUs' ``U_n`` and of both, per round;
- ``reward``: the mean reward posted;
- ``final_accuracy``: the MSPs' mean test accuracy after the last round;
- ``time_to_target``: the MSPs' mean simulated time at which their test accuracy first reaches
  the target (null for a run where some MSP never reaches it in T rounds);
- ``missed_updates``: the updates that missed their round's deadline, summed over rounds and MSPs.

Over seeds: the mean and the 95% interval ``mean +- t(0.975, n-1) s / sqrt(n)`` (Student t,
sample standard deviation ``s``; no interval from one seed).

The headline compares the reference scheme (``drl``) with each other scheme seed by seed (the
same market trajectory, so paired): IoM and MSP-utility improvement ``100 (x_ref - x_b) / |x_b|``
% and time-to-target reduction ``100 (1 - T_ref / T_b)`` %. Their average is over the naive
group only, once per level setting: *budget-matched* (``fixed``, ``random`` at the reference's
mean payment, ``static``, ``hill_climb``) and *cap-relative* (``fixed_cap``, ``random_cap`` at
``level * Rmax``, ``static``, ``hill_climb``); the full-information references and the metric
ablations are reported per scheme, never averaged.

The frontier: ``fixed`` swept over levels on the markets alone (``run.fixed_frontier``), the
mean IoM against the mean payment with intervals over seeds, every scheme a point; its
consistency check asks whether the curve passes, within the intervals, through the
budget-matched ``fixed`` point.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["run_comparison", "PAPER", "mean_ci", "run_metrics", "summarise", "write_plots", "report_text", "METRICS", "GROUP_ORDER",
           "frontier_summary"]

#: the paper's headline figures (arXiv 2410.19665, abstract): IoM improvement and time-to-target
#: reduction of the learned pricing over the baselines, on average, in % (it gives no MSP-utility figure)
PAPER: dict[str, dict[str, float]] = {
    "MNIST": {"iom_improvement": 38.3, "time_to_target_reduction": 43.5},
    "GTSRB": {"iom_improvement": 37.2, "time_to_target_reduction": 49.8},
}
_PAPER_SET = {"mnist5k": "MNIST", "mnist": "MNIST", "gtsrb": "GTSRB"}

METRICS = ("iom", "payment", "iom_per_payment", "reward", "msp_utility", "mu_utility", "social_utility",
           "final_accuracy", "time_to_target", "missed_updates")
#: the report's groups, in order (``schemes.Group`` values)
GROUP_ORDER = ("learned", "naive", "full_information", "ablation", "other")
#: the level settings of the headline -> the level setting a naive baseline must have to be in it
SETTINGS = ("budget_matched", "cap_relative")
HEADLINE_METRICS = ("iom_improvement", "msp_utility_improvement", "time_to_target_reduction")


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
    iom = float(np.mean([r["iom"] for r in rounds]))
    payment = float(np.mean([r["payment"] for r in rounds]))
    return {
        "iom": iom,
        "payment": payment,
        "iom_per_payment": iom / payment if payment > 0 else None,
        "reward": float(np.mean([r["R"] for r in rounds])),
        "msp_utility": float(np.mean([r["msp_utility_sum"] for r in rounds])),
        "mu_utility": float(np.mean([r["mu_utility_sum"] for r in rounds])),
        "social_utility": float(np.mean([r["social_utility"] for r in rounds])),
        "final_accuracy": float(acc[-1].mean()),
        "time_to_target": None if any(v is None for v in ttt) else float(np.mean(ttt)),
        "missed_updates": float(sum(sum(r.get("missed", [])) for r in rounds)),
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


_IMPROVEMENT = {
    "iom_improvement": ("iom", lambda x, y: 100.0 * (x - y) / abs(y)),
    "msp_utility_improvement": ("msp_utility", lambda x, y: 100.0 * (x - y) / abs(y)),
    "time_to_target_reduction": ("time_to_target", lambda x, y: 100.0 * (1.0 - x / y)),
}


def _in_setting(entry: Mapping[str, Any], setting: str) -> bool:
    """Whether a naive baseline belongs to the headline of ``setting`` (an unlevelled one, such as
    ``static`` or ``hill_climb``, belongs to both)."""
    own = entry["scheme"].get("level_setting")
    return entry["group"] == "naive" and (own is None or own == setting)


def _headline(schemes: Mapping[str, Any], per_seed: Mapping[str, list[dict]], reference: str,
              dataset: str, level: float) -> dict[str, Any]:
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
    others = [s for s in schemes if s != reference]
    ref = per_seed[reference]
    paired = {k: {b: _paired(ref, per_seed[b], key, fn) for b in others} for k, (key, fn) in _IMPROVEMENT.items()}

    def seed_avg(d: dict[str, list], over: Sequence[str]) -> list[float | None]:
        out = []
        for k in range(len(ref)):
            vals = [d[b][k] for b in over]
            out.append(None if not vals or any(v is None for v in vals) else float(np.mean(vals)))
        return out

    settings = {}
    for setting in SETTINGS:
        over = [b for b in others if _in_setting(schemes[b], setting)]
        settings[setting] = {
            "averaged_over": over,
            "level": level if setting == "cap_relative" else "the reference's mean payment per MSP and seed",
            **{k: {"average": mean_ci(seed_avg(paired[k], over)) if over else mean_ci([]),
                   "paper": (paper or {}).get(k)} for k in HEADLINE_METRICS},
        }
    head.update(
        available=True,
        baselines=others,
        per_baseline={b: {k: mean_ci(paired[k][b]) for k in HEADLINE_METRICS} for b in others},
        settings=settings,
    )
    return head


def frontier_summary(frontier: Mapping[str, Any], schemes: Mapping[str, Any]) -> dict[str, Any]:
    """The frontier's curve (mean and interval over seeds per level) and its consistency check
    against the budget-matched ``fixed`` point."""
    iom = np.asarray(frontier["iom"], dtype=float)  # (S, K)
    pay = np.asarray(frontier["payment"], dtype=float)
    curve_iom = [mean_ci(list(iom[:, k])) for k in range(iom.shape[1])]
    curve_pay = [mean_ci(list(pay[:, k])) for k in range(pay.shape[1])]
    out: dict[str, Any] = {"levels": list(frontier["levels"]), "iom": curve_iom, "payment": curve_pay,
                           "per_seed": {"iom": iom.tolist(), "payment": pay.tolist()}}
    check: dict[str, Any] = {"available": False}
    point = schemes.get("fixed")
    if point is not None and point["payment"]["mean"] is not None and point["scheme"].get("level_setting") == "budget_matched":
        x = point["payment"]["mean"]
        xs = [c["mean"] for c in curve_pay]
        order = np.argsort(xs)
        xs_sorted = np.asarray(xs)[order]
        inside = xs_sorted[0] <= x <= xs_sorted[-1]
        y_curve = float(np.interp(x, xs_sorted, np.asarray([c["mean"] for c in curve_iom])[order]))
        hws = [c["half_width"] for c in curve_iom]
        hw_curve = (float(np.interp(x, xs_sorted, np.asarray(hws, dtype=float)[order]))
                    if all(h is not None for h in hws) else None)
        hw_point = point["iom"]["half_width"]
        gap = abs(y_curve - point["iom"]["mean"])
        tol = None if hw_point is None and hw_curve is None else (hw_point or 0.0) + (hw_curve or 0.0)
        check = {"available": True, "payment": x, "curve_iom": y_curve, "curve_half_width": hw_curve,
                 "point_iom": point["iom"]["mean"], "point_half_width": hw_point, "gap": gap, "tolerance": tol,
                 "within_sweep": bool(inside),
                 "passes": None if tol is None else bool(gap <= tol and inside)}
    out["consistency"] = check
    return out


def summarise(cfg: Any, base: Any, ds: Any, records: Mapping[tuple[str, int], Mapping[str, Any]],
              reference: str = "drl", frontier: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``compare.json``: settings, groups, per scheme the means and intervals, the headline in
    both level settings and the frontier."""
    target = cfg.accuracy_target
    per_seed: dict[str, list[dict]] = {}
    schemes: dict[str, Any] = {}
    for name in cfg.schemes:
        recs = [records[(name, s)] for s in range(cfg.seeds)]
        per_seed[name] = [run_metrics(r, target) for r in recs]
        entry = {m: mean_ci([p[m] for p in per_seed[name]]) for m in METRICS}
        entry["group"] = recs[0]["describe"].get("group", "other")
        entry["per_seed"] = per_seed[name]
        entry["level_per_seed"] = [r.get("level") for r in recs]
        entry["target_reached_seeds"] = sum(p["time_to_target"] is not None for p in per_seed[name])
        entry["uncertified_rounds"] = sum(len(r["uncertified"]) for r in recs)
        entry["uncertified"] = [u for r in recs for u in r["uncertified"]]
        entry["followers_unconverged_rounds"] = sum(not x["followers_converged"] for r in recs for x in r["rounds"])
        entry["accuracy_curve"] = _curve(recs)
        entry["scheme"] = recs[0]["describe"]
        schemes[name] = entry
    groups = {g: [n for n in schemes if schemes[n]["group"] == g] for g in GROUP_ORDER}
    groups = {g: v for g, v in groups.items() if v}
    level = getattr(cfg, "level", 0.5)
    deadline = getattr(cfg, "deadline", math.inf)
    return {
        "settings": {
            "scenario": cfg.scenario, "base": base.name, "n_mu": base.n_mu, "n_msp": base.n_msp,
            "dataset": ds.name, "seeds": cfg.seeds, "rounds": cfg.rounds, "target": target,
            "local_epochs": cfg.epochs if cfg.epochs is not None else base.L, "alpha": cfg.alpha,
            "batch_size": cfg.batch_size, "lr": cfg.lr, "momentum": cfg.momentum,
            "aggregation": cfg.aggregation, "schemes": list(cfg.schemes), "reference": reference,
            "level": level, "deadline": str(deadline),
        },
        "groups": groups,
        "schemes": schemes,
        "headline": _headline(schemes, per_seed, reference, ds.name, level),
        "frontier": None if frontier is None else frontier_summary(frontier, schemes),
    }


def _fmt(s: Mapping[str, Any] | None, digits: int = 3) -> str:
    if s is None or s["mean"] is None:
        return "n/a"
    if s["half_width"] is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['half_width']:.{digits}f}"


_GROUP_TITLE = {"learned": "Learned pricing", "naive": "Naive baselines (the headline's average)",
                "full_information": "Full-information references (not averaged)",
                "ablation": "Metric ablations (not averaged)", "other": "Other schemes (not averaged)"}
_HEAD_TITLE = {"iom_improvement": "IoM improvement", "msp_utility_improvement": "MSP-utility improvement",
               "time_to_target_reduction": "time-to-target reduction"}


def report_text(compare: Mapping[str, Any]) -> str:
    """The comparison as Markdown: per group a table of every metric with its 95% interval, the
    headline in both level settings beside the paper's figures, and the frontier's check."""
    st = compare["settings"]
    ci = "95% Student-t interval over seeds" if st["seeds"] > 1 else "one seed, no interval"
    lines = [f"# Scheme comparison: {st['base']} ({st['n_mu']} MUs x {st['n_msp']} MSPs), {st['dataset']}", "",
             f"{st['seeds']} seed(s) x {st['rounds']} round(s), {st['local_epochs']} local epoch(s), target "
             f"{st['target']:g}, round deadline {st.get('deadline', 'inf')}, reference {st.get('reference', 'drl')}, "
             f"cap-relative level {st.get('level', 0.5):g} x Rmax; mean ± half width ({ci}).", ""]
    cols = [("IoM", "iom", 3), ("payment", "payment", 3), ("IoM per paid", "iom_per_payment", 4),
            ("MSP utility", "msp_utility", 2), ("MU utility", "mu_utility", 2), ("social", "social_utility", 2),
            ("final acc", "final_accuracy", 3), ("time to target s", "time_to_target", 0),
            ("missed updates", "missed_updates", 1)]
    sch = compare["schemes"]
    for group, names in compare.get("groups", {"other": list(sch)}).items():
        lines += [f"## {_GROUP_TITLE.get(group, group)}", "",
                  "| scheme | " + " | ".join(c[0] for c in cols) + " | uncertified (kept) |",
                  "|---" * (len(cols) + 2) + "|"]
        for n in names:
            e = sch[n]
            lines.append(f"| {n} | " + " | ".join(_fmt(e[k], d) for _, k, d in cols)
                         + f" | {e['uncertified_rounds']} |")
        lines.append("")
    h = compare["headline"]
    lines.append(f"## Headline: {h['reference']} against the naive baselines")
    lines.append("")
    if not h["available"]:
        lines += [f"Not available: {h['reason']}.", ""]
    else:
        paper = h["paper"]
        lines.append(f"Paired by seed, in %; the paper's figures are the paper's "
                     f"({h['paper_dataset'] or h['paper_note']}).")
        lines.append("")
        lines.append("| setting | averaged over | IoM improvement (paper) | MSP-utility improvement | "
                     "time-to-target reduction (paper) |")
        lines.append("|---|---|---|---|---|")
        for setting, d in h["settings"].items():
            pi = f"+{paper['iom_improvement']:.1f}" if paper else "n/a"
            pt = f"{paper['time_to_target_reduction']:.1f}" if paper else "n/a"
            lines.append(f"| {setting} | {', '.join(d['averaged_over']) or 'none run'} | "
                         f"{_fmt(d['iom_improvement']['average'], 1)} ({pi}) | "
                         f"{_fmt(d['msp_utility_improvement']['average'], 1)} (no paper figure) | "
                         f"{_fmt(d['time_to_target_reduction']['average'], 1)} ({pt}) |")
        lines += ["", "Per scheme (each against the reference, paired by seed):", "",
                  "| against | group | " + " | ".join(_HEAD_TITLE[k] for k in HEADLINE_METRICS) + " |",
                  "|---|---|---|---|---|"]
        for b in h["baselines"]:
            lines.append(f"| {b} | {sch[b]['group']} | "
                         + " | ".join(_fmt(h["per_baseline"][b][k], 1) for k in HEADLINE_METRICS) + " |")
        lines.append("")
    fr = compare.get("frontier")
    if fr is not None:
        c = fr["consistency"]
        lines.append("## Frontier")
        lines.append("")
        lines.append(f"`fixed` swept over {len(fr['levels'])} levels ({fr['levels'][0]:g} to {fr['levels'][-1]:g} x Rmax) "
                     "on the markets alone; `frontier.png`.")
        if not c["available"]:
            lines.append("Consistency check: not available (no budget-matched `fixed` run).")
        else:
            verdict = {True: "passes", False: "FAILS", None: "cannot be judged (no interval)"}[c["passes"]]
            tol = "n/a" if c["tolerance"] is None else f"{c['tolerance']:.3f}"
            lines.append(f"Consistency check: at the budget-matched `fixed` payment {c['payment']:.3f} the curve gives "
                         f"IoM {c['curve_iom']:.3f}, the `fixed` run {c['point_iom']:.3f}: gap {c['gap']:.3f}, "
                         f"intervals' sum {tol}"
                         f"{'' if c['within_sweep'] else ' (the payment lies outside the sweep)'}: {verdict}.")
        lines.append("")
    return "\n".join(lines)


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
    written = [out / "iom.png", out / "accuracy.png", out / "time_to_target.png"]
    fr = compare.get("frontier")
    if fr is not None:
        from benchmarks.plots import frontier_plot

        points = {n: (sch[n]["payment"]["mean"], sch[n]["payment"]["half_width"], sch[n]["iom"]["mean"],
                      sch[n]["iom"]["half_width"]) for n in names if sch[n]["payment"]["mean"] is not None}
        frontier_plot(out / "frontier.png", [c["mean"] for c in fr["payment"]], [c["mean"] for c in fr["iom"]],
                      [c["half_width"] for c in fr["iom"]], points, "payment per MSP and round",
                      "real IoM per MSP and round",
                      f"IoM against payment ({st['base']}, {st['dataset']}; {ci})",
                      curve_label=f"fixed, {fr['levels'][0]:g}..{fr['levels'][-1]:g} x Rmax")
        written.append(out / "frontier.png")
    return written


def run_comparison(cfg: Any, out: str | Path, resume: bool = False, progress: bool = False,
                   log: Any = print, cache: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`run_runs`, then write ``compare.json``, ``report.md`` and the PNGs (``iom``,
    ``accuracy``, ``time_to_target``, ``frontier``). Returns ``(compare, timing)``; ``timing``
    (also ``OUT/timing.json``) holds the wall and CPU seconds per phase, the report's included.
    ``cache``: see :func:`run_runs` (the results do not depend on it)."""
    import time

    from models.io import atomic_write_json, atomic_write_text

    from drl.compare.cache import SharedWork
    from drl.compare.run import run_runs, work_timing

    work = SharedWork(cache)
    t_start, c_start = time.perf_counter(), time.process_time()
    base, ds, records, frontier, timing = run_runs(cfg, out, resume=resume, progress=progress, log=log, work=work)
    out = Path(out)
    with work.timer.phase("report"):
        compare = summarise(cfg, base, ds, records, reference=cfg.reference, frontier=frontier)
        atomic_write_json(out / "compare.json", compare)
        atomic_write_text(out / "report.md", report_text(compare) + "\n")
        write_plots(out, compare)
    timing.update(work_timing(work, t_start, c_start))
    atomic_write_json(out / "timing.json", timing)
    return compare, timing
