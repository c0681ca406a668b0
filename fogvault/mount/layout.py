"""The folders a mount shows above the snapshots' own trees, built from a list of snapshots.

::

    ids/<uid>/                    every snapshot, by its full uid
    snapshots/<time>/             by time, with ``latest`` a link to the newest
    hosts/<host>/<time>/          by the host that made it, each with its ``latest``
    tags/<tag>/<time>/            by tag (a snapshot with two tags is in both), each with ``latest``

``<time>`` is the snapshot's time in the local time zone to the second, as ISO 8601
(``2026-11-24T10:15:03+01:00``), as restic names them. Two snapshots in one folder with the same
name (made within one second) are told apart as restic does: the older keeps the name and the
next takes ``-1``, then ``-2``, in the order the other commands give snapshots (``snapshots``,
``latest``: :func:`~fogvault.repo.snapshot.newest_first`), so a snapshot made later never
renames an earlier one, and ``latest`` is the snapshot that ``restore latest`` takes.

A host or tag that is no valid file name is shown as restic shows it: ``_`` for an empty name
or ``.``, ``__`` for ``..``, and ``_`` for each ``/`` (or NUL).

Pure: no repository, no FUSE. :func:`build_layout` is all there is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fogvault.repo.snapshot import Snapshot

TOP_FOLDERS = (b"ids", b"snapshots", b"hosts", b"tags")
LATEST = b"latest"

FolderKey = tuple[bytes, ...]  # the names from the root of the mount to a folder


@dataclass(frozen=True, slots=True)
class Link:
    """A symbolic link of the layout (``latest``): to a name in its own folder."""

    target: bytes
    snapshot: Snapshot


class Folder:
    """A folder of the layout; its entries are :attr:`Layout.folders` at its key."""


FOLDER = Folder()

Child = Folder | Snapshot | Link


@dataclass(slots=True)
class Layout:
    """Every folder of the layout by its key, each with its entries by name; an entry that is a
    :class:`~fogvault.repo.snapshot.Snapshot` is that snapshot's root folder."""

    folders: dict[FolderKey, dict[bytes, Child]] = field(default_factory=dict)
    snapshots: int = 0


def build_layout(snapshots: Iterable[Snapshot]) -> Layout:
    """The layout of ``snapshots``, given oldest first (as ``snapshots`` lists them)."""
    layout = Layout({(): {}})
    for top in TOP_FOLDERS:
        _folder(layout, (top,))
    for snapshot in snapshots:
        layout.snapshots += 1
        layout.folders[(b"ids",)][snapshot.uid.encode()] = snapshot
        _place(layout, (b"snapshots",), snapshot)
        _place(layout, (b"hosts", folder_name(snapshot.host)), snapshot)
        for tag in dict.fromkeys(folder_name(t) for t in snapshot.tags):
            _place(layout, (b"tags", tag), snapshot)
    return layout


def time_name(snapshot: Snapshot) -> bytes:
    """The name of a snapshot in a folder by time, before any ``-N`` that makes it unique."""
    return snapshot.time.astimezone().isoformat(timespec="seconds").encode()


def folder_name(text: str) -> bytes:
    """A host name or tag as a file name (module docstring)."""
    if text in ("", "."):
        return b"_"
    if text == "..":
        return b"__"
    cleaned = text.replace("/", "_").replace("\0", "_")
    try:  # a name read from a file system that is not UTF-8 goes back to its bytes
        return cleaned.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other lone surrogates: no bytes they stand for
        return cleaned.encode("utf-8", "replace")


def _folder(layout: Layout, key: FolderKey) -> dict[bytes, Child]:
    """The entries of the folder ``key``, made (with the folders above it) if it is new."""
    entries = layout.folders.get(key)
    if entries is None:
        _folder(layout, key[:-1])[key[-1]] = FOLDER
        entries = layout.folders[key] = {}
    return entries


def _place(layout: Layout, key: FolderKey, snapshot: Snapshot) -> None:
    """Put ``snapshot`` in the folder ``key`` under a name of its own, and point that folder's
    ``latest`` at it (the snapshots come oldest first, so the last one placed is the newest)."""
    entries = _folder(layout, key)
    base = time_name(snapshot)
    name, number = base, 0
    while name in entries:
        number += 1
        name = base + b"-%d" % number
    entries[name] = snapshot
    entries[LATEST] = Link(name, snapshot)
