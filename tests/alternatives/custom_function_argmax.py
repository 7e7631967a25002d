"""Alternative correct answers for custom_function: the reference, with the functions below in
place of its own (test material: each must pass `kata check custom_function --file` on every seed)."""

from __future__ import annotations

import torch
from torch.autograd import Function

from checker.mistakes import _solution_of

_reference = _solution_of('custom_function')
OutputSavingSigmoid = _reference.OutputSavingSigmoid
LogSumExp = _reference.LogSumExp
MatMul = _reference.MatMul


class StraightThroughRound(Function):
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clone()


class MaxWithOneHot(Function):
    @staticmethod
    def forward(x: torch.Tensor, dim: int):
        index = x.argmax(dim, keepdim=True)
        onehot = torch.zeros_like(x).scatter(dim, index, 1.0)
        return x.gather(dim, index).squeeze(dim), onehot

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
        return grad * torch.special.expit(x)
