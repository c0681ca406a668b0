"""Storage: one target as a flat namespace of immutable byte objects.

``open_storage(url)`` turns a target URL into a :class:`Storage`: a plain path or ``file://``
URL is a :class:`LocalStorage` (fsync'ed atomic writes); ``memory://``, ``s3://bucket/prefix``
and ``sftp://user@host:port/path`` go through fsspec (see docs/targets.md); any other scheme is
refused. :class:`RetryingStorage` and :class:`FaultyStorage` wrap any of them.
"""

from __future__ import annotations

from typing import Any

from fogvault.errors import UsageError
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


#: The URL schemes served by fogvault.storage.fsspec_store, and the class of each.
_FSSPEC_SCHEMES = {"memory": "FsspecStorage", "s3": "S3Storage", "sftp": "SftpStorage"}


def open_storage(url: str, **options: Any) -> Storage:
    """Open the target at ``url``. ``options`` go to the backend: s3fs settings for ``s3://``
    (``endpoint_url``, ``key``, ``secret``, ``config_kwargs``...), asyncssh settings for
    ``sftp://`` (``client_keys``, ``known_hosts``...). Without them, both read the environment.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        from fogvault.storage.local import LocalStorage

        if not (path := rest if sep else url):  # an unset variable: not the current folder
            raise UsageError(f"the target {url!r} names no folder: give a path or URL ('.' "
                             "for the current folder)")
        return LocalStorage(path)
    if scheme not in _FSSPEC_SCHEMES:
        known = ", ".join(f"{s}://" for s in ("file", *_FSSPEC_SCHEMES))
        raise UsageError(f"unsupported target {url!r}: use a path or {known}")
    from fogvault.storage import fsspec_store

    return getattr(fsspec_store, _FSSPEC_SCHEMES[scheme])(url, **options)
