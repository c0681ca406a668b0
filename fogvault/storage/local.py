"""A local folder as a target, with the durability fsspec's LocalFileSystem does not give.

Writes go to a temporary name in the same folder, are fsync'ed, then published atomically:
``os.link`` for create-only writes (fails if the name exists, without a window where both
could win) and ``os.replace`` for overwrites; the folder is fsync'ed afterwards so a power cut
cannot lose a published name. Reads and listings use plain ``os`` calls.

Objects of ``DIRECT_MIN`` bytes or more (packs) are written around the page cache (Linux
``O_DIRECT``) where the file system allows it: a backup's packs are not read back soon, so
caching them only evicts the user's own files, and copying them into the cache cost 1.5-2 s of
system time per 500 MiB on the benchmark machine (docs/performance-log.md, "Session 4"). Direct
I/O needs aligned memory, offsets and lengths: an object in page-aligned writable memory (a
finished pack) is written from where it is, any other goes through a 1 MiB aligned buffer, and
the last partial block is written normally; a file system that refuses direct I/O gets the
whole object written normally.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fogvault.heap import zeroed_map
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
from fogvault.storage.throttled import UNLIMITED, Pacer, claim_upload_pacing

_NO_HARDLINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.EIO}


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / validate_name(name)

    def _error(self, exc: OSError, name: str) -> StorageError:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            return ObjectNotFound("no such object", target=self.url, name=name)
        kind = TransientStorageError if exc.errno in _TRANSIENT_ERRNOS else PermanentStorageError
        return kind(exc.strerror or str(exc), target=self.url, name=name)

    def create(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:  # the root, or a folder above it
            raise PermanentStorageError("a file is in the way: a target must be a folder",
                                        target=self.url, name="") from exc
        except OSError as exc:
            raise self._error(exc, "") from exc

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            with open(self._open_object(path, name), "rb", buffering=0) as f:
                if length is None:
                    f.seek(offset)
                    data = f.readall()
                else:
                    data = _read_range(f.fileno(), offset, length)
                if len(data) >= DROP_AFTER_READ and _FADV_DONTNEED is not None:
                    # Packs are read once (restore, check, repack): out of the page cache, as
                    # they were written (O_DIRECT), instead of evicting other data. Restoring
                    # a 1 GiB snapshot also went from 4.6-5.9 s to 2.4-4.2 s in the benchmark,
                    # whose VM makes memory it has not used for a while slow to touch.
                    with contextlib.suppress(OSError):  # a hint: the read itself worked
                        os.posix_fadvise(f.fileno(), offset, len(data), _FADV_DONTNEED)
                return data
        except OSError as exc:
            raise self._error(exc, name) from exc

    def _open_object(self, path: Path, name: str) -> int:
        """A descriptor of the object at ``path``, opened without waiting (a fifo in its place
        would block the open for ever); anything but a regular file is no object."""
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            kind = os.fstat(fd).st_mode
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISREG(kind):
            os.close(fd)
            raise ObjectNotFound("is a folder" if stat.S_ISDIR(kind) else "not an object",
                                 target=self.url, name=name)
        return fd

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        path = self._path(name)
        tmp = path.parent / f"{TEMP_PREFIX}{path.name}-{os.urandom(6).hex()}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                pacer = claim_upload_pacing()  # a bandwidth limit paces every os.write
                view = memoryview(data)
                if len(view) >= DIRECT_MIN:
                    view = view[_write_direct(fd, view, pacer) :]
                while view:
                    written = os.write(fd, view[: pacer.piece])
                    pacer.take(written)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if overwrite:
                os.replace(tmp, path)
            else:
                self._publish_new(tmp, path, name)
            _fsync_dir(path.parent)
        except StorageError:
            raise
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(exc, FileNotFoundError | NotADirectoryError):  # a broken folder layout
                raise PermanentStorageError(exc.strerror or str(exc), target=self.url,
                                            name=name) from exc
            raise self._error(exc, name) from exc

    def _publish_new(self, tmp: Path, path: Path, name: str) -> None:
        """Give ``tmp`` the name ``path`` unless it exists. A hard link does it atomically; file
        systems without hard links (FAT, exFAT) get check-then-rename, whose race only matters
        for two writers of one name at the same instant."""
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            os.unlink(tmp)
            raise ObjectExists("object exists", target=self.url, name=name) from exc
        except OSError as exc:
            if exc.errno not in _NO_HARDLINKS:
                os.unlink(tmp)
                raise
            if path.exists():
                os.unlink(tmp)
                raise ObjectExists("object exists", target=self.url, name=name) from exc
            os.rename(tmp, path)
        else:
            os.unlink(tmp)

    def stat(self, name: str) -> ObjectInfo:
        try:
            st = os.stat(self._path(name))
        except OSError as exc:
            raise self._error(exc, name) from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound("not an object", target=self.url, name=name)
        return ObjectInfo(name, st.st_size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        folder, _, stem = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        try:
            yield from self._walk(base, folder, stem)
        except OSError as exc:
            raise self._error(exc, prefix) from exc

    def _walk(self, base: Path, rel: str, stem: str) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.startswith(stem):
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), name, "")
            elif entry.is_file(follow_symlinks=False):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # deleted since the folder was read (a lock released)
                    continue
                yield ObjectInfo(name, size)

    def delete(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except OSError as exc:
            raise self._error(exc, name) from exc

    def remove_incomplete(self, older_than: float) -> int:
        """Delete ``.tmp-*`` files (writes killed before publishing) not modified for
        ``older_than`` seconds; a younger one may belong to a write in progress."""
        cutoff = time.time() - older_than
        removed = 0
        try:
            for folder, _, files in os.walk(self.root):
                for leaf in files:
                    path = os.path.join(folder, leaf)
                    if leaf.startswith(TEMP_PREFIX) and os.lstat(path).st_mtime < cutoff:
                        with contextlib.suppress(FileNotFoundError):  # another clean-up won
                            os.unlink(path)
                            removed += 1
        except OSError as exc:
            raise self._error(exc, "") from exc
        return removed


DIRECT_MIN = 1024 * 1024
DROP_AFTER_READ = 256 * 1024  # ranged reads this large leave the page cache (see read)
_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)  # Linux and BSDs
_DIRECT_ALIGN = 4096  # offsets, lengths and memory: a multiple of the usual logical block sizes
_DIRECT_PIECE = 1024 * 1024  # the aligned buffer, one per writing thread
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux only
_direct_buffers = threading.local()


def _write_direct(fd: int, data: memoryview, pacer: Pacer = UNLIMITED) -> int:
    """Write the longest whole-block prefix of ``data`` to the empty file ``fd`` around the
    page cache, in pieces ``pacer`` paces; return how many bytes that wrote (the file position
    is there). 0 if the file system refuses direct I/O; a refusal part-way (EINVAL) also stops
    here, and the caller writes the rest normally."""
    whole = len(data) - len(data) % _DIRECT_ALIGN
    if not _O_DIRECT or not whole:
        return 0
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
    except OSError:
        return 0
    done = 0
    try:
        # a pace's piece is a multiple of the alignment (throttled.pace_piece)
        size = min(pacer.piece or _DIRECT_PIECE, _DIRECT_PIECE)
        for piece in _aligned_pieces(data[:whole], size):
            written = os.write(fd, piece)
            pacer.take(written)
            done += written
            if written < len(piece):  # the position may no longer be aligned
                break
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return done


def _aligned_pieces(data: memoryview, size: int) -> Iterator[memoryview]:
    """``data`` in pieces of at most ``size`` bytes (a multiple of ``_DIRECT_ALIGN``, at most
    ``_DIRECT_PIECE``) in aligned memory: views of ``data`` itself where it is aligned (no
    copy), else this thread's buffer refilled."""
    copy_to = None if _is_aligned(data) else memoryview(_aligned_buffer())
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        if copy_to is not None:
            copy_to[: len(piece)] = piece
            piece = copy_to[: len(piece)]
        yield piece


def _is_aligned(data: memoryview) -> bool:
    """True if ``data`` starts on a ``_DIRECT_ALIGN`` boundary. Only writable buffers tell
    their address through ctypes; read-only ones (``bytes``) count as unaligned."""
    if data.readonly or not data.c_contiguous:
        return False
    return ctypes.addressof(ctypes.c_char.from_buffer(data)) % _DIRECT_ALIGN == 0


def _aligned_buffer() -> mmap.mmap:
    """This thread's page-aligned buffer for direct writes."""
    if not hasattr(_direct_buffers, "buffer"):
        _direct_buffers.buffer = zeroed_map(_DIRECT_PIECE)
    return _direct_buffers.buffer


def _read_range(fd: int, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` (fewer at the end of the file). ``pread`` makes the
    result in one copy; reading into a zeroed ``bytearray`` and copying that out cost a
    ``memset`` and a second copy of every byte restored."""
    parts, got = [], 0
    while got < length:  # more than one pread only after a short read before the end
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
