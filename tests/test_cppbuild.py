"""checker.cppbuild's pure parts: the screen of learner C++, the first compiler error mapped
into the learner's file, where a source sits in its file, and which header a build gets.
(Real builds are proven by the cpp_extension kata's own runs in tests/test_katas.py.)"""

from __future__ import annotations

import pytest

from checker.cppbuild import chunk_in, first_error, pch_kind, screen

GOOD = """
#include <torch/library.h>
#include <ATen/core/Tensor.h>
#include <vector>
// system("no") in a comment is fine, and so is a string:
static const char* note = "fork() exec() open()";
at::Tensor f(const at::Tensor& x) { return x; }
TORCH_LIBRARY(KATA_NS, m) { m.def("f(Tensor x) -> Tensor"); }
TORCH_LIBRARY_IMPL(KATA_NS, CPU, m) { m.impl("f", &f); }
"""


def test_a_plain_operator_source_passes_the_screen():
    assert screen(GOOD) is None


@pytest.mark.parametrize(("line", "why"), [
    ('int r = std::system("ls");', "processes"),
    ("#include <fstream>", "#include <fstream>"),
    ("#include <unistd.h>", "#include <unistd.h>"),
    ('#include "../../checker/x.h"', "#include"),
    ("#define S(a, b) a##b", "#define"),
    ('extern "C" int puts(const char*);', "extern"),
    ("TORCH_LIBRARY_IMPL(aten, CPU, m) {}", "KATA_NS"),
    ("TORCH_LIBRARY_IMPL(_, Autograd, m) {}", "KATA_NS"),
    ("std::thread t([] {});", "threads"),
    ('void* h = dlopen("x", 0);', "dlopen"),
    ('PyRun_SimpleString("1");', "Python C API"),
    ('auto os = pybind11::module_::import("os");', "module_"),
    ('asm("nop");', "asm"),
])
def test_the_screen_refuses_what_reaches_past_the_kata(line, why):
    found = screen(GOOD + line + "\n")
    assert found is not None and why in found[1], found
    assert found[0] == GOOD.count("\n") + 1  # the line, counted in the source


def test_the_first_error_is_shown_in_the_learners_file():
    log = """ninja: build stopped
In file included from /x/main.cpp:3:
kata.py: In function 'at::Tensor f(const at::Tensor&)':
kata.py:57:12: error: 'y' was not declared in this scope
   57 |   return y;
      |          ^
kata.py:60:1: error: expected '}'
"""
    shown = first_error(log, {"kata.py": "/home/me/katas/kata.py"})
    assert shown.splitlines()[0] == "/home/me/katas/kata.py:57:12: error: 'y' was not declared in this scope"
    assert "   57 |   return y;" in shown and "60:1" not in shown


def test_an_error_in_a_header_names_the_learners_line_that_led_there():
    log = """kata.py:12:5:   required from here
/torch/include/c10/x.h:40:3: error: static assertion failed
"""
    shown = first_error(log, {"kata.py": "/k/kata.py"})
    assert shown.startswith("/torch/include/c10/x.h:40:3: error") and "from your code: /k/kata.py:12:5" in shown


def test_a_source_is_found_at_its_line_in_its_file(tmp_path):
    path = tmp_path / "k.py"
    path.write_text('def f():\n    return r"""\n#include <a.h>\nint x;\n"""\n')
    assert chunk_in("\n#include <a.h>\nint x;\n", path).line == 2
    assert chunk_in("#include <a.h>\nint y;\n", path).line == 3  # by its first line
    assert chunk_in("nowhere\n", path).line == 1


def test_each_kind_of_source_gets_its_header():
    assert pch_kind(["#include <pybind11/pybind11.h>"]) == "pybind11"
    assert pch_kind(["#include <torch/library.h>\n#include <torch/csrc/autograd/custom_function.h>"]) == "autograd"
    assert pch_kind(["#include <torch/library.h>", "#include <ATen/ops/empty.h>"]) == "ops"
