"""Reference solution for kata 20 — compile_guards."""

from __future__ import annotations

import torch
import torch._dynamo


def predict_compiles(shapes: list[tuple[int, ...]], dynamic: bool | None, limit: int = 8) -> int:
    entries: list[tuple] = []  # one guard pattern per compiled graph: a size, or "dyn" (>= 2)
    seen: list[int] | None = None  # automatic dynamic: the sizes of the first call...
    changed: list[bool] = []  # ...and which dims have been seen to change since
    count = 0

    def fits(pattern: tuple, shape: tuple[int, ...]) -> bool:
        return all(p == v or (p == "dyn" and v >= 2) for p, v in zip(pattern, shape, strict=True))

    for shape in shapes:
        if any(fits(e, shape) for e in entries):
            continue  # a cached graph's guards pass: no compile
        if count >= limit:
            continue  # recompile limit hit: dynamo runs the function eagerly from now on
        if dynamic is False:
            entries.append(tuple(shape))
        elif dynamic is True:
            entries.append(tuple("dyn" if v >= 2 else v for v in shape))  # 0/1 specialise
        else:
            if seen is None:
                seen, changed = list(shape), [False] * len(shape)
            changed = [c or s != v for c, s, v in zip(changed, seen, shape, strict=True)]
            entries.append(tuple("dyn" if c and v >= 2 else v for c, v in zip(changed, shape, strict=True)))
        count += 1
    return count


def mark_batch_dynamic(x: torch.Tensor) -> torch.Tensor:
    torch._dynamo.mark_dynamic(x, 0)
    return x


def hparams_as_tensors(hparams: dict, like: torch.Tensor) -> dict:
    out = {}
    for name, value in hparams.items():
        if type(value) is float:
            out[name] = torch.tensor(value, dtype=like.dtype, device=like.device)
        else:
            out[name] = value  # ints shape tensors and bools steer Python: they stay Python
    return out


def clip_rows(x: torch.Tensor, max_norm: float) -> torch.Tensor:
    norms = x.norm(dim=1, keepdim=True)
    scale = (max_norm / norms).clamp(max=1.0)  # a zero row gives inf, clamped to 1
    return x * scale


def run_locked(step, batches: list[torch.Tensor], lrs: list[float]) -> list[torch.Tensor]:
    def lr_of(i: int) -> torch.Tensor:
        return torch.tensor(lrs[i], dtype=batches[i].dtype, device=batches[i].device)

    first = batches[0]
    torch._dynamo.mark_dynamic(first, 0)
    outputs = [step(first, lr_of(0))]  # the warm-up: the one and only compile
    with torch.compiler.set_stance("fail_on_recompile"):
        for i in range(1, len(batches)):
            outputs.append(step(batches[i], lr_of(i)))
    return outputs
