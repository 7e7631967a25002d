"""Kata 24 — checkpointing: saved tensors, hooks on them, and trading compute for memory.

Backward needs values from the forward: ``tanh`` saves its output, ``mm`` saves both
operands. Those *saved tensors* are most of a training step's memory. You can watch them
with ``torch.autograd.graph.saved_tensors_hooks(pack, unpack)`` — every saved tensor goes
through ``pack`` and autograd keeps what ``pack`` returns; backward calls ``unpack`` on it
to get the tensor back. And you can avoid keeping them at all: *activation checkpointing*
runs a block without saving anything and recomputes it during backward.

Rules: torch.utils.checkpoint (checkpoint, checkpoint_sequential, CheckpointFunction) is
off-limits — the checks compare your work with it. "Bytes" of a saved tensor always means
``t.numel() * t.element_size()``.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def count_saved(
    fn: Callable[..., torch.Tensor], *inputs: torch.Tensor
) -> tuple[torch.Tensor, int, int]:
    """Run ``fn(*inputs)`` and count what autograd saves for its backward.

    Return ``(output, count, nbytes)``: the output (still differentiable — backward through it
    must work as usual), the number of tensors packed, and their total bytes. A tensor that
    is saved twice (``a * a`` saves ``a`` as both operands) counts twice.

    Example:
        >>> x = torch.randn(3, 4, requires_grad=True)
        >>> out, count, nbytes = count_saved(lambda t: torch.tanh(t * t), x)
        >>> count, nbytes            # mul saves x twice, tanh saves its output
        (3, 144)
    """
    raise NotImplementedError("count_saved: see `kata lesson`, or `kata hint` for a nudge")


class SavedTensorStore(torch.autograd.graph.saved_tensors_hooks):
    """Saved-tensor hooks that keep every saved tensor in a store and give autograd a key.

    Use it as a context manager around a forward. Attributes:
      - ``store``: dict from int key to the saved tensor (the tensor itself, not a copy),
        one entry per call of pack;
      - ``unpacked``: how many times unpack has run.
    ``pack(t)`` returns the key (an int); ``unpack(key)`` returns the stored tensor. Unpack
    can be called more than once for one key (a second backward with retain_graph=True).

    Example:
        >>> x = torch.randn(3, requires_grad=True)
        >>> store = SavedTensorStore()
        >>> with store:
        ...     y = torch.tanh(x * x)
        >>> len(store.store), store.unpacked
        (3, 0)
        >>> y.sum().backward(); store.unpacked
        3
    """

    def __init__(self) -> None:
        raise NotImplementedError("SavedTensorStore: see `kata lesson`, or `kata hint` for a nudge")

    def pack(self, t: torch.Tensor) -> int:
        raise NotImplementedError("SavedTensorStore.pack: see `kata lesson`, or `kata hint` for a nudge")

    def unpack(self, key: int) -> torch.Tensor:
        raise NotImplementedError("SavedTensorStore.unpack: see `kata lesson`, or `kata hint` for a nudge")


class Checkpoint(torch.autograd.Function):
    """Activation checkpointing: ``Checkpoint.apply(run_fn, *inputs)`` equals ``run_fn(*inputs)``
    but keeps no activations of ``run_fn``; backward recomputes them.

    ``inputs`` are tensors (some may not require grad, e.g. an integer index tensor);
    ``run_fn`` returns one tensor and may use parameters of its own, and randomness (dropout).

    What must hold:

    - the forward calls ``run_fn`` once, and the only tensors autograd saves for backward
      (as ``saved_tensors_hooks`` see them) are the inputs themselves: no activation;
    - the backward calls ``run_fn`` exactly once more;
    - the output and every gradient (the inputs' and the ``.grad`` of run_fn's own
      parameters) equal those of a plain ``run_fn(*inputs)``, also when run_fn draws random
      numbers (dropout), and the caller's global random stream after backward is what it
      would be had backward drawn nothing;
    - inputs that do not require grad still do not, and get None; so does ``run_fn``;
    - an input modified in place between forward and backward makes backward raise
      autograd's RuntimeError about an inplace operation.

    Example:
        >>> block = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
        >>> x = torch.randn(2, 3, requires_grad=True)
        >>> out = Checkpoint.apply(block, x)   # block runs once, nothing of it is saved
        >>> out.sum().backward()                # block runs again; x.grad and block's grads set
        >>> x.grad.shape, block[0].weight.grad is not None
        (torch.Size([2, 3]), True)
    """

    @staticmethod
    def forward(ctx, run_fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Checkpoint.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        raise NotImplementedError("Checkpoint.backward: see `kata lesson`, or `kata hint` for a nudge")


def checkpoint_sequential(blocks: Sequence[nn.Module], x: torch.Tensor, segments: int) -> torch.Tensor:
    """Run ``blocks`` in order on ``x``, checkpointing them in segments, as torch does.

    The segment size is ``len(blocks) // segments``. The first ``segments - 1`` segments of
    that size each go through one ``Checkpoint.apply``; all remaining blocks form the last
    segment, which runs normally (its activations are needed as soon as backward starts).

    Example (7 blocks, segments=3 -> size 2):
        blocks 0-1 checkpointed, blocks 2-3 checkpointed, blocks 4-6 run plainly.
    """
    raise NotImplementedError("checkpoint_sequential: see `kata lesson`, or `kata hint` for a nudge")
