"""An alternative correct memory kata: sizes keyed by the storage's pointer in a loop over
pairs, compact through narrow + contiguous + expand, the peak by a running max kept in a list,
saved tensors counted from the tensors still reachable through weak references in a dict, and
the leak found with a fresh program per suspect, probing through a list comprehension."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def live_bytes(tensors: Sequence[torch.Tensor]) -> int:
    pairs = [(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in tensors]
    return sum(dict(pairs).values())


def compact(t: torch.Tensor) -> torch.Tensor:
    core = t
    for d in range(t.dim()):
        if t.stride(d) == 0 and t.size(d) > 1:
            core = core.narrow(d, 0, 1)
    if t.untyped_storage().nbytes() == core.numel() * t.element_size():
        return t
    fresh = core.contiguous() if core.untyped_storage().nbytes() == core.numel() * core.element_size() \
        and core.is_contiguous() and core.storage_offset() == 0 else core.clone(memory_format=torch.contiguous_format)
    if fresh.untyped_storage().nbytes() != fresh.numel() * fresh.element_size():
        fresh = fresh.clone(memory_format=torch.contiguous_format)
    return fresh.expand(t.shape)


def peak_memory(events: Sequence[tuple[int, int]]) -> tuple[int, int]:
    live: dict[int, int] = {}
    gone: set[int] = set()
    running, best = 0, [0, -1]
    for i, (addr, nbytes) in enumerate(events):
        if nbytes < 0 and addr not in live and addr in gone:
            raise ValueError("double free")
        if nbytes < 0 and addr in live and live[addr] + nbytes != 0:
            raise ValueError("a free of the wrong size")
        if nbytes > 0 and addr in live:
            raise ValueError("an allocation over a live block")
        if nbytes > 0:
            live[addr] = nbytes
            gone.discard(addr)
        else:
            live.pop(addr, None)
            gone.add(addr)
        running += nbytes
        if running > best[0]:
            best = [running, i]
    return best[0], best[1]


def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    refs: dict[int, weakref.ref] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        alias = t.detach()
        refs[len(refs)] = weakref.ref(alias)
        return alias

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda alias: alias):
        out = model(x)
    alive = [r() for r in refs.values()]
    skip = [p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers(), x]]
    sizes = {a.untyped_storage().data_ptr(): a.untyped_storage().nbytes()
             for a in alive if a is not None and a.untyped_storage().data_ptr() not in skip}
    return out, sum(sizes.values())


def find_leak(make_run: Callable[[], dict[str, Any]]) -> str | None:
    def survivors(drop: str | None) -> int:
        refs = []

        def pack(t):
            alias = t.detach()
            refs.append(weakref.ref(alias))
            return alias

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda alias: alias):
            state = make_run()
        if drop is not None:
            state.pop(drop)
        gc.collect()
        return len([r for r in refs if r() is not None])

    if survivors(None) == 0:
        return None
    names = list(make_run())
    freed = [name for name in names if survivors(name) == 0]
    return freed[0] if freed else None
