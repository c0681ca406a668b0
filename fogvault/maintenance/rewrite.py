"""``rewrite``: take paths out of existing snapshots (restic's ``rewrite``), for a secret or a
huge file that should never have been backed up.

Each chosen snapshot whose trees hold an entry matching the exclude patterns gets a copy with
new trees, without those entries (and everything below them), under a new uid; everything else
is as it was (time, host, paths, tags, parent, the writer's version), but the summary, whose
contents (files, folders, their bytes) are counted anew from the new trees as a backup counts
them (restic 0.18's rewrite does the same); the fields that describe the backup run stay
(:meth:`SnapshotSummary.with_contents`). With ``snapshot_summary`` (restic's
``--snapshot-summary``), a chosen snapshot whose summary does not match its trees (a copy an
older rewrite made, or one written without a summary) gets a copy with the summary counted
anew, whether or not anything is taken out of it. Trees are never
changed in place: the folders on the way to a removed entry are stored anew, every other
subtree keeps its id, and a subtree shared by several snapshots is filtered once. The copy goes
to the targets that hold the original (and so its data); the new trees go to every target in
use. The original stays unless ``forget`` is set: then it is deleted once its copy reached
every target that holds it. The data only the removed entries used is freed by ``prune``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from fogvault.backup.saver import BlobSaver, stored_blobs
from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.selection import check_selection, chosen_snapshots
from fogvault.maintenance.treefold import fold_trees, refuse_newer_writer, with_subtree
from fogvault.patterns import PathPatterns
from fogvault.repo.format import BlobType
from fogvault.repo.lock import NoLock
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, SnapshotSummary, new_uid
from fogvault.repo.tree import DIR, FILE, Node, Tree


@dataclass(slots=True)
class RewriteOptions:
    excludes: list[str] = field(default_factory=list)
    iexcludes: list[str] = field(default_factory=list)  # ignoring case
    uids: list[str] = field(default_factory=list)  # none: every snapshot the filters select
    host: str | None = None
    tags: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    forget: bool = False  # delete each original once its copy is saved
    snapshot_summary: bool = False  # also copy those whose summary does not match their trees
    dry_run: bool = False

    def validate(self) -> None:
        if not (self.excludes or self.iexcludes or self.snapshot_summary):
            raise UsageError("nothing to do: give --exclude, --iexclude or --snapshot-summary")
        check_selection(self.uids, self.host, self.tags, self.paths)


@dataclass(slots=True)
class Rewritten:
    old_uid: str
    new_uid: str  # the uid it would get, in a dry run
    removed: list[str]  # the paths taken out (not those below them)
    summary: SnapshotSummary  # the copy's
    kept_original: str | None = None  # why --forget left the original


@dataclass(slots=True)
class RewriteResult:
    rewritten: list[Rewritten] = field(default_factory=list)
    unchanged: int = 0  # chosen snapshots that hold nothing the patterns match (and whose
    # summary matches their trees, with snapshot_summary)
    dry_run: bool = False


def rewrite(repo: Repository, options: RewriteOptions) -> RewriteResult:
    """Take what ``options`` excludes out of the chosen snapshots, and count their summaries
    anew (see the module doc)."""
    options.validate()
    patterns = PathPatterns(options.excludes, options.iexcludes)
    result = RewriteResult(dry_run=options.dry_run)
    # a dry run changes nothing, and so takes no lock (as backup --dry-run)
    with repo.lock() if not options.dry_run else NoLock() as lock:
        repo.load_index()  # under the lock: trees are deduplicated against it
        if not options.dry_run:
            # A target that lacks index files others hold may lack trees the new ones reuse:
            # it gets no copy (as a backup commits to none there).
            repo.mark_behind_targets()
        chosen = chosen_snapshots(repo, options.uids, options.host, options.tags,
                                  options.paths)
        for snapshot in chosen:  # before any tree is stored
            refuse_newer_writer(snapshot, "rewrite")
        changed: list[tuple[Snapshot, Snapshot, list[str]]] = []
        with stored_blobs(repo, dry_run=options.dry_run, before_index=lock.ensure_fresh) as saver:
            filtered = _TreeFilter(repo, saver, patterns)
            for snapshot in chosen:
                copy = _copy(repo, snapshot, filtered.tree(snapshot.tree), patterns,
                             options.snapshot_summary)
                if copy is None:
                    result.unchanged += 1
                    continue
                changed.append((snapshot, *copy))
        locations = repo.snapshot_locations() if changed and not options.dry_run else {}
        for original, copy, removed in changed:
            entry = Rewritten(original.uid, copy.uid, removed, copy.summary)
            if not options.dry_run:
                entry.kept_original = _save(repo, original, copy, locations, options.forget,
                                            lock.ensure_fresh)
            result.rewritten.append(entry)
    return result


def _copy(repo: Repository, snapshot: Snapshot, filtered: _Filtered, patterns: PathPatterns,
          recount: bool) -> tuple[Snapshot, list[str]] | None:
    """The copy of ``snapshot`` with the filtered tree and its summary counted anew, and the
    paths taken out; None if nothing is taken out and the summary is not to be recounted or
    is right."""
    if not (filtered.removed or recount):
        return None
    contents = filtered.contents
    dirs = contents.dirs - _leading_dirs(repo, snapshot, patterns)
    if "/" in snapshot.paths:  # the root folder is the tree, not an entry in it
        dirs += 1
    summary = snapshot.summary.with_contents(contents.files, dirs, contents.bytes)
    if not filtered.removed and summary == snapshot.summary:
        return None
    # A copy with contents taken out is another snapshot for `copy`: were it to keep
    # `original`, a repository copied from would take it and the full one for the same, and
    # copy only one of them. A copy whose summary alone is counted anew has the same contents.
    original = None if filtered.removed else snapshot.original or snapshot.uid
    return dataclasses.replace(snapshot, uid=new_uid(), tree=filtered.tree_id,
                               summary=summary, original=original), filtered.removed


def _leading_dirs(repo: Repository, snapshot: Snapshot, patterns: PathPatterns) -> int:
    """How many folders that only lead to the backed-up paths (``/home`` of a backup of
    ``/home/ann``), which a backup does not count in its summary, ``snapshot`` keeps when what
    ``patterns`` match is taken out. Read from its own trees: the new ones may not be indexed
    yet."""
    given = [os.fsencode(p) for p in snapshot.paths]
    leading = {b"/".join(parts[:end]) for parts in (p.split(b"/") for p in given)
               for end in range(2, len(parts))}  # b"/home" of b"/home/ann"
    leading = {f for f in leading if not any(_at_or_below(f, p) for p in given)}
    count, trees = 0, [(b"", snapshot.tree)]
    while trees:
        prefix, tree_id = trees.pop()
        for node in repo.load_tree(tree_id).nodes:
            path = prefix + b"/" + node.name
            if (path in leading and node.type == DIR and node.subtree is not None
                    and not patterns.matches(path)):
                count += 1
                trees.append((path, node.subtree))
    return count


def _at_or_below(path: bytes, folder: bytes) -> bool:
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


def _save(repo: Repository, original: Snapshot, copy: Snapshot,
          locations: dict[str, list[str]], forget: bool,
          ensure_fresh: Callable[[], None]) -> str | None:
    """Save ``copy`` on the targets that hold ``original`` and every tree of the copy (not
    behind); delete ``original`` if asked and if every target that holds it got the copy.
    Returns why the original was kept, if it was. ``ensure_fresh`` (the lock's) runs before
    each change: a stale lock may have let a prune delete the new trees."""
    holders = [t for t in repo.targets.active() if t.url in locations.get(original.uid, [])]
    ready = [t for t in holders if t in repo.targets.committable()]
    if not ready:
        raise FogVaultError(f"snapshot {original.uid} is on no reachable target that holds all "
                            "of the repository's data ('fogvault repair' first); its rewritten "
                            "trees are stored, no snapshot was changed")
    ensure_fresh()
    written = repo.save_snapshot_copy(copy, ready)
    if not forget:
        return None
    if set(written) != set(holders):
        behind = [t.url for t in holders if t not in written]
        return (f"its copy is not on {', '.join(behind)}, which holds it ('fogvault repair', "
                "then 'fogvault forget' it)")
    ensure_fresh()
    repo.delete_snapshot(original.uid)
    return None


@dataclass(slots=True)
class _Contents:
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

    def add(self, other: _Contents) -> None:
        self.files += other.files
        self.dirs += other.dirs
        self.bytes += other.bytes


@dataclass(slots=True)
class _Filtered:
    tree_id: bytes
    removed: list[str]  # the paths taken out
    contents: _Contents  # of what is left


class _TreeFilter:
    """Trees without the entries the patterns match, stored as they are made, and what is
    left in them counted; a tree (at a given path) is filtered once for all the snapshots that
    share it."""

    def __init__(self, repo: Repository, saver: BlobSaver, patterns: PathPatterns) -> None:
        self.repo = repo
        self.saver = saver
        self.patterns = patterns
        self._done: dict[tuple[bytes, bytes], _Filtered] = {}

    def tree(self, root: bytes) -> _Filtered:
        """The snapshot tree ``root`` filtered (by :func:`fold_trees`: trees of any depth)."""
        return fold_trees((root, b""), self._filter, self._done)

    def _filter(self, at: tuple[bytes, bytes]
                ) -> Generator[tuple[bytes, bytes], _Filtered, _Filtered]:
        """The tree ``at`` (its id, and the path of the folder it lists) filtered; yields its
        folders' subtrees, at their paths, for their filtered trees."""
        tree_id, prefix = at
        kept: list[Node] = []
        removed: list[str] = []
        contents = _Contents()
        for node in self.repo.load_tree(tree_id).nodes:
            path = prefix + b"/" + node.name
            if self.patterns.matches(path):
                removed.append(path.decode(errors="surrogateescape"))
                continue
            if node.type == DIR and node.subtree is not None:
                below = yield node.subtree, path
                node = with_subtree(node, below.tree_id)
                removed += below.removed
                contents.add(below.contents)
            kept.append(node)
            contents.count(node)
        if removed:  # else nothing below it changed: the same tree
            tree_id = self.saver.save(BlobType.TREE, Tree(kept).encode())
        return _Filtered(tree_id, removed, contents)
