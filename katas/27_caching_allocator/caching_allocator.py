"""Kata — caching_allocator: PyTorch's CUDA caching allocator, simulated.

`torch.empty(n, device="cuda")` rarely calls cudaMalloc. PyTorch's caching allocator keeps
the memory it got from CUDA and hands out pieces of it again; `kata lesson` explains its
policy, constant by constant. Here you write that policy as a simulator, in plain Python,
with the allocator's default settings (no PYTORCH_CUDA_ALLOC_CONF) and one stream.

The simulator's state is plain, immutable data:

    State   = tuple[Segment, ...]                  # in address order
    Segment = (address, pool, blocks)              # one cudaMalloc'd range
              address: int, where the segment starts
              pool:    "small" or "large"
              blocks:  tuple[Block, ...], in address order, covering the whole segment
    Block   = (size, allocated)                    # size: int bytes, allocated: bool

A block's address is its segment's address plus the sizes of the blocks before it. The real
addresses come from cudaMalloc; the simulator's rule is: a new segment starts where the
segment with the highest address ends (at 0 when there is none).

Example: after one malloc of 1000 bytes the state is
    ((0, "small", ((1024, True), (2096128, False))),)

Rules: no torch in this file, not even inside a function: the checks hold a model of the
allocator, and the real GPU where there is one. Run `kata check` to judge this file,
`kata hint` when stuck.
"""

from __future__ import annotations

KiB, MiB = 1024, 1024 * 1024

Block = tuple[int, bool]
Segment = tuple[int, str, tuple[Block, ...]]
State = tuple[Segment, ...]

# The keys memory_stats returns, named as torch.cuda.memory_stats() names them.
STAT_KEYS = (
    "allocation.all.current", "segment.all.current", "active.all.current",
    "inactive_split.all.current", "allocated_bytes.all.current", "allocated_bytes.all.peak",
    "reserved_bytes.all.current", "reserved_bytes.all.peak", "active_bytes.all.current",
    "inactive_split_bytes.all.current", "allocated_bytes.small_pool.current",
    "allocated_bytes.large_pool.current", "reserved_bytes.small_pool.current",
    "reserved_bytes.large_pool.current", "num_alloc_retries", "num_ooms",
)


def round_size(nbytes: int) -> int:
    """The size of the block a request of ``nbytes`` bytes is given, before any pool is
    consulted (the allocator's ``round_size``).

    ``nbytes`` is an int >= 1; raise ValueError for 0 or less (the allocator never sees a
    0-byte request: an empty tensor gets no block). Returns an int.

    Example:
        >>> round_size(1000), round_size(1024)
        (1024, 1024)
    """
    raise NotImplementedError("round_size: see `kata lesson`, or `kata hint` for a nudge")


def segment_plan(nbytes: int) -> tuple[str, int]:
    """The pool a request of ``nbytes`` bytes is served from, and how many bytes the
    allocator asks cudaMalloc for when that pool has no free block that fits it.

    ``nbytes`` is the request as made (an int >= 1, not yet rounded); raise ValueError for 0
    or less. Returns ``(pool, segment_bytes)``: pool is ``"small"`` or ``"large"``.

    Example:
        >>> segment_plan(1000)
        ('small', 2097152)
    """
    raise NotImplementedError("segment_plan: see `kata lesson`, or `kata hint` for a nudge")


def malloc(state: State, nbytes: int) -> tuple[State, int]:
    """Serve a request of ``nbytes`` bytes (an int >= 1) the way the allocator does.

    ``state`` is a State as described at the top of this file (never modified: tuples).
    Returns ``(new_state, address)``: the state after the request and the address of the
    block handed out. Reuse a cached free block when the policy allows, or add a new
    segment; a block may be cut in two (the lesson says when). No capacity limit here:
    cudaMalloc always succeeds. Raise ValueError for ``nbytes`` < 1.

    Example:
        >>> state, address = malloc((), 1000)
        >>> state, address
        (((0, 'small', ((1024, True), (2096128, False))),), 0)
    """
    raise NotImplementedError("malloc: see `kata lesson`, or `kata hint` for a nudge")


def free(state: State, address: int) -> State:
    """Give back the allocated block that starts at ``address``.

    Returns the new state (``state`` is not modified). The memory stays with the
    allocator: nothing is returned to CUDA here. Raise ValueError when no allocated block
    starts at ``address`` (a free block, the middle of a block, a double free, no segment).

    Example:
        >>> state, address = malloc((), 1000)
        >>> free(state, address)
        ((0, 'small', ((2097152, False),)),)
    """
    raise NotImplementedError("free: see `kata lesson`, or `kata hint` for a nudge")


def empty_cache(state: State) -> State:
    """``torch.cuda.empty_cache()``: return to CUDA all the memory that can be returned.

    Returns the new state; the segments that stay keep their addresses and blocks
    (``state`` is not modified).

    Example:
        >>> empty_cache(((0, "small", ((2097152, False),)),))
        ()
    """
    raise NotImplementedError("empty_cache: see `kata lesson`, or `kata hint` for a nudge")


def memory_stats(trace: list[tuple], capacity: int | None = None) -> dict[str, int]:
    """Replay ``trace`` on an allocator that starts empty, and return what
    ``torch.cuda.memory_stats()`` would report afterwards: a dict with every key of
    STAT_KEYS, each an int (a peak is the highest value since the start of the trace).

    Each op of ``trace`` is one of:
        ("malloc", nbytes)    a request, as malloc() above
        ("free", i)           free the block that the malloc at trace[i] handed out
        ("empty_cache",)      as empty_cache() above

    ``capacity``: None (cudaMalloc always succeeds) or the most bytes the allocator may
    hold from CUDA at once (``torch.cuda.set_per_process_memory_fraction``; 0 is a cap
    too). A cudaMalloc that would go over it fails, and the allocator reacts as the lesson
    tells; a malloc that still fails hands out nothing, and its one later free does nothing.
    Raise ValueError for a malloc that malloc() refuses, for a free that does not name a
    malloc of the trace that is still allocated (a failed malloc freed twice is a double
    free), and for an op that is none of the three.

    Example:
        >>> stats = memory_stats([("malloc", 1000), ("malloc", 3 * MiB), ("free", 0)])
        >>> stats["allocated_bytes.all.current"], stats["reserved_bytes.all.current"]
        (3145728, 23068672)
    """
    raise NotImplementedError("memory_stats: see `kata lesson`, or `kata hint` for a nudge")
