"""Another correct cpp_extension: lambdas bound and registered directly, the dtype switch
written by hand instead of AT_DISPATCH, broadcasting through at::expand_outplace, a backward
that computes only the gradients asked for (needs_input_grad), and a binding that builds a
py::list and writes the shapes of its error message with py::str."""

from __future__ import annotations


def bound_function() -> str:
    return r"""
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <string>
#include <vector>

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def(
      "broadcast_shape",
      [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
        const int64_t na = a.size(), nb = b.size();
        const int64_t n = na > nb ? na : nb;
        py::list out;
        for (int64_t k = n; k > 0; --k) {
          const int64_t da = k <= na ? a[na - k] : 1;
          const int64_t db = k <= nb ? b[nb - k] : 1;
          if (da == db || db == 1) {
            out.append(da);
          } else if (da == 1) {
            out.append(db);
          } else {
            // pybind11 writes a list as Python does: [2, 3]
            throw py::value_error(std::string(py::str(py::cast(a))) + " and " +
                                  std::string(py::str(py::cast(b))) + " do not broadcast");
          }
        }
        return out;
      },
      py::arg("a"), py::arg("b"));
}
"""


def cpu_operator() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>

template <typename T>
static at::Tensor compute(const at::Tensor& x, const at::Tensor& y) {
  auto both = at::expand_outplace(x, y);
  const at::Tensor a = std::get<0>(both)->contiguous();
  const at::Tensor b = std::get<1>(both)->contiguous();
  at::Tensor out = at::empty(a.sizes(), a.options());
  const T* pa = a.const_data_ptr<T>();
  const T* pb = b.const_data_ptr<T>();
  T* po = out.mutable_data_ptr<T>();
  const int64_t n = out.numel();
  for (int64_t i = 0; i < n; ++i) po[i] = (pa[i] - pb[i]) * (pa[i] - pb[i]);
  return out;
}

TORCH_LIBRARY(KATA_NS, m) { m.def("sqdiff(Tensor x, Tensor y) -> Tensor"); }

TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) {
  m.impl("sqdiff", [](const at::Tensor& x, const at::Tensor& y) -> at::Tensor {
    TORCH_CHECK(x.scalar_type() == y.scalar_type(), "sqdiff wants the same dtype for x and y");
    if (x.scalar_type() == at::kDouble) return compute<double>(x, y);
    if (x.scalar_type() == at::kFloat) return compute<float>(x, y);
    TORCH_CHECK(false, "sqdiff works on floating-point tensors (float32, float64), not ",
                x.scalar_type());
  });
}
"""


def autograd_kernel() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/TensorOperators.h>
#include <torch/csrc/autograd/custom_function.h>

namespace {
class Sq : public torch::autograd::Function<Sq> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor x, at::Tensor y) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto handle = c10::Dispatcher::singleton().findSchemaOrThrow(
        KATA_NS_STR "::sqdiff", "");
    at::Tensor out = handle.typed<at::Tensor(const at::Tensor&, const at::Tensor&)>().call(x, y);
    ctx->save_for_backward({x, y});
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    at::Tensor diff = (saved[0] - saved[1]) * grad_outputs[0] * 2;
    at::Tensor gx, gy;
    if (ctx->needs_input_grad(0)) gx = at::sum_to(diff, saved[0].sym_sizes());
    if (ctx->needs_input_grad(1)) gy = -at::sum_to(diff, saved[1].sym_sizes());
    return {gx, gy};
  }
};
}  // namespace

TORCH_LIBRARY_IMPL(KATA_NS, Autograd, m) {
  m.impl("sqdiff", [](const at::Tensor& x, const at::Tensor& y) { return Sq::apply(x, y); });
}
"""


def meta_kernel() -> str:
    return r"""
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <ATen/ExpandUtils.h>
#include <ATen/ops/empty.h>

TORCH_LIBRARY_IMPL(KATA_NS, Meta, m) {
  m.impl("sqdiff", [](const at::Tensor& x, const at::Tensor& y) {
    TORCH_CHECK(x.scalar_type() == y.scalar_type(), "sqdiff wants the same dtype for x and y");
    TORCH_CHECK(x.is_floating_point(), "sqdiff works on floating-point tensors, not ",
                x.scalar_type());
    return at::empty_symint(at::infer_size_symdimvector(x.sym_sizes(), y.sym_sizes()),
                            x.options());
  });
}
"""
