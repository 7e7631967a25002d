import os


def add(a, b):
    os._exit(3)


def mul(a, b):
    return a * b
