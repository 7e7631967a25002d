"""Hidden checks for the kata memory. The oracles are PyTorch's own numbers: storage sizes
(untyped_storage().nbytes()), the tensors each grad_fn node holds (its ``_saved_*``
attributes), the profiler's "Total Allocated", and weakrefs that die when nothing holds them."""

from __future__ import annotations

import copy
import gc
import json
import os
import re
import tempfile
import types
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from checker.contracts import assert_exact_type
from checker.helpers import (
    assert_close,
    assert_equal,
    describe,
    expect_raises,
    fail,
    layouts,
    random_shape,
)
from checker.inputs import expanded, shape_cases

pytestmark = pytest.mark.kata("memory")

F64 = torch.float64

# The first backward given a gradient imports lazily (about two seconds); pay it at import.
_warm = torch.ones(2, dtype=F64, requires_grad=True)
_warm.tanh().backward(torch.ones(2, dtype=F64))


def quiet_gc() -> None:
    """Move every object alive now out of the collector's sight (gc.freeze), so that a
    gc.collect() in the learner's code, or the check's, scans only what was made after: a full
    collection of a process that imported torch takes most of a second. Nothing alive before
    the call can be garbage made by it, so no verdict changes."""
    gc.freeze()


quiet_gc()  # everything imported so far, torch above all, is never garbage: out of gc's sight


def call(what: str, fn, *args, hint: str = ""):
    """Run the learner's function; an exception becomes a failure that names the call."""
    try:
        return fn(*args)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:  # noqa: BLE001 - any error of the learner's code is a verdict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        fail(f"{what} raised {type(exc).__name__}: {first}" + (f"\n  Try: {hint}" if hint else ""))


def storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def picture(tensors) -> str:
    return "\n".join(f"    [{i}] {describe(t)}  storage at {storage_key(t)} of "
                     f"{t.untyped_storage().nbytes()} bytes" for i, t in enumerate(tensors)) or "    (none)"


# ----------------------------------------------------------------------------- live_bytes


def fixed_groups():
    """Every idea of the exercise, once, on every seed: views share, copies do not."""
    base = torch.randn(6, 5, dtype=F64)
    other = torch.randn(4, 7, dtype=torch.float32)
    small = torch.randn(1, 5, dtype=F64)
    return [
        ("no tensors", []),
        ("one tensor", [base]),
        ("a tensor and a slice of it", [base, base[1:3]]),
        ("a slice alone (its base's storage stays whole)", [base[2:3, 1:4]]),
        ("an empty slice of a larger tensor", [base[:0]]),
        ("a tensor and its .detach() (no _base, same storage)", [base, base.detach()]),
        ("a .detach() of a slice (no _base, yet its storage is the whole base's)",
         [base[2:].detach()]),
        ("a .detach() of a middle slice and a row", [base[1:3].detach(), base[4]]),
        ("a transpose and .contiguous() of it (a copy)", [base.t(), base.t().contiguous()]),
        ("a tensor and .contiguous() of it (already contiguous: itself)", [base, base.contiguous()]),
        ("a tensor and its clone", [base, base.clone()]),
        ("a row and expand() of it (no new memory)", [small, small.expand(4, 5)]),
        ("expand() then clone() (the broadcast is materialised)", [small.expand(4, 5).clone()]),
        ("the same bytes seen as uint8", [other, other.view(torch.uint8)]),
        ("a reshape that must copy", [base.t(), base.t().reshape(-1)]),
        ("two tensors, views of each, a 0-d element", [other[:, ::2], base.t(), other, base[3, 2]]),
        ("a view of a view of a view", [base[1:][:, 2:].t()[1]]),
    ]


VIEW_OPS = (
    ("slice", lambda t: t[1:] if t.shape[0] > 1 else t[:0]),
    ("transpose", lambda t: t.t()),
    ("detach", lambda t: t.detach()),
    ("every other column", lambda t: t[:, ::2]),
    ("select row 0", lambda t: t[0].unsqueeze(0)),
    ("expand", lambda t: t[:1].expand(3, t.shape[1])),
    ("as bytes", lambda t: t.view(torch.uint8) if t.is_contiguous() else t.detach()),
)
COPY_OPS = (
    ("clone", lambda t: t.clone()),
    ("contiguous", lambda t: t.contiguous()),
    ("plus zero", lambda t: t + 0),
    ("reshape(-1)", lambda t: t.reshape(-1)),
)


def random_group(rng):
    bases = [(torch.randn(*random_shape(rng, 2, 2, 6)) * 9).to([F64, torch.float32, torch.int16][i % 3])
             for i in range(int(rng.integers(1, 4)))]
    group = []
    for _ in range(int(rng.integers(2, 7))):
        t = bases[int(rng.integers(len(bases)))]
        for _ in range(int(rng.integers(0, 3))):
            ops = COPY_OPS if rng.random() < 0.3 else VIEW_OPS
            t = ops[int(rng.integers(len(ops)))][1](t)
            if t.dim() != 2:
                t = t.reshape(1, -1) if t.is_contiguous() else t.unsqueeze(0)
        group.append(t)
    return group


def expected_live_bytes(tensors) -> int:
    return sum({storage_key(t): t.untyped_storage().nbytes() for t in tensors}.values())


@pytest.mark.exercise("live_bytes")
def test_live_bytes_counts_each_storage_once(impl, rng):
    cases = fixed_groups() + [(f"random group {i + 1}", random_group(rng)) for i in range(3)]
    for label, tensors in cases:
        expected = expected_live_bytes(tensors)
        got = impl.live_bytes(list(tensors))
        what = f"live_bytes(tensors) for {label}:\n{picture(tensors)}\n  bytes kept alive"
        assert_exact_type(got, expected, what, hint="return a Python int.")
        assert_equal(
            got, expected, what,
            hint="a tensor keeps its WHOLE storage alive (t.untyped_storage().nbytes()), however "
            "few elements it shows; tensors that share a storage (views, slices, detach(), "
            "expand()) share those bytes, so count each storage once. Tell storages apart by "
            "where their memory starts (the storage's data_ptr, not the tensor's, which adds "
            "the offset).",
        )


@pytest.mark.exercise("live_bytes")
def test_live_bytes_accepts_any_sequence(impl, rng):
    base = torch.randn(*random_shape(rng, 2, 3, 7), dtype=F64)
    tensors = (base[1:], base.detach(), base.clone())
    expected = expected_live_bytes(tensors)
    got = impl.live_bytes(tensors)
    assert_equal(got, expected, f"live_bytes of a tuple:\n{picture(tensors)}\n  bytes kept alive",
                 hint="iterate over the sequence; do not assume a list.")


# ----------------------------------------------------------------------------- compact


def distinct_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct storage elements ``t`` reads, found by enumerating them."""
    if t.numel() == 0:
        return 0
    span = t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride(), strict=True)) + 1
    positions = torch.arange(span).as_strided(t.shape, t.stride(), t.storage_offset())
    return int(positions.unique().numel()) * t.element_size()


def compact_cases(rng):
    cases = []
    for label, shape in shape_cases(rng, 2, draws=1):
        for layout, t in layouts(torch.randn(*shape, dtype=F64)):
            cases.append((f"{label} {shape}, {layout}", t))
    big = torch.randn(9, 6, dtype=F64)
    n, m = random_shape(rng, 2, 3, 7)
    cases += [
        ("a 0-d tensor", torch.tensor(2.5, dtype=F64)),
        ("one element of a larger tensor (0-d view)", big[4, 3]),
        ("a slice of rows", big[2:5]),
        ("an empty slice of a larger tensor", big[3:3]),
        ("a broadcast row (stride 0)", expanded((n, m), 0)),
        ("a row broadcast twice (stride 0, size 2)", expanded((2, m), 0)),
        ("a broadcast column (stride 0)", expanded((n, m), 1)),
        ("a broadcast of one element of a larger tensor", big[1:2, 2:3].expand(n, m)),
        ("a broadcast of a gapped row", big[1:2, ::2].expand(n, 3)),
        ("a broadcast that is empty", expanded((0, m), 1)),
        ("an empty broadcast along its stride-0 dim", torch.randn(1, m, dtype=F64).expand(0, m)),
        ("int16 values over a storage of an odd number of bytes",
         torch.arange(2 * m + 1, dtype=torch.uint8)[:2 * m].view(torch.int16)),
        ("float32 bytes of a float64 storage", big[1:3].view(torch.float32)),
        ("int32 values, transposed", torch.arange(n * m, dtype=torch.int32).reshape(n, m).t()),
        ("a 3-d broadcast in the middle", torch.randn(n, 1, m, dtype=F64).expand(n, 4, m)),
    ]
    return cases


@pytest.mark.exercise("compact")
def test_compact_keeps_only_the_bytes_it_needs(impl, rng):
    for label, t in compact_cases(rng):
        expected = distinct_bytes(t)
        already = t.untyped_storage().nbytes() == expected
        what = f"compact(t) for {label}: t is {describe(t)}, its storage {t.untyped_storage().nbytes()} bytes"
        got = impl.compact(t)
        if type(got) is not torch.Tensor:
            fail(f"{what}: returned {describe(got)}; expected a torch.Tensor.")
        if tuple(got.shape) != tuple(t.shape) or got.dtype != t.dtype:
            fail(f"{what}:\n  expected shape {tuple(t.shape)} {t.dtype}\n  got      {describe(got)}")
        assert_close(got, t, f"{what}: the values", rtol=0, atol=0)
        if already and got is not t:
            fail(f"{what}: t's storage already holds exactly its {expected} bytes of distinct "
                 f"elements, and you returned a new tensor ({describe(got)}).\n  Try: return t "
                 "itself when its storage is already as small as it can be: a copy costs memory "
                 "and time for nothing (a transpose or a broadcast is not a waste).")
        assert_equal(
            got.untyped_storage().nbytes(), expected,
            f"{what}: bytes of the result's storage (t reads {expected // t.element_size()} "
            f"distinct elements of {t.element_size()} bytes)",
            hint="a view keeps its base's whole storage alive: copy the elements out (clone) when "
            "the storage holds more than them. A broadcast dim (stride 0, size > 1) repeats the "
            "same elements: copy one slice and expand() it back, or the copy materialises every "
            "repeat. An empty tensor needs no bytes at all.",
        )
        if got.requires_grad:
            fail(f"{what}: the result requires grad; t does not.")


@pytest.mark.exercise("compact")
def test_compact_copies_are_independent(impl, rng):
    big = torch.randn(*random_shape(rng, 2, 6, 9), dtype=F64)
    t = big[1:3, 1:4]
    got = impl.compact(t)
    if type(got) is not torch.Tensor:
        fail(f"compact(a slice) returned {describe(got)}; expected a torch.Tensor.")
    if storage_key(got) == storage_key(big):
        fail("compact(big[1:3, 1:4]) still shares the big tensor's storage: the big storage "
             "stays alive as long as the result does.\n  Try: copy the elements into a storage "
             "of their own (clone()).")
    big.zero_()
    if not bool((got != 0).any()):
        fail("compact(big[1:3, 1:4]) changed when big was zeroed afterwards: it is still a view.")


# ----------------------------------------------------------------------------- peak_memory


PRE_TRACE = ("this trace is well formed. A free of an address the trace never allocated releases a "
             "block allocated before the trace began: it lowers the total, and is no error.")


def reference_peak(events) -> tuple[int, int]:
    current = peak = 0
    at = -1
    for i, (_, nbytes) in enumerate(events):
        current += nbytes
        if current > peak:
            peak, at = current, i
    return peak, at


FIXED_TRACES = [
    ("no events", []),
    ("one allocation", [(100, 64)]),
    ("an allocation, freed", [(100, 64), (100, -64)]),
    ("only frees of blocks allocated before the trace", [(300, -16), (400, -8)]),
    ("a pre-trace block freed first, then two allocations", [(300, -48), (100, 32), (200, 32)]),
    ("the same peak reached twice", [(100, 40), (100, -40), (200, 40), (200, -40)]),
    ("an address reused after its free", [(100, 24), (100, -24), (100, 56), (200, 8), (100, -56)]),
    ("blocks of 1 byte", [(5, 1), (6, 1), (5, -1), (7, 1)]),
    ("a peak in the middle", [(1, 8), (2, 16), (1, -8), (3, 4), (2, -16), (4, 12), (4, -12), (3, -4)]),
    ("one big block freed before many small ones", [(9, 100), (9, -100), (1, 30), (2, 30), (3, 30)]),
]
BAD_TRACES = [
    ("an allocation at an address that is still allocated", [(100, 8), (100, 8)],
     "an address is live from its allocation to its free: a second allocation there means the "
     "trace is corrupt."),
    ("a free whose size differs from the block's", [(100, 32), (200, 8), (100, -16)],
     "a free releases the whole block that was allocated at that address."),
    ("a free larger than its block", [(100, 8), (200, 4), (100, -16)],
     "a free releases exactly the block that was allocated at that address: no more, no less."),
    ("an allocation of another size at an address that is still allocated",
     [(100, 8), (200, 4), (100, 16)],
     "an address is live from its allocation to its free, whatever the sizes: a second "
     "allocation there means the trace is corrupt."),
    ("the same block freed twice", [(100, 32), (100, -32), (100, -32)],
     "remember which addresses the trace already freed; freeing one again (before a new "
     "allocation there) is a double free."),
    ("a pre-trace block freed twice", [(500, -64), (100, 8), (500, -64)],
     "a block from before the trace may be freed once; after that its address is free."),
]


def synthetic_trace(rng) -> list[tuple[int, int]]:
    """A random allocator history: blocks from before the trace freed now and then, addresses
    reused after a free, sizes in multiples of 8."""
    live: dict[int, int] = {}
    pre = [int(a) for a in rng.choice(np.arange(1000, 1100), size=int(rng.integers(0, 4)), replace=False)]
    free_addrs = list(range(1, 12))
    events = []
    for _ in range(int(rng.integers(8, 30))):
        r = rng.random()
        if r < 0.1 and pre:
            addr = pre.pop()
            events.append((addr, -8 * int(rng.integers(1, 20))))
        elif r < 0.55 and free_addrs:
            addr = free_addrs.pop(int(rng.integers(len(free_addrs))))
            live[addr] = 8 * int(rng.integers(1, 40))
            events.append((addr, live[addr]))
        elif live:
            addr = list(live)[int(rng.integers(len(live)))]
            events.append((addr, -live.pop(addr)))
            free_addrs.append(addr)
    return events


TRACES_FILE = os.path.join(os.path.dirname(__file__), "memory_traces.json")
TRACED_MODELS = {
    "Linear-Tanh-Linear, batch 8": lambda: (nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1)), (8, 6)),
    "Linear-ReLU-Linear-ReLU-Linear, batch 32": lambda: (
        nn.Sequential(nn.Linear(10, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(), nn.Linear(24, 1)), (32, 10)),
    "Linear-LayerNorm-GELU-Linear, batch 16": lambda: (
        nn.Sequential(nn.Linear(12, 20), nn.LayerNorm(20), nn.GELU(), nn.Linear(20, 1)), (16, 12)),
    "frozen Linear, Sigmoid, Linear, batch 64": lambda: (
        nn.Sequential(nn.Linear(5, 9).requires_grad_(False), nn.Sigmoid(), nn.Linear(9, 1)), (64, 5)),
}


def record_traces(path: str = TRACES_FILE) -> None:
    """Record the [memory] events torch.profiler reports for a forward plus backward of each
    TRACED_MODELS entry: (address, bytes, the profiler's "Total Allocated" after the event).
    Run ``python -m checker.checks.test_memory`` to record them again."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    recorded = {"torch": torch.__version__, "traces": {}}
    for label, make in TRACED_MODELS.items():
        model, shape = make()
        model = model.double()
        x = torch.randn(*shape, dtype=F64, requires_grad=True)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            loss = (model(x) ** 2).mean()
            loss.backward()
            del loss
        with tempfile.TemporaryDirectory() as tmp:
            prof.export_chrome_trace(os.path.join(tmp, "trace.json"))
            with open(os.path.join(tmp, "trace.json")) as f:
                trace = json.load(f)
        recorded["traces"][label] = [
            [int(e["args"]["Addr"]), int(e["args"]["Bytes"]), int(e["args"]["Total Allocated"])]
            for e in trace["traceEvents"]
            if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    with open(path, "w") as f:
        json.dump(recorded, f, indent=0)


def profiled_traces(rng):
    """The recorded profiler traces whole, then a random window of each: (label, events,
    expected), the expected peak being the profiler's own highest "Total Allocated" above the
    level before the window's first event."""
    with open(TRACES_FILE) as f:
        recorded = json.load(f)["traces"]
    cases = []
    for label, rows in recorded.items():
        a = int(rng.integers(1, len(rows) // 2))
        b = int(rng.integers(a + 2, len(rows) + 1))
        for what, window in ((label, rows), (f"{label}, events {a}..{b - 1}", rows[a:b])):
            start = window[0][2] - window[0][1]
            totals = [total - start for _, _, total in window]
            peak = max(0, *totals)
            cases.append((what, [(addr, nbytes) for addr, nbytes, _ in window],
                          (peak, totals.index(peak) if peak > 0 else -1)))
    return cases


@pytest.mark.exercise("peak_memory")
def test_peak_memory_of_traces(impl, rng):
    cases = FIXED_TRACES + [(f"random trace {i + 1}", synthetic_trace(rng)) for i in range(3)]
    for label, events in cases:
        expected = reference_peak(events)
        what = f"peak_memory(events) for {label}: events {events}"
        got = call(what, impl.peak_memory, list(events), hint=PRE_TRACE)
        assert_exact_type(got, expected, what, hint="return a tuple (peak, index) of two ints.")
        assert_equal(
            got, expected, f"{what}\n  (peak bytes above the start, index of the event that first reaches it)",
            hint="keep a running total from 0: allocations add, frees subtract (a free of a block "
            "allocated before the trace lowers it below 0, too). The peak is the highest total "
            "after any event, and its index the first event after which the total reaches it; "
            "a trace whose total never rises above 0 has peak 0 at index -1.",
        )


@pytest.mark.exercise("peak_memory")
def test_peak_memory_refuses_corrupt_traces(impl, rng):
    for label, events, why in BAD_TRACES:
        expect_raises(ValueError, lambda events=events: impl.peak_memory(list(events)),
                      f"peak_memory(events) for {label}: events {events}", hint=why)
    ok = [(7, 16), (7, -16), (7, 16)]
    got = call(f"peak_memory({ok})", impl.peak_memory, ok,
               hint="after its free, an address may be allocated again.")
    assert_equal(got, (16, 0), f"peak_memory({ok}) (an address freed, then reused)",
                 hint="after its free, an address may be allocated again.")


@pytest.mark.exercise("peak_memory")
def test_peak_memory_of_profiled_forward_and_backward(impl, rng):
    for label, events, expected in profiled_traces(rng):
        got = call(f"peak_memory(events) for the {len(events)} events torch.profiler recorded around a "
                   f"forward and backward of {label}", impl.peak_memory, list(events), hint=PRE_TRACE)
        assert_equal(
            got, expected,
            f"peak_memory(events) for the {len(events)} CPU allocation events torch.profiler "
            f"recorded around a forward and backward of {label} (the profiler's own \"Total "
            "Allocated\" gives the expected peak)",
            hint="frees of blocks allocated before the trace (the ones you never saw allocated) "
            "count too: they lower the running total.",
        )


# ----------------------------------------------------------------------------- saved_bytes


class Detach(nn.Module):
    def forward(self, x):
        return x.detach()


class Halves(nn.Module):
    """mul of two overlapping slices: both saved, both views of one storage."""

    def forward(self, x):
        k = x.shape[-1] // 2 + 1
        return x[..., :k] * x[..., -k:]


class Square(nn.Module):
    def forward(self, x):
        return x * x


class Scaled(nn.Module):
    """x times a buffer: the mul saves the buffer (which exists anyway) for x's gradient."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("scale", torch.linspace(0.5, 1.5, width))

    def forward(self, x):
        return x * self.scale


class NoGrad(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.no_grad():
            return self.inner(x)


def frozen(layer: nn.Module) -> nn.Module:
    return layer.requires_grad_(False)


def _width(layers, d):
    """The output width of ``layers`` on d features."""
    with torch.no_grad():
        return nn.Sequential(*layers)(torch.zeros(1, d)).shape[-1]


RECIPES = {
    "Linear-Tanh-Linear-Sigmoid": lambda d, h: [nn.Linear(d, h), nn.Tanh(), nn.Linear(h, 3), nn.Sigmoid()],
    "a detach() in the middle": lambda d, h: [nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), Detach(),
                                              nn.Linear(h, 3), nn.Sigmoid()],
    "overlapping slices multiplied": lambda d, h: [nn.Linear(d, h), nn.Tanh(), Halves(), nn.LayerNorm(h // 2 + 1)],
    "a first layer under no_grad": lambda d, h: [NoGrad(nn.Linear(d, h)), nn.GELU(), nn.Linear(h, 2), nn.Softplus()],
    "a frozen first layer": lambda d, h: [frozen(nn.Linear(d, h)), nn.Tanh(), nn.Linear(h, 2)],
    "x times x": lambda d, h: [Square(), nn.Linear(d, h), nn.Sigmoid()],
    "all frozen": lambda d, h: [frozen(nn.Linear(d, h)), nn.Tanh(), frozen(nn.Linear(h, 2))],
    "a layer scaled by a buffer": lambda d, h: [nn.Linear(d, h), Scaled(h), nn.Tanh()],
    "BatchNorm in training (it saves its running statistics, buffers)":
        lambda d, h: [nn.Linear(d, h), nn.BatchNorm1d(h), nn.Tanh()],
    "slices of x itself, first": lambda d, h: [Halves(), nn.Linear(d // 2 + 1, 2)],
}
X_NEEDS_GRAD = ("all frozen", "slices of x itself, first")  # else x's requires_grad is drawn
MENU = (
    lambda d, h: nn.Linear(d, h), lambda d, h: nn.Tanh(), lambda d, h: nn.Sigmoid(),
    lambda d, h: nn.ReLU(), lambda d, h: Detach(), lambda d, h: Halves(), lambda d, h: Square(),
    lambda d, h: NoGrad(nn.Linear(d, h)), lambda d, h: frozen(nn.Linear(d, h)),
    lambda d, h: nn.LayerNorm(d), lambda d, h: nn.Softplus(),
)


def build(layers_of, d: int, h: int) -> nn.Module:
    return nn.Sequential(*layers_of(d, h)).double()


def random_recipe(rng):
    picks = [int(i) for i in rng.integers(len(MENU), size=int(rng.integers(2, 6)))]

    def layers_of(d, h):
        layers = []
        for i in picks:
            width = _width(layers, d) if layers else d
            layers.append(MENU[i](width, h))
        return layers

    return layers_of


def graph_saved_bytes(out: torch.Tensor, exclude: set[int]) -> int:
    """Bytes of the distinct storages the nodes behind ``out`` hold for backward (read from the
    nodes' own _saved_* attributes), other than the excluded storages."""
    sizes: dict[int, int] = {}
    seen, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for attr in dir(node):
            if attr.startswith("_saved_"):
                value = getattr(node, attr)
                for t in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(t, torch.Tensor) and storage_key(t) not in exclude:
                        sizes[storage_key(t)] = t.untyped_storage().nbytes()
        todo.extend(fn for fn, _ in node.next_functions)
    return sum(sizes.values())


MODES = {"enable_grad": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


def saved_cases(rng):
    named = [(label, RECIPES[label]) for label in RECIPES]
    named += [(f"random model {i + 1}", random_recipe(rng)) for i in range(2)]
    return named


@pytest.mark.exercise("saved_bytes")
@pytest.mark.parametrize("mode", list(MODES))
def test_saved_bytes_counts_what_the_graph_keeps(impl, rng, mode):
    for label, layers_of in saved_cases(rng):
        n, d, h = random_shape(rng, 3, 3, 8)
        model = build(layers_of, d, h)
        reference = copy.deepcopy(model)
        x_grad = bool(rng.integers(2)) or label in X_NEEDS_GRAD
        x = torch.randn(n, d, dtype=F64, requires_grad=x_grad)
        x_ref = x.detach().clone().requires_grad_(x_grad)
        exclude = {storage_key(t) for t in (*reference.parameters(), *reference.buffers(), x_ref)}
        with MODES[mode]():
            out_ref = reference(x_ref)
        expected = graph_saved_bytes(out_ref, exclude) if out_ref.grad_fn is not None else 0
        what = (f"saved_bytes(model, x) under torch.{mode}() for {label}: {reference}, x of shape "
                f"{(n, d)} (requires_grad={x_grad})")
        with MODES[mode]():
            got = call(what, impl.saved_bytes, model, x)
        if not (type(got) is tuple and len(got) == 2):
            fail(f"{what}: returned {describe(got)}; expected (output, nbytes).")
        out, nbytes = got
        assert_close(out, out_ref, f"{what}: the output")
        if (out.grad_fn is None) != (out_ref.grad_fn is None):
            fail(f"{what}: the output's grad_fn is {out.grad_fn}, model(x) gives {out_ref.grad_fn}.\n"
                 "  Try: run the model under the caller's grad mode: do not switch it on or off.")
        assert_exact_type(nbytes, expected, f"{what}: nbytes", hint="return a Python int.")
        assert_equal(
            nbytes, expected,
            f"{what}: bytes autograd still holds for the output's backward, other than the "
            "parameters', the buffers' and x's storages",
            hint="see each saved tensor as pack receives it, and count it only if it is still "
            "saved once the forward has returned (a detach() in the model drops the graph before "
            "it, and all it saved): keep a weakref to what pack returns. Count each storage once, "
            "whole (untyped_storage().nbytes()), and leave out the storages that exist anyway: "
            "parameters, buffers, x.",
        )
        if out.grad_fn is not None:
            v = torch.randn_like(out)
            out_ref.backward(v)
            try:
                out.backward(v)
            except RuntimeError as exc:
                fail(f"{what}: backward through your output raised RuntimeError: {exc}\n"
                     "  Try: unpack must give back the tensor pack was handed (what pack returned).")
            for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
                if q.grad is not None:
                    assert_close(p.grad, q.grad, f"{what}: {name}.grad after backward through your output")
            if x_ref.grad is not None:
                assert_close(x.grad, x_ref.grad, f"{what}: x.grad after backward through your output")


@pytest.mark.exercise("saved_bytes")
def test_saved_bytes_lets_the_graph_die(impl, rng):
    """Once the caller drops the output, everything the forward saved must be freed."""
    for label in ("Linear-Tanh-Linear-Sigmoid", "x times x"):
        n, d, h = random_shape(rng, 3, 3, 8)
        model = build(RECIPES[label], d, h)
        outputs = []
        for layer in model:
            layer.register_forward_hook(lambda mod, args, out, seen=outputs: seen.append(weakref.ref(out)))
        x = torch.randn(n, d, dtype=F64, requires_grad=True)
        quiet_gc()
        got = impl.saved_bytes(model, x)
        del got
        gc.collect()
        alive = [i for i, ref in enumerate(outputs) if ref() is not None]
        if alive:
            fail(
                f"saved_bytes(model, x) for {label}: after the caller dropped your output (and "
                f"gc.collect()), the outputs of layers {alive} are still alive: the graph leaked.\n"
                "  What pack returns is kept by the graph; a saved output tensor refers back to "
                "its grad_fn, so returning the tensor itself makes a reference cycle through C++ "
                "that the garbage collector cannot see. Try: pack returns t.detach() (the same "
                "storage, no grad_fn)."
            )


# ----------------------------------------------------------------------------- find_leak

NAMES = ("history", "cache", "stats", "tracker", "monitor", "log", "records", "extras", "running", "probe")
KINDS = ("eval_total", "activations", "forward_hook", "callback", "attribute", "log_dict")


# Each kind of part: the lines that set it up before training, and the lines that run after
# each evaluation batch (with `hidden` and `loss` still attached to their graphs). KEEP is
# where the part keeps a tensor: as it is (a leak) or detached (a clean control).
PARTS = {
    "eval_total": (["state[NAME] = 0.0"], ["state[NAME] = state[NAME] + LOSS_VALUE"]),
    "activations": (["state[NAME] = []"], ["state[NAME].append(KEEP(hidden))"]),
    "forward_hook": (["captured = []",  # the hook refers to the model that holds it: a cycle
                      "model[1].register_forward_hook(lambda mod, args, out, owner=model: captured.append(KEEP(out)))"],
                     ["del captured[:-2]"]),
    "callback": (["last = {}", "def report():", "    return last.get('loss')", "state[NAME] = report"],
                 ["last['loss'] = KEEP(loss)"]),
    "attribute": (["state[NAME] = types.SimpleNamespace(best=None, count=0)",
                   "state[NAME].me = state[NAME]"],  # a cycle: only gc.collect() frees it
                  ["state[NAME].count += 1", "state[NAME].best = KEEP(hidden)"]),
    "log_dict": (["state[NAME] = {}"], ["state[NAME][len(state[NAME])] = {'loss': KEEP(loss), 'step': len(state[NAME])}"]),
}
PROGRAM = """
def make_run():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1)).double()
        batches = [(torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64))
                   for _ in range(3)]
    state = {'model': model, 'losses': []}
SETUP
    for xb, yb in batches:
        model.zero_grad()
        loss = ((model(xb) - yb) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
        state['losses'].append(loss.item())
    for xb, yb in batches:
        hidden = model[1](model[0](xb))
        loss = ((model[2](hidden) - yb) ** 2).mean()
AFTER
    return state
"""


def _lines(lines: list[str], name: str, leaky: bool, indent: str) -> str:
    keep = "" if leaky else ".detach()"
    out = []
    for line in lines:
        line = line.replace("NAME", repr(name)).replace("LOSS_VALUE", "loss" if leaky else "loss.item()")
        line = re.sub(r"KEEP\((\w+)\)", lambda m: m.group(1) + keep, line)
        out.append(indent + line)
    return "\n".join(out)


def plan(seed: int) -> tuple[str | None, list[str], list[str]]:
    """What the program of ``seed`` does: the kind of its leak (None: clean; the seed's
    remainder modulo len(KINDS) + 1 picks it), the kinds of its clean controls, and the names
    of their state entries (the leak's first)."""
    culprit = (*KINDS, None)[seed % (len(KINDS) + 1)]
    draw = np.random.default_rng(seed)
    others = [k for k in KINDS if k != culprit]
    controls = [others[int(i)] for i in draw.choice(len(others), size=int(draw.integers(2, 4)), replace=False)]
    names = [str(v) for v in draw.choice(NAMES, size=1 + len(controls), replace=False)]
    return culprit, controls, names


def leaked_entry(seed: int) -> str | None:
    """The state entry that keeps the graphs of the program of ``seed`` alive, or None."""
    culprit, _, names = plan(seed)
    if culprit is None:
        return None
    return "model" if culprit == "forward_hook" else names[0]


def make_program(seed: int):
    """A make_run for find_leak: the program of ``plan(seed)``, compiled from its own source into
    a namespace of its own (torch, nn, types): nothing of the judge is reachable from it."""
    culprit, controls, names = plan(seed)
    kinds = ([culprit] if culprit else []) + controls
    setup, after = [], []
    for i, (kind, name) in enumerate(zip(kinds, names, strict=False)):
        leaky = i == 0 and culprit is not None
        setup.append(_lines(PARTS[kind][0], name, leaky, "    "))
        after.append(_lines(PARTS[kind][1], name, leaky, "        "))
    source = PROGRAM.replace("SEED", str(seed)).replace("SETUP", "\n".join(setup)).replace("AFTER", "\n".join(after))
    namespace = {"torch": torch, "nn": nn, "types": types}
    exec(compile(source, "<the program under study>", "exec"), namespace)  # noqa: S102 - the judge's own code
    return namespace["make_run"]


def leak_programs(rng):
    """Every kind of leak once, a clean program, then random ones; controls of the other kinds
    (the same code, detached or .item()) sit beside each leak."""
    picks = [*range(len(KINDS) + 1), *(int(v) for v in rng.integers(len(KINDS) + 1, size=2))]
    cases = []
    for pick in picks:
        seed = int(rng.integers(1, 2**26)) * (len(KINDS) + 1) + pick
        culprit = plan(seed)[0]
        cases.append((f"leak: {culprit}" if culprit else "no leak", make_program(seed), leaked_entry(seed)))
    return cases


def describe_program(state) -> str:
    entries = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in state.items())
    return f"make_run() returns {{{entries}}}"


@pytest.mark.exercise("find_leak")
def test_find_leak_names_the_culprit(impl, rng):
    for label, make_run, answer in leak_programs(rng):
        state = make_run()
        picture_ = describe_program(state)
        del state
        quiet_gc()
        what = f"find_leak(make_run) for a program with {label}, where {picture_}"
        got = call(what, impl.find_leak, make_run, hint="exactly one entry keeps the graphs alive, "
                   "or none does: remove each entry from a FRESH state (make_run() again) in turn.")
        if answer is None:
            assert_equal(
                got, None, f"{what}: the program keeps no graph alive",
                hint="the entries hold floats, detached tensors and .item() values: tensors that "
                "stay alive but hold no graph are not a leak here. Check first whether anything "
                "the forward saved is still alive after make_run() returned (and gc.collect()).",
            )
        else:
            assert_equal(
                got, answer, f"{what}: the entry that keeps evaluation graphs (and the tensors "
                "they saved) alive",
                hint="watch what autograd saves while make_run() runs (pack returns a detached "
                "alias; keep a weakref to it), then build a fresh state, drop ONE entry, "
                "gc.collect(), and see whether every saved tensor died. A module keeps its "
                "forward hooks and what their closures hold; a function keeps its closure.",
            )


if __name__ == "__main__":
    record_traces()
