import torch


def double(x):
    return x * 2


def sgd_step(params, lr):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def square_grad(x):
    return 2 * x.detach()
