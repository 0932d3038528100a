"""The certificate's uniqueness check (c) with and without the batched random starts, side by side.

``python -m benchmarks.bench_uniqueness [--sizes default,large] [--repeats 3] [--out FILE]``: each
preset is solved and certified by :func:`epec.solve_scenario` ``repeats`` times with its
``batch_starts`` (the MUs' equilibria from all random starts in one call of the batched follower
solver, each polished by Newton) and as many times without (``batch_starts=None``: Newton's own
random starts, a continuation in the smoothing from each), alternating, in one process. Per path
it prints the best wall seconds of the uniqueness check (from the certificate's progress ticks:
the last leader's tick to the last start's) and of the whole certificate, and whether the
verdicts (holds, reasons, uniqueness, starts that solved) and the certified rewards agree.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

__all__ = ["measure", "main"]


def _one(sc: Any, batched: bool) -> dict[str, Any]:
    """One solve and certificate of ``sc``; its timings and verdict."""
    from epec import solve_scenario

    ticks: list[tuple[float, int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "certificate":
            ticks.append((time.perf_counter(), done, total))

    kw = {} if batched else {"batch_starts": None}
    sol = solve_scenario(sc, progress=progress, **kw)
    cert = sol.result.certificate
    leaders = sc.n_msp
    # the final certificate's ticks: each run counts 1..leaders + starts
    last = max(k for k, t in enumerate(ticks) if t[1] == leaders)
    uniq = ticks[-1][0] - ticks[last][0]
    return {"ok": sol.ok, "holds": cert.holds, "reasons": list(cert.reasons), "unique": cert.follower_unique,
            "starts": cert.starts, "spread": cert.follower_spread, "uniqueness_seconds": uniq,
            "certificate_seconds": cert.seconds, "certificate_cpu_seconds": cert.cpu_seconds,
            "rewards": [float(r) for r in sol.R] if sol.R is not None else None}


def measure(name: str, repeats: int) -> dict[str, Any]:
    """Both paths on preset ``name``, alternating, ``repeats`` times each."""
    import numpy as np

    from models import preset

    sc = preset(name)
    runs: dict[str, list] = {"batched": [], "newton": []}
    for _ in range(repeats):
        for path in runs:
            runs[path].append(_one(sc, path == "batched"))
    a, b = runs["batched"], runs["newton"]
    verdict = lambda r: (r["ok"], r["holds"], r["reasons"], r["unique"], r["starts"])  # noqa: E731
    same = all(verdict(r) == verdict(b[0]) for r in a + b)
    rdiff = max(float(np.max(np.abs(np.array(r["rewards"]) - np.array(b[0]["rewards"])))) for r in a + b)
    best = {p: {k: min(r[k] for r in rs) for k in ("uniqueness_seconds", "certificate_seconds",
                                                     "certificate_cpu_seconds")} for p, rs in runs.items()}
    return {"scenario": name, "size": f"{sc.n_mu}x{sc.n_msp}", "best": best, "same_verdict": same,
            "reward_diff": rdiff, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="default,large", help="comma-separated presets (default default,large)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path (default 3)")
    parser.add_argument("--out", default=None, help="JSON file for the measured numbers")
    args = parser.parse_args(argv)
    rows = [measure(name, args.repeats) for name in args.sizes.split(",")]
    for r in rows:
        for p, b in r["best"].items():
            print(f"{r['scenario']:>8} {r['size']:>6} {p:>8}: uniqueness {b['uniqueness_seconds'] * 1e3:8.1f} ms, "
                  f"certificate {b['certificate_seconds'] * 1e3:8.1f} ms ({b['certificate_cpu_seconds'] * 1e3:.1f} ms CPU)")
        print(f"{r['scenario']:>8} same verdict: {r['same_verdict']}; rewards differ by {r['reward_diff']:.2e}; "
              f"starts solved {[x['starts'] for x in r['runs']['batched']]} / {[x['starts'] for x in r['runs']['newton']]}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
