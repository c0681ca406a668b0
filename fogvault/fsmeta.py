"""File system metadata in both directions: stat results to tree nodes, and nodes back onto
restored files. Shared by the backup and restore engines; knows nothing of repositories.

Inode flags (what ``lsattr`` shows and ``chattr`` sets) are Linux's: elsewhere a file has none
to read, and setting them is refused as unsupported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import logging
import os
import pwd
import stat
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fogvault.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node

log = logging.getLogger("fogvault")

_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENODATA, errno.EACCES}

#: The inode flags stored and restored: the kernel's FS_FL_USER_MODIFIABLE
#: (include/uapi/linux/fs.h), the flags meant for users to change, borg's four (d, i, a, c)
#: among them. Left out (docs/format.md, section 13.6): what the file system sets itself
#: (e extents, I, N, V, E...) and what setting it on a restored entry, last, could not give
#: back (C: btrfs takes it on empty files only; F: empty folders only; P, j, x, m).
STORED_FLAGS = 0x000380FF
#: each stored bit and its ``chattr`` letter, in format.md's order (13.6)
FLAG_LETTERS = ((0x1, "s"), (0x2, "u"), (0x4, "c"), (0x8, "S"), (0x10, "i"), (0x20, "a"),
                (0x40, "d"), (0x80, "A"), (0x8000, "t"), (0x10000, "D"), (0x20000, "T"))
#: i (immutable) and a (append-only): they refuse root too most changes to the entry, and
#: on a folder to its entries
LOCKING_FLAGS = 0x10 | 0x20
#: the entries flags are read from and set on: the ioctls do not apply to fifos (ENOTTY),
#: symlinks cannot be opened, and devices are not opened (a missing device's open is slow)
_FLAGGED_TYPES = frozenset({FILE, DIR})
#: errors that say the file system (or the kind of entry) keeps no inode flags, or not some
#: of those asked for (ext4 refuses T on a file, tmpfs all but i a d A: EOPNOTSUPP)
FLAGS_UNSUPPORTED = frozenset(
    {errno.ENOTTY, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})
#: ...and those every entry of a destination would meet alike: a restore sums them up
_REFUSED_ALIKE = FLAGS_UNSUPPORTED | {errno.EPERM, errno.EACCES}
_LINUX = sys.platform.startswith("linux")
# _IOR('f', 1, long) and _IOW('f', 2, long) in Linux's common ioctl numbering (the kernel
# reads and writes an int whatever the number says)
_LONG = struct.calcsize("l")
_FS_IOC_GETFLAGS = 0x80006601 | _LONG << 16
_FS_IOC_SETFLAGS = 0x40006602 | _LONG << 16
#: opening an entry to reach its flags: nothing followed, nothing waited for
FLAGS_OPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC


def flag_letters(flags: int, separator: str = "") -> str:
    """The ``chattr`` letters of the stored bits of ``flags``, in format.md's order."""
    return separator.join(letter for bit, letter in FLAG_LETTERS if flags & bit)


@dataclass(frozen=True, slots=True)
class FlagsRefused:
    """The destination refused some of an entry's inode flags, ``bits``, for a reason all its
    entries share (no support for them, no privilege to set them: ``errno`` says which), which
    a restore reports once for all. ``path`` is the entry's, filled in by the caller that
    knows it."""

    errno: int
    bits: int
    path: str = ""

    @property
    def unsupported(self) -> bool:
        """The file system does not keep these flags (else: the process may not set them)."""
        return self.errno in FLAGS_UNSUPPORTED


#: what the destination did not allow of an entry's metadata: a line ("cannot set owner:
#: ...") or refused flags
MetadataProblem = str | FlagsRefused


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


def read_flags(fd: int) -> int:
    """The stored bits of the inode flags of the open file or folder ``fd``: 0 where its file
    system keeps none; OSError for other failures."""
    try:
        return _get_flags(fd) & STORED_FLAGS
    except OSError as exc:
        if exc.errno in FLAGS_UNSUPPORTED:
            return 0
        raise


def flags_at(dir_fd: int | None, name: bytes) -> int:
    """``read_flags`` of the entry ``name`` in the folder ``dir_fd`` (None: ``name`` is a
    path) if it is a file or a folder (nothing else is opened: not a device, whose open may
    act, nor a symlink); 0 if it is none, or cannot be opened or read."""
    try:
        kind = node_type(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        if kind not in _FLAGGED_TYPES:
            return 0
        fd = open_for_flags(dir_fd, name, kind)
    except OSError:
        return 0
    try:
        return read_flags(fd)
    except OSError:
        return 0
    finally:
        os.close(fd)


def open_for_flags(dir_fd: int | None, name: bytes, kind: str) -> int:
    """The file or folder (``kind``) ``name`` open to reach its inode flags: not following a
    symlink, not waiting (for a fifo put there since), a folder only as one."""
    flags = FLAGS_OPEN | (os.O_DIRECTORY if kind == DIR else 0)
    return os.open(name, flags, dir_fd=dir_fd)


#: a restore's refusal of a change to an entry it found with i or a (section 13.5)
LOCKED = "immutable or append-only (lsattr shows it; chattr -i -a lifts it)"


def set_flags(fd: int, flags: int) -> list[MetadataProblem]:
    """Give the open entry ``fd`` the stored bits of ``flags`` (others are ignored), keeping
    the rest of its flags: the file system's own, such as ext4's e, which cleared would have
    ext4 convert the file. No call when they are as wanted already. An entry that has i or a
    keeps them (a restore does not lift them); its other flags cannot change then (i and a
    refuse it), a problem if they differ. Returns what was refused; bits refused for reasons
    every entry shares do not cost the others (see :func:`_set_one_by_one`)."""
    current = _get_flags(fd)
    wanted = current & ~STORED_FLAGS | flags & STORED_FLAGS | current & LOCKING_FLAGS
    if wanted == current:
        return []
    if current & LOCKING_FLAGS:
        return [f"cannot set inode flags: it is {LOCKED}"]
    try:
        _put_flags(fd, wanted)
    except OSError as exc:
        if exc.errno not in _REFUSED_ALIKE:
            raise
        return _set_one_by_one(fd, current, wanted)
    return []


def _set_one_by_one(fd: int, current: int, wanted: int) -> list[MetadataProblem]:
    """After the file system refused ``wanted`` whole, as one bit it lacks makes it do (c on
    tmpfs, T on an ext4 file; i or a without CAP_LINUX_IMMUTABLE): each bit to change alone,
    i and a last (they would refuse the changes after them), keeping those it takes."""
    refused: dict[int, int] = {}  # errno -> bits
    changes = [bit for bit, _ in FLAG_LETTERS if (wanted ^ current) & bit]
    for bit in sorted(changes, key=lambda bit: bool(bit & LOCKING_FLAGS)):
        try:
            _put_flags(fd, current ^ bit)
            current ^= bit
        except OSError as exc:
            if exc.errno not in _REFUSED_ALIKE:
                raise
            refused[exc.errno] = refused.get(exc.errno, 0) | bit
    return [FlagsRefused(number, bits) for number, bits in refused.items()]


def _get_flags(fd: int) -> int:
    if not _LINUX:  # other systems' ioctl numbers mean other things
        raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
    buffer = bytearray(4)
    fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buffer)
    return int.from_bytes(buffer, sys.byteorder)


def _put_flags(fd: int, flags: int) -> None:
    fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags.to_bytes(4, sys.byteorder))


def _wants_flags(node: Node) -> bool:
    """Whether restoring ``node`` sets inode flags on it."""
    return bool(node.flags & STORED_FLAGS) and node.type in _FLAGGED_TYPES


def apply_metadata(dir_fd: int, name: bytes, node: Node, *, restore_owner: bool
                   ) -> list[MetadataProblem]:
    """Set ownership, xattrs, mode, times and inode flags on the entry ``name`` in the folder
    ``dir_fd``, never following a symlink. Working relative to a folder descriptor keeps paths
    short, so entries deeper than PATH_MAX get their metadata too.

    Returns what the destination did not allow, for the caller to report with the entry's
    path (built only then: most entries have none).
    """
    # xattr calls take no folder descriptor; /proc/self/fd gives a short path to the folder.
    via_proc = os.path.join(b"/proc/self/fd", str(dir_fd).encode(), name)
    problems: list[MetadataProblem] = []
    # Opened first: the mode set below may keep this process (not root) out of the entry.
    with (_opened(dir_fd, name, node.type, node.flags, problems) if _wants_flags(node)
          else contextlib.nullcontext()) as flags_fd:
        problems += _apply(name, {"dir_fd": dir_fd, "follow_symlinks": False}, via_proc, node,
                           restore_owner=restore_owner)
        if flags_fd is not None:
            _set_node_flags(flags_fd, node.flags, problems)
    return problems


def apply_file_metadata(fd: int, node: Node, *, restore_owner: bool
                        ) -> list[MetadataProblem]:
    """``apply_metadata`` for a file the caller holds open, on the descriptor, so no path is
    resolved again."""
    problems = _apply(fd, {}, fd, node, restore_owner=restore_owner)
    if _wants_flags(node):
        _set_node_flags(fd, node.flags, problems)
    return problems


def apply_flags(dir_fd: int, name: bytes, kind: str, flags: int) -> list[MetadataProblem]:
    """Set only the inode flags of the file or folder (``kind``) ``name`` in the folder
    ``dir_fd`` (a restore's entries whose i and a wait for its end, and the files it keeps)."""
    problems: list[MetadataProblem] = []
    with _opened(dir_fd, name, kind, flags, problems) as fd:
        if fd is not None:
            _set_node_flags(fd, flags, problems)
    return problems


@contextlib.contextmanager
def _opened(dir_fd: int, name: bytes, kind: str, flags: int, problems: list[MetadataProblem]
            ) -> Iterator[int | None]:
    """The entry ``name`` open to set its ``flags``; None, with the problem noted, if it
    cannot be opened."""
    try:
        fd = open_for_flags(dir_fd, name, kind)
    except OSError as exc:
        problems.append(_flags_problem(exc, flags))
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _set_node_flags(fd: int, flags: int, problems: list[MetadataProblem]) -> None:
    try:
        problems += set_flags(fd, flags)
    except OSError as exc:
        problems.append(_flags_problem(exc, flags))


def _flags_problem(exc: OSError, flags: int) -> MetadataProblem:
    """``flags`` refused whole with ``exc``."""
    if exc.errno in _REFUSED_ALIKE:
        return FlagsRefused(exc.errno, flags & STORED_FLAGS)
    return f"cannot set inode flags: {exc.strerror}"


def _apply(target: bytes | int, at: dict[str, Any], xattr_target: bytes | int, node: Node, *,
           restore_owner: bool) -> list[MetadataProblem]:
    """The steps of both: owner first (chown clears set-id bits), times last (before the
    flags: immutable and append-only forbid changing the others). ``target`` is a name
    (``at``: its folder, no following) or an open descriptor (``at`` empty). A step refused
    that would have changed nothing is no problem (see :func:`_changed_nothing`)."""
    problems: list[MetadataProblem] = []
    is_link = node.type == SYMLINK
    if restore_owner:
        try:
            os.chown(target, node.uid, node.gid, **at)
        except OSError as exc:
            if not _changed_nothing(exc, target, at,
                                    lambda st: (st.st_uid, st.st_gid) == (node.uid, node.gid)):
                problems.append(f"cannot set owner: {_explained(exc, target, at).strerror}")
    _set_xattrs(xattr_target, node, problems)
    if not is_link:  # the entry was created by this restore: it is not a symlink
        try:
            if isinstance(target, int):
                os.chmod(target, node.mode)
            else:
                chmod_at(at["dir_fd"], target, node.mode)
        except OSError as exc:
            if not _changed_nothing(exc, target, at,
                                    lambda st: stat.S_IMODE(st.st_mode) == node.mode):
                raise _explained(exc, target, at) from exc
    try:
        os.utime(target, ns=(node.mtime_ns, node.mtime_ns), **at)
    except OSError as exc:
        if not is_link and not _changed_nothing(exc, target, at,
                                                lambda st: st.st_mtime_ns == node.mtime_ns):
            problems.append(f"cannot set times: {_explained(exc, target, at).strerror}")
    return problems


def chmod_at(dir_fd: int, name: bytes, mode: int) -> None:
    """chmod of the entry ``name`` in the folder ``dir_fd`` itself, never of what a symlink
    now in its place points to: a folder the restore found at the target (one of a user's,
    restored in place by root) can be swapped for a symlink by whoever may write in its
    folder before its metadata is set, and root would give its mode to any file
    (``/etc/shadow``). Linux's chmod follows a symlink and (before 6.6) has no flag not to,
    so the entry is opened as an O_PATH descriptor, which does not follow it, and changed
    through /proc/self/fd."""
    if not hasattr(os, "O_PATH"):  # BSD and macOS: fchmodat takes AT_SYMLINK_NOFOLLOW
        os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=False)
        return
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, "a symlink stands in its place now; not following it")
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def _explained(exc: OSError, target: bytes | int, at: dict[str, Any]) -> OSError:
    """``exc``, a change to the entry refused, saying why where it is immutable or
    append-only, which refuses root too."""
    if exc.errno != errno.EPERM:
        return exc
    if isinstance(target, int):
        try:
            flags = read_flags(target)
        except OSError:
            flags = 0
    else:
        flags = flags_at(at["dir_fd"], target)
    if not flags & LOCKING_FLAGS:
        return exc
    return OSError(exc.errno, f"{exc.strerror}: it is {LOCKED}")


def _changed_nothing(exc: OSError, target: bytes | int, at: dict[str, Any],
                     as_wanted: Callable[[os.stat_result], bool]) -> bool:
    """Whether a change refused with ``exc`` would have changed nothing (``as_wanted`` of the
    entry's lstat): an immutable or append-only entry refuses even that, root too, and a
    restore onto a target that holds the snapshot already meets each of them. Looked at only
    then, so other entries cost no lstat more."""
    if exc.errno != errno.EPERM:
        return False
    try:
        return as_wanted(os.stat(target, **at))
    except OSError:
        return False


def _set_xattrs(target: bytes | int, node: Node, problems: list[MetadataProblem]) -> None:
    """Set ``node.xattrs`` on a path (the entry itself, not where a symlink points) or on an
    open descriptor (which has nothing to follow, and takes no follow_symlinks=False)."""
    follow = isinstance(target, int)
    for attr, value in node.xattrs:
        try:
            os.setxattr(target, attr, value, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                problems.append(f"cannot set xattr: {exc.strerror}")
