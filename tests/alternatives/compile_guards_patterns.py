"""An alternative correct compile_guards: a cache of guard patterns kept per dim, weak marks,
new_tensor, clamp_min and a per-call stance."""

from __future__ import annotations

import torch
import torch._dynamo


def predict_compiles(shapes, dynamic, limit=8):
    graphs = []
    first = None
    moved = set()
    compiles = 0
    for shape in shapes:
        shape = tuple(shape)
        if any(all(g == s or (g is None and s > 1) for g, s in zip(graph, shape, strict=True)) for graph in graphs):
            continue
        if compiles == limit:
            continue
        if dynamic is None:
            if first is None:
                first = shape
            moved |= {i for i, (a, b) in enumerate(zip(first, shape, strict=True)) if a != b}
            graphs.append(tuple(None if i in moved and s > 1 else s for i, s in enumerate(shape)))
        elif dynamic:
            graphs.append(tuple(None if s > 1 else s for s in shape))
        else:
            graphs.append(shape)
        compiles += 1
    return compiles


def mark_batch_dynamic(x):
    torch._dynamo.maybe_mark_dynamic(x, 0)
    return x


def hparams_as_tensors(hparams, like):
    return {k: like.new_tensor(v) if isinstance(v, float) else v for k, v in hparams.items()}


def clip_rows(x, max_norm):
    return x * max_norm / x.norm(dim=1, keepdim=True).clamp(min=max_norm)


def run_locked(step, batches, lrs):
    outs = []
    for i, (b, lr) in enumerate(zip(batches, lrs, strict=True)):
        lr_t = torch.tensor(lr, dtype=b.dtype, device=b.device)
        if i == 0:
            torch._dynamo.mark_dynamic(b, 0)
            outs.append(step(b, lr_t))
        else:
            with torch.compiler.set_stance("fail_on_recompile"):
                outs.append(step(b, lr_t))
    return outs
