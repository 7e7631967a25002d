"""Known mistakes for the kata modules."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from checker.mistakes import mistake

# ----------------------------------------------------------------------------- Block


class _Block(nn.Module):
    """A Block whose class attributes switch one misconception on."""

    offsets_as = "buffer"  # or "attribute", "persistent"
    scale_as = "buffer"  # or "parameter"
    norm_in_list = False
    count_in_eval = False
    rebind_calls = False
    weight_scale = "sqrt_in"  # or "none"

    def __init__(self, in_features, out_features):
        super().__init__()
        scale = math.sqrt(in_features) if self.weight_scale == "sqrt_in" else 1.0
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / scale)
        self.bias = nn.Parameter(torch.zeros(out_features))
        if self.scale_as == "parameter":
            self.scale = nn.Parameter(torch.ones(out_features))
        else:
            self.register_buffer("scale", torch.ones(out_features))
        self.register_buffer("calls", torch.tensor(0))
        offsets = torch.linspace(-1.0, 1.0, out_features)
        if self.offsets_as == "attribute":
            self.offsets = offsets
        else:
            self.register_buffer("offsets", offsets, persistent=self.offsets_as == "persistent")
        if self.norm_in_list:
            self.parts = [nn.LayerNorm(out_features)]
        else:
            self.norm = nn.LayerNorm(out_features)

    def forward(self, x):
        if self.rebind_calls and self.training:
            self.calls = self.calls + 1
        elif self.training or self.count_in_eval:
            self.calls += 1
        norm = self.parts[0] if self.norm_in_list else self.norm
        return norm(x @ self.weight.T + self.bias) * self.scale + self.offsets


@mistake("Block", "A tensor assigned as a plain attribute is not a buffer: not in named_buffers(), not moved by .to().")
class OffsetsPlainAttribute(_Block):
    offsets_as = "attribute"


@mistake("Block", "Derived data registered as a persistent buffer: it lands in the state_dict, which then has an extra key.")
class OffsetsPersistent(_Block):
    offsets_as = "persistent"


@mistake("Block", "A fixed scale made an nn.Parameter: an optimiser would train it; it belongs in a buffer.")
class ScaleAsParameter(_Block):
    scale_as = "parameter"


@mistake("Block", "A submodule kept in a Python list: nn.Module cannot see it, so its parameters are missing everywhere.")
class NormInPythonList(_Block):
    norm_in_list = True


@mistake("Block", "The training counter also ticks in eval mode: forward ignores self.training.")
class CountsInEval(_Block):
    count_in_eval = True


@mistake("Block", "The counter rebound (self.calls = self.calls + 1) instead of updated in place: whoever holds the buffer keeps a stale count.")
class CallsRebound(_Block):
    rebind_calls = True


@mistake("Block", "The weight drawn from torch.randn without the 1 / sqrt(in_features) scale: activations grow with the layer's width.")
class WeightUnscaled(_Block):
    weight_scale = "none"


# ----------------------------------------------------------------------------- freeze_


def _count(params):
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, sum(p.numel() for p in params if not p.requires_grad)


def _matches(name, prefixes):
    return any(name == pre or name.startswith(pre + ".") for pre in prefixes)


@mistake("freeze_", "Plain startswith without the '.': the prefix 'encoder' also freezes 'encoder2'.")
def prefix_without_dot(module, prefixes):
    for name, p in module.named_parameters(remove_duplicate=False):
        if any(name.startswith(pre) for pre in prefixes):
            p.requires_grad_(False)
    return _count(list(module.parameters()))


@mistake("freeze_", "Counted parameter tensors instead of their elements (numel).")
def counts_tensors(module, prefixes):
    for name, p in module.named_parameters(remove_duplicate=False):
        if _matches(name, prefixes):
            p.requires_grad_(False)
    params = list(module.parameters())
    return sum(p.requires_grad for p in params), sum(not p.requires_grad for p in params)


@mistake("freeze_", "A tied weight counted twice: named_parameters(remove_duplicate=False) lists one tensor under two names.")
def tied_counted_twice(module, prefixes):
    for name, p in module.named_parameters(remove_duplicate=False):
        if _matches(name, prefixes):
            p.requires_grad_(False)
    return _count([p for _, p in module.named_parameters(remove_duplicate=False)])


@mistake("freeze_", "Matched against named_parameters() only, which drops a tied weight's second name: freezing 'head' misses the tensor it shares with 'embed'.")
def misses_tied_alias(module, prefixes):
    for name, p in module.named_parameters():
        if _matches(name, prefixes):
            p.requires_grad_(False)
    return _count(list(module.parameters()))


@mistake("freeze_", "requires_grad set to 'not matched' for every parameter: parameters frozen earlier get unfrozen.")
def unfreezes_the_rest(module, prefixes):
    frozen = set()
    for name, p in module.named_parameters(remove_duplicate=False):
        if _matches(name, prefixes):
            frozen.add(id(p))
    for p in module.parameters():
        p.requires_grad_(id(p) not in frozen)
    return _count(list(module.parameters()))


@mistake("freeze_", "A prefix matched anywhere in the dotted name, not from its start: '1' also freezes '0.1.weight'.")
def prefix_anywhere(module, prefixes):
    for name, p in module.named_parameters(remove_duplicate=False):
        if any(f".{pre}." in f".{name}." for pre in prefixes):
            p.requires_grad_(False)
    return _count(list(module.parameters()))


# ----------------------------------------------------------------------------- Dropout


class _Dropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def mask(self, x):
        return (torch.rand_like(x) >= self.p).to(x.dtype)


@mistake("Dropout", "No 1/(1-p) rescaling in training: the expected activation shrinks, and eval-mode outputs no longer match.")
class NoRescale(_Dropout):
    def forward(self, x):
        return x * self.mask(x) if self.training else x


@mistake("Dropout", "p used as the keep probability: elements are dropped with probability 1 - p.")
class PIsKeepProbability(_Dropout):
    def forward(self, x):
        if not self.training:
            return x
        keep = (torch.rand_like(x) < self.p).to(x.dtype)
        return x * keep / self.p


@mistake("Dropout", "Dropping in eval mode too: forward ignores self.training.")
class DropsInEval(_Dropout):
    def forward(self, x):
        if self.p == 1.0:
            return x * 0
        return x * self.mask(x) / (1 - self.p)


@mistake("Dropout", "x * mask / (1 - p) at p = 1: 0 / 0 gives nan instead of zeros.")
class NanAtPOne(_Dropout):
    def forward(self, x):
        if not self.training:
            return x
        return x * self.mask(x) / (1 - self.p)


@mistake("Dropout", "One mask drawn once and reused on every call: dropout must be fresh randomness per forward.")
class FixedMask(_Dropout):
    def forward(self, x):
        if not self.training:
            return x
        if self.p == 1.0:
            return x * 0
        if getattr(self, "_mask", None) is None or self._mask.shape != x.shape:
            self._mask = self.mask(x)
        return x * self._mask.to(x.dtype) / (1 - self.p)


@mistake("Dropout", "torch.zeros_like(x) at p = 1: right values, but the output is cut from the graph, so nothing backpropagates to x.")
class ZerosLikeAtPOne(_Dropout):
    def forward(self, x):
        if not self.training:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        return x * self.mask(x) / (1 - self.p)


@mistake("Dropout", "A generator of the layer's own, seeded with a constant: every layer draws the same masks, and torch.manual_seed does not reach them.")
class OwnSeededGenerator(_Dropout):
    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0
        if not hasattr(self, "generator"):
            self.generator = torch.Generator().manual_seed(0)
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep / (1 - self.p)


@mistake("Dropout", "The mask applied in place (x.mul_): the caller's tensor is overwritten.")
class InPlaceOnInput(_Dropout):
    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0
        return x.mul_(self.mask(x)).div_(1 - self.p)


@mistake("Dropout", "Delegating to F.dropout: the kata asks for the mask itself, and it is off-limits.")
class CallsFunctionalDropout(_Dropout):
    def forward(self, x):
        return torch.nn.functional.dropout(x, self.p, self.training)


# ----------------------------------------------------------------------------- init


def _fans(tensor, receptive=True):
    if tensor.dim() < 2:
        raise ValueError("need at least 2 dims")
    r = math.prod(tensor.shape[2:]) if receptive else 1
    return tensor.shape[1] * r, tensor.shape[0] * r


_GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0)}


def _gain(nonlinearity, a):
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a**2))
    return _GAINS[nonlinearity]


@mistake("kaiming_normal_", "fan_in and fan_out swapped: for an (out, in) weight fan_in is size(1), not size(0).")
def swapped_fans(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_out, fan_in = _fans(tensor)
    std = _gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.normal_(0, std)


@mistake("kaiming_normal_", "The kernel's receptive field left out of the fans of a conv weight.")
def no_receptive_field(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fans(tensor, receptive=False)
    std = _gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.normal_(0, std)


@mistake("kaiming_normal_", "The gain fixed at sqrt(2) (ReLU's) whatever the nonlinearity and its slope a.")
def gain_always_relu(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fans(tensor)
    std = math.sqrt(2.0) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.normal_(0, std)


@mistake("kaiming_normal_", "A uniform distribution with the right variance where a normal one was asked.")
def uniform_instead_of_normal(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = _fans(tensor)
    std = _gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)
    with torch.no_grad():
        return tensor.uniform_(-math.sqrt(3) * std, math.sqrt(3) * std)


@mistake("kaiming_normal_", "Delegating to nn.init.kaiming_normal_: the kata asks for the fans and gain by hand, and it is off-limits.")
def calls_nn_init(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return nn.init.kaiming_normal_(tensor, a=a, mode=mode, nonlinearity=nonlinearity)


@mistake("xavier_uniform_", "The std used as the bound: U(-s, s) with s = gain*sqrt(2/(fan_in+fan_out)) has a third of the variance.")
def std_as_bound(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


@mistake("xavier_uniform_", "A normal distribution with Xavier's variance where a uniform one was asked.")
def normal_instead_of_uniform(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor)
    with torch.no_grad():
        return tensor.normal_(0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


@mistake("xavier_uniform_", "Only fan_in in the bound (LeCun's rule): Xavier averages fan_in and fan_out.")
def fan_in_only(tensor, gain=1.0):
    fan_in, _ = _fans(tensor)
    bound = gain * math.sqrt(3.0 / fan_in)
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


# ----------------------------------------------------------------------------- BatchNorm1d


class _BatchNorm(nn.Module):
    biased_running_var = False
    keras_momentum = False
    batch_stats_in_eval = False
    running_stats_in_train = False
    count_batches = True
    stats_with_graph = False
    eval_unviewed = False

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training or self.batch_stats_in_eval:
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
        if self.training:
            n = x.numel() // x.shape[1]
            with torch.no_grad() if not self.stats_with_graph else contextlib.nullcontext():
                if self.count_batches:
                    self.num_batches_tracked += 1
                count = max(int(self.num_batches_tracked), 1)
                m = 1.0 / count if self.momentum is None else self.momentum
                if self.keras_momentum:
                    m = 1 - m
                unbiased = var if self.biased_running_var else var * (n / (n - 1))
                if self.stats_with_graph:
                    self.running_mean = (1 - m) * self.running_mean + m * mean
                    self.running_var = (1 - m) * self.running_var + m * unbiased
                else:
                    self.running_mean.mul_(1 - m).add_(mean, alpha=m)
                    self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        if (not self.training and not self.batch_stats_in_eval) or self.running_stats_in_train:
            mean, var = self.running_mean, self.running_var
            if self.eval_unviewed:
                return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)


@mistake("BatchNorm1d", "running_var updated with the biased batch variance; torch stores the unbiased one (n / (n - 1)).")
class BiasedRunningVar(_BatchNorm):
    biased_running_var = True


@mistake("BatchNorm1d", "Keras' momentum convention: running = momentum * running + (1 - momentum) * batch; torch weights the NEW batch by momentum.")
class KerasMomentum(_BatchNorm):
    keras_momentum = True


@mistake("BatchNorm1d", "Batch statistics used in eval mode too: eval() must switch to the running statistics.")
class BatchStatsInEval(_BatchNorm):
    batch_stats_in_eval = True


@mistake("BatchNorm1d", "Running statistics used to normalise in training mode: training normalises with the batch's own statistics.")
class RunningStatsInTrain(_BatchNorm):
    running_stats_in_train = True


@mistake("BatchNorm1d", "num_batches_tracked never incremented: momentum=None (a cumulative average) needs the batch count.")
class NoBatchCount(_BatchNorm):
    count_batches = False


@mistake("BatchNorm1d", "Running statistics updated with autograd on: each becomes part of the graph (a grad_fn), which it keeps alive from batch to batch.")
class RunningStatsWithGraph(_BatchNorm):
    stats_with_graph = True


@mistake("BatchNorm1d", "The running statistics broadcast against the LAST dim in eval mode: right for (N, C), wrong for (N, C, L).")
class EvalStatsNotViewed(_BatchNorm):
    eval_unviewed = True


@mistake("BatchNorm1d", "`momentum or 1 / num_batches_tracked`: momentum=0 (running statistics frozen) is falsy and becomes the cumulative average.")
class MomentumZeroIsNone(_BatchNorm):
    def forward(self, x):
        momentum = self.momentum
        self.momentum = momentum or None
        try:
            return super().forward(x)
        finally:
            self.momentum = momentum
