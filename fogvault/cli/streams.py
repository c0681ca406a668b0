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
* any other error on stdout (a full disk, an I/O error): one line ``error: cannot write to
  standard output: WHY``, and exit 1 where the command would have exited 0 or 3.
* a listing of entries (``ls``, ``find``, ``diff``, ``list``), whose output is all its work,
  stops at its next entry once stdout failed (:func:`listing_line` raises
  :class:`OutputStopped`): exit 0 for a reader gone, as ``| head`` asked for no more, else as
  above.
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
from typing import TextIO

from fogvault.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL


class OutputStopped(Exception):
    """Stdout cannot be written any more, and the listing being printed stops (see the
    module)."""


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
    that are not UTF-8 print as their own bytes. Buffered as before: an unbuffered stream
    (``python -u``, PYTHONUNBUFFERED) stays so. A stream that is not the process's own
    descriptor 1 or 2 (a test's capture) is left as it is. :func:`exit_code` puts back the
    streams replaced, for a library caller."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if name in _installed:
            continue
        try:
            if stream.fileno() != fd:
                continue
            stream.flush()
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            continue
        guard = _KeepFirstError(fd)
        buffered = isinstance(getattr(stream, "buffer", None), io.BufferedWriter)
        setattr(sys, name, io.TextIOWrapper(
            io.BufferedWriter(guard) if buffered else guard, encoding=stream.encoding,
            errors="surrogateescape", line_buffering=stream.line_buffering,
            write_through=stream.write_through or not buffered))
        _installed[name] = (stream, guard)


#: name -> (the stream install replaced, the writer under its replacement)
_installed: dict[str, tuple[TextIO, _KeepFirstError]] = {}


def listing_line() -> None:
    """Raise :class:`OutputStopped` once stdout cannot be written: a listing stops there."""
    if (entry := _installed.get("stdout")) is not None and entry[1].error is not None:
        raise OutputStopped


def exit_code(code: int) -> int:
    """The process's exit code for a command that ended with ``code``, once its output is
    flushed (see the module); the streams install replaced are put back."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(ValueError):  # closed
            stream.flush()
    entry = _installed.get("stdout")
    error = entry[1].error if entry is not None else None
    if error is not None and error.errno != errno.EPIPE:
        print(f"error: cannot write to standard output: {error.strerror}", file=sys.stderr)
        sys.stderr.flush()
        code = EXIT_ERROR if code in (EXIT_OK, EXIT_PARTIAL) else code
    for name, (stream, _) in _installed.items():
        setattr(sys, name, stream)
    _installed.clear()
    return code
