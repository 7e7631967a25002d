import ctypes


def add(a, b):
    ctypes.string_at(0)


def mul(a, b):
    return a * b
