"""One scheme comparison: every scheme faces the same dynamic markets, with FL per round.

For seed s the market is ``models.dynamics.trajectory(base, T, s)`` (common random numbers:
the same vehicles, data, joins and leaves for every scheme). Per trading round t and scheme:

1. the scheme posts ``R`` (:class:`~drl.compare.schemes.Scheme`);
2. the active MUs respond with their exact Nash allocation (:func:`models.follower_equilibrium`)
   in the game the scheme plays (``Scenario.metric``: the partial metric for the ablations);
3. the outcome is measured with the real IoM: total IoM and contributors per MSP, MSP
   utilities ``V_m = lambda_m ln(1 + real total_m) - payment_m`` (the payments of the game
   played) and MU utilities;
4. each MSP runs one FL round (docs/model.md section 7, :func:`fl.round.fl_round`, the trainer's
   own round): its participants (``f_nm > 0``) train ``L`` local epochs on their ``D_nm``
   samples of its data set (Dirichlet label split of the active MUs' data, the same for every
   scheme), those within the round deadline ``T_m`` are aggregated with IoM-weighted FedAvg
   (real IoM; the late ones are still paid) and the MSP's simulated clock advances by
   ``min(T_m, slowest participant's Tcmp + Tup)`` (:func:`models.round_time`). Each MSP's
   model persists across trading rounds.

The round deadlines ``T_m`` and the naive baselines' reward levels are fixed before each seed's
runs and shared by every scheme (:mod:`drl.compare.levels`); the options are
:class:`~drl.compare.config.CompareConfig`.

One (scheme, seed) run is a JSON record; :func:`run_comparison` writes it atomically to
``OUT/runs/<scheme>__seed<s>.json`` when the run is done and, on resume, skips records whose
settings match. Records hold no wall-clock times, so a resumed comparison gives the same
``compare.json`` as an uninterrupted one (times go to ``OUT/timing.json``).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from models.errors import InputError
from models.scenario import Metric, Scenario, clip_rewards

from .cache import SharedWork, work_or_new
from .config import CompareConfig
from .levels import fixed_frontier, frontier_key, level_current, levels_for, round_deadlines, stored_frontier
from .schemes import LevelledScheme, RoundInfo, RoundOutcome, SchemeSetup, make_scheme

__all__ = ["run_scheme", "run_runs", "record_path", "work_timing"]


def _settings(rec: Mapping[str, Any]) -> Any:
    """A record's settings as ``CompareConfig.fingerprint`` makes them (older records hold the target)."""
    settings = rec.get("settings")
    return {k: v for k, v in settings.items() if k != "target"} if isinstance(settings, dict) else settings


@contextlib.contextmanager
def _one_thread() -> Any:
    import torch

    outer = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(outer)

def record_path(out: Path, scheme: str, seed: int) -> Path:
    return Path(out) / "runs" / f"{scheme}__seed{seed}.json"


def _seed_of(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint32)[0])


class _FLMarket:
    """The MSPs' FL tasks along one trajectory: a model and a simulated clock per MSP."""

    def __init__(self, ds: Any, base: Scenario, cfg: CompareConfig, seed: int, work: SharedWork | None = None) -> None:
        import torch

        from fl.aggregate import make_strategy
        from fl.nets import make_net
        from fl.train import LocalTrainConfig, TrainPath, get_params
        from fl.trainer import resolve_path

        self.ds, self.cfg, self.seed, self.work = ds, cfg, seed, work_or_new(work)
        self.labels = ds.train_y.cpu().numpy()
        self.local = LocalTrainConfig(epochs=cfg.epochs if cfg.epochs is not None else base.L,
                                      batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum)
        self.path = resolve_path(TrainPath.AUTO, "cpu")
        self.strategy = make_strategy(cfg.aggregation)
        self.nets, self.params = [], []
        for m in range(base.n_msp):  # the same initial model for every scheme (seed, m)
            torch.manual_seed(_seed_of(seed, m, 11))
            net = make_net(ds.shape, ds.num_classes)
            self.nets.append(net)
            self.params.append(get_params(net))
        self.clock = np.zeros(base.n_msp)

    def round(self, t: int, sc_full: Scenario, f_full: np.ndarray, iom_full: np.ndarray,
              deadline: np.ndarray) -> dict[str, Any]:
        """One FL round of every MSP (:func:`fl.round.fl_round`) with deadlines ``T_m`` (M,);
        returns accuracy, simulated time, participants and missed updates (M,)."""
        import torch

        from fl.train import client_seed
        from fl.round import fl_round
        from models.cache import digest
        from models.iom import on_time, round_time

        acc, parts, scale_used, missed = [], [], [], []
        n_train = self.ds.n_train
        for m in range(sc_full.n_msp):
            holders = np.flatnonzero(sc_full.D[:, m] > 0)  # the active MUs holding m's data
            sizes = sc_full.D[holders, m].astype(np.int64)
            scale = 1.0
            if sizes.sum() > n_train:  # a data set smaller than the market: shrink every share alike
                scale = n_train / float(sizes.sum())
                sizes = np.maximum(1, np.floor(sizes * scale)).astype(np.int64)
            # The split depends on the market only (not on the scheme): common random numbers.
            idx = self.work.split(self.labels, sizes.tolist(), self.cfg.alpha, _seed_of(self.seed, t, m, 23))
            part = [k for k, n in enumerate(holders) if f_full[n, m] > 0]
            parts.append(len(part))
            scale_used.append(scale)
            late = 0
            if part:
                ok = on_time(sc_full, f_full, m, float(deadline[m]))  # the MUs with f > 0, in MU order
                if ok.size != len(part):
                    raise RuntimeError(f"MSP {m}: an MU with f > 0 holds none of its data")
                with _one_thread():  # a gather (a copy): the same values at any thread count, and
                    # at one thread it avoids the pool's start-up on these small copies
                    xs = [self.ds.train_x[torch.tensor(idx[k])] for k in part]
                    ys = [self.ds.train_y[torch.tensor(idx[k])] for k in part]
                seeds = [client_seed(self.seed, t, int(holders[k]) * sc_full.n_msp + m) for k in part]
                w_iom = np.array([iom_full[holders[k], m] for k in part])
                data = self.work.dataset_key(self.ds)
                keys = [digest("client", data, idx[k]) for k in part]  # (x, y) are the data set's rows idx[k]
                self.params[m], late = fl_round(self.path, self.nets[m], self.params[m], xs, ys, self.local, seeds,
                                                w_iom, sizes[part], self.strategy, ok, cache=self.work.updates,
                                                data_keys=keys)
                self.clock[m] += round_time(sc_full, f_full, m, float(deadline[m]))
            missed.append(late)
            acc.append(self.work.evaluate(self.ds, self.nets[m], self.params[m]))
        return {"accuracy": acc, "sim_time": self.clock.tolist(), "participants": parts, "missed": missed,
                "data_scale": scale_used}


def run_scheme(scheme: Any, base: Scenario, cfg: CompareConfig, seed: int, ds: Any,
               on_round: Callable[[], None] | None = None, deadlines: np.ndarray | None = None,
               level: np.ndarray | None = None, work: SharedWork | None = None) -> dict[str, Any]:
    """One (scheme, seed) run along ``trajectory(base, cfg.rounds, seed)``; a JSON record.

    ``deadlines`` (T, M): the rounds' deadlines (default :func:`round_deadlines` of
    ``cfg.deadline``); ``level`` (M,): a naive baseline's reward level (required for those);
    ``work``: the computations shared with the comparison's other runs
    (:class:`~drl.compare.cache.SharedWork`; default a fresh one).
    """
    from models.iom import iom_matrix
    from models.utility import msp_payment, msp_value, mu_utilities

    work = work_or_new(work)
    timer = work.timer
    traj = work.trajectory(base, cfg.rounds, seed)
    if deadlines is None:
        deadlines, _ = round_deadlines(base, cfg.rounds, seed, cfg.deadline, work=work)
    if isinstance(scheme, LevelledScheme):
        if level is None:
            raise RuntimeError(f"scheme {scheme.name!r} needs its reward level (levels_for)")
        scheme.set_level(level)
    scheme.reset(base, seed)
    fl = _FLMarket(ds, base, cfg, seed, work)
    rounds: list[dict[str, Any]] = []
    uncertified: list[str] = []
    for t in range(cfg.rounds):
        active = np.flatnonzero(traj.active[t])
        sc = traj.active_scenario(t)
        info = RoundInfo(round=t, scenario=sc, seed=seed, rng=np.random.default_rng(_seed_of(seed, t, 5)),
                         shared=work)
        with timer.phase("schemes"):
            dec = scheme.rewards(info)
        R = np.asarray(dec.R, dtype=float).reshape(-1)
        if R.shape != (sc.n_msp,) or not np.all(np.isfinite(R)):
            raise RuntimeError(f"scheme {scheme.name!r} posted {R!r} in round {t}; expected {sc.n_msp} finite rewards")
        R = clip_rewards(R, sc.Rmax)
        if dec.certified is False:
            uncertified.append(dec.note or f"round {t}")
        game = sc.replace(metric=scheme.metric)  # the game the MUs play under this scheme
        eq = work.follower_equilibrium(game, R)
        f = eq.f
        I_real = iom_matrix(sc, f)  # outcomes with the real IoM (sc.metric is the full IoM)
        total = I_real.sum(0)
        played_total = iom_matrix(game, f).sum(0)
        paid = msp_payment(sc.mechanism, R, played_total, sc.eps0)
        V = msp_value(sc.lam, total) - paid
        U = mu_utilities(game, R, f)
        contributors = (f > 0).sum(0)
        with timer.phase("schemes"):
            scheme.feedback(RoundOutcome(R=R.copy(), total_iom=total.copy(), contributors=contributors.copy(),
                                         utility=V.copy()))
        f_full = np.zeros(base.D.shape)
        f_full[active] = f
        I_full = np.zeros(base.D.shape)
        I_full[active] = I_real
        U_full = np.zeros(base.n_mu)
        U_full[active] = U
        with timer.phase("fl"):
            flr = fl.round(t, traj.scenario(t), f_full, I_full, deadlines[t])
        rounds.append({
            "round": t, "R": R.tolist(), "payment": np.asarray(paid, dtype=float).tolist(), "certified": dec.certified,
            "deadline": [float(d) if math.isfinite(d) else None for d in deadlines[t]],
            "active": active.tolist(), "f": f_full.tolist(), "followers_converged": bool(eq.converged),
            "iom": total.tolist(), "contributors": contributors.tolist(),
            "msp_utility": V.tolist(), "mu_utility": U_full.tolist(),
            "msp_utility_sum": float(V.sum()), "mu_utility_sum": float(U.sum()),
            "social_utility": float(V.sum() + U.sum()), **flr,
        })
        if on_round is not None:
            on_round()
    return {"scheme": scheme.name, "seed": seed, "describe": {"group": scheme.group.value, **scheme.describe()},
            "level": None if level is None else np.asarray(level, dtype=float).tolist(),
            "uncertified": uncertified, "rounds": rounds}


def _with_earlier_timing(path: Path, timing: dict[str, Any]) -> dict[str, Any]:
    """A resumed comparison's wall times added to those of the invocations before it."""
    try:
        old = json.loads(path.read_text())
        earlier = [float(w) for w in old.get("invocations_wall_seconds", [old["wall_seconds"]])]
        runs = dict(old["runs"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return timing  # nothing readable to keep
    runs.update(timing["runs"])
    walls = [*earlier, float(timing["wall_seconds"])]
    return {"runs": runs, "wall_seconds": sum(walls), "invocations_wall_seconds": walls}


def run_runs(cfg: CompareConfig, out: str | Path, resume: bool = False, progress: bool = False,
             log: Callable[[str], None] = print, cache: bool | None = None,
             work: SharedWork | None = None) -> tuple[Scenario, Any, dict[tuple[str, int], Any], dict[str, Any],
                                                      dict[str, Any]]:
    """Run every (scheme, seed) not already done (records in ``OUT/runs``), the frontier
    (``OUT/frontier.json``) and write ``OUT/timing.json``.

    Returns ``(base, dataset, records, frontier, timing)``; the report is made from them
    (``benchmarks.compare.run_comparison``). Every input is checked (data set, scenario,
    schemes) before any work or any file is written.

    ``cache``: whether the runs share their common computations (:mod:`drl.compare.cache`;
    None: the environment switch ``METATRADING_COMPARE_CACHE``, on by default); the results are
    the same either way. ``work``: a :class:`~drl.compare.cache.SharedWork` to use instead.
    """
    from fl.data import load_dataset
    from models.io import atomic_write_json
    from models.scenario import load_scenario

    work = SharedWork(cache) if work is None else work
    t_start, c_start = time.perf_counter(), time.process_time()
    base = load_scenario(cfg.scenario)
    ds = load_dataset(cfg.dataset, root=cfg.data_root, image_size=cfg.image_size)
    if base.metric is not Metric.FULL:
        raise InputError("scenario.metric", "the base market must value the full IoM (the schemes pick their metric)")
    out = Path(out)
    plan = _plan(cfg, base, out, resume, work)
    setup = SchemeSetup(base=base, out=out, seeds=cfg.seeds, rounds=cfg.rounds, drl_policy=cfg.drl_policy,
                        drl_seconds=cfg.drl_seconds, drl_updates=cfg.drl_updates, progress=progress)
    timing: dict[str, Any] = {"runs": {}}
    prepared = _prepare_schemes(plan, setup, timing["runs"])
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from models.progress import progress_bar

        bar = progress_bar(total=len(cfg.schemes) * cfg.seeds * cfg.rounds, initial=len(plan.records) * cfg.rounds,
                           desc="compare", unit="round")
    t_all = time.perf_counter()
    deadline_notes = _run_pending(plan, prepared, ds, bar, timing["runs"], log)
    records = plan.records
    for note in deadline_notes:
        log(f"note: {note}")
    frontier = stored_frontier(out / "frontier.json", base, cfg) if resume else None
    if frontier is None:  # markets only, but a minute at full size: kept for --resume
        t0 = time.perf_counter()
        frontier = fixed_frontier(base, cfg.seeds, cfg.rounds, work=work)
        timing["runs"]["frontier"] = time.perf_counter() - t0
        atomic_write_json(out / "frontier.json", {"settings": frontier_key(base, cfg), "frontier": frontier})
    timing["wall_seconds"] = time.perf_counter() - t_all
    timing = _with_earlier_timing(out / "timing.json", timing) if resume else timing
    timing.update(work_timing(work, t_start, c_start))
    atomic_write_json(out / "timing.json", timing)
    return base, ds, records, frontier, timing


@dataclass
class _Plan:
    """The comparison's (scheme, seed) runs: those stored and current (``records``), those left to
    run (``todo``), in order, and the budget levels computed while checking stored runs."""

    cfg: CompareConfig
    base: Scenario
    out: Path
    fp: Any
    work: SharedWork
    todo: list = field(default_factory=list)
    records: dict = field(default_factory=dict)
    levels: dict = field(default_factory=dict)


def _plan(cfg: CompareConfig, base: Scenario, out: Path, resume: bool, work: SharedWork) -> _Plan:
    """Which runs are left: with ``resume``, a stored run made with the same settings (and at the
    current level) is kept, one made with other settings is an error."""
    plan = _Plan(cfg, base, out, cfg.fingerprint(base), work)
    todo, records, levels = plan.todo, plan.records, plan.levels
    # seed by seed, the reference first (the budget-matched baselines spend its payments): an
    # interrupted run leaves whole seeds behind
    order = sorted(cfg.schemes, key=lambda n: n != cfg.reference)
    for s in range(cfg.seeds):
        for name in order:
            p = record_path(out, name, s)
            if resume and p.is_file():
                rec = json.loads(p.read_text())
                if _settings(rec) == plan.fp:
                    if level_current(rec, make_scheme(name), base, cfg, records.get((cfg.reference, s)), s, levels,
                                      name, work):
                        records[(name, s)] = rec
                        continue
                    todo.append((name, s))  # made at another level (--level, or another reference run)
                    continue
                raise InputError("--resume", f"{p} was made with other settings (use --force to start over)")
            todo.append((name, s))
    return plan


def _prepare_schemes(plan: _Plan, setup: SchemeSetup, times: dict[str, float]) -> dict[str, Any]:
    """Every scheme left to run loads (or trains) what it needs before any round; its seconds
    into ``times``."""
    prepared: dict[str, Any] = {}
    for name, _ in plan.todo:
        if name not in prepared:
            scheme = make_scheme(name)
            t0 = time.perf_counter()
            with plan.work.timer.phase("drl_training" if name == "drl" else "prepare"):
                scheme.prepare(setup)
            times[f"{name}/prepare"] = time.perf_counter() - t0
            prepared[name] = scheme
    return prepared


def _run_pending(plan: _Plan, prepared: dict[str, Any], ds: Any, bar: Any, times: dict[str, float],
                 log: Callable[[str], None]) -> list[str]:
    """Run every pending (scheme, seed), each record written to ``OUT/runs`` as it ends and added to
    ``plan.records``, the seconds into ``times``; the progress ``bar`` closed at the end. Returns
    the notes of the rounds' deadlines."""
    from models.io import atomic_write_json

    cfg, base, work, records, levels = plan.cfg, plan.base, plan.work, plan.records, plan.levels
    deadlines: dict[int, np.ndarray] = {}
    deadline_notes: list[str] = []
    try:
        for name, s in plan.todo:
            scheme = prepared[name]
            if (name, s) in levels:
                level = levels[(name, s)]
            else:
                level = levels_for(scheme, base, cfg, records.get((cfg.reference, s)), s, work)
            if bar is not None:
                bar.set_postfix(scheme=name, seed=s)
            t0 = time.perf_counter()
            if s not in deadlines:
                deadlines[s], notes = round_deadlines(base, cfg.rounds, s, cfg.deadline, work=work)
                deadline_notes += notes
                times[f"deadlines/seed{s}"] = time.perf_counter() - t0
                t0 = time.perf_counter()
            rec = run_scheme(scheme, base, cfg, s, ds, on_round=(bar.update if bar is not None else None),
                             deadlines=deadlines[s], level=level, work=work)
            rec["settings"] = plan.fp
            atomic_write_json(record_path(plan.out, name, s), rec)
            times[f"{name}/seed{s}"] = time.perf_counter() - t0
            records[(name, s)] = rec
            if rec["uncertified"]:
                log(f"note: {name} seed {s}: {len(rec['uncertified'])} round(s) not certified: {rec['uncertified'][0]}")
    finally:
        if bar is not None:
            bar.close()
    return deadline_notes


def work_timing(work: SharedWork, t_start: float, c_start: float) -> dict[str, Any]:
    """``timing.json``'s phases of this invocation: wall and CPU seconds of ``equilibrium`` (the
    EPEC solves and the MUs' responses: deadlines, schemes, budget levels, frontier), ``fl`` (the
    FL rounds with their evaluations), ``drl_training`` (or loading), ``schemes`` (the schemes'
    own work besides the equilibria), ``report`` (once written) and ``other``; the run's total
    wall and CPU seconds (``time.process_time``: every thread); the caches' hits and misses."""
    phases = work.timer.as_dict()
    wall, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    phases["other"] = {"wall_seconds": max(0.0, wall - sum(p["wall_seconds"] for p in phases.values())),
                       "cpu_seconds": max(0.0, cpu - sum(p["cpu_seconds"] for p in phases.values()))}
    return {"phases": phases, "invocation_wall_seconds": wall, "invocation_cpu_seconds": cpu,
            "cache": work.stats()}

