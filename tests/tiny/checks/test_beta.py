import pytest


@pytest.mark.exercise("neg")
def test_neg(impl, rng):
    x = int(rng.integers(1, 100))
    got = impl.neg(x)
    assert got == -x, f"neg({x}): expected {-x}, got {got!r}"
