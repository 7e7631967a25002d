"""Kata 20 — compile_guards: when torch.compile reuses a graph, and when it recompiles.

torch.compile (dynamo) turns a Python function into a graph the first time it runs, and
stores it with *guards*: cheap checks on the inputs (sizes, dtypes, the values of Python
scalars, ...) that say when the graph may be reused. A call whose inputs fail every stored
graph's guards compiles a new graph — a recompile. Too many recompiles cost seconds each, and
after ``torch._dynamo.config.recompile_limit`` (8) graphs dynamo gives up and runs eagerly.

Here you predict recompiles, and then write code that avoids them.
Rules: ``torch.compile`` and ``torch._dynamo.optimize`` are off-limits inside your functions:
predict and prepare the inputs yourself — the checks do the compiling (with a counting
backend, never inductor) and count it. Run `kata check` to judge this file, `kata hint` when
stuck.
"""

from __future__ import annotations

import torch
import torch._dynamo


def predict_compiles(shapes: list[tuple[int, ...]], dynamic: bool | None, limit: int = 8) -> int:
    """How many times ``torch.compile(f, dynamic=dynamic)`` compiles ``f`` over these calls.

    ``f(x) = x.sin() + x.sum()`` is called once per shape in ``shapes``, in order, with a
    float tensor of that shape, in a fresh process. Nothing in ``f`` constrains the sizes, so
    only dynamo's rules for sizes decide (`kata lesson`: dynamic=False, True and None). All
    shapes of one sequence have the same number of dims, and the sizes within one shape are
    distinct (so no two dims are ever unified). ``limit`` is
    ``torch._dynamo.config.recompile_limit`` during the calls. Return the number of graphs
    compiled, an int >= 0 (0 for no calls).

    Example:
        >>> predict_compiles([(3, 4), (5, 4), (6, 4)], dynamic=False)
        3
        >>> predict_compiles([(3, 4), (5, 4), (6, 4)], dynamic=None)
        2
        >>> predict_compiles([(3, 4), (1, 4), (6, 4)], dynamic=True)
        2
    """
    raise NotImplementedError("predict_compiles: see `kata lesson`, or `kata hint` for a nudge")


def mark_batch_dynamic(x: torch.Tensor) -> torch.Tensor:
    """Mark dim 0 (the batch) of ``x`` dynamic, and only that dim; return ``x``.

    The checks pass every batch through this function before calling a compiled function
    with the default ``dynamic=None``. With your mark, batches of any size >= 2 must share
    ONE graph (no static first compile, no recompile), while a change of any other dim still
    recompiles (those dims stay specialised).

    Example:
        >>> from torch._dynamo.testing import CompileCounter
        >>> torch.compiler.reset()
        >>> counter = CompileCounter()                # counts graphs, compiles nothing
        >>> fn = torch.compile(lambda x: (x * 2).sum(-1), backend=counter)
        >>> for b in (5, 3, 7):
        ...     _ = fn(mark_batch_dynamic(torch.randn(b, 10)))
        >>> counter.frame_count
        1
    """
    raise NotImplementedError("mark_batch_dynamic: see `kata lesson`, or `kata hint` for a nudge")


def hparams_as_tensors(hparams: dict, like: torch.Tensor) -> dict:
    """The same hyper-parameters, with every Python float turned into a 0-dim tensor.

    So that a compiled function taking these hyper-parameters never recompiles when a float
    changes value, whatever ``dynamic`` says. Floats become new 0-dim tensors with
    ``like``'s dtype and device; every other value — ints (used as sizes) and bools (used in
    ``if``) — stays exactly as it is. Returns a new dict; ``hparams`` is left unchanged.

    Example:
        >>> hparams_as_tensors({"lr": 0.1, "groups": 4, "nesterov": True}, torch.zeros(3, dtype=torch.float64))
        {'lr': tensor(0.1000, dtype=torch.float64), 'groups': 4, 'nesterov': True}
    """
    raise NotImplementedError("hparams_as_tensors: see `kata lesson`, or `kata hint` for a nudge")


def clip_rows(x: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale down every row of ``x`` (shape (n, d)) whose L2 norm exceeds ``max_norm``.

    Rows with norm <= max_norm (a zero row included) are returned unchanged; longer rows are
    scaled to norm exactly ``max_norm``. Returns a new tensor of x's shape and dtype. The
    first version below is correct, but dynamo must break the graph in it. Write it so that
    ``torch._dynamo.explain(clip_rows)(x, max_norm)`` reports ONE graph and ZERO breaks::

        lengths = x.norm(dim=1, keepdim=True)
        if (lengths > max_norm).any():
            x = torch.stack([r * max_norm / n if n > max_norm else r for r, n in zip(x, lengths)])
        return x

    Example:
        >>> clip_rows(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), max_norm=1.0)
        tensor([[0.6000, 0.8000],
                [0.3000, 0.4000]])
    """
    raise NotImplementedError("clip_rows: see `kata lesson`, or `kata hint` for a nudge")


def run_locked(step, batches: list[torch.Tensor], lrs: list[float]) -> list[torch.Tensor]:
    """Call the compiled ``step(x, lr)`` once per batch, in order; return the outputs.

    ``step`` wraps ``torch.compile(fn)`` (default ``dynamic=None``) and has never run. The
    batches have shapes (B_i, F) with different B_i >= 2, and every ``lrs[i]`` differs. Run it
    the way a production loop should: the FIRST call (the warm-up, the only compile) under
    the default stance, and every later call under
    ``torch.compiler.set_stance("fail_on_recompile")``, so that a recompile would raise
    instead of silently costing seconds. The stance must be back to the default when you
    return, even when a call raises. The outputs must equal ``fn(batches[i], lrs[i])``, and
    ``step`` refuses an lr that is not a tensor.

    Example:
        >>> from torch._dynamo.testing import CompileCounter
        >>> torch.compiler.reset()
        >>> counter = CompileCounter()
        >>> step = torch.compile(lambda x, lr: x * lr, backend=counter)
        >>> outs = run_locked(step, [torch.randn(5, 10), torch.randn(3, 10)], [0.1, 0.2])
        >>> len(outs), counter.frame_count
        (2, 1)
    """
    raise NotImplementedError("run_locked: see `kata lesson`, or `kata hint` for a nudge")
