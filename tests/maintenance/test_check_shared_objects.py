"""check names every snapshot that uses a broken tree or data blob, not only the first: a
folder unchanged between backups is one tree that every later snapshot shares, and it is
loaded (and found broken) under the first of them only."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import FogVaultError
from fogvault.maintenance import mark
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.index_rewrite import rewrite_index
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.repo.format import pack_name
from fogvault.repo.tree import DIR, FILE

LATER = 5  # snapshots that share the folder with the first


@pytest.fixture
def shared_folder(make_repo, tmp_path):
    """Targets a and b; a first snapshot of src/shared alone (its tree and data in packs of
    their own), then LATER snapshots of src, each with another src/x. Returns (repo,
    snapshots, the path of src/shared in a snapshot)."""
    repo = make_repo("a", "b", pack_size=128 * 1024)
    shared = tmp_path / "src" / "shared"
    shared.mkdir(parents=True)
    (shared / "f").write_bytes(random.Random(0).randbytes(20_000))
    Archiver(repo, BackupOptions()).run([str(shared)])
    for i in range(LATER):
        (tmp_path / "src" / "x").write_bytes(random.Random(i + 1).randbytes(1000))
        Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    return repo, repo.snapshots(), str(shared)


def _node(repo, tree_id: bytes, path: str):
    """The node at ``path`` in the tree ``tree_id``."""
    *folders, leaf = path.strip("/").split("/")
    for name in folders:
        [tree_id] = [n.subtree for n in repo.load_tree(tree_id).nodes
                     if n.type == DIR and n.name == name.encode()]
    [node] = [n for n in repo.load_tree(tree_id).nodes if n.name == leaf.encode()]
    return node


def _delete_everywhere(repo, pack_id: bytes) -> None:
    for url in repo.targets.urls:
        (Path(url) / pack_name(pack_id)).unlink()


def test_a_lost_tree_names_every_snapshot_that_uses_it(shared_folder, fogvault):
    repo, snapshots, path = shared_folder
    first, *later = [s.uid for s in snapshots]
    shared = _node(repo, snapshots[-1].tree, path).subtree
    _delete_everywhere(repo, repo.index.get(shared).pack_id)  # the first snapshot's trees

    result = check(repo, CheckOptions())
    assert any(later[1] in problem for problem in result.problems)  # the old check: later[0]
    root, tree = result.broken_objects  # the first snapshot lost its root with that pack
    assert (root.what.startswith("tree of /: "), root.snapshots) == (True, [first])
    assert (tree.kind, tree.id, tree.unreadable) == ("tree", shared.hex(), False)
    assert tree.what.startswith(f"tree of {path}: ")
    assert tree.snapshots == later  # each, in order
    assert f"{LATER} snapshots ({', '.join(later[:3])} and {LATER - 3} more): {tree.what}" in (
        result.problems)

    done = fogvault(*(a for url in repo.targets.urls for a in ("-r", url)), "--json", "check")
    assert done.returncode == 1
    summary = json.loads(done.stdout.splitlines()[-1])
    assert [b["snapshots"] for b in summary["broken_objects"]] == [[first], later]
    # the lost trees are still indexed: repair (from the cache) or repair --index come first
    assert summary["data_missing"] and summary["missing_data_indexed"]
    text = fogvault(*(a for url in repo.targets.urls for a in ("-r", url)), "check")
    assert ("use data no target holds intact: 'fogvault repair' copies back what a target or "
            "the local cache still holds") in text.stdout.decode()


def test_data_the_index_lost_names_every_snapshot_that_uses_it(shared_folder):
    """The folder's file, its pack taken out of the index: each of its chunks is one broken
    object, used by every snapshot (the first too, whose trees are intact here)."""
    repo, snapshots, path = shared_folder
    file = _node(repo, snapshots[-1].tree, f"{path}/f")
    assert file.type == FILE
    content = file.content
    with repo.lock(exclusive=True):
        rewrite_index(repo, {repo.index.get(blob).pack_id for blob in content}, PhaseProgress())

    result = check(repo, CheckOptions())
    assert any(snapshots[1].uid in problem for problem in result.problems)
    assert [b.id for b in result.broken_objects] == list(dict.fromkeys(b.hex() for b in content))
    every = [s.uid for s in snapshots]
    assert all(b.kind == "data" and b.snapshots == every for b in result.broken_objects)
    assert result.data_missing and all(p.startswith(f"{len(every)} snapshots (")
                                       for p in result.problems)


def test_a_mark_for_the_first_problem_alone_names_the_first_snapshot_and_keeps_no_edges(
        shared_folder):
    """prune stops at the first problem, so its mark keeps no tree edges (16 bytes a folder):
    each broken object names the first snapshot using it, the one the full mark names first;
    prune's refusal names it."""
    repo, snapshots, path = shared_folder
    shared = _node(repo, snapshots[-1].tree, path).subtree
    _delete_everywhere(repo, repo.index.get(shared).pack_id)
    with repo.trees_from_targets():  # not the cache's copies
        full = mark.mark_used(repo, snapshots)
        first_only = mark.mark_used(repo, snapshots, every_snapshot=False)
    assert [b.snapshots for b in first_only.broken] == [b.snapshots[:1] for b in full.broken]
    assert [len(b.snapshots) for b in full.broken] == [1, LATER]
    assert first_only.problems == full.problems
    repo.cache = None
    with pytest.raises(FogVaultError, match=f"prune stopped before deleting anything: "
                       f"snapshot {full.broken[0].snapshots[0]}: "):
        prune(repo, PruneOptions())
