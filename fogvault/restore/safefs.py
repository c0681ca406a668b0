"""Creating entries below a restore target without ever following a symlink.

Every operation starts from a file descriptor of the target folder and walks down one
component at a time with ``O_DIRECTORY | O_NOFOLLOW``, so neither a symlink written by the
restore itself nor one already present in the target can redirect a write outside it. Names
are checked again here (empty, ``.``, ``..``, ``/`` or NUL are refused), so this module is safe
even if a caller forgets to validate.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import NamedTuple

from fogvault.errors import UnsafePath, UsageError
from fogvault.repo.tree import check_name

Parts = tuple[bytes, ...]
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Listing(NamedTuple):
    device: int  # the folder's file system
    inode: int  # the folder's, with ``device`` its identity
    entries: list[tuple[bytes, bool]]  # name, and whether it is a folder (a symlink is not)


class SafeRoot:
    """The restore target. Paths are tuples of validated name components below it.

    Folders reached safely are remembered as open descriptors (at most ``CACHED_DIRS``), so
    most operations start from their folder instead of walking down from the target again;
    callers get a ``dup`` of the cached descriptor, or (``open_file``, ``open_fd``) use it
    counted as in use, so eviction never closes one in use. Safe for several threads, except
    :meth:`close`, which must come after every other thread is done with this object.
    Removing a folder forgets it and everything below it.

    Folders this object made (``made``) held nothing before; callers that put each name into
    a folder once need not look for an entry in the way there.
    """

    CACHED_DIRS = 256

    def __init__(self, root: bytes, root_fd: int | None = None) -> None:
        """The folder ``root`` (made if missing), or, given ``root_fd``, the folder open there
        (this object closes it), ``root`` then only naming it in messages."""
        if root_fd is None:
            os.makedirs(root, exist_ok=True)
            root = os.path.realpath(root)
            root_fd = os.open(root, _DIR_FLAGS)
        self.root = root
        self.root_fd = root_fd
        self._dirs: OrderedDict[Parts, int] = OrderedDict()
        self._made: set[Parts] = set()
        self._users: dict[int, int] = {}  # cached descriptors in use outside the lock
        self._evicted: set[int] = set()  # evicted while in use: closed by their last user
        self._lock = threading.Lock()

    @classmethod
    def if_exists(cls, root: bytes) -> SafeRoot | None:
        """The folder ``root`` if there is one, made by nothing (what a dry run looks at);
        None if there is none, or a file is in its way."""
        real = os.path.realpath(root)
        try:
            return cls(real, os.open(real, _DIR_FLAGS))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def close(self) -> None:
        with self._lock:
            for fd in self._dirs.values():
                os.close(fd)
            self._dirs.clear()
        os.close(self.root_fd)

    def made(self, parts: Parts) -> bool:
        """True if this object created the folder ``parts`` (and it was not removed since)."""
        with self._lock:
            return parts in self._made

    def forget_made(self, parts: Parts) -> None:
        """Nothing more is restored in the folder ``parts``: :meth:`made` need not know it."""
        with self._lock:
            self._made.discard(parts)

    def path(self, parts: Parts) -> bytes:
        return os.path.join(self.root, *parts) if parts else self.root

    @contextlib.contextmanager
    def open_dir(self, parts: Parts, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the folder ``parts``; with ``create``, missing folders are made."""
        fd = self._dir_fd(tuple(parts), create)
        try:
            yield fd
        finally:
            os.close(fd)

    def _dir_fd(self, parts: Parts, create: bool) -> int:
        """A new descriptor (the caller closes it), walking down from the deepest folder of
        ``parts`` already reached, one component at a time, never following a symlink."""
        with self._lock:
            known = len(parts)
            while known and parts[:known] not in self._dirs:
                known -= 1
            if known:
                self._dirs.move_to_end(parts[:known])
            fd = os.dup(self._dirs[parts[:known]] if known else self.root_fd)
        try:
            for depth in range(known, len(parts)):
                child = self._enter(fd, parts, depth, create)
                os.close(fd)
                fd = child
                self._remember(parts[: depth + 1], fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _enter(self, fd: int, parts: Parts, depth: int, create: bool) -> int:
        name = check_name(parts[depth])
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=fd)
                with self._lock:
                    self._made.add(parts[: depth + 1])
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(
                    f"{os.fsdecode(self.path(parts[: depth + 1]))}: a symlink or file stands "
                    "where a folder is restored; not following it"
                ) from exc
            raise

    def _remember(self, parts: Parts, fd: int) -> None:
        with self._lock:
            if parts in self._dirs:
                return
            self._dirs[parts] = os.dup(fd)
            if len(self._dirs) > self.CACHED_DIRS:
                self._drop(self._dirs.popitem(last=False)[1])

    def _forget(self, parts: Parts) -> None:
        with self._lock:
            for cached in [p for p in self._dirs if p[: len(parts)] == parts]:
                self._drop(self._dirs.pop(cached))
            self._made.discard(parts)  # only empty folders are removed: nothing made below

    @contextlib.contextmanager
    def open_file(self, parts: Parts, flags: int, mode: int = 0o600) -> Iterator[int]:
        fd = self.open_fd(parts, flags, mode)
        try:
            yield fd
        finally:
            os.close(fd)

    def open_fd(self, parts: Parts, flags: int, mode: int = 0o600) -> int:
        """:meth:`open_file` for callers that close the descriptor themselves (restore's
        writers: a context manager per blob was a measurable share of their time)."""
        return self._open_in(tuple(parts[:-1]), check_name(parts[-1]),
                             flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)

    def _open_in(self, folder: Parts, name: bytes, flags: int, mode: int) -> int:
        """``openat`` in ``folder``. A cached descriptor is used directly, counted as in use
        so that eviction leaves closing it to its last user: one system call where a ``dup``
        would take three, and outside the lock, so restore's writers create files at once."""
        with self._lock:
            cached = self._dirs.get(folder) if folder else self.root_fd
            if cached is not None:
                if folder:
                    self._dirs.move_to_end(folder)
                self._users[cached] = self._users.get(cached, 0) + 1
        if cached is None:
            with self.open_dir(folder) as dir_fd:
                return os.open(name, flags, mode, dir_fd=dir_fd)
        try:
            return os.open(name, flags, mode, dir_fd=cached)
        finally:
            self._release(cached)

    def _release(self, fd: int) -> None:
        with self._lock:
            self._users[fd] -= 1
            if not self._users[fd]:
                del self._users[fd]
                if fd in self._evicted:
                    self._evicted.discard(fd)
                    os.close(fd)

    def _drop(self, fd: int) -> None:
        """Close an evicted cached descriptor, or leave that to its last user (lock held)."""
        if fd in self._users:
            self._evicted.add(fd)
        else:
            os.close(fd)

    def lstat(self, parts: Parts) -> os.stat_result | None:
        with self.open_dir(parts[:-1]) as dir_fd:
            try:
                return os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return None

    def listing(self, parts: Parts) -> Listing:
        """What the folder ``parts`` holds."""
        with self.open_dir(parts) as dir_fd, os.scandir(dir_fd) as found:
            st = os.fstat(dir_fd)
            return Listing(st.st_dev, st.st_ino,
                           [(os.fsencode(entry.name), entry.is_dir(follow_symlinks=False))
                            for entry in found])

    def remove(self, parts: Parts) -> None:
        """Remove a non-directory entry (a symlink itself, never what it points to), or an
        empty folder."""
        name = check_name(parts[-1])
        with self.open_dir(parts[:-1]) as dir_fd:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._forget(tuple(parts))
                os.rmdir(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)

    def rename(self, parts: Parts, name: bytes) -> Parts:
        """Rename the entry ``parts`` (a symlink itself, never what it points to) to ``name``
        in the same folder, at once (one ``renameat``); refused if ``name`` is taken. Returns
        its new path."""
        new = (*parts[:-1], check_name(name))
        with self.open_dir(parts[:-1]) as dir_fd:
            try:
                os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                self._forget(tuple(parts))
                os.rename(check_name(parts[-1]), name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                return new
        raise FileExistsError(errno.EEXIST, "the name to move it to is taken",
                              os.fsdecode(self.path(new)))


#: where Linux lists the mounts (read at each call: a test points it elsewhere)
MOUNTINFO = "/proc/self/mountinfo"
_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


def check_mount_table() -> None:
    """On Linux, a UsageError unless :data:`MOUNTINFO` can be read (a sandbox without
    ``/proc``): without it a bind mount from the same file system looks like any folder, and
    restore --delete would empty it."""
    _mount_points()


def _mount_points() -> list[bytes]:
    """Field 5 of each line of :data:`MOUNTINFO`, still escaped; none where it cannot be read
    and this is not Linux (callers compare ``st_dev`` too)."""
    try:
        with open(MOUNTINFO, "rb") as lines:
            return [line.split(b" ")[4] for line in lines if line.count(b" ") >= 4]
    except OSError as exc:
        if not sys.platform.startswith("linux"):
            return []
        raise UsageError(f"--delete refused: cannot read {MOUNTINFO} ({exc.strerror}), so it "
                         "cannot tell the mounts below the target, whose contents it would "
                         "delete") from exc


def mount_points_below(root: bytes) -> set[Parts]:
    """The mount points strictly below the folder ``root`` (a real path), as components below
    it: field 5 of each line of :data:`MOUNTINFO`, whose octal escapes (``\\040`` for a space)
    are decoded. A bind mount from the same file system is one of them, although its
    ``st_dev`` is the same. On Linux a UsageError if it cannot be read (see
    :func:`check_mount_table`)."""
    points = _mount_points()
    prefix = root.rstrip(b"/") + b"/"
    below = set()
    for point in points:
        path = _OCTAL_ESCAPE.sub(lambda m: bytes([int(m[1], 8)]), point)
        if path.startswith(prefix):
            below.add(tuple(part for part in path[len(prefix):].split(b"/") if part))
    below.discard(())
    return below


__all__ = ["Listing", "Parts", "SafeRoot", "UnsafePath", "check_mount_table",
           "mount_points_below"]
