"""Another correct cpp_extension: a kernel that reads its inputs at their strides (no
contiguous copies), a backward that uses the saved difference and is registered for
AutogradCPU, a Meta kernel that broadcasts SymInts by hand, and a binding that throws
std::invalid_argument (pybind11 makes that ValueError too)."""

from __future__ import annotations


def bound_function() -> str:
    return r"""
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

static std::string listed(const std::vector<int64_t>& shape) {
  std::string out;
  for (int64_t d : shape) out += (out.empty() ? "" : ", ") + std::to_string(d);
  return "[" + out + "]";
}

std::vector<int64_t> broadcast_shape(std::vector<int64_t> a, std::vector<int64_t> b) {
  const std::string named = listed(a) + " and " + listed(b);
  std::reverse(a.begin(), a.end());
  std::reverse(b.begin(), b.end());
  if (a.size() < b.size()) std::swap(a, b);
  for (size_t i = 0; i < b.size(); ++i) {
    if (a[i] == 1) {
      a[i] = b[i];
    } else if (b[i] != 1 && b[i] != a[i]) {
      throw std::invalid_argument("the shapes " + named + " do not broadcast");
    }
  }
  std::reverse(a.begin(), a.end());
  return a;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("broadcast_shape", &broadcast_shape, pybind11::arg("a"), pybind11::arg("b"));
}
"""


def cpu_operator() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>
#include <vector>

namespace {
template <typename T>
void strided_sqdiff(const at::Tensor& x, const at::Tensor& y, at::Tensor& out) {
  const int64_t dims = out.dim();
  const auto sizes = out.sizes();
  const auto xs = x.strides();
  const auto ys = y.strides();
  const T* xp = x.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  T* op = out.data_ptr<T>();
  std::vector<int64_t> index(dims, 0);
  for (int64_t flat = 0; flat < out.numel(); ++flat) {
    int64_t xo = 0, yo = 0;
    for (int64_t d = 0; d < dims; ++d) {
      xo += index[d] * xs[d];
      yo += index[d] * ys[d];
    }
    const T diff = xp[xo] - yp[yo];
    op[flat] = diff * diff;
    for (int64_t d = dims - 1; d >= 0; --d) {
      if (++index[d] < sizes[d]) break;
      index[d] = 0;
    }
  }
}
}  // namespace

at::Tensor sqdiff_cpu(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.dtype() == y.dtype(), "sqdiff: x and y need the same dtype");
  TORCH_CHECK(x.is_floating_point(), "sqdiff: x and y must be floating-point");
  const auto shape = at::infer_size(x.sizes(), y.sizes());
  at::Tensor out = at::empty(shape, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sqdiff", [&] {
    strided_sqdiff<scalar_t>(x.expand(shape), y.expand(shape), out);
  });
  return out;
}

TORCH_LIBRARY(KATA_NS, m) { m.def("sqdiff(Tensor x, Tensor y) -> Tensor"); }
TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) { m.impl("sqdiff", sqdiff_cpu); }
"""


def autograd_kernel() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/TensorOperators.h>
#include <torch/csrc/autograd/custom_function.h>

struct SquaredDifference : torch::autograd::Function<SquaredDifference> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& y) {
    ctx->save_for_backward({x - y, x, y});
    at::AutoDispatchBelowADInplaceOrView below;
    return c10::Dispatcher::singleton()
        .findSchemaOrThrow(KATA_NS_STR "::sqdiff", "")
        .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>()
        .call(x, y);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor twice = 2 * saved[0] * grads[0];
    return {at::sum_to(twice, saved[1].sym_sizes()), at::sum_to(twice, saved[2].sym_sizes()) * -1};
  }
};

TORCH_LIBRARY_IMPL(KATA_NS, AutogradCPU, m) {
  m.impl("sqdiff", [](const at::Tensor& x, const at::Tensor& y) {
    return SquaredDifference::apply(x, y);
  });
}
"""


def meta_kernel() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <vector>

at::Tensor sqdiff_meta(const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.dtype() == y.dtype(), "sqdiff: x and y need the same dtype");
  TORCH_CHECK(x.is_floating_point(), "sqdiff: x and y must be floating-point");
  const auto a = x.sym_sizes();
  const auto b = y.sym_sizes();
  const size_t n = std::max(a.size(), b.size());
  std::vector<c10::SymInt> shape(n);
  for (size_t i = 0; i < n; ++i) {
    c10::SymInt da = i < a.size() ? a[a.size() - 1 - i] : c10::SymInt(1);
    c10::SymInt db = i < b.size() ? b[b.size() - 1 - i] : c10::SymInt(1);
    TORCH_CHECK(da == 1 || db == 1 || da == db, "sqdiff: shapes do not broadcast");
    shape[n - 1 - i] = da == 1 ? db : da;
  }
  return at::empty_symint(shape, x.options());
}

TORCH_LIBRARY_IMPL(KATA_NS, Meta, m) { m.impl("sqdiff", sqdiff_meta); }
"""
