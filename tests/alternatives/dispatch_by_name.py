"""An alternative correct dispatch: FLOPs read off the op's name, arguments unpacked by position,
LoggingTensor converting results itself."""

from __future__ import annotations

import functools

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def _names_highest_first(keys: torch._C.DispatchKeySet) -> list[str]:
    names = []
    while True:
        key = keys.highestPriorityTypeId()
        if key == torch._C.DispatchKey.Undefined:
            return names
        names.append(key.name)
        keys = keys.remove(key)


def dispatch_key_names(t: torch.Tensor) -> list[str]:
    return _names_highest_first(torch._C._dispatch_keys(t))


def dispatch_order(*tensors: torch.Tensor) -> list[str]:
    keys = functools.reduce(lambda a, b: a | b, (torch._C._dispatch_keys(t) for t in tensors))
    keys = keys | torch._C._dispatch_tls_local_include_set()
    keys = keys - torch._C._dispatch_tls_local_exclude_set()
    return _names_highest_first(keys)


class LoggingTensor(torch.Tensor):
    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        LoggingTensor.calls.append(func)
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **(kwargs or {}))
        return torch._tensor._convert(result, cls)


class AtenOpLogger(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))  # the overload, e.g. "aten.mm.default"
        return func(*args, **(kwargs or {}))


class FlopCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.flops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in ("aten.mm", "aten.addmm", "aten.bmm"):
            a, b = args[-2:] if name != "aten.addmm" else args[1:3]
            batch = a.shape[0] if name == "aten.bmm" else 1
            m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
            self.flops[name] = self.flops.get(name, 0) + 2 * batch * m * k * n
        return func(*args, **(kwargs or {}))

    def total(self) -> int:
        return sum(self.flops.values(), 0)
