"""Hidden checks for the kata views. torch's own views are the oracle.

A view is judged on structure, not only values: it must share the input's storage
(``untyped_storage().data_ptr()``), name the input's owner as ``_base``, cover exactly the
storage cells torch's view covers (a storage strip is drawn when it does not), carry a write
back into the input, and bump the input's shared ``_version``. Inputs are contiguous,
transposed, strided slices and offset into a larger storage.
"""

from __future__ import annotations

import math

import pytest
import torch

from checker.contracts import assert_exact_type
from checker.helpers import (
    as_tensor_result,
    assert_close,
    assert_equal,
    assert_not_shares_storage,
    assert_shares_storage,
    describe,
    fail,
    layouts,
    random_shape,
    storage_strip,
)
from checker.sandbox.errors import ForbiddenAPI

pytestmark = pytest.mark.kata("views")

SENTINEL = 4321.5  # written through the learner's view; never among the random inputs


# ----------------------------------------------------------------------------- helpers


def call(what, fn, *args):
    """Run the learner's function; a forbidden API or a torch error becomes a teaching failure."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except ForbiddenAPI as exc:
        fail(f"{what}: {exc}.\n  Try: build the view with x.as_strided(size, stride, offset).")
    except RuntimeError as exc:
        fail(f"{what} raised RuntimeError: {exc}\n"
             "  Try: check the sizes, strides and offset you hand to as_strided: every cell "
             "must lie inside the input's storage.")


def owner(t: torch.Tensor) -> torch.Tensor:
    """The tensor whose storage a view points into: what a new view's ``_base`` must be."""
    return t if t._base is None else t._base


def storage_numel(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes() // t.element_size()


def meta(t: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    return tuple(t.shape), tuple(t.stride()), t.storage_offset()


def same_cells(a: tuple, b: tuple) -> bool:
    """Whether two (shape, stride, offset) address the same cell for every index.

    Strides of size-1 dims never matter, nor any stride without elements; the offset always
    does (torch reports it, also for an empty view).
    """
    (sa, ta, oa), (sb, tb, ob) = a, b
    if sa != sb or oa != ob:  # an empty view still reports torch's offset
        return False
    if math.prod(sa) == 0:
        return True
    return all(x == y for s, x, y in zip(sa, ta, tb, strict=True) if s != 1)


def sources(shape: tuple[int, ...]):
    """Random float64 values of ``shape`` in several layouts: (label, tensor)."""
    values = torch.randn(shape, dtype=torch.float64)
    yield from layouts(values)
    if len(shape) >= 2:
        wide = torch.randn(*reversed(shape[:-1]), shape[-1] + 3, dtype=torch.float64)
        yield "transposed view of a wider slice", wide.permute(
            *reversed(range(len(shape) - 1)), len(shape) - 1)[..., 2:-1]


def assert_view(got, x: torch.Tensor, expected: torch.Tensor, what: str, hint: str) -> torch.Tensor:
    """``got`` must be a view of ``x`` equal, cell for cell, to torch's view ``expected``."""
    got = as_tensor_result(got, what)
    if tuple(got.shape) != tuple(expected.shape):
        fail(f"{what}:\n  expected {describe(expected)}\n  got      {describe(got)}\n"
             f"  The shapes differ.\n  Try: {hint}")
    if got.dtype != expected.dtype:
        fail(f"{what}:\n  expected {describe(expected)}\n  got      {describe(got)}\n"
             "  The dtypes differ: a view keeps its source's dtype.")
    assert_shares_storage(got, x, what, hint=hint)
    if not same_cells(meta(got), meta(expected)):
        fail(f"{what}: your view reads other storage cells than torch's.\n"
             f"  input  {describe(x)}\n"
             + storage_strip(storage_numel(x), meta(expected), meta(got))
             + f"\n  Try: {hint}")
    assert_close(got, expected, what, hint=hint)
    if got._base is not owner(x):
        which = ("has no _base: it is not a view at all" if got._base is None else
                 "has a _base other than the input's owner (a view of a detached or re-wrapped "
                 "handle, not of the input)")
        fail(f"{what}: the result shares the storage but {which}.\n"
             f"  input  {describe(x)}\n  result {describe(got)}\n"
             "  Try: call as_strided on the input itself, so that autograd and the version "
             "counter know the result is a view of it.")
    return got


def assert_write_through(got: torch.Tensor, x: torch.Tensor, expected: torch.Tensor,
                         index: tuple[int, ...], what: str) -> None:
    """Writing through the learner's view must change the input and bump its _version."""
    version = x._version
    got[index] = SENTINEL
    if expected[index].item() != SENTINEL:
        fail(f"{what}: writing {SENTINEL} to result{list(index)} did not change the input "
             "at the matching position: the result is not a window onto the input's memory.")
    if x._version == version:
        fail(f"{what}: writing through the result changed the input's memory but not its "
             f"_version (still {version}); a real view shares the version counter of its "
             "base. Try: make the view with as_strided on the input itself.")


def last_index(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(s - 1 for s in t.shape)


# ----------------------------------------------------------------------------- sliding_windows


@pytest.mark.exercise("sliding_windows")
def test_sliding_windows_are_views(impl, rng):
    ndim = int(rng.integers(1, 4))
    shape = (*random_shape(rng, ndim - 1, 2, 4), int(rng.integers(9, 13)))
    n = shape[-1]
    for label, x in sources(shape):
        for size, step in ((int(rng.integers(2, 5)), int(rng.integers(2, 4))),
                           (int(rng.integers(1, n + 1)), int(rng.integers(1, 5)))):
            expected = x.unfold(-1, size, step)
            what = f"sliding_windows(x, size={size}, step={step}) for x ({label}): {describe(x)}"
            got = call(what, impl.sliding_windows, x, size, step)
            got = assert_view(got, x, expected, what,
                              "shape (..., (n - size) // step + 1, size); window stride "
                              "step * x.stride(-1), element stride x.stride(-1), offset "
                              "x.storage_offset().")
            assert_write_through(got, x, expected, last_index(got), what)


@pytest.mark.exercise("sliding_windows")
def test_sliding_windows_edge_sizes(impl, rng):
    n = int(rng.integers(5, 9))
    x = torch.randn(n + 4, dtype=torch.float64)[3:-1]
    for size, step in ((n, 1), (1, 1), (1, n), (n - 1, n)):
        expected = x.unfold(-1, size, step)
        what = f"sliding_windows(x, size={size}, step={step}): {describe(x)}"
        got = call(what, impl.sliding_windows, x, size, step)
        assert_view(got, x, expected, what,
                    "count = (n - size) // step + 1: one window when size == n, n windows "
                    "when size == 1 and step == 1.")


# ----------------------------------------------------------------------------- expand


def expand_target(rng, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A target for ``expand``: 0-2 new leading dims, size-1 dims grown, some dims as -1."""
    lead = tuple(int(v) for v in rng.integers(2, 6, size=int(rng.integers(0, 3))))
    rest = []
    for size in shape:
        if size == 1:
            rest.append(int(rng.integers(2, 7)) if rng.random() < 0.8 else 1)
        else:
            rest.append(-1 if rng.random() < 0.3 else size)
    return (*lead, *rest)


def shape_with_ones(rng, ndim: int) -> tuple[int, ...]:
    shape = list(random_shape(rng, ndim, 2, 5))
    for d in rng.choice(ndim, size=max(1, ndim // 2), replace=False):
        shape[int(d)] = 1
    return tuple(shape)


@pytest.mark.exercise("expand")
def test_expand_is_a_stride_zero_view(impl, rng):
    for ndim in (1, 2, 3):
        shape = shape_with_ones(rng, ndim)
        for label, x in sources(shape):
            target = expand_target(rng, shape)
            if len(target) == ndim and all(t in (-1, s) for t, s in zip(target, shape, strict=False)):
                target = (3, *target)
            if label == "contiguous":  # new leading dims of size 0 and 1 are fine too
                target = (ndim % 2, *target)
            expected = x.expand(target)
            what = f"expand(x, {target}) for x ({label}): {describe(x)}"
            got = call(what, impl.expand, x, target)
            got = assert_view(got, x, expected, what,
                              "new dims go on the LEFT with stride 0; a size-1 dim that grows "
                              "gets stride 0; every other dim keeps its size and stride.")
            if got.numel():
                assert_write_through(got, x, expected, last_index(got), what)


@pytest.mark.exercise("expand")
def test_expand_rejects_a_non_one_dim(impl, rng):
    shape = random_shape(rng, 2, 2, 5)
    x = torch.randn(shape, dtype=torch.float64)
    targets = [tuple(s + grow if k == d else s for k, s in enumerate(shape))
               for d in range(2) for grow in (1, -1)]  # grown and shrunk
    targets += [shape[1:], (-1, *shape), (shape[0], 0)]  # fewer dims, -1 new dim, shrunk to 0
    for target in targets:
        what = f"expand(x of shape {shape}, {target})"
        try:
            got = impl.expand(x, target)
        except ValueError:
            continue
        except RuntimeError as exc:
            if isinstance(exc, NotImplementedError | ForbiddenAPI):
                raise
            fail(f"{what}: expected ValueError, but as_strided raised RuntimeError: {exc}\n"
                 "  Try: check the sizes yourself before as_strided: only a size-1 dim may "
                 "change size.")
        fail(f"{what}: expected ValueError (x.expand refuses this: a dim of size other than 1 "
             "changes size, the target has fewer dims than x, or a new leading dim is -1), "
             f"but it returned {describe(got)}.\n  Try: only a size-1 dim may change size; "
             "new dims go on the left and need a real size.")


# ----------------------------------------------------------------------------- diagonal


@pytest.mark.exercise("diagonal")
def test_diagonal_is_a_view(impl, rng):
    for batch in ((), (int(rng.integers(2, 4)),)):
        rows, cols = random_shape(rng, 2, 2, 7)
        for label, x in sources((*batch, rows, cols)):
            for offset in (0, int(rng.integers(1, cols)), -int(rng.integers(1, rows))):
                expected = torch.diagonal(x, offset, -2, -1)
                what = f"diagonal(x, offset={offset}) for x ({label}): {describe(x)}"
                got = call(what, impl.diagonal, x, offset)
                got = assert_view(got, x, expected, what,
                                  "stride x.stride(-2) + x.stride(-1) along the diagonal; start "
                                  "at x.storage_offset() plus the first cell's step; batch dims "
                                  "keep their strides.")
                assert_write_through(got, x, expected, last_index(got), what)


@pytest.mark.exercise("diagonal")
def test_diagonal_lengths(impl, rng):
    a, b = random_shape(rng, 2, 3, 6)
    # on every run a tall matrix whose negative-offset diagonals are cut by the columns
    # (rows + offset > cols) and a wide one, then a random pair both ways
    for rows, cols in ((6, 3), (3, 6), (max(a, b), min(a, b)), (min(a, b), max(a, b))):
        check_diagonal_lengths(impl, torch.randn(cols, rows, dtype=torch.float64).t())


def check_diagonal_lengths(impl, x: torch.Tensor) -> None:
    rows, cols = x.shape
    for offset in [None, *range(-rows - 1, cols + 2)]:  # None: the default offset
        expected = torch.diagonal(x, offset or 0, -2, -1)
        what = f"diagonal(x{'' if offset is None else f', offset={offset}'}): {describe(x)}"
        got = call(what, impl.diagonal, x, *([] if offset is None else [offset]))
        assert_view(got, x, expected, what,
                    "length = min(rows, cols - offset) for offset >= 0 and "
                    "min(rows + offset, cols) for offset < 0, never below 0.")


# ----------------------------------------------------------------------------- view_strides


def strided(rng, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, strides) of distinct sizes: sliced, permuted, with odd strides on size-1 dims."""
    shape = list(random_shape(rng, ndim, 2, 5))
    for d in range(ndim):
        if rng.random() < 0.25:
            shape[d] = 1
    order = [int(d) for d in rng.permutation(ndim)]
    raw_shape = [shape[d] for d in order]
    step = int(rng.integers(1, 3))
    raw = torch.empty(*raw_shape[:-1], raw_shape[-1] * step)[..., ::step]
    t = raw.permute(*[order.index(d) for d in range(ndim)])
    strides = tuple(st if s != 1 else int(rng.integers(0, 9)) for s, st in zip(t.shape, t.stride(), strict=True))
    return tuple(t.shape), strides


def reshape_targets(rng, shape: tuple[int, ...], count: int = 4) -> list[tuple[int, ...]]:
    """New shapes with the same numel: adjacent dims merged, dims split, 1s added or dropped."""
    out = []
    for _ in range(count):
        dims = list(shape)
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.random()
            if kind < 0.35 and len(dims) >= 2:
                i = int(rng.integers(0, len(dims) - 1))
                dims[i:i + 2] = [dims[i] * dims[i + 1]]
            elif kind < 0.7:
                i = int(rng.integers(0, len(dims))) if dims else 0
                size = dims[i] if dims else 1
                factors = [f for f in range(2, size) if size % f == 0]
                if factors:
                    f = int(rng.choice(factors))
                    dims[i:i + 1] = [f, size // f]
            elif kind < 0.85:
                dims.insert(int(rng.integers(0, len(dims) + 1)), 1)
            elif 1 in dims:
                dims.remove(1)
        out.append(tuple(dims))
    return out


def torch_view_strides(shape, strides, new_shape):
    base = torch.empty(1 + sum((s - 1) * st for s, st in zip(shape, strides, strict=True)))
    try:
        return tuple(base.as_strided(shape, strides).view(new_shape).stride())
    except RuntimeError:
        return None


def check_view_strides(impl, shape, strides, new_shape):
    expected = torch_view_strides(shape, strides, new_shape)
    what = f"view_strides(shape={shape}, strides={strides}, new_shape={new_shape})"
    got = call(what, impl.view_strides, shape, strides, new_shape)
    if got is not None:
        if type(got) is not tuple or len(got) != len(new_shape):
            fail(f"{what}: expected None or a tuple of {len(new_shape)} ints, got {got!r}.\n"
                 "  Try: return tuple(strides), as the signature promises (a list is not "
                 "torch's stride()).")
        assert_exact_type(got, (0,) * len(got), what, hint="each stride is a Python int.")
    if (expected is None) != (got is None):
        why = ("torch.view refuses: these dims are not laid out contiguously with each other"
               if expected is None else f"torch views it with strides {expected}")
        assert_equal(got, expected, what,
                     hint=f"{why}. Cut the old dims into chunks where stride[d] == "
                     "stride[d+1] * size[d+1] (size-1 dims never cut a chunk); a new dim may "
                     "not straddle two chunks.")
    if expected is None:
        return
    mask = tuple(s != 1 for s in new_shape)
    if [g for g, m in zip(got, mask, strict=True) if m] != [e for e, m in zip(expected, mask, strict=True) if m]:
        n = 1 + sum((s - 1) * st for s, st in zip(shape, strides, strict=True))
        fail(f"{what}:\n  expected {expected}\n  got      {got}  (size-1 dims are not compared)\n"
             + storage_strip(n, (new_shape, expected, 0), (new_shape, tuple(got), 0))
             + "\n  Try: inside a chunk, the right-most new dim gets the chunk's smallest "
             "stride and each dim to its left that stride times the sizes to its right.")


@pytest.mark.exercise("view_strides")
def test_view_strides_examples(impl):
    cases = [((4, 6), (6, 1), (2, 2, 3, 2)), ((6, 4), (1, 6), (3, 2, 4)),
             ((6, 4), (1, 6), (24,)), ((2, 3, 4), (12, 4, 1), (6, 4)),
             ((2, 3, 4), (1, 8, 2), (2, 12)), ((3, 1, 4), (4, 99, 1), (12,)),
             ((3, 1, 4), (4, 99, 1), (3, 4, 1)), ((5, 3), (3, 1), (3, 5)), ((4,), (2,), (2, 2)),
             ((2, 3), (1, 2), (6,)), ((), (), (1, 1)), ((1, 1), (7, 3), ())]
    for shape, strides, new_shape in cases:
        check_view_strides(impl, shape, strides, new_shape)


@pytest.mark.exercise("view_strides")
def test_view_strides_match_torch(impl, rng):
    for _ in range(20):
        shape, strides = strided(rng, int(rng.integers(1, 5)))
        for new_shape in reshape_targets(rng, shape, 3):
            check_view_strides(impl, shape, strides, new_shape)


# ----------------------------------------------------------------------------- flatten


def flatten_cases(rng):
    """Inputs where torch.flatten views and where it must copy, with (start, end) dims."""
    a, b, c = random_shape(rng, 3, 2, 5)
    contiguous = torch.randn(a, b, c, dtype=torch.float64)
    transposed = torch.randn(c, b, a, dtype=torch.float64).permute(2, 1, 0)
    outer_t = torch.randn(b, c, a, dtype=torch.float64).permute(2, 0, 1)  # last two dims contiguous
    sliced = torch.randn(a, b, 2 * c, dtype=torch.float64)[..., ::2]
    offset = torch.randn(a * b * c + 3, dtype=torch.float64)[3:].as_strided((a, b, c), (b * c, c, 1))
    offset_t = torch.randn(a * b * c + 4, dtype=torch.float64)[4:].as_strided((a, b, c), (1, a * c, a))
    ones = torch.randn(a, 1, c, dtype=torch.float64).transpose(0, 2)  # size-1 dim in the middle
    size_one = torch.randn(b, a, 1, c, dtype=torch.float64).transpose(0, 1)  # keeps a 1 on copy
    return [
        ("a kept size-1 dim, transposed", size_one, 0, 1), ("contiguous", contiguous, None, None),
        ("transposed", transposed, None, None), ("contiguous", contiguous, 1, None),
        ("offset 4, transposed", offset_t, 0, -1), ("offset 4, transposed", offset_t, 1, 2),
        ("size-1 middle dim, transposed", ones, 0, 1), ("size-1 middle dim, transposed", ones, 1, 2),
        ("contiguous", contiguous, -3, -2), ("transposed", transposed, 2, 2),
        ("contiguous", contiguous, 0, -1), ("contiguous", contiguous, 1, 2),
        ("offset by 3", offset, 0, 1), ("outer dim transposed", outer_t, 1, -1),
        ("outer dim transposed", outer_t, 0, -1), ("transposed", transposed, 0, -1),
        ("transposed", transposed, -2, -1), ("every other column", sliced, 0, 1),
        ("every other column", sliced, 1, 2), ("contiguous", contiguous, 1, 1),
    ]


@pytest.mark.exercise("flatten")
def test_flatten_views_when_it_can(impl, rng):
    for label, x, start, end in flatten_cases(rng):
        given = [v for v in (start, end) if v is not None]  # None: the default
        expected = torch.flatten(x, *given)
        is_view = expected.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        what = f"flatten(x{''.join(f', {v}' for v in given)}) for x ({label}): {describe(x)}"
        got = call(what, impl.flatten, x, *given)
        if got is x and expected is x:
            continue  # nothing to merge: torch.flatten itself hands back x
        if is_view:
            got = assert_view(got, x, expected, what,
                              "this merge CAN be a view (view_strides is not None): use "
                              "as_strided on x itself, no .contiguous() or .clone().")
            assert_write_through(got, x, expected, last_index(got), what)
        else:
            assert_close(got, expected, what,
                         hint="no view can merge these dims: copy with x.contiguous(), then "
                         "use row-major strides on the copy.")
            assert_not_shares_storage(got, x, what,
                                      hint="these dims cannot be merged by a view; a view "
                                      "with made-up strides reads the wrong cells.")
            if not got.is_contiguous():
                fail(f"{what}: the copy should be contiguous, got {describe(got)}.")


@pytest.mark.exercise("flatten")
def test_flatten_zero_dim(impl):
    for label, x in layouts(torch.tensor(2.5, dtype=torch.float64)):
        what = f"flatten(x) for a 0-d x ({label}): {describe(x)}"
        got = call(what, impl.flatten, x)
        got = assert_view(got, x, torch.flatten(x), what,
                          "a 0-d tensor flattens to a (1,)-shaped view of its one element.")
        assert_write_through(got, x, torch.flatten(x), (0,), what)


@pytest.mark.exercise("flatten")
def test_flatten_rejects_start_after_end(impl, rng):
    x = torch.randn(random_shape(rng, 3, 2, 5), dtype=torch.float64)
    for start, end in ((2, 1), (1, 0), (-1, 0), (2, -2)):
        what = f"flatten(x of shape {tuple(x.shape)}, {start}, {end})"
        try:
            got = impl.flatten(x, start, end)
        except ValueError:
            continue
        except (NotImplementedError, ForbiddenAPI):
            raise
        except Exception as exc:
            fail(f"{what}: expected ValueError, got {type(exc).__name__}: {exc}\n"
                 "  Try: compare the two dims after wrapping negatives, before any work.")
        fail(f"{what}: expected ValueError (start_dim comes after end_dim; torch.flatten "
             f"refuses too), but it returned {describe(got)}.")
