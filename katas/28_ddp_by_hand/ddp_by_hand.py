"""Kata 28 — ddp_by_hand: data parallel training with torch.distributed, written by hand.

Data parallel training runs one copy of the model per process (a *rank*); each rank takes its
own slice of the batch, and after backward the ranks average their gradients, so that every
copy takes the same step — the step a single process would take on the whole batch.
torch.nn.parallel.DistributedDataParallel (DDP) does this for you; here you build it from
the collectives of ``torch.distributed``: ``dist.broadcast``, ``dist.all_reduce`` and the
asynchronous work objects they return with ``async_op=True``.

Every function below runs in each rank at once: the checks start the ranks (two or three
processes on this machine, in a gloo process group that is already set up) and call your
code in every one of them. ``dist.get_rank()`` and ``dist.get_world_size()`` tell a rank who
it is. A collective completes only when every rank makes it: a rank that skips one leaves
its peers waiting, and the checks report that hang.

Rules: DistributedDataParallel, its Reducer, its bucket assignment
(``torch.distributed._compute_bucket_assignment_by_size``) and its state syncing helpers are
off-limits — the checks compare your work with them. Bytes of a tensor always mean
``t.numel() * t.element_size()``.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Make every rank's module hold rank ``src``'s values, as DDP does when it is built.

    Called on every rank with the same ``src``. On return, every parameter and every buffer
    of ``module`` (running statistics and integer counters included; frozen parameters too)
    holds rank ``src``'s values, on every rank. In place: the module keeps the very tensors
    it had (an optimizer may already hold them); only their values change, and their
    ``requires_grad`` stays as it was. Returns None.

    Example (two ranks whose modules were initialised differently):
        broadcast_parameters(model, src=0)   # on both ranks
        model.weight                         # now rank 0's values, on rank 1 too
    """
    raise NotImplementedError("broadcast_parameters: see `kata lesson`, or `kata hint` for a nudge")


def average_gradients(module: nn.Module) -> None:
    """After each rank's backward on its own slice of the batch, replace every gradient by
    its mean over all ranks.

    Called on every rank. For each parameter of ``module`` whose ``.grad`` is not None, the
    ``.grad`` ends as the element-wise mean of that gradient across the ranks (the same on
    every rank; its dtype and shape unchanged). A parameter whose ``.grad`` is None (frozen,
    or unused) keeps None. Parameters themselves are not changed. Returns None.

    Example (two ranks, one parameter):
        rank 0 has p.grad == [1., 4.], rank 1 has p.grad == [3., 0.]
        average_gradients(model)   # on both ranks
        p.grad                     # on both ranks: tensor([2., 2.])
    """
    raise NotImplementedError("average_gradients: see `kata lesson`, or `kata hint` for a nudge")


def assign_buckets(params: Sequence[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    """Group parameters into buckets of about ``bucket_bytes`` bytes, as DDP does.

    A pure function (no collective): it returns indices into ``params``.

    - Parameters that do not require grad are in no bucket.
    - Walk the others in order (index 0 first). A bucket holds parameters of one dtype (and
      device) only: each dtype has its own bucket being filled. A parameter joins its
      dtype's bucket; when that bucket's bytes reach ``bucket_bytes`` or more, it is full
      and the next parameter of that dtype starts a new one. Buckets still filling at the
      end are kept as they are.
    - Indices within a bucket ascend. Buckets are returned in the order backward produces
      their gradients, the reverse of the forward's: sorted by their smallest index,
      largest first.

    Raises ValueError if ``bucket_bytes`` is less than 1. ``params`` is not changed.

    Example (float64 parameters of 4, 2, 3 and 1 elements: 32, 16, 24 and 8 bytes):
        >>> a, b, c, d = (torch.zeros(n, dtype=torch.float64, requires_grad=True) for n in (4, 2, 3, 1))
        >>> assign_buckets([a, b, c, d], bucket_bytes=40)
        [[2, 3], [0, 1]]
    """
    raise NotImplementedError("assign_buckets: see `kata lesson`, or `kata hint` for a nudge")


class BucketedGradSync:
    """Gradient averaging in buckets, overlapped with backward: DDP's Reducer, by hand.

    ``BucketedGradSync(params, buckets)`` is made once, on every rank, before training;
    ``buckets`` is a list of lists of indices into ``params`` (as ``assign_buckets`` returns;
    every bucket holds one dtype). Then, each step::

        loss.backward()   # during it, each bucket's gradients are averaged ...
        sync.wait()       # ... and on return, every bucketed .grad holds the mean over ranks

    What must hold, every backward:

    - each bucket goes out as exactly ONE ``dist.all_reduce``, of a single flat tensor (of
      the bucket's dtype) holding that bucket's gradients one after the other, in the
      bucket's order;
    - it is started during backward, as soon as the last gradient of its bucket has been
      accumulated into its ``.grad`` (a post-accumulate-grad hook of that parameter) and
      before any further gradient is accumulated, without waiting for it to finish
      (``async_op=True``): communication overlaps the rest of backward;
    - ``wait()`` waits for every bucket started since the last ``wait()``, and writes the
      mean over ranks into each bucketed parameter's ``.grad`` (same shape and dtype). It
      starts no collective; with nothing started since the last ``wait()``, it changes
      nothing.

    The same object serves every step: the ranks may call backward and wait() many times.
    Parameters in no bucket are left alone.
    """

    def __init__(self, params: Sequence[nn.Parameter], buckets: Sequence[Sequence[int]]) -> None:
        raise NotImplementedError("BucketedGradSync: see `kata lesson`, or `kata hint` for a nudge")

    def wait(self) -> None:
        raise NotImplementedError("BucketedGradSync.wait: see `kata lesson`, or `kata hint` for a nudge")


class NoSyncGradSync(BucketedGradSync):
    """A BucketedGradSync with DDP's ``no_sync()``: gradient accumulation without traffic.

    Each step may run several backward passes (micro-batches) before the optimizer steps;
    averaging after each would send the same bytes several times. So::

        with sync.no_sync():
            loss_1.backward()   # no collective: gradients only accumulate in .grad
            loss_2.backward()   # (still none)
        loss_3.backward()       # the buckets go out as usual, holding the accumulated sums
        sync.wait()             # every .grad: the mean over ranks of all three backwards

    ``no_sync()`` returns a context manager. While it is open, backward starts no collective
    and counts nothing toward a bucket being ready; once it is closed (normally or by an
    exception), the next backward behaves exactly as BucketedGradSync's. Everything
    BucketedGradSync promises still holds.
    """

    def no_sync(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError("NoSyncGradSync.no_sync: see `kata lesson`, or `kata hint` for a nudge")
