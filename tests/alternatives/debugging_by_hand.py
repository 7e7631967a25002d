"""Alternative correct answers for debugging, written without the reference's tools: no
torch.autograd.grad in nan_source (backward, then the gradients put back), tensor hooks
instead of module hooks, the analytical Jacobian against one's own central differences
instead of gradcheck, and a gradient test for mixing (test material: each must pass
`kata check debugging --file` on every seed)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def nan_source(model: nn.Module, x: torch.Tensor) -> str | None:
    params = list(model.parameters())
    saved = [p.grad for p in params]
    previous = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    torch.set_anomaly_enabled(True, True)
    try:
        model(x).sum().backward()
    except RuntimeError as exc:
        text = str(exc)
        start = text.index("Function '") + len("Function '")
        return text[start:text.index("'", start)]
    finally:
        torch.set_anomaly_enabled(*previous)
        for p, g in zip(params, saved, strict=True):
            p.grad = g
    return None


def dead_units(model: nn.Module, x: torch.Tensor) -> dict[str, list[int]]:
    maxima: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if type(module) is nn.ReLU or isinstance(module, nn.ReLU):
            def hook(module, args, output, name=name):
                maxima[name] = output.detach().abs().amax(dim=tuple(range(output.dim() - 1)))
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: [i for i, v in enumerate(m.tolist()) if v == 0] for name, m in maxima.items()}


def numerical_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       eps: float) -> torch.Tensor:
    base = x.detach().contiguous().clone()
    flat = base.view(-1)
    rows = f(base.clone()).numel()
    jac = torch.empty(rows, flat.numel(), dtype=x.dtype)
    for j in range(flat.numel()):
        keep = flat[j].item()
        flat[j] = keep + eps
        plus = f(base.clone()).reshape(-1)
        flat[j] = keep - eps
        minus = f(base.clone()).reshape(-1)
        flat[j] = keep
        jac[:, j] = (plus - minus) / (2 * eps)
    return jac


def first_explosion(model: nn.Module, x: torch.Tensor, upstream: torch.Tensor,
                    threshold: float) -> tuple[str, str] | None:
    def bad(t: torch.Tensor) -> bool:
        t = t.detach()
        return bool(t.isnan().any() or t.isinf().any() or (t.abs() > threshold).any())

    ran: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    reached: list[str] = []
    handles = []

    def watch(name: str):
        def pre_hook(module, args):
            if args[0].requires_grad:
                args[0].register_hook(lambda g: reached.append(name) if bad(g) else None)

        def hook(module, args, output):
            ran.append(name)
            outputs[name] = output

        return pre_hook, hook

    leaves = [(n, m) for n, m in model.named_modules() if len(list(m.children())) == 0]
    for name, module in leaves:
        pre_hook, hook = watch(name)
        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(hook))
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    for name in ran:
        if bad(outputs[name]):
            return ("forward", name)
    torch.autograd.grad(out, x, upstream)
    # the tensor hook on a module's input fires with the gradient that module sends back
    return ("backward", reached[0]) if reached else None


def wrong_gradients(fn: type[torch.autograd.Function],
                    inputs: tuple[torch.Tensor, ...]) -> list[int]:
    base = [t.detach() for t in inputs]
    wrong = []
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        out_shape = fn.apply(*base).shape
        rows = []
        ok = True
        for k in range(max(1, int(torch.Size(out_shape).numel()))):
            v = base[i].clone().requires_grad_()
            out = fn.apply(*base[:i], v, *base[i + 1:])
            seed = torch.zeros(out.numel(), dtype=out.dtype)
            seed[k] = 1.0
            try:
                (g,) = torch.autograd.grad(out, v, seed.reshape(out.shape), allow_unused=True)
            except RuntimeError:
                ok = False
                break
            rows.append(torch.zeros(v.numel(), dtype=v.dtype) if g is None else g.reshape(-1))
        if ok:
            analytical = torch.stack(rows)
            numerical = numerical_jacobian(
                lambda u, i=i: fn.apply(*base[:i], u, *base[i + 1:]), base[i], 1e-6)
            ok = torch.allclose(analytical, numerical, rtol=1e-3, atol=1e-5)
        if not ok:
            wrong.append(i)
    return wrong


def mixes_samples(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  pred: torch.Tensor, target: torch.Tensor) -> bool:
    n = pred.shape[0]
    if n == 1:
        return False
    values = [loss_fn(pred[i:i + 1].detach(), target[i:i + 1]).item() for i in range(n)]
    whole = loss_fn(pred.detach(), target).item()
    return abs(whole - sum(values) / n) > 1e-9 * max(1.0, abs(whole))
