"""Storage: one target as a flat namespace of immutable byte objects.

``open_storage(url)`` turns a target URL into a :class:`Storage`: a plain path or ``file://``
URL is a :class:`LocalStorage` (fsync'ed atomic writes); ``memory://``, ``s3://bucket/prefix``
and ``sftp://user@host:port/path`` go through fsspec (see docs/targets.md); any other scheme is
refused. :class:`RetryingStorage` and :class:`FaultyStorage` wrap any of them.
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
from fogvault.storage.faulty import Fault, FaultyStorage
from fogvault.storage.retrying import RetryingStorage
from fogvault.storage.urls import FSSPEC_SCHEMES, check_url, local_path

__all__ = [
    "Fault",
    "FaultyStorage",
    "InvalidName",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "PermanentStorageError",
    "RetryingStorage",
    "Storage",
    "StorageError",
    "TransientStorageError",
    "open_storage",
    "validate_name",
]


def open_storage(url: str, **options: Any) -> Storage:
    """Open the target at ``url``. ``options`` go to the backend: s3fs settings for ``s3://``
    (``endpoint_url``, ``key``, ``secret``, ``config_kwargs``...), asyncssh settings for
    ``sftp://`` (``client_keys``, ``known_hosts``...). Without them, both read the environment.
    """
    check_url(url)
    path = local_path(url)
    if path is not None:
        from fogvault.storage.local import LocalStorage

        return LocalStorage(path)
    from fogvault.storage import fsspec_store

    return getattr(fsspec_store, FSSPEC_SCHEMES[url.partition("://")[0]])(url, **options)
