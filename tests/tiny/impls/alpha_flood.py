import sys


def add(a, b):
    chunk = "x" * 65536 + "\n"
    for _ in range(200):  # about 13 MB
        sys.stdout.write(chunk)
        sys.__stdout__.write(chunk)
    return a + b


def mul(a, b):
    return a * b
