"""fl/flower/waits.py, fl/flower/supernode_launcher.py and fl.flower.records.ParamLayout: the pieces that make a
deployed round cheaper. The deployment tests (tests/benchmarks/test_fl_deploy_cmd.py,
tests/fl/test_deploy.py) run them end to end and check the weights against the built-in trainer.
"""
from __future__ import annotations

import functools

import pytest
import torch

pytest.importorskip("flwr", reason="the Flower pieces need the 'flower' extra")

import fl.flower.waits as waits  # noqa: E402
from fl.flower.records import FLAT_ARRAY, ParamLayout  # noqa: E402
from fl.nets import make_net  # noqa: E402
from fl.train import get_params  # noqa: E402


@pytest.fixture
def slept(monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(waits.time, "sleep", calls.append)
    return calls


def test_backoff_doubles_from_first_to_cap_and_starts_again_after_reset(slept):
    b = waits.Backoff(first=0.01, cap=0.05)
    for _ in range(5):
        b.wait()
    assert slept == [0.01, 0.02, 0.04, 0.05, 0.05]
    b.reset()
    assert b.wait() == 0.01
    assert b.wait(longest=0.001) == 0.001  # never longer than the wait it replaces


@pytest.mark.parametrize("first, cap", [(0, 0.1), (0.2, 0.1), (-1, 1), (0.1, 100)])
def test_backoff_refuses_bad_waits(first, cap):
    with pytest.raises(ValueError, match="0 < first <= cap <= 60"):
        waits.Backoff(first=first, cap=cap)


def test_short_sleeps_keeps_one_backoff_per_requested_wait(slept):
    # Flower's SuperNode: sleep(3) while no message, sleep(0.5) while its ClientApp works
    s = waits.ShortSleeps(first=0.01, cap=0.1)
    for seconds in (3, 3, 3, 0.5, 0.5, 3, 3):
        s.sleep(seconds)
    # the 3 s poll starts again at 0.01 after the loop moved on to the reply wait
    assert slept == [0.01, 0.02, 0.04, 0.01, 0.02, 0.01, 0.02]
    s.sleep(0.004)  # a wait shorter than the first step is kept as it is
    assert slept[-1] == 0.004
    assert s.monotonic is waits.time.monotonic  # the rest is the time module's


def test_supernode_waits_are_put_in_place_in_flowers_own_module(monkeypatch):
    from flwr.supernode import start_client_internal as sci

    # monkeypatch records the originals and puts them back after the test
    monkeypatch.setattr(sci, "time", sci.time)
    monkeypatch.setattr(sci, "pull_objects", sci.pull_objects)
    original_pull = sci.pull_objects
    waits.shorten_supernode_waits(first=0.01, cap=0.2)
    assert isinstance(sci.time, waits.ShortSleeps) and sci.time.cap == 0.2
    assert isinstance(sci.pull_objects, functools.partial) and sci.pull_objects.func is original_pull
    assert sci.pull_objects.keywords == {"initial_backoff": 0.01, "backoff_cap": 0.2}


def test_another_flower_version_is_refused(monkeypatch):
    import flwr

    monkeypatch.setattr(flwr, "__version__", "9.0.0")
    with pytest.raises(RuntimeError, match="Flower 9.0.0.*--stock-waits"):
        waits.check_flower_version()
    assert waits.shorten_grid_waits() is False  # the ServerApp then keeps Flower's own waits


@pytest.mark.parametrize("argv, message", [
    (["--poll-cap", "0.1", "--superlink", "x"], "usage"),                  # no '--' before Flower's arguments
    (["--poll-first", "0.5", "--poll-cap", "0.1", "--"], "--poll-first <= --poll-cap"),
    (["--poll-first", "0", "--"], "0 < --poll-first"),
])
def test_supernode_launcher_refuses_bad_arguments(argv, message, capsys):
    from fl.flower.supernode_launcher import parse_args

    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert message in f"{stop.value.code} {capsys.readouterr().err}"


def test_supernode_launcher_passes_flowers_arguments_through():
    from fl.flower.supernode_launcher import parse_args

    args, rest = parse_args(["--poll-cap", "0.3", "--", "--superlink", "127.0.0.1:9092", "--insecure"])
    assert args.poll_cap == 0.3 and args.poll_first == waits.DEFAULT_FIRST_S
    assert rest == ["--superlink", "127.0.0.1:9092", "--insecure"]


def test_param_layout_packs_a_model_into_one_array_bit_for_bit():
    torch.manual_seed(0)
    params = get_params(make_net((1, 28, 28), 10))
    layout = ParamLayout.of(params)
    record = layout.pack(params)
    assert list(record.keys()) == [FLAT_ARRAY] and layout.numel == sum(v.numel() for v in params.values())
    back = layout.unpack(record)
    assert list(back) == list(params)
    for name, value in params.items():
        assert back[name].shape == value.shape and torch.equal(back[name], value)
    back["0.weight"] += 1  # fresh tensors, not views of the record
    assert torch.equal(layout.unpack(record)["0.weight"], params["0.weight"])


def test_param_layout_refuses_another_model_or_the_per_tensor_format():
    from flwr.app import ArrayRecord

    mnist = ParamLayout.of(get_params(make_net((1, 28, 28), 10)))
    gtsrb = ParamLayout.of(get_params(make_net((3, 32, 32), 43)))
    with pytest.raises(ValueError, match=f"packed model has {gtsrb.numel} values, this model has {mnist.numel}"):
        mnist.unpack(gtsrb.pack(get_params(make_net((3, 32, 32), 43))))
    per_tensor = ArrayRecord(torch_state_dict=get_params(make_net((1, 28, 28), 10)))
    with pytest.raises(ValueError, match="both sides must run this version of the App"):
        mnist.unpack(per_tensor)
    with pytest.raises(ValueError, match="do not match the layout"):
        mnist.pack({"x": torch.zeros(3)})


def test_grid_waits_are_put_in_place_once(monkeypatch):
    from flwr.superlink.grid import http_grid

    monkeypatch.setattr(http_grid, "pull_objects", http_grid.pull_objects)
    original_pull = http_grid.pull_objects
    assert waits.shorten_grid_waits(first=0.01, cap=0.2) is True
    shortened = http_grid.pull_objects
    assert isinstance(shortened, functools.partial) and shortened.func is original_pull
    assert shortened.keywords == {"initial_backoff": 0.01, "backoff_cap": 0.2}
    assert waits.shorten_grid_waits() is True and http_grid.pull_objects is shortened  # not wrapped twice
    monkeypatch.delattr(http_grid, "pull_objects")
    assert waits.shorten_grid_waits() is False
