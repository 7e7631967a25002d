"""The rules window: what is in force while learner code runs (its import and every call).

Every call into the learner's code (checker.learner) runs inside ``rules_window(rules,
filename)``: forbidden callables raise, forbidden imports are refused, the process cannot be
left, the kata's rules at the dispatcher are in force (checker.sandbox.dispatch), and the
judge's comparison machinery is checked for tampering on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from checker.catalog import Rules
from checker.sandbox.dispatch import dispatcher_rules, prepare
from checker.sandbox.forbid import forbid_callables, forbid_imports, forbid_plan, no_escape
from checker.sandbox.integrity import TamperGuard, guarded_owner_attrs


def prepare_rules(rules: Rules) -> None:
    """Work out what the rules windows of ``rules`` change ahead of the first call (a warm
    worker's armed process does it before the learner saves)."""
    with contextlib.suppress(Exception):  # a bad entry is reported by the window itself
        forbid_plan(rules)
    guarded_owner_attrs()
    prepare(rules)


@contextlib.contextmanager
def rules_window(rules: Rules, filename: str) -> Iterator[None]:
    with (
        forbid_callables(rules),
        forbid_imports(rules, filename),
        no_escape(rules.allow_processes),
        TamperGuard(),
        dispatcher_rules(rules),  # innermost: the guards' own work runs outside the modes
    ):
        yield
