import pytest
import torch

from checker.contracts import in_place
from checker.helpers import assert_close

in_place("sgd_step", "params")  # its contract: the parameters are updated in place


def noncontiguous(rows=3, cols=4):
    return torch.randn(cols, rows, dtype=torch.float64).t()


@pytest.mark.exercise("double")
def test_double(impl):
    x = noncontiguous()
    expected = x * 2
    got = impl.double(x)
    assert_close(got, expected, "double(x)")


@pytest.mark.exercise("sgd_step")
def test_sgd_step(impl):
    params = [torch.randn(3, 2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    for p in params:
        p.grad = torch.randn_like(p)
    lr = 0.1
    expected = [(p - lr * p.grad).detach() for p in params]
    impl.sgd_step(params, lr)
    for i, (p, e) in enumerate(zip(params, expected, strict=False)):
        assert_close(p.detach(), e, f"parameter {i} after sgd_step")


@pytest.mark.exercise("square_grad")
def test_square_grad(impl):
    x = noncontiguous()
    expected = 2 * x
    got = impl.square_grad(x.clone().requires_grad_())
    assert_close(got.detach() if type(got) is torch.Tensor else got, expected, "square_grad(x)")
