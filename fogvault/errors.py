"""FogVault's error hierarchy and the exit codes it maps to.

Every error a user can cause or meet is a :class:`FogVaultError` whose class carries the
process exit code, so the CLI chooses exit codes in one place (``exit_code_for``)::

    FogVaultError (1)
    ├── UsageError (2)
    │   └── DifferentRepository (2)     the targets given hold different repositories
    ├── PartialSuccess (3)              the job finished, but not everything was done
    │   └── TargetsBehind (3)           ...and some targets did not get every change
    ├── RepositoryNotFound (10)
    │   └── NoRepository (10)           every target answered and none holds one
    ├── RepositoryExists (1)
    ├── LockError (11)
    ├── WrongPassword (12)
    ├── IntegrityError (1)              a stored object failed verification
    │   └── MalformedObject (1)         it decrypted, but its contents are not valid
    ├── UnsupportedFormat (1)           written by a newer FogVault
    ├── SnapshotNotFound (1) / AmbiguousPrefix (1)
    ├── PathNotFound (1)                a path asked for is not in the snapshot
    ├── UnsafePath (1)                  a tree would make restore write outside its target
    ├── NotEnoughTargets (1)            fewer targets than --min-targets hold the data
    ├── TargetsUnavailable (1)          no target could be used at all
    └── StorageError (1)                defined in fogvault.storage.errors

Messages never contain secrets (passwords, keys, credentials).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NO_REPOSITORY = 10
EXIT_LOCKED = 11
EXIT_WRONG_PASSWORD = 12
EXIT_INTERRUPTED = 130


class FogVaultError(Exception):
    """Base of every error FogVault reports to a user."""

    exit_code = EXIT_ERROR


class UsageError(FogVaultError):
    exit_code = EXIT_USAGE


class DifferentRepository(UsageError):
    """Two of the targets given hold different repositories."""


class PartialSuccess(FogVaultError):
    """The operation completed, with warnings (unreadable files, targets left behind)."""

    exit_code = EXIT_PARTIAL


class TargetsBehind(PartialSuccess):
    """The operation completed on enough targets, but some did not get every change."""


class RepositoryNotFound(FogVaultError):
    exit_code = EXIT_NO_REPOSITORY


class NoRepository(RepositoryNotFound):
    """Every target answered and none holds a repository: one may be created there (a target
    that could not be read, or one that lacks what the others hold, is not this)."""


class RepositoryExists(FogVaultError):
    pass


class LockError(FogVaultError):
    exit_code = EXIT_LOCKED


class WrongPassword(FogVaultError):
    exit_code = EXIT_WRONG_PASSWORD


class IntegrityError(FogVaultError):
    """A stored object does not verify: wrong hash, failed authentication, or truncation."""


class MalformedObject(IntegrityError):
    """An object authenticated, but its plaintext breaks the format (a bug or a hostile writer)."""


class UnsupportedFormat(FogVaultError):
    pass


class SnapshotNotFound(FogVaultError):
    pass


class AmbiguousPrefix(FogVaultError):
    pass


class PathNotFound(FogVaultError):
    """A path asked for is not in the snapshot."""


class UnsafePath(FogVaultError):
    """A snapshot tree holds a name that would let restore escape its target directory."""


class DestinationUnwritable(FogVaultError):
    """The file system restored into takes no more writes: full, over quota, or read-only."""


class NotEnoughTargets(FogVaultError):
    """Fewer targets than ``--min-targets`` hold what a commit needs: nothing was committed."""


class TargetsUnavailable(FogVaultError):
    """Every target failed or was dropped: there is nothing left to read from or write to."""


def prefix_message(error: BaseException, prefix: str) -> None:
    """Start the message of ``error`` with ``prefix``, in place: its class (so its exit code)
    and attributes stay, which building another of its class could not promise."""
    first = error.args[0] if error.args else ""
    error.args = (f"{prefix}{first}", *error.args[1:])


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, FogVaultError):
        return error.exit_code
    return EXIT_ERROR
