"""Targets reached through fsspec: ``memory://``, ``s3://`` and ``sftp://``.

This is the only module that imports fsspec, s3fs or asyncssh. Each class pins down what fsspec
leaves loose so that the contract in :mod:`fogvault.storage.base` holds:

* :class:`FsspecStorage` (``memory://``): the store lives in this process, so a lock makes
  create-only writes atomic; a memory file is published only when complete.
* :class:`S3Storage` (``s3://bucket/prefix``): an object below the multipart threshold (64 MiB by
  default) is one PUT (atomic on S3) carrying a ``Content-MD5`` header, so the server refuses a
  body damaged on the way (``BadDigest``, retried as transient). Create-only writes send
  ``If-None-Match: *`` so the *server* refuses to replace an object (HTTP 412), no race window;
  servers that answer 501 get a HEAD-then-PUT fallback (not atomic, logged once). Larger objects
  are resumable multipart uploads with per-part verification: see
  :mod:`fogvault.storage.s3_multipart`. Reads of a whole object are one GET (never
  split into ranges that could mix two versions); a range past the end (HTTP 416) is an empty
  short read. Listings are paged through ``ListObjectsV2`` as they are consumed; no cache.
  A request during which no data moves for ``stall_timeout`` seconds fails as transient
  (:meth:`S3Storage._guarded`). In a bucket that does not exist, a read or stat finds no
  object (a target without a repository: ``create`` makes the bucket); a listing, write or
  delete fails (``NoSuchBucket``, permanent).
* :class:`SftpStorage` (``sftp://user@host:port/path``): writes go to a dot-named temporary in
  the same folder, are fsync'ed (``fsync@openssh.com``), then renamed: ``posix-rename`` for
  overwrites, the plain SFTPv3 RENAME for create-only (OpenSSH implements it as link+unlink,
  which fails if the name exists). Ranged reads use offsets (sshfs's ``cat_file`` ignores ranges).
  A lost connection is reopened on the next call. A write pipelines its WRITE requests
  itself and awaits every one (:func:`_write_blocks`). A failed connection is a sentence, and
  permanent when retrying soon cannot help (:meth:`SftpStorage._connect_error`).

Every library exception leaves as a :class:`StorageError`: see :func:`classify`.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import io
import logging
import math
import os
import socket
import stat as stat_module
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import fsspec
from fsspec.asyn import sync

from fogvault.errors import UsageError
from fogvault.sizes import parse_size
from fogvault.storage.base import (
    TEMP_PREFIX,
    ObjectInfo,
    Storage,
    validate_name,
    validate_prefix,
)
from fogvault.storage.errors import (
    ObjectExists,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from fogvault.storage.s3_multipart import (
    MIN_PART_SIZE,
    MultipartUpload,
    UploadReport,
    abort_stale_uploads,
    list_uploads,
)
from fogvault.storage.throttled import Pacer, claim_upload_pacing
from fogvault.storage.urls import is_http_url, sftp_port

log = logging.getLogger(__name__)

#: The largest object a single S3 PUT may carry.
S3_MAX_PUT = 5 * 1024**3

#: Objects of this size or more are multipart uploads, in parts of DEFAULT_PART_SIZE.
DEFAULT_MULTIPART_THRESHOLD = 64 * 1024**2
DEFAULT_PART_SIZE = 16 * 1024**2

#: An S3 request is given up once no data has moved for this long (seconds; S3Storage._guarded).
DEFAULT_STALL_TIMEOUT = 120.0
#: ... and for this long once the command is being interrupted (Storage.interrupt)
INTERRUPTED_STALL_TIMEOUT = 3.0
#: A stalled request is cancelled at most this many times, a second apart (_cancel)
CANCEL_TRIES = 5

_PERMANENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
    errno.ENOSYS, errno.EISDIR, errno.ENOTDIR, errno.EINVAL,
}  # fmt: skip


# ----------------------------------------------------------------------------- error mapping


def classify(exc: BaseException) -> type[StorageError]:
    """The StorageError class for a library exception: what a caller can do about it."""
    if isinstance(exc, StorageError):
        return type(exc)
    status = _http_status(exc)
    if status is not None:
        code = (_http_response(exc) or {}).get("Error", {}).get("Code")
        if code == "BadDigest":  # the body was damaged on the way: sending it again may work
            return TransientStorageError
        return PermanentStorageError if code == "NoSuchBucket" else _classify_http(status)
    sftp_kind = _classify_asyncssh(exc)
    if sftp_kind is not None:
        return sftp_kind
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound
    if isinstance(exc, FileExistsError):
        return ObjectExists
    if isinstance(exc, PermissionError):  # sshfs makes one without errno from a refused login
        return PermanentStorageError
    if isinstance(exc, OSError):
        return PermanentStorageError if exc.errno in _PERMANENT_ERRNOS else TransientStorageError
    return _classify_botocore(exc)


def _http_status(exc: BaseException | None) -> int | None:
    """The HTTP status of a botocore ClientError anywhere in the cause chain, if any."""
    response = _http_response(exc)
    if response is None:
        return None
    if response.get("Error", {}).get("Code") == "PreconditionFailed":
        return 412
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) or None


def _http_response(exc: BaseException | None) -> dict[str, Any] | None:
    for _ in range(10):
        if exc is None:
            return None
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return response
        exc = exc.__cause__ or exc.__context__
    return None


def _no_bucket(exc: BaseException) -> bool:
    """Whether S3 answered ``NoSuchBucket`` (anywhere in the cause chain)."""
    return (_http_response(exc) or {}).get("Error", {}).get("Code") == "NoSuchBucket"


def _classify_http(status: int) -> type[StorageError]:
    if status == 404:
        return ObjectNotFound
    if status == 412:
        return ObjectExists  # only create-only PUTs send a precondition
    if status in (408, 429) or status >= 500:
        return TransientStorageError
    return PermanentStorageError  # 400, 401, 403, 405, 409, ...


def _classify_asyncssh(exc: BaseException) -> type[StorageError] | None:
    try:
        import asyncssh
        from asyncssh import sftp
    except ImportError:  # the sftp extra is not installed: nothing can raise these
        return None
    if isinstance(exc, sftp.SFTPNoSuchFile | sftp.SFTPNoSuchPath):
        return ObjectNotFound
    if isinstance(exc, sftp.SFTPFileAlreadyExists):
        return ObjectExists
    permanent = (
        sftp.SFTPPermissionDenied, asyncssh.PermissionDenied, sftp.SFTPNoSpaceOnFilesystem,
        sftp.SFTPQuotaExceeded, sftp.SFTPOpUnsupported, asyncssh.HostKeyNotVerifiable,
    )  # fmt: skip
    if isinstance(exc, permanent):
        return PermanentStorageError
    # OpenSSH (SFTPv3) reports most errors, disk full included, as a bare "Failure"
    if isinstance(exc, sftp.SFTPError | asyncssh.Error):
        return TransientStorageError
    return None


def _classify_botocore(exc: BaseException) -> type[StorageError]:
    import botocore.exceptions as bx

    if isinstance(
        exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.ParamValidationError
    ):
        return PermanentStorageError
    if isinstance(exc, bx.BotoCoreError | TimeoutError | ConnectionError):
        return TransientStorageError
    import aiohttp

    if isinstance(exc, aiohttp.ClientError):  # e.g. a body cut short: ClientPayloadError
        return TransientStorageError
    return PermanentStorageError  # a bug or a bad setting: retrying will not help


# ----------------------------------------------------------------------------- library logs

#: Where the event loop's and asyncssh's own log records go (shown with -vv): FogVault reports
#: what failed itself, in one line, so their warnings must not reach the user's stderr.
transport_log = logging.getLogger("fogvault.storage.transport")

#: Exceptions from these packages in an asyncio record ("Task exception was never retrieved")
#: are the transports' own.
_TRANSPORT_PACKAGES = ("asyncssh", "sshfs", "aiohttp", "aiobotocore", "botocore", "s3fs",
                       "fsspec", "fogvault")
_quieted = False
_quiet_lock = threading.Lock()


class _ToDebug(logging.Filter):
    """Drops a record of the ``asyncio`` logger that comes from FogVault's transports (from
    fsspec's event loop thread, or about an exception of a transport package), after logging
    it again at DEBUG on :data:`transport_log`. Without it Python's last-resort handler printed
    them on stderr: tens of "socket.send() raised exception." lines when an SFTP server died
    during an upload."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _from_transport(record):
            return True
        _to_debug(record)
        return False


class _ForwardToDebug(logging.Handler):
    """Takes every record of the ``asyncssh`` loggers (and their children, such as
    ``asyncssh.sftp``) to :data:`transport_log`, at DEBUG."""

    def emit(self, record: logging.LogRecord) -> None:
        _to_debug(record)


def _to_debug(record: logging.LogRecord) -> None:
    transport_log.debug("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)


def _from_transport(record: logging.LogRecord) -> bool:
    if record.threadName == "fsspecIO":  # fsspec's loop: every s3:// and sftp:// request
        return True
    exc = record.exc_info[1] if record.exc_info else None
    return exc is not None and type(exc).__module__.partition(".")[0] in _TRANSPORT_PACKAGES


def _quiet_transport_logs() -> None:
    """Keep the ``asyncio`` and ``asyncssh`` loggers' records about FogVault's transports off
    stderr, at DEBUG on :data:`transport_log` instead (once per process)."""
    global _quieted
    with _quiet_lock:
        if not _quieted:
            logging.getLogger("asyncio").addFilter(_ToDebug())
            ssh = logging.getLogger("asyncssh")
            ssh.addHandler(_ForwardToDebug())
            ssh.propagate = False
            _quieted = True


# ----------------------------------------------------------------------------- memory://


class FsspecStorage(Storage):
    """A target on an fsspec filesystem whose writes publish a complete file at once.

    Only ``memory://`` is routed here: its store lives in this process, so the lock makes
    create-only writes atomic. The other protocols have their own classes below.
    """

    def __init__(self, url: str, **options: Any) -> None:
        fs, root = fsspec.core.url_to_fs(url, **options)
        self.fs: Any = fs
        self.root = root.rstrip("/")
        self.url = url
        self._lock = threading.Lock()

    def _path(self, name: str) -> str:
        return f"{self.root}/{validate_name(name)}"

    @contextmanager
    def _mapped(self, name: str) -> Iterator[None]:
        """Turn any exception into the matching StorageError."""
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            raise _error(exc, self.url, name) from exc

    def _fs(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a method of the filesystem (S3 bounds each call: see S3Storage)."""
        return getattr(self.fs, method)(*args, **kwargs)

    def create(self) -> None:
        with self._mapped(""):
            self._fs("makedirs", self.root, exist_ok=True)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        if length == 0:
            self.stat(name)
            return b""
        end = None if length is None else offset + length
        with self._mapped(name):
            return bytes(self.fs.cat_file(path, start=offset, end=end))

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        path = self._path(name)
        with self._mapped(name), self._lock:
            if not overwrite and self.fs.exists(path):
                raise ObjectExists("object exists", target=self.url, name=name)
            self.fs.pipe_file(path, bytes(data))

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        with self._mapped(name):
            info = self._fs("info", path)
        if info.get("type") != "file":
            raise ObjectNotFound("not an object", target=self.url, name=name)
        return ObjectInfo(name, int(info["size"]))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        base = f"{self.root}/{folder}" if folder else self.root
        try:
            found = self.fs.find(base, detail=True)
        except Exception as exc:
            if classify(exc) is not ObjectNotFound:
                raise _error(exc, self.url, prefix) from exc
            found = {}
        for path, info in found.items():
            entry = _entry(self.root, path, info["size"], prefix)
            if entry is not None and info.get("type") == "file":
                yield entry

    def delete(self, name: str) -> None:
        path = self._path(name)
        with self._mapped(name):
            self.fs.rm_file(path)


def _error(exc: BaseException, target: str, name: str) -> StorageError:
    kind = classify(exc)
    if kind is ObjectNotFound:
        return ObjectNotFound("no such object", target=target, name=name)
    if kind is ObjectExists:
        return ObjectExists("object exists", target=target, name=name)
    return kind(_describe(exc), target=target, name=name)


def _describe(exc: BaseException) -> str:
    """A one-line reason; for S3, the server's error code and HTTP status (s3fs often loses
    them, e.g. ``OSError(22, None)``)."""
    if isinstance(exc, RequestStalled):
        return str(exc)
    response = _http_response(exc)
    if response is not None:
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        return f"{error.get('Code', 'error')} (HTTP {status}) {message}".strip()
    # botocore's ParamValidationError puts what is wrong on its second line ("Parameter
    # validation failed:\nInvalid bucket name ..."), which an error's first line left out
    return " ".join(f"{type(exc).__name__}: {exc}".split()).removesuffix(":")


def _entry(root: str, path: str, size: int, prefix: str) -> ObjectInfo | None:
    """The listing entry for ``path``; None for temporaries, names outside ``prefix``, and
    S3 keys ending in ``/`` (the "folders" some tools make)."""
    rel = path.removeprefix(root.rstrip("/") + "/")
    hidden = any(part.startswith(".") for part in rel.split("/"))
    if rel == path or rel.endswith("/") or hidden or not rel.startswith(prefix):
        return None
    return ObjectInfo(rel, int(size))


# ----------------------------------------------------------------------------- s3://


def s3_options(options: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """s3fs settings: ``options`` first, then the environment, then defaults that suit AWS and
    self-hosted servers (Ceph RGW, MinIO) alike.

    Endpoint: ``endpoint_url`` option, else ``FOGVAULT_S3_ENDPOINT``, ``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``; none means AWS. Credentials: ``key``/``secret`` options, else botocore's
    own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ...). Region:
    ``AWS_REGION``/``AWS_DEFAULT_REGION``, default us-east-1, set in the botocore Config (in
    ``client_kwargs`` it would be sent as a LocationConstraint that RGW rejects). Addressing:
    ``FOGVAULT_S3_ADDRESSING`` (path|virtual|auto), default path with a custom endpoint.
    """
    opts = dict(options)
    endpoint = opts.pop("endpoint_url", None)
    if not endpoint:
        endpoint = _endpoint_from(env)
    elif not is_http_url(endpoint):
        raise UsageError(f"endpoint_url {endpoint!r}: use an http:// or https:// URL")
    style = env.get("FOGVAULT_S3_ADDRESSING") or ("path" if endpoint else "auto")
    if style not in ("path", "virtual", "auto"):
        raise UsageError(f"FOGVAULT_S3_ADDRESSING={style!r}: use path, virtual or auto")
    config: dict[str, Any] = {
        "region_name": _first(env, "AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
        "s3": {"addressing_style": style},
        # botocore >= 1.36 adds CRC checksums (aws-chunked bodies, trailers) by default; many
        # S3-compatible servers (RGW < 19 among them) reject or mishandle them
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "retries": {"max_attempts": 3, "mode": "standard"},
    }
    config.update(opts.pop("config_kwargs", {}))
    if endpoint:
        opts["endpoint_url"] = endpoint
    return {"use_listings_cache": False, **opts, "config_kwargs": config}


def multipart_settings(options: dict[str, Any], env: Mapping[str, str] = os.environ
                       ) -> tuple[int, int]:
    """(threshold, part size) in bytes, popped from ``options`` (``multipart_threshold``,
    ``part_size``: a number of bytes or a size such as ``"64M"``), else from
    ``FOGVAULT_S3_MULTIPART_THRESHOLD`` / ``FOGVAULT_S3_PART_SIZE``, else the defaults."""
    def setting(key: str, var: str, default: int) -> int:
        value, given = _setting(options, key, env, var)
        if value is None:
            return default
        try:
            size = value if isinstance(value, int) else parse_size(str(value))
        except UsageError:
            size = -1
        if size < MIN_PART_SIZE:
            raise UsageError(f"{given}={value!r}: use a size of at least 5M (S3's smallest "
                             "part), such as 16M")
        return size

    return (setting("multipart_threshold", "FOGVAULT_S3_MULTIPART_THRESHOLD",
                    DEFAULT_MULTIPART_THRESHOLD),
            setting("part_size", "FOGVAULT_S3_PART_SIZE", DEFAULT_PART_SIZE))  # fmt: skip


def stall_timeout_setting(options: dict[str, Any], env: Mapping[str, str] = os.environ
                          ) -> float:
    """Seconds, popped from ``options`` (``stall_timeout``), else ``FOGVAULT_S3_STALL_TIMEOUT``,
    else DEFAULT_STALL_TIMEOUT."""
    value, given = _setting(options, "stall_timeout", env, "FOGVAULT_S3_STALL_TIMEOUT")
    if value is None:
        return DEFAULT_STALL_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise UsageError(f"{given}={value!r}: use a number of seconds more than 0")
    return seconds


def _setting(options: dict[str, Any], key: str, env: Mapping[str, str], var: str
             ) -> tuple[Any, str]:
    """(the option ``key``, popped, else the variable ``var``, else None; the name it was
    given by, for a message: a bad setting is a usage error that names it). An empty
    variable counts as unset, as FOGVAULT_RETRY_* and the others do."""
    value = options.pop(key, None)
    if value is not None:
        return value, key
    text = env.get(var, "").strip()
    return (text or None), var


async def _unless_stalled(start: Callable[[], Awaitable[Any]], progress: Callable[[], int],
                          limit: Callable[[], float]) -> Any:
    """The result of ``start()``, or RequestStalled once ``progress()`` has not moved for
    ``limit()`` seconds (asked again as it waits: an interrupt shortens it). The call is
    cancelled, which closes its connection."""
    task = asyncio.ensure_future(start())
    loop = asyncio.get_running_loop()
    moved, since = progress(), loop.time()
    while True:
        await asyncio.wait({task}, timeout=min(limit() / 4, 1.0))
        if task.done():
            return task.result()
        if progress() != moved:
            moved, since = progress(), loop.time()
        elif loop.time() - since >= limit():
            await _cancel(task)
            raise RequestStalled(f"no data moved for {limit():g} s: the server or the network "
                                 "went silent")  # fmt: skip


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it to end, cancelling it again each second, at most
    :data:`CANCEL_TRIES` times; then leave it to end on its own. A cancellation that meets a
    library's own timeout can come out as that timeout's error (aiohttp's, through
    async-timeout: aio-libs/aiohttp#5979), which botocore retries: the new attempt, on a silent
    server, would have waited out botocore's read timeout (60 s) per attempt."""
    for _ in range(CANCEL_TRIES):
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
        if task.done():
            return
    log.debug("an S3 request ignored %d cancellations; left to end on its own", CANCEL_TRIES)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # nobody awaits it now


class RequestStalled(ConnectionError):
    """Transient (an OSError without errno); not a TimeoutError, which fsspec renames."""


async def _get_object(fs: Any, request: dict[str, Any], received: list[int]) -> bytes:
    """A GET's body, read in pieces that count in ``received[0]`` (the request's progress)."""
    response = await fs._call_s3("get_object", **request)
    body, pieces = response["Body"], []
    try:
        while piece := await body.read(256 * 1024):
            pieces.append(piece)
            received[0] += len(piece)
    finally:
        body.close()
    return b"".join(pieces)


def _endpoint_from(env: Mapping[str, str]) -> str | None:
    """The endpoint the environment names, if any; one that is not an http(s) URL is a usage
    error naming its variable (botocore's own error named neither)."""
    for var in ("FOGVAULT_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if value := env.get(var):
            if not is_http_url(value):
                raise UsageError(f"{var}={value!r}: use an http:// or https:// URL")
            return value
    return None


def _first(env: Mapping[str, str], *keys: str) -> str | None:
    return next((env[k] for k in keys if env.get(k)), None)


class S3Storage(FsspecStorage):
    """``s3://bucket/prefix`` on AWS or any S3-compatible server; see the module docstring."""

    def __init__(self, url: str, **options: Any) -> None:
        import s3fs

        parts = urlsplit(url)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        self.multipart_threshold, self.part_size = multipart_settings(options)
        self.stall_timeout = stall_timeout_setting(options)
        # fsspec caches instances by settings: targets on one endpoint share a client
        self.fs = s3fs.S3FileSystem(**s3_options(options))
        _quiet_transport_logs()
        self.bucket, self.prefix = bucket, prefix
        self.root = f"{bucket}/{prefix}" if prefix else bucket
        self.url = f"s3://{self.root}"
        self._lock = threading.Lock()
        self._conditional_put = True

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0:
            self.stat(name)
            return b""
        request = {"Bucket": self.bucket, "Key": self._key(validate_name(name))}
        if offset or length is not None:
            last = "" if length is None else offset + length - 1
            request["Range"] = f"bytes={offset}-{last}"
        received = [0]
        try:
            # a single GET: s3fs would split a whole-object read into concurrent ranges
            return self._guarded(partial(_get_object, self.fs, request, received),
                                 lambda: received[0])  # fmt: skip
        except Exception as exc:
            if _http_status(exc) == 416:  # the range starts at or past the end
                return b""
            if _no_bucket(exc):
                raise self._not_in_missing_bucket(name) from exc
            raise _error(exc, self.url, name) from exc

    def stat(self, name: str) -> ObjectInfo:
        try:
            return super().stat(name)
        except PermanentStorageError as exc:
            if _no_bucket(exc):
                raise self._not_in_missing_bucket(name) from exc
            raise

    def _not_in_missing_bucket(self, name: str) -> ObjectNotFound:
        """A read or stat in a bucket that does not exist: the object is not there (so a new
        bucket reads as a target without a repository, which ``create`` makes). Listings,
        writes and deletes there stay errors: a listing must never pass for an empty target."""
        return ObjectNotFound(f"no such object (bucket {self.bucket} does not exist)",
                              target=self.url, name=name)

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        path = self._path(name)
        if len(data) >= min(self.multipart_threshold, S3_MAX_PUT):
            self.write_multipart(name, data, overwrite=overwrite)
            return
        with self._mapped(name):
            if overwrite:
                self._put(path, data, "overwrite")
            elif self._conditional_put:
                self._put_if_absent(path, name, data)
            else:
                self._head_then_put(path, name, data)

    def _put(self, path: str, data: bytes | memoryview, mode: str) -> None:
        # One PutObject (below S3_MAX_PUT). Content-MD5: the server checks the whole body before
        # it stores anything. If-None-Match: the server refuses to replace an object.
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        bucket, key, _ = self.fs.split_path(path)
        match = {"IfNoneMatch": "*"} if mode == "create" else {}
        self._call("put_object", Bucket=bucket, Key=key, Body=data, ContentMD5=md5, **match)

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One S3 API call (s3fs's, errors left to the caller), bounded as :meth:`_guarded`
        says. A ``Body`` is sent from a view, without a copy; its reads are the progress."""
        if kwargs.get("Body") is None:
            return self._fs("call_s3", method, **kwargs)
        body = kwargs["Body"] = _ViewReader(memoryview(kwargs["Body"]))
        try:
            return self._guarded(partial(self.fs._call_s3, method, **kwargs),
                                 lambda: body.handed_out)  # fmt: skip
        finally:  # the library may hold the reader a while: it must not pin the caller's memory
            body.release()

    def _fs(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """An s3fs method (its coroutine), bounded as :meth:`_guarded` says."""
        return self._guarded(partial(getattr(self.fs, f"_{method}"), *args, **kwargs))

    def _guarded(self, start: Callable[[], Awaitable[Any]],
                 progress: Callable[[], int] = lambda: 0) -> Any:
        """``start()`` run on s3fs's loop, failing with RequestStalled (a transient error)
        once ``progress()`` (bytes sent or received) has not moved for ``stall_timeout``
        seconds. botocore's read timeout covers only the wait for an answer, once a body is
        sent, and its retries and s3fs's multiply it: a silent server held a backup for ever
        (a body being sent) or for many minutes per read."""
        return sync(self.fs.loop, _unless_stalled, start, progress, lambda: self.stall_timeout)

    def interrupt(self) -> None:
        self.stall_timeout = min(self.stall_timeout, INTERRUPTED_STALL_TIMEOUT)

    def _put_if_absent(self, path: str, name: str, data: bytes | memoryview) -> None:
        try:
            self._put(path, data, "create")
        except Exception as exc:
            if _http_status(exc) != 501:
                raise
            log.warning("%s ignores If-None-Match: create-only writes are not atomic", self.url)
            self._conditional_put = False
            self._head_then_put(path, name, data)

    def _head_then_put(self, path: str, name: str, data: bytes | memoryview) -> None:
        with self._lock:  # atomic within this process only
            if self._fs("exists", path):
                raise ObjectExists("object exists", target=self.url, name=name)
            self._put(path, data, "overwrite")

    def write_multipart(self, name: str, data: bytes | memoryview, *, overwrite: bool = False
                        ) -> UploadReport:
        """Write ``name`` as a resumable multipart upload (``write`` does so for large data)."""
        upload = MultipartUpload(self._call, self.bucket, self._key(name), self.part_size,
                                 claim_upload_pacing())  # paced per part, not per object
        try:
            return upload.write(data, create_only=not overwrite,
                                conditional=self._conditional_put)  # fmt: skip
        except ObjectExists:
            raise ObjectExists("object exists", target=self.url, name=name) from None
        except StorageError as exc:
            raise type(exc)(str(exc), target=self.url) from exc
        except Exception as exc:
            if (_http_response(exc) or {}).get("Error", {}).get("Code") == "NoSuchUpload":
                # aborted by a clean-up meanwhile: the next attempt starts a new upload
                raise TransientStorageError("upload aborted meanwhile", target=self.url,
                                            name=name) from exc  # fmt: skip
            raise _error(exc, self.url, name) from exc

    def incomplete_uploads(self) -> list[str]:
        """Names with an upload in progress (or left by a writer that died)."""
        with self._mapped(""):
            return [u["Key"].removeprefix(self._key("")) for u in
                    list_uploads(self._call, self.bucket, self._key(""))]  # fmt: skip

    def remove_incomplete(self, older_than: float) -> int:
        with self._mapped(""):
            return len(abort_stale_uploads(self._call, self.bucket, self._key(""),
                                           older_than))  # fmt: skip

    def _key(self, name: str) -> str:
        """The S3 key of ``name`` (``""``: the prefix every key of this target starts with)."""
        name = validate_name(name) if name else ""
        return f"{self.prefix}/{name}" if self.prefix else name

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """One ``ListObjectsV2`` page at a time (s3fs's ``find`` holds the whole listing, about
        600 bytes an object, before the first name); the server filters by prefix. The page
        size is the server's (1,000 on AWS and RGW): given ``MaxKeys``, Ceph RGW sends pages of
        its ``rgw max listing results`` (often 100), each about as slow as one of 1,000."""
        validate_prefix(prefix)
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key("") + prefix}
        while True:
            with self._mapped(prefix):  # a missing bucket is an error, not an empty listing
                page = self._call("list_objects_v2", **request)
            for item in page.get("Contents", ()):
                key = item["Key"]
                entry = _entry(self.root, f"{self.bucket}/{key}", item["Size"], prefix)
                if entry is not None:
                    yield entry
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token or token == request.get("ContinuationToken"):  # would end or loop
                raise PermanentStorageError("the server cut the listing short without a way "
                                            "to go on", target=self.url, name=prefix)  # fmt: skip
            request["ContinuationToken"] = token

    def delete(self, name: str) -> None:
        path = self._path(name)
        with self._mapped(name):
            self._fs("info", path)  # S3 deletes a missing key without complaint: check first
            self._fs("rm_file", path)


# ----------------------------------------------------------------------------- sftp://


def sftp_options(
    url: str, options: Mapping[str, Any], env: Mapping[str, str] = os.environ
) -> tuple[str, str, dict[str, Any]]:
    """(host, root, asyncssh options) for ``sftp://user@host:port/path``.

    ``options`` go to ``asyncssh.connect`` (``client_keys``, ``known_hosts``, ``passphrase``,
    ``encryption_algs``...). Without them: ``FOGVAULT_SFTP_KEY`` (a private key file) and
    ``FOGVAULT_SFTP_KNOWN_HOSTS`` (a known_hosts file), else asyncssh's defaults (``~/.ssh/id_*``,
    the agent, ``~/.ssh/known_hosts``): the host key is always checked unless ``known_hosts=None``
    is passed explicitly. ``/~/path`` is relative to the login's home folder.
    """
    parts = urlsplit(url)  # checked by open_storage (check_url)
    port = sftp_port(url)
    opts = dict(options)
    if parts.username:
        opts.setdefault("username", unquote(parts.username))
    if parts.password:
        opts.setdefault("password", unquote(parts.password))
    if port:
        opts.setdefault("port", port)
    if env.get("FOGVAULT_SFTP_KEY"):
        opts.setdefault("client_keys", [env["FOGVAULT_SFTP_KEY"]])
    # sshfs turns a missing known_hosts into None (no host-key check); () is asyncssh's default
    opts.setdefault("known_hosts", env.get("FOGVAULT_SFTP_KNOWN_HOSTS") or ())
    opts.setdefault("connect_timeout", 30)  # not the OS's minutes for a silent host
    # a server that stops answering (hung, or a link that silently drops packets) is noticed
    # within about a minute, however long the transfer: the connection closes, pending
    # requests fail as transient, and the next call reconnects
    opts.setdefault("keepalive_interval", 15)
    opts.setdefault("keepalive_count_max", 4)
    path = unquote(parts.path).rstrip("/")
    home = path == "/~" or path.startswith("/~/")
    return parts.hostname, (path[3:] if home else path) or ".", opts


def check_sftp_files(opts: Mapping[str, Any], explicit: Mapping[str, Any]) -> None:
    """A usage error naming the file if a key file (``client_keys``) or the known_hosts file
    in ``opts`` (from :func:`sftp_options`) cannot be read; ``explicit``: the options given,
    to say where the file was named. asyncssh would raise FileNotFoundError when connecting,
    which reads as a missing object: "no repository", exit 10."""
    keys = opts.get("client_keys")
    for key in [keys] if isinstance(keys, str | os.PathLike) else keys or ():
        if isinstance(key, str | os.PathLike):
            _readable(key, "the SFTP key" if "client_keys" in explicit else "FOGVAULT_SFTP_KEY")
    known = opts.get("known_hosts")
    if isinstance(known, str | os.PathLike):
        _readable(known, "the known_hosts file" if "known_hosts" in explicit
                  else "FOGVAULT_SFTP_KNOWN_HOSTS")  # fmt: skip


def _readable(path: str | os.PathLike[str], what: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot read {what} {os.fspath(path)}: {reason}") from None


#: Folders read at once by a listing (concurrently, on one channel).
LIST_FOLDERS = 32


class SftpStorage(Storage):
    """``sftp://user@host:port/path`` through sshfs/asyncssh; see the module docstring."""

    def __init__(self, url: str, **options: Any) -> None:
        self._host, self.root, self._options = sftp_options(url, options)
        check_sftp_files(self._options, options)
        parts = urlsplit(url)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        _quiet_transport_logs()
        self.url = f"sftp://{user}{parts.hostname}{port}{parts.path.rstrip('/')}"
        self._fs: Any = None
        self._lock = threading.Lock()

    # --- connection

    def _filesystem(self) -> Any:
        with self._lock:
            if self._fs is None:
                try:
                    from sshfs import SSHFileSystem
                except ImportError as exc:  # optional, unlike s3fs: the sftp extra
                    raise PermanentStorageError(
                        "sftp:// targets need the sshfs package: pip install 'fogvault[sftp]'",
                        target=self.url) from exc
                self._fs = SSHFileSystem(self._host, skip_instance_cache=True, **self._options)
            return self._fs

    def _run(self, name: str, func: Any, *args: Any) -> Any:
        """Run ``func(channel, *args)`` on fsspec's event loop; map errors; drop dead links."""
        fs = None
        try:
            fs = self._filesystem()
            return sync(fs.loop, self._on_channel, fs, func, *args)
        except StorageError:
            raise
        except Exception as exc:
            if fs is None:  # connecting failed: no request was sent
                raise self._connect_error(exc, name) from exc
            if _connection_lost(exc):
                self._disconnect(fs)
            raise _error(exc, self.url, name) from exc

    def _connect_error(self, exc: Exception, name: str) -> StorageError:
        """A failed connection as a sentence. An unknown host, a refused connection or a
        refused host key or login is permanent: the target is not there (or not ours) at
        this address, and retrying within seconds will not change that (restic does not
        retry them either). A time-out, a temporary DNS failure or a network error is
        transient."""
        import asyncssh

        port = self._options.get("port", 22)
        where = f"{self._host} port {port}"
        kind: type[StorageError] = PermanentStorageError
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            message = (f"the host key of {where} is not trusted: check its fingerprint, then "
                       f"add it with 'ssh-keyscan -p {port} {self._host} >> "
                       "~/.ssh/known_hosts', or name a known_hosts file that holds it in "
                       "FOGVAULT_SFTP_KNOWN_HOSTS")
        elif isinstance(exc, asyncssh.PermissionDenied | PermissionError):
            message = (f"login refused by {where} (permission denied): check the user name "
                       "and the key (FOGVAULT_SFTP_KEY)")
        elif isinstance(exc, ConnectionRefusedError):
            message = f"connection refused by {where} (is the SSH server running?)"
        elif isinstance(exc, socket.gaierror):
            message = f"host not found: {self._host}"
            if exc.errno == socket.EAI_AGAIN:  # the resolver could not answer now
                kind, message = TransientStorageError, f"{message} (temporary DNS failure)"
        elif isinstance(exc, TimeoutError):
            kind, message = TransientStorageError, f"connecting to {where} timed out"
        elif isinstance(exc, OSError) and exc.filename is None and exc.strerror:
            kind = classify(exc)  # unreachable network, reset...: by errno
            kind = TransientStorageError if kind is ObjectNotFound else kind
            message = f"cannot connect to {where}: {exc.strerror.lower()}"
        elif isinstance(exc, OSError):  # a file asyncssh was given (a key, known_hosts)
            what = f" {exc.filename}" if exc.filename else ""
            message = f"cannot read{what}: {exc.strerror or exc}"
        else:
            kind = classify(exc)
            if kind in (ObjectNotFound, ObjectExists):  # no request was made: neither applies
                kind = PermanentStorageError
            message = _describe(exc)
        return kind(message, target=self.url, name=name)

    @staticmethod
    async def _on_channel(fs: Any, func: Any, *args: Any) -> Any:
        # sshfs keeps a pool of SFTP channels per connection (private, but it is the pool sshfs
        # itself uses); asyncssh pipelines concurrent requests on each channel
        async with fs._pool.get() as channel:
            return await func(channel, *args)

    def _disconnect(self, fs: Any) -> None:
        """Close ``fs``; the next call connects anew (unless another thread already did)."""
        with self._lock:
            if self._fs is fs:
                self._fs = None
        try:
            fs.client.close()
            sync(fs.loop, fs.client.wait_closed, timeout=5)
        except Exception as exc:  # closing a dead link: nothing left to do
            log.debug("closing %s: %s", self.url, exc)

    def close(self) -> None:
        if self._fs is not None:
            self._disconnect(self._fs)

    # --- Storage

    def _path(self, name: str) -> str:
        return f"{self.root}/{validate_name(name)}"

    def create(self) -> None:
        self._run("", _sftp_makedirs, self.root)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._run(name, _sftp_read, self._path(name), offset, length)

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        path = self._path(name)
        folder, _, leaf = path.rpartition("/")
        tmp = f"{folder}/{TEMP_PREFIX}{leaf}-{os.urandom(6).hex()}"
        pacer = claim_upload_pacing()  # a bandwidth limit paces every WRITE request
        try:
            taken = self._run(name, _sftp_write, tmp, path, data, overwrite, pacer)
        except _PaceInterrupted as exc:
            raise TransientStorageError(str(exc), target=self.url, name=name) from None
        if taken:
            raise ObjectExists("object exists", target=self.url, name=name)

    def stat(self, name: str) -> ObjectInfo:
        attrs = self._run(name, _sftp_stat, self._path(name))
        if not stat_module.S_ISREG(attrs.permissions or 0):
            raise ObjectNotFound("not an object", target=self.url, name=name)
        return ObjectInfo(name, int(attrs.size))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        for path, size, _ in self._walk(prefix, f"{self.root}/{folder}" if folder else self.root):
            entry = _entry(self.root, path, size, prefix)
            if entry is not None:
                yield entry

    def _walk(self, name: str, base: str, temporaries: bool = False
              ) -> Iterator[tuple[str, int, float]]:
        """Every regular file below ``base`` as (path, size, mtime), read ``LIST_FOLDERS`` folders
        at a time: memory holds the entries of that many folders (and the names of the folders
        still to read), not the whole tree's."""
        folders = [base]
        while folders:
            batch = folders[-LIST_FOLDERS:]
            del folders[-LIST_FOLDERS:]
            files, found = self._run(name, _sftp_read_folders, batch, temporaries)
            folders.extend(found)
            yield from files

    def delete(self, name: str) -> None:
        self._run(name, _sftp_remove, self._path(name))

    def remove_incomplete(self, older_than: float) -> int:
        """Delete temporaries of killed writes not modified for ``older_than`` seconds (by the
        server's clock against this machine's: keep ``older_than`` well above any skew)."""
        cutoff = time.time() - older_than
        stale = [path for path, _, mtime in self._walk("", self.root, True) if mtime < cutoff]
        return self._run("", _sftp_remove_old, stale) if stale else 0


class _ViewReader(io.RawIOBase):
    """A file object over a view, so that a pack (a view of its memory map) goes to botocore,
    which takes ``bytes`` or a file object but not a view, without a copy of the whole pack.
    Seekable, so that botocore can rewind it to retry; ``len`` is what s3fs asks first."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0
        # bytes read, over every read: the upload's progress. Not the furthest position: on
        # http:// botocore reads the whole body first (to sign it), then again to send it.
        self.handed_out = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self._view[self._position : self._position + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        self.handed_out += len(piece)
        return len(piece)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def release(self) -> None:
        """Let go of the view (not ``close``, which aiohttp calls after each attempt)."""
        self._view.release()


def _connection_lost(exc: BaseException) -> bool:
    try:
        import asyncssh
        from asyncssh import sftp
    except ImportError:
        return False
    lost = (sftp.SFTPNoConnection, sftp.SFTPConnectionLost, asyncssh.DisconnectError, OSError)
    return isinstance(exc, lost) and not isinstance(exc, FileNotFoundError | PermissionError)


async def _sftp_makedirs(channel: Any, path: str) -> None:
    await channel.makedirs(path, exist_ok=True)


async def _sftp_read(channel: Any, path: str, offset: int, length: int | None) -> bytes:
    async with channel.open(path, "rb") as f:
        if length is None:
            size = (await f.stat()).size or 0
            length = max(size - offset, 0)
        return await f.read(length, offset) if length else b""


async def _sftp_write(channel: Any, tmp: str, path: str, data: bytes | memoryview,
                      overwrite: bool, pacer: Pacer) -> bool:
    """Write ``tmp``, fsync it, rename it to ``path``. True if create-only found ``path`` taken."""
    from asyncssh import sftp

    # block_size=0: each f.write() is one WRITE request, awaited by its caller (_write_blocks)
    try:
        f = await channel.open(tmp, "xb", block_size=0)
    except sftp.SFTPNoSuchFile:
        await channel.makedirs(tmp.rpartition("/")[0], exist_ok=True)
        f = await channel.open(tmp, "xb", block_size=0)
    published = False
    try:
        async with f:
            await _write_blocks(f, data, channel.limits.max_write_len or WRITE_BLOCK, pacer)
            await _fsync(f)
        if overwrite:
            await channel.posix_rename(tmp, path)
            published = True
            return False
        published = not await _rename_create_only(channel, tmp, path)
        return not published
    finally:
        if not published:
            with suppress(Exception):  # best effort: the error that got us here matters more
                await channel.remove(tmp)


#: An SFTP WRITE request's size where the server states no limit (OpenSSH takes 256 KiB)...
WRITE_BLOCK = 240 * 1024
#: ... and about how many bytes of one object are in flight at once (as asyncssh's own writer).
WRITE_IN_FLIGHT = 4 * 1024**2


async def _write_blocks(f: Any, data: bytes | memoryview, block: int, pacer: Pacer) -> None:
    """Write ``data`` at offset 0 of ``f``, a few WRITE requests in flight at once (not
    asyncssh's parallel writer: when the connection is lost, it raises on the first failed
    request and leaves the others' tasks unawaited, which asyncio then prints as tracebacks,
    "Task exception was never retrieved", when they are collected). Every task started here is
    awaited or cancelled, and its outcome retrieved, before this returns or raises. Under a
    bandwidth limit each request is at most ``pacer.piece`` and waits for its tokens first, one
    request at a time: tokens are taken just before the bytes go, so that other targets sharing
    the limit take turns with this one, and an interrupt leaves nothing reserved."""
    view = memoryview(data).cast("B")
    block = min(block, pacer.piece or block)
    offsets = iter(range(0, len(view), block))
    turn = asyncio.Lock()

    async def sender() -> None:
        for offset in offsets:  # shared: each block is taken by one sender
            piece = view[offset : offset + block]
            if pacer.piece:
                async with turn:
                    await _paced(pacer, len(piece))
            await f.write(piece, offset)

    count = min(max(WRITE_IN_FLIGHT // block, 1), math.ceil(len(view) / block))
    tasks = [asyncio.ensure_future(sender()) for _ in range(count)]
    try:
        await asyncio.gather(*tasks)
    finally:  # the first failure ends the write: stop the rest, and collect every outcome
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


#: The longest sleep of a wait for a bandwidth limit's tokens in the event loop: an interrupt
#: ends the wait within this.
PACE_STEP = 0.25


class _PaceInterrupted(TransientStorageError):
    """A paced write given up as the command stops (named by its storage's ``write``)."""


async def _paced(pacer: Pacer, count: int) -> None:
    """Wait, without blocking the event loop, until ``count`` bytes may go (:class:`Pacer`).
    Interrupted, the write is given up: the rest of it would go at link speed, saturating a
    slow link the limit was set for while the command stops."""
    deadline = time.monotonic() + pacer.reserve(count)
    while True:
        if pacer.interrupted():
            raise _PaceInterrupted("given up: the command is being interrupted")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, PACE_STEP))


async def _fsync(f: Any) -> None:
    from asyncssh import sftp

    with suppress(sftp.SFTPOpUnsupported):  # no fsync@openssh.com: durability unknown
        await f.fsync()


async def _rename_create_only(channel: Any, tmp: str, path: str) -> bool:
    """SFTPv3 RENAME never replaces an existing name. True if ``path`` was taken."""
    from asyncssh import sftp

    try:
        await channel.rename(tmp, path)
    except sftp.SFTPError:
        if await channel.exists(path):
            return True
        raise
    return False


async def _sftp_stat(channel: Any, path: str) -> Any:
    return await channel.stat(path)


async def _sftp_remove(channel: Any, path: str) -> None:
    await channel.remove(path)


async def _sftp_read_folders(channel: Any, folders: list[str], temporaries: bool
                             ) -> tuple[list[tuple[str, int, float]], list[str]]:
    """The regular files in ``folders`` as (path, size, mtime), and their subfolders: the
    objects, or with ``temporaries`` the temporary files instead. Folders are read concurrently;
    one that is gone is empty."""
    from asyncssh import sftp

    async def read(folder: str) -> list[Any]:
        try:
            return await channel.readdir(folder)
        except sftp.SFTPNoSuchFile:
            return []

    files, subfolders = [], []
    listings = await asyncio.gather(*(read(folder) for folder in folders))
    for folder, entries in zip(folders, listings, strict=True):
        for entry in entries:
            path = f"{folder}/{entry.filename}"
            mode = entry.attrs.permissions or 0
            if stat_module.S_ISDIR(mode) and not entry.filename.startswith("."):  # nor . or ..
                subfolders.append(path)
            elif stat_module.S_ISREG(mode) and (
                    entry.filename.startswith(TEMP_PREFIX) if temporaries
                    else not entry.filename.startswith(".")):  # fmt: skip
                files.append((path, int(entry.attrs.size or 0), float(entry.attrs.mtime or 0)))
    return files, subfolders


async def _sftp_remove_old(channel: Any, paths: list[str]) -> int:
    """Remove ``paths``; a path already gone (another clean-up) is not counted."""
    from asyncssh import sftp

    removed = 0
    for path in paths:
        with suppress(sftp.SFTPNoSuchFile):
            await channel.remove(path)
            removed += 1
    return removed
