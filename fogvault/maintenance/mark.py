"""Mark: which indexed blobs the snapshots use. Shared by ``check``, ``prune`` and ``recover``.

The result is one byte per index record (``BlobIndex.position``), not a set of ids, so memory
grows by one byte per blob, plus (``every_snapshot``) 16 bytes for each folder a loaded tree
names (the edges from tree to subtree). Every tree is visited once however many snapshots share
it; a missing or unreadable tree or blob is reported, never skipped silently, as one
:class:`BrokenObject` that names the first snapshot using it, and with ``every_snapshot``
*every* snapshot using it: once the walk is done, the edges lead up from each broken object to
the snapshots whose trees reach it (a shared folder's tree is loaded under the first snapshot
only, so the walk alone names that one). ``prune``, which stops at the first problem, and
``recover``'s count of used blobs keep no edges.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from fogvault.errors import FogVaultError
from fogvault.maintenance.progress import PhaseProgress
from fogvault.repo.index import BlobIndex
from fogvault.repo.repository import Repository, is_damage
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import DIR, FILE

TREE_BATCH = 256  # pending trees loaded together


@dataclass(slots=True)
class BrokenObject:
    """A tree or data blob the snapshots use that is not in the index, or a tree that did not
    load."""

    kind: str  # "tree" or "data"
    id: str  # hex
    what: str  # what is wrong, where the first snapshot using it has it
    #: uids of all using it (or, without ``every_snapshot``, of the first), in marking order
    snapshots: list[str] = field(default_factory=list)
    #: it could not be read (permission denied, a target not answering): not damage (is_damage)
    unreadable: bool = False


@dataclass(slots=True)
class MarkResult:
    used: bytearray
    trees: int = 0
    broken: list[BrokenObject] = field(default_factory=list)  # in the order found

    @property
    def problems(self) -> list[str]:
        """One line per broken object, naming the first snapshot that uses it."""
        return [f"snapshot {b.snapshots[0]}: {b.what}" for b in self.broken]

    def unindexed(self, index: BlobIndex) -> list[BrokenObject]:
        """The broken objects ``index`` lacks: what a prune elsewhere drops. Not those it lists
        (whose every copy is lost: damage) nor those that could not be read (not damage)."""
        return [b for b in self.broken
                if not b.unreadable and bytes.fromhex(b.id) not in index]

    @property
    def incomplete(self) -> dict[str, str]:
        """uid -> its first problem, for each snapshot that uses a broken object."""
        first: dict[str, str] = {}
        for broken in self.broken:
            for uid in broken.snapshots:
                first.setdefault(uid, f"snapshot {uid}: {broken.what}")
        return first


def mark_used(
    repo: Repository, snapshots: list[Snapshot], progress: PhaseProgress | None = None, *,
    every_snapshot: bool = True,
) -> MarkResult:
    """Mark what ``snapshots`` use; with ``every_snapshot``, name every snapshot using each
    broken object, else only the first (no edges kept: see the module doc)."""
    progress = progress or PhaseProgress()
    walk = _Walk(repo.index, keep_edges=every_snapshot)
    progress.phase("mark used blobs", len(snapshots))
    for snapshot in snapshots:
        walk.snapshot(repo, snapshot)
        progress.advance()
    if every_snapshot:
        walk.name_snapshots(snapshots)
    return walk.result


class _Walk:
    """The marking walk, and what it needs to name every snapshot using a broken object: the
    edges from each loaded tree to its subtrees, and where each broken object hangs."""

    def __init__(self, index: BlobIndex, keep_edges: bool) -> None:
        self.index = index
        self.result = MarkResult(bytearray(len(index)))
        self._keep_edges = keep_edges
        self._uid = ""  # of the snapshot being walked
        self._subtrees = array("q")  # edge i: tree _parents[i] names tree _subtrees[i]
        self._parents = array("q")
        self._found: dict[bytes, int] = {}  # id -> its number in result.broken
        #: tree position -> numbers of the broken objects it is, or names
        self._below: dict[int, set[int]] = {}

    def snapshot(self, repo: Repository, snapshot: Snapshot) -> None:
        self._uid = snapshot.uid
        root = self.index.position(snapshot.tree)
        if root < 0:
            self._broken("tree", snapshot.tree, f"tree {snapshot.tree.hex()} of / is not in "
                          "the index", None)
            return
        stack = [(root, snapshot.tree, "/")]  # (index position, id, path) of trees to visit
        while stack:
            # A batch of pending trees at a time: load_trees reads each pack's share at once.
            pending: dict[bytes, tuple[int, str]] = {}
            for position, tree_id, path in stack[-TREE_BATCH:]:
                if not self.result.used[position]:  # else seen in this or an earlier snapshot
                    self.result.used[position] = 1
                    self.result.trees += 1
                    pending[tree_id] = position, path
            del stack[-TREE_BATCH:]
            for tree_id, tree in repo.load_trees(pending):
                position, path = pending[tree_id]
                if isinstance(tree, FogVaultError):
                    self._broken("tree", tree_id, f"tree of {path}: {tree}", position,
                                 unreadable=not is_damage(tree))
                    continue
                for node in tree.nodes:
                    if node.type == DIR and node.subtree is not None:
                        child = _child(path, node.name)
                        subtree = self._subtree(node.subtree, child, position)
                        if subtree >= 0:
                            stack.append((subtree, node.subtree, child))
                    elif node.type == FILE:
                        self._mark_content(node.content, position, path, node.name)

    def _subtree(self, tree_id: bytes, path: str, parent: int) -> int:
        """Note that the tree at ``parent`` names the tree ``tree_id`` (at ``path``); its index
        position, or -1 if the index lacks it."""
        position = self.index.position(tree_id)
        if position < 0:
            self._broken("tree", tree_id, f"tree {tree_id.hex()} of {path} is not in the "
                         "index", parent)
        elif self._keep_edges:
            self._subtrees.append(position)
            self._parents.append(parent)
        return position

    def _mark_content(self, content: list[bytes], parent: int, folder: str, name: bytes
                      ) -> None:
        for blob_id in content:
            position = self.index.position(blob_id)
            if position < 0:
                self._broken("data", blob_id, f"{_child(folder, name)}: data blob "
                             f"{blob_id.hex()} is not in the index", parent)
            else:
                self.result.used[position] = 1

    def _broken(self, kind: str, blob_id: bytes, what: str, where: int | None, *,
                unreadable: bool = False) -> None:
        """Note the broken object ``blob_id``, named by (or, if it did not load, being) the tree
        at position ``where``; None: a snapshot's root, not in the index."""
        number = self._found.get(blob_id)
        if number is None:
            number = self._found[blob_id] = len(self.result.broken)
            self.result.broken.append(BrokenObject(kind, blob_id.hex(), what, [self._uid],
                                                   unreadable=unreadable))
        if where is not None and self._keep_edges:
            self._below.setdefault(where, set()).add(number)

    def name_snapshots(self, snapshots: list[Snapshot]) -> None:
        """Give each broken object every snapshot that uses it: the trees above it, edge by
        edge, up to the snapshots' roots. An edge may lead to a tree found to be above one
        only later in the pass, so passes repeat until one changes nothing."""
        if not self.result.broken:
            return
        for broken in self.result.broken:
            broken.snapshots.clear()  # the first one's, named again below with the others
        below, changed = self._below, True
        while changed:
            changed = False
            for subtree, parent in zip(self._subtrees, self._parents, strict=True):
                found = below.get(subtree)
                if found and not found <= below.setdefault(parent, set()):
                    below[parent] |= found
                    changed = True
        for snapshot in snapshots:
            root = self.index.position(snapshot.tree)
            numbers = below.get(root, set()) if root >= 0 else {self._found[snapshot.tree]}
            for number in sorted(numbers):
                self.result.broken[number].snapshots.append(snapshot.uid)


def _child(path: str, name: bytes) -> str:
    return f"{path.rstrip('/')}/{name.decode(errors='replace')}"
