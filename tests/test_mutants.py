"""The mutation-testing harness: its operators, mutant keys and equivalent listings."""

from __future__ import annotations

import pytest
from cosmic_ray.mutating import mutate_code

from checker.catalog import load_catalog
from checker.mutants import load_equivalents, toml_entry
from checker.mutate import _OURS, mutants

SOURCE = '''"""A module."""
import torch


def f(x: torch.Tensor, d: int) -> torch.Tensor:
    """Doc 1."""
    y = x.clone().sum(dim=d, keepdim=True)
    with torch.no_grad():
        x.add_(1)
    if d in (0, 1):
        raise ValueError("d")
    return torch.where(x > 0, y, x)
'''


@pytest.mark.parametrize("cls", _OURS, ids=lambda c: c.__name__)
def test_each_operator_makes_its_examples(cls):
    for ex in cls.examples():
        assert mutate_code(ex.pre_mutation_code, cls(), 0) == ex.post_mutation_code


def test_mutants_cover_the_torch_slips_and_skip_docstrings_and_annotations():
    found = {(m.operator, m.after) for m in mutants(SOURCE)}
    afters = {a for _, a in found}
    assert "y = x.sum(dim=d, keepdim=True)" in afters  # dropped .clone()
    assert "y = x.clone().sum(keepdim=True)" in afters  # dropped dim=
    assert "y = x.clone().sum(dim=d)" in afters  # dropped keepdim=
    assert "with torch.enable_grad():" in afters
    assert "x.add(1)" in afters  # in place -> out of place
    assert "if d not in (0, 1):" in afters
    assert "return torch.where(x > 0, x, y)" in afters  # swapped arguments
    assert "pass" in afters  # a removed statement
    assert all(m.function == "f" for m in mutants(SOURCE))
    assert not any("Doc" in m.after or "int" in m.after for m in mutants(SOURCE))


def test_a_mutant_key_survives_unrelated_edits():
    keys = {m.key for m in mutants(SOURCE)}
    shifted = SOURCE.replace('import torch\n', 'import torch\n\nOTHER = 1\n\n')
    assert keys <= {m.key for m in mutants(shifted)}


@pytest.mark.parametrize("name", load_catalog().names())
def test_equivalent_listings_parse_and_give_reasons(name):
    """(A stale listing, one that no mutant matches any more, is reported by
    `kata dev mutants`: generating every kata's mutants here would cost the suite ~40 s.)"""
    for key, reason in load_equivalents(load_catalog().get(name)).items():
        assert reason.strip() and not reason.startswith("TODO"), key


def test_a_removed_decorator_counts_its_own_line():
    """parso takes the blank line above a decorator along with it: the occurrence counts the
    decorator lines, not the blank ones."""
    source = "class A:\n    @staticmethod\n    def f():\n        return 1\n\n    @staticmethod\n    def g():\n        return 2\n"
    removed = sorted(m.occurrence for m in mutants(source) if m.before == "@staticmethod")
    assert removed == [1, 2]


def test_toml_entry_round_trips(tmp_path):
    from checker.catalog import read_toml

    m = mutants(SOURCE)[0]
    data = read_toml(toml_entry(m, 'a "quoted" reason'), "x")
    entry = data["equivalent"][0]
    assert (entry["function"], entry["before"], entry["after"], entry.get("occurrence", 1)) == m.key


CPP = '''def source() -> str:
    return r"""
#include <torch/library.h>
at::Tensor f(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "f: 2-D, got ", x.dim());  // a + b in a comment stays
  return x.expand({2, 3}).contiguous().sum_to_size(x.sym_sizes());
}
TORCH_LIBRARY(KATA_NS, m) { m.def("f(Tensor x) -> Tensor"); }
"""
'''


def test_cpp_strings_get_cpp_slips_and_only_outside_literals_comments_and_includes():
    afters = {m.after for m in mutants(CPP) if m.operator == "CppSlip"}
    assert '(void)(x.dim() == 2, "f: 2-D, got ", x.dim()); // a + b in a comment stays' in afters
    assert 'TORCH_CHECK(x.dim() != 2, "f: 2-D, got ", x.dim()); // a + b in a comment stays' in afters
    assert "return x.expand({2, 3}).sum_to_size(x.sym_sizes());" in afters
    assert "return x.expand({2, 3}).contiguous().sum_to_size(x.sizes());" in afters
    assert not any("2-D" in a and "3-D" in a or "a - b" in a or "<torch" not in CPP for a in afters)
    assert all(m.function == "source" for m in mutants(CPP))
    assert mutants(CPP.replace("TORCH_LIBRARY", "NOT_CPP")) == [] or all(
        m.operator != "CppSlip" for m in mutants(CPP.replace("TORCH_LIBRARY", "NOT_CPP")))
