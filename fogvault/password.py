"""Where a repository password comes from: a file, a command, the environment, or a prompt.

Order (first that is set wins): ``--password-file`` or ``--password-command`` (not both, as
restic), ``FOGVAULT_PASSWORD_FILE``, ``FOGVAULT_PASSWORD_COMMAND``, ``FOGVAULT_PASSWORD``, then a
prompt if stdin is a terminal.
A password file's trailing newline is not part of the password. Messages never include the
password, and a failing command's output is not echoed.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass

from fogvault.errors import FogVaultError, UsageError
from fogvault.userfiles import read_bounded

#: a password, or a key file's worth of one; more is the wrong file (or /dev/zero)
MAX_PASSWORD_FILE = 64 * 1024


@dataclass(slots=True)
class PasswordSource:
    file: str | None = None
    command: str | None = None
    value: str | None = None
    #: how the command was given, for messages
    command_from: str = "FOGVAULT_PASSWORD_COMMAND"

    @classmethod
    def from_env(cls, password_file: str | None = None,
                 password_command: str | None = None) -> PasswordSource:
        """The options' source if one is given, else the environment's."""
        if password_file is not None and password_command is not None:
            raise UsageError("--password-file and --password-command cannot be used together")
        if password_file is not None:
            return cls(file=password_file)
        if password_command is not None:
            return cls(command=password_command, command_from="--password-command")
        return cls(  # an empty variable counts as unset, as restic's
            file=os.environ.get("FOGVAULT_PASSWORD_FILE") or None,
            command=os.environ.get("FOGVAULT_PASSWORD_COMMAND") or None,
            value=os.environ.get("FOGVAULT_PASSWORD"),
        )

    def read(self, *, confirm: bool = False) -> bytes:
        if self.file is not None:
            return read_password_file(self.file)
        if self.command is not None:
            return _run_password_command(self.command, self.command_from)
        if self.value is not None:  # the variable's bytes, even those that are not UTF-8
            return _checked(os.fsencode(self.value))
        return prompt_password(confirm=confirm)


def read_password_file(path: str) -> bytes:
    if not path:
        raise UsageError("the password file's name is empty")
    data = read_bounded(path, MAX_PASSWORD_FILE, f"password file {path}")
    return _checked(data.rstrip(b"\r\n"))


def _run_password_command(command: str, given_as: str) -> bytes:
    try:
        argv = shlex.split(command)
    except ValueError as exc:  # an unterminated quote or escape
        raise UsageError(f"{given_as} cannot be split into words: {exc}") from exc
    if not argv:
        raise UsageError(f"{given_as} names no command")
    try:
        # stdin: nothing (restic's too): 'ssh vault cat pw' would eat a 'backup --stdin' stream
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                              check=False)
    except OSError as exc:
        raise FogVaultError(f"password command {argv[0]} failed to run: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise FogVaultError(f"password command {argv[0]} did not finish within 60 s") from exc
    if done.returncode != 0:
        raise FogVaultError(f"password command exited with status {done.returncode}")
    return _checked(done.stdout.rstrip(b"\r\n"))


#: Where the repository password can come from, for the message when none is given.
_PASSWORD_SOURCES = ("set FOGVAULT_PASSWORD_FILE, FOGVAULT_PASSWORD_COMMAND or FOGVAULT_PASSWORD, "
                     "or use --password-file or --password-command")


def prompt_password(
    *, confirm: bool = False, label: str = "password", sources: str = _PASSWORD_SOURCES
) -> bytes:
    """Ask on the terminal; without one, a usage error that names ``sources``, the other ways
    to give this password."""
    if not sys.stdin.isatty():
        raise UsageError(f"no {label} given: {sources}")
    first = getpass.getpass(f"Enter {label}: ")
    if confirm and getpass.getpass(f"Enter {label} again: ") != first:
        raise UsageError("the passwords do not match")
    return _checked(os.fsencode(first))


def _checked(password: bytes) -> bytes:
    if not password:
        raise UsageError("empty password")
    return password
