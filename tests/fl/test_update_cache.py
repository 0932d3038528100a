"""fl.round.UpdateCache: a client's update computed once for identical inputs, bit for bit;
any changed input (weights, data, labels, options, seed) misses."""
import dataclasses

import numpy as np
import pytest
import torch

from fl.aggregate import make_strategy
from fl.nets import make_net
from fl.train import LocalTrainConfig, TrainPath, get_params, local_update
from fl.round import UpdateCache, fl_round


def _clients(k=3, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.rand((n + 3 * i, 1, 28, 28), generator=g) for i in range(k)]
    ys = [torch.randint(0, 10, (n + 3 * i,), generator=g) for i in range(k)]
    return xs, ys


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = make_net((1, 28, 28), 10)
    return net, get_params(net)


CFG = LocalTrainConfig(epochs=1, batch_size=8, lr=0.05, momentum=0.5)


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("path", [TrainPath.SEQUENTIAL, TrainPath.PARALLEL])
def test_cached_updates_are_the_computed_ones_bit_for_bit(model, path):
    # Prepare
    net, params = model
    xs, ys = _clients()
    seeds = [11, 12, 13]
    cache = UpdateCache()
    # Execute: the first call computes and stores; the second reads every update from the table
    direct = local_update(TrainPath.SEQUENTIAL, net, params, xs, ys, CFG, seeds)
    first = cache.updates(path, net, params, xs, ys, CFG, seeds)
    second = cache.updates(path, net, params, xs, ys, CFG, seeds)
    # Assert
    assert cache.stats()["misses"] == 3 and cache.stats()["hits"] == 3
    for d, a, b in zip(direct, first, second):
        assert _equal(d, a) and _equal(d, b)
    # a caller modifying what it got does not change the stored update
    for t in second[0].values():
        t.add_(1.0)
    assert _equal(cache.updates(path, net, params, xs, ys, CFG, seeds)[0], direct[0])


def test_every_changed_input_misses(model):
    net, params = model
    xs, ys = _clients(k=1)
    cache = UpdateCache()
    cache.updates(TrainPath.SEQUENTIAL, net, params, xs, ys, CFG, [5])
    name = next(iter(params))
    nudged = dict(params)
    nudged[name] = params[name].clone()
    nudged[name].view(-1)[0] = torch.nextafter(nudged[name].view(-1)[0], torch.tensor(np.inf))
    x2 = xs[0].clone()
    x2[0, 0, 0, 0] += 1e-6
    y2 = ys[0].clone()
    y2[0] = (y2[0] + 1) % 10
    variants = [
        (nudged, xs, ys, CFG, [5]),  # one weight one ulp away
        (params, [x2], ys, CFG, [5]),  # one pixel
        (params, xs, [y2], CFG, [5]),  # one label
        (params, xs, ys, dataclasses.replace(CFG, epochs=2), [5]),
        (params, xs, ys, dataclasses.replace(CFG, lr=0.051), [5]),
        (params, xs, ys, CFG, [6]),  # the batch seed
    ]
    for k, (p, x, y, c, s) in enumerate(variants):
        before = cache.stats()["misses"]
        got = cache.updates(TrainPath.SEQUENTIAL, net, p, x, y, c, s)
        assert cache.stats()["misses"] == before + 1, f"variant {k} hit"
        assert _equal(got[0], local_update(TrainPath.SEQUENTIAL, net, p, x, y, c, s)[0])
    assert cache.stats()["hits"] == 0


def test_disabled_and_vectorised_store_nothing(model):
    net, params = model
    xs, ys = _clients(k=2)
    for cache, path in ((UpdateCache(enabled=False), TrainPath.SEQUENTIAL), (UpdateCache(), TrainPath.VECTORISED)):
        cache.updates(path, net, params, xs, ys, CFG, [1, 2])
        cache.updates(path, net, params, xs, ys, CFG, [1, 2])
        assert cache.stats()["hits"] == 0 and cache.stats()["entries"] == 0


def test_the_table_is_bounded_in_bytes(model):
    net, params = model
    xs, ys = _clients(k=4)
    one = sum(t.numel() * t.element_size() for t in params.values())
    cache = UpdateCache(max_bytes=2 * one + 1)
    cache.updates(TrainPath.SEQUENTIAL, net, params, xs, ys, CFG, [1, 2, 3, 4])
    assert cache.stats()["entries"] == 2 and cache.stats()["bytes"] <= 2 * one + 1
    # the two most recent are kept, the two oldest were dropped
    cache.updates(TrainPath.SEQUENTIAL, net, params, xs[2:], ys[2:], CFG, [3, 4])
    assert cache.stats()["hits"] == 2


def test_fl_round_with_a_cache_gives_the_same_global_model(model):
    net, params = model
    xs, ys = _clients(k=3)
    strategy = make_strategy("iom")
    args = (TrainPath.SEQUENTIAL, net, params, xs, ys, CFG, [1, 2, 3], [0.5, 1.0, 2.0], [20, 23, 26], strategy,
            [True, False, True])
    plain, missed = fl_round(*args)
    cache = UpdateCache()
    cached, missed_c = fl_round(*args, cache=cache)
    again, _ = fl_round(*args, cache=cache)
    assert missed == missed_c == 1
    assert _equal(plain, cached) and _equal(plain, again)
    assert cache.stats() == {"hits": 2, "misses": 2, "entries": 2, "bytes": cache.stats()["bytes"]}
