"""An alternative correct memory kata: storages told apart by their StorageImpl, compact built
with empty_strided + copy_, the peak from itertools.accumulate, saved tensors watched through
a WeakSet of boxes, and the leak found by removing suspects from one state cumulatively."""

from __future__ import annotations

import gc
import itertools
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def live_bytes(tensors: Sequence[torch.Tensor]) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        storage = t.untyped_storage()
        if storage._cdata not in seen:
            seen.add(storage._cdata)
            total += storage.nbytes()
    return total


def compact(t: torch.Tensor) -> torch.Tensor:
    kept = [d for d in range(t.dim()) if not (t.stride(d) == 0 and t.size(d) > 1)]
    distinct = 1
    for d in kept:
        distinct *= t.size(d)
    if t.numel() == 0:
        distinct = 0
    if t.untyped_storage().nbytes() == distinct * t.element_size():
        return t
    sizes = [t.size(d) if d in kept else 1 for d in range(t.dim())]
    strides, running = [0] * t.dim(), 1
    for d in reversed(range(t.dim())):
        strides[d] = running
        running *= max(sizes[d], 1)
    out = torch.empty_strided(sizes, strides, dtype=t.dtype, device=t.device)
    out.copy_(t[tuple(slice(None) if d in kept else slice(0, 1) for d in range(t.dim()))])
    return out.as_strided(t.shape, [s if d in kept else 0 for d, s in enumerate(strides)])


def peak_memory(events: Sequence[tuple[int, int]]) -> tuple[int, int]:
    state: dict[int, int] = {}  # address -> size while live, 0 once freed
    for i, (addr, nbytes) in enumerate(events):
        held = state.get(addr)
        if nbytes > 0:
            if held:
                raise ValueError(f"event {i}: {addr} is already allocated")
            state[addr] = nbytes
        elif held == 0:
            raise ValueError(f"event {i}: {addr} was already freed")
        elif held is not None and held != -nbytes:
            raise ValueError(f"event {i}: the block at {addr} has {held} bytes, not {-nbytes}")
        else:
            state[addr] = 0
    totals = list(itertools.accumulate(n for _, n in events))
    best = max(totals, default=0)
    if best <= 0:
        return 0, -1
    return best, totals.index(best)


class _Box:
    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


def _watch(boxes: weakref.WeakSet) -> torch.autograd.graph.saved_tensors_hooks:
    def pack(t: torch.Tensor) -> _Box:
        box = _Box(t.detach())
        boxes.add(box)
        return box

    return torch.autograd.graph.saved_tensors_hooks(pack, lambda box: box.t)


def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    boxes: weakref.WeakSet = weakref.WeakSet()
    with _watch(boxes):
        out = model(x)
    anyway = {t.untyped_storage()._cdata for t in itertools.chain(model.parameters(), model.buffers(), [x])}
    storages = {box.t.untyped_storage()._cdata: box.t.untyped_storage().nbytes() for box in list(boxes)}
    return out, sum(n for key, n in storages.items() if key not in anyway)


def find_leak(make_run: Callable[[], dict[str, Any]]) -> str | None:
    boxes: weakref.WeakSet = weakref.WeakSet()
    with _watch(boxes):
        state = make_run()
    gc.collect()
    if not len(boxes):
        return None
    for name in list(state):
        del state[name]
        gc.collect()
        if not len(boxes):
            return name
    return None
