"""An alternative correct ddp_by_hand: detached parameters and buffers broadcast, one flat all_reduce
per dtype in average_gradients, torch's own flatten helpers, sets of missing gradients, and a
class-based no_sync context manager."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    for t in [*module.parameters(), *module.buffers()]:  # non-persistent buffers too
        dist.broadcast(t.detach(), src=src)  # detached, sharing the storage


def average_gradients(module: nn.Module) -> None:
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in module.parameters():
        if p.grad is not None:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.mul_(1.0 / dist.get_world_size())
        for g, reduced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            g.copy_(reduced)


def assign_buckets(params: Sequence[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    if not bucket_bytes >= 1:
        raise ValueError("bucket_bytes must be >= 1")
    closed, current, filled = [], {}, {}
    for i, p in enumerate(params):
        if p.requires_grad:
            key = str(p.dtype) + str(p.device)
            current.setdefault(key, []).append(i)
            filled[key] = filled.get(key, 0) + p.nelement() * p.itemsize
            if filled[key] >= bucket_bytes:
                closed.append(current.pop(key))
                filled[key] = 0
    everything = closed + list(current.values())
    return sorted(everything, key=min)[::-1]


class BucketedGradSync:
    def __init__(self, params: Sequence[nn.Parameter], buckets: Sequence[Sequence[int]]) -> None:
        self.params = list(params)
        self.buckets = [tuple(b) for b in buckets]
        self.missing = [set(b) for b in self.buckets]
        self.pending: list[tuple[tuple[int, ...], torch.Tensor, object]] = []
        self.where = {i: k for k, b in enumerate(self.buckets) for i in b}
        for i in self.where:
            self.params[i].register_post_accumulate_grad_hook(self._make_hook(i))

    def _make_hook(self, i: int):
        def hook(param: torch.Tensor) -> None:
            self._arrived(i)
        return hook

    def _arrived(self, i: int) -> None:
        k = self.where[i]
        self.missing[k].discard(i)
        if not self.missing[k]:
            self.missing[k] = set(self.buckets[k])
            grads = [self.params[j].grad for j in self.buckets[k]]
            flat = _flatten_dense_tensors(grads)
            self.pending.append((self.buckets[k], flat, dist.all_reduce(flat, async_op=True)))

    def wait(self) -> None:
        pending, self.pending = self.pending, []
        for bucket, flat, work in pending:
            work.wait()
            grads = [self.params[j].grad for j in bucket]
            for g, reduced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
                g.copy_(reduced / dist.get_world_size())


class _Paused:
    def __init__(self, owner: NoSyncGradSync) -> None:
        self.owner = owner

    def __enter__(self) -> None:
        self.owner.paused += 1

    def __exit__(self, *exc: object) -> bool:
        self.owner.paused -= 1
        return False


class NoSyncGradSync(BucketedGradSync):
    paused = 0

    def no_sync(self) -> _Paused:
        return _Paused(self)

    def _arrived(self, i: int) -> None:
        if not self.paused:
            super()._arrived(i)
