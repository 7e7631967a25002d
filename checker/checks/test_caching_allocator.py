"""Hidden checks for the caching_allocator kata: a reference model of PyTorch's CUDA caching
allocator (the policy of c10/cuda/CUDACachingAllocator.cpp at the pinned release, with its
default settings) is the oracle; where a CUDA device is present, the device itself is too.

Every check replays a fixed corpus (exact boundaries: 512 B, 1 MiB, 10 MiB, remainders of
exactly 512 B and exactly 1 MiB, ties, the two pools side by side, a capacity that forces a
retry and one that forces an out-of-memory) and then seeded random traces. The states the
learner's functions receive come from the reference, so one slip does not cascade.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from checker.helpers import assert_equal, expect_raises, fail, learner_caller

pytestmark = pytest.mark.kata("caching_allocator")

KiB, MiB = 1024, 1024 * 1024
STAT_KEYS = (
    "allocation.all.current", "segment.all.current", "active.all.current",
    "inactive_split.all.current", "allocated_bytes.all.current", "allocated_bytes.all.peak",
    "reserved_bytes.all.current", "reserved_bytes.all.peak", "active_bytes.all.current",
    "inactive_split_bytes.all.current", "allocated_bytes.small_pool.current",
    "allocated_bytes.large_pool.current", "reserved_bytes.small_pool.current",
    "reserved_bytes.large_pool.current", "num_alloc_retries", "num_ooms",
)

call = learner_caller("simulate the policy with plain Python: ints, tuples and dicts")


# ----------------------------------------------------------------------------- the reference


@dataclass
class Blk:
    """One block of the reference's flat list: where it is, how big, whose segment."""

    address: int
    size: int
    allocated: bool
    segment: int  # the address of the segment that holds it
    pool: str


def ref_round(nbytes: int) -> int:
    if nbytes < 1:
        raise ValueError(nbytes)
    return 512 if nbytes <= 512 else (nbytes + 511) // 512 * 512


def ref_plan(nbytes: int) -> tuple[str, int]:
    size = ref_round(nbytes)
    if size <= MiB:
        return "small", 2 * MiB
    return "large", 20 * MiB if size < 10 * MiB else (size + 2 * MiB - 1) // (2 * MiB) * (2 * MiB)


def flat(state) -> list[Blk]:
    out = []
    for seg, pool, blocks in state:
        at = seg
        for size, allocated in blocks:
            out.append(Blk(at, size, allocated, seg, pool))
            at += size
    return out


def unflat(blocks: list[Blk]) -> tuple:
    segments: dict[int, tuple[str, list]] = {}
    for b in sorted(blocks, key=lambda b: b.address):
        segments.setdefault(b.segment, (b.pool, []))[1].append((b.size, b.allocated))
    return tuple((seg, pool, tuple(bs)) for seg, (pool, bs) in sorted(segments.items()))


def candidates(blocks: list[Blk], pool: str, size: int) -> list[Blk]:
    """The free blocks a request of ``size`` (rounded) may take, best fit first."""
    return sorted((b for b in blocks if b.pool == pool and not b.allocated and b.size >= size),
                  key=lambda b: (b.size, b.address))


def ref_malloc(state, nbytes: int) -> tuple[tuple, int]:
    size = ref_round(nbytes)
    pool, segment = ref_plan(nbytes)
    blocks = flat(state)
    fits = candidates(blocks, pool, size)
    if fits:
        block = fits[0]
    else:
        top = max((b.address + b.size for b in blocks), default=0)
        block = Blk(top, segment, False, top, pool)
        blocks.append(block)
    rest = block.size - size
    if rest >= 512 if pool == "small" else rest > MiB:
        blocks.append(Blk(block.address + size, rest, False, block.segment, pool))
        block.size = size
    block.allocated = True
    return unflat(blocks), block.address


def ref_free(state, address: int) -> tuple:
    blocks = sorted(flat(state), key=lambda b: b.address)
    i = next((i for i, b in enumerate(blocks) if b.address == address and b.allocated), None)
    if i is None:
        raise ValueError(address)
    blocks[i].allocated = False
    for j in (i + 1, i):  # the next one into this one, then this one into the previous
        if 0 < j < len(blocks) and blocks[j - 1].segment == blocks[j].segment \
                and not blocks[j - 1].allocated and not blocks[j].allocated:
            blocks[j - 1].size += blocks[j].size
            del blocks[j]
    return unflat(blocks)


def ref_empty(state) -> tuple:
    return tuple(s for s in state if len(s[2]) > 1 or s[2][0][1])


def ref_current(state) -> dict[str, int]:
    out = dict.fromkeys(STAT_KEYS, 0)
    for b in flat(state):
        out[f"reserved_bytes.{b.pool}_pool.current"] += b.size
        if b.allocated:
            out[f"allocated_bytes.{b.pool}_pool.current"] += b.size
            out["allocation.all.current"] += 1
        elif len(next(s for s in state if s[0] == b.segment)[2]) > 1:
            out["inactive_split.all.current"] += 1
            out["inactive_split_bytes.all.current"] += b.size
    out["segment.all.current"] = len(state)
    for key in ("allocated_bytes", "reserved_bytes"):
        out[f"{key}.all.current"] = out[f"{key}.small_pool.current"] + out[f"{key}.large_pool.current"]
    out["active.all.current"] = out["allocation.all.current"]
    out["active_bytes.all.current"] = out["allocated_bytes.all.current"]
    return out


@dataclass
class Step:
    """One op of a replay: the state before it, and what the reference made of it."""

    position: int
    op: tuple
    before: tuple
    after: tuple
    address: int | None = None  # a malloc's block (None: out of memory)
    retried: bool = False


class Sim:
    """The reference run, one op at a time (so a random trace grows without replays)."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity, self.state = capacity, ()
        self.handed: dict[int, int | None] = {}
        self.steps: list[Step] = []
        self.peaks = {"allocated": 0, "reserved": 0}
        self.retries = self.ooms = 0

    def retry_needed(self, nbytes: int) -> bool:
        after, _ = ref_malloc(self.state, nbytes)
        return (self.capacity is not None
                and ref_current(after)["reserved_bytes.all.current"] > self.capacity)

    def step(self, op: tuple) -> Step:
        position, state = len(self.steps), self.state
        step = Step(position, op, state, state)
        if op[0] == "malloc":
            after, address = ref_malloc(state, op[1])
            if self.retry_needed(op[1]):
                step.retried, self.retries = True, self.retries + 1
                state = ref_empty(state)
                after, address = ref_malloc(state, op[1])
                if ref_current(after)["reserved_bytes.all.current"] > self.capacity:
                    self.ooms, after, address = self.ooms + 1, state, None
            state, step.address, self.handed[position] = after, address, address
        elif op[0] == "free":
            address = self.handed.pop(op[1])
            if address is not None:
                state = ref_free(state, address)
        else:
            state = ref_empty(state)
        self.state = step.after = state
        self.steps.append(step)
        now = ref_current(state)
        self.peaks["allocated"] = max(self.peaks["allocated"], now["allocated_bytes.all.current"])
        self.peaks["reserved"] = max(self.peaks["reserved"], now["reserved_bytes.all.current"])
        return step

    def stats(self) -> dict[str, int]:
        out = ref_current(self.state)
        out.update({"allocated_bytes.all.peak": self.peaks["allocated"],
                    "reserved_bytes.all.peak": self.peaks["reserved"],
                    "num_alloc_retries": self.retries, "num_ooms": self.ooms})
        return out


def replay(trace, capacity: int | None = None) -> tuple[list[Step], dict[str, int]]:
    """The reference's run of ``trace``: every step, and the stats at the end."""
    sim = Sim(capacity)
    for op in trace:
        sim.step(op)
    return sim.steps, sim.stats()


def ties(state, nbytes: int) -> bool:
    size, (pool, _) = ref_round(nbytes), ref_plan(nbytes)
    fits = candidates(flat(state), pool, size)
    return len(fits) > 1 and fits[0].size == fits[1].size


def tied(steps: list[Step]) -> bool:
    """Whether some malloc of the replay chose between equal best fits by address: the one
    thing the reference decides by its own address rule, which a real device need not share."""
    return any(step.op[0] == "malloc" and (ties(step.before, step.op[1]) or step.retried
                                           and ties(ref_empty(step.before), step.op[1]))
               for step in steps)


# ----------------------------------------------------------------------------- inputs


EDGE_SIZES = [1, 511, 512, 513, 1000, 1023, 1024, 1025, 4096, MiB - 512, MiB - 1, MiB, MiB + 1,
              MiB + 512, MiB + 513, 2 * MiB, 9 * MiB, 10 * MiB - 512, 10 * MiB - 1, 10 * MiB,
              10 * MiB + 1, 12 * MiB, 12 * MiB + 1, 19 * MiB, 20 * MiB, 20 * MiB + 1, 41 * MiB]

# The fixed corpus of traces: (label, trace, capacity). Positions in ("free", i) name the
# malloc at trace[i].
EDGE_TRACES = [
    ("a small block leaves a remainder of exactly 512 B, which is split off",
     [("malloc", MiB), ("malloc", MiB - 512), ("malloc", 300), ("malloc", MiB),
      ("malloc", 512 * KiB), ("malloc", 512 * KiB - 512), ("free", 3), ("malloc", MiB - 512)],
     None),
    ("a large block leaves a remainder of exactly 1 MiB, which is NOT split off",
     [("malloc", 9 * MiB), ("free", 0), ("malloc", 19 * MiB), ("malloc", 12 * MiB), ("free", 3),
      ("malloc", 11 * MiB), ("malloc", 9 * MiB), ("malloc", 10 * MiB)], None),
    ("a request that rounds up leaves exactly 1 MiB of the block: NOT split off (the rule "
     "looks at the rounded size, never at the request as made)",
     [("malloc", 9 * MiB), ("malloc", 10 * MiB - 1), ("malloc", 9 * MiB),
      ("malloc", 10 * MiB - 511), ("malloc", 9 * MiB), ("malloc", 10 * MiB - 300)], None),
    ("a large block leaves 1 MiB + 512 B, which is split off",
     [("malloc", 9 * MiB), ("free", 0), ("malloc", 19 * MiB - 512), ("malloc", MiB + 512)], None),
    ("a 10 MiB - 1 B request rounds to 10 MiB: a segment of its own, not a 20 MiB one",
     [("malloc", 10 * MiB - 1), ("malloc", 10 * MiB - 512), ("malloc", 10 * MiB + 1)], None),
    ("the two pools never share: a 512 B request beside a free 20 MiB block",
     [("malloc", 3 * MiB), ("free", 0), ("malloc", 512), ("malloc", MiB + 1), ("malloc", MiB)],
     None),
    ("best fit takes the smallest block that fits, not the first",
     [("malloc", 5 * MiB), ("malloc", 2 * MiB), ("malloc", 3 * MiB), ("malloc", 2 * MiB),
      ("malloc", 8 * MiB), ("free", 0), ("free", 2), ("malloc", 3 * MiB), ("malloc", 2 * MiB)],
     None),
    ("equal best fits: the lowest address wins",
     [("malloc", 700 * KiB), ("malloc", 600 * KiB), ("malloc", 700 * KiB), ("malloc", 700 * KiB),
      ("malloc", 600 * KiB), ("free", 0), ("free", 3), ("malloc", 650 * KiB),
      ("malloc", 650 * KiB)], None),
    ("equal whole free segments: the lowest address wins",
     [("malloc", 12 * MiB), ("malloc", 12 * MiB), ("malloc", MiB), ("malloc", MiB),
      ("malloc", MiB), ("malloc", MiB), ("free", 0), ("free", 1), ("free", 2), ("free", 3),
      ("free", 4), ("free", 5), ("malloc", 11 * MiB), ("malloc", 100), ("malloc", 11 * MiB),
      ("malloc", 200)], None),
    ("freeing merges with the free neighbour on each side",
     [("malloc", 300 * KiB), ("malloc", 200 * KiB), ("malloc", 100 * KiB), ("malloc", 400 * KiB),
      ("free", 0), ("free", 2), ("free", 1), ("free", 3)], None),
    ("empty_cache releases whole free segments only, and segments return at address 0",
     [("malloc", 100), ("malloc", 2 * MiB), ("malloc", 5 * MiB), ("free", 1), ("malloc", 30 * MiB),
      ("free", 0), ("empty_cache",), ("malloc", 200), ("free", 2), ("free", 4), ("free", 7),
      ("empty_cache",), ("malloc", 700)], None),
    ("an exact fit and a whole segment taken without a split",
     [("malloc", 12 * MiB), ("free", 0), ("malloc", 11 * MiB + 1), ("malloc", 20 * MiB),
      ("free", 3), ("malloc", 19 * MiB + 1)], None),
    ("the cap forces a retry: the cache is flushed and the new segment fits",
     [("malloc", 4 * MiB), ("malloc", 100), ("free", 0), ("malloc", 34 * MiB),
      ("malloc", 12 * MiB)], 54 * MiB),
    ("the cap is hit even after the flush: out of memory, the flush stays done, and the free "
     "of the failed malloc does nothing",
     [("malloc", 600 * KiB), ("malloc", 20 * MiB), ("free", 1), ("malloc", 300),
      ("malloc", 40 * MiB), ("free", 4), ("free", 0)], 40 * MiB),
    ("out of memory after a flush, then a request the flushed segment would have held",
     [("malloc", 3 * MiB), ("malloc", 500), ("free", 0), ("malloc", 60 * MiB),
      ("malloc", 15 * MiB)], 50 * MiB),
    ("a new segment that reaches the cap exactly fits",
     [("malloc", 2 * MiB), ("malloc", 100), ("malloc", 18 * MiB + 1)], 22 * MiB),
    ("a new segment one byte over the cap does not fit",
     [("malloc", 2 * MiB), ("malloc", 100), ("malloc", 18 * MiB + 1)], 22 * MiB - 1),
    ("a first segment as large as the cap fits", [("malloc", 12 * MiB)], 12 * MiB),
    ("a cap reached exactly after a flush",
     [("malloc", 100), ("free", 0), ("malloc", 30 * MiB), ("malloc", 200)], 30 * MiB),
]


def draw_size(rng, history: list[int]) -> int:
    """A request size: boundary-heavy, across both pools, sometimes a size seen before."""
    r = rng.random()
    if history and r < 0.12:
        return history[int(rng.integers(len(history)))]
    if r < 0.22:
        return EDGE_SIZES[int(rng.integers(len(EDGE_SIZES)))]
    if r < 0.55:
        return int(rng.integers(1, MiB + 1)) if rng.random() < 0.5 else int(2 ** rng.uniform(0, 20))
    if r < 0.85:
        return int(rng.integers(MiB + 1, 10 * MiB + 1))
    return int(rng.integers(10 * MiB, 44 * MiB))


def random_trace(rng, ops: int, capacity: int | None = None, *, untied: bool = False) -> list:
    """A valid trace (only live allocations are freed, by the reference's account). With
    ``untied``, no malloc meets equal best fits (see :func:`tied`)."""
    sim, live, sizes = Sim(capacity), [], []
    for _ in range(ops):
        r = rng.random()
        if live and r < 0.38:
            sim.step(("free", live.pop(int(rng.integers(len(live))))))
            continue
        if r < 0.43:
            sim.step(("empty_cache",))
            continue
        for _attempt in range(8):
            size = draw_size(rng, sizes)
            if not untied or not (ties(sim.state, size) or sim.retry_needed(size)
                                  and ties(ref_empty(sim.state), size)):
                break
        else:
            sim.step(("empty_cache",))
            continue
        sizes.append(size)
        if sim.step(("malloc", size)).address is not None:
            live.append(len(sim.steps) - 1)
    return [step.op for step in sim.steps]


def trace_text(trace, capacity=None, limit: int = 14) -> str:
    ops = [f"{i}: " + (f"malloc({n(op[1])})" if op[0] == "malloc" else
                       f"free(the block of {op[1]})" if op[0] == "free" else "empty_cache()")
           for i, op in enumerate(trace)]
    shown = ops if len(ops) <= limit else [*ops[:limit // 2], "...", *ops[-limit // 2:]]
    cap = "" if capacity is None else f", capacity={n(capacity)}"
    return f"trace ({len(trace)} ops{cap}):\n    " + "\n    ".join(shown)


def n(nbytes: int | None) -> str:
    """A byte count as a person reads it: 3 MiB, 1 MiB + 512 B, 2 MiB - 512 B, 700 KiB."""
    if nbytes is None or type(nbytes) is not int:
        return repr(nbytes)
    if nbytes <= 0:
        return f"-{n(-nbytes)}" if nbytes else "0 B"
    mib, rest = divmod(nbytes, MiB)
    if rest == 0:
        return f"{mib} MiB"
    if mib and rest < 64 * KiB:
        return f"{mib} MiB + {rest} B"
    if MiB - rest < 64 * KiB:
        return f"{mib + 1} MiB - {MiB - rest} B"
    if rest % KiB == 0 and not mib:
        return f"{rest // KiB} KiB"
    return f"{nbytes} B"


def picture(state) -> str:
    """A state, one segment a line: address, pool, size, then its blocks."""
    try:
        lines = []
        for seg, pool, blocks in state:
            total = sum(size for size, _ in blocks)
            cells = " | ".join(f"{n(size)} {'used' if allocated else 'free'}"
                               for size, allocated in blocks)
            lines.append(f"      @{n(seg):<16} {pool:<5} {n(total):<14} [{cells}]")
        return "\n".join(lines) or "      (no segments)"
    except (TypeError, ValueError):
        return f"      {state!r}"[:600]


def states_differ(what: str, before, expected, got, hint: str, extra: str = "") -> None:
    fail(f"{what}\n  on this state:\n{picture(before)}\n  expected:\n{picture(expected)}\n"
         f"  got:\n{picture(got)}{extra}\n  Try: {hint}")


def check_state(got, expected, what: str, before, hint: str) -> None:
    """The learner's state must equal the reference's: same segments, same blocks."""
    try:
        assert_equal(got, expected, what)
    except AssertionError:
        states_differ(f"{what}: the state differs.", before, expected, got, hint)


# ----------------------------------------------------------------------------- round_size

ROUND_HINT = ("every request becomes a multiple of kMinBlockSize (512 B), rounded up, and "
              "nothing is smaller than 512 B.")


def check_rounds(impl, sizes) -> None:
    for size in sizes:
        got = call(f"round_size({size})", impl.round_size, size)
        assert_equal(got, ref_round(size), f"round_size({size})", hint=ROUND_HINT)


@pytest.mark.exercise("round_size")
def test_round_size_at_the_boundaries(impl):
    check_rounds(impl, EDGE_SIZES + [2, 1536, 1537, 2 ** 31 + 1])


@pytest.mark.exercise("round_size")
def test_round_size_random(impl, rng):
    sizes = [int(2 ** rng.uniform(0, 33)) for _ in range(40)]
    sizes += [int(rng.integers(1, 64)) * 512 + int(rng.integers(-1, 2)) for _ in range(20)]
    check_rounds(impl, [s for s in sizes if s >= 1])


@pytest.mark.exercise("round_size")
def test_round_size_rejects_empty_requests(impl):
    for bad in (0, -1, -512):
        expect_raises(ValueError, lambda bad=bad: impl.round_size(bad), f"round_size({bad})",
                      hint="a request of 0 bytes or less is not one the allocator ever sees: "
                      "raise ValueError.")


# ----------------------------------------------------------------------------- segment_plan

PLAN_HINT = ("round first; the small pool takes rounded sizes up to kSmallSize (1 MiB) in 2 MiB "
             "segments; a large request below kMinLargeAlloc (10 MiB) gets a 20 MiB segment, "
             "from 10 MiB on one of its own, rounded up to kRoundLarge (2 MiB).")


def check_plans(impl, sizes) -> None:
    for size in sizes:
        got = call(f"segment_plan({size})", impl.segment_plan, size)
        assert_equal(got, ref_plan(size), f"segment_plan({size} = {n(size)})", hint=PLAN_HINT)


@pytest.mark.exercise("segment_plan")
def test_segment_plan_at_the_boundaries(impl):
    check_plans(impl, EDGE_SIZES + [MiB - 511, 10 * MiB - 513, 14 * MiB - 1, 14 * MiB + 512])


@pytest.mark.exercise("segment_plan")
def test_segment_plan_random(impl, rng):
    sizes = [int(2 ** rng.uniform(0, 31)) for _ in range(40)]
    sizes += [int(rng.integers(1, 40)) * 2 * MiB + int(rng.integers(-600, 600)) for _ in range(20)]
    check_plans(impl, [s for s in sizes if s >= 1])


@pytest.mark.exercise("segment_plan")
def test_segment_plan_rejects_empty_requests(impl):
    for bad in (0, -3):
        expect_raises(ValueError, lambda bad=bad: impl.segment_plan(bad), f"segment_plan({bad})",
                      hint="a request of 0 bytes or less has no pool: raise ValueError.")


# ----------------------------------------------------------------------------- malloc

MALLOC_HINT = ("best fit: the smallest free block of the request's own pool that holds the "
               "rounded size (equal sizes: the lowest address); none: a new segment after the "
               "last one. Then split off the rest only if the pool's rule says so (small: at "
               "least 512 B left; large: more than 1 MiB left), keeping the front.")


def why_malloc(state, nbytes: int) -> str:
    """What the reference's malloc decided, in words: the block, and the cut."""
    size, (pool, segment) = ref_round(nbytes), ref_plan(nbytes)
    fits = candidates(flat(state), pool, size)
    block = fits[0].size if fits else segment
    rest = block - size
    cut = rest >= 512 if pool == "small" else rest > MiB
    source = (f"the cached free block of {n(block)} at @{n(fits[0].address)}, the best fit "
              f"in the {pool} pool" if fits else
              f"a new {pool} segment of {n(segment)}: no free block of the {pool} pool holds it")
    return (f"\n  The reference rounds {n(nbytes)} to {n(size)} and takes {source}; it leaves "
            f"{n(rest)}, which {'is' if cut else 'is NOT'} cut off (the {pool} pool cuts when "
            f"{'at least 512 B' if pool == 'small' else 'more than 1 MiB'} would remain).")


def check_malloc(impl, state, nbytes: int, label: str) -> None:
    what = f"{label}: malloc(state, {nbytes} = {n(nbytes)})"
    got = call(what, impl.malloc, state, nbytes)
    expected_state, expected_address = ref_malloc(state, nbytes)
    if type(got) is not tuple or len(got) != 2:
        fail(f"{what}: expected a tuple (new state, address), got {got!r}"[:400])
    try:
        assert_equal(got[0], expected_state, what)
    except AssertionError:
        states_differ(f"{what}: the state differs.", state, expected_state, got[0], MALLOC_HINT,
                      why_malloc(state, nbytes))
    if type(got[1]) is not int or got[1] != expected_address:
        states_differ(f"{what}: the address handed out differs: expected {expected_address} "
                      f"(@{n(expected_address)}), got {got[1]!r}.", state, expected_state,
                      got[0], MALLOC_HINT, why_malloc(state, nbytes))


def check_mallocs_along(impl, trace, capacity, label: str) -> int:
    """Every malloc of the reference's replay, asked of the learner on the same state."""
    steps, _ = replay(trace, capacity)
    count = 0
    for step in steps:
        if step.op[0] == "malloc":
            before = ref_empty(step.before) if step.retried else step.before
            check_malloc(impl, before, step.op[1], f"{label}, op {step.position}")
            count += 1
    return count


@pytest.mark.exercise("malloc")
def test_malloc_on_an_empty_cache(impl):
    for size in EDGE_SIZES:
        check_malloc(impl, (), size, "a fresh allocator")


@pytest.mark.exercise("malloc")
def test_malloc_edge_scenarios(impl):
    for label, trace, capacity in EDGE_TRACES:
        check_mallocs_along(impl, trace, capacity, label)


@pytest.mark.exercise("malloc")
def test_malloc_along_random_traces(impl, rng):
    for i in range(5):
        check_mallocs_along(impl, random_trace(rng, 40), None, f"random trace {i + 1}")


@pytest.mark.exercise("malloc")
def test_malloc_rejects_empty_requests_and_leaves_the_state(impl):
    state = ref_malloc((), 3 * MiB)[0]
    expect_raises(ValueError, lambda: impl.malloc(state, 0), "malloc(state, 0)",
                  hint="a 0-byte request gets no block: raise ValueError.")


# ----------------------------------------------------------------------------- free

FREE_HINT = ("mark the block free, then merge it with the previous and with the next block of "
             "the same segment when they are free: no two free blocks may sit side by side. "
             "Segments never merge with each other.")


def check_free(impl, state, address: int, label: str) -> None:
    what = f"{label}: free(state, {address} = @{n(address)})"
    got = call(what, impl.free, state, address)
    check_state(got, ref_free(state, address), what, state, FREE_HINT)


def check_frees_along(impl, trace, capacity, label: str) -> None:
    steps, _ = replay(trace, capacity)
    handed = {s.position: s.address for s in steps if s.op[0] == "malloc"}
    for step in steps:
        if step.op[0] == "free" and handed[step.op[1]] is not None:
            check_free(impl, step.before, handed[step.op[1]], f"{label}, op {step.position}")


@pytest.mark.exercise("free")
def test_free_edge_scenarios(impl):
    for label, trace, capacity in EDGE_TRACES:
        check_frees_along(impl, trace, capacity, label)
    # every block of a segment cut in five, freed in each order that merges differently
    sizes = [100 * KiB, 200 * KiB, 300 * KiB, 50 * KiB, 150 * KiB]
    for order in ((0, 1, 2, 3, 4), (4, 3, 2, 1, 0), (1, 3, 2, 0, 4), (0, 2, 4, 1, 3),
                  (2, 0, 4, 3, 1)):
        trace = [("malloc", s) for s in sizes] + [("free", i) for i in order]
        check_frees_along(impl, trace, None, f"five blocks freed in the order {order}")


@pytest.mark.exercise("free")
def test_free_along_random_traces(impl, rng):
    for i in range(5):
        check_frees_along(impl, random_trace(rng, 40), None, f"random trace {i + 1}")


@pytest.mark.exercise("free")
def test_free_rejects_what_is_not_an_allocated_block(impl):
    state = ()
    for size in (700 * KiB, 300 * KiB, 3 * MiB):
        state = ref_malloc(state, size)[0]
    state = ref_free(state, 0)  # @0 [700 KiB free | 300 KiB used | 1 MiB free], @2 MiB large
    state = ref_malloc(state, 4 * MiB)[0]
    state = ref_free(state, 2 * MiB)  # @2 MiB [3 MiB free | 4 MiB used | 13 MiB free]
    state = ref_malloc(state, 50 * MiB)[0]
    state = ref_free(state, 22 * MiB)  # @22 MiB [50 MiB free]
    for address, why in ((0, "a free block"), (MiB, "a free block"), (2 * MiB, "a free block"),
                         (9 * MiB, "a free block"), (22 * MiB, "a whole free segment"),
                         (512, "the middle of a block"), (2 * MiB - 5, "not a block's start"),
                         (99 * MiB, "no segment at all")):
        expect_raises(ValueError, lambda a=address: impl.free(state, a),
                      f"free(state, {address} = @{n(address)}), {why}, on this state:\n"
                      f"{picture(state)}\n ",
                      hint="only the start of an allocated block can be freed: raise ValueError "
                      "for anything else (a double free included).")


# ----------------------------------------------------------------------------- empty_cache

EMPTY_HINT = ("release (drop) every segment that is one whole free block; a segment that "
              "still holds an allocated block stays, free pieces and all, at its address.")


def check_empties_along(impl, trace, capacity, label: str) -> None:
    steps, _ = replay(trace, capacity)
    for step in steps:
        what = f"{label}, after op {step.position}: empty_cache(state)"
        got = call(what, impl.empty_cache, step.after)
        check_state(got, ref_empty(step.after), what, step.after, EMPTY_HINT)


@pytest.mark.exercise("empty_cache")
def test_empty_cache_edge_scenarios(impl):
    got = call("empty_cache(())", impl.empty_cache, ())
    assert_equal(got, (), "empty_cache of an allocator that holds nothing", hint=EMPTY_HINT)
    for label, trace, capacity in EDGE_TRACES:
        check_empties_along(impl, trace, capacity, label)


@pytest.mark.exercise("empty_cache")
def test_empty_cache_along_random_traces(impl, rng):
    for i in range(4):
        check_empties_along(impl, random_trace(rng, 30), None, f"random trace {i + 1}")


# ----------------------------------------------------------------------------- memory_stats

STATS_HINT = ("replay the trace with your malloc, free and empty_cache, then read the stats off "
              "the final state (allocated = blocks handed out, whole block sizes; reserved = "
              "segments; inactive_split = free blocks in segments that hold more than one "
              "block) and keep the peaks and the retry/OOM counters as you go.")


def stats_of(impl, trace, capacity, what: str) -> dict:
    got = call(what, impl.memory_stats, trace, capacity)
    if type(got) is not dict:
        fail(f"{what}: expected a dict of the stats, got {got!r}"[:400])
    return got


def compare_stats(impl, trace, capacity, label: str, expected: dict | None = None,
                  source: str = "the reference") -> None:
    expected = expected if expected is not None else replay(trace, capacity)[1]
    what = f"{label}: memory_stats(trace, capacity={capacity})"
    got = stats_of(impl, trace, capacity, what)
    missing = [k for k in STAT_KEYS if k not in got]
    if missing:
        fail(f"{what}: the dict lacks {missing[:4]}; it needs every key of STAT_KEYS.")
    wrong = [k for k in STAT_KEYS if type(got[k]) is not int or got[k] != expected[k]]
    if not wrong:
        return
    # the first op after which the two disagree: replay growing prefixes (only on failure)
    first = len(trace)
    for end in range(1, len(trace) + 1):
        mine = stats_of(impl, trace[:end], capacity, what)
        theirs = replay(trace[:end], capacity)[1]
        if any(mine.get(k) != theirs[k] for k in STAT_KEYS):
            first = end
            break
    table = "\n".join(f"    {k:<36} expected {expected[k]:>11}   got {got[k]!r}" for k in wrong)
    steps, _ = replay(trace[:first], capacity)
    fail(f"{what} differs from {source} in:\n{table}\n  {trace_text(trace, capacity)}\n"
         f"  The first op after which the stats differ is op {first - 1} ({trace[first - 1]}); "
         f"the reference's state after it:\n{picture(steps[-1].after)}\n  Try: {STATS_HINT}")


# Model-only traces: a cap of 0 (no cudaMalloc may succeed) is not replayed on a GPU.
ZERO_CAP_TRACES = [
    ("a capacity of 0: every cudaMalloc fails, each malloc is retried once and runs out",
     [("malloc", 1), ("free", 0), ("malloc", 3 * MiB)], 0),
    ("a capacity of 0 after an empty_cache", [("empty_cache",), ("malloc", 25 * MiB),
                                               ("malloc", 512)], 0),
    ("a capacity of 0 and one large request", [("malloc", 11 * MiB + 1)], 0),
]


@pytest.mark.exercise("memory_stats")
def test_memory_stats_edge_traces(impl):
    for label, trace, capacity in EDGE_TRACES + ZERO_CAP_TRACES:
        compare_stats(impl, trace, capacity, label)
    compare_stats(impl, [], None, "an empty trace")


@pytest.mark.exercise("memory_stats")
def test_memory_stats_random_traces(impl, rng):
    for i in range(5):
        compare_stats(impl, random_trace(rng, 50), None, f"random trace {i + 1}")


@pytest.mark.exercise("memory_stats")
def test_memory_stats_under_a_capacity(impl, rng):
    for i in range(5):
        capacity = int(rng.integers(30, 90)) * MiB + int(rng.integers(0, 4)) * 512
        compare_stats(impl, random_trace(rng, 50, capacity), capacity,
                      f"random trace {i + 1} under a capacity")


@pytest.mark.exercise("memory_stats")
def test_memory_stats_rejects_a_free_of_nothing(impl):
    failed = "a malloc that ran out of memory, freed twice"
    for trace, capacity, why in (
            ([("malloc", 512), ("free", 0), ("free", 0)], None, "a double free"),
            ([("malloc", 512), ("free", 5)], None, "a free of no malloc"),
            ([("empty_cache",), ("free", 0)], None, "a free of an empty_cache"),
            ([("malloc", 60 * MiB), ("free", 0), ("free", 0)], 50 * MiB, failed),
            ([("malloc", 100), ("malloc", 40 * MiB), ("free", 1), ("malloc", 200), ("free", 1)],
             30 * MiB, failed),
            ([("malloc", 3 * MiB), ("free", 0), ("free", 0), ("malloc", 512)], 0, failed),
            ([("malloc", 0)], None, "a malloc of 0 bytes (malloc() refuses it)"),
            ([("malloc", 512), ("malloc", -1)], None, "a malloc of -1 bytes"),
            ([("malloc", 512), ("alloc", 512)], None, "an op that is not one"),
            ([("reset",)], None, "an op that is not one"),
            ([("malloc", 512), ("flush", "empty_cache")], None, "an op that is not one")):
        expect_raises(ValueError, lambda t=trace, c=capacity: impl.memory_stats(t, c),
                      f"memory_stats({trace}, capacity={capacity}), {why}",
                      hint="a free must name the position of a malloc in the trace that has not "
                      "been freed yet (a malloc that ran out of memory may be freed once: it "
                      "does nothing), a malloc asks for 1 byte or more, and an op is malloc, "
                      "free or empty_cache; raise ValueError otherwise.")


# ----------------------------------------------------------------------------- on a real GPU


def fraction_for(capacity: int, total: int) -> float:
    """The fraction of the device's ``total`` bytes for which the allocator's cap comes out at
    exactly ``capacity``: it computes ``(size_t)(fraction * total)`` (setMemoryFraction)."""
    import math

    fraction = capacity / total
    while int(fraction * float(total)) < capacity:
        fraction = math.nextafter(fraction, 2.0)
    while int(fraction * float(total)) > capacity:
        fraction = math.nextafter(fraction, 0.0)
    return fraction


def replay_on_device(trace, fraction: float | None) -> dict[str, int]:
    """``trace`` run with real CUDA tensors of uint8 (one byte each): the device's stats."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.reset_accumulated_memory_stats()
    held = torch.cuda.memory_stats()
    if held.get("reserved_bytes.all.current", 0):
        fail(f"the device holds {n(held['reserved_bytes.all.current'])} of CUDA memory that no "
             "trace allocated, so its stats cannot be compared with a simulator. Does your "
             "file create CUDA tensors (it may not even import torch)?")
    tensors: dict[int, object] = {}
    try:
        if fraction is not None:
            torch.cuda.set_per_process_memory_fraction(fraction)
        for position, op in enumerate(trace):
            if op[0] == "malloc":
                try:
                    tensors[position] = torch.empty(op[1], dtype=torch.uint8, device="cuda")
                except torch.OutOfMemoryError:
                    tensors[position] = None
            elif op[0] == "free":
                del tensors[op[1]]
            else:
                torch.cuda.empty_cache()
        stats = torch.cuda.memory_stats()
    finally:
        tensors.clear()
        if fraction is not None:
            torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    return {k: int(stats.get(k, 0)) for k in STAT_KEYS}


@pytest.mark.exercise("memory_stats")
@pytest.mark.needs_device("cuda")
def test_memory_stats_match_torch_cuda_memory_stats(impl, rng):
    """Where a GPU is present, the real allocator is the oracle: each trace runs with real
    tensors, and torch.cuda.memory_stats() must equal what the learner's simulator says.
    Traces whose mallocs meet equal best fits are left out (which of them the device takes
    depends on the addresses cudaMalloc returned, which no simulator knows)."""
    import torch

    for name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):
        if os.environ.get(name):
            fail(f"{name}={os.environ[name]} changes the allocator's policy; this check replays "
                 "on your GPU with the default settings. Unset it and check again.")
    total = torch.cuda.mem_get_info()[1]
    cases = [(label, trace, capacity) for label, trace, capacity in EDGE_TRACES]
    cases += [(f"random trace {i + 1}", random_trace(rng, 40, untied=True), None) for i in range(3)]
    for i in range(3):
        capacity = int(rng.integers(40, 90)) * MiB + int(rng.integers(0, 3)) * 512
        cases.append((f"random trace {i + 1} under a capacity",
                      random_trace(rng, 40, capacity, untied=True), capacity))
    compared = 0
    for label, trace, capacity in cases:
        steps, reference = replay(trace, capacity)
        if tied(steps):
            continue
        device = replay_on_device(trace, None if capacity is None else fraction_for(capacity, total))
        mine = stats_of(impl, trace, capacity, f"{label} on the GPU: memory_stats(trace, {capacity})")
        compared += 1
        if mine == device:
            continue
        if reference != device:
            wrong = [k for k in STAT_KEYS if reference[k] != device[k]]
            fail(f"{label}: this GPU's allocator disagrees with the kata's own reference model "
                 f"in {wrong}: a defect of the kata, not of your code. Please report it with "
                 f"this seed and `python -c 'import torch; print(torch.__version__)'`.\n"
                 f"  {trace_text(trace, capacity)}")
        compare_stats(impl, trace, capacity, f"{label} on the GPU", expected=device,
                      source="torch.cuda.memory_stats() on this GPU")
    if not compared:
        fail("no trace was free of ties: nothing was compared with the GPU (a defect of the kata).")
