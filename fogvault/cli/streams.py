"""Standard output and error that a failed write never stops: a command's output reports its
work, and losing it must not cut the work short.

Before this, a write to a pipe whose reader had gone (``| head``) ended a command at once with
exit 1 and no word (Typer's own handling of EPIPE), part-way through a restore, a copy or a
``--json`` backup; a full disk (``> /dev/full``) was an "unexpected error" or, left in the
buffer until the exit, was lost without a word.

:func:`install` puts each stream on a writer that keeps its first error and drops what is
written after it. The command runs on as if its output had gone through, and
:func:`exit_code` decides at its end:

* stdout's reader went away (EPIPE): nothing is said, and the exit code is the command's own.
  A listing, whose output is all its work, stops at its next line instead (:func:`listing_line`
  raises :class:`ReaderGone`), with exit 0, as ``| head`` asked for no more.
* any other error on stdout (a full disk, an I/O error): one line ``error: cannot write to
  standard output: WHY``, and exit 1 where the command would have exited 0 or 3.
* stderr: nothing can be said there, and the exit code is the command's own.

Only the standard library and ``fogvault.errors`` are imported here.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import sys

from fogvault.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL


class ReaderGone(Exception):
    """Stdout's reader went away, and the listing being printed stops (see the module)."""


class _KeepFirstError(io.RawIOBase):
    """A descriptor's writer that never raises an OSError: it keeps the first and drops all
    writes after it."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.error is None:
            try:
                write_all(self._fd, data)
            except OSError as exc:
                self.error = exc
        return len(data)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, raising what fails."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a descriptor another process made non-blocking: wait
            select.select([], [fd], [])


def install() -> None:
    """Put stdout and stderr on writers that keep their first error (see the module); names
    that are not UTF-8 print as their own bytes. A stream that is not the process's own
    descriptor 1 or 2 (a test's capture) is left as it is."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if isinstance(getattr(stream, "buffer", None), io.BufferedWriter) and isinstance(
                stream.buffer.raw, _KeepFirstError):
            continue  # installed by an earlier call in this process
        try:
            if stream.fileno() != fd:
                continue
            stream.flush()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            continue
        guarded = io.TextIOWrapper(io.BufferedWriter(_KeepFirstError(fd)),
                                   encoding=stream.encoding, errors="surrogateescape",
                                   line_buffering=stream.line_buffering,
                                   write_through=stream.write_through)
        setattr(sys, name, guarded)


def _error(stream: object) -> OSError | None:
    """The first error writing ``stream``, if :func:`install` guards it."""
    buffer = getattr(stream, "buffer", None)
    raw = getattr(buffer, "raw", None)
    return raw.error if isinstance(raw, _KeepFirstError) else None


def listing_line() -> None:
    """Raise :class:`ReaderGone` if stdout's reader went away: a listing stops there."""
    error = _error(sys.stdout)
    if error is not None and error.errno == errno.EPIPE:
        raise ReaderGone


def exit_code(code: int) -> int:
    """The process's exit code for a command that ended with ``code``, once its output is
    flushed (see the module)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError):  # closed
            stream.flush()
    error = _error(sys.stdout)
    if error is None or error.errno == errno.EPIPE:
        return code
    print(f"error: cannot write to standard output: {error.strerror}", file=sys.stderr)
    sys.stderr.flush()
    return EXIT_ERROR if code in (EXIT_OK, EXIT_PARTIAL) else code
