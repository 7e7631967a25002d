"""The rules window: what is in force while learner code runs (its import and every call).

Every call into the learner's code (checker.learner) runs inside ``rules_window(rules,
filename)``: forbidden callables raise, forbidden imports are refused, the process cannot be
left, the kata's rules at the dispatcher are in force (checker.sandbox.dispatch), the audit
hook refuses what learner code may not do (checker.sandbox.audit), and on the way out (also
when the call raised) no thread the call started may still be running and the judge's own
modules must be untouched.
"""

from __future__ import annotations

import _thread
import contextlib
import time
from collections.abc import Iterator

from checker.catalog import Rules
from checker.sandbox import audit
from checker.sandbox.dispatch import _plan, dispatcher_rules, prepare
from checker.sandbox.errors import TamperError
from checker.sandbox.forbid import forbid_callables, forbid_imports, forbid_plan, no_escape

THREAD_GRACE = 0.5  # seconds a thread the call started gets to finish before it counts


def prepare_rules(rules: Rules) -> None:
    """Work out what the rules windows of ``rules`` change ahead of the first call (a warm
    worker's armed process does it before the learner saves)."""
    with contextlib.suppress(Exception):  # a bad entry is reported by the window itself
        forbid_plan(rules)
    prepare(rules)


@contextlib.contextmanager
def rules_window(rules: Rules, filename: str) -> Iterator[None]:
    """The window opens with one control event to the audit hook and closes with one: the
    closing one (also when the call raised) compares the judge's near namespaces with the
    snapshot as the outermost window closes, after the call's threads have ended and the
    forbidden callables are back, and raises TamperError if learner code changed them."""
    before = _thread._count()
    _plan(rules)  # the dispatcher rules' set-up (importing torch) is the judge's, before the hook
    entered = False
    try:
        with forbid_callables(rules), forbid_imports(rules, filename), no_escape(rules.allow_processes):
            audit.enter(rules.allow_processes)
            entered = True
            try:
                with dispatcher_rules(rules):  # innermost: the guards' own work runs outside it
                    yield
            finally:
                _no_threads_left(before)  # still inside: a thread's last steps are the learner's
    finally:
        if entered:
            audit.leave()  # raises TamperError if the checker's modules were changed


def _no_threads_left(before: int) -> None:
    """A thread that learner code started must have ended when its call returns."""
    deadline = time.monotonic() + THREAD_GRACE
    while True:
        started = _thread._count() - before
        if started <= 0:
            return
        if time.monotonic() > deadline:
            raise TamperError(
                f"Your code started {started} thread(s) that were still running after it "
                "returned. A thread left running could change the judge behind its back: "
                "join every thread you start before returning.")
        time.sleep(0.005)
