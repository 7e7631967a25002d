def add(a, b):
    return a +


def mul(a, b):
    return a * b
