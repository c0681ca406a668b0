"""Target URLs read without opening anything (no network, no file system): what
``open_storage`` refuses, so that a job's ``config check`` refuses it too, not the job's run;
a local target's folder; a URL as messages show it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fogvault.errors import UsageError

#: The URL schemes served by fogvault.storage.fsspec_store, and the class of each.
FSSPEC_SCHEMES = {"memory": "FsspecStorage", "s3": "S3Storage", "sftp": "SftpStorage"}


def hide_password(url: str) -> str:
    """``url`` fit for a message: a password in it replaced by ``***``."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def local_path(url: str) -> str | None:
    """The folder of a local target (a plain path or a ``file://`` URL), else None. A
    ``file://`` URL's host, ``localhost`` or none (RFC 8089), is not part of the path."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if scheme != "file":
        return None
    host, path = _file_url_parts(rest)
    return rest if host else path


def _file_url_parts(rest: str) -> tuple[str, str]:
    """The host (other than ``localhost``: '' for this machine) and the path of a ``file://``
    URL, from what follows ``file://``."""
    host, slash, path = rest.partition("/")
    return ("", slash + path) if host in ("", "localhost") else (host, slash + path)


def check_url(url: str) -> None:
    """A usage error if ``url`` cannot name a target: an empty path (an unset variable, not
    the current folder), a ``file://`` URL with a host, an unknown scheme, an ``s3://`` URL
    without a bucket, an ``sftp://`` URL without a host or with a bad port."""
    path = local_path(url)
    if path is not None:
        if not path:
            raise UsageError(f"the target {url!r} names no folder: give a path or URL ('.' "
                             "for the current folder)")
        if url.startswith("file://") and (host := _file_url_parts(url[7:])[0]):
            raise UsageError(f"the target {url!r} names the host {host!r}: a file:// URL "
                             "names a folder on this machine, as file:///path (three "
                             "slashes); use sftp:// for another host")
        return
    scheme = url.partition("://")[0]
    if scheme not in FSSPEC_SCHEMES:
        known = ", ".join(f"{s}://" for s in ("file", *FSSPEC_SCHEMES))
        raise UsageError(f"unsupported target {hide_password(url)!r}: use a path or {known}")
    if scheme == "s3" and not urlsplit(url).netloc:
        raise UsageError(f"no bucket in {hide_password(url)!r}; use s3://bucket/prefix")
    if scheme == "sftp":
        if not urlsplit(url).hostname:
            raise UsageError(f"no host in {hide_password(url)!r}; use "
                             "sftp://user@host:port/path")
        sftp_port(url)


def sftp_port(url: str) -> int | None:
    """The port of an ``sftp://`` URL (None if it names none); a bad one is a usage error."""
    try:
        port = urlsplit(url).port
    except ValueError:  # not a number, or out of range
        port = -1
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"bad port in {hide_password(url)!r}: use a number from 1 to 65535")
    return port


def is_http_url(url: str) -> bool:
    """Whether ``url`` can be an S3 endpoint: an http(s) URL with a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)
