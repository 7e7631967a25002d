"""Hidden checks for the kata strides. torch's own metadata is the oracle."""

from __future__ import annotations

import pytest
import torch

from checker.contracts import assert_exact_type
from checker.helpers import assert_equal, expect_raises, fail, random_shape, storage_strip
from checker.inputs import edge_shapes

pytestmark = pytest.mark.kata("strides")


def shapes(rng, count=25):
    """The edge corpus (0-d, size 0 anywhere, size 1, repeated sizes), then random shapes of
    1-5 dims with distinct sizes, some with a size-1 dim."""
    out = [(), (5,), (1,), (3, 1, 4), (1, 1), (2, 0, 3), (4, 0, 2), (3, 2, 0), (2, 0, 0, 5),
           (0, 3), (0,), (3, 3, 3)]
    out += [shape for n in (1, 2, 3, 4) for _, shape in edge_shapes(n)]
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
        assert_exact_type(got, tuple(expected), f"contiguous_strides({shape})",
                          hint="return a tuple of ints, as the signature promises.")


@pytest.mark.exercise("storage_index")
def test_storage_index_matches_element_position(impl, rng):
    base = torch.arange(200)
    edges = [base[7:].as_strided((3, 4), (4, 1)), base[5:].as_strided((2, 3, 2), (1, 4, 12)),
             base.as_strided((4,), (3,)), base[9:].as_strided((), ()),
             base[3:].as_strided((2, 1, 3), (3, 50, 1)), base[2:].as_strided((3, 2), (0, 5))]
    for t in [*edges, *(random_view(rng) for _ in range(30))]:
        shape, strides, offset = tuple(t.shape), t.stride(), t.storage_offset()
        corners = [tuple(s - 1 for s in shape), tuple(-s for s in shape), tuple(-1 for _ in shape)]
        for index in [*corners, tuple(int(rng.integers(-s, s)) for s in shape)]:
            expected = int(t[index])  # arange storage: the value IS the storage position
            got = impl.storage_index(index, shape, strides, offset)
            what = f"storage_index({index}, shape={shape}, strides={strides}, offset={offset})"
            assert_equal(got, expected, what,
                         hint="start at the offset; wrap a negative index by adding the size.")
            assert_exact_type(got, expected, what, hint="return an int.")


@pytest.mark.exercise("storage_index")
def test_storage_index_rejects_out_of_range(impl, rng):
    shape = random_shape(rng, 3, 2, 6)
    strides = torch.empty(shape).stride()
    out_of_range = [tuple(bad if k == d else 0 for k in range(3))
                    for d in range(3)
                    for bad in (shape[d], shape[d] + 3, -shape[d] - 1, -shape[d] - 4)]
    wrong_length = [(1, 1), (0,), (), (1, 1, 1, 0)]
    for index in [*out_of_range, *wrong_length]:
        expect_raises(
            IndexError, lambda index=index: impl.storage_index(index, shape, strides, 0),
            f"storage_index({index}, shape={shape}, ...)",
            hint="valid indices of a size-n dimension are -n .. n-1, and an index names one "
            "position per dimension.",
        )


@pytest.mark.exercise("permute_meta")
def test_permute_meta_rejects_non_permutations(impl):
    shape, strides = (2, 3, 4), (12, 4, 1)
    for dims in [(0, 0, 1), (2, 1, -1), (0, 1), (1, 0, 2, 0), (3, 1, 2), (0, 4, 2), (0, 1, -4),
                 (-6, 1, 5)]:
        expect_raises(
            ValueError, lambda dims=dims: impl.permute_meta(shape, strides, dims),
            f"permute_meta(shape={shape}, strides={strides}, dims={dims})",
            hint="dims must name every dimension exactly once: a dim d of an n-d tensor is in "
                 "[-n, n) (torch.permute refuses any other), and a negative one counts from the end.",
        )


@pytest.mark.exercise("permute_meta")
def test_permute_meta_matches_torch(impl, rng):
    cube = torch.empty(3, 3, 3).as_strided((3, 3, 3), (1, 3, 9))
    edges = [(torch.empty(()), ()), (torch.empty(4, 5), (1, 0)), (torch.empty(4, 5), (-1, -2)),
             (cube, (1, 2, 0)), (cube, (2, 0, 1)), (cube, (-2, -1, 0)), (cube, (0, 1, 2)),
             (torch.empty(2, 1, 3, 4), (3, 1, 0, 2))]
    draws = []
    for _ in range(25):
        t = random_view(rng)
        n = t.dim()
        dims = tuple(int(d) for d in rng.permutation(n))
        if n and rng.random() < 0.3:
            dims = tuple(d - n for d in dims)
        draws.append((t, dims))
    for t, dims in [*edges, *draws]:
        p = t.permute(dims)
        expected = (tuple(p.shape), p.stride())
        got = impl.permute_meta(tuple(t.shape), t.stride(), dims)
        what = f"permute_meta(shape={tuple(t.shape)}, strides={t.stride()}, dims={dims})"
        assert_equal(
            got, expected, what,
            hint="position i of the result takes dimension dims[i] of the input — both its size "
            "and its stride.",
        )
        assert_exact_type(got, expected, what,
                          hint="return a tuple (shape, strides) of two tuples of ints.")


@pytest.mark.exercise("is_contiguous")
def test_is_contiguous_matches_torch(impl, rng):
    cases = [((2, 1, 3), (3, 99, 1)), ((1, 4), (1, 1)), ((2, 0, 3), (1, 5, 7)), ((), ()),
             ((3, 1), (1, 1)), ((4,), (2,)), ((1, 1, 5), (7, 7, 1)), ((4, 1), (1, 9)),
             ((0, 4), (1, 1)), ((3, 0), (5, 5)), ((0,), (3,)), ((2, 3, 0), (9, 1, 1)),
             ((3, 4), (1, 3)), ((3, 4), (5, 1)), ((2, 3, 4), (12, 1, 3)), ((2, 3, 4), (1, 8, 2)),
             ((3, 3), (3, 1)), ((3, 3), (1, 3)), ((5,), (1,)), ((1,), (0,)), ((2, 2), (2, 0)),
             ((2, 3), (4, 1)), ((4, 2, 3), (6, 3, 1)), ((4, 2, 3), (7, 3, 1)),
             # consistent row-major multiples of a last stride that is not 1 (every[::2])
             ((2, 3, 4), (24, 8, 2)), ((2, 1, 3, 4), (24, 24, 8, 2)), ((3, 4), (8, 2)),
             ((5,), (2,)), ((2, 3, 4, 5), (120, 40, 10, 2))]
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
            hint="skip size-1 dims (their stride never matters); the innermost remaining dim "
            "must have stride 1 and each dim to its left the product of the sizes to its right; "
            "a 0-size tensor is contiguous.",
        )
        assert_exact_type(got, expected, f"is_contiguous(shape={shape}, strides={strides})",
                          hint="return a bool (True or False), not a number.")


@pytest.mark.exercise("view_params")
def test_view_params_reproduce_pattern(impl, rng):
    edges = [((3,), (1,), 0), ((2, 3), (1, 2), 1), ((3, 3), (3, 1), 0), ((1, 4), (5, 1), 2),
             ((4, 1), (1, 0), 3), ((2, 3), (0, 1), 0), ((3, 2), (2, 0), 4), ((1,), (0,), 5),
             ((2, 2, 2), (4, 2, 1), 0), ((2, 2, 2), (1, 2, 4), 1), ((1, 1), (0, 0), 0)]
    draws = []
    for _ in range(25):
        ndim = int(rng.integers(1, 4))
        size = random_shape(rng, ndim, 1, 5)
        stride = tuple(int(rng.integers(0, 7)) for _ in range(ndim))
        draws.append((size, stride, int(rng.integers(0, 9))))
    for size, stride, offset in [*edges, *draws]:
        n = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=False)) + 1
        target = torch.arange(n).as_strided(size, stride, offset).tolist()
        got = impl.view_params(target)
        if not (type(got) is tuple and len(got) == 3):
            fail(f"view_params({target}): expected a (size, stride, offset) tuple, got {got!r}")
        g_size, g_stride, g_offset = got
        assert_exact_type(got, ((0,) * len(g_size) if type(g_size) is tuple else (),
                                (0,) * len(g_stride) if type(g_stride) is tuple else (), 0),
                          f"view_params({target})",
                          hint="return (tuple of ints, tuple of ints, int).")
        try:
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
