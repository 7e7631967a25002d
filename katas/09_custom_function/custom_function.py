"""Kata 09 — custom_function: write your own torch.autograd.Function.

A Function is a node you add to autograd's graph yourself: you say how to compute the output
(forward), what to keep for later (setup_context) and how to turn the output's gradient into
the inputs' gradients (backward). Each class below is one exercise, in the modern form (a
``forward`` without ctx, then ``setup_context``) that also works under torch.func; `kata
lesson` shows it. Callers use ``MyFn.apply(...)``; every Function here must give the
gradients torch's own ops give, under ``.backward()`` and under ``torch.func`` alike, and
returns new tensors without modifying its inputs.

Rules: torch.logsumexp (and Tensor.logsumexp, torch.special.logsumexp, and logcumsumexp,
whose last entry is the same thing) are off-limits — LogSumExp is yours to make stable. Everything else in torch is fine.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch
from torch.autograd import Function


class StraightThroughRound(Function):
    """Round in the forward pass, pretend to be the identity in the backward pass.

    round() has derivative 0 almost everywhere, which stops all learning through it. The
    straight-through estimator (used for quantisation-aware training) keeps torch.round(x) as
    the value but passes the incoming gradient through unchanged.

    Shapes: x of any shape -> same shape.

    Example:
        >>> x = torch.tensor([0.4, 1.6, -2.7], requires_grad=True)
        >>> y = StraightThroughRound.apply(x)      # tensor([ 0.,  2., -3.])
        >>> y.backward(torch.tensor([1.0, 2.0, 3.0]))
        >>> x.grad
        tensor([1., 2., 3.])
        >>> type(y.grad_fn).__name__
        'StraightThroughRoundBackward'
    """

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("StraightThroughRound.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        raise NotImplementedError("StraightThroughRound.setup_context: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("StraightThroughRound.backward: see `kata lesson`, or `kata hint` for a nudge")


class OutputSavingSigmoid(Function):
    """sigmoid(x) whose backward needs nothing but its OUTPUT y: the one tensor it saves.

    - The single saved tensor is y itself (not x, not a copy), and backward recomputes no exp.
    - If y is modified in place before backward, backward raises autograd's RuntimeError about
      a tensor "modified by an inplace operation" instead of using the stale values.
    - backward can itself be differentiated (gradgradcheck passes), as torch.sigmoid's can.

    Shapes: x of any shape -> same shape.

    Example:
        >>> x = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
        >>> y = OutputSavingSigmoid.apply(x)       # tensor([0.5000, 0.8808])
        >>> torch.equal(y.grad_fn.saved_tensors[0], y)   # what was saved: the output
        True
        >>> y.sum().backward(); x.grad
        tensor([0.2500, 0.1050], dtype=torch.float64)
    """

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("OutputSavingSigmoid.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        raise NotImplementedError("OutputSavingSigmoid.setup_context: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("OutputSavingSigmoid.backward: see `kata lesson`, or `kata hint` for a nudge")


class LogSumExp(Function):
    """log(sum(exp(x), dim)), stable for huge and tiny values, reducing ``dim`` away.

    Finite and exact for entries of any size: exp(1000) is inf and exp(-1000) is 0 even in
    float64, so a plain log(sum(exp)) fails the checks.
    Entries may be -inf (masked out); a whole slice never is. ``dim`` may be negative.
    backward returns one gradient per forward input: the one for ``dim`` is None.

    Shapes: x (d0, ..., dk), dim -> x's shape without dimension dim.

    Example:
        >>> x = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]], dtype=torch.float64)
        >>> LogSumExp.apply(x, 1)
        tensor([1000.6931, -999.3069], dtype=torch.float64)
        >>> torch.log(torch.exp(x).sum(1))          # the naive formula
        tensor([inf, -inf], dtype=torch.float64)
    """

    @staticmethod
    def forward(x: torch.Tensor, dim: int) -> torch.Tensor:
        raise NotImplementedError("LogSumExp.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        raise NotImplementedError("LogSumExp.setup_context: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        raise NotImplementedError("LogSumExp.backward: see `kata lesson`, or `kata hint` for a nudge")


class MatMul(Function):
    """a @ b for 2-D a (n, k) and b (k, m), whose backward computes only what is needed.

    backward returns ``(grad_a, grad_b)``; an entry is None exactly when autograd does not
    need that input's gradient (e.g. b does not require grad), and then costs no matmul.
    If a or b is modified in place before backward, backward raises instead of using stale
    values.

    Shapes: a (n, k), b (k, m) -> (n, m).

    Example:
        >>> a = torch.randn(2, 3, requires_grad=True); b = torch.randn(3, 4)  # b is a constant
        >>> y = MatMul.apply(a, b)
        >>> grad_a, grad_b = y.grad_fn.apply(torch.ones(2, 4))  # calls your backward directly
        >>> grad_a.shape, grad_b
        (torch.Size([2, 3]), None)
    """

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("MatMul.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        raise NotImplementedError("MatMul.setup_context: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        raise NotImplementedError("MatMul.backward: see `kata lesson`, or `kata hint` for a nudge")


class MaxWithOneHot(Function):
    """The max along ``dim`` and a one-hot float mask of where it is (the argmax).

    The mask has x's shape and dtype: 1.0 at the argmax of each slice along ``dim`` (the
    FIRST maximal element when several tie, as torch.argmax picks), 0.0 elsewhere. It is
    data about the input: it does not require grad and has no grad_fn, while ``values``
    does. x's gradient is the one ``x.max(dim).values`` would give it.

    Shapes: x (d0, ..., dk), dim -> (values: x's shape without dim, onehot: x's shape).

    Example:
        >>> x = torch.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
        >>> values, onehot = MaxWithOneHot.apply(x, 1)
        >>> values, onehot
        (tensor([5., 7.], grad_fn=<MaxWithOneHotBackward>), tensor([[0., 1., 0.],
                [1., 0., 0.]]))
        >>> onehot.requires_grad
        False
        >>> values.backward(torch.tensor([10.0, 20.0])); x.grad
        tensor([[ 0., 10.,  0.],
                [20.,  0.,  0.]])
    """

    @staticmethod
    def forward(x: torch.Tensor, dim: int):
        raise NotImplementedError("MaxWithOneHot.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        raise NotImplementedError("MaxWithOneHot.setup_context: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor, grad_onehot: torch.Tensor):
        raise NotImplementedError("MaxWithOneHot.backward: see `kata lesson`, or `kata hint` for a nudge")


class Softplus(Function):
    """softplus(x) = log(1 + exp(x)), stable, whose backward can itself be differentiated.

    Finite and exact for entries of any size (x = 800 gives 800, not inf). Second derivatives
    must be right too: with ``create_graph=True``, under ``gradgradcheck`` and under
    ``torch.func.grad(torch.func.grad(...))``.

    Shapes: x of any shape -> same shape.

    Example:
        >>> x = torch.tensor([0.0, 800.0], dtype=torch.float64, requires_grad=True)
        >>> Softplus.apply(x)
        tensor([6.9315e-01, 8.0000e+02], dtype=torch.float64,
               grad_fn=<SoftplusBackward>)
        >>> (g,) = torch.autograd.grad(Softplus.apply(x).sum(), x, create_graph=True)
        >>> g                                      # a gradient with a graph of its own
        tensor([0.5000, 1.0000], dtype=torch.float64, grad_fn=<...>)
        >>> torch.autograd.grad(g.sum(), x)
        (tensor([0.2500, 0.0000], dtype=torch.float64),)
    """

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Softplus.forward: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        raise NotImplementedError("Softplus.setup_context: see `kata lesson`, or `kata hint` for a nudge")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("Softplus.backward: see `kata lesson`, or `kata hint` for a nudge")
