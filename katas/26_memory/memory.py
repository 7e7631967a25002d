"""Kata 26 — memory: where the bytes go, and what keeps them alive.

A tensor's memory is its *storage*: one block of bytes that every view of it shares, and
that lives as long as anything refers to it — a view, a list, a closure, or an autograd
graph that saved the tensor for backward. This kata measures those bytes and hunts down
what holds them.

Words used below:
  - a storage's bytes: ``t.untyped_storage().nbytes()`` — the whole block, however few of its
    elements ``t`` shows;
  - "saved for backward": the tensors an op hands to autograd for its backward, as
    ``torch.autograd.graph.saved_tensors_hooks`` sees them (pack is called once per saved tensor).

Rules: gc.get_referrers, gc.get_referents and gc.get_objects are off-limits (as in every
kata); weakrefs, gc.collect() and saved_tensors_hooks are yours.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


def live_bytes(tensors: Sequence[torch.Tensor]) -> int:
    """The bytes of memory that ``tensors`` keep alive, all together.

    Each tensor keeps its whole storage alive; tensors that share a storage (views, slices,
    ``detach()``, ``expand()``) share its bytes, which count once. ``tensors`` may be empty and
    may hold any layouts and dtypes. The tensors are not changed. Returns an int.

    Example:
        >>> base = torch.zeros(4, 5)                  # one storage of 80 bytes
        >>> live_bytes([base[1:2], base.t()])         # two views of it
        80
        >>> live_bytes([base[1:2], base[1:2].clone()])  # the clone has 20 bytes of its own
        100
    """
    raise NotImplementedError("live_bytes: see `kata lesson`, or `kata hint` for a nudge")


def compact(t: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``t`` whose storage holds t's distinct elements once, and nothing else.

    The result has t's shape, dtype and values, and its storage is exactly
    (number of distinct storage elements t reads) * t.element_size() bytes. When t's own
    storage is already that small, return ``t`` itself (no copy); otherwise the result shares
    no memory with ``t``. A broadcast dim (stride 0, size > 1) reads the same elements again and
    again: they count once. ``t`` never overlaps itself in any other way (no sliding windows)
    and does not require grad; it is not changed.

    Example:
        >>> big = torch.arange(12.0).reshape(3, 4)
        >>> row = compact(big[1])                     # a view keeps all 48 bytes alive
        >>> row.tolist(), row.untyped_storage().nbytes()
        ([4.0, 5.0, 6.0, 7.0], 16)
        >>> t = big.t()                               # a transpose wastes nothing
        >>> compact(t) is t
        True
    """
    raise NotImplementedError("compact: see `kata lesson`, or `kata hint` for a nudge")


def peak_memory(events: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The peak memory of an allocation trace, above where it started.

    ``events`` are (address, nbytes) pairs in time order, as torch.profiler records them with
    ``profile_memory=True`` ("Addr" and "Bytes" of its [memory] events): nbytes > 0 allocates a
    block of that size at address; nbytes < 0 frees the block at address, of size -nbytes.
    nbytes is never 0. A free of an address the trace never allocated releases a block allocated
    before the trace began: it counts like any other free.

    Return ``(peak, index)``: the highest total of live bytes after any event, counted from
    0 before the first event, and the index of the first event after which the total reaches
    it; ``(0, -1)`` when the total never rises above 0.

    Raises ValueError for a trace that cannot be true: an allocation at an address that is still
    allocated; a free whose size differs from its block's; a free of a block already freed
    (and not allocated again since).

    Example:
        >>> peak_memory([(16, 64), (48, 32), (16, -64), (16, 8)])
        (96, 1)
        >>> peak_memory([(900, -40), (16, 24)])      # a block from before the trace is freed
        (0, -1)
    """
    raise NotImplementedError("peak_memory: see `kata lesson`, or `kata hint` for a nudge")


def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Run ``model(x)`` and measure the memory autograd holds for its backward.

    Return ``(out, nbytes)``: ``out`` is model(x) (computed under the caller's grad mode, which
    you leave as it is; backward through it must work as usual), and ``nbytes`` the bytes of
    the distinct storages of the tensors saved for backward during the forward that are STILL
    saved when it has returned — the model may drop part of its graph (``detach()``) or run part
    of itself under ``no_grad`` — each storage counted once and whole, leaving out the storages
    of the model's parameters and buffers and of x (memory that exists anyway).

    Once the caller drops ``out``, nothing of the forward may stay alive.

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        >>> out, nbytes = saved_bytes(model, torch.randn(2, 3))
        >>> nbytes                  # tanh saves its output: 2 * 4 float32 (x and weight excluded)
        32
        >>> with torch.no_grad():
        ...     saved_bytes(model, torch.randn(2, 3))[1]
        0
    """
    raise NotImplementedError("saved_bytes: see `kata lesson`, or `kata hint` for a nudge")


def find_leak(make_run: Callable[[], dict[str, Any]]) -> str | None:
    """Name the part of a program's state that keeps autograd graphs alive.

    ``make_run()`` builds a small program from scratch — a model, an optimizer, logs,
    callbacks — runs some training and evaluation steps, and returns its state: a dict from
    name to object. Every call builds everything anew, so call it as often as you like.

    A *leak* here is a graph whose saved tensors are still alive after ``make_run()`` has
    returned (the tensors it saved for a backward that never came). Tensors that stay alive
    without a graph (a detached copy, a float) are not a leak.

    Return the name of the one entry whose removal from the state lets every such graph die,
    or None when nothing the forward passes saved is still alive. There is never more than one
    such entry.

    Example:
        a state {"model": ..., "optimizer": ..., "history": [loss, loss, loss]} where each
        loss still has its grad_fn -> "history"; the same with loss.item() -> None.
    """
    raise NotImplementedError("find_leak: see `kata lesson`, or `kata hint` for a nudge")
