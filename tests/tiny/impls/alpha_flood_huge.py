import os
import sys


def add(a, b):
    chunk = b"y" * (1 << 20)
    for _ in range(600):  # about 600 MB, straight to the file descriptor
        os.write(1, chunk)
    print("x" * 1000)
    return a + b


def mul(a, b):
    sys.stdout.write("after the flood\n")
    return a * b
