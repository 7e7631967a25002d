"""An alternative correct ddp_by_hand: broadcast through .data, ReduceOp.AVG, a bucket plan
built from sorted (dtype, index) runs, persistent flat buffers per bucket (as DDP keeps),
readiness flags per parameter, and a nesting depth for no_sync."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    tensors = [p.data for p in module.parameters()] + [b.data for b in module.buffers()]
    works = [dist.broadcast(t, src, async_op=True) for t in tensors]
    for w in works:
        w.wait()


def average_gradients(module: nn.Module) -> None:
    for p in module.parameters():
        if p.grad is None:
            continue
        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)


def assign_buckets(params: Sequence[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes={bucket_bytes}")
    out: list[list[int]] = []
    keys = []
    for p in params:
        if p.requires_grad and (p.dtype, p.device) not in keys:
            keys.append((p.dtype, p.device))
    for key in keys:
        run: list[int] = []
        size = 0
        for i, p in enumerate(params):
            if not p.requires_grad or (p.dtype, p.device) != key:
                continue
            run.append(i)
            size += p.numel() * p.element_size()
            if size >= bucket_bytes:
                out.append(run)
                run, size = [], 0
        if run:
            out.append(run)
    out.sort(key=lambda b: -b[0])
    return out


class BucketedGradSync:
    def __init__(self, params: Sequence[nn.Parameter], buckets: Sequence[Sequence[int]]) -> None:
        self.params = list(params)
        self.buckets = [list(b) for b in buckets]
        self.buffers = [torch.empty(sum(self.params[i].numel() for i in b),
                                    dtype=self.params[b[0]].dtype) if b else torch.empty(0)
                        for b in self.buckets]
        self.ready = [dict.fromkeys(b, False) for b in self.buckets]
        self.works: list[tuple[int, object]] = []
        for k, bucket in enumerate(self.buckets):
            for i in bucket:
                self.params[i].register_post_accumulate_grad_hook(
                    lambda p, k=k, i=i: self._on_grad(k, i))

    def _on_grad(self, k: int, i: int) -> None:
        self.ready[k][i] = True
        if all(self.ready[k].values()):
            for j in self.ready[k]:
                self.ready[k][j] = False
            start = 0
            for j in self.buckets[k]:
                g = self.params[j].grad
                self.buffers[k][start:start + g.numel()].copy_(g.flatten())
                start += g.numel()
            self.works.append((k, dist.all_reduce(self.buffers[k], async_op=True)))

    def wait(self) -> None:
        while self.works:
            k, work = self.works.pop(0)
            work.wait()
            start = 0
            for j in self.buckets[k]:
                g = self.params[j].grad
                n = g.numel()
                g.copy_(self.buffers[k].narrow(0, start, n).reshape(g.shape))
                start += n
                g.div_(dist.get_world_size())


class NoSyncGradSync(BucketedGradSync):
    def __init__(self, params: Sequence[nn.Parameter], buckets: Sequence[Sequence[int]]) -> None:
        self.depth = 0
        super().__init__(params, buckets)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def _on_grad(self, k: int, i: int) -> None:
        if self.depth == 0:
            super()._on_grad(k, i)
