"""Storage errors, split by what the caller can do about them.

    StorageError (FogVaultError, exit 1)
    ├── ObjectNotFound        the name does not exist (permanent)
    ├── ObjectExists          a create-only write found the name taken (permanent)
    ├── InvalidName           the name breaks the naming rules (permanent)
    ├── TransientStorageError worth retrying: timeouts, throttling, dropped connections
    └── PermanentStorageError retrying will not help: permission denied, disk full, bad bucket

Only these leave a backend: every fsspec, OS or SDK exception is mapped at the adapter.
"""

from __future__ import annotations

from fogvault.errors import FogVaultError


class StorageError(FogVaultError):
    """A target could not do what was asked. ``target`` names it (a URL without credentials)."""

    def __init__(self, message: str, *, target: str = "", name: str = "") -> None:
        self.target = target
        self.name = name
        self.reason = message  # without the target and name
        where = " ".join(part for part in (target, name) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ObjectNotFound(StorageError):
    pass


class ObjectExists(StorageError):
    pass


class InvalidName(StorageError):
    pass


class TransientStorageError(StorageError):
    pass


class PermanentStorageError(StorageError):
    pass
