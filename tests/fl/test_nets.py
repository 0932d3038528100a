"""fl.nets: the shared CNN and its grouped (K clients at once) interpretation."""
import pytest
import torch

from fl.nets import grouped_forward, make_net, stack_params, supports_grouped, unstack_params
from models.errors import InputError

torch.set_num_threads(1)


@pytest.mark.parametrize("shape,classes", [((1, 28, 28), 10), ((3, 32, 32), 43), ((1, 16, 16), 3)])
def test_make_net_output_shape(shape, classes):
    # Prepare
    net = make_net(shape, classes)
    # Execute
    out = net(torch.zeros(2, *shape))
    # Assert
    assert out.shape == (2, classes)
    assert supports_grouped(net)


@pytest.mark.parametrize("shape,k", [((1, 28, 28), 3), ((3, 32, 32), 2)])
def test_grouped_forward_equals_each_model(shape, k):
    # Prepare: K different models, K different batches
    net = make_net(shape, 5)
    params = []
    for i in range(k):
        torch.manual_seed(i)
        params.append({n: p.detach().clone() for n, p in make_net(shape, 5).named_parameters()})
    x = torch.randn(4, k, *shape)
    # Execute
    logits = grouped_forward(net, stack_params(params), x.reshape(4, k * shape[0], *shape[1:]))
    # Assert
    for i in range(k):
        ref = torch.func.functional_call(net, params[i], (x[:, i],))
        torch.testing.assert_close(logits[i], ref, rtol=1e-5, atol=1e-5)


def test_stack_unstack_roundtrip():
    net = make_net((1, 16, 16), 3)
    params = [{n: p.detach() + i for n, p in net.named_parameters()} for i in range(3)]
    back = unstack_params(stack_params(params))
    assert all(torch.equal(back[i][n], params[i][n]) for i in range(3) for n in params[0])


def test_unsupported_net_detected():
    assert not supports_grouped(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2), torch.nn.Tanh()))
    assert not supports_grouped(torch.nn.Linear(4, 2))


@pytest.mark.parametrize("shape,classes,field", [((28, 28), 10, "shape"), ((1, 8, 8), 10, "shape"),
                                                 ((1, 28, 28), 1, "num_classes")])
def test_make_net_bad_input(shape, classes, field):
    with pytest.raises(InputError) as err:
        make_net(shape, classes)
    assert err.value.field == field
