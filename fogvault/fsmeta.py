"""File system metadata in both directions: stat results to tree nodes, and nodes back onto
restored files. Shared by the backup and restore engines; knows nothing of repositories.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import pwd
import stat
from functools import lru_cache
from typing import Any

from fogvault.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node

log = logging.getLogger("fogvault")

_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENODATA, errno.EACCES}


def node_type(mode: int) -> str | None:
    """The tree type of a stat mode, or None for what is not backed up (sockets)."""
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISFIFO(mode):
        return FIFO
    if stat.S_ISCHR(mode):
        return CHARDEV
    if stat.S_ISBLK(mode):
        return BLOCKDEV
    return None


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def node_from_stat(name: bytes, kind: str, st: os.stat_result) -> Node:
    return Node(
        name=name,
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        user=user_name(st.st_uid),
        group=group_name(st.st_gid),
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        size=st.st_size if kind == FILE else 0,
        dev=st.st_dev,
        ino=st.st_ino,
        nlink=st.st_nlink,
        rdev=st.st_rdev if kind in (CHARDEV, BLOCKDEV) else 0,
    )


def read_xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return []
        raise
    pairs = []
    for attr in sorted(names):
        with contextlib.suppress(OSError):
            pairs.append((os.fsencode(attr), os.getxattr(path, attr, follow_symlinks=False)))
    return pairs


def apply_metadata(dir_fd: int, name: bytes, node: Node, *, restore_owner: bool) -> list[str]:
    """Set ownership, xattrs, mode and times on the entry ``name`` in the folder ``dir_fd``,
    never following a symlink. Working relative to a folder descriptor keeps paths short, so
    entries deeper than PATH_MAX get their metadata too.

    Returns what the destination did not allow ("cannot set owner: ..."), for the caller to
    report with the entry's path (built only then: most entries have none).
    """
    # xattr calls take no folder descriptor; /proc/self/fd gives a short path to the folder.
    via_proc = os.path.join(b"/proc/self/fd", str(dir_fd).encode(), name)
    return _apply(name, {"dir_fd": dir_fd, "follow_symlinks": False}, via_proc, node,
                  restore_owner=restore_owner)


def apply_file_metadata(fd: int, node: Node, *, restore_owner: bool) -> list[str]:
    """``apply_metadata`` for a file the caller holds open, on the descriptor, so no path is
    resolved again."""
    return _apply(fd, {}, fd, node, restore_owner=restore_owner)


def _apply(target: bytes | int, at: dict[str, Any], xattr_target: bytes | int, node: Node, *,
           restore_owner: bool) -> list[str]:
    """The steps of both: owner first (chown clears set-id bits), times last. ``target`` is a
    name (``at``: its folder, no following) or an open descriptor (``at`` empty)."""
    problems: list[str] = []
    is_link = node.type == SYMLINK
    if restore_owner:
        try:
            os.chown(target, node.uid, node.gid, **at)
        except OSError as exc:
            problems.append(f"cannot set owner: {exc.strerror}")
    _set_xattrs(xattr_target, node, problems)
    if not is_link:  # the entry was created by this restore: it is not a symlink
        os.chmod(target, node.mode, dir_fd=at.get("dir_fd"))
    try:
        os.utime(target, ns=(node.mtime_ns, node.mtime_ns), **at)
    except OSError as exc:
        if not is_link:
            problems.append(f"cannot set times: {exc.strerror}")
    return problems


def _set_xattrs(target: bytes | int, node: Node, problems: list[str]) -> None:
    """Set ``node.xattrs`` on a path (the entry itself, not where a symlink points) or on an
    open descriptor (which has nothing to follow, and takes no follow_symlinks=False)."""
    follow = isinstance(target, int)
    for attr, value in node.xattrs:
        try:
            os.setxattr(target, attr, value, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                problems.append(f"cannot set xattr: {exc.strerror}")
