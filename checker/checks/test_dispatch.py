"""Hidden checks for the kata dispatch. The dispatcher's own key sets and modes are the oracle.

Op logs are compared as multisets with every ``aten.detach.*`` call left out on both sides:
autograd detaches tensors it saves or accumulates, and how many times depends on details
(leaf or not, hooks, version) that have nothing to do with the learner's mode.
"""

from __future__ import annotations

import collections
import contextlib
import functools
from collections.abc import Callable, Iterator

import pytest
import torch
import torch._dynamo  # noqa: F401 — the first mode/detach imports it lazily; pay that at collection
from torch.utils._python_dispatch import TorchDispatchMode

from checker.helpers import (
    assert_close,
    assert_equal,
    describe,
    fail,
    random_shape,
    require_torch,
)

pytestmark = pytest.mark.kata("dispatch")


def _error(what: str, exc: BaseException) -> None:
    text = str(exc).strip()
    fail(f"{what} raised {type(exc).__name__}: {text.splitlines()[0] if text else ''}")


def _names_highest_first(keys) -> list[str]:
    """Ask the key set itself for its priority order: highest key, remove it, repeat."""
    names = []
    while True:
        key = keys.highestPriorityTypeId()
        if key == torch._C.DispatchKey.Undefined:
            return names
        names.append(key.name)
        keys = keys.remove(key)


# ----------------------------------------------------------------------------- tensors to ask about


class _DispatchSubclass(torch.Tensor):
    """A wrapper subclass with __torch_dispatch__: its tensors carry the Python keys."""

    @staticmethod
    def __new__(cls, elem):
        return torch.Tensor._make_wrapper_subclass(cls, elem.shape, dtype=elem.dtype, device=elem.device)

    def __init__(self, elem):
        self.elem = elem

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        unwrap = lambda t: t.elem if isinstance(t, _DispatchSubclass) else t  # noqa: E731
        return func(*[unwrap(a) for a in args], **(kwargs or {}))


def _tensor_zoo(rng) -> list[tuple[str, Callable[[], torch.Tensor]]]:
    """(label, maker) pairs; makers build fresh tensors of distinct random shapes."""
    a, b = random_shape(rng, 2, 2, 6)

    def inference():
        with torch.inference_mode():
            return torch.randn(a, b)

    return [
        ("a float64 tensor", lambda: torch.randn(a, b, dtype=torch.float64)),
        ("a tensor that requires grad", lambda: torch.randn(a, b, requires_grad=True)),
        ("a tensor made under inference_mode", inference),
        ("a tensor on the meta device", lambda: torch.empty(a, b, device="meta")),
        ("a conjugate view of a complex tensor", lambda: torch.randn(a, b, dtype=torch.complex64).conj()),
        ("a negative view (torch._neg_view)", lambda: torch._neg_view(torch.randn(a, b))),
        ("a sparse COO tensor", lambda: torch.randn(a, b).to_sparse()),
        ("an integer tensor", lambda: torch.arange(a * b).reshape(a, b)),
        ("a __torch_dispatch__ subclass", lambda: _DispatchSubclass(torch.randn(a, b))),
    ]


@pytest.mark.exercise("dispatch_key_names")
def test_dispatch_key_names(impl, rng):
    zoo = _tensor_zoo(rng)
    order = rng.permutation(len(zoo))
    for i in order:
        label, make = zoo[int(i)]
        t = make()
        expected = _names_highest_first(torch._C._dispatch_keys(t))
        try:
            got = impl.dispatch_key_names(t)
        except NotImplementedError:
            raise
        except Exception as exc:
            _error(f"dispatch_key_names({label})", exc)
        if type(got) is not list or not all(type(n) is str for n in got):
            fail(f"dispatch_key_names({label}): expected a list of str, got {describe(got)}.")
        assert_equal(
            got, expected, f"dispatch_key_names({label})",
            hint="ask torch._C._dispatch_keys(t) — every tensor that is not an inference tensor "
            "carries its autograd key, requires_grad or not — and list the keys from the highest "
            "priority down (DispatchKeySet.highestPriorityTypeId and remove).",
        )


# ----------------------------------------------------------------------------- dispatch_order


class _PassThrough(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _inference_mode() -> Iterator[None]:
    with torch.inference_mode():
        yield


def _contexts() -> list[tuple[str, Callable[[], contextlib.AbstractContextManager]]]:
    return [
        ("by default", contextlib.nullcontext),
        ("under torch.no_grad()", torch.no_grad),
        ("under torch.inference_mode()", _inference_mode),
        ("under torch.autocast('cpu')", lambda: torch.autocast("cpu")),
        ("inside a TorchDispatchMode", _PassThrough),
        # ADInplaceOrView is in the default include set and excluded here: exclude wins.
        ("below ADInplaceOrView, as a custom op's kernel runs",
         torch._C._AutoDispatchBelowADInplaceOrView),
    ]


def _reference_order(tensors) -> list[str]:
    keys = functools.reduce(lambda x, y: x | y, (torch._C._dispatch_keys(t) for t in tensors))
    keys = (keys | torch._C._dispatch_tls_local_include_set()) - torch._C._dispatch_tls_local_exclude_set()
    return _names_highest_first(keys)


@pytest.mark.exercise("dispatch_order")
def test_dispatch_order(impl, rng):
    zoo = dict(_tensor_zoo(rng))
    groups = [
        ("a float64 tensor",),
        ("a tensor that requires grad", "a float64 tensor"),
        ("a tensor made under inference_mode",),
        ("a conjugate view of a complex tensor",),
        ("a sparse COO tensor", "a float64 tensor"),
        ("a __torch_dispatch__ subclass",),
    ]
    cases = [(ctx, group) for ctx in _contexts() for group in groups]
    for k in rng.permutation(len(cases)):
        (ctx_label, ctx), group = cases[int(k)]
        if group[0] == "a __torch_dispatch__ subclass" and ctx_label != "by default":
            continue
        tensors = [zoo[label]() for label in group]
        what = f"dispatch_order({', '.join(group)}) {ctx_label}"
        with ctx():
            expected = _reference_order(tensors)
            try:
                got = impl.dispatch_order(*tensors)
            except NotImplementedError:
                raise
            except Exception as exc:
                _error(what, exc)
        if type(got) is not list or not all(type(n) is str for n in got):
            fail(f"{what}: expected a list of str, got {describe(got)}.")
        assert_equal(
            got, expected, what,
            hint="the dispatcher takes the union of the tensors' key sets, adds the thread-local "
            "INCLUDED keys and then removes the thread-local EXCLUDED ones (a key in both is "
            "excluded) "
            "(torch._C._dispatch_tls_local_include_set / _exclude_set), then goes from the "
            "highest key down. no_grad changes none of that; inference_mode and autocast do.",
        )


# ----------------------------------------------------------------------------- LoggingTensor


def _log_name(func) -> str:
    try:
        return torch.overrides.resolve_name(func) or repr(func)
    except Exception:
        return getattr(func, "__name__", repr(func))


class _RefLoggingTensor(torch.Tensor):
    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


def _expr_linear(x, w):
    h = (x @ w).relu()
    return h.sum(dim=0, keepdim=True) + h.sum() + x.shape[0]


def _expr_cat(x, w):
    y = torch.cat([x, x * 2], dim=1)
    return y.T[1:].mean(dim=1) - y[0].sum()


def _expr_softmax(x, w):
    p = torch.nn.functional.softmax(x @ w, dim=-1)
    return torch.where(p > 0.3, p, torch.zeros_like(p)).sum(dim=1) * p.sum(dim=1)


def _expr_inplace(x, w):
    y = x.clone()
    y.add_(w.sum(dim=1), alpha=2.0)
    return y.mul(3).add(y).add(1)


_EXPRESSIONS = [_expr_linear, _expr_cat, _expr_softmax, _expr_inplace]


def _expr_inputs(rng) -> tuple[torch.Tensor, torch.Tensor]:
    n, d, k = random_shape(rng, 3, 2, 7)
    return torch.randn(n, d, dtype=torch.float64), torch.randn(d, k, dtype=torch.float64)


@pytest.mark.exercise("LoggingTensor")
@pytest.mark.parametrize("expr", _EXPRESSIONS, ids=lambda e: e.__name__[6:])
def test_logging_tensor(impl, rng, expr):
    cls = impl.LoggingTensor
    if not (isinstance(cls, type) and issubclass(cls, torch.Tensor)):
        fail(f"LoggingTensor must be a subclass of torch.Tensor, got {describe(cls)}.")
    x, w = _expr_inputs(rng)
    expected = expr(x.clone(), w.clone())
    _RefLoggingTensor.calls.clear()
    expr(x.clone().as_subclass(_RefLoggingTensor), w.clone())
    expected_log = list(_RefLoggingTensor.calls)
    _RefLoggingTensor.calls.clear()
    what = f"{expr.__name__[1:]}(x, w) on x = LoggingTensor of shape {tuple(x.shape)}"
    with impl.rules():
        try:
            calls = getattr(cls, "calls", None)
            if type(calls) is not list:
                fail(f"LoggingTensor.calls must be a class-level list, got {describe(calls)}.")
            calls.clear()
            got = expr(x.clone().as_subclass(cls), w.clone())
            log = list(cls.calls)
        except NotImplementedError:
            raise
        except AssertionError:
            raise
        except Exception as exc:
            _error(what, exc)
    if type(got) is not cls:
        fail(f"{what}: the result is {describe(got)}; expected a LoggingTensor.\n"
             "  Try: results must stay LoggingTensors, or the next operation is not logged. "
             "The default Tensor.__torch_function__ (super()) wraps results back into cls.")
    if [_log_name(f) for f in log] != [_log_name(f) for f in expected_log] or log != expected_log:
        fail(
            f"{what}: LoggingTensor.calls is\n    {[_log_name(f) for f in log]}\n"
            f"  expected\n    {[_log_name(f) for f in expected_log]}\n"
            "  Try: append `func` (the function object) once per call, then run it with "
            "subclass dispatch disabled (super().__torch_function__ does that), so calls made "
            "inside func are not logged again."
        )
    assert_close(got.as_subclass(torch.Tensor), expected, what,
                 hint="pass args and kwargs on unchanged (kwargs may be None).")


# ----------------------------------------------------------------------------- AtenOpLogger


class _RefLogger(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def _hidden_mlp(x, w1, b1, w2):
    h = torch.nn.functional.linear(x, w1, b1).tanh()
    loss = (h @ w2).pow(2).mean()
    loss.backward()
    return loss.detach()


def _hidden_views(x, w1, b1, w2):
    y = x.t().contiguous().view(-1)[: x.shape[0]]
    z = torch.zeros(x.shape[0], dtype=torch.float64)
    z.add_(y, alpha=0.5)
    return torch.stack([z, z.exp()]).to(torch.float32)


def _hidden_softmax(x, w1, b1, w2):
    s = torch.softmax(x @ w1.t() + b1, dim=-1)
    loss = -(s.clamp_min(1e-9).log() * s).sum()
    loss.backward()
    return torch.cat([loss.detach().reshape(1), s.detach().flatten()])


_HIDDEN = [_hidden_mlp, _hidden_views, _hidden_softmax]


def _hidden_inputs(rng) -> list[torch.Tensor]:
    n, d, h = random_shape(rng, 3, 2, 7)
    return [torch.randn(n, d, dtype=torch.float64, requires_grad=True),
            torch.randn(h, d, dtype=torch.float64, requires_grad=True),
            torch.randn(h, dtype=torch.float64, requires_grad=True),
            torch.randn(h, int(rng.integers(2, 5)), dtype=torch.float64, requires_grad=True)]


def _fresh(inputs):
    return [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]


def _multiset(ops) -> collections.Counter:
    return collections.Counter(op for op in ops if not str(op).startswith("aten.detach."))


def _diff(expected: collections.Counter, got: collections.Counter) -> str:
    missing = expected - got
    extra = got - expected
    lines = []
    if missing:
        lines.append("  missing: " + ", ".join(f"{op} x{n}" for op, n in sorted(missing.items())))
    if extra:
        lines.append("  extra:   " + ", ".join(f"{op} x{n}" for op, n in sorted(extra.items())))
    return "\n".join(lines)


def _same_run(out, expected_out, inputs, ref_inputs, what: str) -> None:
    """A mode must not change what runs under it: the result and every input's gradient."""
    if expected_out is not None:
        assert_close(out, expected_out, f"{what}, the function's result",
                     hint="call func(*args, **kwargs) exactly once, with the kwargs (dtype, device, "
                     "alpha, beta, ... travel there), and return what it returns.")
    for t, r in zip(inputs, ref_inputs, strict=True):
        if r.grad is not None:
            assert_close(t.grad, r.grad, f"{what}, a gradient")


@pytest.mark.exercise("AtenOpLogger")
@pytest.mark.parametrize("hidden", _HIDDEN, ids=lambda f: f.__name__[8:])
def test_aten_op_logger(impl, rng, hidden):
    inputs = _hidden_inputs(rng)
    ref_inputs = _fresh(inputs)
    with _RefLogger() as ref:
        expected_out = hidden(*ref_inputs)
    expected = _multiset(ref.ops)
    mine = _fresh(inputs)
    what = f"the ops of a hidden function ({hidden.__name__[8:]}, forward and backward) under AtenOpLogger"
    with impl.rules():
        try:
            logger = impl.AtenOpLogger()
            with logger:
                out = hidden(*mine)
            ops = logger.ops
        except NotImplementedError:
            raise
        except Exception as exc:
            _error(what, exc)
    _same_run(out, expected_out, mine, ref_inputs, f"{what}: under your mode")
    if type(ops) is not list or not all(type(o) is str for o in ops):
        fail(f"{what}: AtenOpLogger.ops must be a list of str, got {describe(ops)[:120]}.")
    got = _multiset(ops)
    if got != expected:
        fail(
            f"{what}: the op multiset differs (aten.detach calls ignored on both sides).\n"
            + _diff(expected, got)
            + "\n  Try: log str(func) — the OpOverload, e.g. 'aten.mm.default' — once for every "
            "call that reaches __torch_dispatch__, repeats included."
        )


# ----------------------------------------------------------------------------- FlopCounter


def _mlp_flops(x, w1, b1, w2, q, k):
    h = torch.nn.functional.linear(x, w1, b1).relu()
    loss = (h @ w2).square().mean()
    loss.backward()
    return loss.detach()


def _attention_flops(x, w1, b1, w2, q, k):
    scores = torch.matmul(q, k.transpose(1, 2))
    loss = (scores.softmax(-1) @ k).sum()
    loss.backward()
    return loss.detach()


def _mixed_flops(x, w1, b1, w2, q, k):
    y = torch.addmm(b1, x, w1.t(), beta=0.5, alpha=2.0)  # kwarg-only arguments must reach the op
    z = torch.bmm(q, k.transpose(1, 2)).sum(0)
    loss = y.sum() + z.sum() + torch.mm(x, x.t()).sum()
    loss.backward()
    return loss.detach()


def _empty_flops(x, w1, b1, w2, q, k):
    """Matmuls that run but multiply nothing: each op still appears, with 0 FLOPs."""
    torch.mm(x[:0], w1.t())
    torch.bmm(q[:, :, :0], k[:, :0, :].detach())
    return torch.addmm(b1, x.detach(), w1.detach().t()).sum()


_FLOP_FUNCTIONS = [_mlp_flops, _attention_flops, _mixed_flops, _empty_flops]


def _flop_inputs(rng) -> list[torch.Tensor]:
    n, d, h, o = random_shape(rng, 4, 2, 9)
    b, s, e = random_shape(rng, 3, 2, 7)
    req = dict(dtype=torch.float64, requires_grad=True)
    return [torch.randn(n, d, **req), torch.randn(h, d, **req), torch.randn(h, **req),
            torch.randn(h, o, **req), torch.randn(b, s, e, **req), torch.randn(b, s, e, **req)]


def _reference_flops(fn, inputs) -> tuple[dict[str, int], int, torch.Tensor | None]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = fn(*inputs)
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    assert set(per_op) <= {"aten.mm", "aten.addmm", "aten.bmm"}, per_op  # the kata's scope
    return per_op, int(counter.get_total_flops()), result


@pytest.mark.exercise("FlopCounter")
@pytest.mark.parametrize("fn", _FLOP_FUNCTIONS, ids=lambda f: f.__name__[1:-6])
def test_flop_counter(impl, rng, fn):
    require_torch("2.1", "torch.utils.flop_counter.FlopCounterMode")
    inputs = _flop_inputs(rng)
    ref_inputs = _fresh(inputs)
    expected, expected_total, expected_result = _reference_flops(fn, ref_inputs)
    mine = _fresh(inputs)
    shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
    what = f"FlopCounter over a hidden {fn.__name__[1:-6]} function (forward and backward; inputs {shapes})"
    with impl.rules():
        try:
            counter = impl.FlopCounter()
            with counter:
                result = fn(*mine)
            got = counter.flops
            total = counter.total()
        except NotImplementedError:
            raise
        except Exception as exc:
            _error(what, exc)
    _same_run(result, expected_result, mine, ref_inputs, f"{what}: under your counter")
    if type(got) is not dict:
        fail(f"{what}: FlopCounter.flops must be a dict, got {describe(got)}.")
    if not all(type(k) is str and type(v) is int for k, v in got.items()):
        fail(f"{what}: FlopCounter.flops must map str to int, got {got!r}.\n  Try: FLOPs are whole "
             "numbers: multiply the sizes as ints (no division, no float factors).")
    if got != expected:
        rows = "\n".join(
            f"    {op:12} expected {expected.get(op, 0):>8}   got {got.get(op, 0)!r:>8}"
            for op in sorted(set(expected) | set(got), key=str)
        )
        fail(
            f"{what}: FLOPs per op differ from torch.utils.flop_counter.FlopCounterMode:\n{rows}\n"
            "  Try: an (m, k) @ (k, n) product is m*n*k multiply-adds = 2*m*n*k FLOPs; addmm's "
            "matrices are args[1] and args[2] (args[0] is the bias, whose add is not counted); "
            "bmm multiplies by the batch size. Count in __torch_dispatch__, so backward's "
            "matmuls are seen too. Only ops that ran appear (a matmul of empty matrices "
            "ran: 0 FLOPs), and an op that never ran has no entry."
        )
    if type(total) is not int:
        fail(f"{what}: FlopCounter.total() must return an int, got {describe(total)}.")
    assert_equal(total, expected_total, f"{what}: FlopCounter.total()",
                 hint="total() is the sum over every op.")
