"""The ServerApp's strategy: Flower's FedAvg with this project's aggregation, and a prompter Grid.

``WeightedFedAvg`` subclasses ``flwr.serverapp.strategy.FedAvg`` (Flower's Message API, public)
and overrides three hooks: ``configure_train`` (send the model only to participants, ``IoM >
0``), ``aggregate_train`` (the pure ``fl.aggregate`` rule, through ``fl.trainer.
aggregate_on_time``, instead of Flower's ``num-examples`` average) and ``configure_evaluate``
(none: the server evaluates the global model on the test split). ``discover`` maps nodes to
clients with one QUERY per node before round 1, so the server can address participants and
sum replies in client order (the Flower result equals the in-process loop to float rounding).

``PromptGrid`` wraps the ServerApp's Grid with the same public calls (``push_messages``,
``pull_messages``) and looks for replies sooner than Flower 1.42's ``send_and_receive``.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from ..round import aggregate_on_time
from .records import ARRAYS_KEY, CLIENT_ID, CONFIG_KEY, FLOWER_FIRST_ROUND, METRICS_KEY, MU_ID, ROUND_KEY, ParamLayout

__all__ = ["WeightedFedAvg", "PromptGrid", "REPLY_POLL_S", "short_reason"]

#: Longest wait between two looks for a round's replies. Flower 1.42's
#: ``Grid.send_and_receive`` sleeps 3 s between them, which alone costs up to 3 s per round.
REPLY_POLL_S = 0.2


class WeightedFedAvg(FlowerFedAvg):
    """Flower FedAvg whose aggregation hook uses ``fl.aggregate`` (IoM weights by default).

    Only clients with ``IoM > 0`` (the MUs that allocated CPU, docs/model.md section 7) are sent the
    model; the global model is ``rule.aggregate(theta_S, D_S, IoM_S)`` (normalised
    ``rule.weights``, then ``weighted_average``) over the participants S that met the round's
    deadline (``on_time``), ordered by client id.

    Parameters
    ----------
    iom : np.ndarray, ``[rounds, clients]``
        Row r is round r's IoM (0 = not participating).
    sizes : np.ndarray, ``[clients]``
        Samples per client.
    rule : fl.aggregate.Strategy
        The aggregation rule.
    timeout : float
        Seconds the server waits for a round's replies.
    layout : ParamLayout
        How the model travels.
    connect_timeout : float, optional
        Bound on the nodes' arrival and their client-id query (default: ``timeout``).
    on_time : np.ndarray of bool, optional
        Which clients meet the simulated deadline (default: all).
    """

    def __init__(self, iom: np.ndarray, sizes: np.ndarray, rule, timeout: float, layout: ParamLayout,
                 connect_timeout: float | None = None, on_time: np.ndarray | None = None) -> None:
        super().__init__(min_available_nodes=np.shape(iom)[1], min_train_nodes=0)
        self.iom = np.asarray(iom, dtype=float)
        self.sizes = np.asarray(sizes, dtype=float)
        self.n_clients = self.iom.shape[1]
        self.on_time = np.ones(self.n_clients, dtype=bool) if on_time is None else np.asarray(on_time, dtype=bool)
        self.rule = rule
        self.timeout = timeout
        self.layout = layout
        #: rounds already done before this run (a resumed run): Flower's round r is the FL round
        #: ``round_offset + r`` (its IoM row and the clients' batch seeds)
        self.round_offset = 0
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
                                   f"client-id query: {short_reason(msg.error.reason)}")
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
                               f"{short_reason(failed[0].error.reason)}")
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


def short_reason(reason: str) -> str:
    """The ClientApp's own exception message out of Ray's traceback-laden error text."""
    marker = "Message:"
    if marker in reason:
        tail = reason.rsplit(marker, 1)[1].strip()
        return tail.splitlines()[0] if tail else reason
    return reason


class PromptGrid:
    """The ServerApp's Grid, except that ``send_and_receive`` looks for replies sooner.

    Same calls as Flower's own (``push_messages``, then ``pull_messages`` until every reply is
    in or ``timeout`` has passed; both public ``Grid`` methods), with waits of ``backoff``
    between two looks (it starts again after each reply that comes in) or, without one,
    ``poll_s`` each; everything else is the wrapped Grid's.
    """

    def __init__(self, grid, poll_s: float = REPLY_POLL_S, backoff=None) -> None:
        self._grid = grid
        self._poll_s = poll_s
        self._backoff = backoff

    def __getattr__(self, name: str):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *, timeout: float | None = None) -> list:
        log = logging.getLogger("flwr")
        pending = set(self._grid.push_messages(messages))
        log.info("pushed %d message(s)", len(pending))
        end = time.time() + (timeout if timeout is not None else 0.0)
        replies: list = []
        while pending:
            got = list(self._grid.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if got:
                log.info("%d of %d replies in", len(replies), len(replies) + len(pending))
            if not pending or (timeout is not None and time.time() >= end):
                break
            if self._backoff is None:
                time.sleep(self._poll_s)
            else:
                if got:
                    self._backoff.reset()
                self._backoff.wait()
        return replies
