"""Known mistakes for the kata higher_order."""

from __future__ import annotations

import torch

from checker.mistakes import mistake

# ----------------------------------------------------------------------------- second_derivative


@mistake("second_derivative", "create_graph=True was left out of the first grad, so f' is a constant that cannot be differentiated again.")
def no_create_graph(f, x):
    x = x.detach().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x)
    (second,) = torch.autograd.grad(first.sum(), x)
    return second


@mistake("second_derivative", "backward() twice and x.grad read back: the second pass adds f'' onto f' already in x.grad.")
def read_accumulated_grad(f, x):
    x = x.detach().requires_grad_()
    f(x).sum().backward(create_graph=True)
    x.grad.sum().backward()
    return x.grad.detach()


@mistake("second_derivative", "create_graph=True on the second grad as well: the result drags a useless third-order graph along.")
def create_graph_twice(f, x):
    x = x.detach().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    if not first.requires_grad:
        return torch.zeros_like(x)
    (second,) = torch.autograd.grad(first.sum(), x, create_graph=True)
    return second


@mistake("second_derivative", "A linear f was not handled: its constant f' has no grad_fn, and differentiating it again raises.")
def no_linear_case(f, x):
    x = x.detach().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), x)
    return second


# ----------------------------------------------------------------------------- hvp


@mistake("hvp", "create_graph=True was left out, so the gradient cannot be differentiated a second time.")
def hvp_no_create_graph(f, x, v):
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x)
    (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
    return hv


@mistake("hvp", "The gradient was summed instead of dotted with v: that is H @ ones, not H @ v.")
def hvp_ignores_v(f, x, v):
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad(g.sum(), x)
    return hv


@mistake("hvp", "requires_grad_() was called on the caller's x instead of on a detached copy.")
def hvp_mutates_input(f, x, v):
    x.requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad(g, x, grad_outputs=v)
    return hv


@mistake("hvp", "torch.autograd.functional.hvp did the work; this kata asks for the double backward by hand.")
def hvp_by_library(f, x, v):
    return torch.autograd.functional.hvp(f, x, v)[1]


# ----------------------------------------------------------------------------- gradient_penalty


def _mixed(real, fake, alpha):
    return (alpha * real + (1 - alpha) * fake).detach().requires_grad_()


@mistake("gradient_penalty", "create_graph=True was left out: the penalty is a constant and never trains the critic.")
def penalty_no_create_graph(critic, real, fake, alpha):
    mixed = _mixed(real, fake, alpha)
    (g,) = torch.autograd.grad(critic(mixed).sum(), mixed)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


@mistake("gradient_penalty", "One norm over the whole batch instead of one norm per sample.")
def penalty_batch_norm(critic, real, fake, alpha):
    mixed = _mixed(real, fake, alpha)
    (g,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (g.norm() - 1) ** 2


@mistake("gradient_penalty", "The critic's mean score was differentiated: every per-sample gradient shrinks by the batch size.")
def penalty_of_mean(critic, real, fake, alpha):
    mixed = _mixed(real, fake, alpha)
    (g,) = torch.autograd.grad(critic(mixed).mean(), mixed, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


@mistake("gradient_penalty", "backward() was used to get the input gradient: it also filled every critic parameter's .grad.")
def penalty_by_backward(critic, real, fake, alpha):
    mixed = _mixed(real, fake, alpha)
    critic(mixed).sum().backward(create_graph=True)
    return ((mixed.grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@mistake("gradient_penalty", "The critic's gradients were cleared first (p.grad = None), as before a training step: whatever the caller had accumulated is lost.")
def penalty_clears_critic_grads(critic, real, fake, alpha):
    for p in critic.parameters():
        p.grad = None
    mixed = _mixed(real, fake, alpha)
    (g,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


@mistake("gradient_penalty", "critic.eval() before scoring the mixed samples, as for an evaluation: the caller's critic is left in eval mode for its next training step.")
def penalty_switches_to_eval(critic, real, fake, alpha):
    critic.eval()
    mixed = _mixed(real, fake, alpha)
    (g,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ----------------------------------------------------------------------------- meta_gradient


@mistake("meta_gradient", "The inner steps left the graph (create_graph=True left out of the inner grads, or w updated in place under no_grad as an optimiser does): the result is only the first-order approximation.")
def meta_first_order(train_loss, val_loss, w, lr, steps):
    w0 = w.detach().requires_grad_()
    current = w0
    for _ in range(steps):
        (g,) = torch.autograd.grad(train_loss(current), current)
        current = current - lr * g
    return torch.autograd.grad(val_loss(current), w0)[0]


@mistake("meta_gradient", "The graph was cut between inner steps (detach), so only the last step is differentiated through.")
def meta_detach_between_steps(train_loss, val_loss, w, lr, steps):
    current = w.detach().requires_grad_()
    start = current
    for i in range(steps):
        if i > 0:
            current = current.detach().requires_grad_()
            start = current
        (g,) = torch.autograd.grad(train_loss(current), current, create_graph=True)
        current = current - lr * g
    return torch.autograd.grad(val_loss(current), start)[0]


@mistake("meta_gradient", "The validation loss was taken at the initial w: the inner steps never reach it.")
def meta_val_at_initial_w(train_loss, val_loss, w, lr, steps):
    w0 = w.detach().requires_grad_()
    current = w0
    for _ in range(steps):
        (g,) = torch.autograd.grad(train_loss(current), current, create_graph=True)
        current = current - lr * g
    return torch.autograd.grad(val_loss(w0), w0)[0]


@mistake("meta_gradient", "The first inner step was taken before the loop (the loop ran steps - 1 times): steps=0 still moves w once.")
def meta_first_step_outside_loop(train_loss, val_loss, w, lr, steps):
    w0 = w.detach().requires_grad_()
    (g,) = torch.autograd.grad(train_loss(w0), w0, create_graph=True)
    current = w0 - lr * g
    for _ in range(steps - 1):
        (g,) = torch.autograd.grad(train_loss(current), current, create_graph=True)
        current = current - lr * g
    return torch.autograd.grad(val_loss(current), w0)[0]
