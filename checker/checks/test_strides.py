"""Hidden checks for kata 01 — strides. torch's own metadata is the oracle."""

from __future__ import annotations

import pytest
import torch

from checker.helpers import assert_equal, expect_raises, fail, random_shape, storage_strip

pytestmark = pytest.mark.kata("strides")


def shapes(rng, count=25):
    """Random shapes of 0-5 dims with distinct sizes, plus size-1 and size-0 edge cases."""
    out = [(), (5,), (1,), (3, 1, 4), (1, 1), (2, 0, 3)]
    for _ in range(count):
        ndim = int(rng.integers(1, 6))
        shape = list(random_shape(rng, ndim, 2, 7))
        if rng.random() < 0.3:
            shape[int(rng.integers(ndim))] = 1
        out.append(tuple(shape))
    return out


def random_view(rng, max_ndim=4):
    """A random non-contiguous view of an arange storage: sliced, transposed, offset."""
    ndim = int(rng.integers(1, max_ndim + 1))
    base = torch.arange(2000).reshape(-1)[int(rng.integers(0, 7)):]
    shape = random_shape(rng, ndim, 2, 6)
    t = base[: torch.Size(shape).numel() * 2].reshape(*shape[:-1], shape[-1] * 2)[..., ::2]
    if ndim >= 2:
        t = t.transpose(0, ndim - 1)
    return t


@pytest.mark.exercise("contiguous_strides")
def test_contiguous_strides_match_torch(impl, rng):
    for shape in shapes(rng):
        expected = torch.empty(shape).stride()
        got = impl.contiguous_strides(shape)
        assert_equal(
            got, expected, f"contiguous_strides({shape})",
            hint="the last dimension has stride 1; move left multiplying by each size "
            "(a size of 0 counts as 1).",
        )


@pytest.mark.exercise("storage_index")
def test_storage_index_matches_element_position(impl, rng):
    for _ in range(30):
        t = random_view(rng)
        shape, strides, offset = tuple(t.shape), t.stride(), t.storage_offset()
        index = tuple(int(rng.integers(-s, s)) for s in shape)
        expected = int(t[index])  # arange storage: the value IS the storage position
        got = impl.storage_index(index, shape, strides, offset)
        assert_equal(
            got, expected,
            f"storage_index({index}, shape={shape}, strides={strides}, offset={offset})",
            hint="start at the offset; wrap a negative index by adding the size.",
        )


@pytest.mark.exercise("storage_index")
def test_storage_index_rejects_out_of_range(impl, rng):
    shape = random_shape(rng, 3, 2, 6)
    strides = torch.empty(shape).stride()
    for d in range(3):
        for bad in (shape[d], -shape[d] - 1):
            index = tuple(bad if k == d else 0 for k in range(3))
            expect_raises(
                IndexError, lambda index=index: impl.storage_index(index, shape, strides, 0),
                f"storage_index({index}, shape={shape}, ...)",
                hint="valid indices of a size-n dimension are -n .. n-1.",
            )


@pytest.mark.exercise("permute_meta")
def test_permute_meta_matches_torch(impl, rng):
    for _ in range(25):
        t = random_view(rng)
        n = t.dim()
        dims = tuple(int(d) for d in rng.permutation(n))
        if n and rng.random() < 0.3:
            dims = tuple(d - n for d in dims)
        p = t.permute(dims)
        expected = (tuple(p.shape), p.stride())
        got = impl.permute_meta(tuple(t.shape), t.stride(), dims)
        assert_equal(
            got, expected, f"permute_meta(shape={tuple(t.shape)}, strides={t.stride()}, dims={dims})",
            hint="position i of the result takes dimension dims[i] of the input — both its size "
            "and its stride.",
        )


@pytest.mark.exercise("is_contiguous")
def test_is_contiguous_matches_torch(impl, rng):
    cases = [((2, 1, 3), (3, 99, 1)), ((1, 4), (1, 1)), ((2, 0, 3), (1, 5, 7)), ((), ()),
             ((3, 1), (1, 1)), ((4,), (2,))]
    for _ in range(30):
        t = random_view(rng)
        if rng.random() < 0.5:
            t = t.contiguous()
        if rng.random() < 0.4:
            t = t.unsqueeze(int(rng.integers(0, t.dim() + 1)))
        cases.append((tuple(t.shape), t.stride()))
    for shape, strides in cases:
        expected = torch.empty(0).as_strided(shape, strides).is_contiguous() if 0 in shape else \
            torch.empty(max(1, sum((s - 1) * st for s, st in zip(shape, strides, strict=False)) + 1)).as_strided(
                shape, strides).is_contiguous()
        got = impl.is_contiguous(shape, strides)
        assert_equal(
            got, expected, f"is_contiguous(shape={shape}, strides={strides})",
            hint="skip size-1 dims (their stride never matters); a 0-size tensor is contiguous.",
        )


@pytest.mark.exercise("view_params")
def test_view_params_reproduce_pattern(impl, rng):
    for _ in range(25):
        ndim = int(rng.integers(1, 4))
        size = random_shape(rng, ndim, 1, 5)
        stride = tuple(int(rng.integers(0, 7)) for _ in range(ndim))
        offset = int(rng.integers(0, 9))
        n = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=False)) + 1
        target = torch.arange(n).as_strided(size, stride, offset).tolist()
        got = impl.view_params(target)
        if not (isinstance(got, tuple | list) and len(got) == 3):
            fail(f"view_params({target}): expected a (size, stride, offset) triple, got {got!r}")
        g_size, g_stride, g_offset = got
        try:
            g_size, g_stride = tuple(int(v) for v in g_size), tuple(int(v) for v in g_stride)
            g_offset = int(g_offset)
            max_index = g_offset + sum((s - 1) * st for s, st in zip(g_size, g_stride, strict=False))
            produced = torch.arange(max(n, max_index + 1)).as_strided(g_size, g_stride, g_offset).tolist()
        except (TypeError, ValueError, RuntimeError) as exc:
            fail(f"view_params({target}) returned {got!r}, which as_strided rejects: {exc}")
        if produced != target:
            fail(
                f"view_params({target}) returned size={g_size} stride={g_stride} offset={g_offset}, "
                f"which produces {produced}.\n"
                + storage_strip(n, (size, stride, offset), (g_size, g_stride, g_offset))
                + "\n  Try: the offset is the first value; stride d is the step when index d "
                "goes 0 -> 1."
            )
