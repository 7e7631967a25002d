"""Hidden checks for the kata checkpointing. Plain autograd runs, torch's own
saved_tensors_hooks and torch.utils.checkpoint are the oracle."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.checkpoint import checkpoint_sequential as torch_checkpoint_sequential

from checker.contracts import uses_global_rng
from checker.helpers import assert_close, assert_equal, describe, fail, layouts, random_shape

pytestmark = pytest.mark.kata("checkpointing")
uses_global_rng("checkpoint_sequential")  # the blocks' dropout draws from it, by contract

# First calls load machinery lazily (torch._dynamo for torch.utils.checkpoint): pay at import.
_warm = torch.zeros(2, 2, requires_grad=True)
torch_checkpoint_sequential([nn.Identity(), nn.Identity()], 2, _warm * 1, use_reentrant=True)
torch.autograd.grad(_warm * 2, _warm, torch.ones(2, 2))


class Ledger:
    """The checks' own saved-tensor accounting: packs, bytes packed, unpacks."""

    def __init__(self) -> None:
        self.count = self.nbytes = self.unpacked = 0

    def hooks(self) -> saved_tensors_hooks:
        def pack(t):
            self.count += 1
            self.nbytes += t.numel() * t.element_size()
            return t

        def unpack(t):
            self.unpacked += 1
            return t

        return saved_tensors_hooks(pack, unpack)


def backward_or_fail(out: torch.Tensor, upstream: torch.Tensor, what: str, why: str, **kwargs) -> None:
    try:
        out.backward(upstream, **kwargs)
    except (RuntimeError, TypeError, KeyError) as exc:
        fail(f"{what}: backward raised {type(exc).__name__}: {exc}\n  {why}")


def param_grads_match(model: nn.Module, reference: nn.Module, what: str, hint: str) -> None:
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert_close(p.grad, q.grad, f"{what}: {name}.grad", hint=hint)


# ----------------------------------------------------------------------------- count_saved


def random_program(rng):
    """A small computation whose backward saves views, the same tensor twice, outputs, and a
    bool mask (1 byte per element)."""
    n, d, k = random_shape(rng, 3, 3, 8)
    w = torch.randn(d, k, dtype=torch.float64, requires_grad=True)
    base = torch.randn(n, d, dtype=torch.float64)

    def fn(x, w):
        h = x @ w
        a = torch.tanh(h)
        half = a[:, ::2]
        gated = torch.where(h > 0, a, torch.sigmoid(h))
        return (half * half).sum(-1) + gated.mean(-1) * x.sum(-1)

    return fn, base, w


@pytest.mark.exercise("count_saved")
def test_count_saved_matches_torch(impl, rng):
    for _ in range(2):
        fn, base, w = random_program(rng)
        for layout, x0 in layouts(base):
            x = x0.requires_grad_()
            ledger = Ledger()
            with ledger.hooks():
                expected = fn(x, w)
            v = torch.randn_like(expected)
            expected_grads = torch.autograd.grad(expected, (x, w), v)
            call = f"count_saved(fn, x, w) with x of shape {tuple(x.shape)} ({layout})"
            got = impl.count_saved(fn, x, w)
            if not (isinstance(got, tuple) and len(got) == 3):
                fail(f"{call} returned {describe(got)}; expected (output, count, nbytes).")
            out, count, nbytes = got
            assert_equal(
                count, ledger.count, f"{call}: number of tensors saved for backward",
                hint="count every call of the pack hook: a tensor saved twice (a * a saves `a` as "
                "both operands) counts twice. Count at pack time — unpack only runs in backward.",
            )
            assert_equal(
                nbytes, ledger.nbytes, f"{call}: bytes saved for backward",
                hint="each packed tensor counts t.numel() * t.element_size() (8 bytes per float64 "
                "element, 1 per bool): what the tensor itself spans. A view's storage can be much larger than the view (slices, "
                "offsets), so untyped_storage().nbytes() over-counts.",
            )
            assert_close(out, expected, f"{call}: the output")
            if out.grad_fn is None:
                fail(f"{call}: the output has no grad_fn; run fn with grad enabled, inside the hooks.")
            backward_or_fail(
                out, v, call,
                "The unpack hook must give back the tensor that pack received (whatever pack "
                "returns is what autograd stores; unpack turns it back into that tensor).",
            )
            for name, t, g in (("x", x, expected_grads[0]), ("w", w, expected_grads[1])):
                assert_close(t.grad, g, f"{call}: {name}.grad after backward through your output")
            w.grad = None


# ----------------------------------------------------------------------------- SavedTensorStore


def store_case(rng):
    fn, base, w = random_program(rng)
    return fn, base.requires_grad_(), w


@pytest.mark.exercise("SavedTensorStore")
def test_store_keeps_every_saved_tensor_under_a_key(impl, rng):
    fn, x, w = store_case(rng)
    ledger = Ledger()
    with ledger.hooks():
        expected = fn(x, w)
    v = torch.randn_like(expected)
    expected.backward(v)
    expected_x, expected_w = x.grad, w.grad
    x.grad = w.grad = None

    with impl.rules():
        store = impl.SavedTensorStore()
        if not isinstance(store, saved_tensors_hooks):
            fail(f"SavedTensorStore() is a {type(store).__name__}; make it a subclass of "
                 "torch.autograd.graph.saved_tensors_hooks (call super().__init__(pack, unpack)).")
        with store:
            out = fn(x, w)
    entries = getattr(store, "store", None)
    if not isinstance(entries, dict):
        fail(f"store.store is {describe(entries)}; expected a dict from key to saved tensor.")
    assert_equal(
        len(entries), ledger.count, "len(store.store) after a forward that saves "
        f"{ledger.count} tensors",
        hint="one entry per call of pack, under a fresh key (a counter). id(t) is not a key: the "
        "same tensor saved twice would share one, and ids are reused once a tensor dies.",
    )
    if not all(type(k) is int for k in entries):
        fail(f"store.store has keys of types {sorted({type(k).__name__ for k in entries})}; "
             "use ints.")
    ptr = x.untyped_storage().data_ptr()
    if not any(type(t) is torch.Tensor and t.untyped_storage().data_ptr() == ptr
               for t in entries.values()):
        fail(
            "none of the stored tensors shares memory with x, which the forward saves (x @ w).\n"
            "  The store copied what it was given: pack should keep the tensor itself (a real "
            "offloader would move it elsewhere instead of duplicating it)."
        )
    with impl.rules():
        backward_or_fail(out, v, "backward through a graph saved in your store",
                         "unpack(key) must return the tensor stored under key.", retain_graph=True)
    assert_close(x.grad, expected_x, "x.grad after backward through your store")
    assert_close(w.grad, expected_w, "w.grad after backward through your store")
    assert_equal(getattr(store, "unpacked", None), ledger.unpacked,
                 "store.unpacked after one backward", hint="add one in every call of unpack.")
    with impl.rules():
        backward_or_fail(
            out, v, "a second backward (the first used retain_graph=True)",
            "unpack can run more than once for the same key (retain_graph=True, or reading "
            "grad_fn._saved_*): look the tensor up, never delete it on unpack.",
        )
    assert_close(x.grad, 2 * expected_x, "x.grad after two backward passes through your store")
    assert_equal(store.unpacked, 2 * ledger.unpacked, "store.unpacked after two backward passes")

    probe = torch.randn(3, dtype=torch.float64)
    with impl.rules():
        key = store.pack_hook(probe)
        back = store.unpack_hook(key)
    if isinstance(key, torch.Tensor):
        fail(
            "store.pack_hook(t) returned a tensor. Whatever pack returns is what autograd keeps "
            "alive: return the key, so that the graph holds only an int and the store decides "
            "where the tensor lives."
        )
    if back is not probe:
        fail(f"store.unpack_hook(store.pack_hook(t)) returned {describe(back)}, not t itself.")


@pytest.mark.exercise("SavedTensorStore")
def test_stores_are_independent(impl, rng):
    """Two stores, one after the other and one inside the other: each keeps only what was
    packed while it was the innermost hooks, and counts only its own unpacks."""
    fn, x, w = store_case(rng)
    counts = []
    for _ in range(3):
        ledger = Ledger()
        with ledger.hooks():
            fn(x, w)
        counts.append(ledger.count)
    with impl.rules():
        first, second, inner = impl.SavedTensorStore(), impl.SavedTensorStore(), impl.SavedTensorStore()
        with first:
            out_first = fn(x, w)
        with second:
            out_second = fn(x, w)
            with inner:
                out_inner = fn(x, w)
    for name, store, expected in (("the first store", first, counts[0]),
                                  ("a second store, used after the first", second, counts[1]),
                                  ("a store entered inside the second", inner, counts[2])):
        entries = getattr(store, "store", None)
        if not isinstance(entries, dict):
            fail(f"{name}: store.store is {describe(entries)}; expected a dict.")
        assert_equal(len(entries), expected, f"len(store.store) of {name}, after one forward that saves "
                     f"{expected} tensors while it is the innermost hooks",
                     hint="give every store its own dict and counter, made in __init__: a class-level "
                     "dict is shared by every store. The innermost saved_tensors_hooks receive the "
                     "packs; an outer store sees none while an inner one is active.")
    for name, out in (("the first store", out_first), ("the second store", out_second),
                      ("the inner store", out_inner)):
        with impl.rules():
            backward_or_fail(out, torch.randn_like(out), f"backward through {name}",
                             "unpack(key) must return the tensor this store keeps under key.")
    assert_equal((first.unpacked, second.unpacked, inner.unpacked), tuple(counts),
                 "(first, second, inner) store.unpacked after one backward through each graph",
                 hint="count in the store's own attribute, set in __init__.")


# ----------------------------------------------------------------------------- Checkpoint


class Counted:
    """A run_fn that counts how often it runs."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def block_case(rng):
    n, d, hidden = random_shape(rng, 3, 3, 9)
    block = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, d)).double()
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    idx = torch.as_tensor(rng.permutation(n)[: max(2, n - 1)])
    return block, x, idx


def gather_then(block):
    return lambda t, idx: torch.tanh(block(t.index_select(0, idx)))


@pytest.mark.exercise("Checkpoint")
def test_checkpoint_recomputes_and_matches(impl, rng):
    block, x, idx = block_case(rng)
    reference = copy.deepcopy(block)
    x_ref = x.detach().clone().requires_grad_()
    expected = gather_then(reference)(x_ref, idx)
    v = torch.randn_like(expected)
    expected.backward(v)

    run_fn = Counted(gather_then(block))
    call = "Checkpoint.apply(run_fn, x, idx)"
    with impl.rules():
        out = impl.Checkpoint.apply(run_fn, x, idx)
    assert_equal(run_fn.calls, 1, f"calls of run_fn during {call}",
                 hint="forward runs run_fn once, under torch.no_grad().")
    assert_close(out, expected, call)
    if not isinstance(out.grad_fn, impl.Checkpoint._backward_cls):
        fail(f"{call}: the output's grad_fn is {type(out.grad_fn).__name__}, not the backward "
             "node of your Checkpoint: return run_fn's result from forward itself.")
    with impl.rules():
        backward_or_fail(
            out, v, call,
            "inputs that need no gradient (idx is an integer index tensor) must stay that way: "
            "t.detach().requires_grad_(t.requires_grad), and return None for them.",
        )
    assert_equal(
        run_fn.calls, 2, f"calls of run_fn after {call} and backward",
        hint="checkpointing keeps no activations: backward must run run_fn AGAIN, with grad "
        "enabled, on detached copies of the saved inputs, and backpropagate through that.",
    )
    assert_close(
        x.grad, x_ref.grad, f"x.grad after backward through {call}",
        hint="recompute on DETACHED inputs (t.detach().requires_grad_()); run backward from the "
        "recomputed output with the incoming gradient and return the inputs' .grad. Recomputing on "
        "the saved inputs themselves makes the inner backward write into the real x.grad.",
    )
    param_grads_match(block, reference, f"after backward through {call}",
                      "the inner torch.autograd.backward(out, grad_output) fills the parameters' .grad.")


@pytest.mark.exercise("Checkpoint")
def test_checkpoint_saves_only_its_inputs(impl, rng):
    block, x, idx = block_case(rng)
    fn = gather_then(block)
    plain, ckpt = Ledger(), Ledger()
    with plain.hooks():
        fn(x, idx)
    with impl.rules(), ckpt.hooks():
        impl.Checkpoint.apply(Counted(fn), x, idx)
    inputs_bytes = x.numel() * x.element_size() + idx.numel() * idx.element_size()
    assert_equal(
        (ckpt.count, ckpt.nbytes), (2, inputs_bytes),
        f"(tensors, bytes) saved for backward by Checkpoint.apply(run_fn, x, idx); the plain "
        f"run saves ({plain.count}, {plain.nbytes})",
        hint="save exactly the inputs, with ctx.save_for_backward(*inputs), and run the forward "
        "without recording a graph. Tensors stored as ctx attributes bypass autograd's saved "
        "tensors (no hooks, no in-place checks); a graph built in forward saves every activation.",
    )


@pytest.mark.exercise("Checkpoint")
def test_checkpoint_detects_in_place_changes(impl, rng):
    block, x, idx = block_case(rng)
    h = x * 1.5
    with impl.rules():
        out = impl.Checkpoint.apply(Counted(gather_then(block)), h, idx)
    h.mul_(2.0)  # the saved input changes before backward: recomputing would be wrong
    try:
        with impl.rules():
            out.backward(torch.randn_like(out))
    except RuntimeError as exc:
        if "inplace" in str(exc) or "in-place" in str(exc):
            return
        raise
    fail(
        "the input of Checkpoint.apply was modified in place between forward and backward, and "
        "backward went ahead, recomputing from the modified values.\n  Save the inputs with "
        "ctx.save_for_backward(*inputs): autograd then checks their version counters and refuses."
    )


@pytest.mark.exercise("Checkpoint")
def test_checkpoint_replays_dropout(impl, rng):
    block, x, idx = block_case(rng)
    reference = copy.deepcopy(block)

    def noisy(b):
        return lambda t, i: F.dropout(gather_then(b)(t, i), p=0.5, training=True)

    seed = int(rng.integers(1, 2**31))
    x_ref = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    expected = noisy(reference)(x_ref, idx)
    torch.rand(11)  # the program goes on drawing random numbers before backward
    v = torch.randn_like(expected)
    expected.backward(v)

    torch.manual_seed(seed)
    with impl.rules():
        out = impl.Checkpoint.apply(Counted(noisy(block)), x, idx)
    torch.rand(11)
    state = torch.get_rng_state()
    with impl.rules():
        backward_or_fail(out, v, "backward through Checkpoint with dropout inside",
                         "restore the RNG state inside torch.random.fork_rng().")
    assert_close(out, expected, "Checkpoint.apply(dropout-using run_fn, x, idx), same seed")
    assert_close(
        x.grad, x_ref.grad, "x.grad through a checkpointed run_fn that uses dropout",
        hint="the recompute must draw the SAME dropout mask: remember torch.get_rng_state() in "
        "forward and restore it before recomputing.",
    )
    if not torch.equal(torch.get_rng_state(), state):
        fail(
            "backward through your Checkpoint changed the global RNG state: the caller's random "
            "stream was rewound to the forward's state.\n  Restore the saved state inside "
            "`with torch.random.fork_rng(devices=[]):`, which puts the caller's state back after."
        )


# ----------------------------------------------------------------------------- checkpoint_sequential


class CountingBlock(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


# (blocks, segments), every one on every seed: one checkpointed segment, two, three, one of
# three blocks, none (segments=1), and every block but the last on its own (segments=blocks).
SEQUENTIAL_CASES = ((5, 2), (7, 3), (6, 4), (7, 2), (3, 1), (4, 4))


def sequential_case(rng, n_blocks: int, segments: int):
    n, d = random_shape(rng, 2, 3, 9)
    blocks = []
    for i in range(n_blocks):
        layers = [nn.Linear(d, d), nn.Tanh()]
        if i % 2 == 1:  # randomness in several segments: each recompute replays its own
            layers.append(nn.Dropout(0.3))
        blocks.append(CountingBlock(nn.Sequential(*layers).double()))
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    return blocks, x, segments


def run_plain(blocks, x):
    for b in blocks:
        x = b(x)
    return x


def learner_run(impl, blocks, x, segments, seed):
    torch.manual_seed(seed)
    out = impl.checkpoint_sequential(blocks, x, segments)
    torch.rand(5)
    return out


@pytest.mark.exercise("checkpoint_sequential")
@pytest.mark.parametrize("n_blocks,segments", SEQUENTIAL_CASES)
def test_sequential_matches_the_plain_run(impl, rng, n_blocks, segments):
    blocks, x, segments = sequential_case(rng, n_blocks, segments)
    reference = copy.deepcopy(blocks)
    x_ref = x.detach().clone().requires_grad_()
    seed = int(rng.integers(1, 2**31))
    torch.manual_seed(seed)
    expected = run_plain(reference, x_ref)
    torch.rand(5)
    v = torch.randn_like(expected)
    expected.backward(v)

    call = f"checkpoint_sequential({len(blocks)} blocks, x, segments={segments})"
    out = learner_run(impl, blocks, x, segments, seed)
    assert_close(out, expected, call, hint="run the blocks in order.")
    with impl.rules():
        backward_or_fail(out, v, call, "each segment goes through your Checkpoint.apply.")
    assert_close(x.grad, x_ref.grad, f"x.grad after backward through {call}")
    for i, (b, r) in enumerate(zip(blocks, reference, strict=True)):
        param_grads_match(b, r, f"block {i} after backward through {call}",
                          "every block's parameters get their gradient through the recompute.")


@pytest.mark.exercise("checkpoint_sequential")
@pytest.mark.parametrize("n_blocks,segments", SEQUENTIAL_CASES)
def test_sequential_recomputes_the_checkpointed_blocks(impl, rng, n_blocks, segments):
    blocks, x, segments = sequential_case(rng, n_blocks, segments)
    out = learner_run(impl, blocks, x, segments, seed=int(rng.integers(1, 2**31)))
    with impl.rules():
        backward_or_fail(out, torch.randn_like(out), "backward through checkpoint_sequential",
                         "each segment goes through your Checkpoint.apply.")
    size = len(blocks) // segments
    expected = [2 if i < size * (segments - 1) else 1 for i in range(len(blocks))]
    assert_equal(
        [b.calls for b in blocks], expected,
        f"how often each block ran (forward + backward) in checkpoint_sequential("
        f"{len(blocks)} blocks, x, segments={segments})",
        hint=f"as torch does: segment size = {len(blocks)} // {segments} = {size}; the first "
        f"segments - 1 = {segments - 1} segments of that size are checkpointed (their blocks run "
        "twice), the remaining blocks form the last segment and run plainly — backward needs "
        "their activations straight away, so recomputing them would buy nothing.",
    )


@pytest.mark.exercise("checkpoint_sequential")
@pytest.mark.parametrize("n_blocks,segments", SEQUENTIAL_CASES)
def test_sequential_saves_what_torch_saves(impl, rng, n_blocks, segments):
    blocks, x, segments = sequential_case(rng, n_blocks, segments)
    reference = copy.deepcopy(blocks)
    seed = int(rng.integers(1, 2**31))
    plain, torch_ckpt, got = Ledger(), Ledger(), Ledger()
    with plain.hooks():
        run_plain(copy.deepcopy(blocks), x)
    with torch_ckpt.hooks():
        torch_checkpoint_sequential(reference, segments, x, use_reentrant=True)
    with got.hooks():
        learner_run(impl, blocks, x, segments, seed)
    assert_equal(
        (got.count, got.nbytes), (torch_ckpt.count, torch_ckpt.nbytes),
        f"(tensors, bytes) saved for backward by checkpoint_sequential({len(blocks)} blocks, x, "
        f"segments={segments}); torch.utils.checkpoint.checkpoint_sequential saves "
        f"({torch_ckpt.count}, {torch_ckpt.nbytes}); the plain run saves ({plain.count}, "
        f"{plain.nbytes})",
        hint="one Checkpoint per segment (not per block): each checkpointed segment saves only "
        "its input; the last segment runs plainly and saves its activations.",
    )
