"""Reference solution for kata 09 — custom_function."""

from __future__ import annotations

import torch
from torch.autograd import Function


class StraightThroughRound(Function):
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class OutputSavingSigmoid(Function):
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


class LogSumExp(Function):
    @staticmethod
    def forward(x: torch.Tensor, dim: int) -> torch.Tensor:
        m = x.amax(dim, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        return (x - m).exp().sum(dim).log() + m.squeeze(dim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, dim = inputs
        ctx.dim = dim
        ctx.save_for_backward(x, output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, out = ctx.saved_tensors
        softmax = (x - out.unsqueeze(ctx.dim)).exp()
        return grad.unsqueeze(ctx.dim) * softmax, None


class MatMul(Function):
    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        grad_a = grad @ b.mT if ctx.needs_input_grad[0] else None
        grad_b = a.mT @ grad if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class MaxWithOneHot(Function):
    @staticmethod
    def forward(x: torch.Tensor, dim: int):
        values, index = x.max(dim)
        onehot = torch.zeros_like(x).scatter_(dim, index.unsqueeze(dim), 1.0)
        return values, onehot

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, dim = inputs
        _, onehot = output
        ctx.dim = dim
        ctx.mark_non_differentiable(onehot)
        ctx.save_for_backward(onehot)

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, grad_onehot: torch.Tensor):
        (onehot,) = ctx.saved_tensors
        return grad_values.unsqueeze(ctx.dim) * onehot, None


class Softplus(Function):
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)
