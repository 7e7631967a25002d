"""Reference solution for kata 28 — ddp_by_hand."""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    with torch.no_grad():
        for t in itertools.chain(module.parameters(), module.buffers()):
            dist.broadcast(t, src)


def average_gradients(module: nn.Module) -> None:
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def assign_buckets(params: Sequence[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    if bucket_bytes < 1:
        raise ValueError(f"bucket_bytes must be at least 1, got {bucket_bytes}")
    filling: dict[tuple, tuple[list[int], int]] = {}
    buckets: list[list[int]] = []
    for i, p in enumerate(params):
        if not p.requires_grad:
            continue
        key = (p.dtype, p.device)
        indices, size = filling.pop(key, ([], 0))
        indices.append(i)
        size += p.numel() * p.element_size()
        if size >= bucket_bytes:
            buckets.append(indices)
        else:
            filling[key] = (indices, size)
    buckets += [indices for indices, _ in filling.values()]
    buckets.sort(key=lambda b: b[0], reverse=True)
    return buckets


class BucketedGradSync:
    def __init__(self, params: Sequence[nn.Parameter], buckets: Sequence[Sequence[int]]) -> None:
        self.params = list(params)
        self.buckets = [list(b) for b in buckets]
        self.waiting = [len(b) for b in self.buckets]
        self.launched: list[tuple[int, torch.Tensor, dist.Work]] = []
        for b, bucket in enumerate(self.buckets):
            for i in bucket:
                self.params[i].register_post_accumulate_grad_hook(functools.partial(self._ready, b))

    def _ready(self, b: int, param: nn.Parameter) -> None:
        self.waiting[b] -= 1
        if self.waiting[b] == 0:
            self.waiting[b] = len(self.buckets[b])
            flat = torch.cat([self.params[i].grad.reshape(-1) for i in self.buckets[b]])
            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))

    def wait(self) -> None:
        world = dist.get_world_size()
        for b, flat, work in self.launched:
            work.wait()
            flat.div_(world)
            offset = 0
            for i in self.buckets[b]:
                grad = self.params[i].grad
                grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
                offset += grad.numel()
        self.launched.clear()


class NoSyncGradSync(BucketedGradSync):
    def __init__(self, params: Sequence[nn.Parameter], buckets: Sequence[Sequence[int]]) -> None:
        super().__init__(params, buckets)
        self.syncing = True

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        before, self.syncing = self.syncing, False
        try:
            yield
        finally:
            self.syncing = before

    def _ready(self, b: int, param: nn.Parameter) -> None:
        if self.syncing:
            super()._ready(b, param)
