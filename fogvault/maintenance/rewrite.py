"""``rewrite``: take paths out of existing snapshots (restic's ``rewrite``), for a secret or a
huge file that should never have been backed up.

Each chosen snapshot whose trees hold an entry matching the exclude patterns gets a copy with
new trees, without those entries (and everything below them), under a new uid; everything else
is as it was (time, host, paths, tags, parent, summary, the writer's version). Trees are never
changed in place: the folders on the way to a removed entry are stored anew, every other
subtree keeps its id, and a subtree shared by several snapshots is filtered once. The copy goes
to the targets that hold the original (and so its data); the new trees go to every target in
use. The original stays unless ``forget`` is set: then it is deleted once its copy reached
every target that holds it. The data only the removed entries used is freed by ``prune``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from fogvault import __version__
from fogvault.backup.saver import BlobSaver, stored_blobs
from fogvault.errors import FogVaultError, UnsupportedFormat, UsageError
from fogvault.maintenance.selection import check_selection, chosen_snapshots
from fogvault.patterns import PathPatterns
from fogvault.repo.format import BlobType
from fogvault.repo.lock import NoLock
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid
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
    dry_run: bool = False

    def validate(self) -> None:
        if not (self.excludes or self.iexcludes):
            raise UsageError("nothing to take out: give --exclude or --iexclude")
        check_selection(self.uids, self.host, self.tags, self.paths)


@dataclass(slots=True)
class Rewritten:
    old_uid: str
    new_uid: str  # the uid it would get, in a dry run
    removed: list[str]  # the paths taken out (not those below them)
    kept_original: str | None = None  # why --forget left the original


@dataclass(slots=True)
class RewriteResult:
    rewritten: list[Rewritten] = field(default_factory=list)
    unchanged: int = 0  # chosen snapshots that hold nothing the patterns match
    dry_run: bool = False


def rewrite(repo: Repository, options: RewriteOptions) -> RewriteResult:
    """Take what ``options`` excludes out of the chosen snapshots (see the module doc)."""
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
            _refuse_newer(snapshot)
        changed: list[tuple[Snapshot, Snapshot, list[str]]] = []
        with stored_blobs(repo, dry_run=options.dry_run, before_index=lock.ensure_fresh) as saver:
            filtered = _TreeFilter(repo, saver, patterns)
            for snapshot in chosen:
                tree, removed = filtered.tree(snapshot.tree)
                if not removed:
                    result.unchanged += 1
                    continue
                copy = dataclasses.replace(snapshot, uid=new_uid(), tree=tree)
                changed.append((snapshot, copy, removed))
        locations = repo.snapshot_locations() if changed and not options.dry_run else {}
        for original, copy, removed in changed:
            entry = Rewritten(original.uid, copy.uid, removed)
            if not options.dry_run:
                entry.kept_original = _save(repo, original, copy, locations, options.forget,
                                            lock.ensure_fresh)
            result.rewritten.append(entry)
    return result


def _refuse_newer(snapshot: Snapshot) -> None:
    """A newer writer's trees may hold fields this version would drop in writing them again."""
    if _version(snapshot.program_version) > _version(__version__):
        raise UnsupportedFormat(f"snapshot {snapshot.uid} was written by FogVault "
                                f"{snapshot.program_version}, newer than this one "
                                f"({__version__}): rewrite it with that version")


def _version(text: str) -> tuple[int, ...]:
    """'0.1.0' as (0, 1, 0); an empty or unparsable version counts as the oldest."""
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()


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


class _TreeFilter:
    """Trees without the entries the patterns match, stored as they are made; a tree (at a
    given path) is filtered once for all the snapshots that share it."""

    def __init__(self, repo: Repository, saver: BlobSaver, patterns: PathPatterns) -> None:
        self.repo = repo
        self.saver = saver
        self.patterns = patterns
        self._done: dict[tuple[bytes, bytes], tuple[bytes, list[str]]] = {}

    def tree(self, root: bytes) -> tuple[bytes, list[str]]:
        """(the id of the filtered tree, the paths removed) for the snapshot tree ``root``.
        Iterative, so trees of any depth work: each frame is a tree being rebuilt."""
        frames = [_Frame(root, b"", self.repo.load_tree(root).nodes)]
        while True:
            frame = frames[-1]
            if frame.next < len(frame.nodes):
                node = frame.nodes[frame.next]
                frame.next += 1
                path = frame.prefix + b"/" + node.name
                if self.patterns.matches(path):
                    frame.removed.append(path.decode(errors="surrogateescape"))
                elif node.type == DIR and node.subtree is not None:
                    done = self._done.get((node.subtree, path))
                    if done is None:
                        frames.append(_Frame(node.subtree, path,
                                             self.repo.load_tree(node.subtree).nodes,
                                             parent_node=node))
                        continue
                    frame.kept.append(_with_subtree(node, done[0]))
                    frame.removed += done[1]
                else:
                    frame.kept.append(node)
                continue
            frames.pop()
            result = (self._store(frame), frame.removed)
            self._done[(frame.tree_id, frame.prefix)] = result
            if not frames:
                return result
            parent = frames[-1]
            assert frame.parent_node is not None
            parent.kept.append(_with_subtree(frame.parent_node, result[0]))
            parent.removed += frame.removed

    def _store(self, frame: _Frame) -> bytes:
        if not frame.removed:
            return frame.tree_id  # nothing below it changed: the same tree
        return self.saver.save(BlobType.TREE, Tree(frame.kept).encode())


@dataclass(slots=True)
class _Frame:
    tree_id: bytes
    prefix: bytes
    nodes: list[Node]
    parent_node: Node | None = None  # the folder's entry in the tree above
    next: int = 0
    kept: list[Node] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _with_subtree(node: Node, subtree: bytes) -> Node:
    return node if node.subtree == subtree else dataclasses.replace(node, subtree=subtree)
