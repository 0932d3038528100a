"""``metatrading validate``: how far learned (or any) pricing is from the certified EPEC.

``--policy DIR`` (a ``train-pricing`` output) or ``--rewards R1,R2,...`` (rewards from anywhere).
Stationary: the policy plays ``--warmup`` rounds of the market (deterministic actions, each MSP
fed its own outcome) and its last rewards are compared with :func:`epec.solve_scenario`'s
certified equilibrium, then certified with :func:`epec.certify` (deviation gains). Dynamic
(``--dynamic --rounds T --seeds ...``): each round of each seed's trajectory against that
round's EPEC oracle, with 95% confidence intervals over seeds.

Writes ``DIR/validation.json`` (``rewards``, ``epec_rewards``, ``msp_utility``,
``epec_msp_utility``, ``utility_gap_pct``, ``reward_gap_pct``, ``deviation_gain_pct``,
``max_deviation_gain_pct``; dynamic adds ``per_round`` and ``mean_gap_pct`` with its CI) and
``DIR/validation.png``. Bad input: one line naming the flag, exit 2, nothing written; an EPEC
reference that is not certified: exit 1, nothing written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.conventions import parse_numbers, show_progress
from models.errors import InputError

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--policy", help="a train-pricing output folder (policy.pt); stationary mode takes several, "
                                      "comma-separated (e.g. one per training seed): each is validated and the "
                                      "per-MSP means get 95%% confidence intervals over them")
    src.add_argument("--rewards", help="comma-separated rewards, one per MSP, e.g. 12.0,9.1,13.0")
    p.add_argument("--scenario", default="default", help="preset or scenario file (default: default)")
    p.add_argument("--dynamic", action="store_true", help="validate per round in the dynamic market against each round's EPEC")
    p.add_argument("--rounds", type=int, default=20, help="dynamic rounds per seed (default 20)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="dynamic trajectory seeds (default 0,1,2,3,4)")
    p.add_argument("--warmup", type=int, default=32, help="stationary: rounds the policy plays before its rewards are read (default 32)")
    p.add_argument("--grid", type=int, default=41, help="deviation-grid points per MSP in the certificate (default 41)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--allow-other-scenario", action="store_true",
                   help="validate a --policy on a --scenario other than the one it was trained on (refused "
                        "without it; a warning names both scenarios' fingerprints)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _plot(path: Path, res: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    from models.io import atomic_save

    fig = _figure(res)
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def _figure(res: dict[str, Any]) -> Any:
    """validation.png's figure: bars per MSP (stationary) or the gap per round (dynamic, integer
    round ticks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    M = len(res["rewards"])
    x = np.arange(M)
    if res["mode"] == "stationary":
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, label in ((axes[0], "rewards", "reward R_m"), (axes[1], "msp_utility", "utility V_m")):
            ax.bar(x - 0.2, res[key], 0.4, label="validated")
            ax.bar(x + 0.2, res["epec_" + key], 0.4, label="EPEC")
            ax.set_xticks(x, [f"MSP {m}\n{g:+.2f}%" for m, g in
                              enumerate(res["reward_gap_pct" if key == "rewards" else "utility_gap_pct"])])
            ax.set_ylabel(label)
            ax.legend(fontsize=8)
        axes[0].set_title(f"{res['scenario']}: max deviation gain {res['max_deviation_gain_pct']:.3f}% of V")
    else:
        fig, ax = plt.subplots(figsize=(8, 4))
        for seed in res["seeds"]:
            rows = [r for r in res["per_round"] if r["seed"] == seed and r["oracle_ok"]]
            ax.plot([r["round"] for r in rows], [r["mean_gap_pct"] for r in rows], marker=".", label=f"seed {seed}")
        ci = res["mean_gap_pct"]
        ax.axhline(0.0, color="k", lw=0.8)
        title = f"{res['scenario']} dynamic: mean utility gap {ci['mean']:+.2f}%"
        if ci["half_width"] is not None:
            title += f" +/- {ci['half_width']:.2f} (95% CI over seeds)"
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("utility gap to round EPEC, % (MSP mean)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


#: the issue's stationary targets: |reward gap| <= 2%, |utility gap| <= 0.5%, deviation gain <= 0.1% of V
TARGETS = {"reward_gap_pct": 2.0, "utility_gap_pct": 0.5, "deviation_gain_pct": 0.1}


def rounds_to_stay_within(training_json: Path, pct: float = TARGETS["reward_gap_pct"]) -> int | None:
    """Market rounds after which every logged reward gap of a training run stayed within ``pct``
    percent of the EPEC until the end (None when the log has no gaps or never settles)."""
    import json

    if not training_json.exists():
        return None
    ups = json.loads(training_json.read_text()).get("updates", [])
    if not ups or "reward_gap_pct" not in ups[-1]:
        return None
    out = None
    for u in reversed(ups):
        if max(abs(g) for g in u["reward_gap_pct"]) > pct:
            break
        out = u["market_rounds"]
    return out


def _aggregate(runs: list[dict[str, Any]], policies: list[Any], dirs: list[str]) -> dict[str, Any]:
    """Several policies' stationary validations: per-MSP means with 95% CIs over the policies."""
    from drl import confidence_interval

    M = len(runs[0]["rewards"])
    out: dict[str, Any] = {"mode": "stationary", "scenario": runs[0]["scenario"], "policies": len(runs),
                           "epec_rewards": runs[0]["epec_rewards"], "epec_msp_utility": runs[0]["epec_msp_utility"],
                           "epec_iom": runs[0]["epec_iom"]}
    for key in ("rewards", "msp_utility", "iom", "reward_gap_pct", "utility_gap_pct", "iom_gap_pct", "deviation_gain_pct"):
        vals = np.array([r[key] for r in runs])
        out[key] = vals.mean(0)
        out[key + "_ci"] = [confidence_interval(vals[:, m]) for m in range(M)]
    out["max_deviation_gain_pct"] = float(max(r["max_deviation_gain_pct"] for r in runs))
    rounds = [p.budget["market_rounds"] for p in policies]
    out["market_rounds"] = confidence_interval(rounds)
    out["training_seconds"] = confidence_interval([p.budget["seconds"] for p in policies])
    settle = [rounds_to_stay_within(Path(d) / "training.json") for d in dirs]
    out["market_rounds_to_stay_within_2pct"] = settle
    out["market_rounds_to_stay_within_2pct_ci"] = confidence_interval([np.nan if x is None else x for x in settle])
    out["within_targets"] = [bool(all(np.all(np.abs(r[k]) <= v) for k, v in TARGETS.items())) for r in runs]
    out["targets"] = TARGETS
    out["runs"] = runs
    return out


def run(args: argparse.Namespace) -> int:
    from models.scenario import load_scenario

    sc = load_scenario(args.scenario)
    if args.rounds < 1:
        raise InputError("--rounds", f"must be >= 1, got {args.rounds}")
    if args.warmup < 1:
        raise InputError("--warmup", f"must be >= 1, got {args.warmup}")
    from benchmarks.conventions import check_grid

    check_grid(args.grid)
    seeds = parse_numbers(args.seeds, "--seeds", int, minimum=0)
    from drl import check_rewards, load_policy, play_stationary, validate_dynamic, validate_stationary
    from models.io import atomic_write_json

    policies: list[Any] = []
    if args.policy is not None:
        dirs = [d for d in args.policy.split(",") if d.strip()]
        if args.dynamic and len(dirs) != 1:
            raise InputError("--policy", "dynamic validation takes one policy folder")
        for d in dirs:
            pol = load_policy(d)
            if pol.n_msp != sc.n_msp or pol.n_mu != sc.n_mu:
                raise InputError("--policy", f"{d} was trained for {pol.n_mu} MUs x {pol.n_msp} MSPs, but --scenario "
                                             f"{sc.name} has {sc.n_mu} x {sc.n_msp}")
            if pol.fingerprint != sc.fingerprint():
                trained = f"{pol.scenario.get('name', '?')} (fingerprint {pol.fingerprint})"
                if not args.allow_other_scenario:
                    raise InputError("--scenario", f"{sc.name} (fingerprint {sc.fingerprint()}) is not the scenario "
                                                   f"{d} was trained on, {trained}; pass --allow-other-scenario "
                                                   "to validate it there anyway")
                print(f"metatrading: warning: validating {d}, trained on {trained}, on {sc.name} "
                      f"(fingerprint {sc.fingerprint()})", file=sys.stderr)
            policies.append(pol)
        pricing: Any = policies[0]
    else:
        pricing = check_rewards(sc, parse_numbers(args.rewards, "--rewards"))
    from models.progress import progress_bar

    bar = None if not show_progress(args) else progress_bar(desc="validate", unit="check", leave=False, min_interval=5.0)

    def progress(stage: str, done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.set_description(stage)
            bar.n = done
            bar.refresh()

    try:
        if args.dynamic:
            res = validate_dynamic(sc, pricing, rounds=args.rounds, seeds=seeds, grid=max(args.grid // 2, 5),
                                   progress=progress)
        elif len(policies) > 1:
            import epec

            ref = epec.solve_scenario(sc, grid=args.grid)
            runs = [validate_stationary(sc, play_stationary(p, sc, args.warmup)[-1], reference=ref, grid=args.grid,
                                        progress=progress) for p in policies]
            res = _aggregate(runs, policies, dirs)
        else:
            R = play_stationary(pricing, sc, args.warmup)[-1] if args.policy is not None else pricing
            res = validate_stationary(sc, R, grid=args.grid, progress=progress)
    except RuntimeError as err:
        if bar is not None:
            bar.close()
        print(f"metatrading validate: {err}", file=sys.stderr)
        return 1
    if bar is not None:
        bar.close()
    res["source"] = {"policy": args.policy} if args.policy is not None else {"rewards": args.rewards}
    if len(policies) == 1:
        res["policy_budget"] = pricing.budget
    out = Path(args.out)
    atomic_write_json(out / "validation.json", res)
    _plot(out / "validation.png", res)
    M = sc.n_msp
    print(f"validation of {sc.name} ({res['mode']}) against the certified EPEC")
    print(f"{'MSP':>4} {'reward':>9} {'EPEC R':>9} {'R gap %':>8} {'V':>9} {'EPEC V':>9} {'V gap %':>8} {'dev gain %':>10}")
    for m in range(M):
        print(f"{m:>4} {res['rewards'][m]:>9.4f} {res['epec_rewards'][m]:>9.4f} {res['reward_gap_pct'][m]:>+8.3f} "
              f"{res['msp_utility'][m]:>9.3f} {res['epec_msp_utility'][m]:>9.3f} {res['utility_gap_pct'][m]:>+8.3f} "
              f"{res['deviation_gain_pct'][m]:>10.4f}")
    if "within_targets" in res:
        for key in ("reward_gap_pct", "utility_gap_pct", "deviation_gain_pct"):
            cis = ", ".join(f"{c['mean']:+.3f} +/- {c['half_width']:.3f}" for c in res[key + "_ci"])
            print(f"{key} over {res['policies']} policies (mean +/- 95% CI half-width, per MSP): {cis}")
        mr = res["market_rounds"]
        st = res["market_rounds_to_stay_within_2pct_ci"]
        st_text = "n/a" if st["mean"] is None else f"{st['mean']:.0f}" + ("" if st["half_width"] is None else f" +/- {st['half_width']:.0f}")
        print(f"market rounds of training: {mr['mean']:.0f} +/- {mr['half_width']:.0f}; rounds after which every reward "
              f"gap stayed within 2%: {st_text}; all targets met by {sum(res['within_targets'])}/{res['policies']} policies")
    if res["mode"] == "dynamic":
        ci = res["mean_gap_pct"]
        hw = "n/a" if ci["half_width"] is None else f"{ci['half_width']:.3f}"
        print(f"mean per-round utility gap {ci['mean']:+.3f}% (95% CI half-width {hw}, {ci['n']} seeds); "
              f"oracle failed in {res['oracle_failed_rounds']} rounds")
    print(f"wrote {out}/validation.json, validation.png")
    return 0
