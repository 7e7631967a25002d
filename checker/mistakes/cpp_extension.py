"""Known mistakes for the cpp_extension kata: C++ sources with one plausible slip each.

Each mistake is the reference's source with one change (``_slip``), so it differs from the
reference in exactly the misconception it names. The diagnosis compares what the learner's
function returns, the source text: it names one of these only for that very source (C++
behaviour is judged by building and running it, which the diagnosis does not do).
"""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _slip(exercise: str, *changes: tuple[str, str]) -> str:
    source = getattr(_solution_of("cpp_extension"), exercise)()
    for before, after in changes:
        if before not in source:
            raise ValueError(f"{exercise}: {before!r} is not in the reference any more")
        source = source.replace(before, after)
    return source


# ----------------------------------------------------------------------------- bound_function


@mistake("bound_function", "The shapes were aligned at their first dimension: broadcasting lines them up at the last one.")
def left_aligned():
    return _slip("bound_function",
                 ("a[a.size() - 1 - i] : 1", "a[i] : 1"), ("b[b.size() - 1 - i] : 1", "b[i] : 1"),
                 ("out[n - 1 - i] =", "out[i] ="))


@mistake("bound_function", "A size of 0 was treated as stretchable like 1: only 1 broadcasts, and 0 against 1 gives 0.")
def zero_stretches():
    return _slip("bound_function", ("da != 1 && db != 1", "da > 1 && db > 1"),
                 ("out[n - 1 - i] = da == 1 ? db : da;", "out[n - 1 - i] = da <= 1 ? db : da;"))


@mistake("bound_function", "std::runtime_error was thrown: pybind11 makes it RuntimeError; py::value_error is ValueError.")
def runtime_error():
    return _slip("bound_function", ("throw py::value_error(", "throw std::runtime_error("))


@mistake("bound_function", "The binding named no arguments: without py::arg, Python callers cannot pass a= and b=.")
def no_argument_names():
    return _slip("bound_function", ('py::arg("a"), py::arg("b"),', ""))


@mistake("bound_function", "The larger size was taken without checking: sizes that clash must raise, not win.")
def max_without_check():
    return _slip("bound_function",
                 ("if (da != db && da != 1 && db != 1) {", "if (false) {"),
                 ("out[n - 1 - i] = da == 1 ? db : da;", "out[n - 1 - i] = std::max(da, db);"))


# ----------------------------------------------------------------------------- cpu_operator


@mistake("cpu_operator", "The kernel walked data_ptr as if the inputs were contiguous: a transposed or expanded tensor's memory is not in index order.")
def ignores_strides():
    return _slip("cpu_operator", ("x.expand(shape).contiguous()", "x.expand(shape)"),
                 ("y.expand(shape).contiguous()", "y.expand(shape)"))


@mistake("cpu_operator", "The kernel required equal shapes instead of broadcasting them.")
def no_broadcasting():
    return _slip("cpu_operator", ("const auto shape = at::infer_size(x.sizes(), y.sizes());",
                                  'TORCH_CHECK(x.sizes() == y.sizes(), "sqdiff: shapes differ");\n'
                                  "  const auto shape = x.sizes();"))


@mistake("cpu_operator", "The kernel was passed to m.def: that registers it as CompositeImplicitAutograd, for every dispatch key, not as the CPU kernel.")
def kernel_in_def():
    return _slip("cpu_operator",
                 ('m.def("sqdiff(Tensor x, Tensor y) -> Tensor");',
                  'm.def("sqdiff(Tensor x, Tensor y) -> Tensor", &sqdiff_cpu);'),
                 ('TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) {\n  m.impl("sqdiff", &sqdiff_cpu);\n}', ""))


@mistake("cpu_operator", "The dtypes were never compared: a mixed call fails deep inside data_ptr with ATen's message, not the operator's own.")
def no_dtype_check():
    return _slip("cpu_operator", ("TORCH_CHECK(x.scalar_type() == y.scalar_type(),",
                                  "TORCH_CHECK(true,"))


@mistake("cpu_operator", "The absolute difference was computed instead of its square.")
def absolute_difference():
    return _slip("cpu_operator", ("op[i] = d * d;", "op[i] = d < 0 ? -d : d;"))


@mistake("cpu_operator", "The schema named its arguments a and b: the names are part of the operator's contract (keyword calls, opcheck).")
def schema_argument_names():
    return _slip("cpu_operator", ('"sqdiff(Tensor x, Tensor y) -> Tensor"',
                                  '"sqdiff(Tensor a, Tensor b) -> Tensor"'))


# ----------------------------------------------------------------------------- autograd_kernel


@mistake("autograd_kernel", "y's gradient got the same sign as x's: d/dy (x - y)^2 = -2 (x - y).")
def same_sign_for_y():
    return _slip("autograd_kernel", ("at::sum_to(-g, y.sym_sizes())", "at::sum_to(g, y.sym_sizes())"))


@mistake("autograd_kernel", "The factor 2 of the derivative was dropped.")
def missing_two():
    return _slip("autograd_kernel", ("grads[0] * 2 * (x - y)", "grads[0] * (x - y)"))


# ----------------------------------------------------------------------------- meta_kernel


@mistake("meta_kernel", "The output took x's shape: the result has the broadcast shape of x and y.")
def shape_of_x():
    return _slip("meta_kernel", ("at::empty_symint(shape, x.options())",
                                 "at::empty_symint(x.sym_sizes(), x.options())"))


@mistake("meta_kernel", "The output was made with default options (float32), not x's dtype.")
def default_dtype():
    return _slip("meta_kernel", ("at::empty_symint(shape, x.options())",
                                 "at::empty_symint(shape, at::TensorOptions().device(x.device()))"))


@mistake("meta_kernel", "The meta kernel checked nothing: it must refuse what the real kernel refuses, or tracing accepts calls that fail at run time.")
def meta_checks_nothing():
    return _slip("meta_kernel", ("TORCH_CHECK(x.scalar_type() == y.scalar_type(),", "TORCH_CHECK(true,"))
