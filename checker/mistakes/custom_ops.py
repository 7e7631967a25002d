"""Known mistakes for the kata custom_ops.

Within an exercise, the mistake that only a compile can reveal comes last: the diagnosis
re-runs the failing check with each earlier mistake first, and those fail before compiling.
"""

from __future__ import annotations

import numpy as np
import torch

from checker.mistakes import mistake


@mistake("define_sqdist", "mutates_args=\"unknown\" was declared: that marks every input as written (Tensor(a!)), which the kernel never does.")
def mutates_unknown(namespace):
    @torch.library.custom_op(f"{namespace}::sqdist", mutates_args="unknown")
    def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xn, yn = x.detach().numpy(), y.detach().numpy()
        return torch.from_numpy(((xn[:, None, :] - yn[None, :, :]) ** 2).sum(-1)).to(x.dtype)

    return sqdist


@mistake("define_sqdist", "The Euclidean distance was returned instead of its square.")
def distance_not_squared(namespace):
    @torch.library.custom_op(f"{namespace}::sqdist", mutates_args=())
    def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xn, yn = x.detach().numpy(), y.detach().numpy()
        return torch.from_numpy(np.sqrt(((xn[:, None, :] - yn[None, :, :]) ** 2).sum(-1))).to(x.dtype)

    return sqdist


@mistake("define_sqdist", "The kernel computed in float64 and returned that: a float32 input must give a float32 result.")
def always_float64(namespace):
    @torch.library.custom_op(f"{namespace}::sqdist", mutates_args=())
    def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xn = x.detach().numpy().astype(np.float64)
        yn = y.detach().numpy().astype(np.float64)
        return torch.from_numpy(((xn[:, None, :] - yn[None, :, :]) ** 2).sum(-1))

    return sqdist


@mistake("register_sqdist_fake", "The fake impl ran the real NumPy kernel: fake and meta tensors have no data to read.")
def fake_runs_kernel(op):
    @op.register_fake
    def _(x, y):
        xn, yn = x.numpy(), y.numpy()
        return torch.from_numpy(((xn[:, None, :] - yn[None, :, :]) ** 2).sum(-1))


@mistake("register_sqdist_fake", "The fake output came from torch.empty(n, m): the default dtype and device, not the inputs'.")
def fake_default_dtype(op):
    @op.register_fake
    def _(x, y):
        return torch.empty(x.shape[0], y.shape[0])


@mistake("register_sqdist_fake", "The fake output was (n, n), as if x were compared with itself; it is (n, m).")
def fake_square_shape(op):
    @op.register_fake
    def _(x, y):
        return x.new_empty(x.shape[0], x.shape[0])


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


@mistake("register_sqdist_autograd", "The factor 2 of d/dx (x - y)**2 was dropped.")
def grad_without_two(op):
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return x * g.sum(1, keepdim=True) - g @ y, y * g.sum(0).unsqueeze(1) - g.t() @ x

    op.register_autograd(backward, setup_context=_setup)


@mistake("register_sqdist_autograd", "y's gradient used the upstream gradient untransposed: out is (n, m), so y (m, d) needs g.t().")
def y_grad_untransposed(op):
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return 2 * (x * g.sum(1, keepdim=True) - g @ y), 2 * (y * g.sum(1).unsqueeze(1)[: y.shape[0]] - (g @ x[: g.shape[1]]))

    op.register_autograd(backward, setup_context=_setup)


@mistake("register_sqdist_autograd", "backward was written in NumPy: right values eagerly, but torch.compile traces it with fake tensors, which have no data.")
def numpy_backward(op):
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        xn, yn, gn = x.detach().numpy(), y.detach().numpy(), g.detach().numpy()
        gx = 2 * (xn * gn.sum(1, keepdims=True) - gn @ yn)
        gy = 2 * (yn * gn.sum(0)[:, None] - gn.T @ xn)
        return torch.from_numpy(gx), torch.from_numpy(gy)

    op.register_autograd(backward, setup_context=_setup)


@mistake("define_clip_", "np.clip without out= returns a NEW array: the result was bound to a name and x never changed.")
def clip_without_out(namespace):
    @torch.library.custom_op(f"{namespace}::clip_", mutates_args={"x"})
    def clip_(x: torch.Tensor, lo: float, hi: float) -> None:
        xn = x.detach().numpy()
        xn = np.clip(xn, lo, hi)  # noqa: F841 — the mistake: a new array, x is untouched

    return clip_


@mistake("define_clip_", "The mutation was not declared (mutates_args=()): the schema says x is only read, so compilers may drop or reorder the write.")
def clip_undeclared(namespace):
    @torch.library.custom_op(f"{namespace}::clip_", mutates_args=())
    def clip_(x: torch.Tensor, lo: float, hi: float) -> None:
        xn = x.detach().numpy()
        np.clip(xn, lo, hi, out=xn)

    clip_.register_fake(lambda x, lo, hi: None)
    return clip_


@mistake("define_clip_", "x was made contiguous first: for a strided x that is a copy, and the copy got clipped, not x.")
def clip_contiguous_copy(namespace):
    @torch.library.custom_op(f"{namespace}::clip_", mutates_args={"x"})
    def clip_(x: torch.Tensor, lo: float, hi: float) -> None:
        xn = x.detach().contiguous().numpy()
        np.clip(xn, lo, hi, out=xn)

    clip_.register_fake(lambda x, lo, hi: None)
    return clip_


@mistake("define_clip_", "The mutated x was also returned: a custom op's output may not alias an input (an in-place op returns None).")
def clip_returns_x(namespace):
    @torch.library.custom_op(f"{namespace}::clip_", mutates_args={"x"})
    def clip_(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        xn = x.detach().numpy()
        np.clip(xn, lo, hi, out=xn)
        return x

    clip_.register_fake(lambda x, lo, hi: x)
    return clip_
