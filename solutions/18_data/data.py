"""Reference solution for kata 18 — data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class WindowDataset(Dataset):
    def __init__(self, series: torch.Tensor, window: int) -> None:
        if not 0 < window < len(series):
            raise ValueError(f"window must be in [1, {len(series) - 1}], got {window}")
        self.series = series
        self.window = window

    def __len__(self) -> int:
        return len(self.series) - self.window

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {n} windows")
        index %= n
        return self.series[index:index + self.window], self.series[index + self.window]


def pad_collate(
    batch: Sequence[tuple[torch.Tensor, Any]], pad_value: float = 0.0
) -> dict[str, torch.Tensor]:
    sequences = [seq for seq, _ in batch]
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.int64)
    longest = int(lengths.max())
    first = sequences[0]
    inputs = first.new_full((len(batch), longest, *first.shape[1:]), pad_value)
    for row, seq in enumerate(sequences):
        inputs[row, : len(seq)] = seq
    mask = torch.arange(longest)[None, :] < lengths[:, None]
    labels = torch.stack([torch.as_tensor(label) for _, label in batch])
    return {"inputs": inputs, "lengths": lengths, "mask": mask, "labels": labels}


def seeded_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    *,
    drop_last: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
        collate_fn=collate_fn,
        num_workers=num_workers,
    )


class NoisyDataset(Dataset):
    def __init__(self, base: Dataset, noise_std: float, seed: int) -> None:
        self.base = base
        self.noise_std = noise_std
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        x, y = self.base[index]
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(state))
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x + self.noise_std * noise, y
