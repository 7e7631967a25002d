"""A correct answer to kata 12 (modules) in other idioms than the reference: register_parameter,
F.linear, prefixes compared component by component, a Bernoulli mask, fills written as
in-place arithmetic, running statistics by lerp_ with the unbiased variance taken directly."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Block(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.register_parameter(
            "weight", nn.Parameter(torch.randn(out_features, in_features) * in_features**-0.5))
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_features)))
        self.register_buffer("scale", torch.ones(out_features))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.register_buffer("offsets", torch.linspace(-1, 1, out_features), persistent=False)
        self.add_module("norm", nn.LayerNorm(out_features))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.calls.add_(1)
        return torch.addcmul(self.offsets, self.norm(F.linear(x, self.weight, self.bias)),
                             self.scale)


def freeze_(module: nn.Module, prefixes: list[str]) -> tuple[int, int]:
    wanted = [pre.split(".") for pre in prefixes]
    for name, p in module.named_parameters(remove_duplicate=False):
        parts = name.split(".")
        if any(parts[:len(w)] == w for w in wanted):
            p.requires_grad = False
    counts = [0, 0]
    for p in module.parameters():
        counts[not p.requires_grad] += p.numel()
    return counts[0], counts[1]


class Dropout(nn.Module):
    def __init__(self, p: float = 0.5):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        keep = torch.bernoulli(torch.full_like(x, 1 - self.p))
        return x * keep if self.p == 1 else x * keep / (1 - self.p)


def _fans(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError("need a tensor with 2 or more dims")
    receptive = tensor[0][0].numel()
    return tensor.size(1) * receptive, tensor.size(0) * receptive


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5 / 3, "relu": 2**0.5,
             "leaky_relu": (2 / (1 + a * a)) ** 0.5}
    fan_in, fan_out = _fans(tensor)
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    with torch.no_grad():
        tensor.normal_()
        tensor.mul_(gains[nonlinearity] / math.sqrt(fan))
    return tensor


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    bound = gain * (6 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        tensor.uniform_(0, 1).mul_(2 * bound).sub_(bound)
    return tensor


class BatchNorm1d(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0))

    def forward(self, x: Tensor) -> Tensor:
        moved = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, everything else)
        if self.training:
            mean = moved.mean(1)
            var = moved.var(1, unbiased=False)
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, m)
                self.running_var.lerp_(moved.var(1, unbiased=True), m)
        else:
            mean, var = self.running_mean, self.running_var
        shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (x - mean.reshape(shape)) * scale.reshape(shape) + self.bias.reshape(shape)
