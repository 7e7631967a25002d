# A wrong answer to ddp_by_hand.broadcast_parameters: Only rank src called broadcast (it is the one sending): the other ranks never received.
# exercise: broadcast_parameters
# It fails on every seed (tests/test_katas.py), but its failure cannot be told from
# another known mistake's by behaviour, so it is not shipped for the diagnosis.
"""Reference solution for kata 27 — ddp_by_hand."""

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


# Known mistake only_the_source_calls: Only rank src called broadcast (it is the one sending): the other ranks never received.
import types as _kata_types  # noqa: E402

_kata_reference = _kata_types.SimpleNamespace(**dict(globals()))
_kata_namespace = {
    '__name__': '_known_ddp_by_hand',
    'mistake': lambda exercise, misconception: (lambda func: func),
    '_solution_of': lambda name: _kata_reference,
}
exec(compile('"""Known mistakes for the ddp_by_hand kata."""\n\nfrom __future__ import annotations\n\nimport contextlib\nimport itertools\n\nimport torch\nimport torch.distributed as dist\nfrom torch import nn\n\n\n\n# ----------------------------------------------------------------------------- broadcast_parameters\n\n\n@mistake("broadcast_parameters", "The source was taken to be rank 0 always: `src` was ignored.")\ndef always_from_rank_zero(module, src=0):\n    with torch.no_grad():\n        for t in itertools.chain(module.parameters(), module.buffers()):\n            dist.broadcast(t, 0)\n\n\n@mistake("broadcast_parameters", "Only parameters were broadcast: buffers (running statistics, counters) stayed each rank\'s own.")\ndef parameters_only(module, src=0):\n    with torch.no_grad():\n        for p in module.parameters():\n            dist.broadcast(p, src)\n\n\n@mistake("broadcast_parameters", "Only trainable parameters were broadcast: frozen parameters and buffers are state too.")\ndef trainable_only(module, src=0):\n    with torch.no_grad():\n        for p in module.parameters():\n            if p.requires_grad:\n                dist.broadcast(p, src)\n\n\n@mistake("broadcast_parameters", "all_reduce and divide: every rank gets the mean of all ranks\' values, not rank src\'s.")\ndef averaged_instead(module, src=0):\n    with torch.no_grad():\n        for t in itertools.chain(module.parameters(), module.buffers()):\n            if t.is_floating_point():\n                dist.all_reduce(t)\n                t /= dist.get_world_size()\n            else:\n                dist.broadcast(t, src)\n\n\n@mistake("broadcast_parameters", "The broadcast went into a copy (detach().clone()) that was then dropped: the module never changed.")\ndef broadcast_a_copy(module, src=0):\n    for t in itertools.chain(module.parameters(), module.buffers()):\n        dist.broadcast(t.detach().clone(), src)\n\n\n@mistake("broadcast_parameters", "New Parameters were put into the module: an optimizer built before still holds the old tensors.")\ndef rebinds_parameters(module, src=0):\n    for name, p in list(module.named_parameters()):\n        owner, _, attr = name.rpartition(".")\n        fresh = p.detach().clone()\n        dist.broadcast(fresh, src)\n        setattr(module.get_submodule(owner), attr, nn.Parameter(fresh, requires_grad=p.requires_grad))\n    with torch.no_grad():\n        for b in module.buffers():\n            dist.broadcast(b, src)\n\n\n@mistake("broadcast_parameters", "Only rank src called broadcast (it is the one sending): the other ranks never received.")\ndef only_the_source_calls(module, src=0):\n    if dist.get_rank() == src:\n        with torch.no_grad():\n            for t in itertools.chain(module.parameters(), module.buffers()):\n                dist.broadcast(t, src)\n\n\n# ----------------------------------------------------------------------------- average_gradients\n\n\n@mistake("average_gradients", "all_reduce sums: without the division by the world size the gradients are world times too large.")\ndef sum_not_mean(module):\n    for p in module.parameters():\n        if p.grad is not None:\n            dist.all_reduce(p.grad)\n\n\n@mistake("average_gradients", "The world size was written in as 2: with three ranks the mean is wrong.")\ndef divided_by_two(module):\n    for p in module.parameters():\n        if p.grad is not None:\n            dist.all_reduce(p.grad)\n            p.grad /= 2\n\n\n@mistake("average_gradients", "The parameters were averaged instead of their gradients: each rank kept its own gradient.")\ndef averaged_parameters(module):\n    with torch.no_grad():\n        for p in module.parameters():\n            dist.all_reduce(p)\n            p /= dist.get_world_size()\n\n\n@mistake("average_gradients", "The mean was computed in a copy of each gradient that was never written back.")\ndef reduced_a_copy(module):\n    for p in module.parameters():\n        if p.grad is not None:\n            g = p.grad.clone()\n            dist.all_reduce(g)\n            g /= dist.get_world_size()\n\n\n@mistake("average_gradients", "Only rank 0 divided by the world size: the ranks\' gradients, and then their models, differ.")\ndef only_rank_zero_divides(module):\n    for p in module.parameters():\n        if p.grad is not None:\n            dist.all_reduce(p.grad)\n            if dist.get_rank() == 0:\n                p.grad /= dist.get_world_size()\n\n\n@mistake("average_gradients", "A missing gradient was filled with zeros: a frozen parameter then has a gradient (and an optimizer moves it).")\ndef zeros_for_missing(module):\n    for p in module.parameters():\n        if p.grad is None:\n            p.grad = torch.zeros_like(p)\n        dist.all_reduce(p.grad)\n        p.grad /= dist.get_world_size()\n\n\n@mistake("average_gradients", "Only rank 0 reduced (it gathers the result): every other rank waits in an all_reduce that never completes.")\ndef only_rank_zero_reduces(module):\n    if dist.get_rank() == 0:\n        for p in module.parameters():\n            if p.grad is not None:\n                dist.all_reduce(p.grad)\n                p.grad /= dist.get_world_size()\n\n\n# ----------------------------------------------------------------------------- assign_buckets\n\n\ndef _buckets(params, bucket_bytes, *, full=lambda size, cap: size >= cap, by_dtype=True,\n             skip_frozen=True, size=lambda p: p.numel() * p.element_size(), order=None,\n             leftovers=True, check=True, sort=True):\n    if check and bucket_bytes < 1:\n        raise ValueError("bucket_bytes must be at least 1")\n    filling, done = {}, []\n    for i in order if order is not None else range(len(params)):\n        p = params[i]\n        if skip_frozen and not p.requires_grad:\n            continue\n        key = p.dtype if by_dtype else None\n        indices, total = filling.pop(key, ([], 0))\n        indices.append(i)\n        total += size(p)\n        if full(total, bucket_bytes):\n            done.append(sorted(indices))\n        else:\n            filling[key] = (indices, total)\n    if leftovers:\n        done += [sorted(indices) for indices, _ in filling.values()]\n    return sorted(done, key=min, reverse=True) if sort else done[::-1]\n\n\n@mistake("assign_buckets", "A bucket was full only once it EXCEEDED bucket_bytes: one that reaches it exactly is full too.")\ndef strictly_greater(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, full=lambda size, cap: size > cap)\n\n\n@mistake("assign_buckets", "All dtypes went into one bucket: a bucket is flattened into a single tensor, which has one dtype.")\ndef dtypes_mixed(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, by_dtype=False)\n\n\n@mistake("assign_buckets", "Frozen parameters were bucketed: they get no gradient, so their bucket would never be complete.")\ndef frozen_included(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, skip_frozen=False)\n\n\n@mistake("assign_buckets", "Buckets were returned in forward order: backward produces the last parameters\' gradients first.")\ndef forward_order(params, bucket_bytes):\n    return _buckets(params, bucket_bytes)[::-1]\n\n\n@mistake("assign_buckets", "Sizes were counted in elements, not bytes (numel without element_size).")\ndef elements_not_bytes(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, size=lambda p: p.numel())\n\n\n@mistake("assign_buckets", "The buckets still filling at the end were dropped: their parameters are in no bucket.")\ndef dropped_the_last_buckets(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, leftovers=False)\n\n\n@mistake("assign_buckets", "The parameters were walked from last to first: the bucket boundaries fall elsewhere than DDP\'s.")\ndef walked_backward(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, order=range(len(params) - 1, -1, -1))\n\n\n@mistake("assign_buckets", "Finished buckets and then the leftovers were reversed as they came, unsorted: order by smallest index.")\ndef reversed_unsorted(params, bucket_bytes):\n    return _buckets(params, bucket_bytes, sort=False)\n\n\n@mistake("assign_buckets", "A bucket_bytes below 1 was accepted: no bucket can then hold anything, raise ValueError.")\ndef accepts_zero(params, bucket_bytes):\n    return _buckets(params, max(bucket_bytes, 1), check=False)\n\n\n# ----------------------------------------------------------------------------- BucketedGradSync\n\n\nclass _Sync:\n    """A BucketedGradSync with hooks on every bucketed parameter, and the parts to vary."""\n\n    def __init__(self, params, buckets):\n        self.params = list(params)\n        self.buckets = [list(b) for b in buckets]\n        self.waiting = [len(b) for b in self.buckets]\n        self.launched = []\n        for b, bucket in enumerate(self.buckets):\n            for i in bucket:\n                self.params[i].register_post_accumulate_grad_hook(lambda p, b=b: self._ready(b, p))\n\n    def _flat(self, b):\n        return torch.cat([self.params[i].grad.reshape(-1) for i in self.buckets[b]])\n\n    def _ready(self, b, param):\n        self.waiting[b] -= 1\n        if self.waiting[b] == 0:\n            self.waiting[b] = len(self.buckets[b])\n            flat = self._flat(b)\n            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))\n\n    def _write_back(self, b, flat):\n        offset = 0\n        for i in self.buckets[b]:\n            grad = self.params[i].grad\n            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))\n            offset += grad.numel()\n\n    def wait(self):\n        for b, flat, work in self.launched:\n            work.wait()\n            flat /= dist.get_world_size()\n            self._write_back(b, flat)\n        self.launched.clear()\n\n\n@mistake("BucketedGradSync", "One all_reduce per parameter, as each gradient arrives: no bucketing at all.")\nclass PerParameter(_Sync):\n    def _ready(self, b, param):\n        self.launched.append((param, param.grad, dist.all_reduce(param.grad, async_op=True)))\n\n    def wait(self):\n        for _, grad, work in self.launched:\n            work.wait()\n            grad /= dist.get_world_size()\n        self.launched.clear()\n\n\n@mistake("BucketedGradSync", "Every bucket was reduced in wait(), after backward: nothing overlaps the backward pass.")\nclass AllInWait(_Sync):\n    def _ready(self, b, param):\n        pass\n\n    def wait(self):\n        for b in range(len(self.buckets)):\n            flat = self._flat(b)\n            dist.all_reduce(flat)\n            flat /= dist.get_world_size()\n            self._write_back(b, flat)\n\n\n@mistake("BucketedGradSync", "The bucket\'s all_reduce blocked in the hook (async_op=False): backward stalls until it is done.")\nclass BlockingInHook(_Sync):\n    def _ready(self, b, param):\n        self.waiting[b] -= 1\n        if self.waiting[b] == 0:\n            self.waiting[b] = len(self.buckets[b])\n            flat = self._flat(b)\n            dist.all_reduce(flat)\n            flat /= dist.get_world_size()\n            self._write_back(b, flat)\n\n    def wait(self):\n        pass\n\n\n@mistake("BucketedGradSync", "wait() forgot the division by the world size: the gradients are summed over ranks.")\nclass NoDivision(_Sync):\n    def wait(self):\n        for b, flat, work in self.launched:\n            work.wait()\n            self._write_back(b, flat)\n        self.launched.clear()\n\n\n@mistake("BucketedGradSync", "The count of ready gradients was not reset after a bucket went out: no bucket goes out in the next step.")\nclass CounterNotReset(_Sync):\n    def _ready(self, b, param):\n        self.waiting[b] -= 1\n        if self.waiting[b] == 0:\n            flat = self._flat(b)\n            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))\n\n\n@mistake("BucketedGradSync", "torch.cat was taken for views of the gradients: the reduced flat tensor was never copied back.")\nclass NotCopiedBack(_Sync):\n    def wait(self):\n        for _, flat, work in self.launched:\n            work.wait()\n            flat /= dist.get_world_size()\n        self.launched.clear()\n\n\n@mistake("BucketedGradSync", "The slices were copied back without advancing the offset: every gradient got the bucket\'s first elements.")\nclass OffsetNeverAdvanced(_Sync):\n    def _write_back(self, b, flat):\n        for i in self.buckets[b]:\n            grad = self.params[i].grad\n            grad.copy_(flat[:grad.numel()].view_as(grad))\n\n\n@mistake("BucketedGradSync", "The list of started buckets was never cleared: a later wait() divides and writes old buckets again.")\nclass LaunchedNotCleared(_Sync):\n    def wait(self):\n        for b, flat, work in self.launched:\n            work.wait()\n            flat /= dist.get_world_size()\n            self._write_back(b, flat)\n\n\n@mistake("BucketedGradSync", "Every bucket was flattened to float64: a float32 bucket then sends twice its bytes, in the wrong dtype.")\nclass UpcastBuckets(_Sync):\n    def _flat(self, b):\n        return super()._flat(b).double()\n\n\n@mistake("BucketedGradSync", "A bucket went out one gradient early (the count checked against 1): its last gradient is not there yet.")\nclass OneEarly(_Sync):\n    def _ready(self, b, param):\n        self.waiting[b] -= 1\n        if self.waiting[b] <= 1 and not any(entry[0] == b for entry in self.launched):\n            present = [self.params[i].grad for i in self.buckets[b]]\n            flat = torch.cat([(g if g is not None else torch.zeros_like(self.params[i])).reshape(-1)\n                              for i, g in zip(self.buckets[b], present, strict=True)])\n            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))\n        if self.waiting[b] == 0:\n            self.waiting[b] = len(self.buckets[b])\n\n    def wait(self):\n        super().wait()\n\n\n# ----------------------------------------------------------------------------- NoSyncGradSync\n\n\nclass _NoSync(_Sync):\n    def __init__(self, params, buckets):\n        super().__init__(params, buckets)\n        self.syncing = True\n\n    def _ready(self, b, param):\n        if self.syncing:\n            super()._ready(b, param)\n\n\n@mistake("NoSyncGradSync", "no_sync() changed nothing: every micro-batch\'s backward still sent every bucket.")\nclass NoSyncDoesNothing(_NoSync):\n    @contextlib.contextmanager\n    def no_sync(self):\n        yield\n\n\n@mistake("NoSyncGradSync", "no_sync() restored syncing after its block without try/finally: an exception inside leaves it off for good.")\nclass NotRestoredOnException(_NoSync):\n    @contextlib.contextmanager\n    def no_sync(self):\n        self.syncing = False\n        yield\n        self.syncing = True\n\n\n@mistake("NoSyncGradSync", "no_sync() caught the exception raised in its block: errors inside it vanish.")\nclass SwallowsExceptions(_NoSync):\n    @contextlib.contextmanager\n    def no_sync(self):\n        self.syncing = False\n        try:\n            yield\n        except Exception:\n            pass\n        finally:\n            self.syncing = True\n\n\n@mistake("NoSyncGradSync", "Gradients were counted toward their bucket inside no_sync too: the counts are off in the backward that syncs.")\nclass CountsInsideNoSync(_NoSync):\n    @contextlib.contextmanager\n    def no_sync(self):\n        self.syncing = False\n        try:\n            yield\n        finally:\n            self.syncing = True\n\n    def _ready(self, b, param):\n        self.waiting[b] -= 1\n        if self.syncing and self.waiting[b] <= 0:\n            self.waiting[b] = len(self.buckets[b])\n            flat = self._flat(b)\n            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))\n\n\n@mistake("NoSyncGradSync", "no_sync() reduced everything as its block closed: the accumulated gradients went out once per micro-batch anyway.")\nclass ReducesOnExit(_NoSync):\n    @contextlib.contextmanager\n    def no_sync(self):\n        self.syncing = False\n        try:\n            yield\n        finally:\n            self.syncing = True\n        for b in range(len(self.buckets)):\n            flat = self._flat(b)\n            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))\n        self.wait()\n', '<embedded>', 'exec'), _kata_namespace)
broadcast_parameters = _kata_namespace['only_the_source_calls']
