"""Writing an entry of a snapshot and everything below it as a zip archive (restic's ``dump
--archive zip``), for readers that have no tar.

Members are named as in the tar archive (the path without the leading ``/``; folders end with
``/``) and made by a Unix system: the file type and permission bits are in each member's
external attributes, and a symlink is a member holding its target, as Info-ZIP's ``zip -y``
stores one. Modification times are zip's own (local time, to two seconds, clamped to
1980-2107) plus the extended timestamp field (UTC seconds, where it fits in 32 bits). Files
are deflated. A hard link's second and later names are copies, owners and extended attributes
are not stored, and FIFOs and devices are left out with a warning: zip has no place for them.
A name that is not UTF-8 is written with its undecodable bytes as ``\\xNN`` text, and a name
that an earlier member has already, as a file or as a folder (two names that became one so),
gets ``~1``, ``~2``, the contents of a folder renamed so following it: both with a warning (tar
keeps such names exactly). Times before 1980 are written as 1980 in zip's
own field; readers that ignore a negative extended timestamp (Info-ZIP's unzip) show 1980 for
times before 1970.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import struct
import time
import zipfile
from typing import BinaryIO

from fogvault.repo.repository import Repository
from fogvault.repo.tree import DIR, FILE, SYMLINK, Node
from fogvault.restore.dump import ChunkReader, entries, file_chunks

log = logging.getLogger("fogvault")

_UNIX = 3  # "version made by": the external attributes hold a Unix mode
_EXTENDED_TIMESTAMP = 0x5455
_FILE_TYPES = {DIR: stat.S_IFDIR, FILE: stat.S_IFREG, SYMLINK: stat.S_IFLNK}
_COPY_BUFFER = 1 << 20


def dump_zip(repo: Repository, path: bytes, node: Node | None, subtree: bytes | None,
             out: BinaryIO) -> int:
    """Write the entry at ``path`` (``node``; None for the snapshot's root, whose tree is
    ``subtree``) and everything below it to ``out`` as a zip archive; returns the members.
    If it fails, what follows the failure is not written: neither the end of the member being
    written nor the archive's central directory, so that a cut-short archive does not read as
    a whole one (zipfile would finish both on the way out)."""
    sink = _Sink(out)
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED)
    names = _MemberNames()
    members = 0
    try:
        for entry_path, entry in entries(repo, path, node, subtree):
            if entry.type not in _FILE_TYPES:
                log.warning("%s: a %s has no place in a zip archive; left out (a tar archive "
                            "holds it)", os.fsdecode(entry_path), entry.type)
                continue
            _add(repo, archive, names.name(entry_path, entry), entry)
            members += 1
    except BaseException:
        sink.cut = True
        raise
    archive.close()
    return members


class _Sink:
    """The output, which drops every write once ``cut``; zipfile sees a stream it cannot seek
    and so writes each member's sizes after its data."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.cut = False

    def write(self, data: bytes) -> int:
        return len(data) if self.cut else self._out.write(data)

    def flush(self) -> None:
        if not self.cut:
            self._out.flush()


def _add(repo: Repository, archive: zipfile.ZipFile, name: str, node: Node) -> None:
    info = zipfile.ZipInfo(name, _dos_time(node.mtime_ns))
    info.create_system = _UNIX
    info.external_attr = (_FILE_TYPES[node.type] | (node.mode & 0o7777)) << 16
    if node.type == DIR:
        info.external_attr |= 0x10  # MS-DOS's directory flag, which some readers look at
    info.extra = _timestamp_field(node.mtime_ns)
    if node.type == SYMLINK:
        archive.writestr(info, node.target, compress_type=zipfile.ZIP_STORED)
    elif node.type == DIR:
        archive.writestr(info, b"")
    else:
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = node.size  # lets zipfile choose zip64 before it writes the header
        member = archive.open(info, "w")  # not closed if the copy fails: see dump_zip
        shutil.copyfileobj(io.BufferedReader(ChunkReader(file_chunks(repo, node), node.size)),
                           member, _COPY_BUFFER)
        member.close()


class _MemberNames:
    """Member names: the path, its undecodable bytes as ``\\xNN`` text where it is not UTF-8,
    made unique (``~1``, ``~2``, ...) where an earlier member has that name already, as a file
    or as a folder (unzip keeps one of the two). A folder's contents are named below the name
    it got."""

    def __init__(self) -> None:
        self._taken: set[str] = set()  # names given, folders' without their trailing "/"
        self._folders: dict[bytes, str] = {}  # a folder's path -> the name it got

    def name(self, path: bytes, node: Node) -> str:
        parent, _, own = path.rpartition(b"/")
        prefix = self._folders.get(parent)
        if prefix is None:  # the entry dumped: its whole path
            text = _text(path.lstrip(b"/"), path)
        else:
            text = f"{prefix}/{_text(own, path)}" if prefix else _text(own, path)
        unique, number = text, 0
        while unique in self._taken:
            number += 1
            unique = f"{text}~{number}"
        if number:
            log.warning("%s: written to the zip archive as %s, as an entry written before it "
                        "has its name there", os.fsdecode(path), unique)
        self._taken.add(unique)
        if node.type == DIR:
            self._folders[path] = unique
            return unique + "/"
        return unique


def _text(name: bytes, path: bytes) -> str:
    """``name`` (a part of ``path``) as text: its undecodable bytes as ``\\xNN``, with a
    warning."""
    try:
        return name.decode()
    except UnicodeDecodeError:
        text = name.decode(errors="backslashreplace")
        log.warning("%s: the name is not UTF-8, and is written to the zip archive as %s "
                    "(a tar archive keeps it exactly)", os.fsdecode(path), text)
        return text


def _dos_time(mtime_ns: int) -> tuple[int, int, int, int, int, int]:
    """zip's own time: local, within the years it can hold (1980-2107)."""
    year_1980, year_2108 = 315532800 + 86400, 4354819200 - 86400  # a day inside, for zones
    seconds = min(max(mtime_ns // 10**9, year_1980), year_2108)
    return time.localtime(seconds)[:6]


def _timestamp_field(mtime_ns: int) -> bytes:
    """The extended timestamp extra field (Info-ZIP "UT") with the modification time."""
    seconds = mtime_ns // 10**9
    if not -(2**31) <= seconds < 2**31:
        return b""
    return struct.pack("<HHBi", _EXTENDED_TIMESTAMP, 5, 1, seconds)
