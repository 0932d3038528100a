"""The FL loop of one MSP driven by an allocation, with its simulated clock and checkpoints.

docs/model.md section 7: MU n with ``f_nm > 0`` participates in MSP m's task with ``D_nm``
samples (Dirichlet label split), trains ``L`` local epochs per round, and the server
aggregates (IoM-weighted FedAvg by default). Round deadline ``T_m`` (``FLConfig.deadline``):
a participant whose ``Tcmp_nm + Tup_nm`` exceeds it misses the round (its update is not
aggregated, it is still paid), and the round's simulated time is
``min(T_m, slowest participant)`` (``models.iom.round_time``); ``inf`` (the default) waits for
the slowest, ``"auto"`` is ``2 x`` the median participant's time at the allocation
(``models.iom.median_deadline``). The allocation is fixed, so every round takes the same
simulated time and the same participants miss it.

:func:`fl.round.fl_round` is the one implementation of an FL round: ``run_fl``, ``metatrading
compare`` and (its aggregation step, :func:`fl.round.aggregate_on_time`) the Flower App all use
it; the allocation is read and checked by :mod:`fl.allocation`.

Determinism: the initial model comes from ``torch.manual_seed(seed)`` and participant k's
batches in round r from ``client_seed(seed, r, k)`` (k = position among the participants),
so a run resumed from the checkpoint of round r ends with the same weights as an
uninterrupted one.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from models.errors import InputError
from models.io import atomic_save, load_torch_file
from models.iom import DEADLINE_MULTIPLE, iom_matrix, median_deadline, participant_times, round_time
from models.scenario import Scenario

from .aggregate import AGGREGATIONS, make_strategy
from .allocation import check_allocation
from .data import DatasetSplits
from .nets import make_net
from .partition import data_value, dirichlet_partition
from .round import fl_round
from .train import LocalTrainConfig, TrainPath, client_seed, evaluate, get_params

__all__ = ["FLConfig", "FLTask", "FLResult", "build_task", "resolve_deadline", "fl_report", "resolve_path", "run_fl",
           "CHECKPOINT_VERSION", "CHECKPOINT_FILE", "checkpoint_fingerprint", "load_checkpoint", "save_checkpoint", "HISTORY_KEYS"]

CHECKPOINT_VERSION = 1
#: the checkpoint's name in an output folder (``metatrading fl`` and ``fl-deploy`` write the same file)
CHECKPOINT_FILE = "fl_checkpoint.pt"
#: the per-round lists of ``FLResult`` a checkpoint keeps (its ``history``)
HISTORY_KEYS = ("accuracy", "sim_time", "participants", "wall_time", "missed")
#: the deadline of ``FLConfig.deadline = "auto"``
AUTO = "auto"


@dataclass(frozen=True)
class FLConfig:
    """Options of an FL run (the allocation and scenario come separately); the one home of the
    FL run defaults, which ``metatrading fl`` and ``metatrading compare`` read from here.

    Parameters
    ----------
    rounds : int
        FL rounds (>= 1), default 30.
    msp : int
        Which MSP's task m to train, default 0.
    alpha : float
        Dirichlet concentration of the label split (> 0), default 0.5 (non-IID).
    target : float
        Test accuracy whose first simulated time is reported, in (0, 1], default 0.9.
    seed : int
        Seed of the partition, the initial model and the batch orders, default 0.
    aggregation : str
        A rule of :data:`fl.aggregate.AGGREGATIONS`: ``iom`` (IoM-weighted FedAvg, default),
        ``fedavg`` or one registered with :func:`fl.aggregate.register_aggregation`.
    path : TrainPath
        Local-training implementation, default ``auto`` (:func:`resolve_path`).
    epochs : int or None
        Local epochs; default None = the scenario's ``L``.
    batch_size, lr, momentum, weight_decay
        Local SGD options, defaults those of :class:`fl.train.LocalTrainConfig` (32, 0.05, 0.5, 0).
    deadline : float or "auto"
        Round deadline ``T_m`` in simulated seconds (> 0), default ``inf`` (wait for the slowest
        participant); ``"auto"``: ``DEADLINE_MULTIPLE`` (2) x the median participant's
        ``Tcmp + Tup`` at the allocation (docs/model.md section 7).
    """

    rounds: int = 30
    msp: int = 0
    alpha: float = 0.5
    target: float = 0.9
    seed: int = 0
    aggregation: str = "iom"
    path: TrainPath = TrainPath.AUTO
    epochs: int | None = None
    batch_size: int = LocalTrainConfig.batch_size  # the local-SGD defaults live in LocalTrainConfig
    lr: float = LocalTrainConfig.lr
    momentum: float = LocalTrainConfig.momentum
    weight_decay: float = LocalTrainConfig.weight_decay
    deadline: float | str = math.inf

    def __post_init__(self) -> None:
        if self.deadline != AUTO:
            try:
                d = float(self.deadline)
            except (TypeError, ValueError):
                d = math.nan
            if isinstance(self.deadline, bool) or not d > 0:
                raise InputError("deadline", f"must be a number of seconds > 0, inf or 'auto', got {self.deadline!r}")
            object.__setattr__(self, "deadline", d)
        for name, lo in (("rounds", 1), ("msp", 0), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise InputError(name, f"must be an integer >= {lo}, got {v!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            raise InputError("alpha", f"must be a finite number > 0, got {self.alpha!r}")
        if not (isinstance(self.target, (int, float)) and 0 < self.target <= 1):
            raise InputError("target", f"must be in (0, 1], got {self.target!r}")
        aggregation = getattr(self.aggregation, "value", self.aggregation)
        if not isinstance(aggregation, str) or aggregation not in AGGREGATIONS:
            raise InputError("aggregation", f"unknown value {self.aggregation!r} (choose: {', '.join(AGGREGATIONS)})")
        object.__setattr__(self, "aggregation", aggregation)
        try:
            object.__setattr__(self, "path", TrainPath(self.path))
        except ValueError:
            opts = ", ".join(e.value for e in TrainPath)
            raise InputError("path", f"unknown value {self.path!r} (choose: {opts})") from None
        self.local(1)  # validates the local options

    def local(self, scenario_epochs: int) -> LocalTrainConfig:
        """The local SGD options, with the scenario's ``L`` unless ``epochs`` is set."""
        return LocalTrainConfig(
            epochs=self.epochs if self.epochs is not None else int(scenario_epochs),
            batch_size=self.batch_size, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
        )


@dataclass
class FLTask:
    """One MSP's FL task under an allocation: who trains on what, and how long a round takes."""

    dataset: DatasetSplits
    msp: int
    participants: np.ndarray  #: MU ids n with f_nm > 0
    indices: list[np.ndarray]  #: training indices of each participant (len D_nm)
    sizes: np.ndarray  #: D_nm of each participant
    iom: np.ndarray  #: IoM_nm of each participant under the allocation
    value: np.ndarray  #: normalised label entropy of each participant's data (docs/model.md v_nm)
    round_time: float  #: simulated seconds per FL round: min(deadline, slowest participant)
    local: LocalTrainConfig
    data_scale: float = 1.0  #: samples held / D_nm (< 1 only when the data set is too small)
    times: np.ndarray | None = None  #: Tcmp_nm + Tup_nm of each participant (s)
    deadline: float = math.inf  #: the round deadline T_m (s)

    @property
    def on_time(self) -> np.ndarray:
        """Which participants deliver within the deadline, bool (P,)."""
        if self.times is None:
            return np.ones(len(self.participants), dtype=bool)
        return np.asarray(self.times) <= self.deadline

    @property
    def missed(self) -> int:
        """Updates that miss each round's deadline."""
        return int((~self.on_time).sum())


@dataclass
class FLResult:
    """Per-round history and the final model of an FL run."""

    params: dict[str, Tensor]
    accuracy: list[float] = field(default_factory=list)
    sim_time: list[float] = field(default_factory=list)
    participants: list[int] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)  #: updates that missed each round's deadline
    target: float = 0.9
    path: str = ""
    resumed_from: int = 0  #: rounds read from the checkpoint (0: a fresh run)

    @property
    def rounds(self) -> int:
        return len(self.accuracy)

    def restore(self, state: dict[str, Any]) -> int:
        """Take the weights and the history of a checkpoint (``load_checkpoint``); returns its rounds."""
        self.params = state["params"]
        for key in HISTORY_KEYS:
            # checkpoints written before the round deadline hold no 'missed': none was missed
            default = [0] * len(state["history"]["accuracy"]) if key == "missed" else None
            setattr(self, key, list(state["history"].get(key, default)))
        self.resumed_from = self.rounds
        return self.resumed_from

    @property
    def time_to_target(self) -> float | None:
        """Simulated time at which the test accuracy first reaches ``target`` (None if never)."""
        r = self.rounds_to_target
        return None if r is None else self.sim_time[r - 1]

    @property
    def rounds_to_target(self) -> int | None:
        for r, acc in enumerate(self.accuracy, start=1):
            if acc >= self.target:
                return r
        return None


def build_task(dataset: DatasetSplits, sc: Scenario, f: Any, cfg: FLConfig, scale_to_fit: bool = True) -> FLTask:
    """Participants, their data (Dirichlet split), IoM weights and the round time of MSP ``cfg.msp``.

    When the participants' ``sum D_nm`` exceeds the training split and ``scale_to_fit``, each
    participant holds ``max(1, floor(s D_nm))`` samples with ``s = n_train / sum D_nm``
    (``FLTask.data_scale``); the IoM weights and the clock keep the scenario's ``D_nm``.
    """
    f = check_allocation(f, sc)
    m = cfg.msp
    if m >= sc.n_msp:
        raise InputError("msp", f"the scenario has {sc.n_msp} MSPs (0..{sc.n_msp - 1}), got {m}")
    part = np.flatnonzero(f[:, m] > 0)
    if part.size == 0:
        raise InputError(f"allocations[:, {m}]", f"zero participants: no MU allocates CPU to MSP {m}")
    sizes = sc.D[part, m].astype(np.int64)
    if (sizes == 0).any():
        raise InputError(f"D[{int(part[np.argmax(sizes == 0)])}][{m}]", "a participant must hold at least one sample")
    n_train = dataset.n_train
    scale = 1.0
    if sizes.sum() > n_train and scale_to_fit and part.size <= n_train:
        scale = n_train / float(sizes.sum())
        sizes = np.maximum(1, np.floor(sizes * scale)).astype(np.int64)
    if sizes.sum() > n_train:
        raise InputError(f"D[:, {m}]", f"participants need {int(sizes.sum())} samples, {dataset.name} has {n_train}")
    labels = dataset.train_y.cpu().numpy()
    indices = dirichlet_partition(labels, sizes.tolist(), cfg.alpha, cfg.seed)
    deadline = resolve_deadline(cfg.deadline, sc, f, m)
    return FLTask(
        dataset=dataset,
        msp=m,
        participants=part,
        indices=[np.asarray(i, dtype=np.int64) for i in indices],
        sizes=sizes,
        iom=iom_matrix(sc, f)[part, m],
        value=np.asarray(data_value(labels, indices, dataset.num_classes), dtype=float),
        round_time=round_time(sc, f, m, deadline),
        local=cfg.local(sc.L),
        data_scale=scale,
        times=participant_times(sc, f, m),
        deadline=deadline,
    )


def resolve_deadline(deadline: float | str, sc: Scenario, f: Any, msp: int) -> float:
    """``FLConfig.deadline`` in seconds: a number as given, ``"auto"`` as
    ``DEADLINE_MULTIPLE x`` the median participant's ``Tcmp + Tup`` at ``f``."""
    return median_deadline(sc, f, msp, DEADLINE_MULTIPLE) if deadline == AUTO else float(deadline)


def resolve_path(path: TrainPath, device: torch.device | str) -> TrainPath:
    """``auto`` -> the faster path on ``device``: vectorised on CUDA; on CPU, parallel when torch
    has more than one thread, else sequential.

    Measured with ``metatrading bench fl`` on the 2-core CPU box (torch 2.14; docs/results.md):
    the vectorised path (grouped convolutions) runs at about a third of the large-batch
    single-model limit there (oneDNN's grouped convolution is slow), plain sequential at about
    0.7, and clients spread over the cores (one thread each) at the highest ratio. On a GPU one
    grouped kernel for all clients replaces K small launches.
    """
    if path is not TrainPath.AUTO:
        return path
    if torch.device(device).type == "cuda":
        return TrainPath.VECTORISED
    return TrainPath.PARALLEL if torch.get_num_threads() > 1 else TrainPath.SEQUENTIAL


def checkpoint_fingerprint(task: FLTask, cfg: FLConfig) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed (not the training path nor the engine: the
    built-in paths and the Flower deployment train the same model, to float rounding; tested)."""
    return {
        "version": CHECKPOINT_VERSION,
        "dataset": task.dataset.name,
        "n_train": task.dataset.n_train,
        "msp": task.msp,
        "participants": task.participants.tolist(),
        "sizes": task.sizes.tolist(),
        "data_scale": task.data_scale,
        "iom": [float(v) for v in task.iom],
        # before round_time, which it changes: a resume with another deadline names --deadline
        **({"deadline": float(task.deadline)} if math.isfinite(task.deadline) else {}),
        "round_time": float(task.round_time),
        "local": asdict(task.local),
        "seed": cfg.seed,
        "alpha": cfg.alpha,
        "aggregation": cfg.aggregation,
    }


def run_fl(
    task: FLTask,
    cfg: FLConfig,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    device: torch.device | str | None = None,
    progress: bool = False,
    stop_after: int | None = None,
    on_round: Callable[[int, float], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> FLResult:
    """Train ``cfg.rounds`` FL rounds (or continue them from ``checkpoint`` when ``resume``).

    Parameters
    ----------
    task : FLTask
        From :func:`build_task`.
    cfg : FLConfig
    checkpoint : path, optional
        Written atomically after every round (``torch.save`` of tensors, numbers, strings, lists
        and dicts only: round, weights, history; read back with ``weights_only``).
    resume : bool
        Continue from ``checkpoint``, which must exist, be readable, hold at most ``cfg.rounds``
        rounds and match every setting (InputError ``checkpoint.<setting>`` naming the first
        that differs, ``checkpoint`` for a missing or unreadable file, ``rounds``).
    device : torch device, optional
        Default cuda when available, else cpu.
    progress : bool
        A tqdm bar over the rounds.
    stop_after : int, optional
        Stop after this many completed rounds in total (simulates an interruption; tests).
    on_round : callable(round, accuracy), optional
        Called after each round.
    on_resume : callable(rounds_done), optional
        Called once the checkpoint is read, with the number of rounds it holds.
    """
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_path(cfg.path, dev)
    ds = task.dataset
    torch.manual_seed(cfg.seed)
    net = make_net(ds.shape, ds.num_classes)
    net = net.to(dev)
    params = get_params(net)
    result = FLResult(params=params, target=cfg.target, path=path.value)
    fp = checkpoint_fingerprint(task, cfg)
    if resume:
        state = load_checkpoint(checkpoint, dev, fp)
        done = len(state["history"]["accuracy"])
        if done > cfg.rounds:
            raise InputError("rounds", f"the checkpoint {checkpoint} holds {done} rounds already, more than the "
                                       f"{cfg.rounds} asked for (ask for {done} or more)")
        result.restore(state)
        if on_resume is not None:
            on_resume(done)

    xs = [ds.train_x[torch.as_tensor(i)].to(dev) for i in task.indices]
    ys = [ds.train_y[torch.as_tensor(i)].to(dev) for i in task.indices]
    test_x, test_y = ds.test_x.to(dev), ds.test_y.to(dev)
    strategy = make_strategy(cfg.aggregation)
    last = cfg.rounds if stop_after is None else min(cfg.rounds, stop_after)
    bar = None
    if progress:
        from models.progress import progress_bar

        bar = progress_bar(total=cfg.rounds, initial=result.rounds, desc=f"FL {ds.name} MSP {task.msp}", unit="round")
    try:
        for r in range(result.rounds, last):
            t0 = time.perf_counter()
            seeds = [client_seed(cfg.seed, r, k) for k in range(len(xs))]
            result.params, missed = fl_round(path, net, result.params, xs, ys, task.local, seeds, task.iom,
                                             task.sizes, strategy, task.on_time)
            acc = evaluate(net, result.params, test_x, test_y)
            result.accuracy.append(acc)
            result.sim_time.append((r + 1) * task.round_time)
            result.participants.append(len(xs))
            result.missed.append(missed)
            result.wall_time.append(time.perf_counter() - t0)
            if checkpoint is not None:
                save_checkpoint(checkpoint, result, fp)
            if bar is not None:
                bar.set_postfix(acc=f"{acc:.3f}", sim_s=f"{result.sim_time[-1]:.0f}", refresh=False)
                bar.update(1)
            if on_round is not None:
                on_round(r, acc)
    finally:
        if bar is not None:
            bar.close()
    return result


def load_checkpoint(checkpoint: str | Path | None, dev: torch.device, fp: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint to resume from: present, readable and made with this run's settings."""
    if checkpoint is None or not Path(checkpoint).is_file():
        raise InputError("checkpoint", f"no checkpoint {checkpoint} to resume from (start without resuming)")
    state = load_torch_file(checkpoint, "checkpoint", map_location=dev)  # never runs code stored in it
    try:
        history = state["history"]
        if not isinstance(state["params"], dict) or not all(isinstance(history.get(k, []), list) for k in HISTORY_KEYS):
            raise TypeError("unexpected contents")
    except Exception as exc:  # truncated, empty, not a torch file, or another file's contents
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError("checkpoint", f"{checkpoint} cannot be read ({type(exc).__name__}: {reason[:120]}); "
                                       "delete it to start again") from None
    old = state.get("fingerprint")
    if not isinstance(old, dict):
        raise InputError("checkpoint", f"{checkpoint} holds no settings to check against; delete it to start again")
    for key, new in fp.items():
        if key == "local" and isinstance(old.get(key), dict):
            for sub, v in new.items():
                if old[key].get(sub) != v:
                    raise InputError(f"checkpoint.local.{sub}", _differs(checkpoint, f"local {sub}", old[key].get(sub), v))
        elif old.get(key) != new:
            raise InputError(f"checkpoint.{key}", _differs(checkpoint, key, old.get(key), new))
    return state


def _differs(checkpoint: Any, setting: str, old: Any, new: Any) -> str:
    import reprlib

    short = reprlib.Repr()
    short.maxlist = short.maxstring = 6
    return (f"the checkpoint {checkpoint} was made with {setting} = {short.repr(old)}, this run has "
            f"{short.repr(new)} (run with the checkpoint's setting, or without resuming into a new folder)")


def save_checkpoint(path: str | Path, result: FLResult, fp: dict[str, Any]) -> None:
    state = {
        "fingerprint": fp,
        "round": result.rounds,
        "params": {k: v.detach().cpu() for k, v in result.params.items()},
        "history": {k: list(getattr(result, k)) for k in HISTORY_KEYS},
    }
    atomic_save(path, lambda tmp: torch.save(state, tmp))


def fl_report(task: FLTask, cfg: FLConfig, res: FLResult, source: str, scenario_seed: int | None = None) -> dict[str, Any]:
    """The content of ``fl.json`` (``metatrading fl`` and the Flower deployment write the same keys)."""
    return {
        "dataset": task.dataset.name,
        "msp": task.msp,
        "allocation_source": source,
        "aggregation": cfg.aggregation,
        "path": res.path,
        "participant_ids": task.participants.tolist(),
        "sizes": task.sizes.tolist(),
        "data_scale": task.data_scale,
        "iom": task.iom.tolist(),
        "data_value": task.value.tolist(),
        "round_time": task.round_time,
        "deadline": task.deadline if math.isfinite(task.deadline) else "inf",
        "participant_times": [] if task.times is None else [float(t) for t in task.times],
        "late_ids": task.participants[~task.on_time].tolist(),
        "local": {"epochs": task.local.epochs, "batch_size": task.local.batch_size, "lr": task.local.lr,
                  "momentum": task.local.momentum},
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "scenario_seed": scenario_seed,
        "rounds": res.rounds,
        "resumed_from": res.resumed_from,
        "accuracy": res.accuracy,
        "sim_time": res.sim_time,
        "participants": res.participants,
        "missed": res.missed,
        "missed_updates": int(sum(res.missed)),
        "wall_time": res.wall_time,
        "target": cfg.target,
        "time_to_target": res.time_to_target,
        "rounds_to_target": res.rounds_to_target,
        "final_accuracy": res.accuracy[-1],
    }
