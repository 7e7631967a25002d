"""A check process's output, read from a pipe as it comes and kept as a bounded tail.

The child writes into a pipe, never into a file it could fill: however much it prints
(hundreds of megabytes), no write of its own, of pytest's or of the report ever fails for
lack of room, and the runner keeps only the last ``TAIL_BYTES`` (where a stack dump or the
last words of a crash are) and a count of the rest.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TAIL_BYTES = 256 * 1024
CHUNK = 1 << 20
PIPE_BYTES = 1 << 20


class OutputTail:
    """The reading end of one child's output pipe."""

    def __init__(self, fd: int, hold: int | None = None):
        self.fd = fd
        self.hold = hold  # a writing end kept open here (a FIFO's: no EOF before a writer)
        self.data = bytearray()
        self.dropped = 0
        self.closed = False
        os.set_blocking(fd, False)
        with contextlib.suppress(OSError, AttributeError):  # fewer wake-ups for a flood
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def feed(self) -> None:
        """Read what the pipe holds now (the fd is non-blocking)."""
        while not self.closed:
            try:
                chunk = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            self.data += chunk
            if len(self.data) > 2 * TAIL_BYTES:
                cut = len(self.data) - TAIL_BYTES
                self.dropped += cut
                del self.data[:cut]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for fd in (self.fd, self.hold):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def text(self) -> bytes:
        head = f"... ({self.dropped} bytes of output not kept)\n".encode() if self.dropped else b""
        return head + bytes(self.data)

    def save(self, path: str | Path, mode: str = "wb") -> None:
        """Drain the pipe, close it and write the tail to ``path``."""
        self.feed()
        self.close()
        with open(path, mode) as fh:
            fh.write(self.text())
