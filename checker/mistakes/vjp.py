"""Known mistakes for the kata vjp."""

from __future__ import annotations

import torch

from checker.mistakes import mistake


def _unbroadcast(grad, shape):
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for d, size in enumerate(shape):
        if size == 1 and grad.shape[d] != 1:
            grad = grad.sum(d, keepdim=True)
    return grad


# ----------------------------------------------------------------------------- linear_vjp


@mistake("linear_vjp", "Transposed matmul VJP: grad_w written as grad_out.T @ x, which is dW transposed; the VJP of x @ w for w is x.T @ grad_out.")
def transposed_weight_grad(x, w, b, grad_out):
    k, m = w.shape
    grad_w = grad_out.reshape(-1, m).T @ x.reshape(-1, k)
    return grad_out @ w.T, grad_w, _unbroadcast(grad_out, b.shape)


@mistake("linear_vjp", "The bias gradient was summed over the first dim only, without reducing to b's own shape (keepdim where b had size 1).")
def bias_summed_over_dim0(x, w, b, grad_out):
    k, m = w.shape
    grad_w = x.reshape(-1, k).T @ grad_out.reshape(-1, m)
    return grad_out @ w.T, grad_w, grad_out.sum(0)


@mistake("linear_vjp", "w is shared by every batch entry, but its gradient was taken from the first entry only instead of summed over the batch.")
def weight_grad_first_batch_entry(x, w, b, grad_out):
    x2 = x if x.dim() == 2 else x[0]
    g2 = grad_out if grad_out.dim() == 2 else grad_out[0]
    return grad_out @ w.T, x2.T @ g2, _unbroadcast(grad_out, b.shape)


# ----------------------------------------------------------------------------- reduce_vjp


def _expand_back(grad_out, in_shape, dim, keepdim):
    n = len(in_shape)
    dims = tuple(range(n)) if dim is None else (dim % n,) if isinstance(dim, int) else tuple(d % n for d in dim)
    if not keepdim:
        for d in sorted(dims):
            grad_out = grad_out.unsqueeze(d)
    return grad_out.expand(in_shape), dims


def _count(in_shape, dims):
    """How many elements were reduced into each output."""
    count = 1
    for d in dims:
        count *= in_shape[d]
    return count


@mistake("reduce_vjp", "The mean was differentiated like the sum: the 1/count factor was left out.")
def mean_as_sum(grad_out, in_shape, dim, keepdim, mean):
    return _expand_back(grad_out, in_shape, dim, keepdim)[0]


@mistake("reduce_vjp", "The mean's gradient was divided by x.numel() instead of the number of elements reduced into each output.")
def mean_divides_by_numel(grad_out, in_shape, dim, keepdim, mean):
    grad, _ = _expand_back(grad_out, in_shape, dim, keepdim)
    if mean:
        numel = 1
        for s in in_shape:
            numel *= s
        grad = grad / numel
    return grad


@mistake("reduce_vjp", "The reduced dims were put back as size 1 but never expanded: broadcastable to x is not x's shape; a gradient has its input's exact shape.")
def not_expanded(grad_out, in_shape, dim, keepdim, mean):
    grad, dims = _expand_back(grad_out, in_shape, dim, keepdim)
    grad = grad_out.reshape([1 if d in dims else s for d, s in enumerate(in_shape)])
    return grad / _count(in_shape, dims) if mean else grad


@mistake("reduce_vjp", "The reduced dims were put back in the order given, and negative dims as they are: unsqueeze(2) then unsqueeze(0) is not unsqueeze(0) then unsqueeze(2).")
def dims_in_given_order(grad_out, in_shape, dim, keepdim, mean):
    dims = tuple(range(len(in_shape))) if dim is None else (dim,) if isinstance(dim, int) else dim
    grad = grad_out
    if not keepdim:
        for d in dims:
            grad = grad.unsqueeze(d)
    grad = grad.expand(in_shape)
    return grad / _count(in_shape, dims) if mean else grad


# ----------------------------------------------------------------------------- softmax_vjp


@mistake("softmax_vjp", "Softmax VJP without the subtraction term: y * grad_out treats softmax as elementwise, but each output depends on every input along dim.")
def no_subtraction(y, grad_out, dim):
    return y * grad_out


@mistake("softmax_vjp", "The subtracted term was sum(grad_out) instead of sum(grad_out * y): the Jacobian's off-diagonal -y_i y_j weights were lost.")
def unweighted_subtraction(y, grad_out, dim):
    return y * (grad_out - grad_out.sum(dim, keepdim=True))


@mistake("softmax_vjp", "The sum ran over the last dim instead of `dim`.")
def sum_over_last_dim(y, grad_out, dim):
    return y * (grad_out - (grad_out * y).sum(-1, keepdim=True))


@mistake("softmax_vjp", "Autograd inside the VJP (torch.autograd.grad): that is what the checks compare with, and it is off-limits here.")
def autograd_inside(y, grad_out, dim):
    x = y.log().requires_grad_(True)
    return torch.autograd.grad(torch.softmax(x, dim), x, grad_out)[0]


@mistake("softmax_vjp", "Computed in the cotangent's own memory (grad_out -= ...; grad_out *= y): the caller's gradient, which other nodes may still read, is overwritten.")
def cotangent_in_place(y, grad_out, dim):
    grad_out -= (grad_out * y).sum(dim, keepdim=True)
    return grad_out.mul_(y)


# ----------------------------------------------------------------------------- layer_norm_vjp


def _ln_parts(x, normalized_shape, eps, correction=0):
    dims = tuple(range(-len(normalized_shape), 0))
    lead = tuple(range(x.dim() - len(normalized_shape)))
    mu = x.mean(dims, keepdim=True)
    var = x.var(dims, keepdim=True, correction=correction)
    rstd = (var + eps).rsqrt()
    return dims, lead, rstd, (x - mu) * rstd


def _ln_param_grads(grad_out, xhat, lead):
    if lead:
        return (grad_out * xhat).sum(lead), grad_out.sum(lead)
    return grad_out * xhat, grad_out.clone()


@mistake("layer_norm_vjp", "Mean and variance treated as constants: grad_x = grad_out * weight * rstd misses the paths through the statistics.")
def statistics_as_constants(x, normalized_shape, weight, bias, eps, grad_out):
    dims, lead, rstd, xhat = _ln_parts(x, normalized_shape, eps)
    return (grad_out * weight * rstd, *_ln_param_grads(grad_out, xhat, lead))


@mistake("layer_norm_vjp", "Only the mean's path was kept: the variance also depends on x (the -xhat * mean(g * xhat) term is missing).")
def no_variance_path(x, normalized_shape, weight, bias, eps, grad_out):
    dims, lead, rstd, xhat = _ln_parts(x, normalized_shape, eps)
    g = grad_out * weight
    return (rstd * (g - g.mean(dims, keepdim=True)), *_ln_param_grads(grad_out, xhat, lead))


@mistake("layer_norm_vjp", "The unbiased variance (divide by N - 1, torch.var's default) was used; layer_norm normalises with the biased one.")
def unbiased_variance(x, normalized_shape, weight, bias, eps, grad_out):
    dims, lead, rstd, xhat = _ln_parts(x, normalized_shape, eps, correction=1)
    g = grad_out * weight
    grad_x = rstd * (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True))
    return (grad_x, *_ln_param_grads(grad_out, xhat, lead))


@mistake("layer_norm_vjp", "torch.func.vjp inside the VJP: the oracle itself is off-limits.")
def func_vjp_inside(x, normalized_shape, weight, bias, eps, grad_out):
    _, pullback = torch.func.vjp(
        lambda x, w, b: torch.nn.functional.layer_norm(x, normalized_shape, w, b, eps), x, weight, bias)
    return pullback(grad_out)


# ----------------------------------------------------------------------------- jacobian


def _one_hot(y, i):
    v = torch.zeros(y.numel(), dtype=y.dtype)
    v[i] = 1.0
    return v.reshape(y.shape)


@mistake("jacobian_from_backward", "x.grad was never cleared: backward ACCUMULATES, so each row also holds the rows before it (and any stale gradient).")
def grad_not_cleared(y, x, backward):
    rows = []
    for i in range(y.numel()):
        backward(_one_hot(y, i))
        rows.append(x.grad.clone())
    return torch.stack(rows).reshape(*y.shape, *x.shape)


@mistake("jacobian_from_backward", "The Jacobian was laid out as x.shape + y.shape (the transpose): a VJP with cotangent e_i gives row i, indexed by y first.")
def transposed_layout(y, x, backward):
    rows = []
    for i in range(y.numel()):
        x.grad = None
        backward(_one_hot(y, i))
        rows.append(x.grad.clone())
    return torch.stack(rows, -1).reshape(*x.shape, *y.shape)


@mistake("jacobian_from_backward", "One backward with an all-ones cotangent: that gives the column sums of J (the gradient of y.sum()), not J.")
def all_ones_cotangent(y, x, backward):
    x.grad = None
    backward(torch.ones_like(y))
    return x.grad.clone()


@mistake("jacobian_from_backward", "y.backward(v) called directly: the kata forbids it (use the backward you are given).")
def calls_tensor_backward(y, x, backward):
    rows = []
    for i in range(y.numel()):
        x.grad = None
        y.backward(_one_hot(y, i), retain_graph=True)
        rows.append(x.grad.clone())
    return torch.stack(rows).reshape(*y.shape, *x.shape)


# ----------------------------------------------------------------------------- jvp


@mistake("jvp_by_double_vjp", "Returned the VJP with cotangent u instead of the JVP: u lives in x's space, a cotangent in f(x)'s.")
def vjp_instead_of_jvp(f, x, u, vjp):
    return vjp(f, x, u)


@mistake("jvp_by_double_vjp", "Built the whole Jacobian from one VJP per output, then multiplied by u: right values, but n VJPs where two suffice.")
def full_jacobian_then_matvec(f, x, u, vjp):
    y = f(x)
    rows = [vjp(f, x, _one_hot(y, i)).reshape(-1) for i in range(y.numel())]
    return (torch.stack(rows) @ u.reshape(-1)).reshape(y.shape)


@mistake("jvp_by_double_vjp", "The inner VJP was detached: the outer VJP then differentiates a constant and gets zeros; v -> vjp(f, x, v) must stay a function of v.")
def detached_inner_vjp(f, x, u, vjp):
    dummy = torch.zeros_like(f(x))
    return vjp(lambda v: vjp(f, x, v).detach(), dummy, u)


@mistake("jvp_by_double_vjp", "torch.func.jvp called directly: forward mode is the oracle here, and it is off-limits.")
def uses_func_jvp(f, x, u, vjp):
    return torch.func.jvp(f, (x,), (u,))[1]


@mistake("layer_norm_vjp", "grad_weight and grad_bias were summed over dim 0 only, as for a 2-d batch: with two leading dims one is left over; sum over every leading dim.")
def param_grads_sum_dim0_only(x, normalized_shape, weight, bias, eps, grad_out):
    dims, lead, rstd, xhat = _ln_parts(x, normalized_shape, eps)
    g = grad_out * weight
    grad_x = rstd * (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True))
    if lead:
        return grad_x, (grad_out * xhat).sum(0), grad_out.sum(0)
    return grad_x, grad_out * xhat, grad_out.clone()
