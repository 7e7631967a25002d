import signal

signal.raise_signal(signal.SIGSTOP)  # the whole process stops: no timer of its own can fire


def add(a, b):
    return a + b


def mul(a, b):
    return a * b
