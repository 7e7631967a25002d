"""caching_allocator, written another way: one flat list of blocks with their addresses,
regrouped into segments at the end of each call; the replay keeps a small class."""

from __future__ import annotations

MiB = 1 << 20
STAT_KEYS = (
    "allocation.all.current", "segment.all.current", "active.all.current",
    "inactive_split.all.current", "allocated_bytes.all.current", "allocated_bytes.all.peak",
    "reserved_bytes.all.current", "reserved_bytes.all.peak", "active_bytes.all.current",
    "inactive_split_bytes.all.current", "allocated_bytes.small_pool.current",
    "allocated_bytes.large_pool.current", "reserved_bytes.small_pool.current",
    "reserved_bytes.large_pool.current", "num_alloc_retries", "num_ooms",
)


def round_size(nbytes):
    if nbytes <= 0:
        raise ValueError("empty request")
    return (nbytes + 511) & ~511 if nbytes > 512 else 512


def segment_plan(nbytes):
    size = round_size(nbytes)
    if size <= MiB:
        return ("small", 2 * MiB)
    if size < 10 * MiB:
        return ("large", 20 * MiB)
    return ("large", size + (-size) % (2 * MiB))


def _flat(state):
    rows = []
    for seg, pool, blocks in state:
        addr = seg
        for size, used in blocks:
            rows.append([addr, size, used, seg, pool])
            addr += size
    return rows


def _group(rows):
    segs = {}
    for _addr, size, used, seg, pool in sorted(rows):
        segs.setdefault((seg, pool), []).append((size, used))
    return tuple((seg, pool, tuple(blocks)) for (seg, pool), blocks in sorted(segs.items()))


def malloc(state, nbytes):
    size = round_size(nbytes)
    pool, seg_size = segment_plan(nbytes)
    rows = _flat(state)
    fitting = [r for r in rows if r[4] == pool and not r[2] and r[1] >= size]
    if fitting:
        row = min(fitting, key=lambda r: (r[1], r[0]))
    else:
        end = max((r[0] + r[1] for r in rows), default=0)
        row = [end, seg_size, False, end, pool]
        rows.append(row)
    left = row[1] - size
    if (pool == "small" and left >= 512) or (pool == "large" and left > MiB):
        rows.append([row[0] + size, left, False, row[3], pool])
        row[1] = size
    row[2] = True
    return _group(rows), row[0]


def free(state, address):
    rows = sorted(_flat(state))
    hit = [i for i, r in enumerate(rows) if r[0] == address and r[2]]
    if not hit:
        raise ValueError(f"nothing allocated at {address}")
    rows[hit[0]][2] = False
    merged = []
    for r in rows:
        last = merged[-1] if merged else None
        if last and last[3] == r[3] and not last[2] and not r[2]:
            last[1] += r[1]
        else:
            merged.append(r)
    return _group(merged)


def empty_cache(state):
    return tuple(s for s in state if not (len(s[2]) == 1 and not s[2][0][1]))


class _Replay:
    def __init__(self, capacity):
        self.capacity, self.state, self.live = capacity, (), {}
        self.counts = {"num_alloc_retries": 0, "num_ooms": 0}
        self.peak = {"allocated_bytes.all.peak": 0, "reserved_bytes.all.peak": 0}

    def reserved(self, state):
        return sum(r[1] for r in _flat(state))

    def malloc(self, i, nbytes):
        new, addr = malloc(self.state, nbytes)
        if self.capacity is not None and self.reserved(new) > self.capacity:
            self.counts["num_alloc_retries"] += 1
            self.state = empty_cache(self.state)
            new, addr = malloc(self.state, nbytes)
            if self.reserved(new) > self.capacity:
                self.counts["num_ooms"] += 1
                new, addr = self.state, None
        self.state, self.live[i] = new, addr

    def stats(self):
        rows = _flat(self.state)
        per_seg = {}
        for r in rows:
            per_seg[r[3]] = per_seg.get(r[3], 0) + 1
        out = {k: 0 for k in STAT_KEYS}
        for _addr, size, used, seg, pool in rows:
            out["reserved_bytes." + pool + "_pool.current"] += size
            if used:
                out["allocated_bytes." + pool + "_pool.current"] += size
                out["allocation.all.current"] += 1
            elif per_seg[seg] > 1:
                out["inactive_split.all.current"] += 1
                out["inactive_split_bytes.all.current"] += size
        out["segment.all.current"] = len(per_seg)
        out["allocated_bytes.all.current"] = (out["allocated_bytes.small_pool.current"]
                                              + out["allocated_bytes.large_pool.current"])
        out["reserved_bytes.all.current"] = (out["reserved_bytes.small_pool.current"]
                                             + out["reserved_bytes.large_pool.current"])
        out["active.all.current"] = out["allocation.all.current"]
        out["active_bytes.all.current"] = out["allocated_bytes.all.current"]
        return out


def memory_stats(trace, capacity=None):
    run = _Replay(capacity)
    for i, op in enumerate(trace):
        kind = op[0]
        if kind == "malloc":
            run.malloc(i, op[1])
        elif kind == "free":
            if op[1] not in run.live:
                raise ValueError("free of nothing")
            addr = run.live.pop(op[1])
            if addr is not None:
                run.state = free(run.state, addr)
        elif kind == "empty_cache":
            run.state = empty_cache(run.state)
        else:
            raise ValueError(op)
        now = run.stats()
        for key in run.peak:
            run.peak[key] = max(run.peak[key], now[key.replace(".peak", ".current")])
    out = run.stats()
    out.update(run.peak)
    out.update(run.counts)
    return out
