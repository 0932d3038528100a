"""fl.aggregate: weights maths and the strategy template."""
import numpy as np
import pytest
import torch

from fl.aggregate import FedAvg, IoMFedAvg, make_strategy, normalise_weights, weighted_average
from models.errors import InputError


def _models():
    return [{"w": torch.full((2, 2), float(v)), "b": torch.tensor([v, -v], dtype=torch.float32)} for v in (1, 2, 4)]


@pytest.mark.parametrize("strategy,expected_w", [
    (IoMFedAvg(), np.array([0.2, 0.3, 0.5])),  # IoM_n / sum IoM
    (FedAvg(), np.array([10, 30, 60]) / 100),  # D_n / sum D
])
def test_strategy_weights(strategy, expected_w):
    # Prepare
    iom, sizes = np.array([0.4, 0.6, 1.0]), np.array([10, 30, 60])
    # Execute
    agg = strategy.aggregate(_models(), iom, sizes)
    # Assert
    expected = float(expected_w @ np.array([1.0, 2.0, 4.0]))
    torch.testing.assert_close(agg["w"], torch.full((2, 2), expected))
    torch.testing.assert_close(agg["b"], torch.tensor([expected, -expected]))


def test_weighted_average_stacked_equals_list():
    models = _models()
    stacked = {n: torch.stack([m[n] for m in models]) for n in models[0]}
    a, b = weighted_average(models, [1, 1, 2]), weighted_average(stacked, [1, 1, 2])
    assert all(torch.equal(a[n], b[n]) for n in a)
    torch.testing.assert_close(a["w"], torch.full((2, 2), 2.75))


def test_normalise_weights():
    np.testing.assert_allclose(normalise_weights([1, 3]), [0.25, 0.75])


@pytest.mark.parametrize("raw,field", [([], "weights"), ([1, float("nan")], "weights[1]"),
                                       ([1, -1], "weights[1]"), ([0, 0], "weights")])
def test_bad_weights(raw, field):
    with pytest.raises(InputError) as err:
        normalise_weights(raw)
    assert err.value.field == field


def test_strategy_rejects_negative_iom_and_unknown_rule():
    with pytest.raises(InputError):
        FedAvg().aggregate(_models(), [1, -1, 1], [1, 1, 1])
    with pytest.raises(InputError):
        make_strategy("median")
    assert isinstance(make_strategy("fedavg"), FedAvg)
