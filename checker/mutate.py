"""Mutants of a reference solution: every small plausible slip, one source file each.

Why cosmic-ray: it is a maintained mutation-testing library whose operators work one at a
time on source text (``cosmic_ray.mutating.mutate_code(code, operator, occurrence)``), so
each mutant comes out as a complete file that ``kata check --file`` judging, through the
warm worker, takes as it is. mutmut 3 rewrites a whole package into trampolines switched by
an environment variable and driven by its own test runner, which the kata's runner (a forked,
rules-guarded child per file) cannot feed. cosmic-ray supplies the generic operators
(comparisons, arithmetic, constants +/-1, booleans, unary signs, loops, decorators); the
PyTorch-shaped slips it lacks are written below as cosmic-ray ``Operator`` subclasses on
parso's tree, the same interface as its own.

A mutant is identified by where it is and what it changed, not by line numbers:
``Mutant.key`` = (enclosing function, original text, mutated text, which of the function's
lines reading so it is), whitespace-normalised, which is what
``checker/equivalents/NAME.toml`` lists (see checker.mutants).
"""

from __future__ import annotations

import ast
import difflib
import itertools
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass

import parso.python.tree as pt
from cosmic_ray.ast import get_ast
from cosmic_ray.mutating import MutationVisitor
from cosmic_ray.operators.operator import Example, Operator
from cosmic_ray.plugins import get_operator

# cosmic-ray's operators, the plausible subset (each of its 12 x 11 arithmetic swaps would
# drown the report in mutants any check kills).
_CORE = [
    *(f"ReplaceBinaryOperator_{a}_{b}" for a, b in (
        ("Add", "Sub"), ("Sub", "Add"), ("Mul", "Div"), ("Div", "Mul"), ("Mul", "Add"),
        ("Div", "FloorDiv"), ("FloorDiv", "Div"), ("Mod", "FloorDiv"), ("Pow", "Mul"),
        ("BitAnd", "BitOr"), ("BitOr", "BitAnd"))),
    *(f"ReplaceComparisonOperator_{a}_{b}" for a, b in (
        ("Eq", "NotEq"), ("NotEq", "Eq"), ("Lt", "LtE"), ("Lt", "GtE"), ("LtE", "Lt"),
        ("LtE", "Gt"), ("Gt", "GtE"), ("Gt", "LtE"), ("GtE", "Gt"), ("GtE", "Lt"),
        ("Is", "IsNot"), ("IsNot", "Is"))),
    "ReplaceUnaryOperator_Delete_USub", "ReplaceUnaryOperator_Delete_Not",
    "NumberReplacer", "ReplaceTrueWithFalse", "ReplaceFalseWithTrue",
    "ReplaceAndWithOr", "ReplaceOrWithAnd", "AddNot", "ZeroIterationForLoop",
    "ReplaceBreakWithContinue", "RemoveDecorator",
]
# Calls whose loss is a classic slip: a copy that aliases, a layout that stays strided.
_DROPPED_METHODS = {"clone", "contiguous", "detach", "copy"}
# Methods whose lone positional argument is a dim: dropping it reduces over everything.
_DIM_METHODS = {"squeeze", "unsqueeze", "sum", "mean", "prod", "amax", "amin", "max", "min",
                "argmax", "argmin", "all", "any", "flatten", "softmax", "log_softmax",
                "cumsum", "norm", "std", "var", "logsumexp", "size", "stride"}
# Calls whose two arguments commute: swapping them is no slip.
_SYMMETRIC = {"max", "min", "maximum", "minimum", "add", "mul", "eq", "ne", "hypot", "gcd",
              "logical_and", "logical_or", "logical_xor", "isclose", "allclose", "equal"}
_NO_GRAD = {"no_grad": "enable_grad", "enable_grad": "no_grad"}
_STATEMENTS = {"expr_stmt", "return_stmt", "raise_stmt", "assert_stmt", "del_stmt",
               "atom_expr", "power"}


class _Code(pt.Name):
    """A leaf carrying replacement source text (prefix included): what a text edit puts back."""


class _TextOperator(Operator):
    """An operator defined by ``edits(node)``: the node's alternative source texts."""

    def edits(self, node) -> list[str]:
        raise NotImplementedError

    def mutation_positions(self, node):
        for _ in self.edits(node):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node, index):
        return _Code(self.edits(node)[index], node.start_pos)

    @classmethod
    def examples(cls):
        return [Example(pre, post) for pre, post in cls.EXAMPLES]


def _code(node) -> str:
    return node.get_code(include_prefix=False)


def _prefix(node) -> str:
    return node.get_first_leaf().prefix


def _method_trailers(node) -> Iterator[tuple[int, str]]:
    """(index, name) of each ``.name(...)`` call within an atom_expr's trailers."""
    if node.type not in ("atom_expr", "power"):
        return
    kids = node.children
    for i in range(1, len(kids) - 1):
        a, b = kids[i], kids[i + 1]
        if (a.type == "trailer" and a.children[0] == "." and b.type == "trailer"
                and b.children[0] == "("):
            yield i, a.children[1].value


def _rebuild(node, replace: dict[int, str]) -> str:
    return _prefix(node) + "".join(
        replace.get(i, c.get_code(include_prefix=i > 0)) for i, c in enumerate(node.children))


def _args(trailer) -> list:
    if trailer.type != "trailer" or trailer.children[0] != "(" or len(trailer.children) != 3:
        return []
    inner = trailer.children[1]
    return [c for c in inner.children if c != ","] if inner.type == "arglist" else [inner]


def _is_keyword(arg) -> bool:
    return arg.type == "argument" and len(arg.children) == 3 and arg.children[1] == "="


def _call(args: list) -> str:
    return "(" + ", ".join(_code(a) for a in args) + ")"


class DropMethod(_TextOperator):
    """``x.clone()``, ``.contiguous()``, ``.detach()``, ``.copy()`` left out."""

    EXAMPLES = [("y = x.clone() + 1", "y = x + 1")]

    def edits(self, node):
        return [_rebuild(node, {i: "", i + 1: ""}) for i, name in _method_trailers(node)
                if name in _DROPPED_METHODS and _code(node.children[i + 1]) == "()"]


def _params(node) -> set[str]:
    """The parameter names of the function holding ``node``."""
    while node is not None and node.type != "funcdef":
        node = node.parent
    return {p.name.value for p in node.get_params()} if node is not None else set()


class InPlaceToggle(_TextOperator):
    """``x.add_(y)`` <-> ``x.add(y)``; ``a += b`` <-> ``a = a + b`` where ``a`` may be a
    caller's object (a parameter, an attribute, an item): on a local number the two agree."""

    EXAMPLES = [("x.mul_(2)", "x.mul(2)")]

    def edits(self, node):
        if node.type == "expr_stmt" and len(node.children) == 3:
            lhs, op, rhs = node.children
            if lhs.type == "name" and lhs.value not in _params(node):
                return []
            if op.type == "operator" and op.value in ("+=", "-=", "*=", "/="):
                return [f"{_prefix(node)}{_code(lhs)} = {_code(lhs)} {op.value[0]} ({_code(rhs)})"]
            if op == "=" and rhs.type == "arith_expr" and len(rhs.children) == 3 \
                    and _code(rhs.children[0]) == _code(lhs) and rhs.children[1] in ("+", "-"):
                return [f"{_prefix(node)}{_code(lhs)} {rhs.children[1].value}= "
                        f"{_code(rhs.children[2])}"]
            return []
        import torch

        out = []
        for i, name in _method_trailers(node):
            if name.endswith("_") and not name.startswith("_") and hasattr(torch.Tensor, name[:-1]):
                out.append(_rebuild(node, {i: "." + name[:-1]}))
            elif not name.endswith("_") and hasattr(torch.Tensor, name + "_"):
                out.append(_rebuild(node, {i: "." + name + "_"}))
        return out


class ArgumentSlip(_TextOperator):
    """A keyword argument dropped (``keepdim=``, ``dim=``, ``dtype=`` ...), a lone dim argument
    dropped (``x.squeeze(0)`` -> ``x.squeeze()``), two neighbouring positional arguments swapped."""

    EXAMPLES = [("s = x.sum(dim=1, keepdim=True)", "s = x.sum(keepdim=True)"),
                ("f(a, b)", "f(b, a)")]

    def edits(self, node):
        args = _args(node)
        if not args:
            return []
        out = [_call(args[:k] + args[k + 1:]) for k, a in enumerate(args)
               if _is_keyword(a) and _code(a).replace(" ", "") != "strict=False"]
        callee = node.get_previous_sibling()
        if (len(args) == 1 and not _is_keyword(args[0]) and callee is not None
                and callee.type == "trailer" and callee.children[0] == "."
                and callee.children[1].value in _DIM_METHODS):
            out.append("()")
        name = callee.children[-1] if callee is not None and callee.type == "trailer" else callee
        if name is not None and name.type == "name" and name.value in _SYMMETRIC:
            return [_prefix(node) + text for text in out]
        positional = [k for k, a in enumerate(args) if a.type != "argument"]
        for k in positional:
            if k + 1 in positional and _code(args[k]) != _code(args[k + 1]):
                swapped = list(args)
                swapped[k], swapped[k + 1] = args[k + 1], args[k]
                out.append(_call(swapped))
        return [_prefix(node) + text for text in out]


class GradModeToggle(_TextOperator):
    """``torch.no_grad`` <-> ``torch.enable_grad``."""

    EXAMPLES = [("with torch.no_grad(): pass", "with torch.enable_grad(): pass")]

    def edits(self, node):
        if node.type == "name" and node.value in _NO_GRAD and node.parent.type == "trailer":
            return [_prefix(node) + _NO_GRAD[node.value]]
        return []


class MembershipToggle(_TextOperator):
    """``a in b`` <-> ``a not in b`` (cosmic-ray leaves membership tests alone)."""

    EXAMPLES = [("ok = a in b", "ok = a not in b")]

    def edits(self, node):
        if node.type != "comparison":
            return []
        return [_rebuild(node, {i: " not in" if c.type == "keyword" else " in"})
                for i, c in enumerate(node.children)
                if (c.type == "keyword" and c.value == "in") or _code(c) == "not in"]


class RemoveStatement(_TextOperator):
    """A simple statement (assignment, call, return, raise, assert) replaced by ``pass``."""

    EXAMPLES = [("x = 1\ny = 2\n", "pass\ny = 2\n")]

    def edits(self, node):
        if node.type != "simple_stmt" or node.children[0].type not in _STATEMENTS:
            return []
        first = node.children[0]
        if first.type in ("atom_expr", "power") and first.children[0].type == "string":
            return []
        return [_rebuild(node, {0: "pass"})]


_CPP_MARKERS = ("TORCH_LIBRARY", "PYBIND11_MODULE")
# C++ slips: binary operators (written with a space on each side, which keeps templates,
# includes, ``->`` and ``::`` out of reach), checks dropped, copies that stay strided,
# concrete sizes where symbolic ones are needed.
_CPP_SWAPS = {"+": ["-"], "-": ["+"], "*": ["/", "+"], "/": ["*"], "<": ["<="], "<=": ["<"],
              ">": [">="], ">=": [">"], "==": ["!="], "!=": ["=="], "&&": ["||"], "||": ["&&"]}
_CPP_WORDS = {"true": "false", "false": "true", "sym_sizes": "sizes"}
_CPP_SKIP = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|^[ \t]*#[^\n]*',
                       re.M)
_CPP_SITES = re.compile(r"(?<= )(\+|-|\*|/|<=|>=|<|>|==|!=|&&|\|\|)(?= )|\b\d+\b|\b(?:true|false|sym_sizes)\b"
                        r"|\.contiguous\(\)|\bTORCH_CHECK\(")


def cpp_slips(code: str) -> list[str]:
    """Every one-slip variant of C++ source ``code`` (string literals, comments and
    preprocessor lines left alone)."""
    skipped = [(m.start(), m.end()) for m in _CPP_SKIP.finditer(code)]
    out = []
    for m in _CPP_SITES.finditer(code):
        if any(a <= m.start() < b for a, b in skipped):
            continue
        text = m.group(0)
        if text in _CPP_SWAPS and '"' in code[max(0, m.start() - 3):m.end() + 3]:
            continue  # a string concatenation: the swap would not compile
        if text in _CPP_SWAPS:
            news = _CPP_SWAPS[text]
        elif text.isdigit():
            news = [str(int(text) + 1)] + ([str(int(text) - 1)] if int(text) > 0 else [])
        elif text == ".contiguous()":
            news = [""]
        elif text == "TORCH_CHECK(":
            news = ["(void)("]  # the check dropped: its condition and message evaluated, unused
        else:
            news = [_CPP_WORDS[text]]
        out += [code[:m.start()] + new + code[m.end():] for new in news]
    return out


class CppSlip(_TextOperator):
    """One slip in a Python string that holds C++ (a kata whose learner writes C++): an
    operator swapped, a constant off by one, a TORCH_CHECK dropped, a ``.contiguous()``
    dropped, ``sym_sizes`` -> ``sizes``. Mutants that do not compile are left out by the
    judge (checker.mutants)."""

    EXAMPLES = [('s = r"""TORCH_LIBRARY(ns, m) { f(a + b); }"""',
                 's = r"""TORCH_LIBRARY(ns, m) { f(a - b); }"""')]

    def edits(self, node):
        if node.type != "string":
            return []
        code = _code(node)
        if not any(marker in code for marker in _CPP_MARKERS):
            return []
        opening = re.match(r"[rRbBuU]*(\"\"\"|'''|\"|')", code)
        if opening is None:
            return []
        head, quote = opening.group(0), opening.group(1)
        body = code[len(head):len(code) - len(quote)]
        return [_prefix(node) + head + variant + quote for variant in cpp_slips(body)]


_OURS = (DropMethod, InPlaceToggle, ArgumentSlip, GradModeToggle, MembershipToggle,
         RemoveStatement, CppSlip)


def operators() -> list[tuple[str, Operator]]:
    """(name, operator instance) for every operator the harness applies."""
    return ([(name, get_operator(f"core/{name}")()) for name in _CORE]
            + [(cls.__name__, cls()) for cls in _OURS])


@dataclass(frozen=True)
class Mutant:
    operator: str
    function: str  # the top-level function or class holding the change ("<module>" if none)
    before: str  # the original text of the changed lines, whitespace-normalised
    after: str
    diff: str
    source: str
    occurrence: int = 1  # which line of ``function`` reading ``before`` it is (1 = first)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.function, self.before, self.after, self.occurrence)


def _norm(lines: list[str]) -> str:
    return " / ".join(" ".join(line.split()) for line in lines if line.strip())


def _strip(tree: ast.AST) -> str:
    """The program without annotations and docstrings: two sources alike here run alike."""
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.annotation = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
        if isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.dump(tree)


def _owners(tree: ast.Module) -> dict[int, str]:
    return {line: node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}


def mutants(source: str, filename: str = "solution.py") -> list[Mutant]:
    """Every distinct mutant of ``source`` that parses and changes what the program does."""
    tree = ast.parse(source)
    owners, plain = _owners(tree), _strip(ast.parse(source))
    original = source.splitlines()
    blob = pickle.dumps(get_ast(source))  # a parsed tree to thaw per mutant: parsing is slow
    seen: set[str] = set()
    found = []
    for name, op in operators():
        for occurrence in itertools.count():
            visitor = MutationVisitor(occurrence, op)
            code = visitor.walk(pickle.loads(blob)).get_code()
            if not visitor.mutation_applied:
                break
            if code in seen:
                continue
            seen.add(code)
            try:
                if _strip(ast.parse(code)) == plain:
                    continue  # only an annotation or a docstring changed
            except SyntaxError:
                continue
            changed = code.splitlines()
            matcher = difflib.SequenceMatcher(a=original, b=changed, autojunk=False)
            ops = [o for o in matcher.get_opcodes() if o[0] != "equal"]
            # the first changed line that is not blank (a removed decorator takes the blank
            # line above it along): it names the owner and counts the occurrence
            first = next((i for _, a0, a1, _, _ in ops for i in range(a0, a1)
                          if original[i].strip()), ops[0][1])
            before = [ln for _, a0, a1, _, _ in ops for ln in original[a0:a1]]
            after = [ln for _, _, _, b0, b1 in ops for ln in changed[b0:b1]]
            diff = "\n".join(difflib.unified_diff(original, changed, f"a/{filename}",
                                                  f"b/{filename}", n=1, lineterm=""))
            owner = owners.get(first + 1, "<module>")
            head = _norm(original[first:first + 1])
            nth = 1 + sum(_norm([line]) == head for k, line in enumerate(original[:first])
                          if owners.get(k + 1, "<module>") == owner)
            found.append(Mutant(name, owner, _norm(before), _norm(after), diff, code, nth))
    return found
