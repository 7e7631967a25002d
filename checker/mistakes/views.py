"""Known mistakes for the kata views."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _row_major(shape):
    strides, running = [], 1
    for size in reversed(shape):
        strides.append(running)
        running *= max(size, 1)
    return tuple(reversed(strides))


# ----------------------------------------------------------------------------- sliding_windows


@mistake("sliding_windows", "`.clone()` at the end: right values, but a copy with its own storage, not a view.")
def windows_cloned(x, size, step):
    return _solution_of("views").sliding_windows(x, size, step).clone()


@mistake("sliding_windows", "`.contiguous()` first: right values, but a non-contiguous input is copied, so the windows view the copy, not the input.")
def windows_of_contiguous_copy(x, size, step):
    return _solution_of("views").sliding_windows(x.contiguous(), size, step)


@mistake("sliding_windows", "Called `Tensor.unfold`, the very API this kata asks you to rebuild (forbidden here).")
def windows_by_unfold(x, size, step):
    return x.unfold(-1, size, step)


@mistake("sliding_windows", "The window stride ignores the step: consecutive windows start one element apart instead of `step` apart.")
def window_stride_ignores_step(x, size, step):
    count = (x.shape[-1] - size) // step + 1
    s = x.stride()
    return x.as_strided((*x.shape[:-1], count, size), (*s[:-1], s[-1], s[-1]), x.storage_offset())


@mistake("sliding_windows", "Assumed a contiguous input: strides (step, 1) for the last dim instead of multiples of x.stride(-1).")
def windows_assume_unit_stride(x, size, step):
    count = (x.shape[-1] - size) // step + 1
    return x.as_strided((*x.shape[:-1], count, size), (*x.stride()[:-1], step, 1), x.storage_offset())


@mistake("sliding_windows", "Window count off by one: (n - size) // step drops the last window that fits.")
def windows_count_off_by_one(x, size, step):
    count = (x.shape[-1] - size) // step
    s = x.stride()
    return x.as_strided((*x.shape[:-1], count, size), (*s[:-1], step * s[-1], s[-1]), x.storage_offset())


# ----------------------------------------------------------------------------- expand


@mistake("expand", "Materialised the broadcast (x + zeros): right values, but new memory instead of a stride-0 view.")
def expand_materialised(x, shape):
    import torch

    target = _solution_of("views").expand(x, shape)
    return x + torch.zeros(target.shape, dtype=x.dtype)


@mistake("expand", "Only the new leading dims got stride 0; a size-1 dim that grows kept its old stride and reads neighbouring cells.")
def expand_size_one_keeps_stride(x, shape):
    new = len(shape) - x.dim()
    sizes = [s if s != -1 else x.shape[d - new] for d, s in enumerate(shape)]
    strides = [0] * new + list(x.stride())
    return x.as_strided(tuple(sizes), tuple(strides), x.storage_offset())


@mistake("expand", "Left-aligned: x's dims were matched with the FIRST dims of the target and the new dims put on the right.")
def expand_left_aligned(x, shape):
    sizes, strides = [], []
    for d, target in enumerate(shape):
        if d >= x.dim():
            sizes.append(target)
            strides.append(0)
            continue
        size, stride = x.shape[d], x.stride(d)
        sizes.append(size if target == -1 else target)
        strides.append(0 if size == 1 else stride)
    return x.as_strided(tuple(sizes), tuple(strides), x.storage_offset())


@mistake("expand", "No size check: a dim of size 3 'expanded' to 4 silently reads past the data instead of raising ValueError.")
def expand_without_size_check(x, shape):
    new = len(shape) - x.dim()
    sizes, strides = [], []
    for d, target in enumerate(shape):
        if d < new:
            sizes.append(target)
            strides.append(0)
            continue
        size, stride = x.shape[d - new], x.stride(d - new)
        sizes.append(size if target == -1 else target)
        strides.append(0 if size == 1 and target not in (-1, 1) else stride)
    return x.as_strided(tuple(sizes), tuple(strides), x.storage_offset())


@mistake("expand", "Called `torch.broadcast_tensors` against a dummy of the target shape: torch's own expand in disguise (forbidden here).")
def expand_by_broadcast_tensors(x, shape):
    import torch

    lead = len(shape) - x.dim()
    target = [s if t == -1 else t for t, s in zip(shape, (1,) * lead + tuple(x.shape), strict=True)]
    return torch.broadcast_tensors(x, torch.empty(target, dtype=x.dtype))[0]


# ----------------------------------------------------------------------------- diagonal


@mistake("diagonal", "Assumed a contiguous input: diagonal stride cols + 1 instead of x.stride(-2) + x.stride(-1).")
def diagonal_assumes_contiguous(x, offset=0):
    d = _solution_of("views").diagonal(x, offset)
    return x.as_strided(d.shape, (*d.stride()[:-1], x.shape[-1] + 1), d.storage_offset())


@mistake("diagonal", "The input's own storage offset was dropped: the diagonal starts at the storage's start, not the input's.")
def diagonal_drops_storage_offset(x, offset=0):
    d = _solution_of("views").diagonal(x, offset)
    return x.as_strided(d.shape, d.stride(), d.storage_offset() - x.storage_offset())


@mistake("diagonal", "Advanced indexing x[..., i, i + offset]: right values, but indexing with index tensors copies.")
def diagonal_by_indexing(x, offset=0):
    import torch

    n = _solution_of("views").diagonal(x, offset).shape[-1]
    i = torch.arange(n)
    return x[..., i - min(offset, 0), i + max(offset, 0)]


@mistake("diagonal", "Called `torch.linalg.diagonal`, torch's ready-made diagonal view under another name (forbidden here).")
def diagonal_by_linalg(x, offset=0):
    import torch

    return torch.linalg.diagonal(x, offset=offset)


@mistake("diagonal", "The length ignores the offset: min(rows, cols) elements even for an off-centre diagonal.")
def diagonal_length_ignores_offset(x, offset=0):
    d = _solution_of("views").diagonal(x, offset)
    return x.as_strided((*d.shape[:-1], min(x.shape[-2], x.shape[-1])), d.stride(), d.storage_offset())


@mistake("diagonal", "A negative offset moved along the columns (to the left) instead of down the rows.")
def diagonal_negative_offset_on_columns(x, offset=0):
    if offset >= 0:
        return _solution_of("views").diagonal(x, offset)
    d = _solution_of("views").diagonal(x, -offset)
    return x.as_strided((*d.shape[:-1], min(x.shape[-2] + offset, x.shape[-1])), d.stride(),
                        x.storage_offset())


# ----------------------------------------------------------------------------- view_strides


@mistake("view_strides", "Only a contiguous tensor can be viewed: None for every non-contiguous input, even when its dims regroup.")
def view_only_if_contiguous(shape, strides, new_shape):
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides), strict=True):
        if size != 1 and stride != expected:
            return None
        expected *= size
    return _row_major(new_shape)


@mistake("view_strides", "Always a view: row-major strides for the new shape, whatever the old layout.")
def view_always_row_major(shape, strides, new_shape):
    return _row_major(new_shape)


@mistake("view_strides", "Size-1 dims were allowed to cut a chunk: their (meaningless) stride was compared like any other.")
def view_size_one_cuts_chunks(shape, strides, new_shape):
    chunks, numel, base = [], 1, None
    for size, stride in reversed(list(zip(shape, strides, strict=True))):
        if base is not None and stride != numel * base:
            chunks.append((numel, base))
            numel, base = 1, None
        if base is None:
            base = stride
        numel *= size
    if base is not None:
        chunks.append((numel, base))
    result, d = [0] * len(new_shape), len(new_shape) - 1
    for numel, base in chunks:
        filled = 1
        while d >= 0 and (filled < numel or new_shape[d] == 1):
            result[d] = filled * base
            filled *= new_shape[d]
            d -= 1
        if filled != numel:
            return None
    return tuple(result) if d < 0 else None


# ----------------------------------------------------------------------------- flatten


@mistake("flatten", "`.contiguous()` first: right values, but a copy even where the merged dims could be a view.")
def flatten_contiguous_first(x, start_dim=0, end_dim=-1):
    return _solution_of("views").flatten(x.contiguous(), start_dim, end_dim)


@mistake("flatten", "Never copies: where no view can merge the dims, row-major strides put on x itself read the wrong cells.")
def flatten_never_copies(x, start_dim=0, end_dim=-1):
    result = _solution_of("views").flatten(x, start_dim, end_dim)
    if result.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return result
    return x.as_strided(result.shape, result.stride(), x.storage_offset())


@mistake("flatten", "end_dim taken as exclusive, like a Python slice: the last dim to merge is left out.")
def flatten_end_exclusive(x, start_dim=0, end_dim=-1):
    end = end_dim % x.dim() if x.dim() else 0
    if end == start_dim % max(x.dim(), 1):
        return _solution_of("views").flatten(x, start_dim, end_dim)
    return _solution_of("views").flatten(x, start_dim, end - 1)


@mistake("expand", "Only growth was checked: a dim of size 3 asked to SHRINK to 2 is accepted (a view of its first cells) instead of raising ValueError.")
def expand_allows_shrinking(x, shape):
    new = len(shape) - x.dim()
    if new < 0:
        raise ValueError("fewer dims")
    sizes, strides = [], []
    for d, target in enumerate(shape):
        if d < new:
            if target < 0:
                raise ValueError("-1 for a new dim")
            sizes.append(target)
            strides.append(0)
            continue
        size, stride = x.shape[d - new], x.stride(d - new)
        if target > size and size != 1:
            raise ValueError(f"cannot expand dim {d} of size {size} to {target}")
        grows = size == 1 and target not in (-1, 1)
        sizes.append(size if target == -1 else target)
        strides.append(0 if grows else stride)
    return x.as_strided(tuple(sizes), tuple(strides), x.storage_offset())


@mistake("diagonal", "An empty diagonal kept its computed start: torch reports the input's own offset for a diagonal with no elements.")
def diagonal_empty_keeps_start(x, offset=0):
    rows, cols = x.shape[-2], x.shape[-1]
    s_row, s_col = x.stride(-2), x.stride(-1)
    if offset >= 0:
        length, start = max(0, min(rows, cols - offset)), offset * s_col
    else:
        length, start = max(0, min(rows + offset, cols)), -offset * s_row
    return x.as_strided((*x.shape[:-2], length), (*x.stride()[:-2], s_row + s_col),
                        x.storage_offset() + start)


@mistake("flatten", "start_dim after end_dim was silently swapped instead of refused with ValueError.")
def flatten_swaps_reversed_dims(x, start_dim=0, end_dim=-1):
    if x.dim():
        start, end = start_dim % x.dim(), end_dim % x.dim()
        if start > end:
            start_dim, end_dim = end, start
    return _solution_of("views").flatten(x, start_dim, end_dim)


@mistake("diagonal", "A negative offset's length was rows + offset alone: on a tall matrix the diagonal runs past the last column (min(rows + offset, cols)).")
def negative_length_ignores_cols(x, offset=0):
    rows = x.shape[-2]
    if offset >= 0:
        return _solution_of("views").diagonal(x, offset)
    length = max(0, rows + offset)
    start = -offset * x.stride(-2) if length else 0
    return x.as_strided((*x.shape[:-2], length), (*x.stride()[:-2], x.stride(-2) + x.stride(-1)),
                        x.storage_offset() + start)


@mistake("view_strides", "Returned a list of strides where the contract promises a tuple (what stride() gives).")
def strides_as_list(shape, strides, new_shape):
    got = _solution_of("views").view_strides(shape, strides, new_shape)
    return None if got is None else list(got)
