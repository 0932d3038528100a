"""Flower adapter: the built-in FL round as a Flower ClientApp + ServerApp (flwr 1.42).

For users who outgrow one machine: the same local update (``fl.train.local_update_sequential``
with ``client_seed(seed, round, client)``) runs in a Flower ``ClientApp`` on each SuperNode,
and the same aggregation (``fl.aggregate``'s weights and ``weighted_average``) runs in a
``ServerApp`` strategy, so a Flower run reproduces the built-in trainer's global model.

API choice: Flower 1.42's Message API (``flwr.clientapp.ClientApp`` with ``@app.train()``,
``flwr.serverapp.ServerApp`` with ``@app.main()``, ``ArrayRecord`` / ``MetricRecord``) and a
subclass of ``flwr.serverapp.strategy.FedAvg`` that overrides three hooks:
``configure_train`` (send the model only to participants, ``IoM > 0``), ``aggregate_train``
(our pure ``fl.aggregate`` rule instead of Flower's ``num-examples`` average) and
``configure_evaluate`` (none: the server evaluates the global model on the test split). The
legacy ``NumPyClient`` + ``flwr.server.strategy.FedAvg`` pair still ships with 1.42, but its
average is hard-wired to ``num_examples``, so IoM weights would have to be smuggled through
that count; the Message API carries records explicitly and is what 1.42's strategies use.

Driver: ``flwr.simulation.run_simulation`` (in-process ServerApp thread + Ray actors for the
ClientApps). Flower 1.42 logs it as deprecated in favour of ``flwr run`` on a packaged Flower
App; it is still the only in-process entry point, which the tests and ``bench fl`` need, so
that one warning is filtered out (``_quiet_flower``). The packaged App for Flower's deployment
engine (one SuperLink, one SuperNode per MU, ``flwr run``) is ``fl.flower_app``, started
locally by ``fl.deploy`` / ``metatrading fl-deploy``; it uses the same strategy class.

Which client a SuperNode is: the simulation engine gives each node ``node_config
["partition-id"]``; the server learns the node -> client map with one QUERY message per node
before round 1, so it can address participants and order replies by client (a fixed summation
order: the Flower result equals the in-process loop to float rounding).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from models.errors import InputError

from .data import DATASETS, DatasetSplits, load_dataset
from .trainer import aggregate_on_time

# Flower reads this once, at import: no telemetry calls from an offline research machine.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
# Ray 2.55 warns that it will stop hiding accelerators from num_gpus=0 actors; CPU-only here.
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

#: Keys of the records exchanged between ServerApp and ClientApp.
ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"
CLIENT_ID = "client-id"
MU_ID = "mu-id"
NUM_EXAMPLES = "num-examples"
ROUND_KEY = "server-round"
#: Flower numbers rounds 1..R; the built-in trainer (and ``client_seed``) 0..R-1.
FLOWER_FIRST_ROUND = 1
#: Name of the one array a model travels as (``ParamLayout``).
FLAT_ARRAY = "params"


@dataclass(frozen=True)
class ParamLayout:
    """How a model's named tensors are laid end to end in the one array that travels.

    Flower sends every array of an ``ArrayRecord`` as objects of their own, each fetched with
    a request of its own at every hop (ServerApp, SuperLink, SuperNode, ClientApp and back):
    the 8 tensors of ``fl.nets.make_net`` made a training message of 20 objects. Packed into
    one float32 array it is 6, with the same bits: ``unpack(pack(p)) == p`` exactly. Both
    sides build the layout from their own ``make_net`` (names and shapes in parameter order);
    a packed model of another length is refused with both lengths named.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, params: Mapping[str, torch.Tensor]) -> "ParamLayout":
        return cls(tuple(params), tuple(tuple(int(d) for d in v.shape) for v in params.values()))

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def pack(self, params: Mapping[str, torch.Tensor]):
        """``ArrayRecord`` holding ``params`` as one float32 array named ``FLAT_ARRAY``."""
        from flwr.app import Array, ArrayRecord

        if tuple(params) != self.names:
            raise ValueError(f"parameters {list(params)} do not match the layout {list(self.names)}")
        flat = torch.cat([params[n].detach().to("cpu", torch.float32).reshape(-1) for n in self.names])
        return ArrayRecord({FLAT_ARRAY: Array(flat.numpy())})

    def unpack(self, record) -> dict[str, torch.Tensor]:
        """The named tensors of a record made by ``pack`` (fresh tensors, not views)."""
        if list(record.keys()) != [FLAT_ARRAY]:
            raise ValueError(f"expected one packed array {FLAT_ARRAY!r} (fl.flower.ParamLayout), got arrays "
                             f"{list(record.keys())[:4]}: both sides must run this version of the App")
        flat = torch.from_numpy(np.asarray(record[FLAT_ARRAY].numpy(), dtype=np.float32).reshape(-1))
        if flat.numel() != self.numel:
            raise ValueError(f"packed model has {flat.numel()} values, this model has {self.numel} "
                             f"(same data set and network on both sides?)")
        out, at = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = math.prod(shape)
            out[name] = flat[at:at + size].reshape(shape).clone()
            at += size
        return out


@dataclass(frozen=True)
class FlowerOptions:
    """How the Flower simulation engine runs (not what it computes).

    Attributes
    ----------
    client_num_cpus : float
        Ray CPUs reserved per ClientApp actor (default 1.0: one actor per core).
    ray_num_cpus : int or None
        CPUs Ray may use in all; default ``os.cpu_count()``.
    round_timeout_s : float
        Seconds the server waits for a round's replies before the run fails (default 600).
    torch_threads : int
        ``torch.set_num_threads`` inside each ClientApp (default 1: actors already run in
        parallel, and one thread makes a client's update bitwise stable).
    verbose : bool
        Keep Flower's INFO log (default False: warnings only).
    """

    client_num_cpus: float = 1.0
    ray_num_cpus: int | None = None
    round_timeout_s: float = 600.0
    torch_threads: int = 1
    verbose: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.client_num_cpus, (int, float)) and self.client_num_cpus > 0):
            raise InputError("client_num_cpus", f"must be > 0, got {self.client_num_cpus!r}")
        if self.ray_num_cpus is not None and (not isinstance(self.ray_num_cpus, int)
                                              or self.ray_num_cpus < 1):
            raise InputError("ray_num_cpus", f"must be a positive integer, got "
                                             f"{self.ray_num_cpus!r}")
        if not (isinstance(self.round_timeout_s, (int, float)) and self.round_timeout_s > 0):
            raise InputError("round_timeout_s", f"must be > 0, got {self.round_timeout_s!r}")
        if not (isinstance(self.torch_threads, int) and self.torch_threads >= 1):
            raise InputError("torch_threads", f"must be a positive integer, got "
                                              f"{self.torch_threads!r}")


@dataclass(frozen=True)
class FlowerResult:
    """Outcome of ``run_flower_simulation``.

    Attributes
    ----------
    params : dict[str, torch.Tensor]
        Final global model (parameter names of ``fl.nets.make_net``, as ``fl.train.get_params``).
    rounds : list of dict
        Per round (0-based ``round``): ``clients`` (participants), ``test_acc``, ``test_loss``
        (global model on the test split, server side) and ``wall_s`` (seconds of the round).
    wall_s : float
        Seconds of the whole simulation, Ray start-up and shutdown included.
    """

    params: dict[str, torch.Tensor]
    rounds: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0


# ---------------------------------------------------------------------------------------------
# ClientApp
# ---------------------------------------------------------------------------------------------

def make_client_app(dataset: DatasetSplits, partitions: Sequence[np.ndarray], cfg,
                    seed: int, torch_threads: int = 1):
    """A ``ClientApp`` whose node ``partition-id = i`` trains on ``partitions[i]``.

    The app holds only the data set's name / folder / image size and the index arrays (it is
    pickled to every Ray actor with every message); each process reloads the tensors once
    (``fl.data.load_dataset`` caches them), as a real SuperNode reads its own data.
    """
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    spec = (dataset.name, dataset.root, dataset.image_size)
    parts = [np.asarray(p, dtype=np.int64) for p in partitions]
    app = ClientApp()

    @app.query()
    def whoami(msg, context):
        # lets the server map node ids to clients; loading the data and warming torch up
        # (a process's first SGD step costs seconds of lazy imports) keeps that one-off cost
        # out of the first round's wall_s
        from .nets import make_net
        from .train import get_params, local_update_sequential

        torch.set_num_threads(torch_threads)
        ds = load_dataset(*spec)
        net = make_net(ds.shape, ds.num_classes)
        local_update_sequential(net, get_params(net), ds.train_x[:2], ds.train_y[:2],
                                dataclasses.replace(cfg, epochs=1, batch_size=2), 0)
        cid = int(context.node_config["partition-id"])
        return Message(RecordDict({METRICS_KEY: MetricRecord({CLIENT_ID: cid})}), reply_to=msg)

    @app.train()
    def train(msg, context):
        from .nets import make_net
        from .train import client_seed, local_update_sequential

        torch.set_num_threads(torch_threads)
        cid = int(context.node_config["partition-id"])
        rnd = int(msg.content[CONFIG_KEY][ROUND_KEY]) - FLOWER_FIRST_ROUND
        ds = load_dataset(*spec)
        idx = torch.tensor(parts[cid])
        net = make_net(ds.shape, ds.num_classes)
        layout = ParamLayout.of(dict(net.named_parameters()))
        new = local_update_sequential(net, layout.unpack(msg.content[ARRAYS_KEY]), ds.train_x[idx],
                                      ds.train_y[idx], cfg, client_seed(seed, rnd, cid))
        content = RecordDict({
            ARRAYS_KEY: layout.pack(new),
            METRICS_KEY: MetricRecord({CLIENT_ID: cid, NUM_EXAMPLES: int(len(idx))}),
        })
        return Message(content, reply_to=msg)

    return app


# ---------------------------------------------------------------------------------------------
# ServerApp strategy
# ---------------------------------------------------------------------------------------------

def weighted_strategy_class():
    """The ``WeightedFedAvg`` strategy class, built lazily: flwr is an optional dependency."""
    from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

    class WeightedFedAvg(FlowerFedAvg):
        """Flower FedAvg whose aggregation hook uses ``fl.aggregate`` (IoM weights by default).

        Only clients with ``IoM > 0`` (the MUs that allocated CPU, MODEL.md section 7) are
        sent the model; the global model is ``rule.aggregate(theta_S, D_S, IoM_S)`` (the pure
        ``fl.aggregate`` template: normalised ``rule.weights``, then ``weighted_average``) over
        the participants S, ordered by client id.
        """

        def __init__(self, iom: np.ndarray, sizes: np.ndarray, rule, timeout: float, layout: ParamLayout,
                     connect_timeout: float | None = None, on_time: np.ndarray | None = None) -> None:
            # iom: [rounds, clients]; row r is round r's IoM (0 = not participating)
            super().__init__(min_available_nodes=iom.shape[1], min_train_nodes=0)
            self.iom = np.asarray(iom, dtype=float)
            self.n_clients = self.iom.shape[1]
            self.sizes = np.asarray(sizes, dtype=float)
            self.rule = rule
            #: which clients meet the simulated round deadline (MODEL.md section 7; default all):
            #: the others train, but their updates are dropped by ``fl.trainer.aggregate_on_time``
            self.on_time = (np.ones(self.n_clients, dtype=bool) if on_time is None
                            else np.asarray(on_time, dtype=bool))
            self.timeout = timeout
            self.layout = layout  #: models travel packed (``ParamLayout``), both ways
            #: rounds done before this run (a resumed deployment): Flower's round r is FL round
            #: ``round_offset + r`` (its IoM row and the clients' batch seeds)
            self.round_offset = 0
            #: bound on the nodes' arrival and their client-id query (default: the round timeout)
            self.connect_timeout = timeout if connect_timeout is None else connect_timeout
            self.node_of: dict[int, int] = {}
            self.mu_of: dict[int, int] = {}  # client id -> MU id, when the node reports one
            self.round_clients: dict[int, list[int]] = {}
            self.round_t0: dict[int, float] = {}
            self.round_wall: dict[int, float] = {}

        def discover(self, grid) -> None:
            """Map every client id to its node id with one QUERY round."""
            # Flower's sample_nodes waits for the nodes without a bound; a deployment whose
            # SuperNode never connects must fail instead
            deadline = time.monotonic() + self.connect_timeout
            while len(nodes := sorted(grid.get_node_ids())) < self.n_clients:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(nodes)} of {self.n_clients} Flower nodes "
                                       f"connected within {self.connect_timeout:g} s")
                time.sleep(0.2)
            replies = grid.send_and_receive(
                [Message(RecordDict({CONFIG_KEY: ConfigRecord()}), dst_node_id=n,
                         message_type=MessageType.QUERY) for n in nodes],
                timeout=max(0.0, deadline - time.monotonic()) + self.timeout)
            for msg in replies:
                if msg.has_error():
                    raise RuntimeError(f"Flower node {msg.metadata.src_node_id} failed the "
                                       f"client-id query: {_short_reason(msg.error.reason)}")
                metrics = msg.content[METRICS_KEY]
                cid = int(metrics[CLIENT_ID])
                if cid in self.node_of:
                    raise RuntimeError(f"Flower nodes {self.node_of[cid]} and "
                                       f"{msg.metadata.src_node_id} both claim client {cid} "
                                       f"(node-config partition-id)")
                self.node_of[cid] = msg.metadata.src_node_id
                if MU_ID in metrics:
                    self.mu_of[cid] = int(metrics[MU_ID])
            if sorted(self.node_of) != list(range(self.n_clients)):
                raise RuntimeError(f"Flower nodes report clients {sorted(self.node_of)}, "
                                   f"expected 0..{self.n_clients - 1}")

        def configure_train(self, server_round: int, arrays, config, grid) -> Iterable:
            iom = self.iom[self.round_offset + server_round - FLOWER_FIRST_ROUND]
            clients = [i for i in range(self.n_clients) if iom[i] > 0]
            self.round_clients[server_round] = clients
            self.round_t0[server_round] = time.perf_counter()
            config[ROUND_KEY] = self.round_offset + server_round
            record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
            return [Message(content=record, message_type=MessageType.TRAIN,
                            dst_node_id=self.node_of[i]) for i in clients]

        def configure_evaluate(self, server_round: int, arrays, config, grid) -> Iterable:
            # the server evaluates the global model centrally (evaluate_fn); no client round
            return []

        def aggregate_train(self, server_round: int, replies: Iterable):
            replies = list(replies)
            failed = [m for m in replies if m.has_error()]
            if failed:
                raise RuntimeError(f"round {server_round}: {len(failed)} ClientApp(s) failed: "
                                   f"{_short_reason(failed[0].error.reason)}")
            by_client = {int(m.content[METRICS_KEY][CLIENT_ID]): m for m in replies}
            expected = self.round_clients[server_round]
            if sorted(by_client) != expected:
                missing = sorted(set(expected) - set(by_client))
                mus = (f" (MU {', '.join(str(self.mu_of[i]) for i in missing)})"
                       if all(i in self.mu_of for i in missing) else "")
                raise RuntimeError(f"round {server_round}: no reply from client(s) {missing}{mus} "
                                   f"within the round timeout of {self.timeout:g} s (its node or "
                                   f"ClientApp stopped?); replies came from {sorted(by_client)}; "
                                   f"the run stops here")
            if not expected:
                return None, None
            ids = np.array(expected)
            updates = [self.layout.unpack(by_client[i].content[ARRAYS_KEY]) for i in ids]
            iom = self.iom[self.round_offset + server_round - FLOWER_FIRST_ROUND]
            agg = aggregate_on_time(self.rule, updates, iom[ids], self.sizes[ids], self.on_time[ids])
            self.round_wall[server_round] = time.perf_counter() - self.round_t0[server_round]
            if agg is None:  # every update missed the deadline: the global model stays
                return None, None
            return self.layout.pack(agg), MetricRecord({"clients": int(self.on_time[ids].sum())})

    return WeightedFedAvg


def _short_reason(reason: str) -> str:
    """The ClientApp's own exception message out of Ray's traceback-laden error text."""
    marker = "Message:"
    if marker in reason:
        tail = reason.rsplit(marker, 1)[1].strip()
        return tail.splitlines()[0] if tail else reason
    return reason


def make_server_app(dataset: DatasetSplits, iom: np.ndarray, sizes: np.ndarray, rounds: int,
                    initial_params: Mapping[str, torch.Tensor], rule, timeout: float,
                    sink: dict):
    """A ``ServerApp`` running ``rounds`` rounds of the weighted strategy.

    It evaluates the global model on the test split after each round and leaves the final
    ``params`` and the per-round metrics in ``sink`` (the ServerApp runs in this process's
    thread in the simulation engine).
    """
    from flwr.app import MetricRecord
    from flwr.serverapp import ServerApp

    app = ServerApp()
    strategy_cls = weighted_strategy_class()

    @app.main()
    def main(grid, context) -> None:
        from .nets import make_net

        net = make_net(dataset.shape, dataset.num_classes)
        layout = ParamLayout.of(initial_params)
        strategy = strategy_cls(iom, sizes, rule, timeout, layout)
        strategy.discover(grid)
        history: dict[int, dict[str, float]] = {}

        def evaluate(server_round: int, arrays) -> MetricRecord | None:
            if server_round < FLOWER_FIRST_ROUND:
                return None
            acc, loss = test_metrics(net, layout.unpack(arrays), dataset)
            history[server_round] = {"test_acc": acc, "test_loss": loss}
            return MetricRecord({"test_acc": acc, "test_loss": loss})

        result = strategy.start(
            grid=grid, initial_arrays=layout.pack(initial_params),
            num_rounds=rounds, timeout=timeout, evaluate_fn=evaluate)
        sink["params"] = layout.unpack(result.arrays)
        sink["rounds"] = [
            {"round": r - FLOWER_FIRST_ROUND,
             "clients": len(strategy.round_clients.get(r, [])),
             "wall_s": strategy.round_wall.get(r, math.nan), **history.get(r, {})}
            for r in range(FLOWER_FIRST_ROUND, FLOWER_FIRST_ROUND + rounds)]

    return app


@torch.no_grad()
def test_metrics(net: torch.nn.Module, params: Mapping[str, torch.Tensor],
                 dataset: DatasetSplits, batch: int = 2048) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``net(.; params)`` on the test split."""
    from .train import scores

    correct, loss = scores(net, params, dataset.test_x, dataset.test_y, batch)
    n = max(dataset.n_test, 1)
    return correct / n, loss / n


# ---------------------------------------------------------------------------------------------
# One call for tests and benchmarks
# ---------------------------------------------------------------------------------------------

def run_flower_simulation(dataset: DatasetSplits | str, partitions: Sequence[np.ndarray],
                          iom: Sequence[float], rounds: int, cfg, seed: int, *,
                          initial_params: Mapping[str, torch.Tensor] | None = None,
                          rule=None, options: FlowerOptions = FlowerOptions()) -> FlowerResult:
    """Run ``rounds`` FL rounds in Flower's simulation engine (Ray), one SuperNode per client.

    Round r: every client i with ``IoM_i > 0`` runs ``local_update_sequential(net, theta,
    X_i, y_i, cfg, client_seed(seed, r, i))``; the server sets ``theta <- sum_i w_i theta_i``
    with ``w = rule.weights(IoM, D)`` normalised over the participants (IoM-weighted FedAvg by
    default: ``w_i = IoM_i / sum_k IoM_k``; MODEL.md section 7,
    McMahan et al. 2017).

    Parameters
    ----------
    dataset : DatasetSplits or str
        The data (or a name for ``fl.data.load_dataset``); ClientApps reload it by name/folder.
    partitions : sequence of np.ndarray
        Client i's training indices (``fl.partition.dirichlet_partition``).
    iom : array_like, ``[clients]`` or ``[rounds, clients]``
        ``IoM_i >= 0`` per client, the same every round, or one row per round (the equilibrium
        of each trading round); ``IoM_i = 0`` means client i sits the round out.
    rounds : int
        Number of FL rounds, ``>= 1``.
    cfg : fl.train.LocalTrainConfig
        Local training options (epochs, batch size, learning rate).
    seed : int
        Seed of the batches (``client_seed``) and, without ``initial_params``, of the
        initial model (``torch.manual_seed(seed)`` then ``make_net``).
    initial_params : dict, optional
        Initial global model (``fl.train.get_params`` names).
    rule : fl.aggregate.Strategy or Aggregation or str, optional
        Aggregation rule; default IoM-weighted FedAvg (``fl.aggregate.IoMFedAvg``).
    options : FlowerOptions
        Engine settings (CPUs per actor, timeouts, log level).

    Returns
    -------
    FlowerResult

    Raises
    ------
    InputError
        Inconsistent inputs.
    RuntimeError
        A ClientApp failed or a round timed out (the message says which).
    """
    from .aggregate import Strategy, make_strategy
    from .nets import make_net
    from .train import get_params

    ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
    if not isinstance(ds, DatasetSplits) or ds.name not in DATASETS:
        raise InputError("dataset", "ClientApps reload the data by name and folder: pass a "
                                    "name or a DatasetSplits from fl.data.load_dataset")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise InputError("rounds", f"must be a positive integer, got {rounds!r}")
    iom_arr = np.asarray(iom, dtype=float)
    n = len(partitions)
    if n == 0 or iom_arr.shape not in ((n,), (int(rounds), n)):
        raise InputError("iom", f"need shape ({n},) or ({rounds}, {n}) (rounds, clients), "
                                f"got {iom_arr.shape}")
    if not np.all(np.isfinite(iom_arr)) or (iom_arr < 0).any():
        raise InputError("iom", "must be finite and >= 0")
    iom_arr = np.broadcast_to(iom_arr, (int(rounds), n)).copy()
    for r, row in enumerate(iom_arr):
        if not (row > 0).any():
            raise InputError(f"iom[{r}]", "no client has IoM > 0: nothing to aggregate")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError("seed", f"must be an integer, got {seed!r}")
    sizes = np.array([len(p) for p in partitions], dtype=float)
    for i, p in enumerate(partitions):
        p = np.asarray(p)
        if p.size and (p.min() < 0 or p.max() >= ds.n_train):
            raise InputError(f"partitions[{i}]", f"indices outside 0..{ds.n_train - 1}")
        if (iom_arr[:, i] > 0).any() and p.size == 0:
            raise InputError(f"partitions[{i}]", "a client with IoM > 0 holds no sample")
    if initial_params is None:
        torch.manual_seed(int(seed))
        initial_params = get_params(make_net(ds.shape, ds.num_classes))
    rule = make_strategy("iom" if rule is None else rule) if not isinstance(rule, Strategy) \
        else rule

    sink: dict = {}
    client_app = make_client_app(ds, partitions, cfg, int(seed), options.torch_threads)
    server_app = make_server_app(ds, iom_arr, sizes, int(rounds), initial_params, rule,
                                 float(options.round_timeout_s), sink)
    n_cpus = options.ray_num_cpus or os.cpu_count() or 1
    backend_config = {
        "client_resources": {"num_cpus": float(options.client_num_cpus), "num_gpus": 0.0},
        "init_args": {"num_cpus": int(n_cpus), "num_gpus": 0, "include_dashboard": False,
                      "log_to_driver": bool(options.verbose),
                      "logging_level": logging.INFO if options.verbose else logging.ERROR},
    }
    t0 = time.perf_counter()
    with _quiet_flower(options.verbose):
        from flwr.simulation import run_simulation

        try:
            run_simulation(server_app=server_app, client_app=client_app,
                           num_supernodes=len(partitions), backend_config=backend_config)
        finally:
            _shutdown_ray()
    if "params" not in sink:
        raise RuntimeError("the Flower ServerApp ended without a global model (see the log)")
    return FlowerResult(params=sink["params"], rounds=sink["rounds"],
                        wall_s=time.perf_counter() - t0)


class _NoRunSimulationDeprecation(logging.Filter):
    """Drops Flower 1.42's "run_simulation is deprecated" warning, and only that one.

    Why: the in-process engine is kept on purpose for the tests and ``bench fl`` (no processes,
    no ports); users who deploy get ``flwr run`` on the packaged App (``fl.flower_app``) through
    ``metatrading fl-deploy``, so the warning's advice is already followed where it matters.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


@contextlib.contextmanager
def _quiet_flower(verbose: bool):
    """Flower's log at WARNING unless verbose, without the run_simulation deprecation."""
    logger = logging.getLogger("flwr")
    level = logger.level
    quiet = _NoRunSimulationDeprecation()
    logger.addFilter(quiet)
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.removeFilter(quiet)


def _shutdown_ray() -> None:
    """The Ray backend shuts Ray down on success; make sure it also does after a failure."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
