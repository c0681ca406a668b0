"""Where a stream backup's data comes from (restic's ``backup --stdin`` and
``--stdin-from-command``): a :class:`StreamSource` is opened only once the backup holds its lock
and knows it can commit, and checked once its data has ended, before the snapshot is written.

A command's standard output is read through a pipe; its standard error is this process's and
its standard input is /dev/null (as restic's), so that it cannot take what was meant for
FogVault. :meth:`CommandSource.check` waits for it and raises if it failed, so that a dump cut
short by a failing ``pg_dump`` is not committed as a snapshot (with ``cmd | fogvault backup
--stdin`` only the shell knows the status). A command still running when the backup ends
(failed, interrupted) is killed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Protocol

from fogvault.errors import FogVaultError, UsageError


class CommandFailed(FogVaultError):
    """The command whose output was backed up failed: no snapshot was saved."""


class StreamSource(Protocol):
    def open(self) -> int:
        """Start producing; the descriptor to read until its end."""
        ...

    def check(self) -> None:
        """The stream has ended: raise if what it gave must not be committed."""
        ...


def check_stream_name(name: str) -> str:
    """``name`` if it can name the stream's file (``/NAME`` in the snapshot), else UsageError."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UsageError(f"{name!r} is not a file name (no '/'; not '.' or '..')")
    return name


@dataclass(slots=True)
class DescriptorSource:
    """An open descriptor, such as standard input (0)."""

    fd: int = 0

    def open(self) -> int:
        return self.fd

    def check(self) -> None:
        """Nothing to check: the end of the stream is all there is to know."""


class CommandSource:
    """A command's standard output; use with ``with`` so that it is stopped in the end."""

    def __init__(self, argv: list[str]) -> None:
        if not argv:
            raise UsageError("no command given")
        self.argv = argv
        self._process: subprocess.Popen[bytes] | None = None

    def open(self) -> int:
        try:
            self._process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE)
        except OSError as exc:
            raise CommandFailed(f"cannot run {self.argv[0]}: {exc.strerror}") from exc
        assert self._process.stdout is not None
        return self._process.stdout.fileno()

    def check(self) -> None:
        """Wait for the command (its output has ended); CommandFailed unless it exited 0."""
        assert self._process is not None
        status = self._process.wait()
        if status != 0:
            how = (f"was killed by signal {-status}" if status < 0
                   else f"exited with status {status}")
            raise CommandFailed(f"{self.argv[0]} {how}: no snapshot saved")

    def __enter__(self) -> CommandSource:
        return self

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        assert process.stdout is not None
        process.stdout.close()
        process.wait()
