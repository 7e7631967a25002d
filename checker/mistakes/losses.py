"""Known mistakes for the kata losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from checker.mistakes import mistake


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{reduction!r} is not a valid value for reduction")


def _lse(x, dim, keepdim=False, *, bare_squeeze=False, float32_sum=False):
    m = x.amax(dim=dim, keepdim=True).detach()
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    total = torch.exp(x - m)
    total = total.float().sum(dim=dim, keepdim=True).to(x.dtype) if float32_sum else \
        total.sum(dim=dim, keepdim=True)
    out = m + torch.log(total)
    if keepdim:
        return out
    return out.squeeze() if bare_squeeze else out.squeeze(dim)


def _softplus_neg(x):
    return torch.clamp(-x, min=0) + torch.log1p(torch.exp(-x.abs()))


def _ce(logits, target, ignore_index, label_smoothing, reduction, *, logp=None,
        smooth_others=False, mean_over_all=False, smooth_ignored=False, bare_squeeze=False,
        empty_mean_zero=False):
    logp = logits - _lse(logits, 1, keepdim=True) if logp is None else logp
    c = logits.shape[1]
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    nll = -logp.gather(1, safe.unsqueeze(1))
    nll = nll.squeeze() if bare_squeeze else nll.squeeze(1)
    eps = label_smoothing
    if smooth_others:  # eps/(C-1) on every other class, 1-eps on the target
        others = (-logp.sum(dim=1) - nll) / (c - 1)
        loss = (1 - eps) * nll + eps * others
    else:
        loss = (1 - eps) * nll - eps * logp.mean(dim=1)
    if smooth_ignored:
        loss = torch.where(keep, loss, -eps * logp.mean(dim=1))
    else:
        loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "mean":
        if empty_mean_zero:
            return loss.sum() / keep.sum().clamp(min=1)
        return loss.sum() / (loss.numel() if mean_over_all else keep.sum())
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- reduce_loss


@mistake("reduce_loss", "'mean' divided by the batch size (the first dimension) instead of by every element.")
def mean_over_batch(loss, reduction="mean"):
    if reduction == "mean":
        return loss.sum() / loss.shape[0]
    return _reduce(loss, reduction)


@mistake("reduce_loss", "An unknown reduction silently treated as 'mean' instead of raising ValueError.")
def unknown_reduction_is_mean(loss, reduction="mean"):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


@mistake("reduce_loss", "The reductions looked up in a dict: an unknown one raises KeyError, not the ValueError of a bad value.")
def reduction_dict_lookup(loss, reduction="mean"):
    return {"none": lambda t: t, "mean": torch.mean, "sum": torch.sum}[reduction](loss)


# ----------------------------------------------------------------------------- logsumexp


@mistake("logsumexp", "The textbook log(sum(exp(x))): exp(1e4) overflows to inf.")
def naive_logsumexp(x, dim, keepdim=False):
    return torch.log(torch.exp(x).sum(dim=dim, keepdim=keepdim))


@mistake("logsumexp", "Shifted by one global maximum instead of each slice's own: slices far below it underflow to -inf.")
def global_max_shift(x, dim, keepdim=False):
    m = x.max().detach()
    return m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=keepdim))


@mistake("logsumexp", "The max shift without masking infinite maxima: an all -inf slice gives -inf - (-inf) = nan.")
def unmasked_infinite_max(x, dim, keepdim=False):
    m = x.amax(dim=dim, keepdim=True).detach()
    out = m + torch.log(torch.exp(x - m).sum(dim=dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


@mistake("logsumexp", "A bare .squeeze() to drop the reduced dim: every other size-1 dim goes too.")
def bare_squeeze(x, dim, keepdim=False):
    return _lse(x, dim, keepdim, bare_squeeze=True)


@mistake("logsumexp", "The sum of exponentials taken in float32 (and cast back): a float64 result keeps only 7 digits.")
def float32_sum(x, dim, keepdim=False):
    return _lse(x, dim, keepdim, float32_sum=True)


@mistake("logsumexp", "Delegating to torch.logsumexp: the kata asks for the trick itself, and it is off-limits.")
def calls_torch_logsumexp(x, dim, keepdim=False):
    return torch.logsumexp(x, dim, keepdim=keepdim)


# ----------------------------------------------------------------------------- log_softmax


@mistake("log_softmax", "log(softmax(x)): softmax underflows to exactly 0 far below the maximum, and log(0) = -inf.")
def log_of_softmax(x, dim):
    return torch.log(torch.softmax(x, dim=dim))


@mistake("log_softmax", "x - log(sum(exp(x))) without the max shift: exp(1e4) overflows.")
def unshifted_log_softmax(x, dim):
    return x - torch.log(torch.exp(x).sum(dim=dim, keepdim=True))


@mistake("log_softmax", "Normalised over the last dimension whatever dim was asked.")
def last_dim_only(x, dim):
    return x - _lse(x, -1, keepdim=True)


# ----------------------------------------------------------------------------- BCE


@mistake("binary_cross_entropy_with_logits", "The textbook y*log(sigmoid(x)) + (1-y)*log(1-sigmoid(x)): log(0) = -inf at |x| = 1e4.")
def naive_bce(logits, target, pos_weight=None, reduction="mean"):
    s = torch.sigmoid(logits)
    p = 1.0 if pos_weight is None else pos_weight
    loss = -(p * target * torch.log(s) + (1 - target) * torch.log(1 - s))
    return _reduce(loss, reduction)


@mistake("binary_cross_entropy_with_logits", "Logs clamped at -100 like F.binary_cross_entropy on probabilities: finite, but 100 where the loss is 1e4.")
def clamped_log_bce(logits, target, pos_weight=None, reduction="mean"):
    s = torch.sigmoid(logits)
    p = 1.0 if pos_weight is None else pos_weight
    loss = -(p * target * torch.log(s).clamp(min=-100)
             + (1 - target) * torch.log(1 - s).clamp(min=-100))
    return _reduce(loss, reduction)


@mistake("binary_cross_entropy_with_logits", "pos_weight applied to the negative (1 - y) term instead of the positive one.")
def pos_weight_on_negatives(logits, target, pos_weight=None, reduction="mean"):
    p = 1.0 if pos_weight is None else pos_weight
    loss = p * (1 - target) * (logits + _softplus_neg(logits)) + target * _softplus_neg(logits)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- cross_entropy


@mistake("cross_entropy", "'mean' divided by every position, ignored ones included: torch divides by the non-ignored count.")
def mean_includes_ignored(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return _ce(logits, target, ignore_index, label_smoothing, reduction, mean_over_all=True)


@mistake("cross_entropy", "Label smoothing spread over the C-1 other classes; torch spreads eps over all C, the target included.")
def smoothing_over_other_classes(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return _ce(logits, target, ignore_index, label_smoothing, reduction, smooth_others=True)


@mistake("cross_entropy", "The smoothing term kept for ignored positions: an ignored position contributes nothing at all.")
def smoothing_on_ignored(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return _ce(logits, target, ignore_index, label_smoothing, reduction, smooth_ignored=True)


@mistake("cross_entropy", "Classes taken from the last dim: for (N, C, d) inputs the classes are dim 1.")
def classes_in_last_dim(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    logp = logits - _lse(logits, -1, keepdim=True)  # right for (N, C) only
    return _ce(logits, target, ignore_index, label_smoothing, reduction, logp=logp)


@mistake("cross_entropy", "A bare .squeeze() after gather: a batch of one, or a spatial dim of one, loses its dim too.")
def bare_squeeze_after_gather(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return _ce(logits, target, ignore_index, label_smoothing, reduction, bare_squeeze=True)


@mistake("cross_entropy", "'mean' of a batch whose targets are all ignored made 0 (a clamped count); torch gives nan (0 / 0).")
def all_ignored_mean_is_zero(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return _ce(logits, target, ignore_index, label_smoothing, reduction, empty_mean_zero=True)


@mistake("cross_entropy", "Delegating to F.cross_entropy: the kata asks for the loss itself, and it is off-limits.")
def calls_functional_cross_entropy(logits, target, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    return F.cross_entropy(logits, target, ignore_index=ignore_index,
                           label_smoothing=label_smoothing, reduction=reduction)
