"""A local cache of immutable repository objects, one folder per repository: copies of its index
files, and of its tree packs (the packs that hold folder listings, as restic's cache holds them).

Only content-addressed objects are cached. An index file's copy is verified against its name
when read; a tree pack's is verified against its name when it is downloaded, and then read in
ranges, each blob of which is authenticated as it is opened. A copy whose blob fails that is
hashed: if it is not the pack it is damaged, and is dropped and downloaded again; if it is, the
blob was damaged when the pack was written, on every target alike, and the copy is kept. So a
stale or damaged cache costs a download, never correctness. Data packs are never cached.
Files are written atomically (a temporary file, then a rename), so processes sharing the folder
see whole files or none. The folder is 0700 and files are 0600: their contents are encrypted,
but their count and sizes are still private. A repository's folder gets a new modification
time whenever the repository is opened, so that ``fogvault cache`` can tell folders of
repositories no longer used (restic's ``cache``).

Copies of objects the repository no longer holds are removed by :meth:`Cache.sweep`, which the
repository runs when it loads its index. Design: docs/design.md, section 4, "The local cache";
the files and their rules: docs/format.md, section 18.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from fogvault.crypto import Buffer, content_hash, content_hasher
from fogvault.repo.config import is_repo_id
from fogvault.repo.format import DATA_DIR, ID_HEX_LEN, INDEX_DIR, pack_id_from_name, pack_name

log = logging.getLogger("fogvault")

_TEMP_PREFIX = ".tmp-"
#: A temporary file older than this was left by a writer that was killed: :meth:`Cache.sweep`
#: removes it (a younger one may be another process's write in progress).
STALE_TEMP_S = 3600
#: Locks that let one thread download a tree pack while the others that want it wait (by the
#: pack id's first byte: threads fetching different packs rarely wait for each other).
_FETCH_LOCKS = 64
#: bytes of a copy read at a time when it is hashed
_HASH_PIECE = 1024 * 1024
#: The cache folder's tag (https://bford.info/cachedir/): its first line is the signature that
#: tools which skip caches look for.
CACHEDIR_TAG = "CACHEDIR.TAG"
_CACHEDIR_TAG_TEXT = (b"Signature: 8a477f597d28d172789f06886806bc55\n"
                      b"# This file is a cache directory tag created by FogVault.\n"
                      b"# For information about cache directory tags, see:\n"
                      b"#\thttps://bford.info/cachedir/\n")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("fogvault"))


class Cache:
    def __init__(self, root: Path, repo_id: str) -> None:
        self.root = Path(root) / repo_id
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # not the parent: it may be a folder the user chose
        os.utime(self.root)  # in use: see cache_folders
        _tag_as_cache(Path(root))

    def _path(self, name: str) -> Path:
        return self.root / _file_name(name)

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

    def read_range(self, name: str, offset: int, length: int) -> bytes | None:
        """Bytes ``offset`` to ``offset + length`` of the copy of ``name`` (fewer if the file
        ends first), unverified; None if there is none (or it cannot be read)."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return os.pread(fd, length, offset)
        except OSError as exc:
            log.debug("cannot read %s from the cache: %s", name, exc)
            return None
        finally:
            os.close(fd)

    def is_copy_of(self, name: str, object_id: bytes) -> bool:
        """Whether the copy of ``name`` hashes to ``object_id`` (read in pieces, never held
        whole); False if there is none or it cannot be read."""
        hasher = content_hasher()
        try:
            with open(self._path(name), "rb") as f:
                while piece := f.read(_HASH_PIECE):
                    hasher.update(piece)
        except OSError:
            return False
        return hasher.digest() == object_id

    def put(self, name: str, data: Buffer) -> bool:
        """Store a copy of ``name``, replacing any; whether it was stored (a cache that cannot
        be written is only slower)."""
        try:
            self.store(name, data)
        except OSError as exc:
            log.debug("cannot write %s to the cache: %s", name, exc)
            return False
        return True

    def store(self, name: str, data: Buffer) -> None:
        """:meth:`put`, raising the OSError that kept the copy from being stored (its
        temporary file removed)."""
        path = self._path(name)
        tmp = path.with_name(f"{_TEMP_PREFIX}{os.urandom(6).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            _remove(tmp)
            raise

    def discard(self, name: str) -> bool:
        """Remove the copy of ``name``; whether it is gone."""
        return _remove(self._path(name))

    def sweep(self, keep: Callable[[str], bool]) -> int:
        """Remove the copies of the objects ``keep`` (given the object's name) says the
        repository no longer holds, and temporary files older than :data:`STALE_TEMP_S`;
        return how many files were removed. One directory listing: cheap enough for every
        open."""
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            log.debug("cannot list the cache %s: %s", self.root, exc)
            return 0
        for entry in entries:
            name = _object_name(entry.name)
            doomed = not keep(name) if name is not None else _is_stale_temp(entry)
            if doomed and _remove(Path(entry.path)):
                removed += 1
        return removed


class TreePackCache:
    """Whole copies of tree packs in a repository's :class:`Cache`, read in ranges.

    :meth:`read` returns a range of a pack's copy; :meth:`fetch` downloads the pack first if
    there is none (with the caller's function, which verifies it against its id), stores it
    and returns the range from the bytes downloaded; threads that want a pack being downloaded
    wait for it instead of downloading it too. Nothing here authenticates what a copy returns:
    the caller opens each blob; when one fails, :meth:`is_intact` tells a damaged copy (to
    :meth:`discard`) from a blob damaged in the pack itself. Once a copy cannot be written (a
    full or read-only disk), :attr:`writable` is False: no more packs are downloaded whole or
    stored (the caller reads ranges from the targets, as with no cache, rather than download
    whole packs for nothing), but the copies already there are still read."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.writable = True
        self._writable_lock = threading.Lock()  # one warning when the cache stops taking packs
        #: packs whose bytes this cache returns are known to be the pack: downloaded (verified)
        #: by :meth:`fetch`, or whose copy hashed to the id (:meth:`is_intact`)
        self._intact: set[bytes] = set()
        self._locks = [threading.Lock() for _ in range(_FETCH_LOCKS)]

    def read(self, pack_id: bytes, offset: int, length: int) -> bytes | None:
        """Bytes ``offset`` to ``offset + length`` of the pack's copy (fewer if it is
        short), or None if there is none."""
        return self.cache.read_range(pack_name(pack_id), offset, length)

    def fetch(self, pack_id: bytes, offset: int, length: int,
              download: Callable[[], Buffer]) -> bytes:
        """Bytes ``offset`` to ``offset + length`` of the pack: from ``download()`` (the whole
        pack, verified; its errors are raised), which is then stored, or from the copy that
        another thread or process stored meanwhile. The whole pack is held only while it is
        stored."""
        with self._locks[pack_id[0] % _FETCH_LOCKS]:
            found = self.read(pack_id, offset, length)
            if found is not None:
                return found
            whole = download()
            self._intact.add(pack_id)
            self.put(pack_id, whole)
            return bytes(memoryview(whole)[offset : offset + length])

    def is_intact(self, pack_id: bytes) -> bool:
        """Whether the bytes this cache returns for the pack are the pack itself: downloaded
        by :meth:`fetch`, or a copy that hashes to its id (hashed once)."""
        if pack_id not in self._intact and self.cache.is_copy_of(pack_name(pack_id), pack_id):
            self._intact.add(pack_id)
        return pack_id in self._intact

    def put(self, pack_id: bytes, data: Buffer) -> None:
        """Keep a copy of a tree pack: one downloaded, or one this process wrote (the next
        backup reads it as its parent's)."""
        if not self.writable:
            return
        try:
            self.cache.store(pack_name(pack_id), data)
        except OSError as exc:
            with self._writable_lock:
                warn, self.writable = self.writable, False
            if warn:
                log.warning("tree packs are not cached from now on (the copies already there "
                            "are still read): cannot write to %s: %s", self.cache.root,
                            exc.strerror or exc)

    def discard(self, pack_id: bytes) -> bool:
        """Remove the pack's copy; whether it is gone (it is not where the folder or the file
        cannot be changed: read-only, immutable)."""
        return self.cache.discard(pack_name(pack_id))


def _tag_as_cache(root: Path) -> None:
    """Write the standard ``CACHEDIR.TAG`` (https://bford.info/cachedir/) into the cache folder
    unless it has one, as restic does: backups that skip caches (``--exclude-caches``, tar's
    ``--exclude-caches``, borg's) then skip the copies of index files and tree packs. Written
    at each open, so a tag deleted comes back; one that cannot be written costs only that."""
    tag = root / CACHEDIR_TAG
    try:
        fd = os.open(tag, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return
    except OSError as exc:
        log.debug("cannot tag %s as a cache folder: %s", root, exc)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_CACHEDIR_TAG_TEXT)
    except OSError as exc:  # a full disk: no half tag, which would never be rewritten
        log.debug("cannot tag %s as a cache folder: %s", root, exc)
        _remove(tag)


def _file_name(name: str) -> str:
    """The cache's file name for the object ``name``: its name with ``/`` as ``_``
    (``index_<id>``, ``data_<2>_<id>``)."""
    return name.replace("/", "_")


def _object_name(file_name: str) -> str | None:
    """The name of the object that the cache's file ``file_name`` copies, or None if it is
    not a copy (a temporary file, or something the cache does not write)."""
    index_prefix = _file_name(INDEX_DIR)
    if file_name.startswith(index_prefix):
        object_id = file_name.removeprefix(index_prefix)
        if len(object_id) == ID_HEX_LEN and all(c in "0123456789abcdef" for c in object_id):
            return INDEX_DIR + object_id
        return None
    name = file_name.replace("_", "/")
    return name if name.startswith(DATA_DIR) and pack_id_from_name(name) else None


def _is_stale_temp(entry: os.DirEntry) -> bool:
    try:
        return (entry.name.startswith(_TEMP_PREFIX)
                and time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S)
    except OSError:
        return False


def _remove(path: Path) -> bool:
    """Delete a cached file if the file system lets us; whether it is gone. One that stays (a
    read-only or immutable cache) costs downloads, not correctness: it is verified, and
    refused, again when it is next read."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("cannot remove %s from the cache: %s", path, exc)
        return False
    return True


@dataclass(slots=True)
class CacheFolder:
    path: Path
    repo_id: str
    last_used: float  # seconds since the epoch: when the repository was last opened
    size: int  # bytes of the files in it
    tree_packs: int = 0  # copies of tree packs among them
    tree_pack_size: int = 0  # their bytes


def cache_folders(root: Path) -> Iterator[CacheFolder]:
    """The repositories' folders in the cache folder ``root``, oldest use first. Only folders
    named as a repository id are counted: ``--cache-dir`` may name a folder that holds more.
    One that goes away while it is looked at (another cleanup) is left out; so is a file that
    goes away while its folder is measured (a copy swept, a temporary file renamed). OSError
    if ``root`` exists but cannot be listed (NotADirectoryError: it is no folder)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    found = []
    for entry in entries:
        try:
            if is_repo_id(entry.name) and entry.is_dir(follow_symlinks=False):
                found.append(_measured(entry))
        except OSError:
            continue
    yield from sorted(found, key=lambda folder: folder.last_used)


def _measured(entry: os.DirEntry) -> CacheFolder:
    folder = CacheFolder(Path(entry.path), entry.name, entry.stat(follow_symlinks=False).st_mtime,
                         0)
    for file in os.scandir(entry.path):
        try:
            if not file.is_file(follow_symlinks=False):
                continue
            size = file.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # gone since the listing: it takes no room
            continue
        folder.size += size
        if (_object_name(file.name) or "").startswith(DATA_DIR):
            folder.tree_packs += 1
            folder.tree_pack_size += size
    return folder


def is_old(folder: CacheFolder, max_age_days: float) -> bool:
    return time.time() - folder.last_used > max_age_days * 86400


def remove_folder(folder: CacheFolder) -> None:
    """Delete a repository's cache folder, if it holds only what a Cache writes (files named
    as cached objects, and temporary files): a folder of the same name that holds anything
    else is not ours, and is refused (ValueError). OSError if the file system refuses."""
    names = os.listdir(folder.path)
    foreign = [n for n in names if not (_object_name(n) or n.startswith(_TEMP_PREFIX))
               or not os.path.isfile(os.path.join(folder.path, n))
               or os.path.islink(os.path.join(folder.path, n))]
    if foreign:
        raise ValueError(f"it holds {foreign[0]!r}, which the cache does not write: not "
                         "removed")
    for name in names:
        os.unlink(os.path.join(folder.path, name))
    os.rmdir(folder.path)
