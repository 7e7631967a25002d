import sys

sys.setrecursionlimit(10**7)


def down(n):
    return down(n + 1)


down(0)


def add(a, b):
    return a + b


def mul(a, b):
    return a * b
