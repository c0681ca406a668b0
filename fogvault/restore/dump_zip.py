"""Writing an entry of a snapshot and everything below it as a zip archive (restic's ``dump
--archive zip``), for readers that have no tar.

Members are named as in the tar archive (the path without the leading ``/``; folders end with
``/``) and made by a Unix system: the file type and permission bits are in each member's
external attributes, and a symlink is a member holding its target, as Info-ZIP's ``zip -y``
stores one. Modification times are zip's own (local time, to two seconds, clamped to
1980-2107) plus the extended timestamp field (UTC seconds, where it fits in 32 bits). Files
are deflated. A hard link's second and later names are copies, owners and extended attributes
are not stored, and FIFOs, sockets and devices are left out: zip has no place for them. A name
that is not UTF-8 is written with its undecodable bytes as ``\\xNN`` text, with a warning (tar
keeps such names exactly).
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
    ``subtree``) and everything below it to ``out`` as a zip archive; returns the members."""
    members = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry_path, entry in entries(repo, path, node, subtree):
            if entry.type in _FILE_TYPES:
                _add(repo, archive, entry_path, entry)
                members += 1
    return members


def _add(repo: Repository, archive: zipfile.ZipFile, path: bytes, node: Node) -> None:
    info = zipfile.ZipInfo(_member_name(path, node), _dos_time(node.mtime_ns))
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
        with archive.open(info, "w") as member:
            shutil.copyfileobj(io.BufferedReader(ChunkReader(file_chunks(repo, node),
                                                             node.size)), member, _COPY_BUFFER)


def _member_name(path: bytes, node: Node) -> str:
    name = path.lstrip(b"/") + (b"/" if node.type == DIR else b"")
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
