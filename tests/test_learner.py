"""Rules and helpers, in-process: forbidding by object, import refusal, tamper guard, comparisons."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from checker.catalog import Rules
from checker.helpers import CheckFailure, assert_close, assert_equal, storage_strip
from checker.learner import LearnerFileError, compile_source, load_module
from checker.sandbox.errors import ForbiddenAPI
from checker.sandbox.forbid import forbid_callables, no_escape
from checker.sandbox.integrity import Snapshot
from checker.sandbox.window import rules_window


def test_forbidden_function_is_caught_through_an_alias():
    alias = torch.autograd.grad
    x = torch.ones(2, requires_grad=True)
    with forbid_callables(Rules(forbid=("torch.autograd.grad",), explain="by hand")):
        with pytest.raises(ForbiddenAPI, match="off-limits in this kata: by hand"):
            alias((x * x).sum(), x)
    assert alias((x * x).sum(), x)[0].tolist() == [2.0, 2.0]  # restored afterwards


def test_forbidden_attribute_raises_when_read_and_comes_back():
    x = torch.zeros(2, 3, 4)
    with forbid_callables(Rules(forbid=("torch.Tensor.T",), explain="say permute")):
        with pytest.raises(ForbiddenAPI, match="say permute"):
            x.T  # noqa: B018 - the read is what is refused
        assert x.mT.shape == (2, 4, 3)
    assert x.T.shape == (4, 3, 2) and "T" not in torch.Tensor.__dict__


def test_forbidden_class_blocks_construction_of_subclasses():
    with forbid_callables(Rules(forbid=("torch.optim.Optimizer",))):
        with pytest.raises(ForbiddenAPI):
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def test_optional_forbid_is_skipped_when_absent_and_required_one_is_not():
    with forbid_callables(Rules(forbid=("torch.no_such_function?",))):
        pass
    with pytest.raises((AttributeError, ValueError)), forbid_callables(Rules(forbid=("torch.no_such_function",))):
        pass


def test_os_exit_raises_in_the_window_but_a_forked_child_really_exits():
    with no_escape(allow_processes=True):
        with pytest.raises(SystemExit):
            os._exit(3)
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    with no_escape(), pytest.raises(ForbiddenAPI, match="starting processes"):
        os.fork()


@pytest.mark.parametrize("source", ["import torch\n", "from torch import nn\n",
                                    "def f():\n    import torch.nn\n",
                                    "import importlib\nm = importlib.import_module('torch')\n",
                                    "m = __import__('torch')\n",
                                    "import sys\nm = sys.modules['torch']\n"])
def test_static_import_refusal(tmp_path, source):
    path = tmp_path / "f.py"
    path.write_text(source)
    with pytest.raises(LearnerFileError, match="forbids importing torch"):
        compile_source(path, Rules(forbid_imports=("torch",)))


def test_runtime_import_refusal_for_hidden_imports(tmp_path):
    path = tmp_path / "f.py"
    path.write_text("def f():\n    return __import__('to' + 'rch')\n")
    rules = Rules(forbid_imports=("torch",))
    module = load_module(path, rules)
    with rules_window(rules, str(path.resolve())), pytest.raises(ForbiddenAPI):
        module.f()


def test_snapshot_restores_and_names_what_changed():
    real = torch.allclose
    snapshot = Snapshot([("torch", torch, ("allclose",))], 1)
    assert snapshot.changes() == []
    torch.allclose = lambda *a, **k: True
    assert snapshot.changes() == ["torch.allclose"]
    assert torch.allclose is real and snapshot.changes() == []


def test_snapshot_sees_methods_a_class_inherits_or_defines():
    snapshot = Snapshot([("torch.Tensor", torch.Tensor, None)], 1)
    assert snapshot.changes() == []  # no false alarm: a classmethod read twice is the same object
    inherited = torch.Tensor.abs  # defined on torch._C.TensorBase: a new key shadows it
    torch.Tensor.abs = lambda self: self
    assert snapshot.changes() == ["torch.Tensor.abs"]
    assert torch.Tensor.abs is inherited and "abs" not in torch.Tensor.__dict__
    own = torch.Tensor.__dict__["__torch_function__"]
    torch.Tensor.__torch_function__ = classmethod(lambda cls, *a, **k: None)
    assert snapshot.changes() == ["torch.Tensor.__torch_function__"]
    assert torch.Tensor.__dict__["__torch_function__"] is own


def test_snapshot_lets_a_module_gain_attributes_but_not_lose_them():
    import types

    module = types.ModuleType("m")
    module.f = print
    snapshot = Snapshot([("m", module, None)], 1)
    module.lazily_imported = 1  # a submodule imported later becomes an attribute
    assert snapshot.changes() == []
    del module.f
    assert snapshot.changes() == ["m.f"] and module.f is print


@pytest.mark.parametrize("tags", [True, False], ids=["version-tags", "by-identity"])
def test_snapshot_compares_only_what_changed_and_misses_nothing(tags, monkeypatch):
    """Where the interpreter keeps dict version tags (CPython 3.10-3.13), a call compares only
    the namespaces whose tag moved; elsewhere every value. Both see the same changes."""
    import types

    from checker.sandbox import integrity

    if not tags:
        monkeypatch.setattr(integrity, "_tag_cells", lambda namespaces: None)
    elif sys.implementation.name == "cpython" and sys.version_info[:2] <= (3, 13):
        assert integrity._tag_cells([{}]) is not None, "this interpreter's dicts keep version tags"
    module, near = types.ModuleType("m"), types.ModuleType("n")
    module.f, module.g, near.h = print, len, repr
    snapshot = Snapshot([("n", near, ("h",)), ("m", module, None)], 1)
    module.unguarded = 1  # a name the near part does not hold: no alarm, near or full
    near.other = 2
    assert snapshot.changes(True) == [] and snapshot.changes() == []
    near.h = str
    assert snapshot.changes(True) == ["n.h"] and near.h is repr
    module.g = abs
    assert snapshot.changes(True) == [] and snapshot.changes() == ["m.g"] and module.g is len
    module.f = abs
    module.f = print  # changed and put back: nothing to name
    assert snapshot.changes() == []


def test_assert_close_reports_largest_error_and_index():
    expected = torch.zeros(3, 4, dtype=torch.float64)
    got = expected.clone()
    got[2, 1] = 0.5
    with pytest.raises(CheckFailure) as info:
        assert_close(got, expected, "f(x)")
    text = str(info.value)
    assert "Largest error at index [2, 1]" in text and "stride=(4, 1)" in text


def test_assert_close_shape_dtype_and_bool():
    e = torch.zeros(2, 3)
    with pytest.raises(CheckFailure, match="shapes differ"):
        assert_close(torch.zeros(3, 2), e, "f")
    with pytest.raises(CheckFailure, match="dtypes differ"):
        assert_close(torch.zeros(2, 3, dtype=torch.float64), e, "f")
    mask = torch.tensor([True, False])
    assert_close(mask.clone(), mask, "mask")
    with pytest.raises(CheckFailure):
        assert_close(torch.tensor([True, True]), mask, "mask")


def test_assert_equal_is_strict_about_bools_and_ints():
    assert_equal([1, 2], (1, 2), "seq")
    with pytest.raises(CheckFailure):
        assert_equal(True, 1, "flag")
    with pytest.raises(CheckFailure):
        assert_equal(1, True, "flag")


def test_storage_strip_marks_cells():
    picture = storage_strip(8, ((2,), (2,), 1), ((2,), (3,), 1))
    assert "cells    .#.EG..." in picture
