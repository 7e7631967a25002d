"""Kata 22 — dispatch: how a call like ``torch.mm(a, b)`` reaches its kernel.

A PyTorch call passes two Python-visible layers. First ``__torch_function__``: before the
call enters C++, any tensor argument whose class overrides it gets to handle the call, with
the *public* function (``torch.Tensor.add``, ``torch.nn.functional.softmax``). Then the
dispatcher: the call becomes an aten operator (``aten.addmm.default``), and the dispatcher
walks the *dispatch keys* — Autograd, ADInplaceOrView, Python, CPU, ... — from the highest
priority down, calling one kernel per key. The Python key is where a TorchDispatchMode
sees every aten op, backward's included.

Rules: ``torch.utils.flop_counter.FlopCounterMode`` (and its flop formulas) are off-limits:
the checks compare your FlopCounter with it. Run `kata check` to judge this file, `kata hint`
when stuck.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode


def dispatch_key_names(t: torch.Tensor) -> list[str]:
    """The names of the dispatch keys in ``t``'s own key set, from the highest priority down.

    A list of str, each key once; ``t`` is not changed.

    Example:
        >>> dispatch_key_names(torch.randn(2, 3))
        ['AutocastCPU', 'AutogradCPU', 'ADInplaceOrView', 'CPU']
        >>> with torch.inference_mode():
        ...     dispatch_key_names(torch.randn(2, 3))
        ['AutocastCPU', 'CPU']
    """
    raise NotImplementedError("dispatch_key_names: see `kata lesson`, or `kata hint` for a nudge")


def dispatch_order(*tensors: torch.Tensor) -> list[str]:
    """The keys the dispatcher would walk for an op on these tensors, right now, highest first.

    The key set the dispatcher would compute for an op whose tensor arguments are
    ``tensors`` (one or more), at the moment of the call: under whatever modes and context
    managers are active then. Give its names, highest first, as above (kernels that are
    fallthroughs for a given op are not your concern here).

    Example:
        >>> x = torch.randn(2, 3)
        >>> dispatch_order(x)
        ['AutogradCPU', 'ADInplaceOrView', 'BackendSelect', 'CPU']
        >>> with torch.autocast("cpu"):
        ...     dispatch_order(x)[0]
        'AutocastCPU'
    """
    raise NotImplementedError("dispatch_order: see `kata lesson`, or `kata hint` for a nudge")


class LoggingTensor(torch.Tensor):
    """A tensor subclass that logs every torch function called on it, via __torch_function__.

    ``LoggingTensor.calls`` is one class-level list. Each call of a torch function (a
    ``torch.*`` function, a ``Tensor`` method or operator, a property such as ``.shape``, a
    ``torch.nn.functional`` function) that has a LoggingTensor argument appends ``func`` —
    the function object itself — once. Calls made *inside* that function are not logged
    again, and tensor results are LoggingTensors, so the next call is logged too.

    Example:
        >>> x = torch.randn(2, 3).as_subclass(LoggingTensor)
        >>> y = (x * 2).sum(dim=0)
        >>> [f.__name__ for f in LoggingTensor.calls], type(y).__name__
        (['mul', 'sum'], 'LoggingTensor')
    """

    calls: list = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise NotImplementedError("LoggingTensor: see `kata lesson`, or `kata hint` for a nudge")


class AtenOpLogger(TorchDispatchMode):
    """A TorchDispatchMode that records every aten op that reaches it, in order.

    ``self.ops`` is a list of ``str(func)``: the op *overload*, e.g. ``"aten.mm.default"``
    or ``"aten.add.Tensor"``, once per call (repeats included). The ops must still run
    normally: results and gradients under the mode equal those without it.

    Example:
        >>> with AtenOpLogger() as log:
        ...     _ = torch.mm(torch.randn(2, 3), torch.randn(3, 4)).sum()
        >>> log.ops
        ['aten.randn.default', 'aten.randn.default', 'aten.mm.default', 'aten.sum.default']
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        raise NotImplementedError("AtenOpLogger: see `kata lesson`, or `kata hint` for a nudge")


class FlopCounter(TorchDispatchMode):
    """Count the floating-point operations of every mm, addmm and bmm that runs under it.

    ``self.flops`` maps the op's name (``"aten.mm"``, ``"aten.addmm"``, ``"aten.bmm"``) to the
    FLOPs it did in total — only ops that ran appear. A multiply-add counts as 2 FLOPs, and
    addmm's bias add is not counted (that is torch's own convention). ``total()`` is the sum.
    Backward's matmuls count too.

    Example:
        >>> with FlopCounter() as fc:
        ...     _ = torch.mm(torch.randn(2, 3), torch.randn(3, 4))
        >>> fc.flops, fc.total()
        ({'aten.mm': 48}, 48)
    """

    def __init__(self) -> None:
        super().__init__()
        self.flops: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        raise NotImplementedError("FlopCounter: see `kata lesson`, or `kata hint` for a nudge")

    def total(self) -> int:
        raise NotImplementedError("FlopCounter.total: see `kata lesson`, or `kata hint` for a nudge")
