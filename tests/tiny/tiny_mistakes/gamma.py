from checker.mistakes import mistake


@mistake("double", "Adding 2 instead of multiplying by 2.")
def double_adds(x):
    return x + 2


@mistake("sgd_step", "Reaching for torch.optim, which this kata forbids.")
def sgd_with_optim(params, lr):
    import torch

    torch.optim.SGD(params, lr=lr).step()


@mistake("square_grad", "Using autograd where the gradient was to be derived by hand.")
def square_grad_autograd(x):

    (x ** 2).sum().backward()
    return x.grad
