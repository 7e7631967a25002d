"""Hidden checks for the kata data.

Oracles: Tensor.unfold for windows, torch.nn.utils.rnn.pad_sequence (off-limits to the
learner) and default_collate for padding, pack_padded_sequence for the lengths, and
DataLoader itself for batching, with and without worker processes.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from checker.helpers import (
    assert_close,
    assert_shares_storage,
    describe,
    expect_raises,
    fail,
)
from checker.sandbox.errors import ForbiddenAPI

pytestmark = pytest.mark.kata("data")


@contextlib.contextmanager
def learner(impl):
    """Run the learner's code under the kata's rules; a forbidden call becomes a failure."""
    try:
        with impl.rules():
            yield
    except ForbiddenAPI as exc:
        fail(str(exc))


# ----------------------------------------------------------------------------- WindowDataset


def make_series(rng, features):
    t = int(rng.integers(9, 16))
    shape = (t,) if features is None else (t, features)
    return torch.randn(shape, dtype=torch.float64)


def oracle_windows(series, window):
    """(windows, targets) for every sample, from Tensor.unfold."""
    n = len(series) - window
    wins = series.unfold(0, window, 1)[:n]
    if series.dim() == 2:
        wins = wins.transpose(1, 2)  # unfold puts the window dim last
    return wins, series[window:]


def window_cases(rng):
    """A random window on a 1-D and on a 2-D series, then the edge windows 1 and T - 1 (a
    single sample)."""
    out = []
    for features in (None, int(rng.integers(2, 4))):
        series = make_series(rng, features)
        out.append((series, int(rng.integers(2, len(series) - 3))))
    series = make_series(rng, None)
    return [*out, (series, 1), (series, len(series) - 1)]


@pytest.mark.exercise("WindowDataset")
def test_window_samples_match_unfold(impl, rng):
    for series, window in window_cases(rng):
        wins, targets = oracle_windows(series, window)
        n = len(wins)
        with learner(impl):
            ds = impl.WindowDataset(series, window)
            size = len(ds)
        what = f"WindowDataset(series of shape {tuple(series.shape)}, window={window})"
        if size != n:
            fail(f"{what}: len(ds) is {size}; expected {n}. A series of {len(series)} steps has "
                 f"{n} windows of {window} that are followed by a target step.")
        for i in [*range(n), -1, -n, -(n // 2) - 1]:
            with learner(impl):
                got = ds[i]
            if not (isinstance(got, tuple | list) and len(got) == 2):
                fail(f"{what}[{i}]: expected a (window, target) pair, got {describe(got)}.")
            assert_close(got[0], wins[i], f"{what}[{i}], the window",
                         hint="sample i is series[i : i + window]; a negative i counts from the "
                         "end of the DATASET (i + len(ds)), not of the series.")
            assert_close(got[1], targets[i], f"{what}[{i}], the target",
                         hint="the target is the step right AFTER the window: series[i + window].")


@pytest.mark.exercise("WindowDataset")
def test_window_samples_are_views(impl, rng):
    big = torch.randn(int(rng.integers(12, 18)), 3, dtype=torch.float64)
    series = big[:, 1]  # a strided, offset series: a column of a matrix
    window = int(rng.integers(2, 5))
    with learner(impl):
        ds = impl.WindowDataset(series, window)
        x, y = ds[2]
    what = f"WindowDataset(a column of a {tuple(big.shape)} matrix, window={window})[2]"
    hint = "slice the series (series[i : i + window]) instead of copying it."
    assert_shares_storage(x, series, f"{what}, the window", hint=hint)
    assert_shares_storage(y, series, f"{what}, the target", hint=hint)


@pytest.mark.exercise("WindowDataset")
def test_window_index_errors_and_iteration(impl, rng):
    series, window = window_cases(rng)[0]
    n = len(series) - window
    with learner(impl):
        ds = impl.WindowDataset(series, window)
    what = f"WindowDataset(series of {len(series)} steps, window={window})"
    for bad in (n, n + 3, -n - 1):
        with learner(impl):
            expect_raises(IndexError, lambda bad=bad: ds[bad], f"{what}[{bad}] with len {n}",
                          hint="raise IndexError outside [-len(ds), len(ds)), like a list.")
    with learner(impl):
        items = list(itertools.islice(iter(ds), n + 5))
    if len(items) != n:
        fail(f"{what}: `for sample in ds` produced {len(items)} samples, expected {n}. Python "
             "iterates a class with only __getitem__ until IndexError.")
    loader = DataLoader(ds, batch_size=4)
    wins, targets = oracle_windows(series, window)
    with learner(impl):
        batches = list(loader)
    assert_close(torch.cat([b[0] for b in batches]), wins, f"{what} in DataLoader(batch_size=4)")
    assert_close(torch.cat([b[1] for b in batches]), targets,
                 f"{what} in DataLoader(batch_size=4), the targets")


# ----------------------------------------------------------------------------- pad_collate


PAD_VALUES = {"tokens": (0, 7), "features": (0.0, -1.0, 2.5)}  # each one, every run


def make_batch(rng, kind, pad_value=None):
    size = int(rng.integers(3, 6))
    lengths = [int(v) for v in rng.choice(range(1, 9), size=size, replace=False)]
    if pad_value is None:
        pad_value = PAD_VALUES[kind][0]
    if kind == "tokens":
        seqs = [torch.randint(0, 6, (n,)) for n in lengths]  # real tokens include 0
        labels = [int(v) for v in rng.integers(0, 4, size=size)]
    else:
        feat = int(rng.integers(2, 4))
        seqs = [torch.randn(n, feat, dtype=torch.float32) for n in lengths]
        seqs[0][0, 0] = pad_value  # real data may equal the pad value
        labels = [torch.tensor(float(v)) for v in rng.normal(size=size)]
    return list(zip(seqs, labels, strict=True)), pad_value


def oracle_collate(batch, pad_value):
    seqs = [s for s, _ in batch]
    lengths = torch.tensor([len(s) for s in seqs])
    return {
        "inputs": pad_sequence(seqs, batch_first=True, padding_value=pad_value),
        "lengths": lengths,
        "mask": torch.arange(int(lengths.max()))[None, :] < lengths[:, None],
        "labels": default_collate([label for _, label in batch]),
    }


def check_collated(got, expected, what):
    if not isinstance(got, dict) or set(got) != set(expected):
        keys = sorted(got) if isinstance(got, dict) else type(got).__name__
        fail(f"{what}: expected a dict with keys {sorted(expected)}, got {keys}.")
    hints = {
        "inputs": "padding goes at the END of each row, with pad_value; the dtype stays the "
                  "sequences' dtype.",
        "lengths": "lengths are int64 (torch.long): pack_padded_sequence requires it.",
        "mask": "mask[b, t] is True where t < lengths[b] (real data), False on padding; build "
                "it from the lengths, since real values can equal pad_value.",
        "labels": "stack the labels in batch order.",
    }
    got_lengths = got["lengths"]
    if (type(got_lengths) is torch.Tensor and got_lengths.shape == expected["lengths"].shape
            and not torch.equal(got_lengths, expected["lengths"])
            and torch.equal(got_lengths.sort().values, expected["lengths"].sort().values)):
        fail(f"{what}: the samples come back in another order: lengths "
             f"{got_lengths.tolist()}, but the batch's sequences have lengths "
             f"{expected['lengths'].tolist()}.\n  Try: keep the batch's order (no sorting by "
             "length): row b of every output is sample b.")
    for key in ("inputs", "lengths", "mask", "labels"):
        if key == "mask":
            check_mask(got[key], expected[key], expected["lengths"], f"{what}['mask']",
                       hints[key])
        else:
            assert_close(got[key], expected[key], f"{what}[{key!r}]", hint=hints[key])


def check_mask(got, expected, lengths, what, hint):
    """Masks are compared as pictures: one row of 1s (True) and 0s (False) per sequence."""
    if type(got) is not torch.Tensor or got.dtype != torch.bool:
        fail(f"{what}: expected a bool tensor, got {describe(got)}.\n  Try: {hint}")
    if got.shape != expected.shape:
        fail(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.\n"
             f"  Try: {hint}")
    if not torch.equal(got, expected):
        def rows(m):
            return " ".join("".join("1" if v else "0" for v in row) for row in m.tolist())

        b, s = (int(v) for v in (got != expected).nonzero()[0])
        fail(f"{what}: wrong at [{b}, {s}] (expected {bool(expected[b, s])}), lengths "
             f"{lengths.tolist()}:\n  expected {rows(expected)}\n  got      {rows(got)}\n"
             f"  Try: {hint}")


@pytest.mark.exercise("pad_collate")
def test_pad_collate_matches_pad_sequence(impl, rng):
    for kind, pad_value in [(k, v) for k, values in PAD_VALUES.items() for v in values]:
        batch, pad_value = make_batch(rng, kind, pad_value)
        expected = oracle_collate(batch, pad_value)
        originals = [s.clone() for s, _ in batch]
        with learner(impl):
            got = impl.pad_collate(batch, pad_value)
        shapes = ", ".join(str(tuple(s.shape)) for s, _ in batch)
        what = f"pad_collate(batch of sequences {shapes}, pad_value={pad_value})"
        check_collated(got, expected, what)
        for i, ((s, _), o) in enumerate(zip(batch, originals, strict=True)):
            if not torch.equal(s, o):
                fail(f"{what}: sequence {i} of the batch was modified; collate must not write "
                     "into its inputs.")


@pytest.mark.exercise("pad_collate")
def test_pad_collate_of_one_sample(impl, rng):
    for seq, label in ((torch.tensor([4]), 2), (torch.randn(3, 2), torch.tensor(0.5))):
        batch = [(seq, label)]
        expected = oracle_collate(batch, 0)
        with learner(impl):
            got = impl.pad_collate(batch)
        check_collated(got, expected, f"pad_collate([one sample of shape {tuple(seq.shape)}]) "
                       "with pad_value left at its default")


@pytest.mark.exercise("pad_collate")
def test_pad_collate_lengths_feed_pack_padded_sequence(impl, rng):
    batch, pad_value = make_batch(rng, "features", PAD_VALUES["features"][-1])
    with learner(impl):
        got = impl.pad_collate(batch, pad_value)
    what = "pack_padded_sequence(out['inputs'], out['lengths'], batch_first=True)"
    try:
        packed = pack_padded_sequence(got["inputs"], got["lengths"], batch_first=True,
                                      enforce_sorted=False)
    except (RuntimeError, TypeError, ValueError) as exc:
        fail(f"{what} on your pad_collate's output raised {type(exc).__name__}: "
             f"{str(exc).splitlines()[0]}\n  Try: lengths must be a 1-D int64 CPU tensor.")
    unpacked, lengths = pad_packed_sequence(packed, batch_first=True, padding_value=pad_value)
    assert_close(unpacked, oracle_collate(batch, pad_value)["inputs"],
                 f"{what}, unpacked again", hint="each row's real steps come first.")


@pytest.mark.exercise("pad_collate")
def test_pad_collate_in_a_dataloader(impl, rng):
    samples, _ = make_batch(rng, "tokens")
    more, _ = make_batch(rng, "tokens")
    samples += more + [(torch.tensor([3, 0, 2]), 1)]
    loader = DataLoader(samples, batch_size=3, collate_fn=impl.pad_collate)
    with learner(impl):
        batches = list(loader)
    for b, got in enumerate(batches):
        chunk = samples[3 * b: 3 * b + 3]
        check_collated(got, oracle_collate(chunk, 0),
                       f"DataLoader(samples, batch_size=3, collate_fn=pad_collate), batch {b}")


# ----------------------------------------------------------------------------- seeded_loader


class IndexDataset(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def epochs_of(loader, count=2):
    return [[batch.tolist() for batch in loader] for _ in range(count)]


def make_loader(impl, n, batch_size, seed, **kwargs):
    with learner(impl):
        loader = impl.seeded_loader(dataset=IndexDataset(n), batch_size=batch_size, seed=seed,
                                    **kwargs)
    if not isinstance(loader, DataLoader):
        fail(f"seeded_loader(...) returned {describe(loader)}; return a "
             "torch.utils.data.DataLoader.")
    return loader


def loader_case(rng):
    batch_size = int(rng.integers(3, 6))
    n = batch_size * int(rng.integers(3, 6)) + int(rng.integers(1, batch_size))
    return n, batch_size, int(rng.integers(0, 10_000))


@pytest.mark.exercise("seeded_loader")
def test_same_seed_same_batches(impl, rng):
    n, b, seed = loader_case(rng)
    runs = []
    for disturb in (1, 2):
        torch.manual_seed(disturb)  # the caller's own use of the global generator
        loader = make_loader(impl, n, b, seed)
        torch.rand(disturb)
        runs.append(epochs_of(loader))
    what = f"seeded_loader(dataset of {n}, batch_size={b}, seed={seed}), built twice"
    for epoch in range(2):
        if runs[0][epoch] != runs[1][epoch]:
            fail(f"{what}: epoch {epoch} differs:\n  first  {runs[0][epoch]}\n  second "
                 f"{runs[1][epoch]}\n  The global generator was used differently before the "
                 "two runs. Try: DataLoader(..., shuffle=True, "
                 "generator=torch.Generator().manual_seed(seed)).")


@pytest.mark.exercise("seeded_loader")
def test_epochs_are_new_permutations(impl, rng):
    n, b, seed = loader_case(rng)
    loader = make_loader(impl, n, b, seed)
    what = f"seeded_loader(dataset of {n}, batch_size={b}, seed={seed})"
    epochs = epochs_of(loader)
    for e, batches in enumerate(epochs):
        sizes = [len(x) for x in batches]
        if sorted(sum(batches, [])) != list(range(n)) or sizes[:-1] != [b] * (len(sizes) - 1):
            fail(f"{what}: epoch {e} is {batches}; every index once, in batches of {b}.")
    if epochs[0] == epochs[1]:
        fail(f"{what}: epoch 1 repeats epoch 0 exactly ({epochs[0]}).\n  Try: let the "
             "DataLoader draw a new permutation from one seeded generator on every iteration; "
             "a permutation computed once up front is the same every epoch.")


@pytest.mark.exercise("seeded_loader")
def test_other_seed_other_batches(impl, rng):
    n, b, seed = loader_case(rng)
    first = epochs_of(make_loader(impl, n, b, seed), 1)[0]
    second = epochs_of(make_loader(impl, n, b, seed + 1), 1)[0]
    if first == second:
        fail(f"seeded_loader(dataset of {n}, batch_size={b}) with seed={seed} and seed="
             f"{seed + 1} gives the same batches {first}: seed the generator with `seed`.")


@pytest.mark.exercise("seeded_loader")
def test_global_generator_untouched(impl, rng):
    n, b, seed = loader_case(rng)
    before = torch.get_rng_state()
    loader = make_loader(impl, n, b, seed)
    epochs_of(loader)
    if not torch.equal(torch.get_rng_state(), before):
        fail(f"seeded_loader(dataset of {n}, batch_size={b}, seed={seed}): building and "
             "iterating it changed torch's global generator: torch.manual_seed inside, or a "
             "DataLoader without generator=, which draws from the global generator on every "
             "iter() (its shuffle, and the workers' base_seed even when the sampler has a "
             "generator of its own). A library function must not reseed or consume its "
             "caller's RNG: give the DataLoader generator=torch.Generator().manual_seed(seed).")


@pytest.mark.exercise("seeded_loader")
def test_drop_last(impl, rng):
    n, b, seed = loader_case(rng)
    what = f"seeded_loader(dataset of {n}, batch_size={b}, seed={seed}, drop_last="
    for drop_last, count in ((True, n // b), (False, -(-n // b))):
        loader = make_loader(impl, n, b, seed, drop_last=drop_last)
        batches = epochs_of(loader, 1)[0]
        sizes = [len(x) for x in batches]
        full = sizes == [b] * count if drop_last else sizes[:-1] == [b] * (count - 1)
        if len(loader) != count or len(batches) != count or not full:
            fail(f"{what}{drop_last}): len(loader) is {len(loader)} and the batches have sizes "
                 f"{sizes}; expected {count} batches"
                 + (f", all of {b} (the last {n % b} samples are dropped)." if drop_last
                    else f", the last one with {n % b} samples."))


def collate_pairs(samples):
    """A collate_fn of the check's own: indices and their squares."""
    idx = torch.tensor(samples)
    return idx, idx * idx


@pytest.mark.exercise("seeded_loader")
def test_workers_give_the_same_batches(impl, rng):
    n, b, seed = loader_case(rng)
    single = make_loader(impl, n, b, seed, collate_fn=collate_pairs)
    workers = make_loader(impl, n, b, seed, collate_fn=collate_pairs, num_workers=2)
    what = f"seeded_loader(dataset of {n}, batch_size={b}, seed={seed}, collate_fn=..., "
    if make_loader(impl, n, b, seed).num_workers != 0:
        fail(f"seeded_loader(dataset of {n}, batch_size={b}, seed={seed}) without num_workers "
             "made a loader with worker processes; num_workers defaults to 0 (the main "
             "process).")
    if workers.num_workers != 2 or workers.collate_fn is not collate_pairs:
        fail(f"{what}num_workers=2): the DataLoader has num_workers={workers.num_workers} "
             "and collate_fn " + ("as given" if workers.collate_fn is collate_pairs else
                                  "not the one given") + "; pass both through.")
    expected = [x.tolist() for x, _ in single]
    got = [x.tolist() for x, _ in workers]
    if got != expected:
        fail(f"{what}num_workers=2) gives {got}; with num_workers=0 it gives {expected}.")


# ----------------------------------------------------------------------------- NoisyDataset


def noisy_case(rng, n=12):
    x = torch.randn(n, 3, dtype=torch.float64)
    y = torch.arange(n)
    return TensorDataset(x, y), round(float(rng.uniform(0.05, 0.5)), 3), int(rng.integers(1000))


def same_noise(a, b):
    """Noise is read back as (x + noise) - x, exact only up to rounding."""
    return torch.allclose(a, b, rtol=0.0, atol=1e-12)


def read_noise(impl, ds, base, order):
    out = {}
    originals = [t.clone() for t in base.tensors]
    rng_state = torch.get_rng_state()
    with learner(impl):
        for i in order:
            x, y = ds[i]
            if any(not torch.equal(t, o) for t, o in zip(base.tensors, originals, strict=True)):
                fail(f"NoisyDataset[{i}]: reading a sample changed the BASE dataset's data "
                     "(the noise was added in place into the base sample's x, a view of the "
                     "base tensors).\n  Try: return x + noise_std * noise, a new tensor.")
            if not isinstance(x, torch.Tensor) or int(y) != int(base[i][1]):
                fail(f"NoisyDataset[{i}] returned ({describe(x)}, {y!r}); expected the base "
                     f"sample's x plus noise, and its label {int(base[i][1])} unchanged.")
            out[i] = x - base[i][0]
    if not torch.equal(torch.get_rng_state(), rng_state):
        fail("NoisyDataset: reading samples changed torch's global generator (torch.manual_seed "
             "or a draw from it); the caller's random stream must not move.\n  Try: draw from "
             "a generator of your own, torch.Generator().manual_seed(...), per sample.")
    return [out[i] for i in sorted(out)]


@pytest.mark.exercise("NoisyDataset")
def test_noise_is_a_function_of_seed_epoch_and_index(impl, rng):
    base, std, seed = noisy_case(rng)
    n = len(base)
    with learner(impl):
        ds = impl.NoisyDataset(base, std, seed)
        size = len(ds)
    what = f"NoisyDataset(base of {n}, noise_std={std}, seed={seed})"
    if size != n:
        fail(f"{what}: len is {size}, expected {n}.")
    first = read_noise(impl, ds, base, range(n))
    torch.rand(3)  # someone else uses the global generator
    again = read_noise(impl, ds, base, reversed(range(n)))
    for i, (a, b) in enumerate(zip(first, again, strict=True)):
        if not same_noise(a, b):
            fail(f"{what}: ds[{i}] read twice (the second time after other indices, in "
                 "another order) gave different noise. Draw it from a generator seeded from "
                 "(seed, epoch, index), not from the global generator or a shared stream.")
    if all(same_noise(first[0], f) for f in first[1:]):
        fail(f"{what}: every index got the same noise "
             f"[{', '.join(f'{v:.4g}' for v in first[0].tolist())}]. The index must "
             "enter the seed.")
    if all(float(f.abs().max()) == 0.0 for f in first):
        fail(f"{what}: no noise was added.")
    with learner(impl):
        twin = impl.NoisyDataset(base, std, seed)
        other = impl.NoisyDataset(base, std, seed + 1)
    if any(not same_noise(a, b) for a, b in zip(first, read_noise(impl, twin, base, range(n)),
                                                strict=True)):
        fail(f"{what}: a second NoisyDataset with the same seed gives other noise.")
    other_seed = read_noise(impl, other, base, range(n))
    with learner(impl):
        ds.set_epoch(1)
    epoch1 = read_noise(impl, ds, base, range(n))
    with learner(impl):
        ds.set_epoch(0)
    if any(not same_noise(a, b) for a, b in zip(first, read_noise(impl, ds, base, range(n)),
                                                strict=True)):
        fail(f"{what}: after set_epoch(1) and set_epoch(0), epoch 0's noise is not the same as "
             "before.")
    if any(same_noise(a, b) for a, b in zip(first, epoch1, strict=True)):
        fail(f"{what}: set_epoch(1) did not change the noise; the epoch must enter the seed.")
    seen = []
    for label, noises in (("epoch 0", first), ("epoch 1", epoch1), (f"seed {seed + 1}",
                                                                   other_seed)):
        for i, noise in enumerate(noises):
            match = next((s for s in seen if same_noise(s[2], noise)), None)
            if match:
                fail(f"{what}: index {i} at {label} gets exactly the noise of index "
                     f"{match[1]} at {match[0]}: two different (seed, epoch, index) "
                     "triples map to the same generator seed. Mix the three numbers so that "
                     "they cannot collide, e.g. np.random.SeedSequence((seed, epoch, index))"
                     ".generate_state(1)[0].")
            seen.append((label, i, noise))


def _holds_text(value, depth: int = 0) -> bool:
    if isinstance(value, str | bytes):
        return True
    if depth < 4 and isinstance(value, tuple | frozenset):
        return any(_holds_text(v, depth + 1) for v in value)
    return False


@contextlib.contextmanager
def another_hash_seed():
    """``hash()`` as another interpreter computes it: Python salts the hash of str and bytes
    per process (PYTHONHASHSEED), so a spawned worker or the next run gets other values; ints
    and tuples of ints hash alike everywhere."""
    import builtins

    real = builtins.hash

    def salted(value):
        return real(("another process", real(value))) if _holds_text(value) else real(value)

    builtins.hash = salted
    try:
        yield
    finally:
        builtins.hash = real


@pytest.mark.exercise("NoisyDataset")
def test_noise_is_the_same_in_another_process(impl, rng):
    base, std, seed = noisy_case(rng)
    n = len(base)
    with learner(impl):
        ds = impl.NoisyDataset(base, std, seed)
        ds.set_epoch(1)
    here = read_noise(impl, ds, base, range(n))
    with another_hash_seed():
        there = read_noise(impl, ds, base, range(n))
    for i, (a, b) in enumerate(zip(here, there, strict=True)):
        if not same_noise(a, b):
            fail(f"NoisyDataset(base of {n}, noise_std={std}, seed={seed}) at epoch 1: ds[{i}]"
                 " gets other noise under another PYTHONHASHSEED, as in a spawned worker "
                 "process or the next run: the seed went through hash() of a string, which "
                 "Python salts per process.\n  Try: mix the three integers themselves, e.g. "
                 "np.random.SeedSequence((seed, epoch, index)).")


@pytest.mark.exercise("NoisyDataset")
def test_noise_seeds_do_not_collide(impl, rng):
    n = 1100
    base = TensorDataset(torch.zeros(n, 2, dtype=torch.float64), torch.arange(n))
    seed = int(rng.integers(1000))
    indices = [*range(12), 99, 100, 101, 1000, 1001, 1099]
    seen = {}
    for s in (seed, seed + 1, seed + 100):
        with learner(impl):
            ds = impl.NoisyDataset(base, 1.0, s)
        for epoch in (0, 1, 2, 10):
            with learner(impl):
                ds.set_epoch(epoch)
            for i, noise in zip(indices, read_noise(impl, ds, base, indices), strict=True):
                key = tuple(round(v, 9) for v in noise.tolist())
                if key in seen:
                    fail(f"NoisyDataset: (seed={s}, epoch={epoch}, index={i}) gets exactly the "
                         f"noise of (seed, epoch, index)={seen[key]}: two different triples "
                         "map to the same generator seed. Mix the three numbers so that they "
                         "cannot collide, e.g. np.random.SeedSequence((seed, epoch, index))"
                         ".generate_state(1)[0].")
                seen[key] = (s, epoch, i)


@pytest.mark.exercise("NoisyDataset")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_noise_has_the_requested_scale(impl, rng, dtype):
    n = 400
    base = TensorDataset(torch.zeros(n, 3, dtype=dtype), torch.zeros(n))
    std = round(float(rng.uniform(0.1, 2.0)), 3)
    with learner(impl):
        ds = impl.NoisyDataset(base, std, int(rng.integers(1000)))
        noise = torch.stack([ds[i][0] for i in range(n)])
    what = f"NoisyDataset(base of {n} {str(dtype)[6:]} zero vectors, noise_std={std})"
    if noise.dtype != dtype:
        fail(f"{what}: the noisy x has dtype {noise.dtype}; keep the base sample's dtype "
             "(draw the noise with dtype=x.dtype).")
    if dtype == torch.float64:
        def on_float32_grid(t):
            return (t - t.float().double()).abs() <= 1e-12 * t.abs()

        coarse = on_float32_grid(noise) | on_float32_grid(noise / std)  # n, or std * n, float32
        if float(coarse.double().mean()) > 0.9:
            fail(f"{what}: the noise has float32 precision (every value is a float32 number); "
                 "n must have x's dtype, float64 here.\n  Try: torch.randn(x.shape, "
                 "generator=g, dtype=x.dtype).")
    noise = noise.double()
    got_std, got_mean = float(noise.std()), float(noise.mean())
    if abs(got_std / std - 1) > 0.1 or abs(got_mean) > 4 * std / (3 * n) ** 0.5:
        fail(f"{what}: the noise has mean {got_mean:.4g} and standard deviation {got_std:.4g}; "
             f"expected mean 0 and standard deviation {std}. Scale standard normal noise "
             "(torch.randn) by noise_std.")


@pytest.mark.exercise("NoisyDataset")
def test_workers_see_the_same_samples(impl, rng):
    base, std, seed = noisy_case(rng, n=16)
    with learner(impl):
        ds = impl.NoisyDataset(base, std, seed)
        ds.set_epoch(2)
    shuffle_seed = int(rng.integers(1 << 30))
    runs = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(shuffle_seed))
        # Worker processes are started outside the rules window: a forked child must exit
        # through the real os._exit, not the window's catchable stand-in.
        with learner(impl) if workers == 0 else contextlib.nullcontext():
            runs.append([(x.clone(), y.tolist()) for x, y in loader])
    for b, ((x0, y0), (x2, y2)) in enumerate(zip(*runs, strict=True)):
        if y0 != y2 or not torch.equal(x0, x2):
            fail(f"NoisyDataset(seed={seed}) at epoch 2 in a shuffling DataLoader: batch {b} "
                 f"(samples {y2}) differs between num_workers=2 and num_workers=0. Each "
                 "worker process has its own global generator (seeded base_seed + worker_id); "
                 "noise drawn from it depends on which worker served the sample. Seed a "
                 "generator per sample from (seed, epoch, index).")
