"""The guards around learner calls, the exact-type assertion, the input generators and the
diagnosis by behaviour's comparison of outcomes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from checker.contracts import assert_exact_type, call_guarded, in_place, uses_global_rng
from checker.helpers import CheckFailure, layouts
from checker.inputs import boundary_draws, edge_shapes, expanded, shape_cases


def run(name, fn, *args, **kwargs):
    return call_guarded(name, fn, args, kwargs, lambda: fn(*args, **kwargs))


def test_input_guard_fails_a_function_that_changes_its_input():
    def scale(x):
        x.mul_(2)
        return x

    x = torch.ones(3)
    with pytest.raises(CheckFailure, match="changed its input `x` .its values"):
        run("scale", scale, x)


def test_input_guard_spares_in_place_contracts():
    def step_(params, lr):
        for p in params:
            p.sub_(lr)

    run("step_", step_, [torch.ones(2)], 0.5)  # a trailing underscore: the first argument

    def update(state, grads):
        state["n"] += 1

    in_place("update", "state")
    run("update", update, {"n": 0}, [torch.ones(1)])


def test_input_guard_sees_a_list_and_metadata():
    def pop(xs):
        return xs.pop()

    with pytest.raises(CheckFailure, match="`xs`"):
        run("pop", pop, [1, 2])

    def transpose(x):
        return x.t_()

    with pytest.raises(CheckFailure, match="shape, strides"):
        run("transpose", transpose, torch.ones(2, 3))


@pytest.mark.parametrize("leak, text", [
    (lambda: torch.set_grad_enabled(False), "grad mode"),
    (lambda: torch.set_default_dtype(torch.float64), "default dtype"),
    (lambda: torch.manual_seed(0), "torch's global RNG"),
    (lambda: np.random.seed(0), "NumPy's global RNG"),
    (lambda: random.seed(0), "random module"),
    (lambda: torch.set_anomaly_enabled(True), "anomaly mode"),
])
def test_state_guard_fails_and_restores_a_leak(leak, text):
    before = (torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_rng_state())
    with pytest.raises(CheckFailure, match=text):
        run("leaky", lambda: leak())
    assert (torch.is_grad_enabled(), torch.get_default_dtype()) == before[:2]
    assert torch.equal(torch.get_rng_state(), before[2])
    assert not torch.is_anomaly_enabled()


def test_state_guard_checks_a_function_that_raises_too():
    def bad():
        torch.set_grad_enabled(False)
        raise ValueError("no")

    with pytest.raises(CheckFailure, match="grad mode"):
        run("bad", bad)
    assert torch.is_grad_enabled()


def test_declared_rng_use_is_allowed():
    uses_global_rng("init")
    run("init", lambda: torch.randn(3))


def test_exact_types():
    assert_exact_type((1, (2, 3)), (0, (0, 0)), "x")
    for got in ([1, (2, 3)], (1, [2, 3]), (True, (2, 3)), (1.0, (2, 3))):
        with pytest.raises(CheckFailure):
            assert_exact_type(got, (0, (0, 0)), "x")


def test_shape_and_layout_generators_cover_the_edges():
    shapes = [s for _, s in shape_cases(np.random.default_rng(0), 3)]
    assert any(0 in s for s in shapes) and any(1 in s for s in shapes)
    assert (1, 1, 1) in shapes and (3, 3, 3) in shapes
    assert edge_shapes(0) == [("0-d", ())]
    t = torch.randn(2, 1, 4)
    got = dict(layouts(t))
    for name, x in got.items():
        assert torch.equal(x, t), name
    assert not got["permuted dense"].is_contiguous()
    assert got["rows with a gap"].stride(-2) > t.shape[-1]
    assert 0 in got["zero strides on size-1 dims"].stride()
    assert expanded((3, 4), 0).stride(0) == 0
    assert dict(layouts(torch.tensor(1.0)))["offset 5 in a larger storage"].storage_offset() == 5
    draws = boundary_draws(np.random.default_rng(0), 0.1, 0.9, at=(0.0,))
    assert draws[0] == 0.0 and all(0.1 <= v <= 0.9 for v in draws[1:])
