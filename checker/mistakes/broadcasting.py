"""Known mistakes for the kata broadcasting."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake

# ----------------------------------------------------------------------------- broadcast_shapes


@mistake("broadcast_shapes", "Left-aligned: shapes were lined up from the LEFT (padded with 1s on the right); broadcasting lines up the LAST dims.")
def shapes_left_aligned(*shapes):
    ndim = max((len(s) for s in shapes), default=0)
    padded = [tuple(s) + (1,) * (ndim - len(s)) for s in shapes]
    return _solution_of("broadcasting").broadcast_shapes(*padded)


@mistake("broadcast_shapes", "Took the larger size of each pair: incompatible sizes (3 vs 4) slip through, and 1 vs 0 gives 1 instead of 0.")
def shapes_take_max(*shapes):
    ndim = max((len(s) for s in shapes), default=0)
    result = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape):
            d = ndim - len(shape) + i
            result[d] = max(result[d], size)
    return tuple(result)


@mistake("broadcast_shapes", "Checked compatibility with `assert`: an AssertionError is not the ValueError callers catch, and python -O deletes it.")
def shapes_checked_by_assert(*shapes):
    ndim = max((len(s) for s in shapes), default=0)
    result = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape):
            d = ndim - len(shape) + i
            assert size in (1, result[d]) or result[d] == 1, "shapes do not broadcast"
            if result[d] == 1:
                result[d] = size
    return tuple(result)


@mistake("broadcast_shapes", "The error names no sizes: 'shapes do not broadcast' leaves the reader to find the clashing dim.")
def shapes_vague_error(*shapes):
    try:
        return _solution_of("broadcasting").broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("shapes do not broadcast") from None


@mistake("broadcast_shapes", "Checked every shape against the FIRST one only: when the first has a 1 there, two later shapes that clash (4 vs 5) go unnoticed.")
def shapes_checked_against_first_only(*shapes):
    if not shapes:
        return ()
    ndim = max(len(s) for s in shapes)
    first = (1,) * (ndim - len(shapes[0])) + tuple(shapes[0])
    result = list(first)
    for shape in shapes[1:]:
        padded = (1,) * (ndim - len(shape)) + tuple(shape)
        for d, (f, size) in enumerate(zip(first, padded, strict=True)):
            if f != 1 and size != 1 and f != size:
                raise ValueError(f"dim {d - ndim}: sizes {f} and {size} cannot broadcast")
            if size != 1:
                result[d] = size
    return tuple(result)


# ----------------------------------------------------------------------------- broadcast_tensors


@mistake("broadcast_tensors", "Materialised the broadcast (x + zeros): right values, but new memory instead of stride-0 views.")
def tensors_materialised(*tensors):
    import torch

    shape = _solution_of("broadcasting").broadcast_shapes(*(tuple(t.shape) for t in tensors))
    return tuple(t + torch.zeros(shape, dtype=t.dtype) for t in tensors)


@mistake("broadcast_tensors", "Only the new leading dims got stride 0; a size-1 dim that grows kept its old stride and reads neighbouring cells.")
def tensors_size_one_keeps_stride(*tensors):
    shape = _solution_of("broadcasting").broadcast_shapes(*(tuple(t.shape) for t in tensors))
    return tuple(
        t.as_strided(shape, (0,) * (len(shape) - t.dim()) + tuple(t.stride()), t.storage_offset())
        for t in tensors
    )


@mistake("broadcast_tensors", "Offset dropped: as_strided(..., 0) starts at the storage's first cell, not at the input's first element.")
def tensors_offset_zero(*tensors):
    views = _solution_of("broadcasting").broadcast_tensors(*tensors)
    return tuple(t.as_strided(v.shape, v.stride(), 0) for t, v in zip(tensors, views, strict=True))


# ----------------------------------------------------------------------------- sum_to_shape


@mistake("sum_to_shape", "Forgot keepdim: the size-1 dims were summed away, so the result lost dims that `shape` keeps as 1.")
def sum_without_keepdim(grad, shape):
    lead = grad.dim() - len(shape)
    if lead:
        grad = grad.sum(dim=tuple(range(lead)))
    dims = tuple(d for d, size in enumerate(shape) if size == 1 and grad.shape[d] != 1)
    return grad.sum(dim=dims) if dims else grad


@mistake("sum_to_shape", "Summed only the extra leading dims; the dims where the input had size 1 were left broadcast.")
def sum_leading_only(grad, shape):
    lead = grad.dim() - len(shape)
    return grad.sum(dim=tuple(range(lead))) if lead else grad


@mistake("sum_to_shape", "Left-aligned: the extra dims were taken from the END of grad instead of its start.")
def sum_trailing_dims(grad, shape):
    extra = grad.dim() - len(shape)
    if extra:
        grad = grad.sum(dim=tuple(range(len(shape), grad.dim())))
    dims = tuple(d for d, size in enumerate(shape) if size == 1 and grad.shape[d] != 1)
    return grad.sum(dim=dims, keepdim=True) if dims else grad


@mistake("sum_to_shape", "Averaged instead of summed: each broadcast copy contributes its full gradient, so the copies add up.")
def sum_is_mean(grad, shape):
    lead = grad.dim() - len(shape)
    if lead:
        grad = grad.mean(dim=tuple(range(lead)))
    dims = tuple(d for d, size in enumerate(shape) if size == 1 and grad.shape[d] != 1)
    return grad.mean(dim=dims, keepdim=True) if dims else grad


# ----------------------------------------------------------------------------- batched_matmul


@mistake("batched_matmul", "A Python loop over the rows of a: right values, but one small op per row instead of one broadcast expression.")
def matmul_loop_over_rows(a, b):
    import torch

    rows = [(a[..., i, :, None] * b).sum(dim=-2) for i in range(a.shape[-2])]
    return torch.stack(rows, dim=-2)


@mistake("batched_matmul", "Lined up a's k with b's m: a[..., :, None, :] * b[..., None, :, :] is the product for b transposed (a @ b.mT).")
def matmul_wrong_alignment(a, b):
    return (a[..., :, None, :] * b[..., None, :, :]).sum(dim=-1)


@mistake("batched_matmul", "Flattened the batch dims (reshape(-1, n, k)): batch dims that broadcast against each other no longer line up.")
def matmul_flattened_batch(a, b):
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    a3, b3 = a.reshape(-1, n, k), b.reshape(-1, k, m)
    out = (a3[..., :, :, None] * b3[..., None, :, :]).sum(dim=-2)
    batch = a.shape[:-2] if a.dim() >= b.dim() else b.shape[:-2]
    return out.reshape(*batch, n, m)


@mistake("batched_matmul", "Summed over the wrong dim: the shared k is dim -2 of the (..., n, k, m) product, not the last.")
def matmul_sums_wrong_dim(a, b):
    return (a[..., :, :, None] * b[..., None, :, :]).sum(dim=-1)
