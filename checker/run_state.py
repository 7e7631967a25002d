"""A check run's state on pytest's config, and what each check derives from it: its seed, its
exercise, and whether this machine can run it at all (``needs_device``). Shared by the plugin (checker.plugin) and the diagnosis it runs in the check
process (checker.diagnose_check), so that neither imports the other.
"""

from __future__ import annotations

import zlib

import pytest

from checker.report import check_id

STATE = pytest.StashKey[dict]()
COUNTS = pytest.StashKey[dict]()  # calls into learner code per function, for the diagnosis
ALL = pytest.StashKey[list]()  # every collected check, before a warm worker's split: their inputs


def state_of(config: pytest.Config) -> dict | None:
    return config.stash.get(STATE, None)


def check_seed(config: pytest.Config, nodeid: str) -> int:
    """The seed of one check: the run's seed and the check's id, hashed."""
    state = state_of(config)
    base = state["seed"] if state else 0
    return zlib.crc32(f"{base}:{nodeid}".encode()) & 0x7FFFFFFF


def exercise_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("exercise")
    return marker.args[0] if marker and marker.args else None


def _device_available(kind: str) -> bool:
    """Whether this machine has a torch device of ``kind`` ("cpu", "cuda", "xpu", ...)."""
    if kind == "cpu":
        return True
    import torch

    module = getattr(torch, kind, None)
    try:
        return bool(module is not None and module.is_available())
    except Exception:  # a backend that cannot even tell: none here
        return False


def _why_not(kind: str) -> str:
    """Why a check that needs a ``kind`` device cannot run here."""
    import os

    from checker.limits import CUDA_CONTROL_DEVICE

    if kind == "cuda" and os.path.exists(CUDA_CONTROL_DEVICE):  # a driver, but no CUDA here
        return ("needs a cuda device: this machine has an NVIDIA driver, but CUDA did not start "
                "in the check process (with KATA_MEMORY_CAP=as, the address-space cap stops it; "
                "unset it)")
    return f"needs a {kind} device, and this machine has none"


def not_applicable(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Take the checks this machine cannot run (``needs_device``) out of ``items`` and note
    them, with why, for the report. Decided at collection: no learner code has run yet."""
    state = state_of(config)
    if state is None:
        return
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("needs_device")
        kind = str(marker.args[0]) if marker and marker.args else None
        if kind is None or _device_available(kind):
            kept.append(item)
            continue
        dropped.append(item)
        state.setdefault("not_applicable", {}).setdefault(exercise_of(item) or "?", []).append(
            {"id": check_id(item.nodeid),
             "reason": _why_not(kind)})
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
