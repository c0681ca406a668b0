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


@dataclass(slots=True)
class MarkResult:
    used: bytearray
    problems: list[str] = field(default_factory=list)
    trees: int = 0


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
            tree_id, path = stack.pop()
            position = index.position(tree_id)
            if position < 0:
                result.problems.append(f"snapshot {snapshot.uid}: tree {tree_id.hex()} of "
                                       f"{path} is not in the index")
                continue
            if result.used[position]:
                continue  # seen in this or an earlier snapshot
            result.used[position] = 1
            result.trees += 1
            try:
                tree = repo.load_tree(tree_id)
            except FogVaultError as exc:
                result.problems.append(f"snapshot {snapshot.uid}: tree of {path}: {exc}")
                continue
            for node in tree.nodes:
                child = f"{path.rstrip('/')}/{node.name.decode(errors='replace')}"
                if node.type == DIR and node.subtree is not None:
                    stack.append((node.subtree, child))
                elif node.type == FILE:
                    _mark_content(result, index, node.content, snapshot.uid, child)
        progress.advance()
    return result


def _mark_content(result: MarkResult, index, content: list[bytes], uid: str, path: str) -> None:
    for blob_id in content:
        position = index.position(blob_id)
        if position < 0:
            result.problems.append(
                f"snapshot {uid}: {path}: data blob {blob_id.hex()} is not in the index")
        else:
            result.used[position] = 1
