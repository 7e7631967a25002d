"""Kata 25 — cpp_extension: an operator written in C++, bound, registered, differentiable, traceable.

You write C++ here. Each function below returns the C++ source of one piece as a Python
string (a raw string, r\"\"\"...\"\"\", so backslashes stay as they are). Why strings in a
Python file, rather than .cpp files beside it: one file to edit, like every kata; each
exercise is built and judged on its own (a piece that does not compile fails only its
exercise); and the compiler's errors point at the lines of THIS file. The checks build your
sources with torch.utils.cpp_extension.load_inline, with a precompiled header and a cache
keyed by the source's hash (a rebuild after an edit takes seconds; the very first build
prepares the header once, about a minute on a small machine; `kata lesson` says how).

What the checks give every build:
- ``KATA_NS``: the operator namespace, a macro (``TORCH_LIBRARY(KATA_NS, m)``), and
  ``KATA_NS_STR``, the same as a string literal. Each distinct source gets its own, so a
  rebuilt operator never collides with an earlier version's in the same process. (Plain
  C++ functions are another matter: two builds loaded into one process that both define a
  global ``sqdiff_cpu`` may both run the first one's. Keep helpers ``static`` or in an
  anonymous namespace.)
- ``TORCH_EXTENSION_NAME``: the Python module's name, for ``PYBIND11_MODULE``.
- No implicit ``#include <torch/extension.h>``: include what you use (the lesson lists the
  headers; torch/extension.h works too, but costs seconds on every rebuild).

C++ runs natively, outside Python's sandbox, so the sources are screened before they are
built: ``#include`` of torch, ATen, c10, pybind11 and standard headers only (no files,
threads or processes), no preprocessor directives but ``#include``, no registrations outside
``KATA_NS``, no process, file, thread, dynamic-loading or Python C API calls.

The operator of exercises 2–4 is ``KATA_NS::sqdiff(Tensor x, Tensor y) -> Tensor``:
``(x - y) ** 2`` elementwise, x and y broadcast together, float32 or float64.
Run `kata check` to judge this file, `kata hint` when stuck.
"""

from __future__ import annotations

import torch


def bound_function() -> str:
    """The C++ source of a Python module (pybind11) with one function, ``broadcast_shape``.

    ``broadcast_shape(a, b)`` takes two shapes (lists of non-negative ints; keyword names
    ``a`` and ``b``) and returns the shape they broadcast to, as a list of ints — what
    ``torch.broadcast_shapes(a, b)`` returns. Shapes that do not broadcast raise
    ``ValueError`` with a message naming both, each written as a list (``[3, 4]``). The module is ``PYBIND11_MODULE(
    TORCH_EXTENSION_NAME, m)``; no torch headers are needed.

    Example:
        >>> module = load(bound_function(), python_module=True)
        >>> module.broadcast_shape([3, 1], [4])
        [3, 4]
        >>> module.broadcast_shape(a=[2, 1, 5], b=[])
        [2, 1, 5]
    """
    raise NotImplementedError("bound_function: see `kata lesson`, or `kata hint` for a nudge")


def cpu_operator() -> str:
    """The C++ source that defines ``KATA_NS::sqdiff(Tensor x, Tensor y) -> Tensor`` and its
    CPU kernel.

    The schema comes from ``TORCH_LIBRARY(KATA_NS, m)``, the kernel from
    ``TORCH_LIBRARY_IMPL(KATA_NS, CPU, m)`` and nothing else is registered. The kernel
    returns a NEW contiguous tensor of the broadcast shape, in x's dtype, with
    ``(x - y) ** 2``; x and y may have any strides (transposed, sliced, expanded) and are
    never written to. Compute the values in your own loop over the data (that is the
    exercise; the checks judge the result, not the route). Errors, each a
    ``TORCH_CHECK`` (Python sees ``RuntimeError``) with your message:
    x and y of different dtypes — the message contains ``same dtype``; a dtype that is not
    floating point — ``floating-point``; shapes that do not broadcast — any message.

    Example:
        >>> ops = load(cpu_operator(), autograd_kernel(), meta_kernel())
        >>> ops.sqdiff(torch.tensor([1.0, 2.0]), torch.tensor([[0.0], [3.0]]))
        tensor([[1., 4.],
                [4., 1.]])
    """
    raise NotImplementedError("cpu_operator: see `kata lesson`, or `kata hint` for a nudge")


def autograd_kernel() -> str:
    """The C++ source of sqdiff's autograd: a ``torch::autograd::Function`` and its
    registration for the ``Autograd`` dispatch key.

    Only this piece: the checks pair it with a schema and CPU and Meta kernels of their own.
    Its forward calls the op below autograd (through the dispatcher, by name:
    ``KATA_NS_STR "::sqdiff"``) and saves what backward needs; backward returns the gradient
    of x and of y, each of its input's own shape (a broadcast input's gradient is summed
    back). It must also work while torch.compile traces it with symbolic sizes.

    Example:
        >>> ops = load(cpu_operator(), autograd_kernel(), meta_kernel())
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> ops.sqdiff(x, torch.tensor(0.5)).sum().backward()
        >>> x.grad
        tensor([1., 3.])
    """
    raise NotImplementedError("autograd_kernel: see `kata lesson`, or `kata hint` for a nudge")


def meta_kernel() -> str:
    """The C++ source of sqdiff's Meta kernel, registered for the ``Meta`` dispatch key.

    Only this piece: the checks pair it with a schema and CPU kernel of their own. It
    returns an empty contiguous tensor of the broadcast shape with x's dtype and device,
    never reading data, and refuses what the CPU kernel refuses (different dtypes, a
    dtype that is not floating point: ``RuntimeError``). Sizes may be symbolic (torch.compile with dynamic shapes), so it
    works on ``SymInt`` sizes. With it, ``torch.compile(fullgraph=True)`` captures the op.

    Example:
        >>> ops = load(cpu_operator(), autograd_kernel(), meta_kernel())
        >>> ops.sqdiff(torch.empty(3, 1, device="meta"), torch.empty(4, device="meta")).shape
        torch.Size([3, 4])
    """
    raise NotImplementedError("meta_kernel: see `kata lesson`, or `kata hint` for a nudge")


def load(*sources: str, python_module: bool = False):
    """Already written, for your own experiments: build ``sources`` as one translation unit
    the way the checks do (cached; errors point at this file) and load it. Returns the
    module for a pybind11 source, else the op namespace (``load(...).sqdiff(x, y)``).
    """
    from checker.cppbuild import build, chunk_in

    built = build([chunk_in(s, __file__) for s in sources], python_module=python_module)
    return built.module if python_module else getattr(torch.ops, built.namespace)
