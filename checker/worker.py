"""A warm check worker (see `kata watch`): used by the runner when one is running."""

from __future__ import annotations

from pathlib import Path


def try_run(state_dir: Path, kata, impl, **kwargs):
    """Run through this workspace's warm worker, or return None when none is running."""
    return None
