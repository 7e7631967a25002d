"""Known mistakes for kata 22 — memory."""

from __future__ import annotations

from checker.mistakes import mistake


@mistake("live_bytes", "Counted the elements each tensor shows (numel * element_size), not the storage it keeps alive.")
def element_bytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)
