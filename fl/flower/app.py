"""The Flower App, defined once: ``[tool.flwr.app.components]`` of ``pyproject.toml`` point here.

Both of Flower's engines run these two objects, ``server_app`` and ``client_app``, with a run
config (``fl.flower.runconfig``): the deployment engine (one ``flower-superlink``, one
``flower-supernode`` per MU and ``flwr run``; ``fl.flower.deployment`` starts all of that on
loopback) and the simulation engine (``fl.flower.simulation``, Ray actors in one process). It
is the same FL as ``metatrading fl`` (``fl.trainer.run_fl``): MSP ``msp``'s task under the
allocation, the initial model from ``torch.manual_seed(seed)``, participant k's batches from
``client_seed(seed, r, k)``, IoM-weighted FedAvg (``fl.aggregate``) over the participants.

What each side knows:

- the **ServerApp** reads the run config, builds the task (``fl.trainer.build_task``:
  participants, ``D_nm``, IoM, the partition recipe), evaluates the global model on the test
  split and writes ``fl.json`` (the keys of ``metatrading fl``), ``fl_params.pt`` (the final
  global weights), ``fl_checkpoint.pt`` and ``progress.json`` (after every round) into
  ``out-dir``;
- a **node** learns who it is from its node config: ``partition-id`` (its position k among
  the participants) and ``num-partitions`` (their number K), which the simulation engine sets
  itself; a deployed SuperNode also gives ``mu-id`` (the MU n it is; the server checks it
  against the allocation) and optionally ``data-root``. It reloads its own data and carves its
  partition from the recipe the server sends (sizes, alpha, seed);
- what leaves a node: its model update, its client id / MU id and its sample count (the
  strategy orders replies by client and weights them); never its data or labels.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from models.errors import InputError
from models.io import atomic_save, atomic_write_json

from ..aggregate import make_strategy
from ..data import load_dataset
from ..nets import make_net
from ..partition import dirichlet_partition
from ..train import LocalTrainConfig, client_seed, evaluate, get_params, local_update_sequential
from ..trainer import (CHECKPOINT_FILE, FLResult, FLTask, checkpoint_fingerprint, fl_report, load_checkpoint,
                       save_checkpoint)
from . import gate
from .records import (ARRAYS_KEY, CLIENT_ID, CONFIG_KEY, FLOWER_FIRST_ROUND, METRICS_KEY, MU_ID, NUM_EXAMPLES,
                      ROUND_KEY, ParamLayout)
from .runconfig import (DEPLOYMENT, ENGINE_KEY, PARAMS_FILE, PROGRESS_FILE, RESULT_FILE, SIMULATION, AppRunConfig,
                        node_identity, task_from_run_config)
from .strategy import PromptGrid, WeightedFedAvg
from .waits import Backoff, shorten_grid_waits

__all__ = ["client_app", "server_app", "CONNECT_TIMEOUT_S", "PARTITION_CACHE"]

#: At least this long the ServerApp waits for the SuperNodes to connect and answer the
#: client-id query (their first message: a ClientApp process may still be starting).
CONNECT_TIMEOUT_S = 120.0
#: Partitions a ClientApp process keeps (a deployed node holds one; a Ray actor of the
#: simulation engine serves several nodes in turn).
PARTITION_CACHE = 32


# ---------------------------------------------------------------------------------------------
# ClientApp
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=PARTITION_CACHE)
def _client_partition(dataset: str, root: str | None, sizes: tuple[int, ...], alpha: float, seed: int, k: int):
    """``(net, x, y)``: node k's share of the data set (the server's Dirichlet recipe), cached.

    Flower's default SuperNode starts a new process for every message, so the cache only pays
    off in a long-lived one (``fl/flower/worker.py``, a Ray actor of the simulation engine).
    """
    ds = load_dataset(dataset, root=root)
    # the same Dirichlet split as build_task on the server; this node keeps its own share
    idx = dirichlet_partition(ds.train_y.cpu().numpy(), list(sizes), alpha, seed)[k]
    idx = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    return make_net(ds.shape, ds.num_classes), ds.train_x[idx].contiguous(), ds.train_y[idx].contiguous()


def _data_root(context) -> str | None:
    root = context.node_config.get("data-root") or context.run_config.get("data-root") or None
    return None if root is None else str(root)


def _warm_up(dataset: str, root: str | None) -> None:
    """Load the data set and take one tiny SGD step: a process's first step costs seconds of
    lazy imports, which would otherwise land in round 1's wall time (results unaffected)."""
    ds = load_dataset(dataset, root=root)
    net = make_net(ds.shape, ds.num_classes)
    local_update_sequential(net, get_params(net), ds.train_x[:2], ds.train_y[:2],
                            LocalTrainConfig(epochs=1, batch_size=2), 0)


def _client_app() -> ClientApp:
    app = ClientApp()

    @app.query()
    def whoami(msg, context):
        k, _, mu = node_identity(context.node_config)
        torch.set_num_threads(1)  # one node per process or actor: nodes already run side by side
        _warm_up(str(context.run_config["dataset"]), _data_root(context))
        metrics = {CLIENT_ID: k} if mu is None else {CLIENT_ID: k, MU_ID: mu}
        return Message(RecordDict({METRICS_KEY: MetricRecord(metrics)}), reply_to=msg)

    @app.train()
    def train(msg, context):
        torch.set_num_threads(1)
        k, n_parts, _ = node_identity(context.node_config)
        cfg = msg.content[CONFIG_KEY]
        sizes = [int(v) for v in cfg["sizes"]]
        if len(sizes) != n_parts:
            raise InputError("node-config.num-partitions",
                             f"this node says {n_parts}, the server's allocation has {len(sizes)} participants")
        net, x, y = _client_partition(str(context.run_config["dataset"]), _data_root(context), tuple(sizes),
                                      float(cfg["alpha"]), int(cfg["seed"]), k)
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

def _engine(context) -> str:
    return str(context.node_config.get(ENGINE_KEY, DEPLOYMENT))


def _server_app() -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        engine = _engine(context)
        rc = AppRunConfig.from_run_config(context.run_config)
        if engine == DEPLOYMENT:  # this process is the run's ServerApp, its log streamed into a file
            logger = gate.optional("flwr.supercore.logger")  # cosmetic: skipped under another Flower
            if logger is not None:
                logger.update_console_handler(timestamps=True, colored=False)
            if rc.short_waits:  # its Grid's object pulls, and its reply polls
                shorten_grid_waits()
                grid = PromptGrid(grid, backoff=Backoff())
            else:
                grid = PromptGrid(grid)
        run_app(grid, rc, engine)

    return app


def _strategy(task: FLTask, rc: AppRunConfig, layout: ParamLayout, grid) -> WeightedFedAvg:
    """The strategy of this task, its nodes discovered and checked against the allocation."""
    cfg = rc.fl
    iom = np.broadcast_to(task.iom, (cfg.rounds, len(task.participants)))
    strategy = WeightedFedAvg(iom, task.sizes, make_strategy(cfg.aggregation), rc.round_timeout, layout,
                              connect_timeout=max(rc.round_timeout, CONNECT_TIMEOUT_S), on_time=task.on_time)
    strategy.discover(grid)
    for k, mu in sorted(strategy.mu_of.items()):
        if mu != int(task.participants[k]):
            raise RuntimeError(f"the SuperNode of partition-id={k} says mu-id={mu}, but participant {k} of "
                               f"MSP {task.msp} is MU {int(task.participants[k])} (fix its --node-config)")
    return strategy


def _recipe(task: FLTask, rc: AppRunConfig) -> ConfigRecord:
    """What every TRAIN message carries besides the model: the partition recipe and local SGD."""
    return ConfigRecord({
        "sizes": [int(v) for v in task.sizes], "alpha": float(rc.fl.alpha), "seed": int(rc.fl.seed),
        "epochs": int(task.local.epochs), "batch-size": int(task.local.batch_size), "lr": float(task.local.lr),
        "momentum": float(task.local.momentum), "weight-decay": float(task.local.weight_decay),
    })


def run_app(grid, rc: AppRunConfig, engine: str = DEPLOYMENT) -> None:
    """The ServerApp's run: the task, the rounds (resumed if asked), the files in ``out-dir``."""
    out = Path(rc.out_dir)
    task, source = task_from_run_config(rc)
    cfg = rc.fl
    ds = task.dataset
    torch.manual_seed(cfg.seed)
    net = make_net(ds.shape, ds.num_classes)
    init = get_params(net)
    layout = ParamLayout.of(init)
    strategy = _strategy(task, rc, layout, grid)
    res = FLResult(params=init, target=cfg.target, path=DEPLOYMENT if engine == DEPLOYMENT else SIMULATION)
    fingerprint = checkpoint_fingerprint(task, cfg)
    done_before = 0
    if rc.resume:  # fl-deploy --resume has checked the checkpoint already; a direct flwr run has not
        state = load_checkpoint(out / CHECKPOINT_FILE, torch.device("cpu"), fingerprint)
        done = len(state["history"]["accuracy"])
        if done > cfg.rounds:
            raise InputError("run-config.rounds", f"the checkpoint holds {done} rounds, more than {cfg.rounds}")
        strategy.round_offset = done_before = res.restore(state)

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

    if res.rounds < cfg.rounds:
        strategy.start(grid=grid, initial_arrays=layout.pack(res.params), num_rounds=cfg.rounds - res.rounds,
                       timeout=rc.round_timeout, train_config=_recipe(task, rc), evaluate_fn=evaluate_fn)
    if res.rounds != cfg.rounds:
        raise RuntimeError(f"the run ended after {res.rounds} of {cfg.rounds} rounds")
    atomic_save(out / PARAMS_FILE, lambda tmp: torch.save({k: v.detach().cpu() for k, v in res.params.items()}, tmp))
    report = fl_report(task, cfg, res, source)
    report["node_of_client"] = {str(k): int(v) for k, v in sorted(strategy.node_of.items())}
    # seconds from sending a round's model to its aggregate, for this invocation's rounds (wall_time
    # adds the server's evaluation on the test split and the checkpoint, as metatrading fl's does)
    report["train_aggregate_time"] = [strategy.round_wall.get(r, float("nan"))
                                      for r in range(FLOWER_FIRST_ROUND, FLOWER_FIRST_ROUND + cfg.rounds - done_before)]
    atomic_write_json(out / RESULT_FILE, report)


#: ``[tool.flwr.app.components]``: ``serverapp = "fl.flower.app:server_app"``, ``clientapp =
#: "fl.flower.app:client_app"``. Built at import, as Flower's loader expects module-level objects.
client_app = _client_app()
server_app = _server_app()
