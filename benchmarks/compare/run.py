"""One scheme comparison: every scheme faces the same dynamic markets, with FL per round.

For seed s the market is ``models.dynamics.trajectory(base, T, s)`` (common random numbers:
the same vehicles, data, joins and leaves for every scheme). Per trading round t and scheme:

1. the scheme posts ``R`` (:class:`~benchmarks.compare.schemes.Scheme`);
2. the active MUs respond with their exact Nash allocation (:func:`models.follower_equilibrium`)
   in the game the scheme plays (``Scenario.metric``: the partial metric for the ablations);
3. the outcome is measured with the real IoM: total IoM and contributors per MSP, MSP
   utilities ``V_m = lambda_m ln(1 + real total_m) - payment_m`` (the payments of the game
   played) and MU utilities;
4. each MSP runs one FL round (MODEL.md section 7): its participants (``f_nm > 0``) train ``L``
   local epochs on their ``D_nm`` samples of its data set (Dirichlet label split of the active
   MUs' data, the same for every scheme), the server aggregates with IoM-weighted FedAvg (real
   IoM) and the MSP's simulated clock advances by the slowest participant's ``Tcmp + Tup``
   (:func:`models.round_time`). Each MSP's model persists across trading rounds.

One (scheme, seed) run is a JSON record; :func:`run_comparison` writes it atomically to
``OUT/runs/<scheme>__seed<s>.json`` when the run is done and, on resume, skips records whose
settings match. Records hold no wall-clock times, so a resumed comparison gives the same
``compare.json`` as an uninterrupted one (times go to ``OUT/timing.json``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from models.errors import InputError
from models.scenario import Metric, Scenario

from .schemes import DRL_MISSING, RoundInfo, RoundOutcome, SchemeSetup, drl_available, make_scheme, SCHEMES

__all__ = ["CompareConfig", "DEFAULT_TARGETS", "run_scheme", "run_comparison", "record_path", "RECORD_VERSION"]

RECORD_VERSION = 1

#: test accuracy whose first simulated time is the "time to target", per data set (--target)
DEFAULT_TARGETS: dict[str, float] = {"mnist5k": 0.90, "mnist": 0.95, "fashion-mnist": 0.70, "gtsrb": 0.80}


@dataclass(frozen=True)
class CompareConfig:
    """Options of a comparison (the CLI's flags).

    Parameters
    ----------
    scenario : str
        Preset name or scenario file of the base market (default ``default``).
    dataset : str
        FL data set of every MSP (``mnist5k``, ``fashion-mnist``, ``mnist``, ``gtsrb``).
    data_root : str or None
        Its folder (see :mod:`fl.data`).
    schemes : tuple of str
        Registered scheme names.
    seeds : int
        Seeds 0..seeds-1, each a market trajectory (>= 1).
    rounds : int
        Trading rounds T per trajectory, one FL round each (>= 1).
    target : float or None
        Target test accuracy; None: ``DEFAULT_TARGETS[dataset]``.
    epochs : int or None
        Local epochs; None: the scenario's ``L`` (MODEL.md). ``--quick`` sets 1.
    alpha : float
        Dirichlet concentration of the label split (default 0.5).
    batch_size, lr, momentum
        Local SGD (defaults 32, 0.05, 0.5, as ``metatrading fl``).
    aggregation : str
        ``iom`` (IoM-weighted FedAvg, default) or ``fedavg``.
    drl_policy : str or None
        Folder of trained pricing for ``drl``; None: trained into ``OUT/drl_policy``.
    drl_seconds : float
        Training budget of ``drl`` when it is trained here (default 300 s of wall clock).
    drl_updates : int or None
        Or stop its training after this many PPO updates (reproducible).
    image_size : int or None
        Image side (GTSRB default 32).
    reference : str
        The scheme the headline compares with the others (default ``drl``).
    """

    scenario: str = "default"
    dataset: str = "mnist5k"
    data_root: str | None = None
    schemes: tuple[str, ...] = ()
    seeds: int = 3
    rounds: int = 10
    target: float | None = None
    epochs: int | None = None
    alpha: float = 0.5
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.5
    aggregation: str = "iom"
    drl_policy: str | None = None
    drl_seconds: float = 300.0
    drl_updates: int | None = None
    image_size: int | None = None
    reference: str = "drl"

    def __post_init__(self) -> None:
        for name in ("seeds", "rounds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"--{name}", f"must be an integer >= 1, got {v!r}")
        if not self.schemes:
            raise InputError("--schemes", "no scheme chosen")
        for s in self.schemes:
            if s not in SCHEMES:
                raise InputError("--schemes", f"unknown scheme {s!r} (known: {', '.join(SCHEMES)})")
        if self.reference not in SCHEMES:
            raise InputError("--reference", f"unknown scheme {self.reference!r} (known: {', '.join(SCHEMES)})")
        if "drl" in self.schemes and not drl_available():
            raise InputError("--schemes", DRL_MISSING)
        if self.target is not None and not (math.isfinite(self.target) and 0 < self.target <= 1):
            raise InputError("--target", f"must be in (0, 1], got {self.target}")
        if self.epochs is not None and (isinstance(self.epochs, bool) or self.epochs < 1):
            raise InputError("--epochs", f"must be an integer >= 1, got {self.epochs!r}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise InputError("--alpha", f"must be a finite number > 0, got {self.alpha}")
        if not (math.isfinite(self.drl_seconds) and self.drl_seconds > 0):
            raise InputError("--drl-seconds", f"must be > 0, got {self.drl_seconds}")
        if self.drl_updates is not None and (isinstance(self.drl_updates, bool) or self.drl_updates < 1):
            raise InputError("--drl-updates", f"must be an integer >= 1, got {self.drl_updates!r}")
        if self.aggregation not in ("iom", "fedavg"):
            raise InputError("--aggregation", f"unknown rule {self.aggregation!r} (choose: iom, fedavg)")

    @property
    def accuracy_target(self) -> float:
        return self.target if self.target is not None else DEFAULT_TARGETS[self.dataset]

    def fingerprint(self, base: Scenario) -> dict[str, Any]:
        """What a stored run record must agree with to be reused on ``--resume``.

        Not the target accuracy: a record holds the accuracy of every round, and the time to the
        target is computed from it by the report, so ``--resume --target ACC`` re-reports a
        finished comparison at another target without training again.
        """
        d = asdict(self)
        for key in ("schemes", "seeds", "drl_seconds", "drl_updates", "reference", "target"):
            d.pop(key)
        d["base"] = base.to_dict()
        d["version"] = RECORD_VERSION
        return json.loads(json.dumps(d))


def _settings(rec: Mapping[str, Any]) -> Any:
    """A record's settings as ``CompareConfig.fingerprint`` makes them (older records hold the target)."""
    settings = rec.get("settings")
    return {k: v for k, v in settings.items() if k != "target"} if isinstance(settings, dict) else settings


def record_path(out: Path, scheme: str, seed: int) -> Path:
    return Path(out) / "runs" / f"{scheme}__seed{seed}.json"


def _seed_of(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint32)[0])


class _FLMarket:
    """The MSPs' FL tasks along one trajectory: a model and a simulated clock per MSP."""

    def __init__(self, ds: Any, base: Scenario, cfg: CompareConfig, seed: int) -> None:
        import torch

        from fl.aggregate import make_strategy
        from fl.nets import make_net
        from fl.train import LocalTrainConfig, TrainPath, get_params
        from fl.trainer import resolve_path

        self.ds, self.cfg, self.seed = ds, cfg, seed
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

    def round(self, t: int, sc_full: Scenario, f_full: np.ndarray, iom_full: np.ndarray) -> dict[str, Any]:
        """One FL round of every MSP; returns accuracy, simulated time and participants (M,)."""
        import torch

        from fl.partition import dirichlet_partition
        from fl.train import client_seed, evaluate, local_update
        from models.iom import round_time

        acc, parts, scale_used = [], [], []
        n_train = self.ds.n_train
        for m in range(sc_full.n_msp):
            holders = np.flatnonzero(sc_full.D[:, m] > 0)  # the active MUs holding m's data
            sizes = sc_full.D[holders, m].astype(np.int64)
            scale = 1.0
            if sizes.sum() > n_train:  # a data set smaller than the market: shrink every share alike
                scale = n_train / float(sizes.sum())
                sizes = np.maximum(1, np.floor(sizes * scale)).astype(np.int64)
            # The split depends on the market only (not on the scheme): common random numbers.
            idx = dirichlet_partition(self.labels, sizes.tolist(), self.cfg.alpha, _seed_of(self.seed, t, m, 23))
            part = [k for k, n in enumerate(holders) if f_full[n, m] > 0]
            parts.append(len(part))
            scale_used.append(scale)
            if part:
                xs = [self.ds.train_x[torch.as_tensor(idx[k])] for k in part]
                ys = [self.ds.train_y[torch.as_tensor(idx[k])] for k in part]
                seeds = [client_seed(self.seed, t, int(holders[k]) * sc_full.n_msp + m) for k in part]
                updates = local_update(self.path, self.nets[m], self.params[m], xs, ys, self.local, seeds)
                w_iom = np.array([iom_full[holders[k], m] for k in part])
                self.params[m] = self.strategy.aggregate(updates, w_iom, sizes[part])
                self.clock[m] += round_time(sc_full, f_full, m)
            acc.append(evaluate(self.nets[m], self.params[m], self.ds.test_x, self.ds.test_y))
        return {"accuracy": acc, "sim_time": self.clock.tolist(), "participants": parts, "data_scale": scale_used}


def run_scheme(scheme: Any, base: Scenario, cfg: CompareConfig, seed: int, ds: Any,
               on_round: Callable[[], None] | None = None) -> dict[str, Any]:
    """One (scheme, seed) run along ``trajectory(base, cfg.rounds, seed)``; a JSON record."""
    from models.dynamics import trajectory
    from models.equilibrium import follower_equilibrium
    from models.iom import iom_matrix
    from models.utility import msp_payment, msp_value, mu_utilities

    traj = trajectory(base, cfg.rounds, seed)
    scheme.reset(base, seed)
    fl = _FLMarket(ds, base, cfg, seed)
    rounds: list[dict[str, Any]] = []
    uncertified: list[str] = []
    for t in range(cfg.rounds):
        active = np.flatnonzero(traj.active[t])
        sc = traj.active_scenario(t)
        info = RoundInfo(round=t, scenario=sc, seed=seed, rng=np.random.default_rng(_seed_of(seed, t, 5)))
        dec = scheme.rewards(info)
        R = np.asarray(dec.R, dtype=float).reshape(-1)
        if R.shape != (sc.n_msp,) or not np.all(np.isfinite(R)):
            raise RuntimeError(f"scheme {scheme.name!r} posted {R!r} in round {t}; expected {sc.n_msp} finite rewards")
        R = np.clip(R, 0.0, sc.Rmax)
        if dec.certified is False:
            uncertified.append(dec.note or f"round {t}")
        game = sc.replace(metric=scheme.metric)  # the game the MUs play under this scheme
        eq = follower_equilibrium(game, R)
        f = eq.f
        I_real = iom_matrix(sc, f)  # outcomes with the real IoM (sc.metric is the full IoM)
        total = I_real.sum(0)
        played_total = iom_matrix(game, f).sum(0)
        V = msp_value(sc.lam, total) - msp_payment(sc.mechanism, R, played_total, sc.eps0)
        U = mu_utilities(game, R, f)
        contributors = (f > 0).sum(0)
        scheme.feedback(RoundOutcome(R=R.copy(), total_iom=total.copy(), contributors=contributors.copy(),
                                     utility=V.copy()))
        f_full = np.zeros(base.D.shape)
        f_full[active] = f
        I_full = np.zeros(base.D.shape)
        I_full[active] = I_real
        U_full = np.zeros(base.n_mu)
        U_full[active] = U
        flr = fl.round(t, traj.scenario(t), f_full, I_full)
        rounds.append({
            "round": t, "R": R.tolist(), "certified": dec.certified,
            "active": active.tolist(), "f": f_full.tolist(), "followers_converged": bool(eq.converged),
            "iom": total.tolist(), "contributors": contributors.tolist(),
            "msp_utility": V.tolist(), "mu_utility": U_full.tolist(),
            "msp_utility_sum": float(V.sum()), "mu_utility_sum": float(U.sum()),
            "social_utility": float(V.sum() + U.sum()), **flr,
        })
        if on_round is not None:
            on_round()
    return {"scheme": scheme.name, "seed": seed, "describe": scheme.describe(),
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


def run_comparison(cfg: CompareConfig, out: str | Path, resume: bool = False, progress: bool = False,
                   log: Callable[[str], None] = print) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run every (scheme, seed) not already done and write ``compare.json`` and the PNGs.

    Returns ``(compare, timing)``. Every input is checked (data set, scenario, schemes) before
    any work or any file is written.
    """
    from fl.data import load_dataset
    from models.scenario import load_scenario

    from .report import summarise, write_plots
    from models.io import atomic_write_json

    base = load_scenario(cfg.scenario)
    ds = load_dataset(cfg.dataset, root=cfg.data_root, image_size=cfg.image_size)
    if base.metric is not Metric.FULL:
        raise InputError("scenario.metric", "the base market must value the full IoM (the schemes pick their metric)")
    out = Path(out)
    fp = cfg.fingerprint(base)
    todo, records = [], {}
    for s in range(cfg.seeds):  # seed by seed: an interrupted run leaves whole seeds behind
        for name in cfg.schemes:
            p = record_path(out, name, s)
            if resume and p.is_file():
                rec = json.loads(p.read_text())
                if _settings(rec) == fp:
                    records[(name, s)] = rec
                    continue
                raise InputError("--resume", f"{p} was made with other settings (use --force to start over)")
            todo.append((name, s))
    setup = SchemeSetup(base=base, out=out, seeds=cfg.seeds, rounds=cfg.rounds, drl_policy=cfg.drl_policy,
                        drl_seconds=cfg.drl_seconds, drl_updates=cfg.drl_updates, progress=progress)
    timing: dict[str, Any] = {"runs": {}}
    prepared: dict[str, Any] = {}
    for name, _ in todo:  # every scheme loads (or trains) what it needs before any round
        if name not in prepared:
            scheme = make_scheme(name)
            t0 = time.perf_counter()
            scheme.prepare(setup)
            timing["runs"][f"{name}/prepare"] = time.perf_counter() - t0
            prepared[name] = scheme
    out.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from models.progress import progress_bar

        bar = progress_bar(total=len(cfg.schemes) * cfg.seeds * cfg.rounds, initial=len(records) * cfg.rounds,
                   desc="compare", unit="round")
    t_all = time.perf_counter()
    try:
        for name, s in todo:
            scheme = prepared[name]
            if bar is not None:
                bar.set_postfix(scheme=name, seed=s)
            t0 = time.perf_counter()
            rec = run_scheme(scheme, base, cfg, s, ds, on_round=(bar.update if bar is not None else None))
            rec["settings"] = fp
            atomic_write_json(record_path(out, name, s), rec)
            timing["runs"][f"{name}/seed{s}"] = time.perf_counter() - t0
            records[(name, s)] = rec
            if rec["uncertified"]:
                log(f"note: {name} seed {s}: {len(rec['uncertified'])} round(s) not certified: {rec['uncertified'][0]}")
    finally:
        if bar is not None:
            bar.close()
    timing["wall_seconds"] = time.perf_counter() - t_all
    timing = _with_earlier_timing(out / "timing.json", timing) if resume else timing
    compare = summarise(cfg, base, ds, records, reference=cfg.reference)
    atomic_write_json(out / "compare.json", compare)
    atomic_write_json(out / "timing.json", timing)
    write_plots(out, compare)
    return compare, timing
