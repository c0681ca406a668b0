"""A local cache of immutable repository objects (index files), one folder per repository.

Only content-addressed objects are cached, and every cached copy is verified against its name
when read, so a stale or damaged cache costs a download, never correctness. The folder is 0700
and files are 0600: index contents are encrypted, but their count and sizes are still private.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from fogvault.crypto import content_hash

log = logging.getLogger("fogvault")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("fogvault"))


class Cache:
    def __init__(self, root: Path, repo_id: str) -> None:
        self.root = Path(root) / repo_id
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # not the parent: it may be a folder the user chose

    def _path(self, name: str) -> Path:
        return self.root / name.replace("/", "_")

    def get_verified(self, name: str, object_id: bytes) -> bytes | None:
        path = self._path(name)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if content_hash(data) != object_id:
            _remove(path)
            return None
        return data

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        tmp = path.with_name(f".tmp-{os.urandom(6).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            _remove(tmp)  # a cache that cannot be written is only slower

    def names(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if not p.name.startswith(".")}

    def discard(self, name: str) -> None:
        _remove(self._path(name))


def _remove(path: Path) -> None:
    """Delete a cached file if the file system lets us. One that stays (a read-only or
    immutable cache) costs downloads, not correctness: it is verified, and refused, again when
    it is next read."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("cannot remove %s from the cache: %s", path, exc)
