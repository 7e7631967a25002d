"""Kata 18 — data: Dataset, collate_fn, DataLoader, and randomness you can reproduce.

A DataLoader is three small pieces that you can write yourself and plug in:

* a map-style ``Dataset`` answers ``len(ds)`` and ``ds[i]``, one sample at a time;
* a sampler decides the order of the indices (a permutation drawn from a generator);
* a ``collate_fn`` turns a list of samples into one batch (stacking, or padding).

Worker processes (``num_workers > 0``) call ``ds[i]`` in other processes. Whatever
randomness ``__getitem__`` uses must therefore not depend on which process happens to serve
index ``i``.

Rules: ``torch.nn.utils.rnn.pad_sequence`` is off-limits while your code runs, because the
checks compare your padding with it. Everything else in torch (and numpy) is allowed.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np  # noqa: F401
import torch
from torch.utils.data import DataLoader, Dataset


class WindowDataset(Dataset):
    """Sliding windows over a time series, as a map-style Dataset.

    Sample ``i`` is ``(series[i : i + window], series[i + window])``: ``window`` consecutive
    steps and the step that follows them. ``series`` has shape ``(T,)`` or ``(T, F)``, so
    there are ``T - window`` samples. Both tensors must be VIEWS of ``series`` (no copies:
    a dataset over a long recording must not duplicate it once per window). Indices work
    like a Python sequence's: ``-1`` is the last sample, and anything outside
    ``[-len, len)`` raises IndexError (the old iteration protocol, ``for x in ds``, stops on
    it).

    Example:
        >>> ds = WindowDataset(torch.arange(6.0), window=3)
        >>> len(ds)
        3
        >>> ds[0]
        (tensor([0., 1., 2.]), tensor(3.))
        >>> ds[-1]
        (tensor([2., 3., 4.]), tensor(5.))
    """

    def __init__(self, series: torch.Tensor, window: int) -> None:
        raise NotImplementedError("WindowDataset.__init__: see `kata lesson`, or `kata hint` for a nudge")

    def __len__(self) -> int:
        raise NotImplementedError("WindowDataset.__len__: see `kata lesson`, or `kata hint` for a nudge")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("WindowDataset.__getitem__: see `kata lesson`, or `kata hint` for a nudge")


def pad_collate(
    batch: Sequence[tuple[torch.Tensor, Any]], pad_value: float = 0.0
) -> dict[str, torch.Tensor]:
    """A ``collate_fn`` for sequences of different lengths: pad them to the longest.

    ``batch`` is a list of ``(sequence, label)`` samples; sequence ``b`` has shape
    ``(L_b, *features)`` (all with the same features and dtype); a label is a Python int or
    a 0-dim tensor. Return a dict:

    * ``"inputs"``: shape ``(B, max L_b, *features)``, the sequence's dtype; row ``b`` holds
      sequence ``b`` at the start, then ``pad_value`` (padding goes at the END);
    * ``"lengths"``: int64, shape ``(B,)``, the dtype ``pack_padded_sequence`` works in (it
      converts other dtypes itself) and the one that can index and slice;
    * ``"mask"``: bool, shape ``(B, max L_b)``, True at real positions and False on padding
      (True also where real data happens to equal ``pad_value``);
    * ``"labels"``: the labels stacked into shape ``(B,)`` (ints become int64).

    Keep the batch's order.

    Example:
        >>> out = pad_collate([(torch.tensor([5, 6, 7]), 1), (torch.tensor([8]), 0)])
        >>> out["inputs"]
        tensor([[5, 6, 7],
                [8, 0, 0]])
        >>> out["lengths"], out["mask"], out["labels"]
        (tensor([3, 1]), tensor([[ True,  True,  True], [ True, False, False]]), tensor([1, 0]))
    """
    raise NotImplementedError("pad_collate: see `kata lesson`, or `kata hint` for a nudge")


def seeded_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    *,
    drop_last: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A shuffling DataLoader whose batches depend on ``seed`` and nothing else.

    * The same seed gives the same sequence of epochs, whatever else uses torch's global
      generator in between, and another seed gives other batches. Each epoch (each new
      ``iter(loader)``) is a new permutation.
    * The global generator is left alone: building the loader and iterating it neither
      seed it nor draw from it (its state afterwards is what it was before).
    * ``drop_last=True`` drops a last, incomplete batch. ``collate_fn`` and
      ``num_workers`` are passed through. With workers the batches must be the same as
      without.

    Example:
        >>> a = [b.tolist() for b in seeded_loader(range(5), 2, seed=0)]
        >>> b = [b.tolist() for b in seeded_loader(range(5), 2, seed=0)]
        >>> a == b, len(a), sorted(sum(a, []))
        (True, 3, [0, 1, 2, 3, 4])
    """
    raise NotImplementedError("seeded_loader: see `kata lesson`, or `kata hint` for a nudge")


class NoisyDataset(Dataset):
    """Wraps a dataset of ``(x, y)`` and adds Gaussian noise to ``x``, reproducibly.

    ``ds[i]`` is ``(x + noise_std * n, y)`` where ``n`` is standard normal noise with the
    shape and dtype of ``x``, a pure function of the three numbers ``(seed, epoch, i)``: the
    same whatever order the indices are read in, in whichever worker process, whatever the
    global generator did. Any two different triples give different noise, (epoch 1, i=0)
    and (epoch 0, i=1) included. ``set_epoch(e)`` selects the epoch (0 at first). ``ds[i]``
    returns a new tensor and leaves the base dataset's ``x`` untouched.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> ds = NoisyDataset(TensorDataset(torch.zeros(4, 2), torch.arange(4)), 0.1, seed=3)
        >>> torch.equal(ds[2][0], ds[2][0]), torch.equal(ds[1][0], ds[2][0])
        (True, False)
    """

    def __init__(self, base: Dataset, noise_std: float, seed: int) -> None:
        raise NotImplementedError("NoisyDataset.__init__: see `kata lesson`, or `kata hint` for a nudge")

    def set_epoch(self, epoch: int) -> None:
        raise NotImplementedError("NoisyDataset.set_epoch: see `kata lesson`, or `kata hint` for a nudge")

    def __len__(self) -> int:
        raise NotImplementedError("NoisyDataset.__len__: see `kata lesson`, or `kata hint` for a nudge")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError("NoisyDataset.__getitem__: see `kata lesson`, or `kata hint` for a nudge")
