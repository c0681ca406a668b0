"""Reading snapshots as file trees: walk, look up a path, diff two snapshots, statistics.

Used by ``ls``, ``find``, ``diff`` and ``stats``; everything here is read-only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

from fogvault.errors import PathNotFound
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, source_path
from fogvault.repo.tree import DIR, FILE, Node


def walk(repo: Repository, tree_id: bytes, prefix: bytes = b"") -> Iterator[tuple[bytes, Node]]:
    """Every entry below ``tree_id`` as (absolute path, node), depth-first in name order.
    Iterative, so trees of any depth work."""
    stack = [iter([(prefix, node) for node in repo.load_tree(tree_id).nodes])]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        parent, node = item
        path = parent + b"/" + node.name
        yield path, node
        if node.type == DIR and node.subtree is not None:
            stack.append(iter([(path, child) for child in repo.load_tree(node.subtree).nodes]))


def lookup(repo: Repository, tree_id: bytes, path: bytes) -> tuple[Node | None, bytes]:
    """The node at ``path`` (None for the root) and the tree id to list below it."""
    node: Node | None = None
    current = tree_id
    for name in [p for p in path.split(b"/") if p]:
        below_a_file = node is not None and node.type != DIR
        node = None if below_a_file else repo.load_tree(current).find(name)
        if node is None:
            raise PathNotFound(f"no such path in the snapshot: {path.decode(errors='replace')}")
        if node.type == DIR and node.subtree is not None:
            current = node.subtree
    return node, current


def subfolder(repo: Repository, snapshot: Snapshot, path: bytes) -> Snapshot:
    """``snapshot`` seen from its folder ``path`` (restic's ``SNAPSHOT:subfolder``): the same
    snapshot whose root is that folder, so that it restores, lists and compares as if the
    folder's contents had been backed up at ``/``. Its backed-up paths are those inside the
    folder, made relative to it (``/`` if the folder is inside one of them)."""
    parts = [part for part in path.split(b"/") if part]
    if not parts:
        return snapshot
    node, tree_id = lookup_path(repo, snapshot.tree, path)
    if node is None or node.type != DIR:
        raise PathNotFound(f"not a folder in the snapshot: {os.fsdecode(path)}")
    return dataclasses.replace(snapshot, tree=tree_id, paths=_paths_within(snapshot.paths, parts))


def _paths_within(paths: list[str], folder: list[bytes]) -> list[str]:
    within: set[str] = set()
    for path in paths:
        parts = [part for part in os.fsencode(path).split(b"/") if part]
        if parts[:len(folder)] == folder:  # at or below the folder
            within.add(os.fsdecode(b"/" + b"/".join(parts[len(folder):])))
        elif folder[:len(parts)] == parts:  # the folder is inside a backed-up path
            within.add("/")
    return sorted(within)


def lookup_path(repo: Repository, tree_id: bytes, path: bytes) -> tuple[Node | None, bytes]:
    """:func:`lookup`, whose error for a relative path says that the paths in a snapshot are
    absolute, and names the path from the current folder if the snapshot has it (``ls latest
    data`` after ``backup data``)."""
    try:
        return lookup(repo, tree_id, path)
    except PathNotFound as exc:
        if path.startswith(b"/"):
            raise
        hint = "paths in a snapshot are absolute"
        absolute = source_path(path)
        try:
            lookup(repo, tree_id, absolute)
            hint += f": did you mean {os.fsdecode(absolute)}?"
        except PathNotFound:
            pass
        raise PathNotFound(f"{exc} ({hint})") from None


@dataclass(frozen=True, slots=True)
class Change:
    """``+`` added, ``-`` removed, ``M`` content changed, ``U`` metadata only, ``T`` type."""

    kind: str
    path: bytes


_METADATA_FIELDS = ("mode", "uid", "gid", "user", "group", "mtime_ns", "xattrs", "target")


def diff_snapshots(repo: Repository, old: Snapshot, new: Snapshot) -> Iterator[Change]:
    """:func:`diff` of two snapshots' trees, comparing inode flags only if both backups read
    them (``flags_read``): a node without flags in a snapshot that did not read them says
    nothing of its flags, and every flagged entry would show as changed."""
    return diff(repo, old.tree, new.tree, flags=old.flags_read and new.flags_read)


def diff(repo: Repository, old_tree: bytes | None, new_tree: bytes | None,
         prefix: bytes = b"", *, flags: bool = True) -> Iterator[Change]:
    """Changes from one tree to another; identical subtrees (same id) are skipped unread.
    ``flags``: inode flags count as metadata (see :func:`diff_snapshots`). Iterative, so trees
    of any depth work: each level yields its changes and the subtrees to compare next, which
    are compared before the level goes on."""
    fields = (*_METADATA_FIELDS, "flags") if flags else _METADATA_FIELDS
    stack = [_diff_level(repo, old_tree, new_tree, prefix, fields)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, Change):
            yield item
        else:
            stack.append(_diff_level(repo, *item, fields))


_Subtrees = tuple[bytes | None, bytes | None, bytes]  # old, new, path: to compare next


def _diff_level(repo: Repository, old_tree: bytes | None, new_tree: bytes | None,
                prefix: bytes, fields: tuple[str, ...]) -> Iterator[Change | _Subtrees]:
    """The changes between two trees' own entries, in name order, each folder's followed by
    the pair of its subtrees; ``fields``: the metadata compared."""
    if old_tree == new_tree:
        return
    old = {n.name: n for n in (repo.load_tree(old_tree).nodes if old_tree else [])}
    new = {n.name: n for n in (repo.load_tree(new_tree).nodes if new_tree else [])}
    for name in sorted(old.keys() | new.keys()):
        path = prefix + b"/" + name
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            present = a or b
            assert present is not None
            yield Change("+" if a is None else "-", path)
            if present.type == DIR:
                yield (None if a is None else a.subtree, None if b is None else b.subtree, path)
            continue
        if a.type != b.type:
            yield Change("T", path)
        elif a.type == FILE and a.content != b.content:
            yield Change("M", path)
        elif any(getattr(a, f) != getattr(b, f) for f in fields):
            yield Change("U", path)
        if DIR in (a.type, b.type):
            yield (a.subtree if a.type == DIR else None, b.subtree if b.type == DIR else None,
                   path)


@dataclass(slots=True)
class Stats:
    snapshots: int = 0
    files: int = 0
    dirs: int = 0
    restore_size: int = 0  # bytes a restore of these snapshots writes
    unique_blobs: int = 0
    raw_size: int = 0  # the unique blobs, uncompressed: the deduplicated size
    data_size: int = 0  # the unique file-content blobs, uncompressed (raw_size without trees)
    stored_size: int = 0  # the unique blobs as stored: after compression and encryption

    @property
    def compression_ratio(self) -> float:
        return self.raw_size / self.stored_size if self.stored_size else 1.0

    @property
    def dedup_ratio(self) -> float:
        """What a restore writes over the file data stored for it (restic's restore size over
        raw data): 1.0 when nothing is stored twice. Folder listings (trees) are left out: a
        restore does not write them, and counting them made distinct files 0.99x."""
        return self.restore_size / self.data_size if self.data_size else 1.0


def stats(repo: Repository, tree_ids: list[bytes]) -> Stats:
    result = Stats(snapshots=len(tree_ids))
    # One byte per index record, as mark keeps its flags: a set of ids cost ~107 bytes a blob.
    counted = bytearray(len(repo.index))

    def add_blob(blob_id: bytes, *, data: bool = False) -> None:
        position = repo.index.position(blob_id)
        if position < 0 or counted[position]:
            return  # not indexed ('check' reports it), or counted already
        counted[position] = 1
        entry = repo.index.entry_at(position)
        result.unique_blobs += 1
        result.raw_size += entry.raw_length
        result.data_size += entry.raw_length if data else 0
        result.stored_size += entry.length

    for tree_id in tree_ids:
        add_blob(tree_id)
        linked: set[tuple[int, int]] = set()  # a hardlinked file's inode, once a snapshot
        for _, node in walk(repo, tree_id):  # every occurrence counts toward the restore size
            if node.type == DIR and node.subtree is not None:
                result.dirs += 1
                add_blob(node.subtree)
            elif node.type == FILE:
                result.files += 1
                if node.nlink <= 1 or (node.dev, node.ino) not in linked:
                    result.restore_size += node.size  # a restore writes linked names once
                    if node.nlink > 1:
                        linked.add((node.dev, node.ino))
                for blob_id in node.content:
                    add_blob(blob_id, data=True)
    return result
