"""Known mistakes for the kata checkpointing."""

from __future__ import annotations

import math

import torch
import torch.utils.checkpoint
from torch.autograd.graph import saved_tensors_hooks

from checker.mistakes import _solution_of, mistake

# ----------------------------------------------------------------------------- count_saved


def _count_with(fn, inputs, *, size, dedupe=False, at_unpack=False):
    seen, stats = set(), {"count": 0, "nbytes": 0}

    def tally(t):
        if dedupe:
            if id(t) in seen:
                return
            seen.add(id(t))
        stats["count"] += 1
        stats["nbytes"] += size(t)

    def pack(t):
        if not at_unpack:
            tally(t)
        return t

    def unpack(t):
        if at_unpack:
            tally(t)
        return t

    with saved_tensors_hooks(pack, unpack):
        out = fn(*inputs)
    return out, stats["count"], stats["nbytes"]


def _own_bytes(t):
    return t.numel() * t.element_size()


@mistake("count_saved", "Bytes were read off the storage: a view counts its whole base instead of its own elements.")
def storage_bytes(fn, *inputs):
    return _count_with(fn, inputs, size=lambda t: t.untyped_storage().nbytes())


@mistake("count_saved", "A tensor saved twice was counted once (deduplicated by id): every pack is a saved slot.")
def deduplicated(fn, *inputs):
    return _count_with(fn, inputs, size=_own_bytes, dedupe=True)


@mistake("count_saved", "Counted in the unpack hook, which only runs during backward: nothing is counted after the forward.")
def counted_at_unpack(fn, *inputs):
    return _count_with(fn, inputs, size=_own_bytes, at_unpack=True)


@mistake("count_saved", "The pack hook counted but returned nothing, so autograd had no tensor to give back in backward.")
def pack_returns_none(fn, *inputs):
    stats = {"count": 0, "nbytes": 0}

    def pack(t):
        stats["count"] += 1
        stats["nbytes"] += _own_bytes(t)

    with saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    return out, stats["count"], stats["nbytes"]


# ----------------------------------------------------------------------------- SavedTensorStore


class _Store(saved_tensors_hooks):
    def __init__(self):
        self.store = {}
        self.unpacked = 0
        super().__init__(self.pack, self.unpack)


@mistake("SavedTensorStore", "Keyed by id(t): a tensor saved twice gets a single entry (and ids are reused after a tensor dies).")
class KeyedById(_Store):
    def pack(self, t):
        self.store[id(t)] = t
        return id(t)

    def unpack(self, key):
        self.unpacked += 1
        return self.store[key]


@mistake("SavedTensorStore", "pack stored a copy (clone) of the tensor: the memory it was meant to manage is doubled.")
class ClonesOnPack(_Store):
    def pack(self, t):
        key = len(self.store)
        self.store[key] = t.clone()
        return key

    def unpack(self, key):
        self.unpacked += 1
        return self.store[key]


@mistake("SavedTensorStore", "unpack deleted the entry: a second backward (retain_graph=True) finds nothing under the key.")
class PopsOnUnpack(_Store):
    def pack(self, t):
        key = len(self.store) + self.unpacked
        self.store[key] = t
        return key

    def unpack(self, key):
        self.unpacked += 1
        return self.store.pop(key)


@mistake("SavedTensorStore", "pack returned the tensor itself: autograd keeps it alive and the store is only a second reference.")
class ReturnsTheTensor(_Store):
    def pack(self, t):
        self.store[len(self.store)] = t
        return t

    def unpack(self, t):
        self.unpacked += 1
        return t


@mistake("SavedTensorStore", "The dict was a class attribute (emptied in __init__): every store shares one, so each sees the others' tensors.")
class SharedClassDict(saved_tensors_hooks):
    store: dict = {}  # noqa: RUF012 — the mistake: one dict for the class, not one per store

    def __init__(self):
        self.store.clear()
        self.unpacked = 0
        super().__init__(self.pack, self.unpack)

    def pack(self, t):
        key = len(self.store)
        self.store[key] = t
        return key

    def unpack(self, key):
        self.unpacked += 1
        return self.store[key]


# ----------------------------------------------------------------------------- Checkpoint


def _recompute(ctx, inputs, grad_output):
    with torch.enable_grad():
        out = ctx.run_fn(*inputs)
    torch.autograd.backward(out, grad_output)
    return (None, *(t.grad if t.requires_grad else None for t in inputs))


@mistake("Checkpoint", "The forward graph was kept (built with grad enabled) instead of recomputed: nothing is saved in memory.")
class KeepsTheGraph(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        detached = [t.detach().requires_grad_(t.requires_grad) for t in inputs]
        with torch.enable_grad():
            out = run_fn(*detached)
        ctx.detached, ctx.out = detached, out
        return out.detach()

    @staticmethod
    def backward(ctx, grad_output):
        torch.autograd.backward(ctx.out, grad_output)
        return (None, *(t.grad if t.requires_grad else None for t in ctx.detached))


@mistake("Checkpoint", "The inputs were kept as ctx attributes instead of save_for_backward: no saved-tensor hooks, no in-place checks.")
class InputsOnCtx(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        ctx.run_fn, ctx.inputs, ctx.rng_state = run_fn, inputs, torch.get_rng_state()
        return run_fn(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.inputs]
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(ctx.rng_state)
            return _recompute(ctx, inputs, grad_output)


@mistake("Checkpoint", "The saved inputs were not detached before recomputing: the inner backward writes into the real x.grad, and the returned gradient adds it again.")
class NotDetached(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        ctx.run_fn, ctx.rng_state = run_fn, torch.get_rng_state()
        ctx.save_for_backward(*inputs)
        return run_fn(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(ctx.rng_state)
            return _recompute(ctx, ctx.saved_tensors, grad_output)


@mistake("Checkpoint", "Every saved input was made to require grad, including an integer index tensor that cannot.")
class AllInputsRequireGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        ctx.run_fn, ctx.rng_state = run_fn, torch.get_rng_state()
        ctx.save_for_backward(*inputs)
        return run_fn(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        inputs = [t.detach().requires_grad_() for t in ctx.saved_tensors]
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(ctx.rng_state)
            return _recompute(ctx, inputs, grad_output)


@mistake("Checkpoint", "The RNG state was not replayed: dropout in the recompute draws a different mask than the forward did.")
class NoRngReplay(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        ctx.run_fn = run_fn
        ctx.save_for_backward(*inputs)
        return run_fn(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        return _recompute(ctx, inputs, grad_output)


@mistake("Checkpoint", "The RNG state was restored without fork_rng: the caller's random stream is rewound by every backward.")
class RngNotForked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run_fn, *inputs):
        ctx.run_fn, ctx.rng_state = run_fn, torch.get_rng_state()
        ctx.save_for_backward(*inputs)
        return run_fn(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        torch.set_rng_state(ctx.rng_state)
        return _recompute(ctx, inputs, grad_output)


# ----------------------------------------------------------------------------- checkpoint_sequential


def _chain(chunk):
    def forward(h):
        for block in chunk:
            h = block(h)
        return h

    return forward


def _segments(blocks, x, size, checkpointed):
    checkpoint = _solution_of("checkpointing").Checkpoint
    for start in range(0, checkpointed, size):
        x = checkpoint.apply(_chain(blocks[start:start + size]), x)
    return _chain(blocks[checkpointed:])(x)


@mistake("checkpoint_sequential", "The last segment was checkpointed too: its blocks run twice for nothing.")
def last_segment_checkpointed(blocks, x, segments):
    size = len(blocks) // segments
    return _segments(blocks, x, size, size * segments)


@mistake("checkpoint_sequential", "The segment size was rounded up (ceil) instead of down: the wrong blocks get checkpointed.")
def ceil_segment_size(blocks, x, segments):
    size = math.ceil(len(blocks) / segments)
    return _segments(blocks, x, size, size * (segments - 1))


@mistake("checkpoint_sequential", "Each block was checkpointed on its own: every block's input is saved instead of one per segment.")
def per_block_checkpoint(blocks, x, segments):
    size = len(blocks) // segments
    return _segments(blocks, x, 1, size * (segments - 1))


@mistake("checkpoint_sequential", "The blocks were just chained: nothing is checkpointed, nothing recomputed.")
def no_checkpointing(blocks, x, segments):
    return _chain(blocks)(x)


@mistake("checkpoint_sequential", "torch.utils.checkpoint.checkpoint_sequential did the work; this kata asks for your own.")
def library_checkpoint_sequential(blocks, x, segments):
    return torch.utils.checkpoint.checkpoint_sequential(blocks, segments, x, use_reentrant=True)


@mistake("checkpoint_sequential", "The segment's closure read the loop variable late: every recompute in backward runs the LAST checkpointed segment's blocks.")
def late_binding_closure(blocks, x, segments):
    checkpoint = _solution_of("checkpointing").Checkpoint
    size = len(blocks) // segments
    done = size * (segments - 1)
    for start in range(0, done, size):
        def segment(h):
            for block in blocks[start:start + size]:  # noqa: B023 — the mistake: start is read in backward
                h = block(h)
            return h

        x = checkpoint.apply(segment, x)
    return _chain(blocks[done:])(x)
