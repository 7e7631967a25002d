"""Known mistakes for the kata dispatch."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from checker.mistakes import mistake


def _names(keys) -> list[str]:
    out = []
    while keys.highestPriorityTypeId() != torch._C.DispatchKey.Undefined:
        key = keys.highestPriorityTypeId()
        out.append(key.name)
        keys = keys.remove(key)
    return out


@mistake("dispatch_key_names", "The set's printed order was kept: repr lists the keys from the LOWEST priority up.")
def repr_order(t):
    text = str(torch._C._dispatch_keys(t))
    return [name.strip() for name in text[text.index("(") + 1 : -1].split(",") if name.strip()]


@mistake("dispatch_key_names", "Autograd keys were taken to belong only to tensors that require grad; every non-inference tensor has them.")
def autograd_only_if_requires_grad(t):
    names = _names(torch._C._dispatch_keys(t))
    return names if t.requires_grad else [n for n in names if not n.startswith("Autograd")]


@mistake("dispatch_order", "The thread-local include/exclude sets were ignored: autocast keys are on every tensor but excluded unless autocast is on.")
def tensor_keys_only(*tensors):
    keys = torch._C._dispatch_keys(tensors[0])
    for t in tensors[1:]:
        keys = keys | torch._C._dispatch_keys(t)
    return _names(keys)


@mistake("dispatch_order", "no_grad was taken to skip the Autograd keys; only inference_mode excludes them (no_grad is checked inside the autograd kernel).")
def no_grad_drops_autograd(*tensors):
    keys = torch._C._dispatch_keys(tensors[0])
    for t in tensors[1:]:
        keys = keys | torch._C._dispatch_keys(t)
    keys = (keys | torch._C._dispatch_tls_local_include_set()) - torch._C._dispatch_tls_local_exclude_set()
    names = _names(keys)
    return names if torch.is_grad_enabled() else [n for n in names if not n.startswith("Autograd")]


@mistake("dispatch_order", "The exclude set was removed before the include set was added: a key in both (ADInplaceOrView below autograd) must stay excluded.")
def excludes_before_including(*tensors):
    keys = torch._C._dispatch_keys(tensors[0])
    for t in tensors[1:]:
        keys = keys | torch._C._dispatch_keys(t)
    keys = (keys - torch._C._dispatch_tls_local_exclude_set()) | torch._C._dispatch_tls_local_include_set()
    return _names(keys)


class unwraps_to_plain(torch.Tensor):  # noqa: N801 — a mistake stands in for the class LoggingTensor
    """Unwraps the arguments to plain tensors and calls func: the results are plain tensors."""

    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append(func)

        def plain(a):
            if isinstance(a, (list, tuple)):
                return type(a)(plain(v) for v in a)
            return a.as_subclass(torch.Tensor) if isinstance(a, torch.Tensor) else a

        with torch._C.DisableTorchFunctionSubclass():
            return func(*plain(args), **(kwargs or {}))


mistake("LoggingTensor", "The arguments were unwrapped and func called on plain tensors: results are no longer LoggingTensors, so later calls go unlogged.")(unwraps_to_plain)


class drops_kwargs(torch.Tensor):  # noqa: N801
    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.calls.append(func)
        return super().__torch_function__(func, types, args, {})


mistake("LoggingTensor", "kwargs were dropped when passing the call on: dim=, keepdim=, alpha= silently disappear.")(drops_kwargs)


class logs_distinct_functions(torch.Tensor):  # noqa: N801
    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func not in cls.calls:
            cls.calls.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


mistake("LoggingTensor", "Each function was logged once (a set of functions), not once per call.")(logs_distinct_functions)


class logs_overload_packets(TorchDispatchMode):  # noqa: N801
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


mistake("AtenOpLogger", "The op packet (aten.mm) was logged instead of the overload that ran (aten.mm.default).")(logs_overload_packets)


class calls_without_kwargs(TorchDispatchMode):  # noqa: N801
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args)


mistake("AtenOpLogger", "func was called without its kwargs: kwarg-only arguments (dtype=, device=, alpha=) are lost.")(calls_without_kwargs)


class logs_each_op_once(TorchDispatchMode):  # noqa: N801
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) not in self.ops:
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


mistake("AtenOpLogger", "Each op was logged once (a set), not once per call: the log must be a multiset.")(logs_each_op_once)


class _Counter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.flops = {}

    def _add(self, name, n):
        self.flops[name] = self.flops.get(name, 0) + n

    def total(self):
        return sum(self.flops.values())

    def count(self, func, args):  # the right formula; mistakes override it
        a = torch.ops.aten
        p = func.overloadpacket
        if p is a.mm:
            (m, k), (_, n) = args[0].shape, args[1].shape
            self._add("aten.mm", 2 * m * n * k)
        elif p is a.addmm:
            (m, k), (_, n) = args[1].shape, args[2].shape
            self._add("aten.addmm", 2 * m * n * k)
        elif p is a.bmm:
            (b, m, k), (_, _, n) = args[0].shape, args[1].shape
            self._add("aten.bmm", 2 * b * m * n * k)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.count(func, args)
        return out


class one_flop_per_multiply_add(_Counter):  # noqa: N801
    def _add(self, name, n):
        super()._add(name, n // 2)


mistake("FlopCounter", "m*n*k was counted: a multiply-add is TWO floating-point operations.")(one_flop_per_multiply_add)


class addmm_counts_bias(_Counter):  # noqa: N801
    def count(self, func, args):
        super().count(func, args)
        if func.overloadpacket is torch.ops.aten.addmm:
            self._add("aten.addmm", args[1].shape[0] * args[2].shape[1])


mistake("FlopCounter", "addmm's bias add was counted too; torch's convention counts only the matrix product.")(addmm_counts_bias)


class lists_every_op_up_front(_Counter):  # noqa: N801
    def __init__(self):
        super().__init__()
        self.flops = {"aten.mm": 0, "aten.addmm": 0, "aten.bmm": 0}


mistake("FlopCounter", "Every op was listed up front with 0 FLOPs: an op that never ran appears in the counts.")(lists_every_op_up_front)


class bmm_without_batch(_Counter):  # noqa: N801
    def count(self, func, args):
        if func.overloadpacket is torch.ops.aten.bmm:
            (_, m, k), (_, _, n) = args[0].shape, args[1].shape
            self._add("aten.bmm", 2 * m * n * k)
        else:
            super().count(func, args)


mistake("FlopCounter", "bmm was counted as one matrix product; it is one per batch element.")(bmm_without_batch)


class addmm_reads_bias_as_matrix(_Counter):  # noqa: N801
    def count(self, func, args):
        if func.overloadpacket is torch.ops.aten.addmm:
            m = args[0].shape[0] if args[0].dim() == 2 else 1
            k = args[1].shape[0]
            n = args[2].shape[1]
            self._add("aten.addmm", 2 * m * n * k)
        else:
            super().count(func, args)


mistake("FlopCounter", "addmm's matrices were read from args[0] and args[1]; args[0] is the bias (addmm(bias, m1, m2)).")(addmm_reads_bias_as_matrix)


class counts_at_torch_function_level(torch.overrides.TorchFunctionMode):  # noqa: N801
    """Counts torch.matmul / F.linear calls: sees the forward only, never backward's matmuls."""

    def __init__(self):
        super().__init__()
        self.flops = {}

    def _add(self, name, n):
        self.flops[name] = self.flops.get(name, 0) + n

    def total(self):
        return sum(self.flops.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.bmm):
            a, b = args[0], args[1]
            if a.dim() == 3:
                self._add("aten.bmm", 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[-1])
            else:
                self._add("aten.mm", 2 * a.shape[-2] * a.shape[-1] * b.shape[-1])
        elif func is torch.addmm:
            self._add("aten.addmm", 2 * args[1].shape[0] * args[1].shape[1] * args[2].shape[1])
        elif func is torch.nn.functional.linear:
            x, w = args[0], args[1]
            self._add("aten.addmm", 2 * x.shape[0] * x.shape[1] * w.shape[0])
        return func(*args, **kwargs)


mistake("FlopCounter", "Counted in a TorchFunctionMode: that sees torch.matmul in forward only, never the matmuls autograd runs in backward.")(counts_at_torch_function_level)


class wraps_flop_counter_mode:  # noqa: N801
    def __init__(self):
        from torch.utils.flop_counter import FlopCounterMode

        self._mode = FlopCounterMode(display=False)

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)

    @property
    def flops(self):
        return {str(k): v for k, v in self._mode.get_flop_counts()["Global"].items()}

    def total(self):
        return self._mode.get_total_flops()


mistake("FlopCounter", "torch's own FlopCounterMode was wrapped: it is off-limits here, and what the checks compare you with.")(wraps_flop_counter_mode)
