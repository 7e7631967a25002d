# A wrong answer to memory.saved_bytes: pack returned the tensor itself: a saved output then refers to its own grad_fn, a cycle through C++ that keeps the graph alive forever.
# exercise: saved_bytes
# It fails on every seed (tests/test_katas.py), but its failure cannot be told from
# another known mistake's by behaviour, so it is not shipped for the diagnosis.
"""Reference solution for kata 25 — memory."""

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


# Known mistake pack_returns_the_tensor: pack returned the tensor itself: a saved output then refers to its own grad_fn, a cycle through C++ that keeps the graph alive forever.
import types as _kata_types  # noqa: E402

_kata_reference = _kata_types.SimpleNamespace(**dict(globals()))
_kata_namespace = {
    '__name__': '_known_memory',
    'mistake': lambda exercise, misconception: (lambda func: func),
    '_solution_of': lambda name: _kata_reference,
}
exec(compile('"""Known mistakes for the kata memory."""\n\nfrom __future__ import annotations\n\nimport gc\nimport types\nimport weakref\n\nimport torch\nfrom torch.autograd.graph import saved_tensors_hooks\n\n\n\n# ----------------------------------------------------------------------------- live_bytes\n\n\n@mistake("live_bytes", "Counted the elements each tensor shows (numel * element_size), not the storage it keeps alive.")\ndef element_bytes(tensors):\n    return sum(t.numel() * t.element_size() for t in tensors)\n\n\n@mistake("live_bytes", "Added every tensor\'s storage, so a storage shared by several views was counted once per view.")\ndef storage_per_tensor(tensors):\n    return sum(t.untyped_storage().nbytes() for t in tensors)\n\n\n@mistake("live_bytes", "Told storages apart by the tensor\'s data_ptr(), which includes the view\'s offset: a slice looks like a storage of its own.")\ndef keyed_by_tensor_pointer(tensors):\n    return sum({t.data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())\n\n\n@mistake("live_bytes", "Told storages apart by _base: detach() (and a view of a view\'s base) share memory without sharing _base.")\ndef keyed_by_base(tensors):\n    sizes = {}\n    for t in tensors:\n        owner = t._base if t._base is not None else t\n        sizes[id(owner)] = t.untyped_storage().nbytes()\n    return sum(sizes.values())\n\n\n# ----------------------------------------------------------------------------- compact\n\n\n@mistake("compact", "Always cloned: a tensor already compact is copied for nothing, and a broadcast is materialised.")\ndef always_clone(t):\n    return t.clone()\n\n\n@mistake("compact", "Used .contiguous(): a contiguous slice keeps its big base alive, a compact transpose is copied, a broadcast is materialised.")\ndef contiguous(t):\n    return t.contiguous()\n\n\n@mistake("compact", "Compared the storage with numel * element_size, forgetting that a broadcast dim repeats the same elements.")\ndef ignores_broadcast(t):\n    if t.untyped_storage().nbytes() == t.numel() * t.element_size():\n        return t\n    return t.clone(memory_format=torch.contiguous_format)\n\n\n@mistake("compact", "Judged by _base: every view is copied (a transpose and a broadcast too), and a broadcast copy is materialised.")\ndef judged_by_base(t):\n    return t if t._base is None else t.clone(memory_format=torch.contiguous_format)\n\n\n# ----------------------------------------------------------------------------- peak_memory\n\n\ndef _replay(events, *, pre_trace_frees=True, ties_move=False, validate=True):\n    live, freed = {}, set()\n    current = peak = 0\n    at = -1\n    for i, (addr, nbytes) in enumerate(events):\n        if nbytes > 0:\n            if validate and addr in live:\n                raise ValueError("allocation at a live address")\n            live[addr] = nbytes\n            freed.discard(addr)\n        else:\n            if addr in live:\n                if validate and live[addr] != -nbytes:\n                    raise ValueError("wrong size")\n                del live[addr]\n            elif validate and addr in freed:\n                raise ValueError("double free")\n            elif not pre_trace_frees:\n                freed.add(addr)\n                continue\n            freed.add(addr)\n        current += nbytes\n        if current > peak or ties_move and current == peak and at >= 0:\n            peak, at = current, i\n    return peak, at\n\n\n@mistake("peak_memory", "Frees of blocks allocated before the trace were ignored: they lower the memory in use too.")\ndef ignores_pre_trace_frees(events):\n    return _replay(events, pre_trace_frees=False)\n\n\n@mistake("peak_memory", "Took the LAST event at which the peak was reached, not the first.")\ndef last_index_of_peak(events):\n    return _replay(events, ties_move=True)\n\n\n@mistake("peak_memory", "Trusted the trace: a double allocation, a wrong-sized free or a double free went through.")\ndef no_validation(events):\n    return _replay(events, validate=False)\n\n\n@mistake("peak_memory", "Started the peak at the first event\'s total instead of 0: a trace that only frees reports a negative peak.")\ndef peak_from_first_event(events):\n    current, best = 0, None\n    for i, (_addr, nbytes) in enumerate(events):\n        current += nbytes\n        if best is None or current > best[0]:\n            best = (current, i)\n    _replay(events)  # the same validation as the reference\n    return best or (0, -1)\n\n\n@mistake("peak_memory", "Took a free of an address never allocated in the trace for corruption: it releases a block from before the trace.")\ndef unknown_free_is_an_error(events):\n    live = {}\n    current = peak = 0\n    at = -1\n    for i, (addr, nbytes) in enumerate(events):\n        if nbytes > 0:\n            if addr in live:\n                raise ValueError("allocation at a live address")\n            live[addr] = nbytes\n        else:\n            if live.get(addr) != -nbytes:\n                raise ValueError("a free of a block that is not allocated")\n            del live[addr]\n        current += nbytes\n        if current > peak:\n            peak, at = current, i\n    return peak, at\n\n\n# ----------------------------------------------------------------------------- saved_bytes\n\n\ndef _saved(model, x, *, detach=True, live=True, exclude=True, dedupe=True, grad=None):\n    kept = []\n\n    def pack(t):\n        alias = t.detach() if detach else t\n        kept.append(weakref.ref(alias) if live else (lambda alias=alias: alias))\n        return alias\n\n    with saved_tensors_hooks(pack, lambda t: t):\n        if grad is None:\n            out = model(x)\n        else:\n            with torch.set_grad_enabled(grad):\n                out = model(x)\n    skip = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), x)} if exclude else set()\n    sizes, total = {}, 0\n    for ref in kept:\n        t = ref()\n        if t is not None and t.untyped_storage().data_ptr() not in skip:\n            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()\n            total += t.untyped_storage().nbytes()\n    return out, sum(sizes.values()) if dedupe else total\n\n\n@mistake("saved_bytes", "Counted every tensor packed during the forward, even those of a graph that detach() dropped before it returned.")\ndef counted_at_pack(model, x):\n    return _saved(model, x, live=False)\n\n\n@mistake("saved_bytes", "pack returned the tensor itself: a saved output then refers to its own grad_fn, a cycle through C++ that keeps the graph alive forever.")\ndef pack_returns_the_tensor(model, x):\n    return _saved(model, x, detach=False)\n\n\n@mistake("saved_bytes", "Counted the parameters\' and x\'s storages too: they exist anyway, the graph adds nothing by saving them.")\ndef counts_parameters(model, x):\n    return _saved(model, x, exclude=False)\n\n\n@mistake("saved_bytes", "Counted one storage once per saved tensor: x * x saves x twice, overlapping slices save one storage twice.")\ndef no_dedupe(model, x):\n    return _saved(model, x, dedupe=False)\n\n\n@mistake("saved_bytes", "Switched grad on inside (torch.enable_grad()): under the caller\'s no_grad or inference_mode a graph is built anyway.")\ndef forces_grad(model, x):\n    return _saved(model, x, grad=True)\n\n\n# ----------------------------------------------------------------------------- find_leak\n\n\ndef _graphs_alive(make_run, drop, *, detach=True):\n    kept = []\n\n    def pack(t):\n        alias = t.detach() if detach else t\n        kept.append(weakref.ref(alias))\n        return alias\n\n    with saved_tensors_hooks(pack, lambda t: t):\n        state = make_run()\n    if drop is not None:\n        del state[drop]\n    gc.collect()\n    return any(ref() is not None for ref in kept)\n\n\n@mistake("find_leak", "pack returned the tensor itself: every evaluation graph that saved an output is kept alive by a cycle, so every run looks leaky.")\ndef pack_returns_the_tensor_leak(make_run):\n    if not _graphs_alive(make_run, None, detach=False):\n        return None\n    for name in make_run():\n        if not _graphs_alive(make_run, name, detach=False):\n            return name\n    raise ValueError("no single entry of the state keeps the graphs alive")\n\n\n@mistake("find_leak", "Never answered None: on a clean program every removal leaves nothing alive, so the first entry was named.")\ndef never_none(make_run):\n    for name in make_run():\n        if not _graphs_alive(make_run, name):\n            return name\n    return None\n\n\ndef _holds_graph(value, depth=0):\n    if isinstance(value, torch.Tensor):\n        return value.grad_fn is not None\n    if depth > 3:\n        return False\n    if isinstance(value, list | tuple):\n        return any(_holds_graph(v, depth + 1) for v in value)\n    if isinstance(value, dict):\n        return any(_holds_graph(v, depth + 1) for v in value.values())\n    if isinstance(value, types.SimpleNamespace):\n        return any(_holds_graph(v, depth + 1) for v in vars(value).values())\n    return False\n\n\n@mistake("find_leak", "Searched the data structures only (lists, dicts, attributes): a graph held by a module\'s hook or a function\'s closure goes unseen.")\ndef data_structures_only(make_run):\n    state = make_run()\n    return next((name for name, value in state.items() if _holds_graph(value)), None)\n\n\ndef _holds_tensor(value, depth=0):\n    if isinstance(value, torch.Tensor):\n        return True\n    if depth > 3:\n        return False\n    if isinstance(value, list | tuple):\n        return any(_holds_tensor(v, depth + 1) for v in value)\n    if isinstance(value, dict):\n        return any(_holds_tensor(v, depth + 1) for v in value.values())\n    if isinstance(value, types.SimpleNamespace):\n        return any(_holds_tensor(v, depth + 1) for v in vars(value).values())\n    return False\n\n\n@mistake("find_leak", "Took any kept tensor for a leak: a detached tensor keeps its storage but no graph.")\ndef any_tensor_is_a_leak(make_run):\n    state = make_run()\n    return next((name for name, value in state.items() if name != "model" and _holds_tensor(value)), None)\n', '<embedded>', 'exec'), _kata_namespace)
saved_bytes = _kata_namespace['pack_returns_the_tensor']
