"""A local cache of immutable repository objects (index files), one folder per repository.

Only content-addressed objects are cached, and every cached copy is verified against its name
when read, so a stale or damaged cache costs a download, never correctness. The folder is 0700
and files are 0600: index contents are encrypted, but their count and sizes are still private.
A repository's folder gets a new modification time whenever the repository is opened, so that
``fogvault cache`` can tell folders of repositories no longer used (restic's ``cache``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from fogvault.crypto import content_hash
from fogvault.repo.config import is_repo_id

log = logging.getLogger("fogvault")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("fogvault"))


class Cache:
    def __init__(self, root: Path, repo_id: str) -> None:
        self.root = Path(root) / repo_id
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # not the parent: it may be a folder the user chose
        os.utime(self.root)  # in use: see cache_folders

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


@dataclass(slots=True)
class CacheFolder:
    path: Path
    repo_id: str
    last_used: float  # seconds since the epoch: when the repository was last opened
    size: int  # bytes of the files in it


def cache_folders(root: Path) -> Iterator[CacheFolder]:
    """The repositories' folders in the cache folder ``root``, oldest use first. Only folders
    named as a repository id are counted: ``--cache-dir`` may name a folder that holds more."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    folders = [e for e in entries if is_repo_id(e.name) and e.is_dir(follow_symlinks=False)]
    for entry in sorted(folders, key=lambda e: e.stat(follow_symlinks=False).st_mtime):
        size = sum(f.stat(follow_symlinks=False).st_size for f in os.scandir(entry.path)
                   if f.is_file(follow_symlinks=False))
        yield CacheFolder(Path(entry.path), entry.name,
                          entry.stat(follow_symlinks=False).st_mtime, size)


def is_old(folder: CacheFolder, max_age_days: float) -> bool:
    return time.time() - folder.last_used > max_age_days * 86400


def remove_folder(folder: CacheFolder) -> None:
    shutil.rmtree(folder.path)
