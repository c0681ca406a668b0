"""``recover``: a new snapshot of the trees no snapshot uses (restic's ``recover``), for when
snapshot manifests were lost (deleted, or damaged on every target) while their data survived.

The trees of every snapshot are marked as ``check`` and ``prune`` mark them. Of the indexed
trees left over, the roots (those no other left-over tree names as a subtree) whose trees and
data are all indexed become the folders ``/recover/<tree id>`` of one new snapshot, tagged
``recovered``: ``ls``, ``restore`` and ``find`` then reach their data. The others are left out
and reported. A snapshot that was forgotten (or rewritten with ``--forget``) but not yet
pruned leaves such trees too, so ``recover`` brings it back as well (under its tree id).
Nothing is deleted; if no tree is left over, no snapshot is made.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from fogvault import __version__
from fogvault.backup.saver import stored_blobs
from fogvault.errors import FogVaultError
from fogvault.fsmeta import group_name, user_name
from fogvault.maintenance.mark import mark_used
from fogvault.maintenance.progress import PhaseProgress
from fogvault.repo.format import BlobType
from fogvault.repo.lock import NoLock
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid, now
from fogvault.repo.tree import DIR, Node, Tree

RECOVER_FOLDER = b"recover"
TREE_BATCH = 256  # left-over trees loaded together
FOLDER_MODE = 0o700  # what is recovered may be anyone's: readable by its restorer only


@dataclass(slots=True)
class RecoverResult:
    roots: list[bytes] = field(default_factory=list)  # the recovered trees, sorted
    unused_trees: int = 0
    unreadable: list[str] = field(default_factory=list)  # left-over trees that did not load
    #: root tree id (hex) -> the first problem, for roots left out because something they
    #: use is not in the index (a forgotten snapshot whose data a prune deleted) or unreadable
    incomplete: dict[str, str] = field(default_factory=dict)
    snapshot: Snapshot | None = None  # none if nothing was left over (or in a dry run)
    dry_run: bool = False


def recover(repo: Repository, *, host: str, dry_run: bool = False,
            progress: PhaseProgress | None = None) -> RecoverResult:
    result = RecoverResult(dry_run=dry_run)
    with repo.lock() if not dry_run else NoLock() as lock:
        repo.load_index()  # under the lock: a prune that ran since may have replaced it
        if not dry_run:
            repo.mark_behind_targets()  # the snapshot goes only where all its trees are
        used = mark_used(repo, repo.snapshots(), progress, every_snapshot=False).used
        unused = list(dict.fromkeys(  # a tree stored twice (a killed run's pack) counts once
            entry.blob_id for entry in repo.index if entry.blob_type == BlobType.TREE
            and not used[repo.index.position(entry.blob_id)]))
        result.unused_trees = len(unused)
        roots = sorted(set(unused) - _subtrees(repo, unused, result.unreadable))
        result.incomplete = _incomplete(repo, roots)
        result.roots = [root for root in roots if root.hex() not in result.incomplete]
        if not result.roots or dry_run:
            return result
        with stored_blobs(repo, before_index=lock.ensure_fresh) as saver:
            folders = Tree([_folder(root.hex().encode(), root) for root in result.roots])
            top = saver.save(BlobType.TREE, folders.encode())
            root = saver.save(BlobType.TREE, Tree([_folder(RECOVER_FOLDER, top)]).encode())
        result.snapshot = Snapshot(
            uid=new_uid(), time=now(), host=host, user=user_name(os.getuid()),
            paths=["/" + RECOVER_FOLDER.decode()], tree=root, tags=["recovered"],
            program_version=__version__)
        lock.ensure_fresh()
        repo.save_snapshot(result.snapshot)
    return result


def _incomplete(repo: Repository, roots: list[bytes]) -> dict[str, str]:
    """The roots whose trees or data are not all indexed and readable, each with its first
    problem: marked as ``check`` marks a snapshot's, each root standing in for one. A prune
    keeps a partly used pack whole, so the trees of a snapshot forgotten before it may outlive
    the data they name; recovered, they would fail ``check`` and stop every ``prune``."""
    stand_ins = [Snapshot(uid=root.hex(), time=now(), host="", user="", paths=[], tree=root)
                 for root in roots]
    return mark_used(repo, stand_ins).incomplete


def _subtrees(repo: Repository, tree_ids: list[bytes], unreadable: list[str]) -> set[bytes]:
    """The subtrees that the trees ``tree_ids`` name; a tree that does not load is noted."""
    named: set[bytes] = set()
    for start in range(0, len(tree_ids), TREE_BATCH):
        for tree_id, tree in repo.load_trees(tree_ids[start:start + TREE_BATCH]):
            if isinstance(tree, FogVaultError):
                unreadable.append(f"tree {tree_id.hex()}: {tree}")
                continue
            named.update(node.subtree for node in tree.nodes
                         if node.type == DIR and node.subtree is not None)
    return named


def _folder(name: bytes, subtree: bytes) -> Node:
    return Node(name=name, type=DIR, mode=FOLDER_MODE, uid=os.getuid(), gid=os.getgid(),
                user=user_name(os.getuid()), group=group_name(os.getgid()),
                mtime_ns=time.time_ns(), subtree=subtree)
