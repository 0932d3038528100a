"""Local training of FL clients: a plain sequential reference and a vectorised path.

Semantics shared by every path (so that they agree to rounding, 1e-5):

- client k draws, for each local epoch, a permutation of its ``n_k`` samples from a
  ``torch.Generator`` seeded with :func:`client_seed`; the epoch is that permutation
  cut into batches of ``batch_size`` (the last one partial). No sample is dropped.
- one step = one SGD step (``torch.optim.SGD`` semantics: weight decay added to the
  gradient, then momentum ``buf = mu buf + g``, then ``w -= lr buf``) on the mean
  cross-entropy of the batch (normalised by its *true* size).

The vectorised path runs all K clients in lock-step: epoch e has
``max_k ceil(n_k / B)`` steps; a client's batch is padded to ``B`` with a mask
(masked loss normalised by the true batch size), and a step in which a client has
no batch left leaves its weights *and* momentum untouched (an exact no-op).
"""
from __future__ import annotations

import copy
import enum
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.errors import InputError

from .nets import grouped_forward, stack_params, supports_grouped, unstack_params

__all__ = [
    "LocalTrainConfig",
    "TrainPath",
    "client_seed",
    "batch_schedule",
    "local_update_sequential",
    "local_update_parallel",
    "local_update_vectorised",
    "local_update",
    "local_update_stacked",
    "evaluate",
    "scores",
    "get_params",
    "CPU_CHUNK",
]

#: Clients per kernel call of the vectorised path on CPU (see :func:`local_update_stacked`).
CPU_CHUNK = 16


class TrainPath(str, enum.Enum):
    """Which local-training implementation to run."""

    SEQUENTIAL = "sequential"  #: one client after the other, plain ``torch.optim.SGD``
    PARALLEL = "parallel"  #: the sequential update, clients spread over CPU cores (one thread each)
    VECTORISED = "vectorised"  #: all clients in one batched computation
    AUTO = "auto"  #: the faster one on the device (see :func:`resolve_path`)


@dataclass(frozen=True)
class LocalTrainConfig:
    """Local SGD options of one FL round: the one home of the local-training defaults.

    :class:`fl.trainer.FLConfig`, ``metatrading fl``, ``metatrading compare`` and the Flower
    App's run config (``[tool.flwr.app.config]``, checked by ``tests/fl/test_defaults.py``) take
    their ``batch_size``, ``lr``, ``momentum`` and ``weight_decay`` defaults from here.

    Parameters
    ----------
    epochs : int
        Local epochs L (>= 1), default 5 (docs/model.md ``L``).
    batch_size : int
        Mini-batch size B (>= 1), default 32.
    lr : float
        Learning rate (> 0), default 0.05.
    momentum : float
        SGD momentum in [0, 1), default 0.5; the buffer starts at zero every round.
    weight_decay : float
        L2 coefficient (>= 0), default 0.
    """

    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.5
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(name, f"must be an integer >= 1, got {v!r}")
        for name, lo, lo_incl, hi in (("lr", 0.0, False, None), ("momentum", 0.0, True, 1.0),
                                      ("weight_decay", 0.0, True, None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise InputError(name, f"must be a number, got {v!r}")
            v = float(v)
            if not math.isfinite(v) or (v < lo if lo_incl else v <= lo) or (hi is not None and v >= hi):
                rng = f"{'>=' if lo_incl else '>'} {lo:g}" + (f" and < {hi:g}" if hi is not None else "")
                raise InputError(name, f"must be finite and {rng}, got {v!r}")


def client_seed(seed: int, round: int, client: int) -> int:
    """Seed of client ``client``'s batch order in FL round ``round`` (every path uses it).

    Derived with ``numpy.random.SeedSequence([seed, round, client])``, so seeds of
    different (round, client) pairs are independent streams.
    """
    for name, v in (("seed", seed), ("round", round), ("client", client)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(name, f"must be an integer >= 0, got {v!r}")
    return int(np.random.SeedSequence([int(seed), int(round), int(client)]).generate_state(1, np.uint64)[0] >> 1)


def batch_schedule(n: int, cfg: LocalTrainConfig, seed: int) -> list[list[Tensor]]:
    """Client batches: ``[epoch][step] -> index tensor`` (a fresh permutation per epoch)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen) if n > 0 else torch.zeros(0, dtype=torch.long)
        out.append(list(perm.split(cfg.batch_size)) if n > 0 else [])
    return out


def get_params(net: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the trainable parameters of ``net`` (name -> tensor)."""
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _check_client(x: Tensor, y: Tensor, field: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise InputError(field, f"x has {x.shape[0]} samples but y has {y.shape[0]}")


def local_update_sequential(
    net: nn.Module, params: Mapping[str, Tensor], x: Tensor, y: Tensor, cfg: LocalTrainConfig, seed: int
) -> dict[str, Tensor]:
    """Train one client from ``params`` with plain ``torch.optim.SGD`` (the reference path), with
    one torch thread on CPU (the same weights whatever the number of cores).

    Parameters
    ----------
    net : nn.Module
        The shared model definition (not modified; a copy is trained).
    params : dict name -> Tensor
        Starting weights (the global model).
    x, y : Tensor
        The client's samples ``[n, C, H, W]`` and labels ``[n]``; ``n = 0`` returns ``params``.
    cfg : LocalTrainConfig
    seed : int
        Batch-order seed (:func:`client_seed`).

    Returns
    -------
    dict name -> Tensor, the updated weights.
    """
    _check_client(x, y, "x")
    outer = torch.get_num_threads()
    # one intra-op thread on CPU: a kernel's reductions split over T threads round differently
    # for each T, so the weights would depend on the machine's core count (up to 1e-3 after one
    # round at 2 threads); at one thread they do not, and the parallel path (one thread per
    # worker) gives exactly these weights
    single = x.device.type == "cpu" and outer != 1
    if single:
        torch.set_num_threads(1)
    try:
        model = copy.deepcopy(net)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(params[name])
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        for epoch in batch_schedule(int(x.shape[0]), cfg, seed):
            for idx in epoch:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        return get_params(model)
    finally:
        if single:
            torch.set_num_threads(outer)


def local_update_parallel(
    net: nn.Module,
    params: Mapping[str, Tensor],
    xs: Sequence[Tensor],
    ys: Sequence[Tensor],
    cfg: LocalTrainConfig,
    seeds: Sequence[int],
    workers: int | None = None,
) -> list[dict[str, Tensor]]:
    """:func:`local_update_sequential` for K clients, ``workers`` clients at a time.

    Each worker thread trains whole clients with ONE intra-op thread: torch kernels release
    the GIL, so W workers keep W cores busy on independent small-batch steps, where W intra-op
    threads on one small batch mostly wait for each other. Every client's update is exactly
    the sequential path's at one thread (the same ops in the same order).

    Parameters
    ----------
    workers : int, optional
        Worker threads, default ``torch.get_num_threads()`` (the cores torch would use).
    """
    from concurrent.futures import ThreadPoolExecutor

    if len(xs) != len(ys) or len(xs) != len(seeds):
        raise InputError("xs", f"got {len(xs)} data sets, {len(ys)} label sets and {len(seeds)} seeds")
    workers = torch.get_num_threads() if workers is None else int(workers)
    if workers < 1:
        raise InputError("workers", f"must be >= 1, got {workers}")
    workers = min(workers, max(1, len(xs)))
    outer = torch.get_num_threads()

    def one(args):
        torch.set_num_threads(1)  # per calling thread (OpenMP ICV); see the docstring
        x, y, s = args
        return local_update_sequential(net, params, x, y, cfg, s)

    jobs = list(zip(xs, ys, seeds))
    try:
        if workers == 1:
            return [one(a) for a in jobs]
        # largest clients first, so that no worker is left alone with a big client at the end
        order = sorted(range(len(jobs)), key=lambda k: -int(jobs[k][0].shape[0]))
        out: list = [None] * len(jobs)
        with ThreadPoolExecutor(workers) as pool:
            for k, upd in zip(order, pool.map(one, [jobs[k] for k in order])):
                out[k] = upd
        return out
    finally:
        torch.set_num_threads(outer)


def _pad_clients(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack clients' data into ``[K, Nmax, ...]`` (zero padding, never read unmasked)."""
    k, nmax = len(xs), max(1, max(int(x.shape[0]) for x in xs))
    ref = next((x for x in xs if x.shape[0] > 0), xs[0])
    X = ref.new_zeros((k, nmax, *ref.shape[1:]))
    Y = torch.zeros((k, nmax), dtype=torch.long, device=ref.device)
    for i, (x, y) in enumerate(zip(xs, ys)):
        X[i, : x.shape[0]] = x
        Y[i, : y.shape[0]] = y
    return X, Y


def _lockstep_schedule(sizes: Sequence[int], cfg: LocalTrainConfig, seeds: Sequence[int]):
    """Per (epoch, step): padded indices ``[K, B]`` and true batch sizes ``[K]``."""
    plans = [batch_schedule(n, cfg, s) for n, s in zip(sizes, seeds)]
    b = cfg.batch_size
    for e in range(cfg.epochs):
        steps = max(len(p[e]) for p in plans)
        for s in range(steps):
            idx = torch.zeros((len(sizes), b), dtype=torch.long)
            cnt = torch.zeros(len(sizes), dtype=torch.long)
            for k, p in enumerate(plans):
                if s < len(p[e]):
                    batch = p[e][s]
                    idx[k, : batch.numel()] = batch
                    cnt[k] = batch.numel()
            yield idx, cnt


def _grads_grouped(net, P, xb, yb, mask, cnt):
    k, b = mask.shape
    xg = xb.transpose(0, 1).reshape(b, k * xb.shape[2], *xb.shape[3:])
    logits = grouped_forward(net, P, xg)
    ce = F.cross_entropy(logits.reshape(k * b, -1), yb.reshape(-1), reduction="none").reshape(k, b)
    # sum over clients of each client's mean loss: the gradient wrt client k's weights is
    # exactly the gradient of client k's own loss (the clients share no weights)
    loss = ((ce * mask).sum(1) / cnt.clamp(min=1)).sum()
    return torch.autograd.grad(loss, list(P.values()))


def _grads_vmap(net, P, xb, yb, mask, cnt):
    from torch.func import functional_call, grad, vmap

    def loss_one(p, x, y, m, c):
        ce = F.cross_entropy(functional_call(net, p, (x,)), y, reduction="none")
        return (ce * m).sum() / c.clamp(min=1)

    g = vmap(grad(loss_one))({k: v.detach() for k, v in P.items()}, xb, yb, mask, cnt)
    return [g[name] for name in P]


def local_update_stacked(
    net: nn.Module,
    params: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
    xs: Sequence[Tensor],
    ys: Sequence[Tensor],
    cfg: LocalTrainConfig,
    seeds: Sequence[int],
    chunk: int | None = None,
) -> dict[str, Tensor]:
    """Vectorised local training of K clients; returns the stacked weights ``name -> [K, ...]``.

    Nets accepted by :func:`fl.nets.supports_grouped` run as grouped convolutions and
    batched matrix products (all clients in the same kernels); any other net runs with
    ``torch.func.vmap`` over ``functional_call``. ``params`` is either one starting model
    shared by all clients or one per client. See the module docstring for the semantics.

    ``chunk`` clients share one kernel call (default: :data:`CPU_CHUNK` on CPU, all K on
    CUDA). Clients are independent, so chunking changes speed only, never the result: on
    CPU, oneDNN's grouped convolution slows down beyond a few dozen groups
    (measured on the 2-core box: K=50 in one call ran at ~0.65x the speed of chunks of 10-25).
    """
    k = len(xs)
    if k == 0 or len(ys) != k or len(seeds) != k:
        raise InputError("xs", f"need K >= 1 clients with as many ys and seeds, got {k}, {len(ys)}, {len(seeds)}")
    if chunk is None:
        ref = xs[0]
        chunk = k if ref.device.type == "cuda" else CPU_CHUNK
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError("chunk", f"must be an integer >= 1, got {chunk!r}")
    if k > chunk:
        starts = range(0, k, chunk)
        shared = isinstance(params, Mapping)
        parts = [
            local_update_stacked(net, params if shared else params[i : i + chunk], xs[i : i + chunk],
                                 ys[i : i + chunk], cfg, seeds[i : i + chunk], chunk)
            for i in starts
        ]
        return {n: torch.cat([p[n] for p in parts]) for n in parts[0]}
    for i, (x, y) in enumerate(zip(xs, ys)):
        _check_client(x, y, f"xs[{i}]")
    if isinstance(params, Mapping):
        P = {n: t.detach().unsqueeze(0).repeat(k, *([1] * t.dim())) for n, t in params.items()}
    else:
        if len(params) != k:
            raise InputError("params", f"expected {k} starting models, got {len(params)}")
        P = {n: t.detach().clone() for n, t in stack_params(params).items()}
    sizes = [int(x.shape[0]) for x in xs]
    X, Y = _pad_clients(xs, ys)
    dev = X.device
    grads_fn = _grads_grouped if supports_grouped(net) else _grads_vmap
    rows = torch.arange(k, device=dev)[:, None]
    ar = torch.arange(cfg.batch_size, device=dev)[None, :]
    bufs = {n: torch.zeros_like(t) for n, t in P.items()} if cfg.momentum > 0 else None
    for idx, cnt in _lockstep_schedule(sizes, cfg, seeds):
        idx, cnt = idx.to(dev), cnt.to(dev)
        mask = (ar < cnt[:, None]).to(X.dtype)
        for t in P.values():
            t.requires_grad_(True)
        grads = grads_fn(net, P, X[rows, idx], Y[rows, idx], mask, cnt)
        with torch.no_grad():
            active = cnt > 0
            newP = {}
            for (name, p), g in zip(P.items(), grads):
                p = p.detach()
                on = active.view(-1, *([1] * (p.dim() - 1)))
                if cfg.weight_decay > 0:
                    g = g.add(p, alpha=cfg.weight_decay)
                if bufs is not None:
                    bufs[name] = torch.where(on, bufs[name].mul(cfg.momentum).add_(g), bufs[name])
                    g = bufs[name]
                newP[name] = torch.where(on, p.add(g, alpha=-cfg.lr), p)
            P = newP
    return {n: t.detach() for n, t in P.items()}


def local_update_vectorised(
    net: nn.Module,
    params: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]],
    xs: Sequence[Tensor],
    ys: Sequence[Tensor],
    cfg: LocalTrainConfig,
    seeds: Sequence[int],
) -> list[dict[str, Tensor]]:
    """Vectorised local training of K clients: one weight dict per client, in order.

    Equal, to rounding, to ``[local_update_sequential(net, params, xs[k], ys[k], cfg, seeds[k])]``.
    """
    return unstack_params(local_update_stacked(net, params, xs, ys, cfg, seeds))


@torch.no_grad()
def evaluate(net: nn.Module, params: Mapping[str, Tensor], x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Accuracy of the model ``net(.; params)`` on ``(x, y)``."""

    if x.shape[0] == 0:
        return float("nan")
    return scores(net, params, x, y, batch_size)[0] / int(x.shape[0])


@torch.no_grad()
def scores(net: nn.Module, params: Mapping[str, Tensor], x: Tensor, y: Tensor,
           batch_size: int = 1000) -> tuple[int, float]:
    """``(correct predictions, summed cross-entropy)`` of ``net(.; params)`` on ``(x, y)``, in
    batches (the accuracy of :func:`evaluate` and the Flower server's test metrics)."""
    from torch.func import functional_call

    correct, loss = 0, 0.0
    for i in range(0, x.shape[0], batch_size):
        logits = functional_call(net, dict(params), (x[i : i + batch_size],))
        yb = y[i : i + batch_size]
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return correct, loss



def local_update(
    path: TrainPath,
    net: nn.Module,
    params: Mapping[str, Tensor],
    xs: Sequence[Tensor],
    ys: Sequence[Tensor],
    cfg: LocalTrainConfig,
    seeds: Sequence[int],
):
    """One round of local training of K clients on the given (resolved) ``path``.

    Returns what :meth:`fl.aggregate.Strategy.aggregate` takes: stacked weights for the
    vectorised path, a list of K weight dicts otherwise.
    """
    path = TrainPath(path)
    if path is TrainPath.VECTORISED:
        return local_update_stacked(net, params, xs, ys, cfg, seeds)
    if path is TrainPath.PARALLEL:
        return local_update_parallel(net, params, xs, ys, cfg, seeds)
    if path is TrainPath.SEQUENTIAL:
        return [local_update_sequential(net, params, x, y, cfg, s) for x, y, s in zip(xs, ys, seeds)]
    raise InputError("path", f"resolve {path.value!r} to a concrete path first (fl.trainer.resolve_path)")
