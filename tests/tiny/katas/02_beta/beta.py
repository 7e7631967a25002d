"""Tiny kata beta."""


def neg(x: int) -> int:
    """Return -x."""
    raise NotImplementedError("neg: return -x")
