"""Writing one entry of a snapshot to a stream (restic's ``dump``): a file's contents as they
are, anything else as a tar archive (POSIX pax) of the entry and everything below it.

Members are named by their path in the snapshot without the leading ``/`` (as GNU tar stores
absolute paths), so ``tar -x -C /`` puts them back where they were. Each member has its type,
mode, owner (ids and names), modification time (to the nanosecond, in a pax header), size,
link target and device numbers; a file's second and later names within the archive are hard
links to its first. Extended attributes are not written. A name that is not UTF-8 is stored as
its bytes (pax ``hdrcharset=BINARY``; GNU tar extracts it, with a notice that it ignores the
keyword). A chunk that cannot be read (damaged on every target, or missing) stops the
dump with its error: the stream then ends early, and the command fails.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from fogvault.errors import IntegrityError, MalformedObject
from fogvault.hardlinks import Hardlinks
from fogvault.parallel import ordered_map
from fogvault.repo.repository import Repository
from fogvault.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node
from fogvault.treewalk import walk

#: chunks read at once, ahead of the one being written (latency of remote targets)
READ_AHEAD = 4

_TAR_TYPES = {DIR: tarfile.DIRTYPE, FILE: tarfile.REGTYPE, SYMLINK: tarfile.SYMTYPE,
              FIFO: tarfile.FIFOTYPE, CHARDEV: tarfile.CHRTYPE, BLOCKDEV: tarfile.BLKTYPE}


def file_chunks(repo: Repository, node: Node) -> Iterator[bytes]:
    """The contents of a file node, chunk by chunk, each checked against its id."""
    # no type asked for: data and tree blobs share one id space, so a file whose contents
    # equal a stored tree has that tree's blob as its chunk (restore reads it the same way)
    yield from ordered_map(repo.load_blob, node.content, workers=READ_AHEAD)


def dump_file(repo: Repository, node: Node, out: BinaryIO) -> int:
    """Write a file node's contents to ``out``; returns the bytes written."""
    written = 0
    for chunk in file_chunks(repo, node):
        out.write(chunk)
        written += len(chunk)
    return written


def dump_tar(repo: Repository, path: bytes, node: Node | None, subtree: bytes | None,
             out: BinaryIO) -> int:
    """Write the entry at ``path`` (``node``; None for the snapshot's root, whose tree is
    ``subtree``) and everything below it to ``out`` as a tar stream; returns the members."""
    links: Hardlinks[str] = Hardlinks()
    members = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as archive:
        for entry_path, entry in entries(repo, path, node, subtree):
            _add(repo, archive, entry_path, entry, links)
            members += 1
    return members


def entries(repo: Repository, path: bytes, node: Node | None, subtree: bytes | None
            ) -> Iterator[tuple[bytes, Node]]:
    """The entry at ``path`` (none for the snapshot's root) and, below it, the tree
    ``subtree``, parents before their contents."""
    if node is not None:
        yield path, node
    if subtree is not None:
        yield from walk(repo, subtree, path.rstrip(b"/"))


def _add(repo: Repository, archive: tarfile.TarFile, path: bytes, node: Node,
         links: Hardlinks[str]) -> None:
    kind = _TAR_TYPES.get(node.type)
    if kind is None:
        return
    info = tarfile.TarInfo(os.fsdecode(path.lstrip(b"/")) or ".")
    info.type = kind
    info.mode = node.mode & 0o7777
    info.uid, info.gid = node.uid, node.gid
    info.uname, info.gname = node.user, node.group
    info.mtime = node.mtime_ns // 10**9
    info.pax_headers = {"mtime": _exact_seconds(node.mtime_ns)}  # tarfile's float would round
    if node.type == SYMLINK:
        info.linkname = os.fsdecode(node.target)
    elif node.type in (CHARDEV, BLOCKDEV):
        try:
            info.devmajor, info.devminor = os.major(node.rdev), os.minor(node.rdev)
        except OverflowError as exc:  # beyond 64 bits: no system has such a device
            raise MalformedObject(f"{os.fsdecode(path)}: impossible device number in snapshot"
                                  ) from exc
    elif node.type == FILE:
        key = (node.dev, node.ino)
        first = links.take(key) if node.nlink > 1 else None
        if first is not None:
            info.type, info.linkname = tarfile.LNKTYPE, first
        else:
            if node.nlink > 1:
                links.remember(key, info.name, node.nlink)
            info.size = node.size
            # buffered: tarfile takes a short read for the end of the data
            archive.addfile(info, io.BufferedReader(ChunkReader(file_chunks(repo, node),
                                                                node.size)))
            return
    archive.addfile(info)


def _exact_seconds(ns: int) -> str:
    """Nanoseconds as a pax time: decimal seconds, exactly."""
    seconds, fraction = divmod(abs(ns), 10**9)
    return f"{'-' if ns < 0 else ''}{seconds}.{fraction:09d}"


class ChunkReader(io.RawIOBase):
    """A file-like view of a file's chunks for an archive writer, which copies ``size`` bytes
    from it: a file whose chunks hold fewer or more bytes than its recorded size (a tree that
    does not match its data) is an error, not a short or cut member."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                if self._left > 0:
                    raise IntegrityError(f"the chunks of a file end {self._left} bytes before "
                                         "its recorded size")
                return 0
            if len(chunk) > self._left:
                raise IntegrityError(f"the chunks of a file hold more than its recorded size "
                                     f"({self._left} bytes left, a chunk of {len(chunk)})")
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._left -= n
        return n
