"""Known mistakes for the kata hooks."""

from __future__ import annotations

import torch

from checker.mistakes import _solution_of, mistake

# ----------------------------------------------------------------------------- zero_grad


@mistake("zero_grad", "set_to_none was ignored: the gradients were always dropped, never zeroed in place.")
def always_none(params, set_to_none=True):
    for p in params:
        p.grad = None


@mistake("zero_grad", "A fresh zeros tensor was assigned; zeroing must reuse the existing .grad tensor in place.")
def fresh_zeros(params, set_to_none=True):
    for p in params:
        if p.grad is not None:
            p.grad = None if set_to_none else torch.zeros_like(p.grad)


@mistake("zero_grad", "Parameters without a gradient got a zero one; torch leaves None gradients as None.")
def zeros_for_missing(params, set_to_none=True):
    for p in params:
        if set_to_none:
            p.grad = None
        elif p.grad is None:
            p.grad = torch.zeros_like(p)
        else:
            p.grad.detach_()
            p.grad.zero_()


def _zero_each(params, set_to_none, zero):
    """Drop each existing gradient, or hand it to ``zero`` (set_to_none=False)."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            zero(p.grad)


def _zero_no_grad(g):
    with torch.no_grad():
        g.zero_()


@mistake("zero_grad", "The gradient was zeroed but not detached: a create_graph gradient keeps its graph.")
def zero_without_detach(params, set_to_none=True):
    _zero_each(params, set_to_none, _zero_no_grad)


@mistake("zero_grad", "Zeroed with p.grad.mul_(0): NaN * 0 and inf * 0 are NaN, so a diverged gradient stays NaN.")
def zero_by_multiplying(params, set_to_none=True):
    _zero_each(params, set_to_none, lambda g: g.detach_().mul_(0))


@mistake("zero_grad", "Delegated to an optimiser's zero_grad, which this kata puts off-limits.")
def via_optimizer(params, set_to_none=True):
    params = list(params)
    torch.optim.SGD(params, lr=0.0).zero_grad(set_to_none=set_to_none)


# ----------------------------------------------------------------------------- clip_and_record


@mistake("clip_and_record", "The hook computed the clipped gradient but returned None, so autograd kept the original.")
def hook_returns_nothing(t, max_abs, log):
    def hook(grad):
        log.append(grad.detach().clone())
        grad.clamp(-max_abs, max_abs)

    return t.register_hook(hook)


@mistake("clip_and_record", "Clipped in place before recording: the log holds clipped values, not the incoming gradient.")
def clamp_in_place_then_log(t, max_abs, log):
    def hook(grad):
        grad.clamp_(-max_abs, max_abs)
        log.append(grad)
        return grad

    return t.register_hook(hook)


@mistake("clip_and_record", "Only the upper bound was applied (clamp(max=...)): large negative gradients pass through.")
def one_sided_clip(t, max_abs, log):
    def hook(grad):
        log.append(grad.detach().clone())
        return grad.clamp(max=max_abs)

    return t.register_hook(hook)


@mistake("clip_and_record", "Two hooks were registered (record, clip) but one handle returned: the other can never be removed.")
def two_hooks_one_handle(t, max_abs, log):
    t.register_hook(lambda grad: log.append(grad.detach().clone()))
    return t.register_hook(lambda grad: grad.clamp(-max_abs, max_abs))


@mistake("clip_and_record", "Recorded first, then clipped in place (clamp_) and returned it: the incoming gradient can be the caller's tensor or one handed to other edges too, and they are clipped with it.")
def clip_in_place_after_logging(t, max_abs, log):
    def hook(grad):
        log.append(grad.detach().clone())
        return grad.clamp_(-max_abs, max_abs)

    return t.register_hook(hook)


@mistake("clip_and_record", "Logged the incoming gradient itself, not a copy: it can be the caller's tensor, and the record changes when the caller reuses it.")
def logs_without_copy(t, max_abs, log):
    def hook(grad):
        log.append(grad)
        return grad.clamp(-max_abs, max_abs)

    return t.register_hook(hook)


# ----------------------------------------------------------------------------- capture


def _capture_with(model, x, upstream, *, pick_grad, remove=("forward", "backward"), detach=True,
                  leaves_only=True, remove_on_error=True):
    activations, gradients, forward_handles, backward_handles = {}, {}, [], []
    for name, module in model.named_modules():
        if leaves_only and next(module.children(), None) is not None:
            continue

        def fwd(module, args, output, name=name):
            activations[name] = output.detach().clone() if detach else output

        def bwd(module, grad_input, grad_output, name=name):
            gradients[name] = pick_grad(grad_input, grad_output).detach().clone()

        forward_handles.append(module.register_forward_hook(fwd))
        backward_handles.append(module.register_full_backward_hook(bwd))
    handles = {"forward": forward_handles, "backward": backward_handles}
    try:
        model(x).backward(upstream)
    finally:
        if remove_on_error:
            for kind in remove:
                for handle in handles[kind]:
                    handle.remove()
    if not remove_on_error:
        for kind in remove:
            for handle in handles[kind]:
                handle.remove()
    return activations, gradients


@mistake("capture", "The hooks were never removed: they keep firing on every later forward and backward.")
def hooks_left_behind(model, x, upstream):
    return _capture_with(model, x, upstream, pick_grad=lambda gi, go: go[0], remove=())


@mistake("capture", "Only the forward hooks were removed; the backward hooks stayed registered.")
def backward_hooks_left_behind(model, x, upstream):
    return _capture_with(model, x, upstream, pick_grad=lambda gi, go: go[0],
                         remove=("forward",))


@mistake("capture", "grad_input[0] was recorded: that is the gradient of the module's input, not its output.")
def grad_input_recorded(model, x, upstream):
    return _capture_with(model, x, upstream, pick_grad=lambda gi, go: gi[0])


@mistake("capture", "Activations were stored without detach(): each one keeps the forward graph alive.")
def activations_not_detached(model, x, upstream):
    return _capture_with(model, x, upstream, pick_grad=lambda gi, go: go[0],
                         detach=False)


@mistake("capture", "Hooks went on every module, containers included, instead of the leaf modules only.")
def containers_hooked(model, x, upstream):
    return _capture_with(model, x, upstream, pick_grad=lambda gi, go: go[0],
                         leaves_only=False)


@mistake("capture", "The hooks were removed after the run but not in a finally: when the forward raises, they stay registered.")
def no_finally(model, x, upstream):
    return _capture_with(model, x, upstream, pick_grad=lambda gi, go: go[0], remove_on_error=False)


# ----------------------------------------------------------------------------- accumulate_microbatches


def _micro_batches(x, y, size):
    return [(x[s:s + size], y[s:s + size]) for s in range(0, x.shape[0], size)]


@mistake("accumulate_microbatches", "Each micro-batch loss was divided by the number of micro-batches: wrong when the last one is shorter.")
def divide_by_count(model, loss_fn, x, y, micro_batch_size):
    for p in model.parameters():
        p.grad = None
    batches = _micro_batches(x, y, micro_batch_size)
    total = 0.0
    for xb, yb in batches:
        loss = loss_fn(model(xb), yb) / len(batches)
        loss.backward()
        total += loss.item()
    return total


@mistake("accumulate_microbatches", "The gradients were not cleared first: stale .grad from an earlier step was added to.")
def no_initial_zero(model, loss_fn, x, y, micro_batch_size):
    total = 0.0
    for xb, yb in _micro_batches(x, y, micro_batch_size):
        loss = loss_fn(model(xb), yb) * (xb.shape[0] / x.shape[0])
        loss.backward()
        total += loss.item()
    return total


@mistake("accumulate_microbatches", "The uneven last micro-batch was dropped (range stopped at the last full slice).")
def drop_last(model, loss_fn, x, y, micro_batch_size):
    for p in model.parameters():
        p.grad = None
    n_full = x.shape[0] // micro_batch_size
    total = 0.0
    for i in range(n_full):
        xb = x[i * micro_batch_size:(i + 1) * micro_batch_size]
        yb = y[i * micro_batch_size:(i + 1) * micro_batch_size]
        loss = loss_fn(model(xb), yb) / n_full
        loss.backward()
        total += loss.item()
    return total


@mistake("accumulate_microbatches", "The gradients were zeroed inside the loop, so only the last micro-batch survived.")
def zero_each_micro_batch(model, loss_fn, x, y, micro_batch_size):
    total = 0.0
    for xb, yb in _micro_batches(x, y, micro_batch_size):
        for p in model.parameters():
            p.grad = None
        loss = loss_fn(model(xb), yb) * (xb.shape[0] / x.shape[0])
        loss.backward()
        total += loss.item()
    return total


@mistake("accumulate_microbatches", "The whole batch went through the model at once: right gradients, but no accumulation at all.")
def full_batch_at_once(model, loss_fn, x, y, micro_batch_size):
    for p in model.parameters():
        p.grad = None
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.item()


# ----------------------------------------------------------------------------- optimizer_in_backward


@mistake("optimizer_in_backward", "A plain tensor hook (register_hook) was used: it runs on the summed gradient BEFORE it is written into p.grad, so a step there reads an empty or stale .grad.")
def pre_accumulate_hook(params, make_optimizer):
    handles = []
    for p in params:
        opt = make_optimizer([p])

        def hook(grad, p=p, opt=opt):
            opt.step()
            p.grad = None

        handles.append(p.register_hook(hook))
    return handles


@mistake("optimizer_in_backward", "The gradient was not freed after the step, so the next backward added into it.")
def grad_not_freed(params, make_optimizer):
    handles = []
    for p in params:
        opt = make_optimizer([p])
        handles.append(p.register_post_accumulate_grad_hook(lambda p, opt=opt: opt.step()))
    return handles


@mistake("optimizer_in_backward", "A new optimiser was built inside the hook on every call, so its state (Adam's moments, step count) was lost.")
def optimizer_built_in_hook(params, make_optimizer):
    def hook(p):
        make_optimizer([p]).step()
        p.grad = None

    return [p.register_post_accumulate_grad_hook(hook) for p in params]


@mistake("optimizer_in_backward", "A late-binding closure: every hook reads the loop variable `optimizer` when it runs, so all of them step the LAST parameter's optimiser.")
def late_binding_closure(params, make_optimizer):
    handles = []
    for p in params:
        optimizer = make_optimizer([p])

        def step(param):
            optimizer.step()  # noqa: B023 - the mistake itself
            param.grad = None

        handles.append(p.register_post_accumulate_grad_hook(step))
    return handles


@mistake("optimizer_in_backward", "The handles were thrown away (nothing returned), so the hooks can never be removed.")
def handles_dropped(params, make_optimizer):
    _solution_of("hooks").optimizer_in_backward(params, make_optimizer)
    return []


@mistake("optimizer_in_backward", "optimizer.zero_grad() was called in the hook; it is off-limits here (set p.grad = None).")
def optimizer_zero_grad_in_hook(params, make_optimizer):
    handles = []
    for p in params:
        opt = make_optimizer([p])

        def hook(p, opt=opt):
            opt.step()
            opt.zero_grad(set_to_none=True)

        handles.append(p.register_post_accumulate_grad_hook(hook))
    return handles
