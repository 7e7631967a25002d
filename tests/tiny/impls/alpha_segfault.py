import faulthandler


def add(a, b):
    faulthandler._sigsegv()  # a crash in native code, by a route no audit event sees


def mul(a, b):
    return a * b
