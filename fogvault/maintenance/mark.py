"""Mark: which indexed blobs the snapshots use. Shared by ``check`` and ``prune``.

The result is one byte per index record (``BlobIndex.position``), not a set of ids, so memory
grows by one byte per blob. Every tree is visited once however many snapshots share it; a
missing or unreadable tree or blob is reported, never skipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fogvault.errors import FogVaultError
from fogvault.maintenance.progress import PhaseProgress
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import DIR, FILE

TREE_BATCH = 256  # pending trees loaded together


@dataclass(slots=True)
class MarkResult:
    used: bytearray
    problems: list[str] = field(default_factory=list)
    trees: int = 0
    #: uid -> its first problem, for each snapshot with one. A tree or blob that several
    #: snapshots use is visited once: its problem belongs to the first of them (in the order
    #: given) only.
    incomplete: dict[str, str] = field(default_factory=dict)

    def add_problem(self, uid: str, problem: str) -> None:
        self.problems.append(problem)
        self.incomplete.setdefault(uid, problem)


def mark_used(
    repo: Repository, snapshots: list[Snapshot], progress: PhaseProgress | None = None
) -> MarkResult:
    progress = progress or PhaseProgress()
    index = repo.index
    result = MarkResult(bytearray(len(index)))
    progress.phase("mark used blobs", len(snapshots))
    for snapshot in snapshots:
        stack = [(snapshot.tree, "/")]
        while stack:
            # A batch of pending trees at a time: load_trees reads each pack's share at once.
            paths: dict[bytes, str] = {}
            for tree_id, path in stack[-TREE_BATCH:]:
                position = index.position(tree_id)
                if position < 0:
                    result.add_problem(snapshot.uid, f"snapshot {snapshot.uid}: tree "
                                       f"{tree_id.hex()} of {path} is not in the index")
                elif not result.used[position]:  # else seen in this or an earlier snapshot
                    result.used[position] = 1
                    result.trees += 1
                    paths[tree_id] = path
            del stack[-TREE_BATCH:]
            for tree_id, tree in repo.load_trees(paths):
                path = paths[tree_id]
                if isinstance(tree, FogVaultError):
                    result.add_problem(snapshot.uid,
                                       f"snapshot {snapshot.uid}: tree of {path}: {tree}")
                    continue
                for node in tree.nodes:
                    if node.type == DIR and node.subtree is not None:
                        stack.append((node.subtree, _child(path, node.name)))
                    elif node.type == FILE:
                        _mark_content(result, index, node.content, snapshot.uid, path, node.name)
        progress.advance()
    return result


def _child(path: str, name: bytes) -> str:
    return f"{path.rstrip('/')}/{name.decode(errors='replace')}"


def _mark_content(result: MarkResult, index, content: list[bytes], uid: str, folder: str,
                  name: bytes) -> None:
    for blob_id in content:
        position = index.position(blob_id)
        if position < 0:
            result.add_problem(uid, f"snapshot {uid}: {_child(folder, name)}: data blob "
                                    f"{blob_id.hex()} is not in the index")
        else:
            result.used[position] = 1
