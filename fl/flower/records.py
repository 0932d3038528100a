"""The record layout of the App's messages: the keys and the one packed model array.

ServerApp and ClientApp exchange Flower ``RecordDict`` s with these keys:

- a QUERY (before round 1, one per node) carries an empty ``config``; the reply's ``metrics``
  hold ``client-id`` (the node's ``partition-id``) and, on a deployed node, ``mu-id``;
- a TRAIN message carries ``arrays`` (the global model, packed by ``ParamLayout``) and
  ``config`` (``server-round``, numbered from ``FLOWER_FIRST_ROUND``, and the partition recipe
  and local SGD settings: ``sizes``, ``alpha``, ``seed``, ``epochs``, ``batch-size``, ``lr``,
  ``momentum``, ``weight-decay``); the reply's ``arrays`` hold the client's update and its
  ``metrics`` ``client-id`` and ``num-examples``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ARRAYS_KEY", "CONFIG_KEY", "METRICS_KEY", "CLIENT_ID", "MU_ID", "NUM_EXAMPLES", "ROUND_KEY",
           "FLOWER_FIRST_ROUND", "FLAT_ARRAY", "RECIPE_KEYS", "ParamLayout"]

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
#: Keys of a TRAIN message's config besides ``ROUND_KEY``: the partition recipe and local SGD.
RECIPE_KEYS = ("sizes", "alpha", "seed", "epochs", "batch-size", "lr", "momentum", "weight-decay")


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
        """The layout of ``params`` (names and shapes, in order)."""
        return cls(tuple(params), tuple(tuple(int(d) for d in v.shape) for v in params.values()))

    @property
    def numel(self) -> int:
        """Number of values of a packed model."""
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
            raise ValueError(f"expected one packed array {FLAT_ARRAY!r} (fl.flower.records.ParamLayout), got arrays "
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
