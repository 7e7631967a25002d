"""Reference solution for kata 25 — cpp_extension."""

from __future__ import annotations

import torch


def bound_function() -> str:
    return r"""
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <cstdint>
#include <string>
#include <vector>

namespace py = pybind11;

static std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return text + "]";
}

std::vector<int64_t> broadcast_shape(const std::vector<int64_t>& a,
                                     const std::vector<int64_t>& b) {
  const size_t n = std::max(a.size(), b.size());
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    const int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) {
      throw py::value_error("shapes " + shape_text(a) + " and " + shape_text(b) +
                            " are not broadcastable");
    }
    out[n - 1 - i] = da == 1 ? db : da;
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("broadcast_shape", &broadcast_shape, py::arg("a"), py::arg("b"),
        "The shape two shapes broadcast to.");
}
"""


def cpu_operator() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>

at::Tensor sqdiff_cpu(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.scalar_type() == y.scalar_type(),
              "sqdiff: x and y must have the same dtype, got ", x.scalar_type(), " and ",
              y.scalar_type());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "sqdiff: expected floating-point tensors, got ", x.scalar_type());
  const auto shape = at::infer_size(x.sizes(), y.sizes());
  const at::Tensor xc = x.expand(shape).contiguous();
  const at::Tensor yc = y.expand(shape).contiguous();
  at::Tensor out = at::empty(shape, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sqdiff", [&] {
    const scalar_t* xp = xc.data_ptr<scalar_t>();
    const scalar_t* yp = yc.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      const scalar_t d = xp[i] - yp[i];
      op[i] = d * d;
    }
  });
  return out;
}

TORCH_LIBRARY(KATA_NS, m) {
  m.def("sqdiff(Tensor x, Tensor y) -> Tensor");
}

TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) {
  m.impl("sqdiff", &sqdiff_cpu);
}
"""


def autograd_kernel() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/TensorOperators.h>
#include <torch/csrc/autograd/custom_function.h>

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SqDiff : public torch::autograd::Function<SqDiff> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& y) {
    ctx->save_for_backward({x, y});
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow(KATA_NS_STR "::sqdiff", "")
                         .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
    return op.call(x, y);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& y = saved[1];
    const at::Tensor g = grads[0] * 2 * (x - y);
    return {at::sum_to(g, x.sym_sizes()), at::sum_to(-g, y.sym_sizes())};
  }
};

at::Tensor sqdiff_autograd(const at::Tensor& x, const at::Tensor& y) {
  return SqDiff::apply(x, y);
}

TORCH_LIBRARY_IMPL(KATA_NS, Autograd, m) {
  m.impl("sqdiff", &sqdiff_autograd);
}
"""


def meta_kernel() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>

at::Tensor sqdiff_meta(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.scalar_type() == y.scalar_type(),
              "sqdiff: x and y must have the same dtype, got ", x.scalar_type(), " and ",
              y.scalar_type());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "sqdiff: expected floating-point tensors, got ", x.scalar_type());
  const auto shape = at::infer_size_symdimvector(x.sym_sizes(), y.sym_sizes());
  return at::empty_symint(shape, x.options());
}

TORCH_LIBRARY_IMPL(KATA_NS, Meta, m) {
  m.impl("sqdiff", &sqdiff_meta);
}
"""


def load(*sources: str, python_module: bool = False):
    """Already written: build ``sources`` as the checks do and load them."""
    from checker.cppbuild import build, chunk_in

    built = build([chunk_in(s, __file__) for s in sources], python_module=python_module)
    return built.module if python_module else getattr(torch.ops, built.namespace)
