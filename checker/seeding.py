"""Seeding the global generators as every check starts (a leaf: the plugin, the armed
processes and the diagnosis use it)."""

from __future__ import annotations

import random
import sys


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators, as every check starts."""
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.cuda.is_available():
            torch.manual_seed(seed)
        else:  # the CPU generator is all there is: skip manual_seed's lazy per-device queueing
            torch.default_generator.manual_seed(seed)
