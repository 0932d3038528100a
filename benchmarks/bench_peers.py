"""``metatrading bench peers``: the toolkit on published bilevel, EPEC and Nash instances.

Each instance of :data:`benchmarks.peers.INSTANCES` (BASBLib, MacMPEC, the Mitsos-Barton set,
EPEC and Nash games) is built fresh and solved with the toolkit's defaults
(:func:`epec.solve_bilevel`, :func:`epec.solve_epec`, :func:`epec.solve_nash`). Its verdict:

- ``right``: ``ok`` at the published answer (objective and point, to 1e-4 relative, or to the
  precision the source prints);
- ``wrong_ok``: ``ok`` anywhere else, or ``ok`` at all where the instance has no certifiable
  answer (no pure equilibrium, an indifferent follower): the worst outcome;
- ``refused``: not ``ok`` (any status, an exception, the time limit);
- ``skipped``: the instance needs a feature this installation lacks (the reason is recorded).

Writes ``DIR/peers.json`` (the summary and one row per instance) and prints a table and the
totals against the targets of issue 15: no wrong ``ok``, at least 90% of the ``unique``
instances right, every instance under 10 s, the whole suite under 3 minutes. Exit code 1 when
there is a wrong ``ok``.
"""
from __future__ import annotations

import argparse
import collections
import math
import signal
import sys
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyomo.environ as pyo

from models.errors import InputError

__all__ = ["add_arguments", "run", "run_instance", "summarise", "select", "TARGETS"]

#: issue 15's targets for the suite
TARGETS = {"wrong_ok": 0, "unique_right_fraction": 0.9, "instance_seconds": 10.0, "suite_seconds": 180.0}

VERDICTS = ("right", "wrong_ok", "refused", "skipped")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="output folder (peers.json); required unless --list")
    parser.add_argument("--only", default="",
                        help="comma-separated instance names to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the instances with their sources and exit")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds after which one instance's solve is stopped and counted refused "
                             "(default 30; 0: no limit)")


def select(only: str) -> list:
    """The instances named in ``only`` (comma-separated; empty: all), in the catalogue's order.

    Raises
    ------
    InputError
        Naming ``--only`` and the unknown names.
    """
    from benchmarks.peers import INSTANCES

    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in INSTANCES]
    if unknown:
        raise InputError("--only", f"unknown instance(s) {', '.join(unknown)} (see --list)")
    wanted = set(names)
    return [inst for name, inst in INSTANCES.items() if not wanted or name in wanted]


class _Timeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[dict]:
    """Raise :class:`_Timeout` in the solve after ``seconds`` (SIGALRM; main thread only, else
    no limit). Yields a dict whose ``"fired"`` says whether the limit was hit (a solver that
    swallows the exception still stops at its next callback)."""
    state = {"fired": False}
    usable = seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield state
        return

    def _handler(signum, frame):
        state["fired"] = True
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, _handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield state
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _value(expr: Any) -> float | None:
    try:
        v = pyo.value(expr, exception=False)  # None for an unset Var (a solve stopped early)
    except Exception:  # a multiplier the model does not hold: not comparable
        return None
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _certificate_summary(cert: Any) -> dict[str, Any] | None:
    if cert is None:
        return None
    out: dict[str, Any] = {}
    # the fields present in this installation (issue 15 adds follower-side ones)
    for key in ("holds", "max_deviation_gain", "kkt_residual", "follower_unique", "follower_spread",
                "follower_gains", "follower_methods", "evaluations", "failed_evaluations", "seconds"):
        if hasattr(cert, key):
            v = getattr(cert, key)
            out[key] = list(v) if isinstance(v, tuple) else v
    out["reasons"] = [str(r) for r in getattr(cert, "reasons", ())][:4]
    return out


def _solve(inst: Any, built: Any) -> Any:
    from epec import solve_bilevel, solve_epec, solve_nash
    from benchmarks.peers import Kind

    m = built.model
    if inst.kind is Kind.BILEVEL:
        return solve_bilevel(m, followers=built.followers)
    if inst.kind is Kind.EPEC:
        return solve_epec(m, leaders=built.leaders, followers=built.followers)
    return solve_nash(m, players=built.followers)


def run_instance(inst: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Solve one instance and describe the outcome as a JSON row.

    Keys: ``instance``, ``source``, ``kind``, ``expect``, ``needs``, ``published`` (objective,
    point, digits), ``toolkit`` (objective and every Var's value after the solve), ``status``,
    ``ok``, ``message``, ``certificate`` (summary, or None), ``relative_error`` (largest over
    the published numbers; null when not comparable), ``seconds``, ``verdict``, ``reason``
    (why skipped or refused), ``warnings`` (RuntimeWarnings emitted).
    """
    from benchmarks.peers import Expect, SkipInstance

    row: dict[str, Any] = {
        "instance": inst.name, "source": inst.source, "kind": inst.kind.value, "expect": inst.expect.value,
        "needs": sorted(n.value for n in inst.needs), "note": inst.note,
        "published": {"objective": list(inst.objective), "point": dict(inst.point), "digits": inst.digits},
        "toolkit": None, "status": None, "ok": False, "message": "", "certificate": None,
        "relative_error": None, "seconds": 0.0, "verdict": None, "reason": "", "warnings": [],
    }
    try:
        built = inst.build()
    except SkipInstance as exc:
        row.update(status="skipped", verdict="skipped", reason=str(exc))
        return row
    t0 = time.perf_counter()
    res = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _time_limit(timeout) as limit:
                res = _solve(inst, built)
            if limit["fired"]:
                res = None
                row.update(status="timeout", reason=f"stopped after {timeout:g} s")
        except _Timeout:
            row.update(status="timeout", reason=f"stopped after {timeout:g} s")
        except Exception as exc:  # counted and reported: the benchmark's job is to find these
            row.update(status="exception", reason=f"{type(exc).__name__}: {exc}"[:400],
                       message=traceback.format_exc(limit=4)[-1200:])
    row["seconds"] = time.perf_counter() - t0
    row["warnings"] = [f"{w.category.__name__}: {w.message} ({Path(w.filename).name}:{w.lineno})"
                       for w in caught if issubclass(w.category, RuntimeWarning)][:5]
    m = built.model
    objective = [_value(o) for o in built.objectives]
    point = {v.name: (None if v.value is None else float(v.value))
             for v in m.component_data_objects(pyo.Var, descend_into=True)}
    row["toolkit"] = {"objective": objective, "point": point}
    if res is not None:
        row.update(status=getattr(res.status, "value", str(res.status)), ok=bool(res.ok), message=res.message or "",
                   certificate=_certificate_summary(getattr(res, "certificate", None)))
    match, err = _compare(inst, objective, point)
    row["relative_error"] = None if not math.isfinite(err) else err
    if not row["ok"]:
        row["verdict"] = "refused"
        row["reason"] = row["reason"] or row["message"][:400]
    elif inst.expect is not Expect.UNIQUE:
        row["verdict"] = "wrong_ok"
        row["reason"] = f"ok, but the instance has no certifiable answer ({inst.expect.value})"
    else:
        row["verdict"] = "right" if match else "wrong_ok"
        if not match:
            row["reason"] = "ok away from the published answer"
    return row


def _compare(inst: Any, objective: list, point: dict) -> tuple[bool, float]:
    """``inst.compare`` over the objective values that could be evaluated (an objective holding
    a multiplier the model does not expose is left to the point's comparison)."""
    pairs = [(o, p) for o, p in zip(objective, inst.objective) if o is not None]
    if inst.objective and not pairs and not inst.point:
        return False, math.nan
    got = [o for o, _ in pairs]
    if len(pairs) < len(inst.objective):  # compare the point, and the objectives we have
        from dataclasses import replace

        inst = replace(inst, objective=tuple(p for _, p in pairs))
    return inst.compare(got, point)


def summarise(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Counts per verdict, the ``right`` fraction over the ``unique`` instances (skipped ones
    count as not right), the instances over the time target, and each target met or not."""
    verdicts = collections.Counter(r["verdict"] for r in rows)
    unique = [r for r in rows if r["expect"] == "unique"]
    right = sum(1 for r in unique if r["verdict"] == "right")
    slow = [r["instance"] for r in rows if r["seconds"] > TARGETS["instance_seconds"]]
    wrong = [r["instance"] for r in rows if r["verdict"] == "wrong_ok"]
    fraction = right / len(unique) if unique else math.nan
    not_right = collections.defaultdict(list)  # feature -> unique instances not right that need it
    for r in unique:
        if r["verdict"] != "right":
            for need in r["needs"] or ["(none)"]:
                not_right[need].append(r["instance"])
    return {
        "count": len(rows),
        "verdicts": {v: verdicts.get(v, 0) for v in VERDICTS},
        "unique": len(unique),
        "unique_right": right,
        "unique_right_fraction": fraction,
        "wrong_ok": wrong,
        "over_time": slow,
        "seconds": {"total": seconds, "max": max((r["seconds"] for r in rows), default=0.0)},
        "unique_not_right_by_need": dict(not_right),
        "targets": dict(TARGETS),
        "met": {
            "wrong_ok": not wrong,
            "unique_right_fraction": bool(unique) and fraction >= TARGETS["unique_right_fraction"],
            "instance_seconds": not slow,
            "suite_seconds": seconds <= TARGETS["suite_seconds"],
        },
    }


def _fmt(v: Any, width: int = 10) -> str:
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float):
        return f"{v:>{width}.5g}"
    return str(v).rjust(width)


def _print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'instance':<22} {'kind':<7} {'expect':<11} {'published F':>12} {'toolkit F':>12} "
            f"{'rel.err':>9} {'status':<15} {'sec':>6}  {'verdict':<8} needs")
    print(head)
    print("-" * len(head))
    for r in rows:
        pub = r["published"]["objective"]
        got = (r["toolkit"] or {}).get("objective") or []
        print(f"{r['instance']:<22} {r['kind']:<7} {r['expect']:<11} {_fmt(pub[0] if pub else None, 12)} "
              f"{_fmt(got[0] if got else None, 12)} {_fmt(r['relative_error'], 9)} {str(r['status']):<15} "
              f"{r['seconds']:>6.2f}  {r['verdict']:<8} {','.join(r['needs'])}")


def _print_summary(s: dict[str, Any]) -> None:
    t, met = s["targets"], s["met"]
    yes = {True: "met", False: "NOT met"}
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in s["verdicts"].items()) + f" (of {s['count']})")
    print(f"wrong ok: {len(s['wrong_ok'])} (target {t['wrong_ok']}: {yes[met['wrong_ok']]})"
          + (f": {', '.join(s['wrong_ok'])}" if s["wrong_ok"] else ""))
    frac = s["unique_right_fraction"]
    print(f"unique instances right: {s['unique_right']}/{s['unique']} = "
          f"{'-' if not math.isfinite(frac) else f'{100 * frac:.1f}%'} "
          f"(target >= {100 * t['unique_right_fraction']:.0f}%: {yes[met['unique_right_fraction']]})")
    print(f"slowest instance {s['seconds']['max']:.2f} s (target < {t['instance_seconds']:g} s: "
          f"{yes[met['instance_seconds']]})" + (f": over {', '.join(s['over_time'])}" if s["over_time"] else ""))
    print(f"whole suite {s['seconds']['total']:.1f} s (target < {t['suite_seconds']:g} s: {yes[met['suite_seconds']]})")
    for need, names in sorted(s["unique_not_right_by_need"].items()):
        print(f"  unique, not right, needing {need}: {', '.join(names)}")


def run(args: argparse.Namespace) -> int:
    if args.timeout < 0 or not math.isfinite(args.timeout):
        raise InputError("--timeout", f"must be a number of seconds >= 0 (0: no limit), got {args.timeout}")
    instances = select(args.only)
    if not args.list and args.out is None:
        raise InputError("--out", "required (the folder for peers.json), unless --list")
    if args.list:
        for inst in instances:
            print(f"{inst.name:<22} {inst.kind.value:<7} {inst.expect.value:<11} "
                  f"{','.join(sorted(n.value for n in inst.needs)) or '-':<38} {inst.source}")
        return 0
    from tqdm import tqdm

    from benchmarks.conventions import show_progress
    from models.io import atomic_write_json

    out = Path(args.out)
    progress = show_progress(args)
    t0 = time.perf_counter()
    rows = []
    with tqdm(total=len(instances), desc="published instances", file=sys.stderr, leave=False,
              disable=not progress) as bar:
        for k, inst in enumerate(instances, 1):
            rows.append(run_instance(inst, timeout=args.timeout))
            r = rows[-1]
            if progress:
                bar.set_postfix_str(f"{inst.name}: {r['verdict']}")
                bar.update(1)
            elif not args.quiet:  # a log: one line per instance
                print(f"[{k}/{len(instances)}] {inst.name}: {r['verdict']} ({r['status']}, {r['seconds']:.2f} s)",
                      file=sys.stderr, flush=True)
    total = time.perf_counter() - t0
    summary = summarise(rows, total)
    print(f"Published instances: {len(rows)} (BASBLib, MacMPEC, Mitsos-Barton, EPEC and Nash games)")
    _print_table(rows)
    _print_summary(summary)
    atomic_write_json(out / "peers.json", {"summary": summary, "rows": rows,
                                           "options": {"only": args.only, "timeout": args.timeout}})
    print(f"wrote {out / 'peers.json'}")
    return 1 if summary["wrong_ok"] else 0
