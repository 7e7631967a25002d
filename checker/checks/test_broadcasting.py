"""Hidden checks for the kata broadcasting. torch's own broadcasting is the oracle.

Shapes are random with distinct sizes, so a left-aligned or transposed answer cannot pass by
coincidence. Broadcast views are judged on structure (shared storage, ``_base``, stride 0,
offset, writes reaching the input); gradients against autograd with random upstream
gradients in float64; the batched product by counting the torch calls it makes, which must not
grow with any size (a Python loop over rows or batches does).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.overrides import TorchFunctionMode

from checker.helpers import (
    as_tensor_result,
    assert_close,
    assert_equal,
    assert_shares_storage,
    describe,
    fail,
    layouts,
    random_shape,
    storage_strip,
)
from checker.sandbox.errors import ForbiddenAPI

pytestmark = pytest.mark.kata("broadcasting")

SENTINEL = 4321.5


# ----------------------------------------------------------------------------- helpers


SHAPE_HINT = ("line the dims up from the RIGHT; a size must match the other or be 1. Print "
              "the shapes of your intermediate tensors.")
VIEW_HINT = ("every cell of an as_strided view must lie inside the input's storage: a dim that "
             "grows from size 1 needs stride 0, not its old stride.")


def call(what, fn, *args, hint=SHAPE_HINT):
    """Run the learner's function; a forbidden API or a torch error becomes a teaching failure."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except ForbiddenAPI as exc:
        fail(f"{what}: {exc}.")
    except RuntimeError as exc:
        fail(f"{what} raised RuntimeError: {exc}\n  Try: {hint}")


def owner(t: torch.Tensor) -> torch.Tensor:
    return t if t._base is None else t._base


def storage_numel(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes() // t.element_size()


def meta(t: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    return tuple(t.shape), tuple(t.stride()), t.storage_offset()


def same_cells(a: tuple, b: tuple) -> bool:
    (sa, ta, oa), (sb, tb, ob) = a, b
    if sa != sb:
        return False
    if math.prod(sa) == 0:
        return True
    return oa == ob and all(x == y for s, x, y in zip(sa, ta, tb, strict=True) if s != 1)


def broadcastable_from(rng, target: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``target``: some leading dims dropped, some dims set to 1."""
    drop = int(rng.integers(0, len(target) + 1))
    return tuple(1 if rng.random() < 0.4 else s for s in target[drop:])


def target_shape(rng, low: int = 2, high: int = 4) -> tuple[int, ...]:
    return random_shape(rng, int(rng.integers(low, high + 1)), 2, 6)


# ----------------------------------------------------------------------------- broadcast_shapes


def torch_broadcast_shape(shapes) -> tuple[int, ...]:
    """torch's answer (broadcast_tensors on empty tensors; broadcast_shapes imports sympy)."""
    if not shapes:
        return ()
    return tuple(torch.broadcast_tensors(*(torch.empty(s) for s in shapes))[0].shape)


@pytest.mark.exercise("broadcast_shapes")
def test_broadcast_shapes_match_torch(impl, rng):
    cases = [((2, 1, 3), (4, 1), ()), ((3,), (2, 3)), ((5, 1), (1, 4)), ((1,), (0,)),
             ((0, 1), (3,)), ((),), (), ((1, 1), (1,)), ((4, 1, 2), (3, 1), (1, 1, 1, 1))]
    for _ in range(20):
        target = target_shape(rng, 1, 4)
        cases.append(tuple(broadcastable_from(rng, target) for _ in range(int(rng.integers(2, 4)))))
    for shapes in cases:
        expected = torch_broadcast_shape(shapes)
        what = "broadcast_shapes(" + ", ".join(map(str, shapes)) + ")"
        try:
            got = call(what, impl.broadcast_shapes, *shapes)
        except ValueError as exc:
            fail(f"{what} raised ValueError({str(exc)!r}), but these shapes DO broadcast: torch "
                 f"gives {expected}.\n  Try: line the shapes up from the RIGHT (the last dims "
                 "face each other), padding the shorter ones with 1s on the LEFT.")
        assert_equal(got, expected, what,
                     hint="line the shapes up from the RIGHT (pad the shorter ones with 1s on the "
                     "LEFT); per dim keep the size that is not 1 (a 1 meets 0 -> 0).")


@pytest.mark.exercise("broadcast_shapes")
def test_broadcast_shapes_rejects_clashes(impl, rng):
    cases = []
    for _ in range(6):
        target = target_shape(rng, 1, 3)
        d = int(rng.integers(0, len(target)))
        clash = target[d] + int(rng.integers(1, 4))
        drop = int(rng.integers(0, d + 1))
        other = [1 if rng.random() < 0.4 else s for s in target[drop:]]
        other[d - drop] = target[d]
        bad = tuple(clash if k == d else s for k, s in enumerate(target))
        cases.append(((tuple(other), bad), target[d], clash))
    for _ in range(3):  # three shapes: the clash is between the 2nd and the 3rd, the 1st yields
        target = target_shape(rng, 1, 3)
        d = int(rng.integers(0, len(target)))
        clash = target[d] + int(rng.integers(1, 4))
        first = tuple(1 if k == d else s for k, s in enumerate(target))[int(rng.integers(0, d + 2)):]
        bad = tuple(clash if k == d else s for k, s in enumerate(target))
        cases.append(((first, target, bad), target[d], clash))
    cases.append((((2, 3), (3, 2)), 2, 3))
    for shapes, a, b in cases:
        what = "broadcast_shapes(" + ", ".join(map(str, shapes)) + ")"
        try:
            got = impl.broadcast_shapes(*shapes)
        except ValueError as exc:
            text = str(exc)
            if not all(re.search(rf"(?<!\d){n}(?!\d)", text) for n in (a, b)):
                fail(f"{what} raised ValueError({text!r}), which does not name the clashing "
                     f"sizes {a} and {b}.\n  Try: say which dim clashes and with which two "
                     "sizes, so the reader can find the bad operand.")
            continue
        except NotImplementedError:
            raise
        except Exception as exc:
            fail(f"{what}: expected ValueError, got {type(exc).__name__}: {exc}\n"
                 "  Try: raise ValueError yourself (an `assert` is not an error message and "
                 "vanishes under python -O).")
        fail(f"{what}: sizes {a} and {b} differ and neither is 1, so these shapes cannot "
             f"broadcast; expected ValueError, got {got!r}.\n"
             "  Try: a size only yields when it is 1; taking the larger size hides the clash.")


# ----------------------------------------------------------------------------- broadcast_tensors


EDGE_SETS = [[(0, 3), (1, 3)], [(), (2, 3)], [(3, 1), (1, 4)], [(1,), (5,)], [(2, 3)],
             [(1, 1), (1,)], [(4, 1, 2), (3, 1), (1, 1, 1)], [(2, 0), (1,)], [(), ()]]


def operand_sets(rng):
    """Operand lists whose shapes broadcast (a fixed corpus, then random draws), each operand
    in every layout in turn (the k-th operand shifted by k, so layouts meet in many pairs)."""
    shape_sets = list(EDGE_SETS)
    for _ in range(3):
        target = target_shape(rng)
        shapes = [broadcastable_from(rng, target) for _ in range(int(rng.integers(2, 4)))]
        if all(len(s) == len(target) and 1 not in s for s in shapes):
            shapes[0] = (1, *target[1:])
        shape_sets.append(shapes)
    out = []
    for shapes in shape_sets:
        kinds = [list(layouts(torch.randn(shape, dtype=torch.float64))) for shape in shapes]
        for j in range(max(len(k) for k in kinds)):
            out.append([k[(j + i) % len(k)] for i, k in enumerate(kinds)])
    return out


@pytest.mark.exercise("broadcast_tensors")
def test_broadcast_tensors_are_stride_zero_views(impl, rng):
    for operands in operand_sets(rng):
        tensors = [t for _, t in operands]
        expected = torch.broadcast_tensors(*tensors)
        what = "broadcast_tensors(" + ", ".join(f"{label} {tuple(t.shape)}" for label, t in operands) + ")"
        got = call(what, impl.broadcast_tensors, *tensors, hint=VIEW_HINT)
        if type(got) not in (tuple, list) or len(got) != len(tensors):
            fail(f"{what}: expected a tuple of {len(tensors)} tensors, got {describe(got)}.")
        for i, (x, e, g) in enumerate(zip(tensors, expected, got, strict=True)):
            item = f"{what}[{i}] (input {describe(x)})"
            g = as_tensor_result(g, item)
            if tuple(g.shape) != tuple(e.shape):
                fail(f"{item}:\n  expected shape {tuple(e.shape)}\n  got      shape "
                     f"{tuple(g.shape)}\n  Try: every result has the common broadcast shape.")
            assert_shares_storage(g, x, item,
                                  hint="broadcasting never copies: use as_strided with stride 0 "
                                  "(arithmetic such as x + zeros makes new memory).")
            if not same_cells(meta(g), meta(e)):
                fail(f"{item}: your view reads other storage cells than torch's.\n"
                     + storage_strip(storage_numel(x), meta(e), meta(g))
                     + "\n  Try: stride 0 for new leading dims AND for size-1 dims that grow; "
                     "the input's own stride elsewhere; offset x.storage_offset().")
            assert_close(g, e, item)
            if g is not x and g._base is not owner(x):
                fail(f"{item}: the result shares the storage but is not a view of the input "
                     "(wrong _base).\n  Try: call as_strided on the input itself.")
            if g.numel():
                version = x._version
                g[(0,) * g.dim()] = SENTINEL
                if e[(0,) * e.dim()].item() != SENTINEL or x._version == version:
                    fail(f"{item}: a write through the result did not reach the input (or did "
                         "not bump its _version): it is not a view of the input.")


@pytest.mark.exercise("broadcast_tensors")
def test_broadcast_tensors_rejects_clashes(impl, rng):
    a, b = random_shape(rng, 2, 2, 6)
    x, y = torch.randn(a, b, dtype=torch.float64), torch.randn(b + 1, dtype=torch.float64)
    what = f"broadcast_tensors(x of shape {(a, b)}, y of shape {(b + 1,)})"
    try:
        got = impl.broadcast_tensors(x, y)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as exc:
        fail(f"{what}: expected ValueError, got {type(exc).__name__}: {exc}\n"
             "  Try: compute the common shape first (your broadcast_shapes) and let it raise.")
    fail(f"{what}: sizes {b} and {b + 1} cannot broadcast; expected ValueError, got "
         f"{describe(got)}.")


# ----------------------------------------------------------------------------- sum_to_shape


def sum_cases(rng):
    target = target_shape(rng, 2, 4)
    shapes = [broadcastable_from(rng, target) for _ in range(4)]
    shapes += [target, target[1:], (target[-1],), (), (1,) * len(target), (target[-2], 1)]
    return target, shapes


@pytest.mark.exercise("sum_to_shape")
def test_sum_to_shape_matches_sum_to_size(impl, rng):
    target, shapes = sum_cases(rng)
    grad = torch.randn(target, dtype=torch.float64)
    for label, g in layouts(grad):
        for shape in shapes:
            expected = grad.sum_to_size(shape) if shape else grad.sum()
            what = f"sum_to_shape(grad ({label}) of shape {target}, {shape})"
            got = call(what, impl.sum_to_shape, g, shape)
            assert_close(got, expected, what,
                         hint="sum the extra LEADING dims away; then sum each dim where shape "
                         "has 1 and grad does not with keepdim=True, so the result has exactly "
                         "`shape`.")


@pytest.mark.exercise("sum_to_shape")
def test_sum_to_shape_edges(impl):
    """Size-0 dims (a size-1 input broadcast over nothing gets a zero gradient), 0-d, and the
    shapes that do not broadcast to grad's, which must raise ValueError."""
    for target, shape in (((2, 0, 3), (2, 1, 3)), ((0, 3), (1, 3)), ((0, 3), (3,)), ((4, 0), (1,)),
                          ((), ()), ((3,), ()), ((2, 1), (1, 1))):
        grad = torch.randn(target, dtype=torch.float64)
        expected = grad.sum_to_size(shape) if shape else grad.sum()
        what = f"sum_to_shape(grad of shape {target}, {shape})"
        assert_close(call(what, impl.sum_to_shape, grad, shape), expected, what,
                     hint="a dim where shape has 1 is summed even when grad's size there is 0.")
    for target, shape in (((2, 3), (1, 2, 3)), ((2, 3), (4, 3)), ((2, 3), (2, 2)), ((3,), (2, 3))):
        grad = torch.randn(target, dtype=torch.float64)
        what = f"sum_to_shape(grad of shape {target}, {shape})"
        try:
            got = impl.sum_to_shape(grad, shape)
        except ValueError:
            continue
        except (NotImplementedError, ForbiddenAPI):
            raise
        except Exception as exc:
            fail(f"{what}: expected ValueError, got {type(exc).__name__}: {exc}\n"
                 "  Try: check that shape broadcasts to grad.shape before summing.")
        fail(f"{what}: {shape} does not broadcast to {target}; expected ValueError, got "
             f"{describe(got)}.")


@pytest.mark.exercise("sum_to_shape")
def test_sum_to_shape_is_the_gradient_of_a_broadcast(impl, rng):
    for _ in range(4):
        target = target_shape(rng, 2, 4)
        shape = broadcastable_from(rng, target)
        if len(shape) == len(target) or all(s == 1 for s in shape):
            shape = (1, *target[2:]) if rng.random() < 0.5 else target[1:]
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        w = torch.randn(target, dtype=torch.float64)
        upstream = torch.randn(target, dtype=torch.float64)
        (x * w).backward(upstream)
        local = (upstream * w).detach()
        what = (f"sum_to_shape(upstream * w, {shape}) — the gradient of x of shape {shape} in "
                f"x * w, w of shape {target}")
        got = call(what, impl.sum_to_shape, local, shape)
        assert_close(got, x.grad, what,
                     hint="each x element was used once per broadcast copy: its gradient is the "
                     "SUM (not the mean) over those copies.")


# ----------------------------------------------------------------------------- batched_matmul


class OpCounter(TorchFunctionMode):
    """Counts the torch functions and tensor methods called under it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def matmul_cases(rng):
    """(batch_a, batch_b, n, k, m): batch dims that broadcast against each other."""
    n, k, m = (int(v) for v in rng.choice(range(2, 8), size=3, replace=False))
    p, q, r = (int(v) for v in rng.choice(range(2, 6), size=3, replace=False))
    return [((p, 1, r), (q, r), n, k, m), ((), (q,), n, k, m), ((p,), (), n, k, m),
            ((q, p), (q, p), n, k, m), ((), (), n, k, m), ((1, r), (p, 1), n, k, m)]


@pytest.mark.exercise("batched_matmul")
def test_batched_matmul_matches_matmul(impl, rng):
    for batch_a, batch_b, n, k, m in matmul_cases(rng):
        a = torch.randn(*batch_a, n, k, dtype=torch.float64)
        b = torch.randn(*batch_b, m, k, dtype=torch.float64).transpose(-1, -2)  # non-contiguous
        expected = torch.matmul(a, b)
        what = (f"batched_matmul(a of shape {tuple(a.shape)}, b of shape {tuple(b.shape)}) "
                f"[batch {batch_a} with {batch_b}]")
        got = call(what, impl.batched_matmul, a, b)
        assert_close(got, expected, what,
                     hint="a[..., :, :, None] * b[..., None, :, :] has shape (..., n, k, m); "
                     "sum over the k dim (-2). The batch dims broadcast by themselves.")


@pytest.mark.exercise("batched_matmul")
def test_batched_matmul_keeps_the_dtype(impl, rng):
    """float32, int64 and complex128 operands in several layouts: the product keeps the
    dtype (no float64 detour) and, for complex, conjugates nothing."""
    n, k, m = random_shape(rng, 3, 2, 5)
    for dtype in (torch.float32, torch.int64, torch.complex128):
        make = (lambda *shape, dtype=dtype: torch.randint(-5, 6, shape, dtype=dtype)) \
            if dtype == torch.int64 else (lambda *shape, dtype=dtype: torch.randn(*shape, dtype=dtype))
        a0, b0 = make(2, n, k), make(k, m)
        for (la, a), (lb, b) in zip(layouts(a0), layouts(b0), strict=False):
            expected = torch.matmul(a, b)
            what = (f"batched_matmul(a {la} {tuple(a.shape)} {str(dtype)[6:]}, "
                    f"b {lb} {tuple(b.shape)})")
            got = call(what, impl.batched_matmul, a, b)
            tol = {torch.float32: 1e-5, torch.complex128: 1e-10}.get(dtype, 0.0)
            assert_close(got, expected, what, rtol=tol, atol=tol,
                         hint="multiply and sum in the operands' own dtype.")


@pytest.mark.exercise("batched_matmul")
def test_batched_matmul_runs_no_loops(impl, rng):
    patterns = [lambda p, q: ((p, 1), (q,)), lambda p, q: ((p, q), (p, q)),
                lambda p, q: ((), (p,)), lambda p, q: ((q,), ())]
    for pattern in patterns:
        counts = []
        for scale in (0, 1):
            n, k, m = (int(v) + 3 * scale for v in rng.choice(range(2, 6), size=3, replace=False))
            p, q = (int(v) + 3 * scale for v in rng.choice(range(2, 5), size=2, replace=False))
            batch_a, batch_b = pattern(p, q)
            a = torch.randn(*batch_a, n, k, dtype=torch.float64)
            b = torch.randn(*batch_b, k, m, dtype=torch.float64)
            shapes = f"a of shape {tuple(a.shape)}, b of shape {tuple(b.shape)}"
            counter = OpCounter()
            with counter:
                got = call(f"batched_matmul({shapes})", impl.batched_matmul, a, b)
            assert_close(got, torch.matmul(a, b), f"batched_matmul({shapes})")
            counts.append((shapes, counter.count))
        (small_shapes, small), (big_shapes, big) = counts
        if small != big:
            fail(f"batched_matmul made {small} torch calls for {small_shapes} but {big} for "
                 f"{big_shapes}: the work grows with the sizes, so a Python loop is running "
                 "over rows, columns or batch entries.\n"
                 "  Try: one broadcast product a[..., :, :, None] * b[..., None, :, :] and one sum.")
