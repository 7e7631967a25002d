"""Kata 27 — caching_allocator: PyTorch's CUDA caching allocator, simulated. Reference."""

from __future__ import annotations

MiB = 1024 * 1024

MIN_BLOCK = 512            # kMinBlockSize: every request is rounded up to a multiple of it
SMALL_SIZE = 1 * MiB       # kSmallSize: the largest request of the small pool
SMALL_BUFFER = 2 * MiB     # kSmallBuffer: the small pool's segment
LARGE_BUFFER = 20 * MiB    # large_segment_size: the segment of a 1-10 MiB request
MIN_LARGE_ALLOC = 10 * MiB  # kMinLargeAlloc: from here a request gets a segment of its own
ROUND_LARGE = 2 * MiB      # kRoundLarge: ... rounded up to a multiple of this

STAT_KEYS = (
    "allocation.all.current", "segment.all.current", "active.all.current",
    "inactive_split.all.current", "allocated_bytes.all.current", "allocated_bytes.all.peak",
    "reserved_bytes.all.current", "reserved_bytes.all.peak", "active_bytes.all.current",
    "inactive_split_bytes.all.current", "allocated_bytes.small_pool.current",
    "allocated_bytes.large_pool.current", "reserved_bytes.small_pool.current",
    "reserved_bytes.large_pool.current", "num_alloc_retries", "num_ooms",
)

Block = tuple[int, bool]
Segment = tuple[int, str, tuple[Block, ...]]
State = tuple[Segment, ...]


def _positive(nbytes: int) -> None:
    if nbytes < 1:
        raise ValueError(f"a request is at least 1 byte, got {nbytes}")


def round_size(nbytes: int) -> int:
    _positive(nbytes)
    return -(-nbytes // MIN_BLOCK) * MIN_BLOCK  # rounded up: at least one block


def segment_plan(nbytes: int) -> tuple[str, int]:
    size = round_size(nbytes)
    if size <= SMALL_SIZE:
        return "small", SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return "large", LARGE_BUFFER
    return "large", -(-size // ROUND_LARGE) * ROUND_LARGE


def _should_split(pool: str, block: int, size: int) -> bool:
    remaining = block - size
    return remaining >= MIN_BLOCK if pool == "small" else remaining > SMALL_SIZE


def malloc(state: State, nbytes: int) -> tuple[State, int]:
    size = round_size(nbytes)
    pool, new_segment = segment_plan(nbytes)
    best = None  # (block size, address, segment index, block index)
    for s, (address, kind, blocks) in enumerate(state):
        at = address
        for b, (block, allocated) in enumerate(blocks):
            if kind == pool and not allocated and block >= size:
                best = min(best or (block, at, s, b), (block, at, s, b))
            at += block
    segments = list(state)
    if best is None:
        last = state[-1] if state else None
        start = last[0] + sum(block for block, _ in last[2]) if last else 0
        segments.append((start, pool, ((new_segment, False),)))
        best = (new_segment, start, len(segments) - 1, 0)
    block, at, s, b = best
    address, kind, blocks = segments[s]
    if _should_split(pool, block, size):
        taken: tuple[Block, ...] = ((size, True), (block - size, False))
    else:
        taken = ((block, True),)
    segments[s] = (address, kind, blocks[:b] + taken + blocks[b + 1:])
    return tuple(segments), at


def free(state: State, address: int) -> State:
    for s, (start, kind, blocks) in enumerate(state):
        at = start
        for b, (block, allocated) in enumerate(blocks):
            if at == address and allocated:
                merged = list(blocks[:b]) + [(block, False)] + list(blocks[b + 1:])
                if b + 1 < len(merged) and not merged[b + 1][1]:
                    merged[b:b + 2] = [(merged[b][0] + merged[b + 1][0], False)]
                if b > 0 and not merged[b - 1][1]:
                    merged[b - 1:b + 1] = [(merged[b - 1][0] + merged[b][0], False)]
                return state[:s] + ((start, kind, tuple(merged)),) + state[s + 1:]
            at += block
    raise ValueError(f"no allocated block starts at address {address}")


def empty_cache(state: State) -> State:
    return tuple(seg for seg in state if any(allocated for _, allocated in seg[2]))


def _current(state: State) -> dict[str, int]:
    stats = dict.fromkeys(STAT_KEYS, 0)
    for _, pool, blocks in state:
        stats["segment.all.current"] += 1
        stats[f"reserved_bytes.{pool}_pool.current"] += sum(size for size, _ in blocks)
        for size, allocated in blocks:
            if allocated:
                stats["allocation.all.current"] += 1
                stats[f"allocated_bytes.{pool}_pool.current"] += size
            elif len(blocks) > 1:
                stats["inactive_split.all.current"] += 1
                stats["inactive_split_bytes.all.current"] += size
    stats["active.all.current"] = stats["allocation.all.current"]
    for what in ("allocated_bytes", "reserved_bytes"):
        stats[f"{what}.all.current"] = (stats[f"{what}.small_pool.current"]
                                        + stats[f"{what}.large_pool.current"])
    stats["active_bytes.all.current"] = stats["allocated_bytes.all.current"]
    return stats


def _reserved(state: State) -> int:
    return sum(size for _, _, blocks in state for size, _ in blocks)


def memory_stats(trace: list[tuple], capacity: int | None = None) -> dict[str, int]:
    state: State = ()
    handed: dict[int, int | None] = {}  # trace position of a malloc -> its address (None: OOM)
    retries = ooms = peak_allocated = peak_reserved = 0
    for position, op in enumerate(trace):
        if op[0] == "malloc":
            after, address = malloc(state, op[1])
            if capacity is not None and _reserved(after) > capacity:
                state = empty_cache(state)
                retries += 1
                after, address = malloc(state, op[1])
                if _reserved(after) > capacity:
                    ooms += 1
                    after, address = state, None
            state, handed[position] = after, address
        elif op[0] == "free":
            if op[1] not in handed:
                raise ValueError(f"trace[{position}] frees trace[{op[1]}], which allocated nothing")
            address = handed.pop(op[1])
            if address is not None:
                state = free(state, address)
        elif op[0] == "empty_cache":
            state = empty_cache(state)
        else:
            raise ValueError(f"trace[{position}] is not an operation: {op!r}")
        now = _current(state)
        peak_allocated = max(peak_allocated, now["allocated_bytes.all.current"])
        peak_reserved = max(peak_reserved, now["reserved_bytes.all.current"])
    stats = _current(state)
    stats.update({"allocated_bytes.all.peak": peak_allocated,
                  "reserved_bytes.all.peak": peak_reserved,
                  "num_alloc_retries": retries, "num_ooms": ooms})
    return stats
