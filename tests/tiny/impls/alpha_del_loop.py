class Stuck:
    def __del__(self):
        while True:
            pass


KEEP = Stuck()  # its __del__ would run at interpreter exit


def add(a, b):
    Stuck()  # collected at once: its __del__ loops inside the check
    return a + b


def mul(a, b):
    return a * b
