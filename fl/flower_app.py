"""The packaged Flower App: ``[tool.flwr.app.components]`` of ``pyproject.toml`` point here.

Flower's deployment engine runs it: one ``flower-superlink``, one ``flower-supernode`` per MU
and ``flwr run . <superlink-connection>`` (``fl.deploy`` starts all of that on loopback; the
README's "Running on several machines" shows the multi-machine recipe). It is the same FL as
``metatrading fl`` (``fl.trainer.run_fl``): MSP ``msp``'s task under the allocation, the
initial model from ``torch.manual_seed(seed)``, participant k's batches from
``client_seed(seed, r, k)``, IoM-weighted FedAvg (``fl.aggregate``) over the participants.

What each side knows:

- the **ServerApp** (on the SuperLink's machine) reads the run config
  (``[tool.flwr.app.config]``, overridden by ``flwr run --run-config``), builds the task
  (``fl.trainer.build_task``: participants, ``D_nm``, IoM, the partition recipe), evaluates the
  global model on the test split and writes ``fl.json`` (the keys of ``metatrading fl``),
  ``fl_params.pt`` (the final global weights) and ``progress.json`` (after every round) into
  ``out-dir``;
- a **SuperNode** learns who it is from its ``--node-config``: ``partition-id`` (its position
  k among the participants), ``num-partitions`` (their number K) and ``mu-id`` (the MU n it
  is; the server checks it against the allocation), optionally ``data-root``. It reloads its
  own data and carves its partition from the recipe the server sends (sizes, alpha, seed);
- what leaves a node: its model update, its client id / MU id and its sample count (the
  strategy orders replies by client and weights them); never its data or labels.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from logging import INFO
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from models.errors import InputError
from models.io import atomic_save, atomic_write_json

from .aggregate import make_strategy
from .data import load_dataset
from .flower import (ARRAYS_KEY, CLIENT_ID, CONFIG_KEY, FLOWER_FIRST_ROUND, METRICS_KEY, MU_ID, NUM_EXAMPLES, ROUND_KEY,
                     ParamLayout, weighted_strategy_class)
from .flower_waits import Backoff, shorten_grid_waits
from .nets import make_net
from .partition import dirichlet_partition
from .train import LocalTrainConfig, client_seed, evaluate, get_params, local_update_sequential
from .trainer import (CHECKPOINT_FILE, FLConfig, FLResult, FLTask, build_task, checkpoint_fingerprint,
                      default_allocation, fl_report, load_allocation, load_checkpoint, save_checkpoint)

__all__ = ["DeployRunConfig", "PromptGrid", "RUN_CONFIG_DEFAULTS", "PARAMS_FILE", "PROGRESS_FILE", "RESULT_FILE",
           "client_app", "server_app", "node_identity", "task_from_run_config"]

#: Files the ServerApp writes into ``out-dir``.
RESULT_FILE = "fl.json"
PARAMS_FILE = "fl_params.pt"
PROGRESS_FILE = "progress.json"
#: At least this long the ServerApp waits for the SuperNodes to connect and answer the
#: client-id query (their first message: a ClientApp process may still be starting).
CONNECT_TIMEOUT_S = 120.0
#: ``path`` recorded in fl.json for this engine.
DEPLOY_PATH = "flower-deployment"

#: The run config and its defaults; ``pyproject.toml``'s ``[tool.flwr.app.config]`` must
#: carry the same keys (a test checks), since Flower only accepts overrides of declared keys.
RUN_CONFIG_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist5k",
    "data-root": "",
    "allocation": "",
    "scenario": "default",
    "msp": 0,
    "rounds": 3,
    "aggregation": "iom",
    "seed": 0,
    "alpha": 0.5,
    "target": 0.9,
    "epochs": 0,
    "batch-size": 32,
    "lr": 0.05,
    "momentum": 0.5,
    "round-timeout": 600.0,
    "deadline": "inf",
    "short-waits": True,
    "resume": False,
    "out-dir": "results/fl-deploy",
}


@dataclass(frozen=True)
class DeployRunConfig:
    """The run config of the App, typed and checked (keys as in ``RUN_CONFIG_DEFAULTS``).

    ``allocation`` is an equilibrium.json of ``metatrading solve`` ("" = the ``scenario``'s
    followers' equilibrium at ``R = Rmax / 2``, as ``metatrading fl``); ``epochs`` 0 = the
    scenario's ``L``; relative paths are resolved against the ServerApp's working folder.
    """

    dataset: str
    data_root: str
    allocation: str
    scenario: str
    out_dir: str
    round_timeout: float
    fl: FLConfig
    short_waits: bool = True
    resume: bool = False

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> "DeployRunConfig":
        unknown = sorted(set(run_config) - set(RUN_CONFIG_DEFAULTS))
        if unknown:
            raise InputError(f"run-config.{unknown[0]}", f"unknown key (known: {', '.join(RUN_CONFIG_DEFAULTS)})")
        c = {**RUN_CONFIG_DEFAULTS, **dict(run_config)}
        for key in ("msp", "rounds", "seed", "epochs", "batch-size"):
            if isinstance(c[key], bool) or not isinstance(c[key], int):
                raise InputError(f"run-config.{key}", f"must be an integer, got {c[key]!r}")
        for key in ("alpha", "target", "lr", "momentum", "round-timeout"):
            if isinstance(c[key], bool) or not isinstance(c[key], (int, float)):
                raise InputError(f"run-config.{key}", f"must be a number, got {c[key]!r}")
        for key in ("short-waits", "resume"):
            if not isinstance(c[key], bool):
                raise InputError(f"run-config.{key}", f"must be true or false, got {c[key]!r}")
        timeout = float(c["round-timeout"])
        if not (math.isfinite(timeout) and timeout > 0):
            raise InputError("run-config.round-timeout", f"must be > 0 seconds, got {timeout!r}")
        deadline = str(c["deadline"]).strip().lower()
        if deadline != "auto":
            try:
                deadline = float(deadline)
            except ValueError:
                raise InputError("run-config.deadline", f"must be seconds, 'inf' or 'auto', got {c['deadline']!r}") from None
        if c["epochs"] < 0:
            raise InputError("run-config.epochs", f"must be >= 0 (0 = the scenario's L), got {c['epochs']}")
        try:
            fl = FLConfig(rounds=c["rounds"], msp=c["msp"], alpha=float(c["alpha"]), target=float(c["target"]),
                          seed=c["seed"], aggregation=c["aggregation"], epochs=c["epochs"] or None,
                          batch_size=c["batch-size"], lr=float(c["lr"]), momentum=float(c["momentum"]),
                          deadline=deadline)
        except InputError as err:
            raise InputError(f"run-config.{err.field.replace('_', '-')}", err.reason) from None
        return cls(dataset=str(c["dataset"]), data_root=str(c["data-root"]), allocation=str(c["allocation"]),
                   scenario=str(c["scenario"]), out_dir=str(c["out-dir"]), round_timeout=timeout, fl=fl,
                   short_waits=c["short-waits"], resume=c["resume"])


def task_from_run_config(rc: DeployRunConfig) -> tuple[FLTask, str]:
    """The FL task the run config describes, and where its allocation came from."""
    if rc.allocation:
        sc, f = load_allocation(rc.allocation, field="run-config.allocation")
        source = f"allocation {rc.allocation}"
    else:
        sc, f = default_allocation(rc.scenario)
        source = f"scenario {rc.scenario}, follower equilibrium at R = Rmax/2"
    ds = load_dataset(rc.dataset, root=rc.data_root or None)
    return build_task(ds, sc, f, rc.fl), source


def node_identity(node_config: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(partition-id, num-partitions, mu-id)`` of a SuperNode's ``--node-config``."""
    out = []
    for key in ("partition-id", "num-partitions", "mu-id"):
        if key not in node_config:
            raise InputError(f"node-config.{key}", "missing (start the SuperNode with --node-config "
                                                   "'partition-id=k num-partitions=K mu-id=n')")
        v = node_config[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"node-config.{key}", f"must be an integer >= 0, got {v!r}")
        out.append(int(v))
    k, n_parts, _ = out
    if k >= n_parts:
        raise InputError("node-config.partition-id", f"must be < num-partitions = {n_parts}, got {k}")
    return out[0], out[1], out[2]


# ---------------------------------------------------------------------------------------------
# ClientApp
# ---------------------------------------------------------------------------------------------

# What a ClientApp process keeps between messages: the last partition it trained on and the
# network definition (one node, one partition: the data set itself is not kept). Flower's
# default SuperNode starts a new process for every message, so this only pays off in a
# long-lived one (``fl.clientapp_worker``, what ``fl.deploy`` starts).
@functools.lru_cache(maxsize=1)
def _client_partition(dataset: str, root: str | None, sizes: tuple[int, ...], alpha: float, seed: int, k: int):
    """``(net, x, y)``: this node's share of the data set (the server's Dirichlet recipe), cached."""
    ds = load_dataset(dataset, root=root)
    # the same Dirichlet split as build_task on the server; this node keeps its own share
    idx = dirichlet_partition(ds.train_y.cpu().numpy(), list(sizes), alpha, seed)[k]
    idx = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    return make_net(ds.shape, ds.num_classes), ds.train_x[idx].contiguous(), ds.train_y[idx].contiguous()


def _client_app():
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.query()
    def whoami(msg, context):
        k, _, mu = node_identity(context.node_config)
        return Message(RecordDict({METRICS_KEY: MetricRecord({CLIENT_ID: k, MU_ID: mu})}), reply_to=msg)

    @app.train()
    def train(msg, context):
        torch.set_num_threads(1)  # one SuperNode per MU: nodes already run side by side
        k, n_parts, _ = node_identity(context.node_config)
        cfg = msg.content[CONFIG_KEY]
        sizes = [int(v) for v in cfg["sizes"]]
        if len(sizes) != n_parts:
            raise InputError("node-config.num-partitions",
                             f"this node says {n_parts}, the server's allocation has {len(sizes)} participants")
        root = context.node_config.get("data-root") or context.run_config.get("data-root") or None
        net, x, y = _client_partition(str(context.run_config["dataset"]), None if root is None else str(root),
                                      tuple(sizes), float(cfg["alpha"]), int(cfg["seed"]), k)
        local = LocalTrainConfig(epochs=int(cfg["epochs"]), batch_size=int(cfg["batch-size"]), lr=float(cfg["lr"]),
                                 momentum=float(cfg["momentum"]), weight_decay=float(cfg["weight-decay"]))
        rnd = int(cfg[ROUND_KEY]) - FLOWER_FIRST_ROUND
        layout = ParamLayout.of(dict(net.named_parameters()))
        new = local_update_sequential(net, layout.unpack(msg.content[ARRAYS_KEY]), x, y, local,
                                      client_seed(int(cfg["seed"]), rnd, k))
        return Message(RecordDict({
            ARRAYS_KEY: layout.pack(new),
            METRICS_KEY: MetricRecord({CLIENT_ID: k, NUM_EXAMPLES: int(x.shape[0])}),
        }), reply_to=msg)

    return app


# ---------------------------------------------------------------------------------------------
# ServerApp
# ---------------------------------------------------------------------------------------------

#: Longest wait between two looks for a round's replies. Flower 1.42's
#: ``Grid.send_and_receive`` sleeps 3 s between them, which alone costs up to 3 s per round.
REPLY_POLL_S = 0.2


class PromptGrid:
    """The ServerApp's Grid, except that ``send_and_receive`` looks for replies sooner.

    Same calls as Flower's own (``push_messages``, then ``pull_messages`` until every reply is
    in or ``timeout`` has passed), with waits of ``backoff`` between two looks (it starts again
    after each reply that comes in) or, without one, ``poll_s`` each; everything else is the
    wrapped Grid's.
    """

    def __init__(self, grid, poll_s: float = REPLY_POLL_S, backoff: Backoff | None = None) -> None:
        self._grid = grid
        self._poll_s = poll_s
        self._backoff = backoff

    def __getattr__(self, name: str):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout: float | None = None) -> list:
        from flwr.supercore import log

        pending = set(self._grid.push_messages(messages))
        log(INFO, "pushed %d message(s)", len(pending))
        end = time.time() + (timeout if timeout is not None else 0.0)
        replies: list = []
        while pending:
            got = list(self._grid.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if got:
                log(INFO, "%d of %d replies in", len(replies), len(replies) + len(pending))
            if not pending or (timeout is not None and time.time() >= end):
                break
            if self._backoff is None:
                time.sleep(self._poll_s)
            else:
                if got:
                    self._backoff.reset()
                self._backoff.wait()
        return replies


def _server_app():
    from flwr.app import ConfigRecord, MetricRecord
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        from flwr.supercore.logger import update_console_handler

        update_console_handler(timestamps=True, colored=False)  # streamed into a log file: times, no colours
        rc = DeployRunConfig.from_run_config(context.run_config)
        if rc.short_waits:  # this process is the run's ServerApp: its Grid's object pulls, and its reply polls
            shorten_grid_waits()
        run_deployed(PromptGrid(grid, backoff=Backoff() if rc.short_waits else None), rc)

    def run_deployed(grid, rc: DeployRunConfig) -> None:
        out = Path(rc.out_dir)
        task, source = task_from_run_config(rc)
        cfg = rc.fl
        n = len(task.participants)
        iom = np.broadcast_to(task.iom, (cfg.rounds, n))
        ds = task.dataset
        torch.manual_seed(cfg.seed)
        net = make_net(ds.shape, ds.num_classes)
        init = get_params(net)
        layout = ParamLayout.of(init)
        strategy = weighted_strategy_class()(iom, task.sizes, make_strategy(cfg.aggregation), rc.round_timeout,
                                             layout, connect_timeout=max(rc.round_timeout, CONNECT_TIMEOUT_S),
                                             on_time=task.on_time)
        strategy.discover(grid)
        for k, mu in sorted(strategy.mu_of.items()):
            if mu != int(task.participants[k]):
                raise RuntimeError(f"the SuperNode of partition-id={k} says mu-id={mu}, but participant {k} of "
                                   f"MSP {task.msp} is MU {int(task.participants[k])} (fix its --node-config)")
        res = FLResult(params=init, target=cfg.target, path=DEPLOY_PATH)
        fingerprint = checkpoint_fingerprint(task, cfg)
        if rc.resume:  # fl-deploy --resume has checked the checkpoint already; a direct flwr run has not
            state = load_checkpoint(out / CHECKPOINT_FILE, torch.device("cpu"), fingerprint)
            done = len(state["history"]["accuracy"])
            if done > cfg.rounds:
                raise InputError("run-config.rounds", f"the checkpoint holds {done} rounds, more than {cfg.rounds}")
            strategy.round_offset = res.restore(state)

        def evaluate_fn(server_round: int, arrays) -> MetricRecord | None:
            if server_round < FLOWER_FIRST_ROUND:
                return None
            res.params = layout.unpack(arrays)
            acc = evaluate(net, res.params, ds.test_x, ds.test_y)
            res.accuracy.append(acc)
            res.sim_time.append((strategy.round_offset + server_round) * task.round_time)
            res.participants.append(len(strategy.round_clients.get(server_round, [])))
            res.missed.append(task.missed)
            res.wall_time.append(time.perf_counter() - strategy.round_t0[server_round])
            save_checkpoint(out / CHECKPOINT_FILE, res, fingerprint)  # the same file as metatrading fl's
            atomic_write_json(out / PROGRESS_FILE, {"rounds": cfg.rounds, "done": res.rounds,
                                                    "accuracy": res.accuracy, "wall_time": res.wall_time})
            return MetricRecord({"test_acc": acc})

        recipe = ConfigRecord({
            "sizes": [int(v) for v in task.sizes], "alpha": float(cfg.alpha), "seed": int(cfg.seed),
            "epochs": int(task.local.epochs), "batch-size": int(task.local.batch_size), "lr": float(task.local.lr),
            "momentum": float(task.local.momentum), "weight-decay": float(task.local.weight_decay),
        })
        if res.rounds < cfg.rounds:
            strategy.start(grid=grid, initial_arrays=layout.pack(res.params), num_rounds=cfg.rounds - res.rounds,
                           timeout=rc.round_timeout, train_config=recipe, evaluate_fn=evaluate_fn)
        if res.rounds != cfg.rounds:
            raise RuntimeError(f"the run ended after {res.rounds} of {cfg.rounds} rounds")
        atomic_save(out / PARAMS_FILE, lambda tmp: torch.save({k: v.detach().cpu() for k, v in res.params.items()}, tmp))
        report = fl_report(task, cfg, res, source)
        report["node_of_client"] = {str(k): int(v) for k, v in sorted(strategy.node_of.items())}
        atomic_write_json(out / RESULT_FILE, report)

    return app


#: ``[tool.flwr.app.components]``: ``clientapp = "fl.flower_app:client_app"``,
#: ``serverapp = "fl.flower_app:server_app"``. Built at import, as Flower's loader expects
#: module-level objects; importing this module therefore imports flwr.
client_app = _client_app()
server_app = _server_app()
