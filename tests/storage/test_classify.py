"""Library exceptions are mapped to the StorageError a caller can act on (fsspec_store.classify)."""

from __future__ import annotations

import errno

import asyncssh
import pytest
from asyncssh import sftp
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from fogvault.storage import (
    ObjectExists,
    ObjectNotFound,
    PermanentStorageError,
    TransientStorageError,
)
from fogvault.storage.fsspec_store import classify


def s3_error(status: int, code: str) -> OSError:
    """What s3fs raises: an OSError whose cause is botocore's ClientError."""
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    error = OSError(errno.EINVAL, None)
    error.__cause__ = ClientError(response, "PutObject")  # type: ignore[arg-type]
    return error


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (FileNotFoundError("x"), ObjectNotFound),
        (FileExistsError("x"), ObjectExists),
        (PermissionError(errno.EACCES, "denied"), PermanentStorageError),
        (OSError(errno.ENOSPC, "No space left on device"), PermanentStorageError),
        (OSError(errno.EIO, "I/O error"), TransientStorageError),
        (ConnectionResetError(errno.ECONNRESET, "reset"), TransientStorageError),
        (TimeoutError(), TransientStorageError),
        (s3_error(412, "PreconditionFailed"), ObjectExists),  # RGW: If-None-Match refused
        (s3_error(404, "NoSuchKey"), ObjectNotFound),
        (s3_error(404, "NoSuchBucket"), PermanentStorageError),  # the target, not an object
        (s3_error(403, "AccessDenied"), PermanentStorageError),
        (s3_error(503, "SlowDown"), TransientStorageError),
        (s3_error(500, "InternalError"), TransientStorageError),
        (s3_error(429, "TooManyRequests"), TransientStorageError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), TransientStorageError),
        (NoCredentialsError(), PermanentStorageError),
        (sftp.SFTPNoSuchFile("gone"), ObjectNotFound),
        (sftp.SFTPPermissionDenied("no"), PermanentStorageError),
        (sftp.SFTPFailure("Failure"), TransientStorageError),  # OpenSSH's catch-all
        (sftp.SFTPConnectionLost("lost"), TransientStorageError),
        (asyncssh.PermissionDenied("bad key"), PermanentStorageError),
        (asyncssh.ConnectionLost("eof"), TransientStorageError),
        (ValueError("a bug"), PermanentStorageError),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_classify(exc: BaseException, kind: type) -> None:
    assert classify(exc) is kind
