"""``repair --snapshots``: cut what is lost out of snapshots (restic's ``repair snapshots``),
so that their intact files stay restorable and ``check`` and ``prune`` run again.

When data is lost on every target and its source files are gone, the snapshots that use it are
broken for good. Each chosen snapshot that uses something lost gets a copy under a new uid
(:mod:`snapshot_copies`: same time, host, user, paths, parent; its tags and ``repaired``):

* a file whose content lists blobs that are not in the index keeps the indexed ones, in order,
  and its size becomes the sum of their plaintext lengths (restic's choice: the file restores
  shorter, its intact chunks where they were, so a later chunk moves up);
* a folder whose tree is not in the index, or cannot be read from any target (missing or
  damaged on each), becomes an empty folder; so does the root: a snapshot whose root tree is
  lost keeps its place in time as an empty snapshot, rather than vanishing (restic deletes
  it), so that only ``--forget`` ever deletes a snapshot.

Each cut is a line of the copy's ``warnings`` (first, before the backup's own) and of the
result. Data is judged by the index alone, as restic does: no pack is read, so a blob the
index lists but no target holds is not found here (``check --read-data`` finds it; ``repair``
copies it from another target if one has it, ``repair --index`` lists packs no index lists:
run those first). A tree that cannot be read for another reason (a target that cannot be
reached, a tree that authenticates but does not parse) stops the run: it is not lost.

A snapshot that uses nothing lost is left alone, and counted as intact, or as already
repaired if it is an earlier run's copy (whole, but of a snapshot that was not). Each copy
names the snapshot it was repaired from in ``repaired_from`` (docs/format.md, section 14; a
copy repaired again, after more is lost, names that copy), which ``tag``, ``rewrite`` and
``copy`` keep; a snapshot that has it counts as already repaired, whatever its tags.

A repaired copy is the same for the same original and index, so a second run saves nothing: it
finds the first run's copy (:func:`_earlier_copy`) and only saves it where it is missing and,
with ``forget``, deletes the original once every target that holds the original holds the
copy. The copy found has the snapshot's time, host, user and paths and its repaired tree, and
is first the one whose ``repaired_from`` is the snapshot's uid, whatever tags the user gave it;
else one with the snapshot's tags (``repaired`` aside), whichever snapshot it names: another
with the same contents and tags (a summary-only rewrite's copy kept beside its original, a copy
saved before more was lost, the original retagged along with its copy) shares it, as deleting
the snapshot for it loses nothing. A copy with other tags serves only the snapshot it names, so
``forget`` never deletes a snapshot whose tags no copy has: a twin that differs in its tags (a
``tag`` killed between saving the new manifest and deleting the old leaves one), or the
original retagged alone, gets a copy of its own.

Copies saved before ``repaired_from`` existed (or passed through a version's ``tag`` or
``rewrite`` that drops it) are known by their tags: by their ``repaired`` tag, for the count;
for the rerun, one with the snapshot's tags (``repaired`` aside) as above, else one with other
tags unless the snapshot has a twin with other tags (:func:`_copy_before_the_field`). So such
copies of twins that the user gave other tags (not only ``repaired`` taken off) get second
copies, and such a copy whose original is forgotten counts as intact once untagged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from fogvault.backup.saver import BlobSaver
from fogvault.errors import FogVaultError
from fogvault.maintenance.inventory import take_inventory
from fogvault.maintenance.reindex import unindexed_data_may_be_found
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
from fogvault.repo.format import BlobType
from fogvault.repo.repository import Repository, is_damage
from fogvault.repo.snapshot import Snapshot, SnapshotSummary, new_uid
from fogvault.repo.tree import DIR, FILE, Node, Tree
from fogvault.warning_list import MAX_WARNINGS, WarningList

#: the tag every repaired copy gets, to find them: ``snapshots --tag repaired``
REPAIRED_TAG = "repaired"


@dataclass(slots=True)
class RepairSnapshotsOptions:
    uids: list[str] = field(default_factory=list)  # none: every snapshot the filters select
    host: str | None = None
    tags: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    forget: bool = False  # delete each original once its copy is saved wherever it was
    dry_run: bool = False

    def validate(self) -> None:
        check_selection(self.uids, self.host, self.tags, self.paths)


@dataclass(slots=True)
class Cut:
    """What was lost at one path: chunks of a file, or a folder's whole tree."""

    path: str
    kind: str  # FILE or DIR
    chunks: int = 0  # a file's, before
    chunks_lost: int = 0
    bytes_kept: int = 0  # a file's new size
    reason: str = ""  # why a folder's tree could not be read

    def describe(self) -> str:
        if self.kind == FILE:
            return (f"{self.path}: {self.chunks_lost} of {self.chunks} chunks lost, "
                    f"{self.bytes_kept} bytes kept")
        return f"{self.path}: folder lost, left empty: {self.reason}"


@dataclass(slots=True)
class RepairedSnapshot:
    old_uid: str
    new_uid: str  # the uid it would get, in a dry run
    cuts: list[Cut]  # in path order
    summary: SnapshotSummary  # the copy's
    saved_before: bool = False  # the copy is an earlier run's
    kept_original: str | None = None  # why --forget left the original

    @property
    def files_cut(self) -> int:
        return sum(cut.kind == FILE for cut in self.cuts)

    @property
    def folders_emptied(self) -> int:
        return len(self.cuts) - self.files_cut


@dataclass(slots=True)
class RepairSnapshotsResult:
    repaired: list[RepairedSnapshot] = field(default_factory=list)
    intact: int = 0  # chosen snapshots that use nothing lost, but those below
    dry_run: bool = False
    #: chosen snapshots that use nothing lost because they are copies an earlier run saved:
    #: those with ``repaired_from``; of those saved before the field, one found for a chosen
    #: original, or tagged ``repaired`` (once its original is forgotten, nothing else tells
    #: such a copy from a whole snapshot)
    already_repaired: int = 0


def repair_snapshots(repo: Repository, options: RepairSnapshotsOptions
                     ) -> RepairSnapshotsResult:
    """Save a copy without what is lost of each chosen snapshot that uses something lost (see
    the module doc); with ``options.forget``, delete the originals."""
    options.validate()

    def edit_with(saver: BlobSaver) -> Edit[_Repair]:
        return _SnapshotRepair(repo, _TreeRepair(repo, saver)).copy

    selection = Selection(options.uids, options.host, options.tags, options.paths)
    edits = edit_snapshots(repo, selection, edit_with, command="repair --snapshots",
                           forget=options.forget, dry_run=options.dry_run)
    found = {e.copy.uid for e in edits.edited if e.details.saved_before}
    copies = sum(_already_repaired(s, found) for s in edits.unchanged)
    return RepairSnapshotsResult(
        [RepairedSnapshot(e.original.uid, e.copy.uid, e.details.cuts, e.copy.summary,
                          e.details.saved_before, e.kept_original) for e in edits.edited],
        len(edits.unchanged) - copies, options.dry_run, copies)


def _already_repaired(snapshot: Snapshot, found: set[str]) -> bool:
    """Whether ``snapshot`` is a copy an earlier run saved: it names what it was repaired
    from, or (saved before the field) it was ``found`` for a chosen original, or is tagged
    ``repaired``."""
    return (snapshot.repaired_from is not None or snapshot.uid in found
            or REPAIRED_TAG in snapshot.tags)


@dataclass(slots=True)
class _Repaired:
    tree_id: bytes
    cuts: list[Cut]
    contents: Contents  # of what is left


@dataclass(slots=True)
class _Repair:
    cuts: list[Cut]
    saved_before: bool


class _SnapshotRepair:
    """The copies of damaged snapshots: a new one, or the one an earlier run saved."""

    def __init__(self, repo: Repository, trees: _TreeRepair) -> None:
        self.repo = repo
        self.trees = trees
        # the repository's snapshots (and the copies this run made) by _moment, read when needed
        self._by_moment: dict[tuple, list[Snapshot]] | None = None
        self._checked_unlisted = False  # whether packs no index lists may hold what is lost

    def copy(self, snapshot: Snapshot) -> tuple[Snapshot, _Repair] | None:
        repaired = self.trees.tree(snapshot.tree)
        if not repaired.cuts:
            return None
        if not self._checked_unlisted:  # once, at the first snapshot to cut
            self._checked_unlisted = True
            if unindexed_data_may_be_found(self.repo, take_inventory(self.repo)):
                raise FogVaultError(
                    f"snapshot {snapshot.uid} uses data the index lacks, which packs no index "
                    "lists may hold: run 'fogvault repair --index' first, which lists them "
                    "again (cutting it now, then pruning, would destroy it)")
        tags = sorted({*snapshot.tags, REPAIRED_TAG})
        alike = self._alike(snapshot)
        saved = _earlier_copy(snapshot, repaired.tree_id, tags, alike)
        if saved is not None:
            return saved, _Repair(repaired.cuts, saved_before=True)
        leading = leading_dirs(snapshot, self.trees.tree_or_empty, lambda path: True)
        copy = dataclasses.replace(
            snapshot, uid=new_uid(), tree=repaired.tree_id, tags=tags,
            summary=recounted_summary(snapshot, repaired.contents, leading),
            warnings=_warnings([c.describe() for c in repaired.cuts], snapshot.warnings),
            # another snapshot for `copy`, as a rewrite's copy with paths taken out
            original=None, repaired_from=snapshot.uid)
        # another original with the same contents and tags (a summary-only rewrite's copy)
        # gets the same copy
        alike.append(copy)
        return copy, _Repair(repaired.cuts, saved_before=False)

    def _alike(self, snapshot: Snapshot) -> list[Snapshot]:
        """The snapshots of ``snapshot``'s time, host, user and paths (itself among them)."""
        if self._by_moment is None:
            self._by_moment = {}
            for each in self.repo.snapshots():
                self._by_moment.setdefault(_moment(each), []).append(each)
        return self._by_moment.setdefault(_moment(snapshot), [])


def _moment(snapshot: Snapshot) -> tuple:
    """What every copy of a snapshot (``tag``'s, ``rewrite``'s, a repair's) keeps of it."""
    return snapshot.time, snapshot.host, snapshot.user, tuple(snapshot.paths)


def _earlier_copy(snapshot: Snapshot, tree: bytes, tags: list[str], alike: list[Snapshot]
                  ) -> Snapshot | None:
    """The copy that an earlier run (or this one, for another snapshot) saved of ``snapshot``,
    repaired to ``tree``: a snapshot ``alike`` it (:func:`_moment`) with that tree (its summary
    and warnings may have been counted from another state of the index). The one whose
    ``repaired_from`` is ``snapshot``'s uid, whatever its tags; else one with ``snapshot``'s
    tags, ``repaired`` aside (whose copy it is does not matter: deleting ``snapshot`` for it
    loses nothing); else one saved before the field (:func:`_copy_before_the_field`)."""
    copies = [s for s in alike if s.tree == tree]
    own = [s for s in copies if s.repaired_from == snapshot.uid]
    same_tags = [s for s in copies if _users_tags(s.tags) == _users_tags(tags)]
    if own or same_tags:
        return (own or same_tags)[0]
    return _copy_before_the_field(tree, tags, alike,
                                  [s for s in copies if s.repaired_from is None])


def _copy_before_the_field(tree: bytes, tags: list[str], alike: list[Snapshot],
                           copies: list[Snapshot]) -> Snapshot | None:
    """Of ``copies`` (repaired to ``tree``, saved before ``repaired_from`` existed, with other
    tags than ``tags``, as the user changed them), the first, unless the snapshot has a twin
    with other tags (``alike``, another tree, other tags but ``repaired``): then the tags are
    all that tells whose copy is whose, and taking the twin's would, with --forget, delete the
    snapshot and leave its tags on no copy."""
    if any(s.tree != tree and _users_tags(s.tags) != _users_tags(tags) for s in alike):
        return None
    return copies[0] if copies else None


def _users_tags(tags: list[str]) -> set[str]:
    """``tags`` but the one a repair adds."""
    return set(tags) - {REPAIRED_TAG}


_MORE_WARNINGS = re.compile(r"\.\.\. and (\d+) more warnings")


def _warnings(cuts: list[str], before: list[str]) -> WarningList:
    """The cuts, then the backup's warnings, bounded as a backup bounds them: the cuts come
    first, as what the copy lacks. A backup's list that is full already ends in a line
    counting those left out, which counts on."""
    hidden = 0
    if len(before) > MAX_WARNINGS and (more := _MORE_WARNINGS.fullmatch(before[-1])):
        before, hidden = before[:-1], int(more[1])
    merged = WarningList.of([*cuts, *before])
    if hidden:
        merged.total += hidden
        merged[MAX_WARNINGS:] = [f"... and {merged.total - MAX_WARNINGS} more warnings"]
    return merged


class _TreeRepair:
    """Trees without what is lost, stored as they are made, and what is left in them counted;
    a tree (at a given path) is repaired once for all the snapshots that share it."""

    def __init__(self, repo: Repository, saver: BlobSaver) -> None:
        self.repo = repo
        self.saver = saver
        self._done: dict[tuple[bytes, bytes], _Repaired] = {}

    def tree(self, root: bytes) -> _Repaired:
        """The snapshot tree ``root`` repaired (by :func:`fold_trees`: trees of any depth)."""
        return fold_trees((root, b""), self._repair, self._done)

    def tree_or_empty(self, tree_id: bytes) -> Tree:
        """The tree ``tree_id``, or an empty one where it is lost (as the copy has it)."""
        loaded = self._load(tree_id)
        return Tree() if isinstance(loaded, FogVaultError) else loaded

    def _load(self, tree_id: bytes) -> Tree | FogVaultError:
        """The tree, or the error that says it is lost; any other error goes on."""
        try:
            return self.repo.load_tree(tree_id)
        except FogVaultError as exc:
            if is_damage(exc):
                return exc
            raise

    def _repair(self, at: tuple[bytes, bytes]
                ) -> Generator[tuple[bytes, bytes], _Repaired, _Repaired]:
        """The tree ``at`` (its id, and the path of the folder it lists) repaired; yields its
        folders' subtrees, at their paths, for their repaired trees."""
        tree_id, prefix = at
        tree = self._load(tree_id)
        if isinstance(tree, FogVaultError):
            cut = Cut(_text(prefix or b"/"), DIR, reason=str(tree))
            return _Repaired(self.saver.save(BlobType.TREE, Tree().encode()), [cut], Contents())
        kept: list[Node] = []
        cuts: list[Cut] = []
        contents = Contents()
        for node in tree.nodes:
            path = prefix + b"/" + node.name
            if node.type == DIR and node.subtree is not None:
                below = yield node.subtree, path
                node = with_subtree(node, below.tree_id)
                cuts += below.cuts
                contents.add(below.contents)
            elif node.type == FILE:
                node = self._file(node, path, cuts.append)
            kept.append(node)
            contents.count(node)
        if cuts:  # else nothing below it changed: the same tree
            tree_id = self.saver.save(BlobType.TREE, Tree(kept).encode())
        return _Repaired(tree_id, cuts, contents)

    def _file(self, node: Node, path: bytes, cut: Callable[[Cut], None]) -> Node:
        """``node`` with only its indexed chunks, its size theirs; the same object if every
        chunk is indexed."""
        index = self.repo.index
        entries = [index.get(blob_id) for blob_id in node.content]
        kept = [entry for entry in entries if entry is not None]
        if len(kept) == len(entries):
            return node
        size = sum(entry.raw_length for entry in kept)
        cut(Cut(_text(path), FILE, len(entries), len(entries) - len(kept), size))
        return dataclasses.replace(node, content=[entry.blob_id for entry in kept], size=size)


def _text(path: bytes) -> str:
    return path.decode(errors="surrogateescape")
