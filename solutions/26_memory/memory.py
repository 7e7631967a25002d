"""Reference solution for kata 26 — memory."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def live_bytes(tensors: Sequence[torch.Tensor]) -> int:
    sizes: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        sizes[storage.data_ptr()] = storage.nbytes()
    return sum(sizes.values())


def compact(t: torch.Tensor) -> torch.Tensor:
    broadcast = [d for d in range(t.dim()) if t.stride(d) == 0 and t.size(d) > 1]
    distinct = t.numel()
    for d in broadcast:
        distinct //= t.size(d)
    if t.untyped_storage().nbytes() == distinct * t.element_size():
        return t
    core = t
    for d in broadcast:
        core = core.narrow(d, 0, 1)
    return core.clone().expand(t.shape)


def peak_memory(events: Sequence[tuple[int, int]]) -> tuple[int, int]:
    live: dict[int, int] = {}
    freed: set[int] = set()
    current = peak = 0
    at = -1
    for i, (addr, nbytes) in enumerate(events):
        if nbytes > 0:
            if addr in live:
                raise ValueError(f"event {i}: allocation at {addr}, which is still allocated")
            live[addr] = nbytes
        else:
            if addr in live:
                if live[addr] != -nbytes:
                    raise ValueError(f"event {i}: frees {-nbytes} bytes at {addr}, which holds {live[addr]}")
                del live[addr]
            elif addr in freed:
                raise ValueError(f"event {i}: frees {addr} a second time")
            freed.add(addr)
        current += nbytes
        if current > peak:
            peak, at = current, i
    return peak, at


def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    kept: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        alias = t.detach()
        kept.append(weakref.ref(alias))
        return alias

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    exist = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), x)}
    sizes: dict[int, int] = {}
    for ref in kept:
        t = ref()
        if t is not None and t.untyped_storage().data_ptr() not in exist:
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return out, sum(sizes.values())


def _graphs_alive(make_run: Callable[[], dict[str, Any]], drop: str | None) -> bool:
    kept: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        alias = t.detach()
        kept.append(weakref.ref(alias))
        return alias

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        state = make_run()
    if drop is not None:
        del state[drop]
    gc.collect()
    return any(ref() is not None for ref in kept)


def find_leak(make_run: Callable[[], dict[str, Any]]) -> str | None:
    if not _graphs_alive(make_run, None):
        return None
    for name in make_run():
        if not _graphs_alive(make_run, name):
            return name
    return None
