"""Where a repository password comes from: a file, a command, the environment, or a prompt.

Order (first that is set wins): ``--password-file`` or ``--password-command`` (not both, as
restic), ``FOGVAULT_PASSWORD_FILE``, ``FOGVAULT_PASSWORD_COMMAND``, ``FOGVAULT_PASSWORD``, then a
prompt if stdin is a terminal. The source repository of ``copy`` and ``init --from-repo`` has
the same sources under other names (:data:`SOURCE_PASSWORD`: ``--from-password-file``,
``FOGVAULT_FROM_PASSWORD_FILE``, ..., as restic's ``--from-password-file``).
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


@dataclass(frozen=True, slots=True)
class PasswordNames:
    """What one repository's password sources are called: the options are ``OPTION-file``
    and ``OPTION-command``, the variables ``VARIABLE_FILE``, ``VARIABLE_COMMAND`` and
    ``VARIABLE``; ``label`` names the password in a prompt."""

    option: str
    variable: str
    label: str

    @property
    def sources(self) -> str:
        """Every way to give this password but the prompt, for the error without a terminal."""
        return (f"set {self.variable}_FILE, {self.variable}_COMMAND or {self.variable}, or use "
                f"{self.option}-file or {self.option}-command")


REPOSITORY_PASSWORD = PasswordNames("--password", "FOGVAULT_PASSWORD", "password")
#: the source repository's, for ``copy`` and ``init --from-repo`` (restic's --from-password-*)
SOURCE_PASSWORD = PasswordNames("--from-password", "FOGVAULT_FROM_PASSWORD",
                                "password of the source repository")


@dataclass(slots=True)
class PasswordSource:
    file: str | None = None
    command: str | None = None
    value: str | None = None
    #: how the command was given, for messages
    command_from: str = "FOGVAULT_PASSWORD_COMMAND"
    names: PasswordNames = REPOSITORY_PASSWORD

    @classmethod
    def from_env(cls, password_file: str | None = None, password_command: str | None = None,
                 names: PasswordNames = REPOSITORY_PASSWORD) -> PasswordSource:
        """The options' source if one is given, else the environment's."""
        if password_file is not None and password_command is not None:
            raise UsageError(f"{names.option}-file and {names.option}-command cannot be used "
                             "together")
        if password_file is not None:
            return cls(file=password_file, names=names)
        if password_command is not None:
            return cls(command=password_command, command_from=f"{names.option}-command",
                       names=names)
        return cls(  # an empty variable counts as unset, as restic's
            file=os.environ.get(f"{names.variable}_FILE") or None,
            command=os.environ.get(f"{names.variable}_COMMAND") or None,
            value=os.environ.get(names.variable),
            command_from=f"{names.variable}_COMMAND",
            names=names,
        )

    def read(self, *, confirm: bool = False) -> bytes:
        if self.file is not None:
            return read_password_file(self.file)
        if self.command is not None:
            return _run_password_command(self.command, self.command_from)
        if self.value is not None:  # the variable's bytes, even those that are not UTF-8
            return _checked(os.fsencode(self.value), self.names.variable)
        return prompt_password(confirm=confirm, label=self.names.label,
                               sources=self.names.sources)


def read_password_file(path: str) -> bytes:
    if not path:
        raise UsageError("the password file's name is empty")
    data = read_bounded(path, MAX_PASSWORD_FILE, f"password file {path}")
    return _checked(data.rstrip(b"\r\n"), f"password file {path}")


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
    return _checked(done.stdout.rstrip(b"\r\n"), f"the output of {given_as}")


def prompt_password(
    *, confirm: bool = False, label: str = "password",
    sources: str = REPOSITORY_PASSWORD.sources,
) -> bytes:
    """Ask on the terminal; without one, a usage error that names ``sources``, the other ways
    to give this password."""
    if not sys.stdin.isatty():
        raise UsageError(f"no {label} given: {sources}")
    first = getpass.getpass(f"Enter {label}: ")
    if confirm and getpass.getpass(f"Enter {label} again: ") != first:
        raise UsageError("the passwords do not match")
    return _checked(os.fsencode(first), "the terminal")


def _checked(password: bytes, source: str) -> bytes:
    """``password`` if it is not empty; ``source`` names where it came from, for the error."""
    if not password:
        raise UsageError(f"empty password from {source}")
    return password
