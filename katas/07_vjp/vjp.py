"""Kata 07 — vjp: backward computes vector–Jacobian products, never Jacobians.

For y = f(x), autograd never builds the Jacobian J = dy/dx. Given a cotangent v shaped like
y (the gradient of some scalar loss with respect to y), each op's backward returns

    v^T J        (shaped like x: the gradient of the same loss with respect to x)

Write those vector–Jacobian products (VJPs) by hand with ordinary tensor algebra, then use a
VJP as a building block: assemble a full Jacobian from VJPs, and get a Jacobian–vector
product (JVP) out of two VJPs.
Every function returns new tensors and leaves its arguments as they were.

Rules: no autograd in your code. A backward pass your functions start raises, whatever
starts it (``Tensor.backward``, ``torch.autograd.grad``, ``torch.func``,
``torch.autograd.functional``, the engine itself), and so do forward AD and torch's own
backward kernels (``_softmax_backward_data``, ``native_layer_norm_backward``). The
hand-written VJPs run under ``torch.no_grad()``.
The checks compare you with torch's own autograd in float64, with random
cotangents. Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def linear_vjp(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VJP of ``y = x @ w + b``: return ``(grad_x, grad_w, grad_b)``.

    Shapes: x is (n, k) or (batch, n, k); w is (k, m), shared by every batch entry;
    b is any shape that broadcasts to y's shape (n, m) / (batch, n, m), e.g. (m,), (1, m),
    (n, 1), () or (batch, 1, m). ``grad_out`` is shaped like y. Each returned gradient must
    have exactly the shape of its input.

    Example:
        >>> x, w, b = torch.ones(2, 3), torch.ones(3, 4), torch.zeros(4)
        >>> gx, gw, gb = linear_vjp(x, w, b, torch.ones(2, 4))
        >>> gx.shape, gw.shape, gb.shape, gb
        (torch.Size([2, 3]), torch.Size([3, 4]), torch.Size([4]), tensor([2., 2., 2., 2.]))
    """
    raise NotImplementedError("linear_vjp: see `kata lesson`, or `kata hint` for a nudge")


def reduce_vjp(
    grad_out: torch.Tensor,
    in_shape: tuple[int, ...],
    dim: int | tuple[int, ...] | None,
    keepdim: bool,
    mean: bool,
) -> torch.Tensor:
    """VJP of ``y = x.sum(dim, keepdim)`` (or ``x.mean(dim, keepdim)`` when ``mean``).

    ``x`` has shape ``in_shape``; ``dim`` is one dim, a tuple of dims (either may be negative)
    or None (every dim, with keepdim False). ``grad_out`` is shaped like y. Return grad_x,
    shaped like x.

    Example:
        >>> reduce_vjp(torch.tensor([1.0, 2.0]), (2, 3), dim=1, keepdim=False, mean=True)
        tensor([[0.3333, 0.3333, 0.3333],
                [0.6667, 0.6667, 0.6667]])
    """
    raise NotImplementedError("reduce_vjp: see `kata lesson`, or `kata hint` for a nudge")


def softmax_vjp(y: torch.Tensor, grad_out: torch.Tensor, dim: int) -> torch.Tensor:
    """VJP of ``y = torch.softmax(x, dim)``, from the saved OUTPUT ``y`` (x is not given).

    ``y`` and ``grad_out`` have the same shape; ``dim`` may be negative. Return grad_x.

    Example:
        >>> y = torch.tensor([0.5, 0.5])
        >>> softmax_vjp(y, torch.tensor([1.0, 0.0]), dim=0)
        tensor([ 0.2500, -0.2500])
    """
    raise NotImplementedError("softmax_vjp: see `kata lesson`, or `kata hint` for a nudge")


def layer_norm_vjp(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...],
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VJP of ``torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)``.

    The statistics (mean and biased variance) are taken over the trailing
    ``len(normalized_shape)`` dims of x; weight and bias have shape ``normalized_shape``.
    Return ``(grad_x, grad_weight, grad_bias)``, each shaped like its input.

    Example:
        >>> x = torch.tensor([[1.0, 3.0]])
        >>> gx, gw, gb = layer_norm_vjp(x, (2,), torch.ones(2), torch.zeros(2), 0.0,
        ...                             torch.tensor([[1.0, 0.0]]))
        >>> gx, gw, gb
        (tensor([[0., 0.]]), tensor([-1., 0.]), tensor([1., 0.]))
    """
    raise NotImplementedError("layer_norm_vjp: see `kata lesson`, or `kata hint` for a nudge")


def jacobian_from_backward(
    y: torch.Tensor, x: torch.Tensor, backward: Callable[[torch.Tensor], None]
) -> torch.Tensor:
    """The full Jacobian dy/dx, shape ``y.shape + x.shape``, assembled from VJPs.

    ``y`` is a non-scalar output computed from the leaf ``x``. You may not call
    ``y.backward`` yourself; ``backward(v)`` does it for you: it runs
    ``y.backward(v, retain_graph=True, inputs=[x])``, so ``v`` must be shaped like y and the
    resulting v^T J is ACCUMULATED into ``x.grad`` (which may already hold a stale gradient).
    Call ``backward`` once per element of y — no more.

    Example (y = 2 * x, x of shape (2,)):
        >>> x = torch.tensor([1., 2.], requires_grad=True)
        >>> y = 2 * x
        >>> def backward(v):
        ...     y.backward(v, retain_graph=True, inputs=[x])
        >>> jacobian_from_backward(y, x, backward)
        tensor([[2., 0.],
                [0., 2.]])
    """
    raise NotImplementedError("jacobian_from_backward: see `kata lesson`, or `kata hint` for a nudge")


def jvp_by_double_vjp(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    u: torch.Tensor,
    vjp: Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The Jacobian–vector product J u of f at x (shaped like f(x)), from two VJPs.

    ``u`` is shaped like x. ``vjp(fn, primal, cotangent)`` is the only differentiation you
    get: it returns ``cotangent^T (d fn / d primal)`` at ``primal`` for any ``fn`` made of
    torch ops, one that calls ``vjp`` itself included; ``cotangent`` must be shaped like
    ``fn(primal)``. Call ``vjp`` exactly twice, and never build the Jacobian.

    Example (f(x) = A @ x, so J = A and the answer is A @ u):
        >>> A = torch.tensor([[1., 2.], [3., 4.]])
        >>> def f(x):
        ...     return A @ x
        >>> def vjp(fn, primal, cotangent):
        ...     primal = primal.detach().requires_grad_()
        ...     return torch.autograd.grad(fn(primal), primal, cotangent, create_graph=True)[0]
        >>> x, u = torch.tensor([1., 1.]), torch.tensor([1., 0.])
        >>> jvp_by_double_vjp(f, x, u, vjp)
        tensor([1., 3.])
    """
    raise NotImplementedError("jvp_by_double_vjp: see `kata lesson`, or `kata hint` for a nudge")
