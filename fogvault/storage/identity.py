"""When two spellings of a target name the same place.

A target given twice under two spellings would count as two copies of every object, and a
command would write its lock to it twice under one name and fail on the second write. So
targets are compared by what they name (:func:`target_identity`), not by how they are spelled:

* a local folder by its device and inode if it exists (``repo``, ``./repo/``, ``/abs/repo``,
  ``~/repo``, ``file:///abs/repo``, a symlink to it and a bind mount of it are one), else by
  its nearest folder that exists (device and inode) and the names below it;
* an SFTP folder by user, host, port (22 when none is given) and path without doubled or
  trailing slashes: two users may see different folders under one path (a chrooted server);
* an S3 prefix by endpoint (the ``endpoint_url`` option; two providers may have buckets of one
  name), bucket and prefix without leading or trailing slashes, as ``S3Storage`` names its keys.
  A doubled slash inside a prefix is kept: S3 keys ``a//b`` and ``a/b`` differ.

No network request is made; a local folder is stat'ed. Not recognised as one place: two names or
addresses of one server, an SFTP folder written both under ``/~/`` and as its absolute path or
reached by two users, a symlink on the SFTP server, one S3 endpoint spelled two ways.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from fogvault.storage.urls import local_path

_SFTP_PORT = 22


def target_identity(url: str, options: Mapping[str, Any] | None = None) -> Hashable:
    """What ``url`` names (a path or URL, as ``open_storage`` takes it, with its ``options``):
    equal for two spellings of one place."""
    path = local_path(url)
    if path is not None:
        return _local_folder(path)
    scheme = url.partition("://")[0]
    parts = urlsplit(url)
    if scheme == "sftp":
        return _sftp_folder(parts)
    endpoint = (options or {}).get("endpoint_url")
    return scheme, endpoint, parts.netloc, parts.path.strip("/")


def repeated_target(urls: Iterable[str],
                    options: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> tuple[str, str] | None:
    """The first two of ``urls`` that name the same place, as spelled; None if there are none.
    ``options`` maps a URL to its backend options (see :func:`target_identity`)."""
    seen: dict[Hashable, str] = {}
    for url in urls:
        identity = target_identity(url, (options or {}).get(url))
        if identity in seen:
            return seen[identity], url
        seen[identity] = url
    return None


def _local_folder(path: str) -> Hashable:
    """The folder's device and inode, or (not there yet: init) those of the nearest folder
    above it that exists and the names below it, so that a bind mount is recognised too."""
    below: list[str] = []
    path = os.path.realpath(os.path.expanduser(path))  # also through a symlink to no folder yet
    while True:
        try:
            stat = os.stat(path)
        except OSError:
            path, name = os.path.split(path)
            below.insert(0, name)
            continue
        return "file", stat.st_dev, stat.st_ino, *below


def _sftp_folder(parts: SplitResult) -> Hashable:
    try:
        port = parts.port or _SFTP_PORT
    except ValueError:  # not a port: opening the target says so
        return parts.geturl()
    path = unquote(parts.path)
    if path.rstrip("/") in ("", "/~") or path.startswith("/~/"):  # home, as sftp_options reads it
        path = "~/" + _segments(path[2:])
    else:
        path = "/" + _segments(path)
    return "sftp", parts.username, parts.hostname, port, path


def _segments(path: str) -> str:
    """``path`` without empty and ``.`` segments (doubled, leading and trailing slashes)."""
    return "/".join(s for s in path.split("/") if s not in ("", "."))
