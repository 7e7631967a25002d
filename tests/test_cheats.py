"""Cheats that the checks must reject, on the tiny torch kata `gamma`."""

from __future__ import annotations

import textwrap

import pytest

from checker.runner import run_checks

SOLUTION_REST = '''
def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def square_grad(x):
    return 2 * x.detach()
'''


@pytest.fixture
def gamma(tiny_catalog):
    return tiny_catalog.get("gamma")


@pytest.fixture
def judge(tiny_worker):
    def judge(kata, tmp_path, source: str, seed: int = 11):
        path = tmp_path / "cheat.py"
        path.write_text(source)
        return tiny_worker(kata, path, seed=seed)

    return judge



def exercise(result, name):
    return next(e for e in result.exercises if e.name == name)


WRONG_DOUBLE = "import torch\n\ndef double(x):\n    return x + 1\n" + SOLUTION_REST


@pytest.mark.parametrize("patch", [
    "torch.testing.assert_close = lambda *a, **k: None",
    "torch.allclose = lambda *a, **k: True",
    "torch.equal = lambda *a, **k: True",
    "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None",
    "import numpy\nnumpy.allclose = lambda *a, **k: True",
    "import sys\nsys.modules['checker.helpers'].assert_close = lambda *a, **k: None",
    "import sys\nsys.modules['checker.helpers'].assert_close.__code__ = (lambda *a, **k: None).__code__",
    "torch.Tensor.__sub__ = lambda a, b: torch.zeros_like(a)",
    "import builtins\nbuiltins.isinstance = lambda *a: True",
])
@pytest.mark.parametrize("when", ["import", "call"])
def test_replacing_comparison_functions_is_refused(gamma, judge, tmp_path, patch, when):
    if when == "import":
        source = f"import torch\n{patch}\n\ndef double(x):\n    return x + 1\n" + SOLUTION_REST
    else:
        body = textwrap.indent(patch, "    ")
        source = f"import torch\n\ndef double(x):\n{body}\n    return x + 1\n" + SOLUTION_REST
    result = judge(gamma, tmp_path, source)
    assert not result.passed
    message = result.message if result.status == "load_error" else exercise(result, "double").message
    assert any(word in message for word in ("changed", "values differ", "off-limits")), message


def test_tensor_subclass_faking_equality_is_refused(gamma, judge, tmp_path):
    result = judge(gamma, tmp_path, textwrap.dedent("""
        import torch

        class Liar(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return True

        def double(x):
            return (x + 1).as_subclass(Liar)
    """) + SOLUTION_REST)
    message = exercise(result, "double").message
    assert not result.passed and "subclass of torch.Tensor" in message


def test_object_with_always_true_eq_is_refused(gamma, judge, tmp_path):
    result = judge(gamma, tmp_path, textwrap.dedent("""
        import torch

        class Yes:
            def __eq__(self, other):
                return True
            shape = (3, 4)

        def double(x):
            return Yes()
    """) + SOLUTION_REST)
    assert not result.passed and "expected a torch.Tensor" in exercise(result, "double").message


def test_numpy_subclass_is_refused():
    import numpy as np

    from checker.helpers import CheckFailure, assert_close

    class Sub(np.ndarray):
        pass

    expected = np.arange(3.0)
    with pytest.raises(CheckFailure, match="ndarray subclass"):
        assert_close(expected.copy().view(Sub), expected, "f(x)")


def test_memorised_outputs_fail_on_another_seed(gamma, judge, tmp_path):
    # Learn the answer for seed 5 through a run that leaks it in its message (learner code may
    # not write files outside its scratch folder), then replay it.
    spy = "import torch\n\ndef double(x):\n    raise ValueError(repr((2 * x).tolist()))\n"
    message = exercise(judge(gamma, tmp_path, spy + SOLUTION_REST, seed=5), "double").message
    answer = message.split("ValueError: ", 1)[1].split("\n")[0]
    memorised = f"import torch\n\ndef double(x):\n    return torch.tensor({answer}, dtype=x.dtype)\n"
    assert judge(gamma, tmp_path, memorised + SOLUTION_REST, seed=5).passed  # the same seed replays
    assert not judge(gamma, tmp_path, memorised + SOLUTION_REST, seed=6).passed


def test_mutating_inputs_cannot_fool_the_reference(gamma, judge, tmp_path):
    result = judge(gamma, tmp_path, textwrap.dedent("""
        import torch

        def double(x):
            x.zero_()
            return torch.zeros_like(x)
    """) + SOLUTION_REST)
    message = exercise(result, "double").message
    assert not result.passed and ("values differ" in message or "changed its input" in message)


@pytest.mark.parametrize("route", [
    "from torch.optim import SGD\n\ndef sgd_step(params, lr):\n    SGD(params, lr=lr).step()",
    "import torch.optim.sgd as sgd_module\n\ndef sgd_step(params, lr):\n    sgd_module.SGD(params, lr=lr).step()",
    "def sgd_step(params, lr):\n    getattr(torch.optim, 'SGD')(params, lr=lr).step()",
    "import importlib\n\ndef sgd_step(params, lr):\n    importlib.import_module('torch.optim').SGD(params, lr=lr).step()",
    "def sgd_step(params, lr):\n    opt = object.__new__(torch.optim.SGD)\n    torch.optim.SGD.step(opt)",
    "from torch.optim.sgd import sgd as functional_sgd\n\ndef sgd_step(params, lr):\n"
    "    functional_sgd(params, [p.grad for p in params], [None] * len(params), weight_decay=0.0,"
    " momentum=0.0, lr=lr, dampening=0.0, nesterov=False, maximize=False)",
])
def test_forbidden_optimizer_by_any_route(gamma, judge, tmp_path, route):
    source = f"import torch\n{route}\n\ndef double(x):\n    return 2 * x\n\ndef square_grad(x):\n    return 2 * x.detach()\n"
    result = judge(gamma, tmp_path, source)
    message = exercise(result, "sgd_step").message
    assert not result.passed and "off-limits in this kata" in message, message


@pytest.mark.parametrize("route", [
    "(x ** 2).sum().backward()\n    return x.grad",
    "torch.autograd.backward([(x ** 2).sum()])\n    return x.grad",
    "return torch.autograd.grad((x ** 2).sum(), x)[0]",
    "from torch.autograd.graph import _engine_run_backward as run\n    y = (x ** 2).sum()\n"
    "    return run((y,), (torch.ones_like(y),), False, False, (x,), False, True)[0]",
])
def test_forbidden_autograd_by_any_route(gamma, judge, tmp_path, route):
    source = (f"import torch\n\ndef square_grad(x):\n    {route}\n\n"
              "def double(x):\n    return 2 * x\n\ndef sgd_step(params, lr):\n"
              "    with torch.no_grad():\n        for p in params:\n            p -= lr * p.grad\n")
    result = judge(gamma, tmp_path, source)
    message = exercise(result, "square_grad").message
    assert not result.passed and "off-limits in this kata" in message, message


def test_fork_bomb_stops_at_the_first_fork(gamma, judge, tmp_path):
    result = judge(gamma, tmp_path, textwrap.dedent("""
        import os
        import torch

        def double(x):
            while True:
                os.fork()
    """) + SOLUTION_REST)
    assert "starting processes is off-limits" in exercise(result, "double").message


def test_anonymous_shared_memory_is_refused(gamma, judge, tmp_path):
    """Shared anonymous mappings escape RLIMIT_DATA, the memory cap where a CUDA device is:
    learner code may not make one (a file's mapping, as numpy.memmap makes, is not refused)."""
    result = judge(gamma, tmp_path, textwrap.dedent("""
        import mmap
        import torch

        def double(x):
            hog = mmap.mmap(-1, 1 << 20)
            return 2 * x
    """) + SOLUTION_REST)
    assert "mapping anonymous shared memory" in exercise(result, "double").message


@pytest.mark.parametrize("cap", ["as", "data"])
def test_memory_exhaustion_is_contained_under_either_cap(gamma, tmp_path, monkeypatch, cap):
    """A hog is stopped inside the check process. Where a CUDA device is, the cap is
    RLIMIT_DATA (checker.limits.memory_limit), which stops private memory as RLIMIT_AS does."""
    monkeypatch.setenv("KATA_MEMORY_CAP", cap)
    path = tmp_path / "hog.py"
    path.write_text("import torch\n\ndef double(x):\n    hog = torch.empty(8 * 2**30, dtype=torch.uint8)\n"
                    "    hog.fill_(1)\n    return 2 * x\n" + SOLUTION_REST)
    result = run_checks(gamma, path, seed=1, memory_mb=2048)
    assert result.status in ("failed", "crashed")
    assert not exercise(result, "double").ok if result.exercises else True
    if result.exercises:
        assert "memory" in exercise(result, "double").message.lower()


def test_the_memory_cap_follows_the_machine(monkeypatch):
    import resource

    from checker import limits

    monkeypatch.delenv("KATA_MEMORY_CAP", raising=False)
    monkeypatch.setattr(limits, "CUDA_CONTROL_DEVICE", "/nonexistent/nvidiactl")
    assert limits.memory_limit() == resource.RLIMIT_AS
    monkeypatch.setattr(limits, "CUDA_CONTROL_DEVICE", "/dev/null")  # any node that exists
    assert limits.memory_limit() == resource.RLIMIT_DATA
    monkeypatch.setenv("KATA_MEMORY_CAP", "as")
    assert limits.memory_limit() == resource.RLIMIT_AS
