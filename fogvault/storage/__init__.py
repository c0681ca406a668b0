"""Storage: one target as a flat namespace of immutable byte objects.

``open_storage(url)`` turns a target URL into a :class:`Storage`: a plain path or ``file://``
URL is a :class:`LocalStorage` (fsync'ed atomic writes), anything else goes through fsspec.
"""

from __future__ import annotations

from typing import Any

from fogvault.storage.base import ObjectInfo, Storage, validate_name
from fogvault.storage.errors import (
    InvalidName,
    ObjectExists,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)

__all__ = [
    "InvalidName",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "PermanentStorageError",
    "Storage",
    "StorageError",
    "TransientStorageError",
    "open_storage",
    "validate_name",
]


def open_storage(url: str, **options: Any) -> Storage:
    """Open the target at ``url``. ``options`` go to the fsspec filesystem (e.g. endpoint)."""
    if "://" not in url:
        from fogvault.storage.local import LocalStorage

        return LocalStorage(url)
    if url.startswith("file://"):
        from fogvault.storage.local import LocalStorage

        return LocalStorage(url[len("file://") :])
    from fogvault.storage.fsspec_store import FsspecStorage

    return FsspecStorage(url, **options)
