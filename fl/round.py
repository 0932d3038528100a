"""One FL round of one MSP with a deadline (docs/model.md section 7): :func:`fl_round` is the one
implementation of an FL round (``run_fl``, ``metatrading compare`` and, through its aggregation
step :func:`aggregate_on_time`, the Flower App all use it), and :class:`UpdateCache`, the clients'
updates computed once for identical inputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.errors import InputError

from .train import LocalTrainConfig, TrainPath, local_update

__all__ = ["UpdateCache", "aggregate_on_time", "fl_round"]


def aggregate_on_time(strategy: Any, updates: Any, iom: Any, sizes: Any, on_time: Any) -> dict[str, Tensor] | None:
    """The round's global model from the updates that met the deadline (docs/model.md section 7).

    Parameters
    ----------
    strategy : fl.aggregate.Strategy
    updates : list of K weight dicts
        Every participant's update, in participant order (late ones included or not: see
        ``on_time``).
    iom, sizes : (K,)
        The participants' ``IoM_nm`` and ``D_nm``.
    on_time : bool (K,)
        Whether each update arrived within the deadline; late updates are dropped.

    Returns
    -------
    dict or None
        ``strategy.aggregate`` over the on-time updates; None when every update was late (the
        global model stays as it was).
    """
    keep = np.flatnonzero(np.asarray(on_time, dtype=bool))
    if keep.size == 0:
        return None
    iom, sizes = np.asarray(iom, dtype=float), np.asarray(sizes, dtype=float)
    if keep.size == len(on_time):
        return strategy.aggregate(updates, iom, sizes)
    return strategy.aggregate([updates[k] for k in keep], iom[keep], sizes[keep])


class UpdateCache:
    """Clients' local updates, computed once for identical inputs (bounded; least recently used
    dropped first).

    A client's update (:func:`fl.train.local_update_sequential`, also what the parallel path
    computes per client, at one thread) is a function of the model definition, the global
    weights, the client's samples and labels, the local options and its batch seed only, so
    it is keyed by an exact fingerprint of those (:func:`models.cache.digest`: the tensors'
    bytes) and a hit returns the same weights bit for bit. ``metatrading compare`` shares one
    across its schemes: in round 0 every scheme starts an MSP's task from the same model with
    the same data split and seeds, so a participant trains once whichever scheme attracted it.

    Only the sequential and parallel paths use it: the vectorised path trains its clients in
    one batched computation, equal to theirs only to rounding, so it is never cached.
    ``enabled = False`` stores nothing.
    """

    def __init__(self, max_bytes: int = 512 << 20, max_entries: int = 100000, enabled: bool = True) -> None:
        from models.cache import BoundedCache

        self._table = BoundedCache(max_entries=max_entries, max_bytes=max_bytes, enabled=enabled)

    @property
    def enabled(self) -> bool:
        return self._table.enabled

    def stats(self) -> dict[str, int]:
        return self._table.stats()

    def model_key(self, net: torch.nn.Module, params: Any) -> str:
        """The fingerprint of a model: its definition (``repr``) and weights (bytes)."""
        from models.cache import digest

        return digest(type(net).__name__, repr(net), {k: params[k] for k in params})

    def updates(self, path: TrainPath, net: torch.nn.Module, params: dict[str, Tensor], xs: list[Tensor],
                ys: list[Tensor], local: LocalTrainConfig, seeds: list[int],
                data_keys: list[str] | None = None) -> list[dict[str, Tensor]]:
        """:func:`fl.train.local_update` of the clients (a list of weight dicts, in order), the
        ones seen before taken from the table (as fresh copies). ``data_keys``: one string per
        client that identifies its ``(x, y)`` exactly (e.g. a digest of the data set and the
        client's sample indices), instead of hashing the tensors."""
        from models.cache import digest

        path = TrainPath(path)
        if not self.enabled or path not in (TrainPath.SEQUENTIAL, TrainPath.PARALLEL):
            out = local_update(path, net, params, xs, ys, local, seeds)
            return out
        model = self.model_key(net, params)
        opts = (local.epochs, local.batch_size, float(local.lr), float(local.momentum), float(local.weight_decay))
        if data_keys is None:
            data_keys = [digest(x, y) for x, y in zip(xs, ys)]
        if len(data_keys) != len(xs):
            raise InputError("data_keys", f"{len(data_keys)} keys for {len(xs)} clients")
        keys = [digest("update", model, d, opts, int(s)) for d, s in zip(data_keys, seeds)]
        out: list[Any] = [None] * len(keys)
        todo = []
        for k, key in enumerate(keys):
            got = self._table.get(key)
            if got is None:
                todo.append(k)
            else:
                out[k] = {n: t.clone() for n, t in got.items()}
        if todo:
            fresh = local_update(path, net, params, [xs[k] for k in todo], [ys[k] for k in todo], local,
                                 [seeds[k] for k in todo])
            for k, upd in zip(todo, fresh):
                out[k] = upd
                size = sum(t.numel() * t.element_size() for t in upd.values())
                self._table.put(keys[k], {n: t.clone() for n, t in upd.items()}, size)
        return out


def fl_round(path: TrainPath, net: torch.nn.Module, params: dict[str, Tensor], xs: list[Tensor], ys: list[Tensor],
             local: LocalTrainConfig, seeds: list[int], iom: Any, sizes: Any, strategy: Any,
             on_time: Any, cache: UpdateCache | None = None,
             data_keys: list[str] | None = None) -> tuple[dict[str, Tensor], int]:
    """One FL round of one MSP with a deadline (docs/model.md section 7): the participants that meet
    it train ``local`` on their data (``xs``, ``ys``; batches from ``seeds``, one per
    participant) and are aggregated; the late ones' updates would be dropped, so they are not
    computed. Returns the new global model (``params`` unchanged when all are late) and the
    number of missed updates. ``cache`` (:class:`UpdateCache`): updates already computed for the
    same inputs are taken from it (the same weights); ``data_keys``: see :meth:`UpdateCache.updates`."""
    on_time = np.asarray(on_time, dtype=bool)
    keep = np.flatnonzero(on_time)
    missed = int(on_time.size - keep.size)
    if keep.size == 0:
        return params, missed
    if cache is not None:
        updates = cache.updates(path, net, params, [xs[k] for k in keep], [ys[k] for k in keep], local,
                                [seeds[k] for k in keep], None if data_keys is None else [data_keys[k] for k in keep])
    else:
        updates = local_update(path, net, params, [xs[k] for k in keep], [ys[k] for k in keep], local,
                               [seeds[k] for k in keep])
    iom, sizes = np.asarray(iom, dtype=float), np.asarray(sizes, dtype=float)
    return strategy.aggregate(updates, iom[keep], sizes[keep], global_params=params), missed
