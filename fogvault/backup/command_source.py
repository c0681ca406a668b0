"""A command whose output is backed up (restic's ``backup --stdin-from-command``).

The command's standard output is read through a pipe; its standard error and input are this
process's. Once the output has ended, :meth:`CommandSource.check` waits for the command and
raises if it failed, so that a dump cut short by a failing ``pg_dump`` is not committed as a
snapshot (with ``cmd | fogvault backup --stdin`` the shell alone knows the status).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from fogvault.errors import FogVaultError


class CommandFailed(FogVaultError):
    """The command whose output was backed up failed: no snapshot was saved."""


@dataclass(slots=True)
class CommandSource:
    argv: list[str]
    process: subprocess.Popen[bytes]

    @property
    def fd(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    def check(self) -> None:
        """Wait for the command (its output has ended); CommandFailed unless it exited 0."""
        status = self.process.wait()
        if status != 0:
            how = (f"was killed by signal {-status}" if status < 0
                   else f"exited with status {status}")
            raise CommandFailed(f"{self.argv[0]} {how}: no snapshot saved")


@contextlib.contextmanager
def run_command(argv: list[str]) -> Iterator[CommandSource]:
    """Start ``argv`` with its output to a pipe; on leaving, a command still running (the
    backup failed or was interrupted) is killed."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE)
    except OSError as exc:
        raise CommandFailed(f"cannot run {argv[0]}: {exc.strerror}") from exc
    try:
        yield CommandSource(argv, process)
    finally:
        if process.poll() is None:
            process.kill()
        assert process.stdout is not None
        process.stdout.close()
        process.wait()
