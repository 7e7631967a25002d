"""Known mistakes for the caching_allocator kata."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake

MiB = 1024 * 1024


def _ref():
    return _solution_of("caching_allocator")


# ----------------------------------------------------------------------------- round_size


@mistake("round_size", "Rounded down to a multiple of 512 instead of up: the block is smaller than the request.")
def rounds_down(nbytes):
    if nbytes < 1:
        raise ValueError(nbytes)
    return max(512, nbytes // 512 * 512)


@mistake("round_size", "Added a whole 512 B block even when the size was already a multiple of 512.")
def always_adds_a_block(nbytes):
    if nbytes < 1:
        raise ValueError(nbytes)
    return nbytes // 512 * 512 + 512


@mistake("round_size", "Rounded up to a power of two (that is the roundup_power2_divisions setting, off by default).")
def power_of_two(nbytes):
    if nbytes < 1:
        raise ValueError(nbytes)
    return max(512, 1 << (nbytes - 1).bit_length())


@mistake("round_size", "No error for a request of 0 bytes or less: it was rounded like any other.")
def zero_is_a_request(nbytes):
    return max(512, -(-nbytes // 512) * 512)


# ----------------------------------------------------------------------------- segment_plan


def _plan(nbytes, *, rounded=True, small_inclusive=True, share_inclusive=False,
          round_large=2 * MiB):
    if nbytes < 1:
        raise ValueError(nbytes)
    size = _ref().round_size(nbytes) if rounded else nbytes
    if size < MiB or small_inclusive and size == MiB:
        return "small", 2 * MiB
    if size < 10 * MiB or share_inclusive and size == 10 * MiB:
        return "large", 20 * MiB
    return "large", -(-size // round_large) * round_large


@mistake("segment_plan", "Chose the pool and the segment from the request as made, not from the rounded size: 10 MiB - 1 B got a shared 20 MiB segment.")
def plans_on_the_raw_size(nbytes):
    return _plan(nbytes, rounded=False)


@mistake("segment_plan", "A request of exactly 10 MiB still shared a 20 MiB segment: kMinLargeAlloc starts the segments of their own.")
def ten_mib_shares(nbytes):
    return _plan(nbytes, share_inclusive=True)


@mistake("segment_plan", "A large request of 10 MiB or more got exactly its rounded size from cudaMalloc, not a multiple of kRoundLarge (2 MiB).")
def large_not_rounded_to_2mib(nbytes):
    return _plan(nbytes, round_large=512)


@mistake("segment_plan", "The small pool stopped below 1 MiB: a request of exactly kSmallSize went to the large pool.")
def one_mib_is_large(nbytes):
    return _plan(nbytes, small_inclusive=False)


# ----------------------------------------------------------------------------- malloc


def _malloc(state, nbytes, *, best=True, pools=True, small_min=512, large_more=MiB,
            large_inclusive=False, front=True, highest_tie=False, place="end", raw_rest=False):
    """malloc with one part of the policy changed."""
    ref = _ref()
    size = ref.round_size(nbytes)
    pool, segment = ref.segment_plan(nbytes)
    found = []
    for s, (address, kind, blocks) in enumerate(state):
        at = address
        for b, (block, allocated) in enumerate(blocks):
            if (kind == pool or not pools) and not allocated and block >= size:
                found.append((block, -at if highest_tie else at, s, b, at))
            at += block
    segments = list(state)
    if found:
        pick = min(found) if best else min(found, key=lambda f: f[4])
        block, _, s, b, at = pick
    else:
        if place == "end":
            start = (state[-1][0] + sum(x for x, _ in state[-1][2])) if state else 0
        else:  # the reserved total, as if segments were packed from 0
            start = sum(x for _, _, blocks in state for x, _ in blocks)
        segments.append((start, pool, ((segment, False),)))
        segments.sort(key=lambda seg: seg[0])
        s = next(i for i, seg in enumerate(segments) if seg[0] == start)
        block, b, at = segment, 0, start
    address, kind, blocks = segments[s]
    rest = block - size
    if raw_rest:  # the remainder the unrounded request would leave decides the split
        split = rest > 0 and (block - nbytes >= small_min if kind == "small"
                              else block - nbytes > large_more)
    elif kind == "small":
        split = rest >= small_min
    else:
        split = rest >= large_more if large_inclusive else rest > large_more
    if split:
        taken = ((size, True), (rest, False)) if front else ((rest, False), (size, True))
        if not front:
            at += rest
    else:
        taken = ((block, True),)
    segments[s] = (address, kind, blocks[:b] + taken + blocks[b + 1:])
    return tuple(segments), at


@mistake("malloc", "First fit: took the first free block (by address) that was large enough, not the smallest one.")
def first_fit(state, nbytes):
    return _malloc(state, nbytes, best=False)


@mistake("malloc", "A large block was split when exactly 1 MiB would remain: the large pool splits only when MORE than kSmallSize remains.")
def splits_at_exactly_1mib(state, nbytes):
    return _malloc(state, nbytes, large_inclusive=True)


@mistake("malloc", "The small pool's rule was applied to large blocks too: any remainder of 512 B or more was split off.")
def large_splits_like_small(state, nbytes):
    return _malloc(state, nbytes, large_more=511)


@mistake("malloc", "A small block was split only when more than 512 B would remain: a remainder of exactly kMinBlockSize is split off too.")
def small_needs_more_than_512(state, nbytes):
    return _malloc(state, nbytes, small_min=513)


@mistake("malloc", "Free blocks of the other pool were reused: a small request took a piece of a large block (the pools never share).")
def pools_mixed(state, nbytes):
    return _malloc(state, nbytes, pools=False)


@mistake("malloc", "Handed out the END of the block and kept the remainder in front: the allocator keeps the front for the request.")
def remainder_in_front(state, nbytes):
    return _malloc(state, nbytes, front=False)


@mistake("malloc", "Whether to split was decided on the request as made, not on its rounded size: a block that leaves exactly 1 MiB after the rounded size was split.")
def splits_on_the_request(state, nbytes):
    return _malloc(state, nbytes, raw_rest=True)


@mistake("malloc", "Equal best fits were broken towards the highest address: the lowest address wins.")
def ties_to_the_highest_address(state, nbytes):
    return _malloc(state, nbytes, highest_tie=True)


@mistake("malloc", "A new segment was placed at the total of the reserved bytes, as if segments were packed from 0: it starts where the last segment ends.")
def new_segment_at_reserved_total(state, nbytes):
    return _malloc(state, nbytes, place="packed")


# ----------------------------------------------------------------------------- free


def _free(state, address, *, after=True, before=True, check=True):
    for s, (start, kind, blocks) in enumerate(state):
        at = start
        for b, (block, allocated) in enumerate(blocks):
            if at == address and (allocated or not check):
                merged = [*blocks[:b], (block, False), *blocks[b + 1:]]
                if after and b + 1 < len(merged) and not merged[b + 1][1]:
                    merged[b:b + 2] = [(merged[b][0] + merged[b + 1][0], False)]
                if before and b > 0 and not merged[b - 1][1]:
                    merged[b - 1:b + 1] = [(merged[b - 1][0] + merged[b][0], False)]
                return (*state[:s], (start, kind, tuple(merged)), *state[s + 1:])
            at += block
    raise ValueError(address)


@mistake("free", "The block was only marked free, never merged: free neighbours stay side by side, and no segment is ever whole again.")
def no_merge(state, address):
    return _free(state, address, after=False, before=False)


@mistake("free", "Merged only with the next block: a free block before it stays separate.")
def merges_forward_only(state, address):
    return _free(state, address, before=False)


@mistake("free", "Merged only with the previous block: a free block after it stays separate.")
def merges_backward_only(state, address):
    return _free(state, address, after=False)


@mistake("free", "Freeing a block that is already free went through silently (a double free must raise ValueError).")
def double_free_allowed(state, address):
    return _free(state, address, check=False)


# ----------------------------------------------------------------------------- empty_cache


@mistake("empty_cache", "Released every free block, also the free pieces of segments still in use: CUDA can only take back whole segments.")
def releases_free_pieces(state):
    out = []
    for address, pool, blocks in state:
        kept = tuple(b for b in blocks if b[1])
        if kept:
            out.append((address, pool, kept))
    return tuple(out)


@mistake("empty_cache", "Released everything, allocated blocks included: empty_cache only gives back what nothing uses.")
def releases_everything(state):
    return ()


@mistake("empty_cache", "Moved the remaining segments down to close the gaps: a segment is never moved, its address is its memory.")
def compacts(state):
    out, at = [], 0
    for _, pool, blocks in _ref().empty_cache(state):
        out.append((at, pool, blocks))
        at += sum(size for size, _ in blocks)
    return tuple(out)


# ----------------------------------------------------------------------------- memory_stats


def _stats(trace, capacity=None, *, flush=True, keep_flush=True, inclusive=False,
           peaks=True, requested=False, inactive_all=False, active_reserved=False,
           zero_is_no_cap=False, failed_stays=False):
    """memory_stats with one part of the accounting changed."""
    ref = _ref()
    state, handed, asked = (), {}, {}
    retries = ooms = peak_a = peak_r = 0

    def reserved(st):
        return sum(size for _, _, blocks in st for size, _ in blocks)

    def over(st, before):
        grew = reserved(st) > reserved(before)  # a cudaMalloc happened
        capped = bool(capacity) if zero_is_no_cap else capacity is not None
        return capped and grew and (
            reserved(st) >= capacity if inclusive else reserved(st) > capacity)

    for position, op in enumerate(trace):
        if op[0] == "malloc":
            after, address = ref.malloc(state, op[1])
            if over(after, state):
                flushed = ref.empty_cache(state) if flush else state
                retries += flush
                after, address = ref.malloc(flushed, op[1])
                if over(after, flushed):
                    ooms += 1
                    after, address = (flushed if keep_flush else state), None
            state, handed[position] = after, address
            if address is not None:
                asked[address] = ref.round_size(op[1])
        elif op[0] == "free":
            if op[1] not in handed:
                raise ValueError(op)
            address = handed[op[1]] if failed_stays and handed[op[1]] is None else handed.pop(op[1])
            if address is not None:
                state = ref.free(state, address)
                asked.pop(address, None)
        elif op[0] == "empty_cache":
            state = ref.empty_cache(state)
        else:
            raise ValueError(op)
        now = ref._current(state)
        peak_a = max(peak_a, now["allocated_bytes.all.current"])
        peak_r = max(peak_r, now["reserved_bytes.all.current"])
    stats = ref._current(state)
    stats.update({"allocated_bytes.all.peak": peak_a if peaks else
                  stats["allocated_bytes.all.current"],
                  "reserved_bytes.all.peak": peak_r if peaks else stats["reserved_bytes.all.current"],
                  "num_alloc_retries": retries, "num_ooms": ooms})
    if requested:
        by_pool = {"small": 0, "large": 0}
        for address, size in asked.items():
            pool = next(p for a, p, blocks in state if a <= address < a + sum(x for x, _ in blocks))
            by_pool[pool] += size
        stats["allocated_bytes.small_pool.current"] = by_pool["small"]
        stats["allocated_bytes.large_pool.current"] = by_pool["large"]
        stats["allocated_bytes.all.current"] = by_pool["small"] + by_pool["large"]
        stats["active_bytes.all.current"] = stats["allocated_bytes.all.current"]
    if inactive_all:
        free_blocks = [size for _, _, blocks in state for size, used in blocks if not used]
        stats["inactive_split.all.current"] = len(free_blocks)
        stats["inactive_split_bytes.all.current"] = sum(free_blocks)
    if active_reserved:
        stats["active_bytes.all.current"] = stats["reserved_bytes.all.current"]
    return stats


@mistake("memory_stats", "allocated_bytes counted the rounded request, not the block handed out: a block taken whole (no split) counts whole.")
def allocated_counts_the_request(trace, capacity=None):
    return _stats(trace, capacity, requested=True)


@mistake("memory_stats", "inactive_split counted every free block, also whole free segments: those can be released, they are not split.")
def inactive_split_counts_whole_segments(trace, capacity=None):
    return _stats(trace, capacity, inactive_all=True)


@mistake("memory_stats", "active_bytes was taken as the reserved bytes: active means handed out (or still used by a stream), like allocated here.")
def active_is_reserved(trace, capacity=None):
    return _stats(trace, capacity, active_reserved=True)


@mistake("memory_stats", "The peaks were read off the final state: a peak is the highest value at any moment of the trace.")
def peaks_at_the_end(trace, capacity=None):
    return _stats(trace, capacity, peaks=False)


@mistake("memory_stats", "Out of memory at once: a failed cudaMalloc first releases the cached segments and retries (num_alloc_retries).")
def no_retry(trace, capacity=None):
    return _stats(trace, capacity, flush=False)


@mistake("memory_stats", "After an out-of-memory the cache was put back as it was: the flush before the retry already gave the segments to CUDA.")
def oom_undoes_the_flush(trace, capacity=None):
    return _stats(trace, capacity, keep_flush=False)


@mistake("memory_stats", "A new segment that would reach the capacity exactly was refused: only going OVER it fails.")
def capacity_is_exclusive(trace, capacity=None):
    return _stats(trace, capacity, inclusive=True)


@mistake("memory_stats", "A capacity of 0 was taken as no capacity (`if capacity:`): 0 is a cap, under which every cudaMalloc fails.")
def zero_capacity_is_none(trace, capacity=None):
    return _stats(trace, capacity, zero_is_no_cap=True)


@mistake("memory_stats", "A malloc that ran out of memory could be freed again and again: its one free does nothing, a second is a double free.")
def failed_malloc_freed_twice(trace, capacity=None):
    return _stats(trace, capacity, failed_stays=True)
