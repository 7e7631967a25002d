"""An alternative correct checkpointing: sizes listed by lambdas, a key counter per store,
Tensor.backward in the recompute, a recursive chain of segments."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def count_saved(
    fn: Callable[..., torch.Tensor], *inputs: torch.Tensor
) -> tuple[torch.Tensor, int, int]:
    sizes: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: sizes.append(t.nelement() * t.itemsize) or t, lambda t: t
    ):
        out = fn(*inputs)
    return out, len(sizes), sum(sizes)


class SavedTensorStore(torch.autograd.graph.saved_tensors_hooks):
    def __init__(self) -> None:
        self.store: dict[int, torch.Tensor] = {}
        self.unpacked = 0
        self._next = 100
        super().__init__(self.pack, self.unpack)

    def pack(self, t: torch.Tensor) -> int:
        key, self._next = self._next, self._next + 1
        self.store[key] = t
        return key

    def unpack(self, key: int) -> torch.Tensor:
        self.unpacked += 1
        return self.store[key]


class Checkpoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        ctx.run_fn = run_fn
        ctx.rng_state = torch.get_rng_state()
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return run_fn(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(ctx.rng_state)
            with torch.enable_grad():
                out = ctx.run_fn(*inputs)
        out.backward(grad_output)
        return (None, *(t.grad for t in inputs))


def checkpoint_sequential(blocks: Sequence[nn.Module], x: torch.Tensor, segments: int) -> torch.Tensor:
    blocks = list(blocks)
    size = len(blocks) // segments

    def chain(chunk):
        return (lambda h: chain(chunk[1:])(chunk[0](h))) if chunk else (lambda h: h)

    for i in range(segments - 1):
        x = Checkpoint.apply(chain(blocks[i * size:(i + 1) * size]), x)
    return chain(blocks[(segments - 1) * size:])(x)
