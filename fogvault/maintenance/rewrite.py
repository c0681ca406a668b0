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

A chosen snapshot with a tree that no target holds intact (or that no index lists) stops the
run before any snapshot is saved, naming the snapshot and the folder, and pointing to
``repair --snapshots``, as restic's rewrite fails on it. It is not skipped: a rewrite is
often to take out a secret, and a run that went on without that snapshot would leave the
secret in it while it reported success.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass, field

from fogvault.backup.saver import BlobSaver
from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.selection import check_selection
from fogvault.maintenance.snapshot_copies import (
    Contents,
    Edit,
    Selection,
    edit_snapshots,
    leading_dirs,
    recounted_summary,
)
from fogvault.maintenance.treefold import fold_trees, with_subtree
from fogvault.patterns import PathPatterns
from fogvault.repo.format import BlobType
from fogvault.repo.repository import Repository, is_damage
from fogvault.repo.snapshot import Snapshot, SnapshotSummary, new_uid
from fogvault.repo.tree import DIR, Node, Tree


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

    def edit_with(saver: BlobSaver) -> Edit[list[str]]:
        filtered = _TreeFilter(repo, saver, patterns)
        return lambda snapshot: _copy(repo, snapshot, filtered.tree(snapshot), patterns,
                                      options.snapshot_summary)

    selection = Selection(options.uids, options.host, options.tags, options.paths)
    edits = edit_snapshots(repo, selection, edit_with, command="rewrite",
                           forget=options.forget, dry_run=options.dry_run)
    return RewriteResult(
        [Rewritten(e.original.uid, e.copy.uid, e.details, e.copy.summary, e.kept_original)
         for e in edits.edited], len(edits.unchanged), options.dry_run)


def _copy(repo: Repository, snapshot: Snapshot, filtered: _Filtered, patterns: PathPatterns,
          recount: bool) -> tuple[Snapshot, list[str]] | None:
    """The copy of ``snapshot`` with the filtered tree and its summary counted anew, and the
    paths taken out; None if nothing is taken out and the summary is not to be recounted or
    is right."""
    if not (filtered.removed or recount):
        return None
    leading = leading_dirs(snapshot, repo.load_tree, lambda path: not patterns.matches(path))
    summary = recounted_summary(snapshot, filtered.contents, leading)
    if not filtered.removed and summary == snapshot.summary:
        return None
    # A copy with contents taken out is another snapshot for `copy`: were it to keep
    # `original`, a repository copied from would take it and the full one for the same, and
    # copy only one of them. A copy whose summary alone is counted anew has the same contents.
    # `repaired_from` stays either way: what is left is still what a repair left, and a rerun
    # of `repair --snapshots` compares the tree too, so never takes this copy for the repair.
    original = None if filtered.removed else snapshot.original or snapshot.uid
    return dataclasses.replace(snapshot, uid=new_uid(), tree=filtered.tree_id,
                               summary=summary, original=original), filtered.removed


@dataclass(slots=True)
class _Filtered:
    tree_id: bytes
    removed: list[str]  # the paths taken out
    contents: Contents  # of what is left


class _TreeFilter:
    """Trees without the entries the patterns match, stored as they are made, and what is
    left in them counted; a tree (at a given path) is filtered once for all the snapshots that
    share it."""

    def __init__(self, repo: Repository, saver: BlobSaver, patterns: PathPatterns) -> None:
        self.repo = repo
        self.saver = saver
        self.patterns = patterns
        self._done: dict[tuple[bytes, bytes], _Filtered] = {}

    def tree(self, snapshot: Snapshot) -> _Filtered:
        """``snapshot``'s tree filtered (by :func:`fold_trees`: trees of any depth)."""
        try:
            return fold_trees((snapshot.tree, b""), self._filter, self._done)
        except _LostTree as lost:
            raise FogVaultError(
                f"snapshot {snapshot.uid} cannot be read at {lost.path}: {lost.__cause__}; "
                "run 'fogvault repair --snapshots', which saves a copy without what is lost "
                "(rewrite that copy then); no snapshot was changed") from lost

    def _filter(self, at: tuple[bytes, bytes]
                ) -> Generator[tuple[bytes, bytes], _Filtered, _Filtered]:
        """The tree ``at`` (its id, and the path of the folder it lists) filtered; yields its
        folders' subtrees, at their paths, for their filtered trees."""
        tree_id, prefix = at
        kept: list[Node] = []
        removed: list[str] = []
        contents = Contents()
        for node in self._load(tree_id, prefix).nodes:
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

    def _load(self, tree_id: bytes, prefix: bytes) -> Tree:
        """The tree of the folder ``prefix``; _LostTree if no target holds it intact."""
        try:
            return self.repo.load_tree(tree_id)
        except FogVaultError as exc:
            if is_damage(exc):
                raise _LostTree((prefix or b"/").decode(errors="surrogateescape")) from exc
            raise


class _LostTree(Exception):
    """A folder's tree is lost (its error is the cause): :meth:`_TreeFilter.tree` names the
    snapshot."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
