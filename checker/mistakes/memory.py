"""Known mistakes for the kata memory."""

from __future__ import annotations

import gc
import types
import weakref

import torch
from torch.autograd.graph import saved_tensors_hooks

from checker.mistakes import mistake

# ----------------------------------------------------------------------------- live_bytes


@mistake("live_bytes", "Counted the elements each tensor shows (numel * element_size), not the storage it keeps alive.")
def element_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


@mistake("live_bytes", "Added every tensor's storage, so a storage shared by several views was counted once per view.")
def storage_per_tensor(tensors):
    return sum(t.untyped_storage().nbytes() for t in tensors)


@mistake("live_bytes", "Told storages apart by the tensor's data_ptr(), which includes the view's offset: a slice looks like a storage of its own.")
def keyed_by_tensor_pointer(tensors):
    return sum({t.data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


@mistake("live_bytes", "Told storages apart by _base: detach() (and a view of a view's base) share memory without sharing _base.")
def keyed_by_base(tensors):
    sizes = {}
    for t in tensors:
        owner = t._base if t._base is not None else t
        sizes[id(owner)] = t.untyped_storage().nbytes()
    return sum(sizes.values())


# ----------------------------------------------------------------------------- compact


@mistake("compact", "Always cloned: a tensor already compact is copied for nothing, and a broadcast is materialised.")
def always_clone(t):
    return t.clone()


@mistake("compact", "Used .contiguous(): a contiguous slice keeps its big base alive, a compact transpose is copied, a broadcast is materialised.")
def contiguous(t):
    return t.contiguous()


@mistake("compact", "Compared the storage with numel * element_size, forgetting that a broadcast dim repeats the same elements.")
def ignores_broadcast(t):
    if t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.clone(memory_format=torch.contiguous_format)


@mistake("compact", "Judged by _base: every view is copied (a transpose and a broadcast too), and a broadcast copy is materialised.")
def judged_by_base(t):
    return t if t._base is None else t.clone(memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------- peak_memory


def _replay(events, *, pre_trace_frees=True, ties_move=False, validate=True):
    live, freed = {}, set()
    current = peak = 0
    at = -1
    for i, (addr, nbytes) in enumerate(events):
        if nbytes > 0:
            if validate and addr in live:
                raise ValueError("allocation at a live address")
            live[addr] = nbytes
            freed.discard(addr)
        else:
            if addr in live:
                if validate and live[addr] != -nbytes:
                    raise ValueError("wrong size")
                del live[addr]
            elif validate and addr in freed:
                raise ValueError("double free")
            elif not pre_trace_frees:
                freed.add(addr)
                continue
            freed.add(addr)
        current += nbytes
        if current > peak or ties_move and current == peak and at >= 0:
            peak, at = current, i
    return peak, at


@mistake("peak_memory", "Frees of blocks allocated before the trace were ignored: they lower the memory in use too.")
def ignores_pre_trace_frees(events):
    return _replay(events, pre_trace_frees=False)


@mistake("peak_memory", "Took the LAST event at which the peak was reached, not the first.")
def last_index_of_peak(events):
    return _replay(events, ties_move=True)


@mistake("peak_memory", "Trusted the trace: a double allocation, a wrong-sized free or a double free went through.")
def no_validation(events):
    return _replay(events, validate=False)


@mistake("peak_memory", "Started the peak at the first event's total instead of 0: a trace that only frees reports a negative peak.")
def peak_from_first_event(events):
    current, best = 0, None
    for i, (_addr, nbytes) in enumerate(events):
        current += nbytes
        if best is None or current > best[0]:
            best = (current, i)
    _replay(events)  # the same validation as the reference
    return best or (0, -1)


@mistake("peak_memory", "Took a free of an address never allocated in the trace for corruption: it releases a block from before the trace.")
def unknown_free_is_an_error(events):
    live = {}
    current = peak = 0
    at = -1
    for i, (addr, nbytes) in enumerate(events):
        if nbytes > 0:
            if addr in live:
                raise ValueError("allocation at a live address")
            live[addr] = nbytes
        else:
            if live.get(addr) != -nbytes:
                raise ValueError("a free of a block that is not allocated")
            del live[addr]
        current += nbytes
        if current > peak:
            peak, at = current, i
    return peak, at


# ----------------------------------------------------------------------------- saved_bytes


def _saved(model, x, *, detach=True, live=True, exclude=True, dedupe=True, grad=None):
    kept = []

    def pack(t):
        alias = t.detach() if detach else t
        kept.append(weakref.ref(alias) if live else (lambda alias=alias: alias))
        return alias

    with saved_tensors_hooks(pack, lambda t: t):
        if grad is None:
            out = model(x)
        else:
            with torch.set_grad_enabled(grad):
                out = model(x)
    skip = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), x)} if exclude else set()
    sizes, total = {}, 0
    for ref in kept:
        t = ref()
        if t is not None and t.untyped_storage().data_ptr() not in skip:
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            total += t.untyped_storage().nbytes()
    return out, sum(sizes.values()) if dedupe else total


@mistake("saved_bytes", "Counted every tensor packed during the forward, even those of a graph that detach() dropped before it returned.")
def counted_at_pack(model, x):
    return _saved(model, x, live=False)


@mistake("saved_bytes", "pack returned the tensor itself: a saved output then refers to its own grad_fn, a cycle through C++ that keeps the graph alive forever.", named=False)
def pack_returns_the_tensor(model, x):
    return _saved(model, x, detach=False)


@mistake("saved_bytes", "Counted the parameters' and x's storages too: they exist anyway, the graph adds nothing by saving them.")
def counts_parameters(model, x):
    return _saved(model, x, exclude=False)


@mistake("saved_bytes", "Counted one storage once per saved tensor: x * x saves x twice, overlapping slices save one storage twice.")
def no_dedupe(model, x):
    return _saved(model, x, dedupe=False)


@mistake("saved_bytes", "Switched grad on inside (torch.enable_grad()): under the caller's no_grad or inference_mode a graph is built anyway.")
def forces_grad(model, x):
    return _saved(model, x, grad=True)


# ----------------------------------------------------------------------------- find_leak


def _graphs_alive(make_run, drop, *, detach=True):
    kept = []

    def pack(t):
        alias = t.detach() if detach else t
        kept.append(weakref.ref(alias))
        return alias

    with saved_tensors_hooks(pack, lambda t: t):
        state = make_run()
    if drop is not None:
        del state[drop]
    gc.collect()
    return any(ref() is not None for ref in kept)


@mistake("find_leak", "pack returned the tensor itself: every evaluation graph that saved an output is kept alive by a cycle, so every run looks leaky.")
def pack_returns_the_tensor_leak(make_run):
    if not _graphs_alive(make_run, None, detach=False):
        return None
    for name in make_run():
        if not _graphs_alive(make_run, name, detach=False):
            return name
    raise ValueError("no single entry of the state keeps the graphs alive")


@mistake("find_leak", "Never answered None: on a clean program every removal leaves nothing alive, so the first entry was named.")
def never_none(make_run):
    for name in make_run():
        if not _graphs_alive(make_run, name):
            return name
    return None


def _holds_graph(value, depth=0):
    if isinstance(value, torch.Tensor):
        return value.grad_fn is not None
    if depth > 3:
        return False
    if isinstance(value, list | tuple):
        return any(_holds_graph(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_graph(v, depth + 1) for v in value.values())
    if isinstance(value, types.SimpleNamespace):
        return any(_holds_graph(v, depth + 1) for v in vars(value).values())
    return False


@mistake("find_leak", "Searched the data structures only (lists, dicts, attributes): a graph held by a module's hook or a function's closure goes unseen.")
def data_structures_only(make_run):
    state = make_run()
    return next((name for name, value in state.items() if _holds_graph(value)), None)


def _holds_tensor(value, depth=0):
    if isinstance(value, torch.Tensor):
        return True
    if depth > 3:
        return False
    if isinstance(value, list | tuple):
        return any(_holds_tensor(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_holds_tensor(v, depth + 1) for v in value.values())
    if isinstance(value, types.SimpleNamespace):
        return any(_holds_tensor(v, depth + 1) for v in vars(value).values())
    return False


@mistake("find_leak", "Took any kept tensor for a leak: a detached tensor keeps its storage but no graph.")
def any_tensor_is_a_leak(make_run):
    state = make_run()
    return next((name for name, value in state.items() if name != "model" and _holds_tensor(value)), None)
