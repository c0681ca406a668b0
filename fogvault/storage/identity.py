"""When two spellings of a target name the same place.

A target given twice under two spellings would count as two copies of every object, and a
command would write its lock to it twice under one name and fail on the second write. So
targets are compared by what they name (:func:`target_identity`), not by how they are spelled:

* a local folder by its device and inode if it exists (``repo``, ``./repo/``, ``/abs/repo``,
  ``~/repo``, ``file:///abs/repo``, a symlink to it and a bind mount of it are one), else by its
  real path (``os.path.realpath``);
* an SFTP folder by host, port (22 when none is given) and path without doubled or trailing
  slashes, plus the user for a path under the user's home (``/~/...``): an absolute path is the
  same folder whoever logs in;
* an S3 prefix by bucket and prefix without leading or trailing slashes, as ``S3Storage`` names
  its keys. A doubled slash inside a prefix is kept: S3 keys ``a//b`` and ``a/b`` differ.

No network request is made; a local folder is stat'ed. Not recognised as one place: two names or
addresses of one server, an SFTP folder written both under ``/~/`` and as its absolute path, a
symlink on the SFTP server, two S3 URLs that differ only in an endpoint set by options.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from urllib.parse import SplitResult, unquote, urlsplit

_SFTP_PORT = 22


def target_identity(url: str) -> Hashable:
    """What ``url`` names (a path or URL, as ``open_storage`` takes it): equal for two
    spellings of one place."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        return _local_folder(rest if sep else url)
    parts = urlsplit(url)
    if scheme == "sftp":
        return _sftp_folder(parts)
    return scheme, parts.netloc, parts.path.strip("/")


def repeated_target(urls: Iterable[str]) -> tuple[str, str] | None:
    """The first two of ``urls`` that name the same place, as spelled; None if there are none."""
    seen: dict[Hashable, str] = {}
    for url in urls:
        identity = target_identity(url)
        if identity in seen:
            return seen[identity], url
        seen[identity] = url
    return None


def hide_password(url: str) -> str:
    """``url`` fit for a message: a password in it replaced by ``***``."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def _local_folder(path: str) -> Hashable:
    path = os.path.expanduser(path)
    try:
        stat = os.stat(path)
    except OSError:  # not there (yet): what the path leads to
        return "file", os.path.realpath(path)
    return "file", stat.st_dev, stat.st_ino


def _sftp_folder(parts: SplitResult) -> Hashable:
    try:
        port = parts.port or _SFTP_PORT
    except ValueError:  # not a port: opening the target says so
        return parts.geturl()
    path = unquote(parts.path)
    if path.rstrip("/") in ("", "/~") or path.startswith("/~/"):  # home, as sftp_options reads it
        return "sftp", parts.hostname, port, parts.username, "~/" + _segments(path[2:])
    return "sftp", parts.hostname, port, "/" + _segments(path)


def _segments(path: str) -> str:
    """``path`` without empty and ``.`` segments (doubled, leading and trailing slashes)."""
    return "/".join(s for s in path.split("/") if s not in ("", "."))
