"""Hidden checks for the kata dtypes and in-place ops. torch itself is the oracle."""

from __future__ import annotations

import pytest
import torch

from checker.helpers import (
    assert_close,
    assert_equal,
    describe,
    expect_raises,
    fail,
    graph_lines,
    random_shape,
)

pytestmark = pytest.mark.kata("dtypes_and_inplace")

F64 = torch.float64
DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
          torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
          torch.complex128]


# The first backward of a process imports lazily (about a second); pay it at import time,
# not inside the first check that runs a backward.
_warm = torch.ones(2, dtype=F64, requires_grad=True)
_warm.exp().backward(torch.ones(2, dtype=F64))
torch.autograd.grad(_warm.sin(), _warm, torch.ones(2, dtype=F64))


def call(fn, what, *args, hint=""):
    """Run the learner's function; an exception becomes a failure that names the call."""
    try:
        return fn(*args)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the learner's code is a verdict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        fail(f"{what} raised {type(exc).__name__}: {first}" + (f"\n  Try: {hint}" if hint else ""))


def short(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# ----------------------------------------------------------------------------- result_dtype


def operand(rng, kind: str, dtype: torch.dtype | None = None):
    if kind == "scalar":
        which = dtype or rng.choice(["bool", "int", "float", "complex"])
        value = {
            "bool": lambda: bool(rng.integers(2)),
            "int": lambda: int(rng.integers(-9, 10)),
            "float": lambda: float(round(rng.normal() * 4, 2)),
            "complex": lambda: complex(round(rng.normal(), 2), round(rng.normal(), 2)),
        }[which]()
        return value
    dtype = dtype or DTYPES[int(rng.integers(len(DTYPES)))]
    shape = () if kind == "zero" else random_shape(rng, int(rng.integers(1, 3)), 2, 5)
    return torch.zeros(shape, dtype=dtype)


def spell(x) -> str:
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            return f"0-dim tensor({short(x.dtype)})"
        return f"tensor(shape={tuple(x.shape)}, {short(x.dtype)})"
    return f"{x!r} (Python {type(x).__name__})"


def check_dtype_pairs(impl, pairs, hint):
    for a, b in pairs:
        expected = torch.result_type(a, b)
        what = f"result_dtype({spell(a)}, {spell(b)})"
        got = call(impl.result_dtype, what, a, b, hint=hint)
        if type(got) is not torch.dtype:
            fail(f"{what}: expected a torch.dtype, got {describe(got)}.")
        if got != expected:
            fail(f"{what}:\n  expected {expected}\n  got      {got}\n  Try: {hint}")


@pytest.mark.exercise("result_dtype")
def test_result_dtype_tensor_with_python_number(impl, rng):
    pairs = []
    for dtype in rng.permutation(len(DTYPES)):
        for kind in rng.permutation(["bool", "int", "float", "complex"])[:2]:
            t, s = operand(rng, "dim", DTYPES[int(dtype)]), operand(rng, "scalar", str(kind))
            pairs.append((t, s) if rng.random() < 0.5 else (s, t))
    # Always present: a Python bool is its own category (bool), not an int.
    pairs.insert(int(rng.integers(len(pairs))), (operand(rng, "dim", torch.bool),
                                                 operand(rng, "scalar", "bool")))
    check_dtype_pairs(
        impl, pairs,
        "a Python number only matters when its category (bool < int < float < complex) is "
        "higher than the tensor's; a float then means torch.get_default_dtype(), and a complex "
        "keeps the precision of a floating tensor.",
    )


@pytest.mark.exercise("result_dtype")
def test_result_dtype_zero_dim_tensors(impl, rng):
    pairs = []
    for _ in range(18):
        first = "dim" if rng.random() < 0.7 else "zero"
        second = "zero" if rng.random() < 0.75 else "scalar"
        a, b = operand(rng, first), operand(rng, second)
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    # The two classic traps, always present: a wider 0-dim of the same category is ignored,
    # a 0-dim of a higher category brings its own width.
    pairs.insert(int(rng.integers(len(pairs))), (operand(rng, "dim", torch.float32),
                                                 operand(rng, "zero", torch.float64)))
    pairs.insert(int(rng.integers(len(pairs))), (operand(rng, "dim", torch.int32),
                                                 operand(rng, "zero", torch.float64)))
    # A 0-dim tensor outranks a Python number of its own category: it keeps its width.
    narrow_int = [torch.uint8, torch.int8, torch.int16, torch.int32][int(rng.integers(4))]
    narrow_float = [torch.float16, torch.bfloat16, torch.float32][int(rng.integers(3))]
    for zero, kind in ((narrow_int, "int"), (narrow_float, "float"), (torch.bool, "bool")):
        a, b = operand(rng, "zero", zero), operand(rng, "scalar", kind)
        pairs.insert(int(rng.integers(len(pairs))), (a, b) if rng.random() < 0.5 else (b, a))
    check_dtype_pairs(
        impl, pairs,
        "a 0-dim tensor ranks between dimensioned tensors and Python numbers: it is ignored "
        "unless its category is higher, and then its own dtype (width included) is used — "
        "except that a floating tensor meeting a complex one keeps its own precision "
        "(float16 -> complex32, float32 -> complex64, float64 -> complex128).",
    )


@pytest.mark.exercise("result_dtype")
def test_result_dtype_every_kind_of_pair(impl):
    """The fixed corpus: every dtype as a dimensioned and as a 0-dim tensor, against every
    dtype of the other kind and every Python number, both ways round (the rule's every
    branch: bool with int, complex of each width against each float, ...)."""
    numbers = [True, 3, -2.5, 1.5 + 2j]
    pairs = []
    for dtype in DTYPES:
        dim, zero = torch.zeros(2, dtype=dtype), torch.zeros((), dtype=dtype)
        pairs += [(dim, torch.zeros((), dtype=other)) for other in DTYPES]
        pairs += [(dim, n) for n in numbers] + [(zero, n) for n in numbers]
        pairs += [(zero, torch.zeros((), dtype=other)) for other in DTYPES]
        pairs += [(dim, torch.zeros(3, 2, dtype=other)) for other in DTYPES]
    check_dtype_pairs(
        impl, pairs + [(b, a) for a, b in pairs],
        "the rule is symmetric: dimensioned tensors first (promote_types among them), then a "
        "0-dim tensor, then a Python number, each lower kind counting only when its category "
        "(bool < int < float < complex) is higher.",
    )


@pytest.mark.exercise("result_dtype")
def test_result_dtype_random_pairs(impl, rng):
    kinds = ["dim", "zero", "scalar"]
    pairs = []
    for _ in range(20):
        a = operand(rng, kinds[int(rng.integers(3))])
        b = operand(rng, kinds[int(rng.integers(3))])
        pairs.append((a, b))
    check_dtype_pairs(
        impl, pairs,
        "promote within the highest kind present (torch.promote_types), then let a lower "
        "kind in only if its category is higher.",
    )


@pytest.mark.exercise("result_dtype")
def test_result_dtype_follows_default_dtype(impl, rng):
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        pairs = []
        for dtype in (torch.bool, torch.int16, torch.int64, torch.float16, torch.float32):
            for kind in ("float", "complex"):
                t, s = operand(rng, "dim", dtype), operand(rng, "scalar", kind)
                pairs.append((t, s) if rng.random() < 0.5 else (s, t))
        order = rng.permutation(len(pairs))
        check_dtype_pairs(
            impl, [pairs[int(i)] for i in order],
            "with torch.set_default_dtype(torch.float64) a Python float means float64 and a "
            "Python complex complex128: read torch.get_default_dtype() when you are called.",
        )
    finally:
        torch.set_default_dtype(old)


@pytest.mark.exercise("result_dtype")
def test_result_dtype_rejects_other_operands(impl):
    others = [None, "2.5", [1, 2]]
    partners = [torch.ones(3, dtype=torch.int32), torch.tensor(1.5), 2, 0.5]
    for odd in others:
        for a, b in [pair for p in partners for pair in ((odd, p), (p, odd))]:
            expect_raises(
                TypeError, lambda a=a, b=b: impl.result_dtype(a, b),
                f"result_dtype({spell(a)}, {spell(b)})",
                hint="an operand that is neither a tensor nor a Python bool/int/float/complex "
                "has no place in the rules: raise TypeError.",
            )


# ----------------------------------------------------------------------------- joined_shape


def torch_joined(op, shapes, dim):
    """(shape, None) from torch, or (None, the exception type the learner must raise)."""
    tensors = [torch.empty(s) for s in shapes]
    try:
        if op == "cat":
            out = torch.cat(tensors, dim)
        elif op == "stack":
            out = torch.stack(tensors, dim)
        else:
            out = tensors[0].unsqueeze(dim)
    except IndexError:
        return None, IndexError
    except (RuntimeError, ValueError):
        return None, ValueError
    return tuple(out.shape), None


def check_joins(impl, cases, hint):
    for op, shapes, dim in cases:
        expected, error = torch_joined(op, shapes, dim)
        what = f"joined_shape({op!r}, {shapes}, dim={dim})"
        if error is not None:
            expect_raises(error, lambda op=op, shapes=shapes, dim=dim: impl.joined_shape(
                op, [tuple(s) for s in shapes], dim), what, hint=hint)
            continue
        got = call(impl.joined_shape, what, op, [tuple(s) for s in shapes], dim, hint=hint)
        assert_equal(got, expected, what, hint=hint)


def join_dim(rng, ndim: int, new_dim: bool) -> int:
    n = ndim + 1 if new_dim else ndim
    d = int(rng.integers(0, n))
    return d - n if rng.random() < 0.4 else d


@pytest.mark.exercise("joined_shape")
def test_joined_shape_cat(impl, rng):
    cases = []
    for _ in range(12):
        ndim = int(rng.integers(1, 5))
        base = list(random_shape(rng, ndim, 2, 7))
        dim = join_dim(rng, ndim, new_dim=False)
        shapes = []
        for _ in range(int(rng.integers(1, 4))):
            s = list(base)
            s[dim] = int(rng.integers(0 if ndim > 1 else 1, 6))
            shapes.append(tuple(s))
        cases.append(("cat", shapes, dim))
    check_joins(impl, cases, "cat keeps the number of dims: the sizes along dim add up, every "
                "other size must match; a negative dim counts from the inputs' last dim.")


@pytest.mark.exercise("joined_shape")
def test_joined_shape_stack_and_unsqueeze(impl, rng):
    cases = []
    for i in range(14):
        ndim = int(rng.integers(0, 4))
        shape = random_shape(rng, ndim, 2, 7)
        dim = join_dim(rng, ndim, new_dim=True)
        if i % 3 == 0:
            dim = ndim if rng.random() < 0.5 else -(ndim + 1)  # both ends of the range
        if i % 2:
            cases.append(("unsqueeze", [shape], dim))
        else:
            cases.append(("stack", [shape] * int(rng.integers(2, 5)), dim))
    check_joins(impl, cases, "stack and unsqueeze add a dim: the result has ndim + 1 dims, so "
                "dim runs over -(ndim+1) .. ndim and a negative dim counts from the result's end.")


@pytest.mark.exercise("joined_shape")
def test_joined_shape_errors(impl, rng):
    cases = []
    for op in ("cat", "stack", "unsqueeze"):  # dim out of range, shapes fine
        ndim = int(rng.integers(1, 4))
        shape = random_shape(rng, ndim, 2, 7)
        limit = ndim if op == "cat" else ndim + 1
        for dim in (limit, -limit - 1):
            cases.append((op, [shape] * (1 if op == "unsqueeze" else 2), dim))
    ndim = int(rng.integers(2, 4))
    shape = list(random_shape(rng, ndim, 2, 7))
    other = list(shape)
    other[-1] += 1
    cases.append(("cat", [tuple(shape), tuple(other)], 0))  # a non-cat dim differs
    cases.append(("stack", [tuple(shape), tuple(other)], 0))  # stack needs equal shapes
    cases.append(("cat", [tuple(shape), tuple(shape) + (1,)], 0))  # different ndim
    cases.append(("cat", [(), ()], 0))  # 0-dim tensors cannot be concatenated
    cases.append(("stack", [], 0))
    order = rng.permutation(len(cases))
    check_joins(impl, [cases[int(i)] for i in order],
                "raise IndexError for a dim out of range and ValueError for shapes that "
                "cannot be joined, as torch.cat / torch.stack / unsqueeze refuse them.")


# ----------------------------------------------------------------------------- breaks_backward

UNARY = {
    "exp": lambda a: a.exp(), "sin": lambda a: a.sin(), "cos": lambda a: a.cos(),
    "log": lambda a: a.log(), "sqrt": lambda a: a.sqrt(), "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(), "relu": lambda a: a.relu(),
    "square": lambda a: a.square(), "abs": lambda a: a.abs(),
    "reciprocal": lambda a: a.reciprocal(), "softmax": lambda a: a.softmax(dim=-1),
    "neg": lambda a: -a, "sum": lambda a: a.sum(), "mean": lambda a: a.mean(),
    "clone": lambda a: a.clone(), "scale": lambda a: a * 3.0,
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "matmul": lambda a, b: a @ b.T,
    "maximum": lambda a, b: torch.maximum(a, b), "pow": lambda a, b: a**b,
    "where": lambda a, b: torch.where(a > b, a, b),
}


def scene(op: str, victim: str, shape) -> tuple[bool, str]:
    """Run the scene for real: (does backward raise?, what y.grad_fn saved)."""
    a = (torch.rand(shape, dtype=F64) + 0.5).requires_grad_().clone()
    b = (torch.rand(shape, dtype=F64) + 0.5).requires_grad_().clone()
    y = UNARY[op](a) if op in UNARY else BINARY[op](a, b)
    saved = [k for k in dir(y.grad_fn) if k.startswith("_saved_")
             and isinstance(getattr(y.grad_fn, k), torch.Tensor)]
    node = type(y.grad_fn).__name__
    {"input": a, "other": b, "output": y}[victim].mul_(1.0)
    try:
        y.backward(torch.randn_like(y))
    except RuntimeError as exc:
        if "modified by an inplace operation" not in str(exc):
            raise
        return True, f"{node}, which saves {', '.join(saved) or 'no tensor'}"
    return False, f"{node}, which saves {', '.join(saved) or 'no tensor'}"


@pytest.mark.exercise("breaks_backward")
def test_breaks_backward_unary_ops(impl, rng):
    check_scenes(impl, rng, [(op, v) for op in UNARY for v in ("input", "output")])


@pytest.mark.exercise("breaks_backward")
def test_breaks_backward_binary_ops(impl, rng):
    check_scenes(impl, rng, [(op, v) for op in BINARY for v in ("input", "other", "output")])


def check_scenes(impl, rng, scenes):
    shape = random_shape(rng, 2, 2, 6)
    for i in rng.permutation(len(scenes)):
        op, victim = scenes[int(i)]
        expected, saved = scene(op, victim, shape)
        what = f"breaks_backward({op!r}, {victim!r})"
        got = call(impl.breaks_backward, what, op, victim)
        if type(got) is not bool:
            fail(f"{what}: expected a bool, got {describe(got)}.")
        if got != expected:
            fail(
                f"{what}: expected {expected}, got {got}.\n"
                f"  y.grad_fn is {saved}: an in-place change of a saved tensor bumps its "
                "version and backward refuses it; anything not saved may change freely.\n"
                "  Try: write down the derivative of the op: whatever it needs (input, other, "
                "output) is what autograd saved."
            )


# ----------------------------------------------------------------------------- sigmoid_layer


def layer_inputs(rng, x_grad: bool = True):
    n, k, m = random_shape(rng, 3, 2, 7)
    x = torch.randn(n, k, dtype=F64, requires_grad=x_grad)
    w = torch.randn(k, m, dtype=F64, requires_grad=True)
    b = torch.randn(m, dtype=F64, requires_grad=True)
    return x, w, b


def run_layer(impl, x, w, b):
    """(reference output, reference grads, the learner's output, learner's grads) or failure."""
    what = f"sigmoid_layer(x {tuple(x.shape)}, w {tuple(w.shape)}, b {tuple(b.shape)})"
    rx, rw, rb = (t.detach().clone().requires_grad_(t.requires_grad) for t in (x, w, b))
    ref = 2 * torch.sigmoid(rx @ rw + rb) - 1
    g = torch.randn_like(ref)
    ref.backward(g)
    versions = [t._version for t in (x, w, b)]
    out = call(impl.sigmoid_layer, what, x, w, b)
    assert_close(out, ref.detach(), what, hint="the values are 2 * sigmoid(x @ w + b) - 1.")
    for name, t, v in zip("xwb", (x, w, b), versions, strict=True):
        if t._version != v:
            fail(f"{what}: your code modified the input {name} in place (its _version went "
                 f"from {v} to {t._version}). Work on the result of x @ w, never on the inputs.")
    if not out.requires_grad:
        fail(f"{what}: the result does not require grad, so backward cannot reach w and b. "
             "Was part of it computed under torch.no_grad() or through .detach()/.data?")
    try:
        out.backward(g)
    except RuntimeError as exc:
        fail(f"{what}: out.backward(g) raised RuntimeError:\n  {str(exc).splitlines()[0]}\n"
             "  Try: an in-place op changed a tensor that autograd saved for backward; make "
             "that one op out of place.")
    for name, t, r in zip("xwb", (x, w, b), (rx, rw, rb), strict=True):
        if r.grad is None:
            continue
        if t.grad is None:
            fail(f"{what}: after out.backward(g), {name}.grad is None; the graph does not "
                 f"reach {name}.")
        assert_close(t.grad, r.grad, f"{what}: {name}.grad after out.backward(g)",
                     hint="backward ran but gave wrong gradients: a write through .data (or "
                     "under no_grad) hides a change from autograd, which then uses a stale "
                     "saved value. Make the breaking op out of place instead.")
    return out


@pytest.mark.exercise("sigmoid_layer")
def test_sigmoid_layer_values_and_backward(impl, rng):
    x, w, b = layer_inputs(rng)
    run_layer(impl, x, w, b)


@pytest.mark.exercise("sigmoid_layer")
def test_sigmoid_layer_input_without_grad(impl, rng):
    x, w, b = layer_inputs(rng, x_grad=False)
    run_layer(impl, x, w, b)


@pytest.mark.exercise("sigmoid_layer")
def test_sigmoid_layer_keeps_safe_ops_in_place(impl, rng):
    x, w, b = layer_inputs(rng)
    out = call(impl.sigmoid_layer, "sigmoid_layer(x, w, b)", x, w, b)
    if type(out) is not torch.Tensor or out.grad_fn is None:
        fail(f"sigmoid_layer(x, w, b): expected a tensor with a grad_fn, got {describe(out)}.")
    nodes, stack, seen = [], [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(n for n, _ in node.next_functions)
    sig = [n for n in nodes if type(n).__name__ == "SigmoidBackward0"]
    picture = "\n".join("    " + line for line in graph_lines(out.grad_fn))
    if not sig:
        fail("sigmoid_layer: the result's graph has no SigmoidBackward0 node; keep "
             "h.sigmoid_() (or a sigmoid) in the computation.\n  your graph:\n" + picture)
    saved_version = sig[0]._saved_result._version
    if saved_version != 2:
        fail(
            f"sigmoid_layer: the output that sigmoid saved is at _version {saved_version}; "
            "with h.add_(b) and h.sigmoid_() kept in place on h = x @ w it is at version 2.\n"
            "  Those two in-place ops are safe (x @ w saved x and w, not h; add saves nothing; "
            "sigmoid_ saves its own result). Keep them, and change only the op that modifies "
            "what sigmoid saved.\n  your graph:\n" + picture
        )
    if out._version < 1:
        fail("sigmoid_layer: the result has _version 0, so the final h.sub_(1) was made out "
             "of place too. Once the scaling produced a fresh tensor, sub_ on it is safe: keep "
             "it in place.\n  your graph:\n" + picture)


# ----------------------------------------------------------------------------- sgd_update_


def make_params(rng):
    shapes = [random_shape(rng, 2, 2, 7), random_shape(rng, 1, 2, 9), random_shape(rng, 2, 2, 7),
              random_shape(rng, 3, 2, 5)]
    params = []
    for i, shape in enumerate(shapes):
        values = torch.randn(shape, dtype=F64)
        if i == 0:  # a non-contiguous leaf: its strides must survive the update
            p = torch.empty_strided(shape, (1, shape[0]), dtype=F64).copy_(values)
        else:
            p = values.clone()
        p.requires_grad_()
        if i != 2:  # param 2 got no gradient this step
            p.grad = torch.randn(shape, dtype=F64)
        params.append(p)
    order = rng.permutation(len(params))
    return [params[int(i)] for i in order]


def check_sgd(impl, params, lr, wd, label, *, pass_zero=True):
    """One step judged on values and structure; ``wd == 0`` is left to the default unless
    ``pass_zero``."""
    what = f"sgd_update_({label}, lr={lr:g}, weight_decay={wd:g})"
    expected = [
        (p.detach() - lr * (p.grad + wd * p.detach())) if p.grad is not None else p.detach().clone()
        for p in params
    ]
    before = [(p, p.untyped_storage().data_ptr(), p.stride(), p._version, p.grad,
               None if p.grad is None else p.grad.clone()) for p in params]
    given = list(params)
    mode = torch.is_grad_enabled()
    call(impl.sgd_update_, what, given, lr, *([wd] if wd or pass_zero else []),
         hint="skip params whose .grad is None; update the others in place (p.sub_(...), "
         "p -= ...) inside `with torch.no_grad():`.")
    if torch.is_grad_enabled() != mode:
        torch.set_grad_enabled(mode)
        fail(f"{what}: grad mode was {'on' if mode else 'off'} before your function and "
             f"{'off' if mode else 'on'} after it. Use `with torch.no_grad():` (it restores "
             "the mode on exit) rather than torch.set_grad_enabled(...).")
    for i, (p, ptr, stride, version, grad, grad_values) in enumerate(before):
        name = f"params[{i}] {tuple(p.shape)}"
        if given[i] is not p:
            fail(f"{what}: {name} was replaced by a new tensor in the list. An optimiser and the "
                 "model hold the same parameter object: update it in place instead.")
        if p.untyped_storage().data_ptr() != ptr:
            fail(f"{what}: {name} now lives in new memory. Assigning p.data = ... swaps the "
                 "storage under the parameter; views and optimiser state that pointed at the "
                 "old memory are cut off. Write into it in place instead.")
        if p.stride() != stride:
            fail(f"{what}: {name} changed its strides from {stride} to {p.stride()}; an "
                 "in-place update keeps the parameter's layout.")
        if not p.is_leaf or p.grad_fn is not None or not p.requires_grad:
            fail(f"{what}: {name} is no longer a leaf that requires grad (is_leaf={p.is_leaf}, "
                 f"requires_grad={p.requires_grad}, grad_fn={type(p.grad_fn).__name__ if p.grad_fn else None}). "
                 "Update it under torch.no_grad() so that autograd records nothing.")
        if p.grad is not grad or (grad is not None and not torch.equal(grad, grad_values)):
            fail(f"{what}: {name}.grad was changed. Compute the step into a new tensor; the "
                 "gradient belongs to whoever called backward (clipping, logging, accumulation).")
        assert_close(p.detach(), expected[i], f"{what}: {name} after the step",
                     hint="p <- p - lr * (p.grad + weight_decay * p); a param whose .grad is "
                     "None is left alone.")
        if grad is not None and p._version <= version:
            fail(f"{what}: {name} changed, but its _version stayed at {version}. Writing "
                 "through p.data hides the change from autograd's version counter; update p "
                 "itself under torch.no_grad().")
        if grad is None and p._version != version:
            fail(f"{what}: {name} has no .grad, yet it was written to (_version {version} -> "
                 f"{p._version}). Skip parameters without a gradient.")


@pytest.mark.exercise("sgd_update_")
def test_sgd_update_in_place(impl, rng):
    params = make_params(rng)
    lr = float(round(rng.uniform(0.05, 0.5), 3))
    check_sgd(impl, params, lr, 0.0, f"{len(params)} params")


@pytest.mark.exercise("sgd_update_")
def test_sgd_update_weight_decay(impl, rng):
    params = make_params(rng)
    lr, wd = float(round(rng.uniform(0.05, 0.5), 3)), float(round(rng.uniform(0.01, 0.2), 3))
    check_sgd(impl, params, lr, wd, f"{len(params)} params")


@pytest.mark.exercise("sgd_update_")
def test_sgd_update_at_the_boundaries(impl, rng):
    """weight_decay exactly 0 (given, and left to its default) and large steps; then the same
    with grad mode already off, as inside an optimiser's own no_grad step."""
    for grad_off in (False, True):
        for lr, wd, given in ((0.25, 0.0, True), (0.25, 0.0, False), (1.0, 0.5, True),
                              (0.1, 1.0, True)):
            label = f"{'grad mode off, ' if grad_off else ''}params"
            with torch.set_grad_enabled(not grad_off):
                check_sgd(impl, make_params(rng), lr, wd, label, pass_zero=given)


@pytest.mark.exercise("sgd_update_")
def test_sgd_update_module_parameters(impl, rng):
    n_in, n_out = random_shape(rng, 2, 2, 7)
    model = torch.nn.Sequential(torch.nn.Linear(n_in, n_out), torch.nn.Tanh(),
                                torch.nn.Linear(n_out, 1)).double()
    model(torch.randn(5, n_in, dtype=F64)).sum().backward()
    params = list(model.parameters())
    check_sgd(impl, params, float(round(rng.uniform(0.05, 0.5), 3)), 0.01,
              "list(model.parameters())")
    out = model(torch.randn(3, n_in, dtype=F64)).sum()
    if out.grad_fn is None:
        fail("after sgd_update_, the model's output has no grad_fn: the parameters no longer "
             "take part in autograd.")
