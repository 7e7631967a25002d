import sys


def add(a, b):
    sys.exit(2)


def mul(a, b):
    return a * b
