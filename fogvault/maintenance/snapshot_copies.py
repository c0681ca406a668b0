"""Changed copies of snapshots, saved under new uids: the part shared by ``rewrite`` (paths
taken out) and ``repair --snapshots`` (damaged parts cut out).

:func:`edit_snapshots` chooses the snapshots (uids, or the --host/--tag/--path filters), has a
caller's edit make each one's copy, its new trees stored as they are made, and saves each copy
to the targets that hold its original (and so its data), deleting the original on request once
every such target holds the copy. Trees are never changed in place, and the original's time,
host, paths and parent are the copy's: what differs is the edit's. :class:`Contents` and
:func:`recounted_summary` count a copy's summary anew from its trees, as a backup counts it.

Not guaranteed: that an edit is atomic across snapshots. Each copy is saved (and its original
deleted) before the next; a failure leaves the copies saved so far, and the new trees of the
others, which the next ``prune`` frees if nothing uses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from fogvault.backup.saver import BlobSaver, stored_blobs
from fogvault.errors import FogVaultError
from fogvault.maintenance.selection import chosen_snapshots
from fogvault.maintenance.treefold import refuse_newer_writer
from fogvault.repo.lock import NoLock
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, SnapshotSummary
from fogvault.repo.tree import DIR, FILE, Node, Tree

D = TypeVar("D")


@dataclass(slots=True)
class Selection:
    """Which snapshots to edit (:func:`chosen_snapshots`): by uid, or else by the filters."""

    uids: Sequence[str] = ()
    host: str | None = None
    tags: Sequence[str] = ()
    paths: Sequence[str] = ()


@dataclass(slots=True)
class Edited(Generic[D]):
    original: Snapshot
    copy: Snapshot  # in a dry run, the copy that would be saved
    details: D  # what the edit changed (the paths taken out, the parts cut)
    kept_original: str | None = None  # why ``forget`` left the original


@dataclass(slots=True)
class Edits(Generic[D]):
    edited: list[Edited[D]] = field(default_factory=list)
    unchanged: list[Snapshot] = field(default_factory=list)  # chosen, left as they were


#: Makes the copy of one snapshot, and says what changed; None: it stays as it is. The copy
#: may be a snapshot the repository holds already (an earlier run's): it is then saved only
#: where it is missing.
Edit = Callable[[Snapshot], tuple[Snapshot, D] | None]


def edit_snapshots(repo: Repository, selection: Selection, edit_with: Callable[[BlobSaver],
                   Edit[D]], *, command: str, forget: bool, dry_run: bool) -> Edits[D]:
    """Copies of the chosen snapshots made by the edit ``edit_with`` gives (its new trees
    stored through the saver it is given), saved; with ``forget``, each original deleted once
    every target that holds it holds its copy. With ``dry_run`` nothing is stored, and no lock
    taken (as backup --dry-run). A snapshot written by a newer FogVault is refused before any
    tree is stored (its trees may hold fields this version would drop: ``command`` names what
    to do with that version)."""
    result: Edits[D] = Edits()
    with repo.lock() if not dry_run else NoLock() as lock:
        repo.load_index()  # under the lock: trees are deduplicated against it
        if not dry_run:
            # A target that lacks index files others hold may lack trees the new ones reuse:
            # it gets no copy (as a backup commits to none there).
            repo.mark_behind_targets()
        chosen = chosen_snapshots(repo, selection.uids, selection.host, selection.tags,
                                  selection.paths)
        for snapshot in chosen:  # before any tree is stored
            refuse_newer_writer(snapshot, command)
        with stored_blobs(repo, dry_run=dry_run, before_index=lock.ensure_fresh) as saver:
            edit = edit_with(saver)
            for snapshot in chosen:
                made = edit(snapshot)
                if made is None:
                    result.unchanged.append(snapshot)
                else:
                    result.edited.append(Edited(snapshot, *made))
        if dry_run or not result.edited:
            return result
        locations = repo.snapshot_locations()
        for entry in result.edited:
            entry.kept_original = _save(repo, entry.original, entry.copy, locations, forget,
                                        lock.ensure_fresh)
    return result


def _save(repo: Repository, original: Snapshot, copy: Snapshot,
          locations: dict[str, list[str]], forget: bool,
          ensure_fresh: Callable[[], None]) -> str | None:
    """Save ``copy`` on the targets that hold ``original`` and every tree of the copy (not
    behind), except those that hold it already (an earlier run's copy, or one this run saved
    for another original); delete ``original`` if asked and if every target that holds it has
    the copy. Returns why the original was kept, if it was. ``ensure_fresh`` (the lock's) runs
    before each change: a stale lock may have let a prune delete the new trees.
    ``locations`` (uid -> target URLs) gets the targets written."""
    holders = [t for t in repo.targets.active() if t.url in locations.get(original.uid, [])]
    ready = [t for t in holders if t in repo.targets.committable()]
    if not ready:
        raise FogVaultError(f"snapshot {original.uid} is on no reachable target that holds all "
                            "of the repository's data ('fogvault repair' first); its new "
                            "trees are stored, no snapshot was changed")
    have_copy = locations.setdefault(copy.uid, [])
    missing = [t for t in ready if t.url not in have_copy]
    if missing:
        ensure_fresh()
        have_copy += [t.url for t in repo.save_snapshot_copy(copy, missing)]
    if not forget:
        return None
    behind = [t.url for t in holders if t.url not in have_copy]
    if behind:
        return (f"its copy is not on {', '.join(behind)}, which holds it ('fogvault repair', "
                "then 'fogvault forget' it)")
    ensure_fresh()
    repo.delete_snapshot(original.uid)
    return None


@dataclass(slots=True)
class Contents:
    """What a tree holds, counted as a backup counts its summary: files (each name of a
    hardlinked file), folders, and the files' bytes."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0

    def count(self, node: Node) -> None:
        if node.type == FILE:
            self.files += 1
            self.bytes += node.size
        elif node.type == DIR:
            self.dirs += 1

    def add(self, other: Contents) -> None:
        self.files += other.files
        self.dirs += other.dirs
        self.bytes += other.bytes


def recounted_summary(snapshot: Snapshot, contents: Contents, leading: int) -> SnapshotSummary:
    """``snapshot``'s summary for a copy whose root tree holds ``contents``, of which
    ``leading`` folders only lead to the backed-up paths (:func:`leading_dirs`), which a backup
    does not count (:meth:`SnapshotSummary.with_contents`)."""
    dirs = contents.dirs - leading
    if "/" in snapshot.paths:  # the root folder is the tree, not an entry in it
        dirs += 1
    return snapshot.summary.with_contents(contents.files, dirs, contents.bytes)


def leading_dirs(snapshot: Snapshot, load_tree: Callable[[bytes], Tree],
                 kept: Callable[[bytes], bool]) -> int:
    """How many folders that only lead to the backed-up paths (``/home`` of a backup of
    ``/home/ann``) ``snapshot``'s copy holds: those of its trees (as ``load_tree`` gives them)
    that ``kept`` keeps. Read from the original's trees: the new ones may not be indexed
    yet."""
    given = [os.fsencode(p) for p in snapshot.paths]
    leading = {b"/".join(parts[:end]) for parts in (p.split(b"/") for p in given)
               for end in range(2, len(parts))}  # b"/home" of b"/home/ann"
    leading = {f for f in leading if not any(_at_or_below(f, p) for p in given)}
    count, trees = 0, [(b"", snapshot.tree)]
    while trees:
        prefix, tree_id = trees.pop()
        for node in load_tree(tree_id).nodes:
            path = prefix + b"/" + node.name
            if (path in leading and node.type == DIR and node.subtree is not None
                    and kept(path)):
                count += 1
                trees.append((path, node.subtree))
    return count


def _at_or_below(path: bytes, folder: bytes) -> bool:
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")
