"""Paths the kernel accepts, however deep the walk goes.

A system call refuses a path of PATH_MAX (4,096) bytes or more (ENAMETOOLONG), so a backup by
absolute paths could not store anything below that depth. The walk asks :class:`ShortPaths`
for the path to hand to the kernel instead: the absolute path itself while it is short (every
path of an ordinary tree, so nothing changes for them), else the path relative to the deepest
folder held open on the way down, reached through ``/proc/self/fd`` (which also serves the
calls that take no folder descriptor, such as the xattr ones). A folder is held open (an
``O_PATH`` descriptor, not following a symlink) when its entries' paths would be too long, so
one descriptor is open per 3.8 KiB or so of path, as borg's walk by descriptors needs one per
level. Without ``/proc`` nothing is held: deep paths fail as the kernel says (too long).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: Linux's limit on a path handed to a system call, with its terminating NUL
PATH_MAX = 4096
#: the longest name of one entry (ext4, XFS, btrfs, tmpfs)
NAME_MAX = 255
#: where a held folder's entries are reached from
PROC_FDS = "/proc/self/fd"

_HOLD_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ShortPaths:
    """The walk's view of its folders held open: absolute path -> a path the kernel takes."""

    def __init__(self) -> None:
        # (absolute path of the folder with a trailing /, its descriptor), outermost first
        self._held: list[tuple[bytes, int]] = []

    def of(self, path: bytes) -> bytes:
        """The path to hand to the kernel for the absolute ``path``, which lies below every
        folder held open."""
        if not self._held:
            return path
        prefix, fd = self._held[-1]
        return b"%s/%d/%s" % (PROC_FDS.encode(), fd, path[len(prefix):])

    @contextlib.contextmanager
    def inside(self, folder: bytes) -> Iterator[None]:
        """While the block runs, :meth:`of` gives short paths for the entries of ``folder``
        (and so for their own entries' folders to be held in turn). OSError if the folder has
        to be held and cannot be opened."""
        here = self.of(folder)
        if len(here) + 1 + NAME_MAX < PATH_MAX or not os.path.isdir(PROC_FDS):
            yield  # an entry's path fits, with its NUL (or cannot be made to)
            return
        fd = os.open(here, _HOLD_FLAGS)
        self._held.append((folder.rstrip(b"/") + b"/", fd))
        try:
            yield
        finally:
            self._held.pop()
            os.close(fd)
