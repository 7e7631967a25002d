"""Known mistakes for the kata data."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from checker.mistakes import _solution_of, mistake

_sol = _solution_of("data")


# ----------------------------------------------------------------------------- WindowDataset


@mistake("WindowDataset", "len counted T - window + 1 windows: the last window has no target step after it.")
class one_window_too_many(_sol.WindowDataset):
    def __len__(self):
        return len(self.series) - self.window + 1

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(index)
        index %= n
        end = min(index + self.window, len(self.series) - 1)
        return self.series[index:index + self.window], self.series[end]


@mistake("WindowDataset", "The windows were copied (.clone()): a dataset of views would share the series' memory.")
class copies_windows(_sol.WindowDataset):
    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x.clone(), y.clone()


@mistake("WindowDataset", "Negative indices were passed straight to the series, so ds[-1] counted from the end of the SERIES, not of the dataset.")
class negative_index_unwrapped(_sol.WindowDataset):
    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(index)
        return self.series[index:index + self.window], self.series[index + self.window]


@mistake("WindowDataset", "The target was the window's own last step (series[i + window - 1]) instead of the step after it.")
class target_inside_window(_sol.WindowDataset):
    def __getitem__(self, index):
        x, _ = super().__getitem__(index)
        return x, x[-1]


@mistake("WindowDataset", "Out-of-range indices wrapped around (index % len) instead of raising IndexError, so `for x in ds` never ends.")
class wraps_out_of_range(_sol.WindowDataset):
    def __getitem__(self, index):
        return super().__getitem__(index % len(self))


# ----------------------------------------------------------------------------- pad_collate


@mistake("pad_collate", "The mask was inverted: True on padding (the key_padding_mask convention of nn.MultiheadAttention), asked for True on real data.")
def mask_marks_padding(batch, pad_value=0.0):
    out = _sol.pad_collate(batch, pad_value)
    out["mask"] = ~out["mask"]
    return out


@mistake("pad_collate", "Padding went at the front (left padding); the real steps must come first.")
def pads_at_front(batch, pad_value=0.0):
    out = _sol.pad_collate(batch, pad_value)
    inputs = out["inputs"]
    longest = inputs.shape[1]
    for row, (seq, _) in enumerate(batch):
        inputs[row] = pad_value
        inputs[row, longest - len(seq):] = seq
    out["mask"] = out["mask"].flip(1)
    return out


@mistake("pad_collate", "lengths came out as a float tensor; lengths are int64 (what pad_packed_sequence returns and what can index or slice), even though pack_padded_sequence would convert floats.")
def float_lengths(batch, pad_value=0.0):
    out = _sol.pad_collate(batch, pad_value)
    out["lengths"] = out["lengths"].float()
    return out


@mistake("pad_collate", "The mask was read off the values (inputs != pad_value): a real step that equals pad_value is taken for padding.")
def mask_from_values(batch, pad_value=0.0):
    out = _sol.pad_collate(batch, pad_value)
    inputs = out["inputs"]
    real = inputs != pad_value
    out["mask"] = real if real.dim() == 2 else real.flatten(2).any(-1)
    return out


@mistake("pad_collate", "pad_value ignored: the padding is always 0 (a zeros tensor filled in).")
def pads_with_zeros(batch, pad_value=0.0):
    return _sol.pad_collate(batch, 0)


@mistake("pad_collate", "The batch sorted by length, longest first (as pack_padded_sequence once demanded): row b is no longer sample b.")
def sorted_by_length(batch, pad_value=0.0):
    return _sol.pad_collate(sorted(batch, key=lambda sample: -len(sample[0])), pad_value)


@mistake("pad_collate", "torch.nn.utils.rnn.pad_sequence was called: it is the reference and off-limits here.")
def calls_pad_sequence(batch, pad_value=0.0):
    out = _sol.pad_collate(batch, pad_value)
    out["inputs"] = torch.nn.utils.rnn.pad_sequence([s for s, _ in batch], batch_first=True,
                                                    padding_value=pad_value)
    return out


# ----------------------------------------------------------------------------- seeded_loader


@mistake("seeded_loader", "shuffle=True without a generator: the order comes from torch's global generator, i.e. from whatever the caller did before.")
def global_shuffle(dataset, batch_size, seed, *, drop_last=False, collate_fn=None, num_workers=0):
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=num_workers)


@mistake("seeded_loader", "torch.manual_seed(seed) inside: it resets the caller's global generator, and the shuffle still depends on what runs between building and iterating.")
def seeds_global_generator(dataset, batch_size, seed, *, drop_last=False, collate_fn=None,
                           num_workers=0):
    torch.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=num_workers)


@mistake("seeded_loader", "One permutation computed up front and reused: every epoch has the same order.")
def one_permutation_for_all_epochs(dataset, batch_size, seed, *, drop_last=False,
                                   collate_fn=None, num_workers=0):
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    return DataLoader(dataset, batch_size=batch_size, sampler=order, drop_last=drop_last,
                      collate_fn=collate_fn, num_workers=num_workers)


@mistake("seeded_loader", "drop_last was not passed on: the short last batch stayed.")
def ignores_drop_last(dataset, batch_size, seed, *, drop_last=False, collate_fn=None,
                      num_workers=0):
    return _sol.seeded_loader(dataset, batch_size, seed, collate_fn=collate_fn,
                              num_workers=num_workers)


@mistake("seeded_loader", "num_workers was not passed on: the loader always ran in the main process.")
def ignores_num_workers(dataset, batch_size, seed, *, drop_last=False, collate_fn=None,
                        num_workers=0):
    return _sol.seeded_loader(dataset, batch_size, seed, drop_last=drop_last,
                              collate_fn=collate_fn)


# ----------------------------------------------------------------------------- NoisyDataset


@mistake("NoisyDataset", "The noise came from the global generator (torch.randn_like): it changes on every read and differs between worker processes.")
class global_rng_noise(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        return x + self.noise_std * torch.randn_like(x), y


@mistake("NoisyDataset", "One generator, seeded once in __init__, was drawn from for every sample: the noise depends on the order of reads.")
class one_generator_stream(_sol.NoisyDataset):
    def __getitem__(self, index):
        if not hasattr(self, "_generator"):
            self._generator = torch.Generator().manual_seed(self.seed)
        x, y = self.base[index]
        noise = torch.randn(x.shape, generator=self._generator, dtype=x.dtype)
        return x + self.noise_std * noise, y


@mistake("NoisyDataset", "The generator was seeded from seed (and epoch) only: every sample got the same noise.")
class seed_without_index(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return x + self.noise_std * torch.randn(x.shape, generator=g, dtype=x.dtype), y


@mistake("NoisyDataset", "The epoch was left out of the seed: every epoch sees exactly the same noise.")
class epoch_ignored(_sol.NoisyDataset):
    def set_epoch(self, epoch):
        pass


@mistake("NoisyDataset", "seed + epoch + index as the generator seed: different triples collide, e.g. (epoch 1, index 0) and (epoch 0, index 1).")
class additive_seed(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        g = torch.Generator().manual_seed(self.seed + self.epoch + index)
        return x + self.noise_std * torch.randn(x.shape, generator=g, dtype=x.dtype), y


@mistake("NoisyDataset", "The generator seed went through hash() of a string: Python salts str hashes per process, so a spawned worker or the next run draws other noise.")
class string_hash_seed(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        g = torch.Generator().manual_seed(hash(f"{self.seed}/{self.epoch}/{index}") % 2**63)
        return x + self.noise_std * torch.randn(x.shape, generator=g, dtype=x.dtype), y


@mistake("NoisyDataset", "The noise was not multiplied by noise_std: it always had standard deviation 1.")
class unscaled_noise(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        noisy, _ = super().__getitem__(index)
        return x + (noisy - x) / self.noise_std, y


@mistake("NoisyDataset", "The noise added in place (x.add_): x is a view of the base dataset's tensor, so every read corrupts the base.")
class noise_added_in_place(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        noisy, _ = super().__getitem__(index)
        return x.add_(noisy - x), y


@mistake("NoisyDataset", "torch.manual_seed(...) per sample, then torch.randn: reproducible, but it resets the caller's global generator on every read.")
class reseeds_global_generator(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        torch.manual_seed(hash((self.seed, self.epoch, index)) % (1 << 62))
        return x + self.noise_std * torch.randn(x.shape, dtype=x.dtype), y


@mistake("NoisyDataset", "The noise drawn in the default float32 whatever x's dtype: float64 data gets float32-precision noise.")
class float32_noise(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        g = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % (1 << 62))
        return x + self.noise_std * torch.randn(x.shape, generator=g).to(x.dtype), y


@mistake("NoisyDataset", "seed * 1000 + epoch * 100 + index as the generator seed: collides once an index reaches 100, e.g. (epoch 1, index 0) and (epoch 0, index 100).")
class decimal_mix(_sol.NoisyDataset):
    def __getitem__(self, index):
        x, y = self.base[index]
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch * 100 + index)
        return x + self.noise_std * torch.randn(x.shape, generator=g, dtype=x.dtype), y
