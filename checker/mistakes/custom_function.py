"""Known mistakes for the kata custom_function. Each class stands in for one exercise."""

from __future__ import annotations

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from checker.mistakes import mistake

# ----------------------------------------------------------------------------- StraightThroughRound


@mistake("StraightThroughRound", "Backward used the true derivative of round, which is 0 almost everywhere: nothing learns through it.")
class ZeroGradRound(Function):
    @staticmethod
    def forward(x):
        return torch.round(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return torch.zeros_like(grad)


@mistake("StraightThroughRound", "Backward returned ones instead of the incoming gradient: the identity's VJP is grad_output itself.")
class OnesGradRound(Function):
    @staticmethod
    def forward(x):
        return torch.round(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return torch.ones_like(grad)


@mistake("StraightThroughRound", "The detach trick x + (round(x) - x).detach() instead of a Function: right numbers, but autograd builds the graph and no Function of yours ever runs.")
class DetachTrickRound:
    @staticmethod
    def apply(x):
        return x + (torch.round(x) - x).detach()


class _StraightThrough(Function):
    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


@mistake("StraightThroughRound", "Rounded with floor(x + 0.5): halves go up (2.5 -> 3), where torch.round rounds them to the even neighbour (2.5 -> 2).")
class HalfUpRound(_StraightThrough):
    @staticmethod
    def forward(x):
        return torch.floor(x + 0.5)


@mistake("StraightThroughRound", "Rounded the input in place (x.round_()): forward runs under no_grad, so nothing stops it from changing the caller's tensor.")
class InPlaceRound(_StraightThrough):
    @staticmethod
    def forward(x):
        return x.round_().clone()


# ----------------------------------------------------------------------------- OutputSavingSigmoid


@mistake("OutputSavingSigmoid", "Saved output.detach(): same values and the same version counter, but the link to this node is cut, so backward cannot be differentiated again.")
class DetachedOutputSigmoid(Function):
    @staticmethod
    def forward(x):
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output.detach())

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


@mistake("OutputSavingSigmoid", "Saved the input and recomputed sigmoid in backward, instead of saving the output.")
class SavesInputSigmoid(Function):
    @staticmethod
    def forward(x):
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        y = torch.sigmoid(x)
        return grad * y * (1 - y)


@mistake("OutputSavingSigmoid", "Kept the output as a ctx attribute (ctx.y = output): autograd never sees it saved, so in-place changes go unnoticed.")
class CtxAttributeSigmoid(Function):
    @staticmethod
    def forward(x):
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.y = output

    @staticmethod
    def backward(ctx, grad):
        y = ctx.y
        return grad * y * (1 - y)


@mistake("OutputSavingSigmoid", "The old combined forward(ctx, x) form: fine for .backward(), refused by torch.func, which needs setup_context.")
class OldStyleSigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


# ----------------------------------------------------------------------------- LogSumExp


class _LseBackward(Function):
    """Shared correct setup_context/backward for the forward-only mistakes below."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, dim = inputs
        ctx.dim = dim
        ctx.save_for_backward(x, output)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return grad.unsqueeze(ctx.dim) * (x - out.unsqueeze(ctx.dim)).exp(), None


@mistake("LogSumExp", "The naive log(sum(exp(x))): exp overflows to inf (or underflows to 0) for large |x|.")
class NaiveLogSumExp(_LseBackward):
    @staticmethod
    def forward(x, dim):
        return x.exp().sum(dim).log()


@mistake("LogSumExp", "Shifted by ONE max for the whole tensor instead of each slice's own max: a slice 2000 below the top still underflows to -inf.")
class GlobalMaxLogSumExp(_LseBackward):
    @staticmethod
    def forward(x, dim):
        m = x[torch.isfinite(x)].max()
        return (x - m).exp().sum(dim).log() + m


@mistake("LogSumExp", "Called torch.logsumexp, which this kata puts off-limits.")
class TorchLogSumExp(_LseBackward):
    @staticmethod
    def forward(x, dim):
        return torch.logsumexp(x, dim)


@mistake("LogSumExp", "backward multiplied grad_output by the softmax without unsqueezing it at dim, so it broadcast along the wrong axis.")
class NoUnsqueezeLogSumExp(_LseBackward):
    @staticmethod
    def forward(x, dim):
        m = x.amax(dim, keepdim=True)
        return (x - m).exp().sum(dim).log() + m.squeeze(dim)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return grad * (x - out.unsqueeze(ctx.dim)).exp(), None


@mistake("LogSumExp", "backward returned only the tensor's gradient: it must return one per forward input, None for dim.")
class MissingNoneLogSumExp(_LseBackward):
    @staticmethod
    def forward(x, dim):
        m = x.amax(dim, keepdim=True)
        return (x - m).exp().sum(dim).log() + m.squeeze(dim)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return grad.unsqueeze(ctx.dim) * (x - out.unsqueeze(ctx.dim)).exp()


# ----------------------------------------------------------------------------- MatMul


class _MatMulForward(Function):
    @staticmethod
    def forward(a, b):
        return a @ b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)


@mistake("MatMul", "Ignored ctx.needs_input_grad: computed both gradients every time, a wasted matmul when an input is a constant.")
class AlwaysBothMatMul(_MatMulForward):
    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad @ b.mT, a.mT @ grad


@mistake("MatMul", "Read ctx.needs_input_grad the wrong way round: needs_input_grad[0] is about a, [1] about b.")
class SwappedNeedsMatMul(_MatMulForward):
    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad @ b.mT if ctx.needs_input_grad[1] else None
        grad_b = a.mT @ grad if ctx.needs_input_grad[0] else None
        return grad_a, grad_b


@mistake("MatMul", "grad_a = grad @ b without the transpose: the VJP of a @ b w.r.t. a is grad @ b^T.")
class UntransposedMatMul(_MatMulForward):
    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = grad @ b if ctx.needs_input_grad[0] else None
        grad_b = a.mT @ grad if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


@mistake("MatMul", "Kept a and b as ctx attributes (ctx.a, ctx.b = a, b): autograd never sees them saved, so an in-place change before backward goes unnoticed.")
class CtxAttributeMatMul(Function):
    @staticmethod
    def forward(a, b):
        return a @ b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.a, ctx.b = inputs

    @staticmethod
    def backward(ctx, grad):
        grad_a = grad @ ctx.b.mT if ctx.needs_input_grad[0] else None
        grad_b = ctx.a.mT @ grad if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


# ----------------------------------------------------------------------------- MaxWithOneHot


class _MaxBase(Function):
    @staticmethod
    def forward(x, dim):
        values, index = x.max(dim)
        return values, torch.zeros_like(x).scatter_(dim, index.unsqueeze(dim), 1.0)

    @staticmethod
    def backward(ctx, grad_values, grad_onehot):
        (onehot,) = ctx.saved_tensors
        return grad_values.unsqueeze(ctx.dim) * onehot, None


@mistake("MaxWithOneHot", "Forgot ctx.mark_non_differentiable(onehot): a float output is differentiable by default, so the mask claims a gradient backward ignores.")
class UnmarkedMax(_MaxBase):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.save_for_backward(output[1])


@mistake("MaxWithOneHot", "Marked every output non-differentiable (mark_non_differentiable(*output)): the values lose their gradient too.")
class AllMarkedMax(_MaxBase):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.mark_non_differentiable(*output)
        ctx.save_for_backward(output[1])


@mistake("MaxWithOneHot", "Spread the gradient over the whole slice (as for a sum) instead of routing it to the argmax.")
class SpreadGradMax(_MaxBase):
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    @staticmethod
    def backward(ctx, grad_values, grad_onehot):
        (onehot,) = ctx.saved_tensors
        return grad_values.unsqueeze(ctx.dim).expand_as(onehot).clone(), None


# ----------------------------------------------------------------------------- Softplus


@mistake("MaxWithOneHot", "The mask as x == max (every element equal to the max): with ties a slice gets several ones, and its gradient is counted several times.")
class TiedMaskMax(_MaxBase):
    @staticmethod
    def forward(x, dim):
        values = x.amax(dim)
        return values, (x == values.unsqueeze(dim)).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.dim = inputs[1]
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])


class _SoftplusBase(Function):
    @staticmethod
    def forward(x):
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])


@mistake("Softplus", "@once_differentiable on backward: first derivatives are right, but autograd cannot differentiate backward again.")
class OnceDifferentiableSoftplus(_SoftplusBase):
    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


@mistake("Softplus", "backward used x.detach(): the second derivative through x is lost (it comes out as zero).")
class DetachedSoftplus(_SoftplusBase):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x.detach())


@mistake("Softplus", "backward ran under torch.no_grad(): with create_graph=True its result still has no graph.")
class NoGradSoftplus(_SoftplusBase):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        with torch.no_grad():
            return grad * torch.sigmoid(x)


@mistake("Softplus", "A stable forward, but backward wrote sigmoid as exp(x) / (1 + exp(x)): inf / inf is NaN at x = 800.")
class NaiveSigmoidSoftplus(_SoftplusBase):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x) / (1 + torch.exp(x))


@mistake("Softplus", "The naive log(1 + exp(x)): exp(800) overflows to inf.")
class NaiveSoftplus(_SoftplusBase):
    @staticmethod
    def forward(x):
        return torch.log(1 + torch.exp(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)
