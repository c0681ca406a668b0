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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from fogvault.crypto import content_hash
from fogvault.repo.config import is_repo_id
from fogvault.repo.format import ID_HEX_LEN, INDEX_DIR

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
    named as a repository id are counted: ``--cache-dir`` may name a folder that holds more.
    One that goes away while it is looked at (another cleanup) is left out."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    found = []
    for entry in entries:
        try:
            if is_repo_id(entry.name) and entry.is_dir(follow_symlinks=False):
                found.append(CacheFolder(Path(entry.path), entry.name,
                                         entry.stat(follow_symlinks=False).st_mtime,
                                         _files_size(entry.path)))
        except OSError:
            continue
    yield from sorted(found, key=lambda folder: folder.last_used)


def _files_size(folder: str) -> int:
    return sum(f.stat(follow_symlinks=False).st_size for f in os.scandir(folder)
               if f.is_file(follow_symlinks=False))


def is_old(folder: CacheFolder, max_age_days: float) -> bool:
    return time.time() - folder.last_used > max_age_days * 86400


def remove_folder(folder: CacheFolder) -> None:
    """Delete a repository's cache folder, if it holds only what a Cache writes (files named
    as cached objects, and temporary files): a folder of the same name that holds anything
    else is not ours, and is refused (ValueError). OSError if the file system refuses."""
    names = os.listdir(folder.path)
    foreign = [n for n in names if not (_is_cached_name(n) or n.startswith(".tmp-"))
               or not os.path.isfile(os.path.join(folder.path, n))
               or os.path.islink(os.path.join(folder.path, n))]
    if foreign:
        raise ValueError(f"it holds {foreign[0]!r}, which the cache does not write: not "
                         "removed")
    for name in names:
        os.unlink(os.path.join(folder.path, name))
    os.rmdir(folder.path)


def _is_cached_name(name: str) -> bool:
    """A name :meth:`Cache._path` makes of an index file's."""
    prefix = INDEX_DIR.replace("/", "_")
    object_id = name.removeprefix(prefix)
    return (name.startswith(prefix) and len(object_id) == ID_HEX_LEN
            and all(c in "0123456789abcdef" for c in object_id))
