"""Judged under a catalog that allows processes: `add` leaves a process behind that has a
session of its own and no living parent (a double fork), then loops."""

import os
import time


def add(a, b):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                time.sleep(0.05)
        os._exit(0)
    while True:
        time.sleep(0.05)


def mul(a, b):
    return a * b
