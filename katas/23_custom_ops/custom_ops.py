"""Kata 23 — custom_ops: a NumPy kernel made into a real PyTorch operator with torch.library.

Code PyTorch cannot see into (a C library, a hand-written kernel, NumPy for autograd)
defeats the subsystems that trace or differentiate: torch.compile breaks its graph around
opaque native code, export and functionalisation cannot look inside, and autograd has no
derivative for it. (torch.compile does trace plain NumPy calls; the ops in this kata are
still opaque, because a custom op's kernel is never traced.) ``torch.library``
makes such code a real operator in the dispatcher, ``namespace::name``, with a schema, and
you supply the pieces each subsystem needs (`kata lesson` names them).
``torch.library.opcheck`` tests that the pieces agree with each other; the checks run it.

Every function here takes the op's ``namespace``, or the op object itself, so the checks
can define fresh ops as often as they like. (Defining ``custom_op`` with the same name again
in one process does not fail in 2.13: the new definition silently replaces the old one,
which is exactly why tests should not reuse names.)
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import numpy as np  # noqa: F401 — your kernels use it
import torch


def define_sqdist(namespace: str):
    """Define and return the op ``{namespace}::sqdist(Tensor x, Tensor y) -> Tensor``.

    ``x`` is (n, d), ``y`` is (m, d); the result is (n, m) with
    ``out[i, j] = sum_k (x[i, k] - y[j, k]) ** 2``, in the inputs' dtype, on x's device.
    Compute it with NumPy (that is the point: a kernel PyTorch cannot look into). Declare
    honestly what it mutates: nothing.

    Example:
        >>> sqdist = define_sqdist("mylib")
        >>> sqdist(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
        tensor([[1.],
                [1.]])
        >>> torch.ops.mylib.sqdist(torch.zeros(1, 2), torch.ones(3, 2)).shape
        torch.Size([1, 3])
    """
    raise NotImplementedError("define_sqdist: see `kata lesson`, or `kata hint` for a nudge")


def register_sqdist_fake(op) -> None:
    """Register the fake ("meta") implementation of a sqdist op like the one above.

    A fake impl receives tensors without data (meta or fake tensors, possibly with symbolic
    sizes) and returns an empty tensor of the right shape, dtype and device. It must never
    read values.

    Example:
        >>> sqdist = define_sqdist("doc_fake")
        >>> register_sqdist_fake(sqdist)
        >>> sqdist(torch.empty(4, 3, device="meta"), torch.empty(5, 3, device="meta")).shape
        torch.Size([4, 5])
    """
    raise NotImplementedError("register_sqdist_fake: see `kata lesson`, or `kata hint` for a nudge")


def register_sqdist_autograd(op) -> None:
    """Register the backward of a sqdist op (which already has a kernel and a fake impl).

    Afterwards the op is differentiable in x and y, in float64 to gradcheck's precision,
    eagerly and inside torch.compile, which traces the backward with fake tensors (no
    data: NumPy cannot run on them). Returns None.

    Example:
        >>> sqdist = define_sqdist("doc_autograd")
        >>> register_sqdist_fake(sqdist)
        >>> register_sqdist_autograd(sqdist)
        >>> x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        >>> y = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
        >>> torch.autograd.gradcheck(sqdist, (x, y))
        True
    """
    raise NotImplementedError("register_sqdist_autograd: see `kata lesson`, or `kata hint` for a nudge")


def define_clip_(namespace: str):
    """Define and return ``{namespace}::clip_(Tensor(a!) x, float lo, float hi) -> ()``, in place.

    Clamp x's values into [lo, hi] in x's own memory (x stays the same tensor, on the same
    storage), with a NumPy kernel, and return None. x may be non-contiguous. The op's schema
    tells the truth about the mutation, so that it works inside
    ``torch.compile(fullgraph=True)``. (An op that returns nothing needs no fake impl:
    torch.library derives one. Registering one does no harm.)

    Example:
        >>> clip_ = define_clip_("mylib2")
        >>> x = torch.tensor([-2.0, 0.5, 3.0])
        >>> clip_(x, -1.0, 1.0)
        >>> x
        tensor([-1.0000,  0.5000,  1.0000])
    """
    raise NotImplementedError("define_clip_: see `kata lesson`, or `kata hint` for a nudge")


def define_ops(namespace: str) -> dict:
    """Already written: every piece above, wired together — ``{"sqdist": op, "clip_": op}``.

    For your own experiments, e.g. ``torch.library.opcheck(define_ops("try1")["sqdist"], (x, y))``.
    """
    sqdist = define_sqdist(namespace)
    register_sqdist_fake(sqdist)
    register_sqdist_autograd(sqdist)
    return {"sqdist": sqdist, "clip_": define_clip_(namespace)}
