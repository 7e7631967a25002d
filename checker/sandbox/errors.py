"""The exceptions the sandbox raises into a check when learner code oversteps."""

from __future__ import annotations

import sys


class ForbiddenAPI(RuntimeError):
    """Raised when the learner's code calls an API that the kata puts off-limits."""


class TamperError(AssertionError):
    """The learner's code replaced a function that the checks rely on."""


class EscapeAttempt(AssertionError):
    """The learner's code tried to leave the check another way than returning or raising an
    error of its own: an exit, an interrupt, or one of pytest's outcomes (skip, xfail, exit)."""

    @classmethod
    def from_exc(cls, exc: BaseException, where: str) -> EscapeAttempt:
        outcome = pytest_outcome(exc)
        if outcome is not None:
            verb, why = outcome
            reason = getattr(exc, "msg", None) or (exc.args[0] if exc.args else "")
            return cls(f"{where} raised {verb}{f' ({reason})' if reason else ''}; "
                       f"{why} Remove it and return your result.")
        return cls(
            f"{where} raised {type(exc).__name__}{_args(exc)}. A check cannot go on after an "
            "exit or an interrupt: return a value instead of exiting."
        )


# pytest's outcome exceptions (and unittest's skip, which pytest honours), which would end a
# check as something other than a failure if they left learner code: the class's module and
# name -> (what the learner called, why it cannot count), most specific first.
PYTEST_OUTCOMES = (
    ("_pytest.outcomes", "XFailed", "pytest.xfail", "a kata cannot be expected to fail."),
    ("_pytest.outcomes", "Skipped", "pytest.skip", "a kata cannot be skipped."),
    ("_pytest.outcomes", "Failed", "pytest.fail", "a check cannot be failed on purpose."),
    ("_pytest.outcomes", "Exit", "pytest.exit", "a check cannot stop the run."),
    ("unittest", "SkipTest", "unittest.SkipTest", "a kata cannot be skipped."),
)
ESCAPES = (KeyboardInterrupt, SystemExit)


def pytest_outcome(exc: BaseException) -> tuple[str, str] | None:
    """(what the learner called, why it cannot count) when ``exc`` is one of pytest's outcomes."""
    for module, name, verb, why in PYTEST_OUTCOMES:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return verb, why
    return None


def is_escape(exc: BaseException) -> bool:
    """Whether ``exc`` leaving learner code would end a check as anything but its own error."""
    return isinstance(exc, ESCAPES) or pytest_outcome(exc) is not None


def _args(exc: BaseException) -> str:
    return f"({', '.join(map(repr, exc.args))})" if exc.args else ""
