"""caching_allocator, written a third way: segments worked on as lists, best fit found by
sorting every candidate, merging by one pass over the segment, stats counted in one walk."""

from __future__ import annotations

import math

MiB = 1024 ** 2
STAT_KEYS = (
    "allocation.all.current", "segment.all.current", "active.all.current",
    "inactive_split.all.current", "allocated_bytes.all.current", "allocated_bytes.all.peak",
    "reserved_bytes.all.current", "reserved_bytes.all.peak", "active_bytes.all.current",
    "inactive_split_bytes.all.current", "allocated_bytes.small_pool.current",
    "allocated_bytes.large_pool.current", "reserved_bytes.small_pool.current",
    "reserved_bytes.large_pool.current", "num_alloc_retries", "num_ooms",
)


def round_size(nbytes):
    if not nbytes >= 1:
        raise ValueError(nbytes)
    return 512 * max(1, math.ceil(nbytes / 512))


def segment_plan(nbytes):
    size = round_size(nbytes)
    pool = "small" if size <= MiB else "large"
    if pool == "small":
        return pool, 2 * MiB
    return pool, 20 * MiB if size < 10 * MiB else 2 * MiB * math.ceil(size / (2 * MiB))


def malloc(state, nbytes):
    size = round_size(nbytes)
    pool, fresh = segment_plan(nbytes)
    segments = [[addr, kind, list(blocks)] for addr, kind, blocks in state]
    options = []
    for si, (addr, kind, blocks) in enumerate(segments):
        if kind != pool:
            continue
        offset = 0
        for bi, (bsize, used) in enumerate(blocks):
            if not used and bsize >= size:
                options.append((bsize, addr + offset, si, bi))
            offset += bsize
    if not options:
        start = 0
        if segments:
            last = segments[-1]
            start = last[0] + sum(b[0] for b in last[2])
        segments.append([start, pool, [(fresh, False)]])
        options = [(fresh, start, len(segments) - 1, 0)]
    options.sort()
    bsize, where, si, bi = options[0]
    spare = bsize - size
    cut = spare >= 512 if pool == "small" else spare > MiB
    blocks = segments[si][2]
    blocks[bi:bi + 1] = [(size, True), (spare, False)] if cut else [(bsize, True)]
    return tuple((a, k, tuple(b)) for a, k, b in segments), where


def free(state, address):
    out, found = [], False
    for addr, kind, blocks in state:
        offset, marked = addr, []
        for bsize, used in blocks:
            if offset == address and used:
                used, found = False, True
            marked.append((bsize, used))
            offset += bsize
        out.append((addr, kind, marked))
    if not found:
        raise ValueError(address)
    # free neighbours merge: one pass over each segment (only the freed block has any)
    result = []
    for addr, kind, blocks in out:
        merged = []
        for block in blocks:
            if merged and not merged[-1][1] and not block[1]:
                merged[-1] = (merged[-1][0] + block[0], False)
            else:
                merged.append(block)
        result.append((addr, kind, tuple(merged)))
    return tuple(result)


def empty_cache(state):
    kept = []
    for segment in state:
        if any(used for _, used in segment[2]):
            kept.append(segment)
    return tuple(kept)


def memory_stats(trace, capacity=None):
    state, where = (), {}
    counters = dict.fromkeys(("num_alloc_retries", "num_ooms", "allocated_bytes.all.peak",
                              "reserved_bytes.all.peak"), 0)

    def held(st):
        return sum(size for _, _, blocks in st for size, _ in blocks)

    def live(st):
        return sum(size for _, _, blocks in st for size, used in blocks if used)

    for i, op in enumerate(trace):
        if op[0] == "malloc":
            attempt = malloc(state, op[1])
            if capacity is not None and held(attempt[0]) > capacity:
                counters["num_alloc_retries"] += 1
                state = empty_cache(state)
                attempt = malloc(state, op[1])
                if held(attempt[0]) > capacity:
                    counters["num_ooms"] += 1
                    attempt = (state, None)
            state, where[i] = attempt
        elif op[0] == "free":
            if op[1] not in where:
                raise ValueError(f"bad free {op}")
            address = where.pop(op[1])
            if address is not None:
                state = free(state, address)
        elif op[0] == "empty_cache":
            state = empty_cache(state)
        else:
            raise ValueError(op)
        counters["allocated_bytes.all.peak"] = max(counters["allocated_bytes.all.peak"], live(state))
        counters["reserved_bytes.all.peak"] = max(counters["reserved_bytes.all.peak"], held(state))
    out = dict.fromkeys(STAT_KEYS, 0)
    out.update(counters)
    for _, kind, blocks in state:
        out["segment.all.current"] += 1
        for size, used in blocks:
            out[f"reserved_bytes.{kind}_pool.current"] += size
            out["reserved_bytes.all.current"] += size
            if used:
                for key in ("allocation.all.current", "active.all.current"):
                    out[key] += 1
                for key in ("allocated_bytes.all.current", "active_bytes.all.current",
                            f"allocated_bytes.{kind}_pool.current"):
                    out[key] += size
            elif len(blocks) > 1:
                out["inactive_split.all.current"] += 1
                out["inactive_split_bytes.all.current"] += size
    return out
