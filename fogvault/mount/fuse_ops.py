"""The mfusepy adapter: FUSE's requests answered from a :class:`~fogvault.mount.view.SnapshotView`.

Only translation lives here: text paths (mfusepy decodes them as UTF-8 with surrogate escapes,
so names that are not UTF-8 go back to their bytes) to bytes, entries to ``stat`` fields,
``OSError`` to the errno FUSE returns. Importing this module loads libfuse (through mfusepy),
which raises ``OSError`` where there is none.

Every request is answered: an unexpected exception costs that request (EIO) and one warning,
never the mount, and never a traceback (mfusepy would log one).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import mfusepy

from fogvault.mount.view import Entry, SnapshotView
from fogvault.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK

log = logging.getLogger("fogvault")

ENCODING, ERRORS = "utf-8", "surrogateescape"  # mfusepy's, given to it explicitly

_TYPE_BITS = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, FIFO: stat.S_IFIFO,
              CHARDEV: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK}

T = TypeVar("T")

#: the unit of statfs's block counts (any would do: 4 KiB, as most file systems)
BLOCK_SIZE = 4096
#: the longest name statfs declares: the names come from Linux file systems (and 0, which
#: libfuse leaves when statfs answers without it, tells programs no name fits)
NAME_MAX = 255


def _answers(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` with its failures turned into the errno FUSE returns."""
    @functools.wraps(method)
    def answer(self: Any, *args: Any) -> T:
        try:
            return method(self, *args)
        except OSError as exc:
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None
        except Exception as exc:  # a bug: one request fails, the mount goes on
            log.warning("unexpected error answering %s (%s): %s", method.__name__,
                        type(exc).__name__, exc)
            raise mfusepy.FuseOSError(errno.EIO) from None
    return answer


class FogVaultOperations(mfusepy.Operations):
    """Read-only operations; mfusepy answers the others with EROFS or ENOSYS (and the mount
    is read-only, so the kernel refuses writes before they get here)."""

    use_ns = True  # times in nanoseconds

    def __init__(self, view: SnapshotView, ready: threading.Event) -> None:
        self.view = view
        self.ready = ready

    def init(self, path: str) -> None:
        self.ready.set()  # the kernel has the mount: requests may come

    @_answers
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        return stat_fields(self.view.lookup(_bytes(path)))

    @_answers
    def readdir(self, path: str, fh: int) -> Iterable[Any]:
        folder = _bytes(path)
        listing = self.view.listdir(folder)
        # with use_ino, an entry's inode number is passed on, and readdir(3) skips those of 0
        itself = self.view.lookup(folder)
        parent = self.view.lookup(os.path.dirname(folder))
        return [(_text(name), {"st_mode": _TYPE_BITS[entry.type], "st_ino": entry.ino}, 0)
                for name, entry in [(b".", itself), (b"..", parent), *listing]]

    @_answers
    def readlink(self, path: str) -> str:
        entry = self.view.lookup(_bytes(path))
        if entry.type != SYMLINK:
            raise OSError(errno.EINVAL, "not a symbolic link")
        return _text(entry.target)

    @_answers
    def open(self, path: str, flags: int) -> int:
        return self.view.open(_bytes(path))

    @_answers
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.view.read(fh, offset, size)

    @_answers
    def release(self, path: str, fh: int) -> int:
        self.view.release(fh)
        return 0

    @_answers
    def statfs(self, path: str) -> dict[str, int]:
        """What ``df`` shows. As a read-only image (squashfs, ISO 9660) shows itself: as large
        as what the repository takes on a target, all of it used, none free (nothing can be
        written), and a lower bound of the names it shows as inodes (``SnapshotView.usage``),
        none free. restic's mount
        answers zeros (``df`` leaves it out), borg's zeros in blocks of 512 bytes."""
        usage = self.view.usage()
        return {"f_bsize": BLOCK_SIZE, "f_frsize": BLOCK_SIZE,
                "f_blocks": -(-usage.stored_bytes // BLOCK_SIZE), "f_bfree": 0, "f_bavail": 0,
                "f_files": usage.entries, "f_ffree": 0, "f_favail": 0, "f_namemax": NAME_MAX}

    @_answers
    def listxattr(self, path: str) -> list[str]:
        # As ext4 does: names in the trusted namespace are root's only (other users' reads of
        # their values are refused by the kernel before they get here).
        shown = [name for name, _ in self.view.lookup(_bytes(path)).xattrs
                 if not name.startswith(b"trusted.") or mfusepy.fuse_get_context()[0] == 0]
        return [_text(name) for name in shown]

    @_answers
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        wanted = _bytes(name)
        for key, value in self.view.lookup(_bytes(path)).xattrs:
            if key == wanted:
                return value
        raise OSError(mfusepy.ENOATTR, "no such attribute")


def stat_fields(entry: Entry) -> dict[str, int]:
    """The entry's stat. Values no file system holds (a hostile snapshot's) are cut to the C
    types' ranges: the kernel would be answered an error instead of the entry."""
    size = min(entry.size, _OFF_MAX)
    return {
        "st_mode": _TYPE_BITS[entry.type] | (entry.mode & 0o7777),
        "st_ino": entry.ino,
        "st_nlink": min(entry.nlink, _ID_MAX),
        "st_uid": min(entry.uid, _ID_MAX),
        "st_gid": min(entry.gid, _ID_MAX),
        "st_size": size,
        "st_blocks": (size + 511) // 512,
        "st_rdev": kernel_device(entry.rdev & _DEV_MASK),
        "st_atime": entry.mtime_ns,
        "st_mtime": entry.mtime_ns,
        "st_ctime": entry.ctime_ns,
    }


_OFF_MAX = 2**63 - 1  # off_t
_ID_MAX = 2**32 - 1  # uid_t, gid_t; and nlink_t as FUSE passes it
_DEV_MASK = 2**64 - 1  # dev_t


def kernel_device(rdev: int) -> int:
    """A stored device number (this C library's ``dev_t``) as FUSE passes it to the kernel: 32
    bits, the kernel's own encoding (12 bits of major; the minor's low 8 bits below it, the
    rest above), which equals ``dev_t`` only for minors under 256."""
    major, minor = os.major(rdev), os.minor(rdev)
    return ((minor & 0xFF) | ((major & 0xFFF) << 8) | ((minor & ~0xFF) << 12)) & 0xFFFFFFFF


def _bytes(path: str) -> bytes:
    return path.encode(ENCODING, ERRORS)


def _text(name: bytes) -> str:
    return name.decode(ENCODING, ERRORS)
