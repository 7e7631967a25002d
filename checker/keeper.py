"""The keeper: a small process between a runner and the process doing the work, that outlives
both and ends every process below it.

A child subreaper catches what escapes (``fork`` + ``setsid``, a double fork) only while it
lives: a ``kill -9`` of ``kata check`` (or of the worker) hands the escaped processes to init,
and ``PR_SET_PDEATHSIG`` does not pass to a forked child. So the process that runs the checks
(the cold check child, or the warm worker) first forks: the original process becomes the
*keeper*, a child subreaper importing nothing more, and the new child goes on with the work.
The keeper waits for its child, collecting every orphan adopted meanwhile; when the child
ends, or when the keeper's owner (the CLI, for a cold run) is gone, it SIGKILLs every process
below it and exits as its child did (same exit status, or killed by the same signal), so the
runner sees no difference.

What holds, without root: every process the work starts, however it detaches, stays below
the keeper (Linux >= 3.4) and is killed once the work ends or the owner dies, even by
SIGKILL. The keeper sits in a session of its own, apart from the work's, so neither
``kill(0)`` nor ``killpg(0)`` from the work reaches it. What does not hold: a process that
kills the keeper itself by pid (learner code cannot: the sandbox refuses ``os.kill`` and
ctypes) while its runner is also gone. Elsewhere than Linux there is no keeper: ``keep``
returns at once.
"""

from __future__ import annotations

import contextlib
import os
import signal

from checker.reaper import become_subreaper, die_with_parent, kill_descendants, on_parent_death


class _OwnerGone(Exception):
    pass


def _owner_gone(signum, frame) -> None:
    raise _OwnerGone


def keep(owner: int | None = None) -> int:
    """Fork a keeper above the rest of this program (see the module's docstring); returns, in
    the child that goes on, the pid the child must watch as its parent (the keeper's, or
    ``owner``'s where there is no keeper). The child is in a session of its own and dies
    with the keeper. With ``owner``, the keeper also ends everything once ``owner`` is gone."""
    parent = os.getppid() if owner is None else owner
    if not become_subreaper():
        return parent
    keeper = os.getpid()
    from checker import cgroup

    cgroup.sweep()  # groups of keepers that were killed themselves
    group = cgroup.make()
    # SIGTERM means "clean up and go" to the keeper: its owner died (PR_SET_PDEATHSIG, which
    # replaces the SIGKILL the runner may have set), or someone asked it to stop.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, _owner_gone)
    if owner is not None:
        on_parent_death(signal.SIGTERM)
    pid = os.fork()
    if pid == 0:
        if group is not None:
            cgroup.join(group)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        os.setsid()
        die_with_parent(keeper)
        return keeper
    status = None
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if owner is not None and os.getppid() != owner:
            raise _OwnerGone
        while True:
            reaped, got = os.waitpid(-1, 0)  # orphans adopted meanwhile are collected too
            if reaped == pid:
                status = got
                break
    except (_OwnerGone, ChildProcessError):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if group is not None:
        cgroup.end(group)
    if _has_children():  # what left the group, or all of it where there is none
        kill_descendants()
    _exit_as(status)


def _has_children() -> bool:
    """Has this process a child left? Once the work is gone, every process that was below it
    is an orphan, adopted here (this process is a subreaper): reading one /proc file spares
    walking all of /proc when nothing escaped. True where that file is missing."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children", "rb") as fh:
            return bool(fh.read().strip())
    except OSError:
        return True


def _exit_as(status: int | None) -> None:
    """Leave as a process whose wait status is ``status`` did (70 when unknown)."""
    code = 70 if status is None else os.waitstatus_to_exitcode(status)
    if code < 0:
        import resource

        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the child's crash, not ours
        with contextlib.suppress(ValueError, OSError):
            signal.signal(-code, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {-code})
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)
