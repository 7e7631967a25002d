import sys

sys.setrecursionlimit(10**7)


def add(a, b):
    return add(a, b)  # no base case


def mul(a, b):
    return a * b
