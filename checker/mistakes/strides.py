"""Known mistakes for the kata strides."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


@mistake("contiguous_strides", "Column-major (Fortran) order: the FIRST dimension got stride 1.")
def fortran_strides(shape):
    strides, running = [], 1
    for size in shape:
        strides.append(running)
        running *= max(size, 1)
    return tuple(strides)


@mistake("contiguous_strides", "A size-0 dimension was multiplied in as 0, zeroing the strides to its left.")
def zero_size_multiplies(shape):
    strides, running = [], 1
    for size in reversed(shape):
        strides.append(running)
        running *= size
    return tuple(reversed(strides))


@mistake("storage_index", "The storage offset was forgotten: positions count from the view's start, not the storage's.")
def no_offset(index, shape, strides, offset):
    return sum((i % s) * st for i, s, st in zip(index, shape, strides, strict=False))


@mistake("storage_index", "Negative indices were used as they are instead of wrapping around (i + size).")
def no_negative_wrap(index, shape, strides, offset):
    for i, s in zip(index, shape, strict=False):
        if not -s <= i < s:
            raise IndexError(i)
    return offset + sum(i * st for i, st in zip(index, strides, strict=False))


@mistake("storage_index", "Out-of-range indices were accepted (wrapped modulo the size) instead of raising IndexError.")
def no_bounds_check(index, shape, strides, offset):
    return offset + sum((i % s) * st for i, s, st in zip(index, shape, strides, strict=False))


@mistake("permute_meta", "The inverse permutation: dimension i was sent to position dims[i] instead of taken from dims[i].")
def inverse_permutation(shape, strides, dims):
    n = len(shape)
    new_shape, new_strides = [0] * n, [0] * n
    for i, d in enumerate(dims):
        new_shape[d % n] = shape[i]
        new_strides[d % n] = strides[i]
    return tuple(new_shape), tuple(new_strides)


@mistake("permute_meta", "The shape was permuted but the strides were recomputed as contiguous: permute does not copy data.")
def recomputed_strides(shape, strides, dims):
    n = len(shape)
    new_shape = tuple(shape[d % n] for d in dims)
    out, running = [], 1
    for size in reversed(new_shape):
        out.append(running)
        running *= max(size, 1)
    return new_shape, tuple(reversed(out))


@mistake("is_contiguous", "Size-1 dimensions were not ignored: their stride never matters to torch.")
def strict_size_one(shape, strides):
    if any(s == 0 for s in shape):
        return True
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides), strict=False):
        if stride != expected:
            return False
        expected *= size
    return True


@mistake("is_contiguous", "A tensor with a 0-size dimension was judged by its strides; with no elements it is always contiguous.")
def zero_size_by_strides(shape, strides):
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides), strict=False):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


@mistake("view_params", "Off-by-one offset: the offset is the first element's value itself.")
def offset_off_by_one(target):
    size, stride, offset = _solution_of("strides").view_params(target)
    return size, stride, offset + 1 if offset == 0 else offset - 1


@mistake("view_params", "Strides read off the wrong axis (transposed): the step along the last dim was used for the first.")
def transposed_strides(target):
    size, stride, offset = _solution_of("strides").view_params(target)
    return size, tuple(reversed(stride)), offset


@mistake("permute_meta", "Every dim wrapped with % n, out-of-range ones too: (3, 1, 2) for a 3-d tensor became (0, 1, 2) instead of an error.")
def wraps_out_of_range_dims(shape, strides, dims):
    n = len(shape)
    dims = tuple(d % n for d in dims)
    if sorted(dims) != list(range(n)):
        raise ValueError(f"dims {dims} is not a permutation of {n} dimensions")
    return tuple(shape[d] for d in dims), tuple(strides[d] for d in dims)


@mistake("permute_meta", "Returned lists where the contract promises tuples: ([4, 2, 3], [1, 12, 4]) is not torch's metadata.")
def lists_not_tuples(shape, strides, dims):
    new_shape, new_strides = _solution_of("strides").permute_meta(shape, strides, dims)
    return list(new_shape), list(new_strides)


@mistake("is_contiguous", "Only the strides between dims were compared (each = the next one times its size); the innermost stride was never required to be 1, so every-other-element views pass.")
def innermost_stride_free(shape, strides):
    if any(s == 0 for s in shape):
        return True
    kept = [(s, st) for s, st in zip(shape, strides, strict=False) if s != 1]
    return all(outer == inner * size for (_, outer), (size, inner) in zip(kept, kept[1:], strict=False))
