def add(a, b):
    raise KeyboardInterrupt


def mul(a, b):
    return a * b
