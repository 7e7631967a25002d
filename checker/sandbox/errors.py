"""The exceptions the sandbox raises into a check when learner code oversteps."""

from __future__ import annotations


class ForbiddenAPI(RuntimeError):
    """Raised when the learner's code calls an API that the kata puts off-limits."""


class TamperError(AssertionError):
    """The learner's code replaced a function that the checks rely on."""


class EscapeAttempt(AssertionError):
    """The learner's code tried to leave the process (exit, KeyboardInterrupt) mid-check."""

    @classmethod
    def from_exc(cls, exc: BaseException, where: str) -> EscapeAttempt:
        return cls(
            f"{where} raised {type(exc).__name__}{_args(exc)}. A check cannot go on after an "
            "exit or an interrupt: return a value instead of exiting."
        )


def _args(exc: BaseException) -> str:
    return f"({', '.join(map(repr, exc.args))})" if exc.args else ""
