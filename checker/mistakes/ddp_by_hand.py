"""Known mistakes for the ddp_by_hand kata."""

from __future__ import annotations

import contextlib
import itertools

import torch
import torch.distributed as dist
from torch import nn

from checker.mistakes import mistake

# ----------------------------------------------------------------------------- broadcast_parameters


@mistake("broadcast_parameters", "The source was taken to be rank 0 always: `src` was ignored.")
def always_from_rank_zero(module, src=0):
    with torch.no_grad():
        for t in itertools.chain(module.parameters(), module.buffers()):
            dist.broadcast(t, 0)


@mistake("broadcast_parameters", "Only parameters were broadcast: buffers (running statistics, counters) stayed each rank's own.")
def parameters_only(module, src=0):
    with torch.no_grad():
        for p in module.parameters():
            dist.broadcast(p, src)


@mistake("broadcast_parameters", "Only trainable parameters were broadcast: frozen parameters and buffers are state too.")
def trainable_only(module, src=0):
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                dist.broadcast(p, src)


@mistake("broadcast_parameters", "all_reduce and divide: every rank gets the mean of all ranks' values, not rank src's.")
def averaged_instead(module, src=0):
    with torch.no_grad():
        for t in itertools.chain(module.parameters(), module.buffers()):
            if t.is_floating_point():
                dist.all_reduce(t)
                t /= dist.get_world_size()
            else:
                dist.broadcast(t, src)


@mistake("broadcast_parameters", "The broadcast went into a copy (detach().clone()) that was then dropped: the module never changed.")
def broadcast_a_copy(module, src=0):
    for t in itertools.chain(module.parameters(), module.buffers()):
        dist.broadcast(t.detach().clone(), src)


@mistake("broadcast_parameters", "New Parameters were put into the module: an optimizer built before still holds the old tensors.")
def rebinds_parameters(module, src=0):
    for name, p in list(module.named_parameters()):
        owner, _, attr = name.rpartition(".")
        fresh = p.detach().clone()
        dist.broadcast(fresh, src)
        setattr(module.get_submodule(owner), attr, nn.Parameter(fresh, requires_grad=p.requires_grad))
    with torch.no_grad():
        for b in module.buffers():
            dist.broadcast(b, src)


@mistake("broadcast_parameters", "Only rank src called broadcast (it is the one sending): the other ranks never received.", named=False)
def only_the_source_calls(module, src=0):
    if dist.get_rank() == src:
        with torch.no_grad():
            for t in itertools.chain(module.parameters(), module.buffers()):
                dist.broadcast(t, src)


# ----------------------------------------------------------------------------- average_gradients


@mistake("average_gradients", "all_reduce sums: without the division by the world size the gradients are world times too large.")
def sum_not_mean(module):
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)


@mistake("average_gradients", "The world size was written in as 2: with three ranks the mean is wrong.")
def divided_by_two(module):
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= 2


@mistake("average_gradients", "The parameters were averaged instead of their gradients: each rank kept its own gradient.")
def averaged_parameters(module):
    with torch.no_grad():
        for p in module.parameters():
            dist.all_reduce(p)
            p /= dist.get_world_size()


@mistake("average_gradients", "The mean was computed in a copy of each gradient that was never written back.")
def reduced_a_copy(module):
    for p in module.parameters():
        if p.grad is not None:
            g = p.grad.clone()
            dist.all_reduce(g)
            g /= dist.get_world_size()


@mistake("average_gradients", "Only rank 0 divided by the world size: the ranks' gradients, and then their models, differ.")
def only_rank_zero_divides(module):
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            if dist.get_rank() == 0:
                p.grad /= dist.get_world_size()


@mistake("average_gradients", "A missing gradient was filled with zeros: a frozen parameter then has a gradient (and an optimizer moves it).")
def zeros_for_missing(module):
    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= dist.get_world_size()


@mistake("average_gradients", "Only rank 0 reduced (it gathers the result): every other rank waits in an all_reduce that never completes.")
def only_rank_zero_reduces(module):
    if dist.get_rank() == 0:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()


# ----------------------------------------------------------------------------- assign_buckets


def _buckets(params, bucket_bytes, *, full=lambda size, cap: size >= cap, by_dtype=True,
             skip_frozen=True, size=lambda p: p.numel() * p.element_size(), order=None,
             leftovers=True, check=True, sort=True):
    if check and bucket_bytes < 1:
        raise ValueError("bucket_bytes must be at least 1")
    filling, done = {}, []
    for i in order if order is not None else range(len(params)):
        p = params[i]
        if skip_frozen and not p.requires_grad:
            continue
        key = p.dtype if by_dtype else None
        indices, total = filling.pop(key, ([], 0))
        indices.append(i)
        total += size(p)
        if full(total, bucket_bytes):
            done.append(sorted(indices))
        else:
            filling[key] = (indices, total)
    if leftovers:
        done += [sorted(indices) for indices, _ in filling.values()]
    return sorted(done, key=min, reverse=True) if sort else done[::-1]


@mistake("assign_buckets", "A bucket was full only once it EXCEEDED bucket_bytes: one that reaches it exactly is full too.")
def strictly_greater(params, bucket_bytes):
    return _buckets(params, bucket_bytes, full=lambda size, cap: size > cap)


@mistake("assign_buckets", "All dtypes went into one bucket: a bucket is flattened into a single tensor, which has one dtype.")
def dtypes_mixed(params, bucket_bytes):
    return _buckets(params, bucket_bytes, by_dtype=False)


@mistake("assign_buckets", "Frozen parameters were bucketed: they get no gradient, so their bucket would never be complete.")
def frozen_included(params, bucket_bytes):
    return _buckets(params, bucket_bytes, skip_frozen=False)


@mistake("assign_buckets", "Buckets were returned in forward order: backward produces the last parameters' gradients first.")
def forward_order(params, bucket_bytes):
    return _buckets(params, bucket_bytes)[::-1]


@mistake("assign_buckets", "Sizes were counted in elements, not bytes (numel without element_size).")
def elements_not_bytes(params, bucket_bytes):
    return _buckets(params, bucket_bytes, size=lambda p: p.numel())


@mistake("assign_buckets", "The buckets still filling at the end were dropped: their parameters are in no bucket.")
def dropped_the_last_buckets(params, bucket_bytes):
    return _buckets(params, bucket_bytes, leftovers=False)


@mistake("assign_buckets", "The parameters were walked from last to first: the bucket boundaries fall elsewhere than DDP's.")
def walked_backward(params, bucket_bytes):
    return _buckets(params, bucket_bytes, order=range(len(params) - 1, -1, -1))


@mistake("assign_buckets", "Finished buckets and then the leftovers were reversed as they came, unsorted: order by smallest index.")
def reversed_unsorted(params, bucket_bytes):
    return _buckets(params, bucket_bytes, sort=False)


@mistake("assign_buckets", "A bucket_bytes below 1 was accepted: no bucket can then hold anything, raise ValueError.")
def accepts_zero(params, bucket_bytes):
    return _buckets(params, max(bucket_bytes, 1), check=False)


# ----------------------------------------------------------------------------- BucketedGradSync


class _Sync:
    """A BucketedGradSync with hooks on every bucketed parameter, and the parts to vary."""

    def __init__(self, params, buckets):
        self.params = list(params)
        self.buckets = [list(b) for b in buckets]
        self.waiting = [len(b) for b in self.buckets]
        self.launched = []
        for b, bucket in enumerate(self.buckets):
            for i in bucket:
                self.params[i].register_post_accumulate_grad_hook(lambda p, b=b: self._ready(b, p))

    def _flat(self, b):
        return torch.cat([self.params[i].grad.reshape(-1) for i in self.buckets[b]])

    def _ready(self, b, param):
        self.waiting[b] -= 1
        if self.waiting[b] == 0:
            self.waiting[b] = len(self.buckets[b])
            flat = self._flat(b)
            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))

    def _write_back(self, b, flat):
        offset = 0
        for i in self.buckets[b]:
            grad = self.params[i].grad
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def wait(self):
        for b, flat, work in self.launched:
            work.wait()
            flat /= dist.get_world_size()
            self._write_back(b, flat)
        self.launched.clear()


@mistake("BucketedGradSync", "One all_reduce per parameter, as each gradient arrives: no bucketing at all.")
class PerParameter(_Sync):
    def _ready(self, b, param):
        self.launched.append((param, param.grad, dist.all_reduce(param.grad, async_op=True)))

    def wait(self):
        for _, grad, work in self.launched:
            work.wait()
            grad /= dist.get_world_size()
        self.launched.clear()


@mistake("BucketedGradSync", "Every bucket was reduced in wait(), after backward: nothing overlaps the backward pass.")
class AllInWait(_Sync):
    def _ready(self, b, param):
        pass

    def wait(self):
        for b in range(len(self.buckets)):
            flat = self._flat(b)
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            self._write_back(b, flat)


@mistake("BucketedGradSync", "The bucket's all_reduce blocked in the hook (async_op=False): backward stalls until it is done.")
class BlockingInHook(_Sync):
    def _ready(self, b, param):
        self.waiting[b] -= 1
        if self.waiting[b] == 0:
            self.waiting[b] = len(self.buckets[b])
            flat = self._flat(b)
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            self._write_back(b, flat)

    def wait(self):
        pass


@mistake("BucketedGradSync", "wait() forgot the division by the world size: the gradients are summed over ranks.")
class NoDivision(_Sync):
    def wait(self):
        for b, flat, work in self.launched:
            work.wait()
            self._write_back(b, flat)
        self.launched.clear()


@mistake("BucketedGradSync", "The count of ready gradients was not reset after a bucket went out: no bucket goes out in the next step.")
class CounterNotReset(_Sync):
    def _ready(self, b, param):
        self.waiting[b] -= 1
        if self.waiting[b] == 0:
            flat = self._flat(b)
            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))


@mistake("BucketedGradSync", "torch.cat was taken for views of the gradients: the reduced flat tensor was never copied back.")
class NotCopiedBack(_Sync):
    def wait(self):
        for _, flat, work in self.launched:
            work.wait()
            flat /= dist.get_world_size()
        self.launched.clear()


@mistake("BucketedGradSync", "The slices were copied back without advancing the offset: every gradient got the bucket's first elements.")
class OffsetNeverAdvanced(_Sync):
    def _write_back(self, b, flat):
        for i in self.buckets[b]:
            grad = self.params[i].grad
            grad.copy_(flat[:grad.numel()].view_as(grad))


@mistake("BucketedGradSync", "The list of started buckets was never cleared: a later wait() divides and writes old buckets again.")
class LaunchedNotCleared(_Sync):
    def wait(self):
        for b, flat, work in self.launched:
            work.wait()
            flat /= dist.get_world_size()
            self._write_back(b, flat)


@mistake("BucketedGradSync", "Every bucket was flattened to float64: a float32 bucket then sends twice its bytes, in the wrong dtype.")
class UpcastBuckets(_Sync):
    def _flat(self, b):
        return super()._flat(b).double()


@mistake("BucketedGradSync", "A bucket went out one gradient early (the count checked against 1): its last gradient is not there yet.")
class OneEarly(_Sync):
    def _ready(self, b, param):
        self.waiting[b] -= 1
        if self.waiting[b] <= 1 and not any(entry[0] == b for entry in self.launched):
            present = [self.params[i].grad for i in self.buckets[b]]
            flat = torch.cat([(g if g is not None else torch.zeros_like(self.params[i])).reshape(-1)
                              for i, g in zip(self.buckets[b], present, strict=True)])
            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))
        if self.waiting[b] == 0:
            self.waiting[b] = len(self.buckets[b])

    def wait(self):
        super().wait()


# ----------------------------------------------------------------------------- NoSyncGradSync


class _NoSync(_Sync):
    def __init__(self, params, buckets):
        super().__init__(params, buckets)
        self.syncing = True

    def _ready(self, b, param):
        if self.syncing:
            super()._ready(b, param)


@mistake("NoSyncGradSync", "no_sync() changed nothing: every micro-batch's backward still sent every bucket.")
class NoSyncDoesNothing(_NoSync):
    @contextlib.contextmanager
    def no_sync(self):
        yield


@mistake("NoSyncGradSync", "no_sync() restored syncing after its block without try/finally: an exception inside leaves it off for good.")
class NotRestoredOnException(_NoSync):
    @contextlib.contextmanager
    def no_sync(self):
        self.syncing = False
        yield
        self.syncing = True


@mistake("NoSyncGradSync", "no_sync() caught the exception raised in its block: errors inside it vanish.")
class SwallowsExceptions(_NoSync):
    @contextlib.contextmanager
    def no_sync(self):
        self.syncing = False
        try:
            yield
        except Exception:
            pass
        finally:
            self.syncing = True


@mistake("NoSyncGradSync", "Gradients were counted toward their bucket inside no_sync too: the counts are off in the backward that syncs.")
class CountsInsideNoSync(_NoSync):
    @contextlib.contextmanager
    def no_sync(self):
        self.syncing = False
        try:
            yield
        finally:
            self.syncing = True

    def _ready(self, b, param):
        self.waiting[b] -= 1
        if self.syncing and self.waiting[b] <= 0:
            self.waiting[b] = len(self.buckets[b])
            flat = self._flat(b)
            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))


@mistake("NoSyncGradSync", "no_sync() reduced everything as its block closed: the accumulated gradients went out once per micro-batch anyway.")
class ReducesOnExit(_NoSync):
    @contextlib.contextmanager
    def no_sync(self):
        self.syncing = False
        try:
            yield
        finally:
            self.syncing = True
        for b in range(len(self.buckets)):
            flat = self._flat(b)
            self.launched.append((b, flat, dist.all_reduce(flat, async_op=True)))
        self.wait()
