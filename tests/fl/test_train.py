"""fl.train: the vectorised path equals the sequential reference (same seeds, same batches)."""
import pytest
import torch

from fl.nets import make_net
from fl.train import (
    LocalTrainConfig,
    batch_schedule,
    client_seed,
    get_params,
    TrainPath,
    local_update,
    local_update_parallel,
    local_update_stacked,
    local_update_vectorised,
)
from models.errors import InputError

torch.set_num_threads(1)
SHAPE = (1, 16, 16)


def _clients(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, *SHAPE, generator=g) for n in sizes]
    ys = [torch.randint(0, 3, (n,), generator=g) for n in sizes]
    return xs, ys


def _max_diff(a, b):
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def _setup(sizes, net=None):
    """``(net, params, xs, ys)``: the shared CNN (or ``net``) seeded at 0, clients of ``sizes``."""
    torch.manual_seed(0)
    net = make_net(SHAPE, 3) if net is None else net
    return (net, get_params(net), *_clients(sizes))


def _sequential(net, params, xs, ys, cfg, seeds):
    return local_update(TrainPath.SEQUENTIAL, net, params, xs, ys, cfg, seeds)


@pytest.mark.parametrize("sizes", [[8, 8, 8], [13, 5, 0, 21], [1, 40]])
@pytest.mark.parametrize("cfg", [
    LocalTrainConfig(epochs=2, batch_size=4, lr=0.1),
    LocalTrainConfig(epochs=2, batch_size=6, lr=0.05, momentum=0.9, weight_decay=1e-2),
])
def test_vectorised_equals_sequential(sizes, cfg):
    # Prepare
    net, params, xs, ys = _setup(sizes)
    seeds = [client_seed(7, 3, k) for k in range(len(sizes))]
    # Execute
    vec = local_update_vectorised(net, params, xs, ys, cfg, seeds)
    seq = _sequential(net, params, xs, ys, cfg, seeds)
    # Assert
    for k, n in enumerate(sizes):
        assert _max_diff(vec[k], seq[k]) <= 1e-5
        moved = _max_diff(seq[k], params)
        assert (moved == 0.0) if n == 0 else (moved > 1e-4)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_parallel_equals_sequential_exactly(workers):
    # Prepare: unequal clients, one empty; the reference at one thread, as each worker runs
    net, params, xs, ys = _setup([13, 5, 0, 21, 9])
    cfg = LocalTrainConfig(epochs=2, batch_size=4, lr=0.1, momentum=0.5)
    seeds = [client_seed(1, 0, k) for k in range(5)]
    seq = _sequential(net, params, xs, ys, cfg, seeds)
    # Execute
    par = local_update_parallel(net, params, xs, ys, cfg, seeds, workers=workers)
    # Assert: the same ops in the same order on one thread each -> identical weights, same order
    assert len(par) == 5
    for k in range(5):
        assert _max_diff(par[k], seq[k]) == 0.0
    assert torch.get_num_threads() == 1  # the caller's thread setting is restored


def test_local_update_dispatch_rejects_auto():
    net = make_net(SHAPE, 3)
    xs, ys = _clients([4])
    with pytest.raises(InputError, match="path"):
        local_update(TrainPath.AUTO, net, get_params(net), xs, ys, LocalTrainConfig(), [0])


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunking_does_not_change_the_result(chunk):
    net, params, xs, ys = _setup([7, 3, 0, 11, 5])
    cfg = LocalTrainConfig(epochs=1, batch_size=4, lr=0.1, momentum=0.5)
    whole = local_update_stacked(net, params, xs, ys, cfg, [1, 2, 3, 4, 5], chunk=5)
    parts = local_update_stacked(net, params, xs, ys, cfg, [1, 2, 3, 4, 5], chunk=chunk)
    assert _max_diff(whole, parts) <= 1e-6


def test_vmap_fallback_equals_sequential():
    # Prepare: a net the grouped interpreter does not handle (Tanh) runs through torch.func.vmap
    torch.manual_seed(0)
    net, params, xs, ys = _setup([9, 3, 0], torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(256, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)))
    cfg = LocalTrainConfig(epochs=2, batch_size=4, lr=0.1, momentum=0.5)
    seeds = [1, 2, 3]
    # Execute
    vec = local_update_vectorised(net, params, xs, ys, cfg, seeds)
    seq = _sequential(net, params, xs, ys, cfg, seeds)
    # Assert
    assert max(_max_diff(v, s) for v, s in zip(vec, seq)) <= 1e-5


def test_batch_schedule_covers_every_sample_each_epoch():
    cfg = LocalTrainConfig(epochs=3, batch_size=4)
    plan = batch_schedule(10, cfg, seed=5)
    assert [len(e) for e in plan] == [3, 3, 3]
    for epoch in plan:
        assert sorted(torch.cat(epoch).tolist()) == list(range(10))
        assert [b.numel() for b in epoch] == [4, 4, 2]
    assert not torch.equal(torch.cat(plan[0]), torch.cat(plan[1]))


def test_client_seed_distinct_and_stable():
    seeds = {client_seed(0, r, k) for r in range(5) for k in range(20)}
    assert len(seeds) == 100
    assert client_seed(3, 1, 2) == client_seed(3, 1, 2)


@pytest.mark.parametrize("kwargs,field", [({"epochs": 0}, "epochs"), ({"batch_size": 1.5}, "batch_size"),
                                          ({"lr": 0.0}, "lr"), ({"momentum": 1.0}, "momentum"),
                                          ({"weight_decay": float("nan")}, "weight_decay")])
def test_config_validation(kwargs, field):
    with pytest.raises(InputError) as err:
        LocalTrainConfig(**kwargs)
    assert err.value.field == field


def test_sequential_and_parallel_agree_exactly_with_two_threads():
    # Prepare: issue 11 defect 8 (with 2 torch threads the two paths differed by up to 9e-4)
    net, params, xs, ys = _setup([40, 33, 27])
    cfg = LocalTrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.5)
    seeds = [client_seed(2, 0, k) for k in range(3)]
    torch.set_num_threads(2)
    try:
        # Execute
        seq = _sequential(net, params, xs, ys, cfg, seeds)
        par = local_update(TrainPath.PARALLEL, net, params, xs, ys, cfg, seeds)
        threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(1)
    # Assert: identical weights, and the caller's thread count is left as it was
    for k in range(3):
        assert _max_diff(par[k], seq[k]) == 0.0
    assert threads_after == 2
