"""Hidden checks for the ddp_by_hand kata. Every distributed check starts its own ranks: the
check process forks WORLD processes, each joins a gloo process group (a FileStore in a fresh
folder: no port to pick) and runs the check's own code there, which calls the learner's
functions under the kata's rules as any check does. A single-process run on the full batch,
in the check process, is the oracle; torch's own bucket assignment is the oracle for
assign_buckets.

What comes back from a rank is read by the check's code in that rank (the parameters it
holds, the collectives its dispatch mode saw, the gradient accumulations its own hooks saw)
and sent on a pipe in frames that start with a token drawn before the fork: anything else
written there fails the check. A rank that hangs (a collective its peer never joins) is
reported within PEER_GRACE_S of its peer finishing, or at DEADLINE_S; every rank is killed
and reaped when the check ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import pickle
import re
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from checker.contracts import guarded, in_place
from checker.helpers import CheckFailure, assert_close, assert_equal, describe, expect_raises, fail
from checker.reaper import die_with_parent

pytestmark = pytest.mark.kata("ddp_by_hand")
in_place("broadcast_parameters", "module")
in_place("average_gradients", "module")

WORLD = 2
COLLECTIVE_TIMEOUT_S = 6.0  # a collective that waits longer raises in its rank (gloo's timeout)
PEER_GRACE_S = 3.0  # once a rank has finished, how long its peers may still take
DEADLINE_S = 12.0  # every rank, in all (the kata's time limit per check is 20 s)
LR = 0.1
_exit = os._exit  # bound at import: the ranks leave through the real one
_TOKEN = 16


# ----------------------------------------------------------------------------- what a rank sees


class Recorder(TorchDispatchMode):
    """Every c10d operator that runs in a rank, however learner code reached it, appended to
    ``log`` as ("c10d", name, numels, dtype, during backward, asynchronous); the check's own
    accumulation hooks append ("acc", parameter index) to the same log."""

    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "c10d":
            first = args[0] if args and isinstance(args[0], list | tuple) else ()
            tensors = [t for t in first if isinstance(t, torch.Tensor)]
            name = {"allreduce_": "all_reduce", "broadcast_": "broadcast"}.get(
                func._opname, func._opname)
            self.log.append(("c10d", name, tuple(t.numel() for t in tensors),
                             str(tensors[0].dtype).replace("torch.", "") if tensors else "",
                             torch._C._current_graph_task_id() != -1,
                             _async_flag(func, args, kwargs or {})))
        return func(*args, **(kwargs or {}))


def _async_flag(func, args: tuple, kwargs: dict) -> bool:
    """The operator's ``async_op`` argument (True, its default, where it has none)."""
    for k, arg in enumerate(func._schema.arguments):
        if arg.name == "async_op":
            value = args[k] if k < len(args) else kwargs.get("async_op", True)
            return bool(value)
    return True


with Recorder([]):  # the first mode entered imports torch._dynamo: pay it at import
    torch.ones(2, requires_grad=True).sum().backward()


def collectives(log: list) -> list[tuple]:
    return [e for e in log if e[0] == "c10d"]


def summary(log: list) -> str:
    calls = [f"{name}({'+'.join(map(str, numels)) or '-'} {dtype})".replace(" )", ")")
             for _, name, numels, dtype, *_ in collectives(log)]
    if not calls:
        return "no collective"
    if len(calls) > 12:
        calls = [*calls[:12], f"... ({len(calls)} in all)"]
    return ", ".join(calls)


# ----------------------------------------------------------------------------- the ranks


@dataclass
class Rank:
    state: str = "running"  # running, done, error, died, forged
    payload: Any = None
    log: list | None = None
    note: str = "starting"


def run_ranks(impl, body: Callable[[int, Any, list, Callable[[str], None]], Any],
              world: int = WORLD) -> list[Any]:
    """Fork ``world`` ranks, run ``body(rank, impl, log, note)`` in each, and return what each
    body returned; a failure in any rank, a hang or a forged report fails the check."""
    token = os.urandom(_TOKEN)
    folder = tempfile.mkdtemp(prefix="kata-ddp-")
    pipes = [os.pipe() for _ in range(world)]
    release = os.pipe()
    owned = {fd for pair in (*pipes, release) for fd in pair}
    pids: list[int] = []
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # the ranks' collector then skips (and never writes to) the inherited objects
    try:
        for rank in range(world):
            pid = os.fork()
            if pid == 0:
                _rank_main(rank, world, impl, body, token, pipes, release, folder, parent)
            pids.append(pid)
        gc.unfreeze()
        for fd in (*(w for _, w in pipes), release[0]):
            os.close(fd)
            owned.discard(fd)
        ranks = _collect([r for r, _ in pipes], token)
    finally:
        gc.unfreeze()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
        for fd in owned:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
    return _verdict(ranks, impl)


def _rank_main(rank, world, impl, body, token, pipes, release, folder, parent) -> None:
    """A rank's whole life (it never returns): join the group, run the body, report, wait to
    be let go (or killed)."""
    code = 70
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(DEADLINE_S) + 8)  # a last resort, should the check itself be stuck
        die_with_parent(parent)
        for r, (read_end, write_end) in enumerate(pipes):
            os.close(read_end)
            if r != rank:
                os.close(write_end)
        os.close(release[1])
        out = pipes[rank][1]

        def send(kind: str, payload: Any) -> None:
            data = pickle.dumps((kind, payload))
            frame = token + len(data).to_bytes(8, "little") + data
            while frame:
                frame = frame[os.write(out, frame):]

        torch.set_num_threads(1)  # forked from a process that may have used its thread pool
        store = dist.FileStore(os.path.join(folder, "store"), world)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        log: list = []
        try:
            result = body(rank, impl, log, lambda text: send("note", text))
        except BaseException as exc:  # noqa: BLE001 — reported to the check process
            send("error", (_exception(exc, impl), list(log)))
        else:
            send("done", (result, list(log)))
        os.read(release[0], 1)  # returns once the check process closed its end, or is gone
        code = 0
    finally:
        _exit(code)


def _exception(exc: BaseException, impl) -> dict:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 — a learner exception whose __str__ fails
        text = "(its message could not be read)"
    learner = getattr(impl.module, "__file__", None)
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == learner:
            line = lineno
    return {"type": type(exc).__name__, "message": text[:3000], "line": line,
            "assertion": isinstance(exc, AssertionError),
            "not_implemented": isinstance(exc, NotImplementedError)}


def _collect(fds: list[int], token: bytes) -> list[Rank]:
    ranks = [Rank() for _ in fds]
    buffers = [b""] * len(fds)
    live = dict(zip(fds, range(len(fds)), strict=True))
    start = time.monotonic()
    first_end = None
    while live and any(r.state == "running" for r in ranks):
        now = time.monotonic()
        left = DEADLINE_S - (now - start)
        if first_end is not None:
            left = min(left, PEER_GRACE_S - (now - first_end))
        if left <= 0:
            break
        ready, _, _ = select.select(list(live), [], [], left)
        for fd in ready:
            r = live[fd]
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                del live[fd]
                if ranks[r].state == "running":
                    ranks[r].state = "died"
            buffers[r] += chunk
            while ranks[r].state == "running" and len(buffers[r]) >= _TOKEN + 8:
                head = buffers[r]
                if head[:_TOKEN] != token:
                    ranks[r].state = "forged"
                    break
                size = int.from_bytes(head[_TOKEN:_TOKEN + 8], "little")
                if len(head) < _TOKEN + 8 + size:
                    break
                kind, payload = pickle.loads(head[_TOKEN + 8:_TOKEN + 8 + size])
                buffers[r] = head[_TOKEN + 8 + size:]
                if kind == "note":
                    ranks[r].note = payload
                else:
                    ranks[r].state = kind
                    ranks[r].payload, ranks[r].log = payload
            if ranks[r].state != "running" and first_end is None:
                first_end = time.monotonic()
    return ranks


_ADDRESS = re.compile(r"\[[0-9a-fA-F.:]+\]:\d+|/__w/[^\s\]]*")


def _verdict(ranks: list[Rank], impl) -> list[Any]:
    for r, rank in enumerate(ranks):
        if rank.state == "forged":
            fail(f"rank {r}: the channel the check's own code reports on carried data the check "
                 "did not write. Your code must not write to file descriptors it did not open.")
        if rank.state == "died":
            fail(f"rank {r}'s process ended without reporting, {rank.note}. Leave the "
                 "process alone: no exit, no signals.")
    errors = [(r, rank) for r, rank in enumerate(ranks) if rank.state == "error"]
    stuck = [r for r, rank in enumerate(ranks) if rank.state == "running"]
    logs = "\n".join(f"  rank {r} made: {summary(rank.log)}" for r, rank in enumerate(ranks)
                     if rank.log is not None)
    if errors:
        # a rank's own exception first; a peer's timeout or closed connection is its echo
        errors.sort(key=lambda e: _is_comm_error(e[1].payload))
        r, rank = errors[0]
        info = rank.payload
        message = _ADDRESS.sub("[peer]", info["message"])
        if info["not_implemented"] and info["line"]:
            fail(f"not implemented yet: {message}. Replace the `raise NotImplementedError(...)` "
                 "with your implementation.")
        if info["assertion"]:
            fail(f"rank {r}, {rank.note}: {message}")
        where = f" (your file, line {info['line']})" if info["line"] else ""
        text = f"rank {r}, {rank.note}: {info['type']}{where}: {message}"
        if _is_comm_error(info):
            text += (f"\n{logs}\n  Every rank must make the same collectives in the same order, "
                     "with tensors of the same sizes and dtypes.")
        fail(text)
    if stuck:
        finished = [r for r in range(len(ranks)) if r not in stuck]
        waiting = "; ".join(f"rank {r} was still {ranks[r].note}" for r in stuck)
        if finished:
            fail(f"rank {finished[0]} finished, but {waiting} {PEER_GRACE_S:g} s later: it "
                 f"waits in a collective that its peer never made (or it loops).\n{logs}\n"
                 "  Every rank must make the same collectives in the same order: a collective "
                 "that only some ranks reach (inside `if rank == ...`) hangs the others.")
        fail(f"no rank finished within {DEADLINE_S:g} s: {waiting}. Both may wait in "
             "different collectives (every rank must make the same ones in the same order), "
             "or your code loops.")
    return [rank.payload for rank in ranks]


def _is_comm_error(info: dict) -> bool:
    text = info["message"]
    return info["type"] in ("RuntimeError", "DistBackendError") and (
        "gloo" in text or "Timed out" in text or "Connection closed" in text)


def call_in_rank(impl, name: str, note: Callable[[str], None], where: str, *args):
    note(f"in `{name}` ({where})")
    return getattr(impl, name)(*args)


# ----------------------------------------------------------------------------- the model


class Net(nn.Module):
    """A small model with a float32 parameter among float64 ones, one frozen parameter (no
    gradient, in no bucket) and one parameter used twice; with ``spare``, a last parameter
    that requires grad but that the forward never uses (its .grad stays None)."""

    def __init__(self, d: int, h1: int, h2: int, spare: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, h1, dtype=torch.float64)
        self.gain = nn.Parameter(torch.ones(h1, dtype=torch.float32))
        self.fc2 = nn.Linear(h1, h2, dtype=torch.float64)
        self.shift = nn.Parameter(torch.zeros(h2, dtype=torch.float64), requires_grad=False)
        self.head = nn.Linear(h2, 1, dtype=torch.float64)
        if spare:
            self.spare = nn.Parameter(torch.zeros(h2, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(x) * self.gain.double())
        h = torch.tanh(self.fc2(h) + self.shift + self.fc2.bias)
        return self.head(h)


@dataclass(frozen=True)
class Case:
    label: str
    seed: int
    sizes: tuple[int, int, int]
    n: int  # samples per rank
    steps: int = 3
    bucket_bytes: int = 0
    micro: tuple[int, ...] = ()  # micro-batches per step (NoSyncGradSync)
    spare: bool = False  # the model gets a trainable parameter its forward never uses
    left_out: tuple[int, ...] = ()  # trainable parameters the buckets leave out


def make_net(case: Case, salt: int = 0) -> Net:
    torch.manual_seed(case.seed * 7 + salt)  # inside a rank or the oracle: the check's own RNG
    net = Net(*case.sizes, spare=case.spare)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, dtype=p.dtype) * 0.6)
    return net


def make_data(case: Case, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(case.seed)
    x = torch.randn(world * case.n, case.sizes[0], dtype=torch.float64, generator=g)
    y = torch.randn(world * case.n, 1, dtype=torch.float64, generator=g)
    return x, y


def loss_of(net: Net, x: torch.Tensor, y: torch.Tensor, total: int) -> torch.Tensor:
    """Summed squared error over ``total`` samples: a batch's share of the mean."""
    return ((net(x) - y) ** 2).sum() / total


def sgd(net: Net) -> None:
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                p -= LR * p.grad


def grads(net: Net) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.detach().clone() for n, p in net.named_parameters()}


def reference(case: Case, world: int) -> list[dict]:
    """The single-process run on the full batch: each step's gradients."""
    net = make_net(case)
    x, y = make_data(case, world)
    steps = []
    for _ in range(case.steps):
        net.zero_grad(set_to_none=True)
        loss_of(net, x, y, len(x)).backward()
        steps.append(grads(net))
        sgd(net)
    steps.append({n: p.detach().clone() for n, p in net.named_parameters()})
    return steps


def compare_steps(per_rank: list[list[dict]], expected: list[dict], case: Case, what: str,
                  hint: str, logs: list[list[list]] | None = None) -> None:
    """Each rank's gradients after each step, then its parameters, against the single-process
    run; a failure shows what each rank made in that step (``logs``: per rank, per step)."""
    try:
        _compare_steps(per_rank, expected, case, what, hint)
    except CheckFailure as exc:
        step = getattr(exc, "step", None)
        if logs is None or step is None or step >= len(logs[0]):
            raise
        made = "\n".join(f"  rank {r} made in step {step + 1}: {summary(steps[step])}"
                         for r, steps in enumerate(logs))
        fail(f"{exc}\n{made}")


def _fail_at(step: int, message: str) -> None:
    exc = CheckFailure(message)
    exc.step = step
    raise exc


def _compare_steps(per_rank: list[list[dict]], expected: list[dict], case: Case, what: str,
                   hint: str) -> None:
    for step, theirs in enumerate(expected):  # the first step that goes wrong, on any rank
        for r, got in enumerate(per_rank):
            mine = got[step]
            last = step == len(expected) - 1
            for name, want in theirs.items():
                have = mine[name]
                label = (f"rank {r}, {case.label}: parameter `{name}` after {case.steps} steps"
                         if last else f"rank {r}, {case.label}, step {step + 1}: `{name}.grad` "
                         f"{what}")
                if want is None or have is None:
                    if (want is None) != (have is None):
                        _fail_at(step, f"{label}: expected {describe(want)}, got {describe(have)}.\n  A "
                             "parameter that does not require grad has no gradient to average: "
                             "leave its .grad None.")
                    continue
                # the float32 parameter rounds differently summed by rank or by micro-batch than
                # over the full batch, and the float64 values downstream of it follow
                try:
                    assert_close(have, want, label, rtol=1e-5, atol=1e-7, hint="" if last else hint)
                except CheckFailure as exc:
                    exc.step = step
                    raise


# ----------------------------------------------------------------------------- broadcast_parameters


class Bcast(nn.Module):
    def __init__(self, d: int, h: int, k: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, h, dtype=torch.float64)
        self.norm = nn.BatchNorm1d(h, dtype=torch.float64)
        self.out = nn.Linear(h, k, dtype=torch.float64)
        self.frozen = nn.Parameter(torch.zeros(k, dtype=torch.float64), requires_grad=False)
        # a buffer the state_dict leaves out: still the module's, still broadcast
        self.register_buffer("scratch", torch.zeros(h, dtype=torch.float64), persistent=False)


def held(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and every buffer of ``net`` by name (non-persistent buffers too)."""
    return {**dict(net.named_parameters()), **dict(net.named_buffers())}


def bcast_net(sizes: tuple[int, int, int], seed: int, rank: int) -> Bcast:
    torch.manual_seed(seed * 10 + rank)
    net = Bcast(*sizes)
    with torch.no_grad():
        for t in held(net).values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, dtype=t.dtype))
            else:
                t.fill_(17 * seed + 5 * rank + 3)
    return net


def bcast_body(cases: list[tuple[str, tuple[int, int, int], int, int]]):
    def body(rank, impl, log, note):
        out = []
        for label, sizes, seed, src in cases:
            net = bcast_net(sizes, seed, rank)
            before = held(net)
            flags = {n: t.requires_grad for n, t in before.items()}
            start = len(log)
            with Recorder(log):  # src None: left to its default, rank 0
                returned = call_in_rank(impl, "broadcast_parameters", note, label, net,
                                        *(() if src is None else (src,)))
            now = held(net)
            out.append({
                "returned": None if returned is None else describe(returned),
                "values": {n: t.detach().clone() for n, t in now.items()},
                "replaced": sorted(n for n in before if now.get(n) is not before[n]),
                "flags": {n: t.requires_grad for n, t in now.items()},
                "flags_before": flags,
                "log": log[start:],
            })
        return out
    return body


def _whose(got: torch.Tensor | None, states: list[dict], name: str, rank: int, src: int) -> str:
    """Whose values a rank's tensor holds after the broadcast, in words."""
    if got is None:
        return "missing from the module"
    if torch.equal(got, states[src][name]):
        return "ok"
    if torch.equal(got, states[rank][name]):
        return "still its own values"
    for other, state in enumerate(states):
        if torch.equal(got, state[name]):
            return f"rank {other}'s values"
    if got.is_floating_point():
        mean = sum(state[name] for state in states) / len(states)
        if torch.allclose(got, mean):
            return "the mean over the ranks"
    return "values of no rank"


def check_broadcast(impl, cases) -> None:
    results = run_ranks(impl, bcast_body(cases))
    for i, (label, sizes, seed, given) in enumerate(cases):
        src = 0 if given is None else given
        states = [{n: t.detach() for n, t in held(bcast_net(sizes, seed, r)).items()}
                  for r in range(WORLD)]
        call = (f"broadcast_parameters(module{'' if given is None else f', src={src}'}) "
                f"({label}, {WORLD} ranks)")
        lines = []
        for r, per_case in enumerate(results):
            got = per_case[i]
            if got["returned"] is not None:
                fail(f"rank {r}, {call} returned {got['returned']}; it works in place and "
                     "returns None.")
            kinds: dict[str, list[str]] = {}
            for name in states[src]:
                kinds.setdefault(_whose(got["values"].get(name), states, name, r, src),
                                 []).append(name)
            wrong = {k: v for k, v in kinds.items() if k != "ok"}
            if wrong:
                parts = [f"{kind} in every tensor" if len(names) == len(states[src]) else
                         f"{kind} in {', '.join(names)}" for kind, names in wrong.items()]
                lines.append(f"  rank {r}: {'; '.join(parts)}")
        if lines:
            made = "\n".join(f"  rank {r} made: {summary(per_case[i]['log'])}"
                              for r, per_case in enumerate(results))
            fail(f"{call}: afterwards every tensor of every rank should hold rank {src}'s "
                 "values, but\n" + "\n".join(lines) + f"\n{made}\n  Try: every rank, rank "
                 "src included, broadcasts every parameter and every buffer (running "
                 "statistics and counters too, and buffers the state_dict leaves out) from "
                 "src, into the module's own tensors.")
        for r, per_case in enumerate(results):
            got = per_case[i]
            if got["replaced"]:
                fail(f"rank {r}, {call}: the module holds new tensors for "
                     f"{', '.join(got['replaced'])}.\n  An optimizer built before the broadcast "
                     "still holds the old ones: write rank src's values into the tensors the "
                     "module already has (in place).")
            assert_equal(sorted(got["flags"].items()), sorted(got["flags_before"].items()),
                         f"rank {r}, {call}: (name, requires_grad) of each tensor",
                         hint="the broadcast changes values only.")


@pytest.mark.exercise("broadcast_parameters")
def test_broadcast_parameters(impl, rng):
    sizes = tuple(int(v) for v in rng.choice(np.arange(1, 9), size=3, replace=False))
    check_broadcast(impl, [("fixed case, src=1", (3, 4, 2), 1, 1),
                           ("fixed case, src left to its default", (2, 5, 3), 2, None),
                           ("random case", sizes, int(rng.integers(3, 1000)),
                            int(rng.integers(0, WORLD)))])


# ----------------------------------------------------------------------------- average_gradients


def average_body(cases: list[Case]):
    def body(rank, impl, log, note):
        out = []
        for case in cases:
            net = make_net(case)
            x, y = make_data(case, dist.get_world_size())
            rows = slice(rank * case.n, (rank + 1) * case.n)
            steps, logs = [], []
            for step in range(case.steps):
                net.zero_grad(set_to_none=True)
                loss_of(net, x[rows], y[rows], case.n).backward()
                start = len(log)
                with Recorder(log):
                    try:
                        call_in_rank(impl, "average_gradients", note,
                                     f"{case.label}, step {step + 1}", net)
                    except Exception as exc:
                        unused = [n for n, p in net.named_parameters()
                                  if p.requires_grad and p.grad is None]
                        if unused:
                            _explain(exc, impl, (
                                "The model has a parameter that requires grad but that this "
                                f"forward never used ({', '.join(unused)}): its .grad is None, "
                                "and there is nothing to average. Try: reduce the gradients "
                                "that exist; a .grad that is None stays None."))
                        raise
                steps.append(grads(net))
                logs.append(log[start:])
                sgd(net)
            steps.append({n: p.detach().clone() for n, p in net.named_parameters()})
            out.append({"steps": steps, "logs": logs})
        return out
    return body


@pytest.mark.exercise("average_gradients")
def test_average_gradients(impl, rng):
    """Three ranks (a world size of 2 written into the code shows), the fixed case, then a
    random one. Each rank's loss is the mean over its own equal shard, so the mean over ranks
    of their gradients is the full batch's."""
    world = 3
    sizes = tuple(int(v) for v in rng.choice(np.arange(2, 8), size=3, replace=False))
    cases = [Case("fixed case", seed=11, sizes=(3, 4, 2), n=2, steps=3),
             Case("random case", int(rng.integers(100, 10_000)), sizes, int(rng.integers(1, 4)),
                  steps=2),
             Case("fixed case, `spare` requires grad but is never used", seed=12,
                  sizes=(2, 3, 4), n=2, steps=2, spare=True)]
    results = run_ranks(impl, average_body(cases), world)
    for i, case in enumerate(cases):
        compare_steps([got[i]["steps"] for got in results], reference(case, world), case,
                      f"after average_gradients (world size {world})",
                      "each .grad must end as the mean over ranks: all_reduce sums, then divide "
                      "by dist.get_world_size(), on every rank.",
                      [got[i]["logs"] for got in results])


# ----------------------------------------------------------------------------- assign_buckets


F64, F32, F16 = torch.float64, torch.float32, torch.float16


def make_params(spec: list[tuple]) -> list[torch.Tensor]:
    """(shape, dtype, requires_grad[, device]) -> tensors (only their sizes, dtypes and devices
    matter; "meta" tensors hold no data)."""
    return [torch.zeros(shape, dtype=dtype, requires_grad=rg, device=rest[0] if rest else "cpu")
            for shape, dtype, rg, *rest in spec]


def torch_buckets(params: list[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    """DDP's own assignment (which sorts buckets by their smallest index), in backward order."""
    keep = [i for i, p in enumerate(params) if p.requires_grad]
    if not keep:
        return []
    found, _ = dist._compute_bucket_assignment_by_size([params[i] for i in keep], [bucket_bytes])
    return [[keep[j] for j in bucket] for bucket in reversed(found)]


def show_params(params: list[torch.Tensor]) -> str:
    return "[" + ", ".join(
        f"{p.numel() * p.element_size()}B {str(p.dtype).replace('torch.', '')}"
        + ("" if p.device.type == "cpu" else f" on {p.device.type}")
        + ("" if p.requires_grad else " frozen") for p in params) + "]"


BUCKET_CORPUS = [
    ("no parameters", [], 10),
    ("every parameter frozen", [((3,), F64, False), ((2,), F32, False)], 8),
    ("one parameter", [((5,), F64, True)], 1000),
    ("a bucket reaching bucket_bytes exactly", [((2,), F64, True), ((3,), F64, True),
                                                ((2, 2), F64, True)], 40),
    ("bucket_bytes=1, empty parameters", [((0,), F64, True), ((3,), F64, True),
                                          ((0, 2), F32, True), ((2,), F64, True)], 1),
    ("dtypes interleaved", [((2, 2), F64, True), ((4,), F32, True), ((4,), F64, True),
                            ((2,), F32, True), ((1,), F16, True), ((4,), F64, True)], 48),
    ("a frozen parameter in the middle", [((3,), F64, True), ((6,), F64, False),
                                          ((3,), F64, True)], 48),
    ("a parameter larger than bucket_bytes", [((10,), F64, True), ((1,), F64, True),
                                              ((1,), F64, True)], 16),
    ("one dtype on two devices", [((2,), F64, True, "cpu"), ((3,), F64, True, "meta"),
                                  ((1,), F64, True, "cpu"), ((2,), F64, True, "meta"),
                                  ((2,), F32, True, "meta")], 24),
]


def bucket_draw(rng) -> tuple[str, list[tuple], int]:
    spec = []
    for _ in range(int(rng.integers(1, 10))):
        shape = (int(rng.integers(0, 5)), int(rng.integers(1, 4)))
        spec.append((shape, (F64, F32, F16)[int(rng.integers(0, 3))], bool(rng.random() < 0.85)))
    sizes = [int(np.prod(sh)) * torch.empty(0, dtype=dt).element_size() for sh, dt, _ in spec]
    prefix = int(np.sum(sizes[:int(rng.integers(1, len(sizes) + 1))]))
    bucket_bytes = int(rng.choice([max(prefix, 1), prefix + 1, max(prefix - 1, 1), 1,
                                   int(rng.integers(1, 200))]))
    return "random draw", spec, bucket_bytes


def check_assignment(impl, label: str, spec: list[tuple], bucket_bytes: int) -> None:
    params = make_params(spec)
    expected = torch_buckets(params, bucket_bytes)
    call = f"assign_buckets(params, bucket_bytes={bucket_bytes}) ({label}; params {show_params(params)})"
    got = impl.assign_buckets(params, bucket_bytes)
    if type(got) is not list or any(type(b) is not list or any(type(i) is not int for i in b)
                                    for b in got):
        fail(f"{call} returned {describe(got)}; expected a list of lists of int indices.")
    assert_equal(got, expected, call,
                 hint="each dtype (on each device) fills its own bucket, in index order, "
                 "skipping parameters that "
                 "do not require grad; a bucket is full once its bytes (numel * element_size) "
                 "reach bucket_bytes or more; keep the buckets left filling at the end; return "
                 "them by smallest index, largest first.")


@pytest.mark.exercise("assign_buckets")
def test_assign_buckets_corpus(impl):
    for label, spec, bucket_bytes in BUCKET_CORPUS:
        check_assignment(impl, label, spec, bucket_bytes)
    params = make_params([((3,), F64, True)])
    for bad in (0, -8, -1):
        expect_raises(ValueError, lambda b=bad: impl.assign_buckets(params, b),
                      f"assign_buckets(params, bucket_bytes={bad})",
                      hint="a bucket needs room for at least one byte: raise ValueError.")


@pytest.mark.exercise("assign_buckets")
def test_assign_buckets_random(impl, rng):
    for _ in range(6):
        check_assignment(impl, *bucket_draw(rng))


# ----------------------------------------------------------------------------- the buckets in backward


class _Probe(Exception):
    """The check's own exception, raised inside a no_sync() block."""


def _in_window(impl, name: str, run: Callable[[], Any]) -> Any:
    with guarded(name, run), impl.rules():
        return run()


def bucket_body(cases: list[Case], cls: str):
    def body(rank, impl, log, note):
        out = []
        world = dist.get_world_size()
        for case in cases:
            net = make_net(case)
            params = list(net.parameters())
            plan = [b for b in ([i for i in bucket if i not in case.left_out]
                                for bucket in torch_buckets(params, case.bucket_bytes)) if b]
            for i, p in enumerate(params):
                if p.requires_grad:
                    p.register_post_accumulate_grad_hook(lambda _, i=i: log.append(("acc", i)))
            note(f"in `{cls}(params, buckets)` ({case.label})")
            sync = _in_window(impl, cls, lambda a=params, b=plan: getattr(impl, cls)(a, b))
            x, y = make_data(case, world)
            steps, escaped = [], None
            for step, micro in enumerate(case.micro or (1,) * case.steps):
                if step == 1 and case.micro:  # a no_sync() block that an exception ends
                    note(f"in `no_sync()` ({case.label}, before step 2)")
                    try:
                        _in_window(impl, "no_sync", lambda s=sync: _raise_inside(s.no_sync()))
                        escaped = False
                    except _Probe:
                        escaped = True
                net.zero_grad(set_to_none=True)
                start = len(log)
                bounds = np.linspace(rank * case.n, (rank + 1) * case.n, micro + 1).astype(int)
                for j in range(micro):
                    rows = slice(int(bounds[j]), int(bounds[j + 1]))
                    loss = loss_of(net, x[rows], y[rows], case.n)
                    log.append(("backward", j, micro))
                    where = f"{case.label}, step {step + 1}, backward {j + 1} of {micro}"
                    note(f"in backward ({where}), running your hooks")
                    with Recorder(log):
                        if j < micro - 1:
                            _in_window(impl, "no_sync", lambda s=sync, loss=loss: _backward_in(
                                s.no_sync(), loss))
                        else:
                            try:
                                _in_window(impl, "backward", loss.backward)
                            except Exception as exc:
                                if case.left_out:
                                    _explain(exc, impl, (
                                        "The buckets here leave parameters "
                                        f"{' and '.join(map(str, case.left_out))} out, though "
                                        "they require grad: a parameter in no bucket is left "
                                        "alone (someone else looks after its gradient). Try: "
                                        "let only the bucketed parameters take part in your "
                                        "bucket bookkeeping."))
                                raise
                log.append(("wait",))
                note(f"in `wait()` ({case.label}, step {step + 1})")
                with Recorder(log):
                    _in_window(impl, "wait", sync.wait)
                    if step == len(case.micro or (1,) * case.steps) - 1:
                        _in_window(impl, "wait", sync.wait)  # nothing started since: a no-op
                for i in case.left_out:  # what no bucket holds, the check averages itself
                    dist.all_reduce(params[i].grad)
                    params[i].grad /= world
                steps.append({"grads": grads(net), "events": log[start:]})
                sgd(net)
            out.append({"plan": plan, "steps": steps, "escaped": escaped,
                        "final": {n: p.detach().clone() for n, p in net.named_parameters()}})
        return out
    return body


def _explain(exc: Exception, impl, why: str) -> None:
    """Raise a learner exception in a rank again as a failure that says ``why`` the case
    provoked it; a peer's timeout or closed connection is left to the usual report."""
    info = _exception(exc, impl)
    if _is_comm_error(info):
        return
    where = f" (your file, line {info['line']})" if info["line"] else ""
    raise AssertionError(f"{info['type']}{where}: {info['message']}\n  {why}") from None


def _backward_in(context, loss: torch.Tensor) -> None:
    with context:
        loss.backward()


def _raise_inside(context) -> None:
    with context:
        raise _Probe


def transcript(events: list[tuple], plan: list[list[int]] | None, sizes: dict[int, tuple]):
    """The collectives of one step, each as (what, when): from the rank's own log, or (with
    ``plan``) the ones the contract expects given the order the gradients were accumulated."""
    out, last, phase, syncing = [], None, "", True
    waiting = [set(b) for b in plan] if plan is not None else []
    home = {i: b for b, bucket in enumerate(plan or []) for i in bucket}
    for event in events:
        if event[0] == "backward":
            _, j, micro = event
            phase = f"during backward {j + 1} of {micro}" + (" (inside no_sync)" if j < micro - 1
                                                              else "")
            syncing, last = j == micro - 1, None
        elif event[0] == "wait":
            phase, last = "during wait()", None
        elif event[0] == "acc":
            last = event[1]
            b = home.get(last)
            if plan is not None and syncing and b is not None:
                waiting[b].discard(last)
                if not waiting[b]:
                    waiting[b] = set(plan[b])
                    numel = sum(sizes[i][0] for i in plan[b])
                    out.append((("all_reduce", (numel,), sizes[plan[b][0]][1], True),
                                (phase, last), b))
        elif event[0] == "c10d" and plan is None:
            out.append(((event[1], event[2], event[3], event[5]), (phase, last), None))
    return out


def _say(entry: tuple) -> str:
    (name, numels, dtype, asynchronous), (phase, last) = entry[0], entry[1]
    what = f"{name} of {'+'.join(map(str, numels)) or 'no'} {dtype} elements".replace("  ", " ")
    what += "" if asynchronous else " (blocking: async_op=False)"
    after = f"right after parameter {last}'s gradient was accumulated, " if last is not None else ""
    return f"{what}, {after}{phase}"


def check_transcript(label: str, events: list[tuple], plan: list[list[int]],
                     sizes: dict[int, tuple]) -> None:
    mine, want = transcript(events, None, sizes), transcript(events, plan, sizes)
    for k in range(max(len(mine), len(want))):
        got = mine[k] if k < len(mine) else None
        exp = want[k] if k < len(want) else None
        if got is not None and exp is not None and got[:2] == exp[:2]:
            continue
        if got is not None and "inside no_sync" in got[1][0]:
            fail(f"{label}: your code made {_say(got)}.\n  While no_sync() is open, backward "
                 "starts no collective (nor does closing the block): the gradients only "
                 "accumulate, and the first backward after it sends the buckets.")
        if exp is None:
            fail(f"{label}: your code made one collective too many: {_say(got)}.\n  Each bucket "
                 f"goes out once per step, as one all_reduce; the buckets were {plan}."
                 + ("\n  Try: inside no_sync(), backward starts no collective." if
                    "inside no_sync" in got[1][0] else ""))
        b = exp[2]
        head = (f"{label}: bucket {b} (parameters {plan[b]}) was complete once parameter "
                f"{exp[1][1]}'s gradient was accumulated, {exp[1][0]}: expected {_say(exp)}")
        if got is None:
            fail(f"{head};\n  your code made no such collective in this step.\n  Try: count each "
                 "bucket's accumulated gradients in a post-accumulate-grad hook, and start the "
                 "bucket's all_reduce (async_op=True) from the hook that completes it.")
        if got[0][0] != "all_reduce" or got[0][1] != exp[0][1] or got[0][2] != exp[0][2]:
            why = ("one flat tensor per bucket, in the bucket's dtype: the bucket's gradients, "
                   "each flattened, concatenated in the bucket's order.")
        elif not got[0][3]:
            why = ("start it with async_op=True and keep the work it returns: a blocking "
                   "all_reduce stalls backward until it is done; wait() is where to wait.")
        elif got[1][0] == "during wait()":
            why = ("start each bucket from the hook that completes it, with async_op=True, so "
                   "that it overlaps the rest of backward; wait() only waits.")
        else:
            why = ("a bucket starts when ITS last gradient arrives: count the gradients of each "
                   "bucket as they are accumulated, and start no bucket before it is complete.")
        fail(f"{head};\n  got      {_say(got)}.\n  Try: {why}")


def check_buckets(impl, cases: list[Case], cls: str) -> None:
    results = run_ranks(impl, bucket_body(cases, cls))
    for i, case in enumerate(cases):
        expected = reference(case, WORLD)
        net = make_net(case)
        sizes = {k: (p.numel(), str(p.dtype).replace("torch.", ""))
                 for k, p in enumerate(net.parameters())}
        for r, per_case in enumerate(results):
            got = per_case[i]
            if cls == "NoSyncGradSync" and got["escaped"] is False:
                fail(f"rank {r}, {case.label}: an exception raised inside a `with sync.no_sync():` "
                     "block did not come out of it: the context manager swallowed it.\n  Try: "
                     "let exceptions through (no except around the yield; restore in finally).")
            for step, data in enumerate(got["steps"]):
                label = f"rank {r}, {case.label}, step {step + 1}"
                if cls == "NoSyncGradSync" and step == 1:
                    label += " (after a no_sync() block that an exception ended)"
                check_transcript(label, data["events"], got["plan"], sizes)
        compare_steps([[d["grads"] for d in got[i]["steps"]] + [got[i]["final"]]
                       for got in results], expected, case, "after backward and wait()",
                      "wait() must leave the mean over ranks of the gradients in each .grad: wait "
                      "for each bucket, divide by the world size, copy each slice back "
                      "(shaped like its .grad), then forget the bucket: in the last step the "
                      "check calls wait() twice, and the second call has nothing to do.")


@pytest.mark.exercise("BucketedGradSync")
def test_bucketed_grad_sync(impl, rng):
    sizes = tuple(int(v) for v in rng.choice(np.arange(2, 8), size=3, replace=False))
    check_buckets(impl, [
        Case("fixed case, bucket_bytes=100", seed=5, sizes=(3, 4, 2), n=3, steps=3,
             bucket_bytes=100),
        Case("fixed case, bucket_bytes=1", seed=6, sizes=(2, 3, 4), n=2, steps=2, bucket_bytes=1),
        Case("fixed case, one bucket per dtype", seed=7, sizes=(4, 2, 3), n=2, steps=2,
             bucket_bytes=10**6),
        Case("fixed case, parameters 4 and 0 in no bucket", seed=9, sizes=(3, 4, 2), n=2,
             steps=2, bucket_bytes=100, left_out=(4, 0)),
        Case("random case", int(rng.integers(100, 10_000)), sizes, int(rng.integers(1, 4)),
             steps=2, bucket_bytes=int(rng.choice([1, 40, 100, 200, 10**6]))),
    ], "BucketedGradSync")


@pytest.mark.exercise("NoSyncGradSync")
def test_no_sync_grad_sync(impl, rng):
    sizes = tuple(int(v) for v in rng.choice(np.arange(2, 8), size=3, replace=False))
    micro = tuple(int(v) for v in rng.integers(1, 4, size=3))
    check_buckets(impl, [
        Case("fixed case", seed=8, sizes=(3, 4, 2), n=4, steps=3, bucket_bytes=100,
             micro=(3, 1, 2)),
        Case("random case", int(rng.integers(100, 10_000)), sizes, int(rng.integers(3, 5)),
             steps=3, bucket_bytes=int(rng.choice([1, 100, 10**6])), micro=micro),
    ], "NoSyncGradSync")


# ----------------------------------------------------------------------------- the sync objects in use


def _ints(rank: int, k: int) -> torch.Tensor:
    """Rank ``rank``'s data for backward ``k`` of a usage scenario: small integers, in float64,
    so that every sum and mean below is exact."""
    g = torch.Generator().manual_seed(7919 * k + rank)
    return torch.randint(-4, 5, (5,), generator=g).double()


def _pair() -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(3, dtype=torch.float64)),
            nn.Parameter(torch.zeros(2, dtype=torch.float64))]


def _pair_loss(pair: list[nn.Parameter], rank: int, k: int, used=(0, 1)) -> torch.Tensor:
    """A loss whose gradient for parameter 0 is rank's data k[:3], for parameter 1 k[3:]."""
    v = _ints(rank, k)
    parts = [(pair[0] * v[:3]).sum(), (pair[1] * v[3:]).sum()]
    return sum(parts[i] for i in used)


def _pair_mean(ks: list[tuple[int, tuple[int, ...]]], world: int) -> list[torch.Tensor]:
    """The mean over ranks of what the pair's .grad accumulates over backwards (k, used)."""
    out = [torch.zeros(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)]
    for rank in range(world):
        for k, used in ks:
            v = _ints(rank, k)
            for i in used:
                out[i] += v[:3] if i == 0 else v[3:]
    return [t / world for t in out]


class _Driver:
    """A usage scenario's calls to learner code in one rank, each under the kata's rules, with
    what it made (the rank's log: collectives, and marks the scenario leaves)."""

    def __init__(self, impl, log: list, note: Callable[[str], None], label: str) -> None:
        self.impl, self.log, self.note, self.label = impl, log, note, label

    def new(self, cls: str, params: list, buckets: list[list[int]]):
        self.note(f"in `{cls}(params, {buckets})` ({self.label})")
        return _in_window(self.impl, cls, lambda: getattr(self.impl, cls)(params, buckets))

    def call(self, name: str, what: str, run: Callable[[], Any]) -> list[tuple]:
        self.note(f"in {what} ({self.label})")
        start = len(self.log)
        with Recorder(self.log):
            _in_window(self.impl, name, run)
        return self.log[start:]


def _made(events: list[tuple]) -> list[tuple]:
    return [(e[1], e[2], e[3]) for e in events if e[0] == "c10d"]


def _grads(params: list) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


def _expect_made(label: str, what: str, events: list[tuple], want: list[tuple], why: str) -> None:
    if _made(events) != want:
        expected = summary([("c10d", *w) for w in want]) if want else "no collective"
        fail(f"{label}: {what} made {summary(events)}; expected {expected}.\n  {why}")


def _expect_grads(label: str, got: list, want: list[torch.Tensor], hint: str) -> None:
    for i, (have, exp) in enumerate(zip(got, want, strict=True)):
        if have is None:
            fail(f"{label}: parameter {i}'s .grad is None after wait(); expected {describe(exp)}.")
        assert_close(have, exp, f"{label}: parameter {i}'s .grad after wait()", rtol=0, atol=0,
                     hint=hint)


AR5 = ("all_reduce", (5,), "float64")  # one bucket holding a whole pair


def _two_backwards(d: _Driver, rank: int, cls: str) -> dict:
    pair = _pair()
    sync = d.new(cls, pair, [[0, 1]])
    first = d.call("backward", "the first backward", _pair_loss(pair, rank, 1).backward)
    dist.barrier()  # the first backward's buckets are done on every rank (a flat tensor may be reused)
    second = d.call("backward", "the second backward, with no wait() since the first",
                    _pair_loss(pair, rank, 2).backward)
    waited = d.call("wait", "the wait() after both", sync.wait)
    return {"events": [first, second, waited], "grads": _grads(pair)}


def _check_two_backwards(label: str, got: dict, world: int) -> None:
    first, second, waited = got["events"]
    _expect_made(label, "the first backward", first, [AR5],
                 "The one bucket (parameters [0, 1]) goes out once its last gradient is in.")
    _expect_made(label, "the second backward", second, [AR5],
                 "Every backward sends each bucket once its last gradient is in, whether or not "
                 "wait() ran since the one before. Try: have a bucket ready to count again as "
                 "soon as it goes out.")
    _expect_made(label, "wait()", waited, [], "wait() starts no collective: it only waits.")
    _expect_grads(label, got["grads"], _pair_mean([(1, (0, 1)), (2, (0, 1))], world),
                  "each .grad then holds the sum of both backwards' gradients, and wait() must "
                  "leave its mean over ranks: wait for every bucket started since the last "
                  "wait(), and write them back in the order they started (the last holds the "
                  "sums).")


def _two_objects(d: _Driver, rank: int, cls: str) -> dict:
    a, b = _pair(), _pair()
    sync_a = d.new(cls, a, [[1], [0]])
    sync_b = d.new(cls, b, [[0, 1]])
    d.call("backward", "model A's backward", _pair_loss(a, rank, 3).backward)
    d.call("backward", "model B's backward", _pair_loss(b, rank, 4).backward)
    waited_a = d.call("wait", "A's wait()", sync_a.wait)
    waited_b = d.call("wait", "B's wait()", sync_b.wait)
    return {"events": [waited_a, waited_b], "grads": [_grads(a), _grads(b)]}


_OWN_STATE = ("two objects must not share state (each holds its own buckets, counts, started "
              "work and switches): look for anything your classes keep on the class itself "
              "rather than on self.")


def _check_two_objects(label: str, got: dict, world: int) -> None:
    for which, events in zip("AB", got["events"], strict=True):
        _expect_made(label, f"{which}'s wait()", events, [], "wait() starts no collective.")
    for which, grads, k in (("A", got["grads"][0], 3), ("B", got["grads"][1], 4)):
        _expect_grads(f"{label}, model {which}", grads, _pair_mean([(k, (0, 1))], world),
                      f"each object's wait() leaves the mean over ranks in its own model's "
                      f".grad, and touches no other; {_OWN_STATE}")


BIG = 2_000_000  # float32 elements: a bucket whose all_reduce outlasts a tiny one's


def _big_first(d: _Driver, rank: int, cls: str) -> dict:
    small = nn.Parameter(torch.zeros(3))
    big = nn.Parameter(torch.zeros(BIG))
    sync = d.new(cls, [small, big], [[1], [0]])
    wrong = []
    for step in range(3):
        small.grad = big.grad = None
        c = float(rank + 1)
        loss = (small * c).sum() + (big * c).sum()  # big's gradient is accumulated first
        d.call("backward", f"step {step + 1}'s backward", loss.backward)
        d.call("wait", f"step {step + 1}'s wait()", sync.wait)
        want = (1 + dist.get_world_size()) / 2
        wrong.append([None if p.grad is None else int((p.grad != want).sum())
                      for p in (big, small)])
    return {"wrong": wrong}


def _check_big_first(label: str, got: dict, world: int) -> None:
    want = (1 + world) / 2
    for step, counts in enumerate(got["wrong"]):
        for name, size, bad in zip(("parameter 1 (the large bucket, started first)",
                                    "parameter 0 (the tiny bucket, started last)"),
                                   (BIG, 3), counts, strict=True):
            if bad is None:
                fail(f"{label}, step {step + 1}: {name} has no .grad after wait().")
            if bad:
                fail(f"{label}, step {step + 1}: after wait(), {bad} of the {size} elements of "
                     f"{name}'s .grad do not hold the mean over ranks ({want:g}): wait() "
                     "returned while that bucket's all_reduce was still going on (or never "
                     "wrote it back).\n  A work object only tells about its own collective. "
                     "Try: wait() waits for the work of every bucket started since the last "
                     "wait() before it uses that bucket's result.")


def _nested(d: _Driver, rank: int, cls: str) -> dict:
    pair = _pair()
    sync = d.new(cls, pair, [[0, 1]])
    inner, outer, after = (_pair_loss(pair, rank, k) for k in (5, 6, 7))

    def blocks() -> None:
        with sync.no_sync():
            with sync.no_sync():
                inner.backward()
            d.log.append(("mark",))
            outer.backward()

    events = d.call("no_sync", "a no_sync() block inside another", blocks)
    mark = events.index(("mark",))
    last = d.call("backward", "the backward after both blocks closed", after.backward)
    waited = d.call("wait", "wait()", sync.wait)
    return {"events": [events[:mark], events[mark + 1:], last, waited], "grads": _grads(pair)}


def _check_nested(label: str, got: dict, world: int) -> None:
    inner, outer, last, waited = got["events"]
    _expect_made(label, "the backward inside both blocks", inner, [],
                 "While no_sync() is open, backward starts no collective.")
    _expect_made(label, "the backward after the inner block closed, still inside the outer one",
                 outer, [], "Syncing resumes only once the OUTERMOST no_sync() block closes. "
                 "Try: on closing, a block puts back the state it found when it opened (syncing "
                 "may have been off already).")
    _expect_made(label, "the backward after both blocks closed", last, [AR5],
                 "Once every block is closed, the next backward sends the buckets as usual.")
    _expect_made(label, "wait()", waited, [], "wait() starts no collective.")
    _expect_grads(label, got["grads"], _pair_mean([(5, (0, 1)), (6, (0, 1)), (7, (0, 1))], world),
                  "after the blocks, the backward that syncs sends the sums of all three "
                  "backwards; wait() leaves their mean over ranks.")


def _two_no_sync(d: _Driver, rank: int, cls: str) -> dict:
    a, b = _pair(), _pair()
    sync_a = d.new(cls, a, [[0, 1]])
    sync_b = d.new(cls, b, [[1], [0]])
    in_a, in_b, after_a = _pair_loss(a, rank, 8), _pair_loss(b, rank, 9), _pair_loss(a, rank, 10)

    def block() -> None:
        with sync_a.no_sync():
            in_a.backward()
            d.log.append(("mark",))
            in_b.backward()
            d.log.append(("mark",))
            sync_b.wait()

    events = d.call("no_sync", "A's no_sync() block, holding A's backward, then B's backward "
                    "and B's wait()", block)
    first = events.index(("mark",))
    second = events.index(("mark",), first + 1)
    last = d.call("backward", "A's backward after its block closed", after_a.backward)
    d.call("wait", "A's wait()", sync_a.wait)
    return {"events": [events[:first], events[first + 1:second], events[second + 1:], last],
            "grads": [_grads(a), _grads(b)]}


def _check_two_no_sync(label: str, got: dict, world: int) -> None:
    in_a, in_b, waited_b, last = got["events"]
    _expect_made(label, "A's backward inside A's no_sync()", in_a, [],
                 "While no_sync() is open, its object's backward starts no collective.")
    _expect_made(label, "B's backward (B is not in no_sync(), only A is)", in_b,
                 [("all_reduce", (2,), "float64"), ("all_reduce", (3,), "float64")],
                 f"One object's no_sync() pauses that object only. Try: {_OWN_STATE}")
    _expect_made(label, "B's wait()", waited_b, [], "wait() starts no collective.")
    _expect_made(label, "A's backward after its block closed", last, [AR5],
                 "Once the block is closed, the next backward sends the buckets as usual.")
    _expect_grads(f"{label}, model A", got["grads"][0], _pair_mean([(8, (0, 1)), (10, (0, 1))],
                                                                    world),
                  "A's backward after the block sends the sums of both; wait() leaves the mean.")
    _expect_grads(f"{label}, model B", got["grads"][1], _pair_mean([(9, (0, 1))], world),
                  f"B syncs as usual while A is in no_sync(); {_OWN_STATE}")


def _partial(d: _Driver, rank: int, cls: str) -> dict:
    pair = _pair()
    for i, p in enumerate(pair):  # before the learner's hooks: they run first
        p.register_post_accumulate_grad_hook(lambda _, i=i: d.log.append(("acc", i)))
    sync = d.new(cls, pair, [[0, 1]])
    d.call("backward", "step 1's backward", _pair_loss(pair, rank, 11).backward)
    d.call("wait", "step 1's wait()", sync.wait)
    for p in pair:
        p.grad.zero_()
    only_0 = _pair_loss(pair, rank, 12, used=(0,))
    d.call("no_sync", "step 2's no_sync() block, whose backward uses parameter 0 only",
           lambda: _backward_in(sync.no_sync(), only_0))
    synced = d.call("backward", "step 2's backward after the block",
                    _pair_loss(pair, rank, 13).backward)
    d.call("wait", "step 2's wait()", sync.wait)
    step2 = _grads(pair)
    for p in pair:
        p.grad.zero_()
    d.call("backward", "step 3's backward", _pair_loss(pair, rank, 14).backward)
    d.call("wait", "step 3's wait()", sync.wait)
    return {"synced": synced, "grads": [step2, _grads(pair)]}


def _check_partial(label: str, got: dict, world: int) -> None:
    synced = got["synced"]
    _expect_made(f"{label}, step 2", "the backward after the no_sync() block", synced, [AR5],
                 "The bucket goes out once in the backward that syncs.")
    seen = [e[1] for e in synced[:next(k for k, e in enumerate(synced) if e[0] == "c10d")]
            if e[0] == "acc"]
    if sorted(seen) != [0, 1]:
        fail(f"{label}, step 2: in the backward after the no_sync() block, your code started "
             f"the bucket's all_reduce once {'only parameter ' + str(seen[0]) if seen else 'no'}"
             "'s gradient had been accumulated in that backward; the bucket is [0, 1]: it goes "
             "out once both are in.\n  The backward inside no_sync() used parameter 0 only, and "
             "inside no_sync() nothing counts toward a bucket being ready. Try: leave the "
             "bucket bookkeeping untouched while no_sync() is open.")
    _expect_grads(f"{label}, step 2", got["grads"][0],
                  _pair_mean([(12, (0,)), (13, (0, 1))], world),
                  "the backward after the block sends the sums of both micro-batches.")
    _expect_grads(f"{label}, step 3", got["grads"][1], _pair_mean([(14, (0, 1))], world),
                  "a plain step after the no_sync() step: the bucket bookkeeping must be as "
                  "fresh as before.")


def usage_body(scenarios: list, cls: str):
    def body(rank, impl, log, note):
        return [run(_Driver(impl, log, note, label), rank, cls) for label, run, _ in scenarios]
    return body


def check_usage(impl, scenarios: list, cls: str) -> None:
    results = run_ranks(impl, usage_body(scenarios, cls))
    for k, (label, _, check) in enumerate(scenarios):
        for r, per_rank in enumerate(results):
            check(f"rank {r}, {label}", per_rank[k], WORLD)


@pytest.mark.exercise("BucketedGradSync")
def test_bucketed_grad_sync_in_use(impl):
    check_usage(impl, [
        ("two backwards, then one wait()", _two_backwards, _check_two_backwards),
        ("two objects (A: buckets [[1], [0]], B: [[0, 1]]): A's backward, B's backward, A's "
         "wait(), B's wait()", _two_objects, _check_two_objects),
        (f"a bucket of {BIG} float32 elements started first, a tiny one last", _big_first,
         _check_big_first),
    ], "BucketedGradSync")


@pytest.mark.exercise("NoSyncGradSync")
def test_no_sync_grad_sync_in_use(impl):
    check_usage(impl, [
        ("nested no_sync() blocks", _nested, _check_nested),
        ("two objects (A: buckets [[0, 1]], B: [[1], [0]])", _two_no_sync, _check_two_no_sync),
        ("a micro-batch inside no_sync() that leaves parameter 1 unused", _partial,
         _check_partial),
        ("two objects (A: buckets [[1], [0]], B: [[0, 1]]): A's backward, B's backward, A's "
         "wait(), B's wait()", _two_objects, _check_two_objects),
    ], "NoSyncGradSync")
