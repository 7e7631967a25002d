"""Known mistakes for the kata compile_guards.

Within an exercise, the mistakes that only a compile can reveal come last: the diagnosis re-runs
the failing check with each earlier mistake first, and those fail before compiling anything.
"""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _ref():
    return _solution_of("compile_guards")


@mistake("predict_compiles", "The recompile limit was forgotten: after `limit` graphs dynamo stops compiling and runs eagerly.")
def no_recompile_limit(shapes, dynamic, limit=8):
    return _ref().predict_compiles(shapes, dynamic, limit=10**9)


@mistake("predict_compiles", "dynamic=True was taken to make every size symbolic; sizes 0 and 1 are always specialised.")
def no_size_one_specialisation(shapes, dynamic, limit=8):
    if dynamic is True:
        return min(limit, 1 if shapes else 0)
    return _ref().predict_compiles(shapes, dynamic, limit)


@mistake("predict_compiles", "The default (dynamic=None) was taken for dynamic=True; it compiles a static graph first.")
def default_is_dynamic(shapes, dynamic, limit=8):
    return _ref().predict_compiles(shapes, True if dynamic is None else dynamic, limit)


@mistake("predict_compiles", "Automatic dynamic was taken to make EVERY dim symbolic on the first recompile; only the dims that changed are.")
def auto_dynamic_all_dims(shapes, dynamic, limit=8):
    if dynamic is not None or not shapes:
        return _ref().predict_compiles(shapes, dynamic, limit)
    first = tuple(shapes[0])
    rest = [s for s in shapes if tuple(s) != first]
    return min(limit, 1 + (1 if rest else 0) + len({tuple(s) for s in rest if 1 in s}))


@mistake("predict_compiles", "Measured instead of predicted: torch.compile is off-limits inside your function.")
def asks_the_compiler(shapes, dynamic, limit=8):
    import torch
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    compiled = torch.compile(lambda x: x.sin() + x.sum(), backend=counter, dynamic=dynamic)
    for shape in shapes:
        compiled(torch.zeros(shape))
    return counter.frame_count


@mistake("mark_batch_dynamic", "Every dim was marked dynamic: the other dims lose their specialisation (a new feature size no longer recompiles).")
def marks_every_dim(x):
    import torch._dynamo

    torch._dynamo.mark_dynamic(x, list(range(x.dim())))
    return x


@mistake("mark_batch_dynamic", "The last dim was marked instead of dim 0: the batch stays static, so a new batch size recompiles.")
def marks_last_dim(x):
    import torch._dynamo

    torch._dynamo.mark_dynamic(x, x.dim() - 1)
    return x


@mistake("hparams_as_tensors", "Ints and bools were made tensors too: a size must be a Python int and an `if` needs a Python bool.")
def converts_everything(hparams, like):
    import torch

    return {k: torch.tensor(v, dtype=like.dtype if type(v) is float else None, device=like.device)
            for k, v in hparams.items()}


@mistake("hparams_as_tensors", "The tensors were made float32 (torch.tensor's default) instead of like's dtype.")
def default_dtype_tensors(hparams, like):
    import torch

    return {k: torch.tensor(v, device=like.device) if type(v) is float else v for k, v in hparams.items()}


@mistake("hparams_as_tensors", "The floats were left as Python floats: the first graph guards on their values, so a new value recompiles (once, under the default dynamic=None; every time with dynamic=False).")
def floats_stay_floats(hparams, like):
    return dict(hparams)


@mistake("clip_rows", "Every row was scaled to norm max_norm, short rows too; only rows LONGER than max_norm change.")
def normalises_every_row(x, max_norm):
    norms = x.norm(dim=1, keepdim=True)
    return x * (max_norm / norms.clamp_min(1e-300))


@mistake("clip_rows", "A zero row was divided by its zero norm: 0/0 is NaN.")
def zero_row_nan(x, max_norm):
    norms = x.norm(dim=1, keepdim=True)
    return x / norms * norms.clamp(max=max_norm)


@mistake("clip_rows", "The decision stayed in Python (`.item()` on a tensor): dynamo must break the graph there.")
def item_graph_break(x, max_norm):
    norms = x.norm(dim=1, keepdim=True)
    if norms.max().item() <= max_norm:
        return x.clone()
    return x * (max_norm / norms).clamp(max=1.0)


@mistake("run_locked", "The stance was locked before the warm-up: 'fail_on_recompile' forbids even the first compile.")
def locked_before_warmup(step, batches, lrs):
    import torch

    with torch.compiler.set_stance("fail_on_recompile"):
        return [step(x, torch.tensor(lr, dtype=x.dtype)) for x, lr in zip(batches, lrs, strict=False)]


@mistake("run_locked", "lr was passed as a Python float: the warm-up graph guards on its value, and the first new lr needs a recompile.")
def lr_as_float(step, batches, lrs):
    import torch
    import torch._dynamo

    torch._dynamo.mark_dynamic(batches[0], 0)
    outs = [step(batches[0], lrs[0])]
    with torch.compiler.set_stance("fail_on_recompile"):
        outs += [step(x, lr) for x, lr in zip(batches[1:], lrs[1:], strict=False)]
    return outs


@mistake("run_locked", "The batch dim was not marked dynamic: the warm-up graph is static, and the next batch size needs a recompile.")
def warmup_not_dynamic(step, batches, lrs):
    import torch

    outs = [step(batches[0], torch.tensor(lrs[0], dtype=batches[0].dtype))]
    with torch.compiler.set_stance("fail_on_recompile"):
        outs += [step(x, torch.tensor(lr, dtype=x.dtype)) for x, lr in zip(batches[1:], lrs[1:], strict=False)]
    return outs


@mistake("run_locked", "set_stance was called as a plain function: the stance stays changed for the whole process after you return.")
def stance_leaks(step, batches, lrs):
    import torch
    import torch._dynamo

    torch._dynamo.mark_dynamic(batches[0], 0)
    outs = [step(batches[0], torch.tensor(lrs[0], dtype=batches[0].dtype))]
    torch.compiler.set_stance("fail_on_recompile")
    outs += [step(x, torch.tensor(lr, dtype=x.dtype)) for x, lr in zip(batches[1:], lrs[1:], strict=False)]
    return outs
