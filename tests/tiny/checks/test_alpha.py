import pytest


@pytest.mark.exercise("add")
def test_add(impl, rng):
    for _ in range(5):
        a, b = int(rng.integers(-100, 100)), int(rng.integers(-100, 100))
        got = impl.add(a, b)
        assert type(got) is int and got == a + b, f"add({a}, {b}): expected {a + b}, got {got!r}"


@pytest.mark.exercise("mul")
def test_mul(impl, rng):
    for _ in range(5):
        a, b = int(rng.integers(-100, 100)), int(rng.integers(2, 100))
        got = impl.mul(a, b)
        assert type(got) is int and got == a * b, f"mul({a}, {b}): expected {a * b}, got {got!r}"
