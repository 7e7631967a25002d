"""Rules at the dispatcher (checker.sandbox.dispatch): every route to a kata's forbidden
functionality meets one refusal, and nothing a correct answer does is refused.

Routes are snippets of learner code run inside the kata's own rules window (the shipped
catalog's rules); then whole learner files that take such routes go through `kata check NAME
--file F` (cold) and the warm worker, and every exercise that took one must fail with the
refusal.
"""

from __future__ import annotations

import contextlib
import io
import textwrap

import pytest
import torch
from click.testing import CliRunner

from checker.catalog import load_catalog
from checker.cli import main
from checker.sandbox.dispatch import canonical, judge_code, learner_code
from checker.sandbox.errors import ForbiddenAPI
from checker.sandbox.window import prepare_rules, rules_window

CATALOG = load_catalog()
LEARNER = "/learner/file.py"

ENGINE = ("torch.autograd.Variable._execution_engine.run_backward(((w * w).sum(),), "
          "(torch.tensor(1.0),), False, False, (w,), True, False)")
FUSED = ("torch.{name}([p], [p.clone()], [p.clone()], [p.clone()], [], [torch.tensor(1.0)], lr=0.1, "
         "beta1=0.9, beta2=0.99, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)")

# (kata, route): learner code that reaches the kata's forbidden functionality.
REFUSED = {
    "views": [
        "x.unfold(1, 2, 1)", "getattr(x, 'unf' + 'old')(1, 2, 1)", "torch.Tensor.unfold(x, 1, 2, 1)",
        "torch._C.TensorBase.unfold(x, 1, 2, 1)", "torch._C.TensorBase.__dict__['unfold'](x, 1, 2, 1)",
        "torch.ops.aten.unfold(x, 1, 2, 1)", "torch.ops.aten.unfold.default(x, 1, 2, 1)",
        "torch.unfold_copy(x, 1, 2, 1)", "torch._refs.unfold(x, 1, 2, 1)",
        "torch._C._VariableFunctions.reshape(x, (-1,))", "x.reshape(-1)", "x.view(-1)",
        "torch.ops.aten.view.default(x, [-1])", "torch.ops.aten._unsafe_view(x, [-1])",
        "torch.ops.aten.view_copy.out(x, [-1], out=torch.empty(24))", "x.flatten()",
        "torch.ravel(x)", "x.view_as(x)", "torch.diagonal(x)", "torch.linalg.diagonal(x)",
        "x.diag()", "x[:1].expand(3, 6)", "torch.broadcast_to(x[:1], (3, 6))",
        "torch.ops.aten.expand_copy.default(x[:1], [3, 6])", "torch._refs.expand(x[:1], 3, 6)",
        "torch.empty_strided((2, 3), (3, 1), device='meta').view(6)",
        # switching the rules off
        "from torch.utils._python_dispatch import _disable_current_modes\n"
        "with _disable_current_modes():\n    x.view(-1)",
        "torch._C._pop_torch_dispatch_stack()",
        "with torch._C._DisableTorchDispatch():\n    x.view(-1)",
        "with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.Python)):"
        "\n    x.view(-1)",
        "torch._C._dispatch_tls_set_dispatch_key_excluded(torch._C.DispatchKey.Python, True)",
        "torch.ops.aten.view.default.redispatch(torch._C.DispatchKeySet(torch._C.DispatchKey.CPU), x, [-1])",
        "with torch._C.DisableTorchFunction():\n    x.view(-1)",
    ],
    "broadcasting": [
        "x @ x.T", "import operator\noperator.matmul(x, x.T)", "torch.matmul(x, x.T)",
        "torch.mm(x, x.T, out=torch.empty(4, 4))", "torch.zeros(4, 4).addmm_(x, x.T)",
        "torch.einsum('ij,kj->ik', x, x)", "torch.tensordot(x, x, dims=([1], [1]))",
        "torch.nn.functional.linear(x, x)", "torch.inner(x, x)", "torch.dot(x[0], x[1])",
        "torch.linalg.vecdot(x, x)", "torch.ops.aten.bmm.default(x[None], x.T[None])",
        "x.sum_to_size(1, 6)", "torch.ops.aten.sum_to_size(x, [1, 6])",
        "torch.broadcast_tensors(x, x[:1])", "torch._C._VariableFunctions.broadcast_tensors([x, x[:1]])",
        ENGINE, "type(torch.autograd.Variable._execution_engine).run_backward(torch.autograd.Variable._execution_engine, "
        "((w * w).sum(),), (torch.tensor(1.0),), False, False, (w,), True, False)",
        "with torch._C.DisableTorchFunction():\n    x.sum_to_size(1, 6)",
        "from torch.overrides import _pop_mode_temporarily\n"
        "with _pop_mode_temporarily():\n    x.sum_to_size(1, 6)",
        "torch._C._set_torch_function_state(torch._C._TorchFunctionState.ALL_DISABLED)",
    ],
    "dtypes_and_inplace": [
        "torch.result_type(x, 1)", "torch.ops.aten.result_type.Scalar(x, 1)", "torch.cat([x, x])",
        "torch._C._VariableFunctions.stack([x, x])", "torch.hstack([x, x])", "torch.concat([x, x])",
        "x[None]", "x.clone().unsqueeze_(0)", "torch.unsqueeze_copy(x, 0)",
        "torch.cat([torch.empty(2, device='meta')] * 2)",
        "import torch._prims_common as u\n"
        "u.elementwise_dtypes(x, 1, type_promotion_kind=u.ELEMENTWISE_TYPE_PROMOTION_KIND.DEFAULT)",
        ENGINE,
    ],
    "vjp": [
        f"torch._C._set_grad_enabled(True)\n{ENGINE}",
        "loss = (w * w).sum()\ntorch._C._set_grad_enabled(False)\n"
        "torch.autograd.Variable._execution_engine.run_backward((loss,), (torch.tensor(1.0),), "
        "False, False, (w,), True, False)",
        "torch._softmax_backward_data(y, y, 1, y.dtype)",
        "torch.ops.aten._softmax_backward_data.default(y, y, 1, y.dtype)",
        "torch.ops.aten._log_softmax_backward_data(y, y, 1, y.dtype)",
        "torch._functorch.eager_transforms.vjp(torch.sin, x)[1](x)",
        "torch._functorch.eager_transforms.jvp(torch.sin, (x,), (x,))",
        "torch._functorch.apis.grad(lambda t: t.sin().sum())(x)",
        "torch._make_dual(x, x, level=0)", "(w * w).sum().backward()",
        "torch.autograd.grad((w * w).sum(), w)",
        "w.register_hook(lambda g: g)\ntype(torch.autograd.Variable._execution_engine).run_backward(torch.autograd.Variable."
        "_execution_engine, ((w * w).sum(),), (torch.tensor(1.0),), False, False, (), True, True)",
    ],
    "backward_engine": [
        ENGINE, "torch.func.grad(lambda t: (t * t).sum())(x)", "(w * w).sum().backward()",
        "torch.autograd.functional.vjp(torch.sin, x, x)",
    ],
    "strides": [
        "import sys\nsys.modules.get('torch').empty(2, 3).stride()",
        "import importlib\nimportlib.import_module('to' + 'rch').ones(1)",
        "import sys\nsys.modules['torch']._prims_common.make_contiguous_strides_for((2, 3))",
        "x.stride()",  # a tensor handed in (or found anywhere) is torch too
    ],
    "numpy_backprop": [
        "import sys\nsys.modules.get('torch').tensor([1.0]).exp()",
        "import sys\nimport numpy as np\nnp.asarray(sys.modules['torch'].ones(2))",
        "x.sum()",
    ],
    "adam": [
        FUSED.format(name="_fused_adam_"), FUSED.format(name="_fused_adamw_"),
        FUSED.format(name="ops.aten._fused_adam_.default"),
        FUSED.format(name="_C._VariableFunctions._fused_adam_"),
    ],
    "losses": [
        "torch.nn.functional.log_softmax(x, 1)", "torch.ops.aten._log_softmax(x, 1, False)",
        "torch._C._nn.softplus(x)", "torch.special.logsumexp(x, 1)", "torch.logaddexp(x, x)",
        "torch.nn.CrossEntropyLoss()(x, torch.tensor([0, 1, 2, 3]))",
        "torch._C._nn.cross_entropy_loss(x, torch.tensor([0, 1, 2, 3]))",
        "torch.nn.functional.binary_cross_entropy_with_logits(x, x.sigmoid())",
        "torch._C.TensorBase.__dict__['log_softmax'](x, 1)",
    ],
    "modules": [
        "torch.nn.functional.dropout(x, 0.5)", "torch.ops.aten.native_dropout(x, 0.5, True)",
        "torch.nn.functional.batch_norm(x, None, None, training=True)",
        "torch.instance_norm(x[None], None, None, None, None, True, 0.1, 1e-5, False)",
    ],
    "custom_function": [
        "torch.logsumexp(x, 1)", "torch.ops.aten.logsumexp.default(x, [1])",
        "torch.special.logsumexp(x, 1)", "torch._refs.logsumexp(x, 1)",
        # mode stacks are per thread: a thread started in the window gets the modes too
        "import concurrent.futures as cf\ncf.ThreadPoolExecutor(1).submit(torch.logsumexp, x, 1).result()",
    ],
    "data": ["torch._C._nn.pad_sequence([x, x])", "torch.ops.aten.pad_sequence([x], True)"],
}

# (kata, code): what correct answers do; none of it may be refused.
ALLOWED = {
    "views": ["x.as_strided((2, 2), (1, 1))", "x.contiguous()", "x[1:, ::2].t()", "print(x, x[0])",
              "x.clone().add_(1)", "f'{x.sum().item():.3f}'", "x.tolist()"],
    "broadcasting": ["(x[:, None, :] * x[None, :, :]).sum(-1)", "x.sum(0, keepdim=True)",
                     "x.as_strided((3, 6), (0, 1))", "print(x > 0)"],
    "dtypes_and_inplace": ["torch.promote_types(torch.int32, torch.float16)", "torch.sigmoid(x) * 2",
                           "with torch.no_grad():\n    w.sub_(w * 0.1)", "print(x)"],
    "vjp": ["x @ x.T", "(x * 2).sum(0, keepdim=True).expand(4, 6)", "print(w)",
            "with torch.no_grad():\n    x + 1", "x.unsqueeze(0)"],
    "backward_engine": ["(w.exp() * 2).sum().grad_fn(torch.ones(()))", "w.grad_fn", "print(w)"],
    "adam": ["torch._foreach_mul_([p], 0.9)", "torch._foreach_addcmul_([p], [p], [p], value=0.1)",
             "p.addcdiv_(p, p.abs() + 1, value=-0.1)"],
    "losses": ["torch.exp(x).sum(1).log()", "x.amax(1, keepdim=True)", "torch.log1p(x.exp())",
               "torch.where(x > 0, x, 0)", "print(x)"],
    "modules": ["torch.bernoulli(torch.full((3,), 0.5))", "x.var(0, unbiased=False)"],
    "numpy_backprop": ["import numpy as np\nnp.ones(3) @ np.ones(3)", "print('debugging')"],
    "strides": ["print((2, 3), [1, 2])"],
    "custom_function": ["x.amax(1)", "import concurrent.futures as cf\n"
                        "cf.ThreadPoolExecutor(1).submit(torch.amax, x, 1).result()"],
    "data": ["x.new_full((2, 3), 0.0)"],
}


def run_as_learner(kata: str, code: str) -> None:
    """``code`` as if the learner's file ran it, inside the kata's rules window."""
    rules = CATALOG.get(kata).rules
    prepare_rules(rules)
    x = torch.randn(4, 6)
    namespace = {"torch": torch, "x": x, "y": x.softmax(1), "p": torch.randn(3),
                 "w": torch.randn(3, requires_grad=True)}
    try:
        with contextlib.redirect_stdout(io.StringIO()), rules_window(rules, LEARNER):
            exec(compile(code, LEARNER, "exec"), namespace)
    finally:
        torch.set_grad_enabled(True)  # what the sandbox's state guards restore in a check
        assert torch._C._len_torch_dispatch_stack() == torch._C._len_torch_function_stack() == 0


@pytest.mark.parametrize(("kata", "code"), [(k, c) for k, codes in REFUSED.items() for c in codes])
def test_every_route_is_refused(kata, code):
    with pytest.raises(ForbiddenAPI, match="off-limits"):
        run_as_learner(kata, code)
    run_as_learner(kata, "pass")  # and the window is whole again afterwards


@pytest.mark.parametrize(("kata", "code"), [(k, c) for k, codes in ALLOWED.items() for c in codes])
def test_what_correct_answers_do_is_not_refused(kata, code):
    run_as_learner(kata, code)


def test_the_rules_are_off_outside_the_window_and_in_the_judges_own_code():
    rules = CATALOG.get("vjp").rules
    w = torch.randn(3, requires_grad=True)
    engine = torch.autograd.Variable._execution_engine.run_backward  # bound as the checks do

    def backward() -> None:
        engine(((w * w).sum(),), (torch.tensor(1.0),), False, False, (w,), True, False)

    backward()  # the checks' own reference computations
    with rules_window(rules, LEARNER):
        with judge_code():  # e.g. the backward(v) the vjp kata hands the learner
            backward()
            with learner_code(), pytest.raises(ForbiddenAPI, match="autograd engine"):
                backward()
    assert torch._C._len_torch_dispatch_stack() == 0 and torch._C._len_torch_function_stack() == 0


def test_modes_left_behind_or_taken_away_fail_the_call():
    rules = CATALOG.get("views").rules
    with pytest.raises(ForbiddenAPI, match="left it off"):
        run_as_learner("views", "torch._C.DisableTorchFunction().__enter__()")
    assert torch._C._is_torch_function_enabled()
    with pytest.raises(ForbiddenAPI, match="took the kata's rules off"), rules_window(rules, LEARNER):
        torch._C._pop_torch_function_stack()
    assert torch._C._len_torch_dispatch_stack() == 0 and torch._C._len_torch_function_stack() == 0


def test_what_the_dispatch_lesson_says_about_the_rules():
    """katas/NN_dispatch/lesson.md: every route to unfold arrives as aten.unfold.default, a fused
    kernel as itself; the graph task id is -1 except while the engine runs a backward pass."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append((str(func), torch._C._current_graph_task_id()))
            return func(*args, **(kwargs or {}))

    x, p, w = torch.randn(4, 6), torch.randn(3), torch.randn(3, requires_grad=True)
    with Log():
        x.unfold(1, 2, 1)
        torch.Tensor.unfold(x, 1, 2, 1)
        torch.ops.aten.unfold.default(x, 1, 2, 1)
        routes = list(seen)
        seen.clear()
        exec(FUSED.format(name="_fused_adam_"), {"torch": torch, "p": p})
        fused = [op for op, _ in seen if "fused" in op]
        seen.clear()
        (w * w).sum().backward()
    assert routes == [("aten.unfold.default", -1)] * 3
    assert fused == ["aten._fused_adam_.default"]
    assert seen[0][1] == -1 and any(task != -1 for _, task in seen)
    assert torch._C._current_graph_task_id() == -1


def test_operator_names_cover_overloads_inplace_out_and_copy_variants():
    assert {canonical(n) for n in ("aten::unsqueeze", "unsqueeze_", "aten::unsqueeze_copy.out",
                                   "unsqueeze.default")} == {"unsqueeze"}
    assert canonical("__matmul__") == canonical("__rmatmul__") == "matmul"
    assert canonical("_fused_adam_") == "_fused_adam"


@pytest.mark.parametrize("name", CATALOG.names())
def test_catalog_operators_exist(name):
    for op in CATALOG.get(name).rules.ops:
        namespace, _, opname = op.partition("::")
        assert namespace == "aten" and hasattr(torch.ops.aten, opname), f"{name}: no operator {op}"


# ----------------------------------------------------------------------------- learner files

FILES = {
    "views": ("""
        import torch

        def sliding_windows(x, size, step):
            return torch.ops.aten.unfold.default(x, -1, size, step)

        def expand(x, shape):
            return torch._C.TensorBase.__dict__["expand"](x, shape)

        def diagonal(x, offset=0):
            return torch._refs.diagonal(x, offset, -2, -1)

        def view_strides(shape, strides, new_shape):
            meta = torch.empty_strided(shape, strides, device="meta")
            return torch._C._VariableFunctions.reshape(meta, new_shape).stride()

        def flatten(x, start_dim=0, end_dim=-1):
            return getattr(x, "flat" + "ten")(start_dim, end_dim)
        """, ["sliding_windows", "expand", "diagonal", "view_strides", "flatten"]),
    "vjp": ("""
        import torch

        def linear_vjp(x, w, b, grad_out):
            torch._C._set_grad_enabled(True)
            x, w, b = (t.detach().requires_grad_(True) for t in (x, w, b))
            out = x @ w + b
            return torch.autograd.Variable._execution_engine.run_backward(
                (out,), (grad_out,), False, False, (x, w, b), True, False)

        def softmax_vjp(y, grad_out, dim):
            return torch._softmax_backward_data(grad_out, y, dim, y.dtype)
        """, ["linear_vjp", "softmax_vjp"]),
    "adam": ("""
        import torch

        def foreach_adam_(params, grads, states, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=0.0, amsgrad=False, decoupled=False):
            for s in states:
                s["step"] += 1
            fused = torch.ops.aten._fused_adamw_ if decoupled else torch.ops.aten._fused_adam_
            fused(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                  [s["max_exp_avg_sq"] for s in states] if amsgrad else [],
                  [s["step"] for s in states], lr=lr, beta1=betas[0], beta2=betas[1],
                  weight_decay=weight_decay, eps=eps, amsgrad=amsgrad, maximize=False)
        """, ["foreach_adam_"]),
    "strides": ("""
        import sys

        def contiguous_strides(shape):
            return tuple(sys.modules.get("torch").empty(shape).stride())
        """, ["contiguous_strides"]),
    "numpy_backprop": ("""
        import sys

        def linear_backward(x, W, grad_out):
            torch = sys.modules.get("torch")
            xt, Wt = (torch.tensor(a, requires_grad=True) for a in (x, W))
            out = xt @ Wt.T
            out.backward(torch.tensor(grad_out))
            return xt.grad.numpy(), Wt.grad.numpy(), grad_out.sum(0)
        """, ["linear_backward"]),
}


def _learner_file(tmp_path, kata):
    path = tmp_path / f"{kata}.py"
    path.write_text(textwrap.dedent(FILES[kata][0]))
    return path


@pytest.mark.parametrize("kata", list(FILES))
def test_bypass_files_fail_cold(kata, tmp_path):
    path = _learner_file(tmp_path, kata)
    result = CliRunner().invoke(main, ["check", kata, "--file", str(path), "--seed", "3", "-v"],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    for exercise in FILES[kata][1]:
        assert f"✗ {exercise}" in result.output, result.output
    # each route is refused: by the rules, or first by the state guard (a route that switched
    # grad mode on to reach the engine is caught leaving it on)
    refusals = result.output.count("off-limits") + result.output.count("changed global state")
    assert refusals >= len(FILES[kata][1]), result.output


@pytest.mark.parametrize("kata", list(FILES))
def test_bypass_files_fail_warm(kata, tmp_path, warm):
    result = warm(CATALOG.get(kata), _learner_file(tmp_path, kata), seed=3)
    assert not result.passed
    by_name = {e.name: e for e in result.exercises}
    for exercise in FILES[kata][1]:
        assert by_name[exercise].status == "failed", by_name[exercise]
        message = by_name[exercise].message
        assert "off-limits" in message or "changed global state" in message, message
