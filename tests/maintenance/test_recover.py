"""``recover``: the trees of lost snapshots come back as one new snapshot of /recover."""

from __future__ import annotations

import os

from crafted import TREE, store

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance.recover import recover
from fogvault.treewalk import walk


def _lose_snapshots(repo) -> None:
    for url in repo.targets.urls:
        for name in os.listdir(os.path.join(url, "snapshots")):
            os.unlink(os.path.join(url, "snapshots", name))


def _two_backups(repo, src) -> list:
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f").write_bytes(os.urandom(200_000))
    (src / "top").write_bytes(b"top")
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    (src / "new").write_bytes(b"new")
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    return [first, second]


def test_the_root_trees_of_lost_snapshots_become_folders_of_one_snapshot(make_repo, reopen,
                                                                        tmp_path):
    repo = make_repo()
    lost = _two_backups(repo, tmp_path / "src")
    _lose_snapshots(repo)
    repo = reopen(repo)

    result = recover(repo, host="rescuer")

    assert result.roots == sorted(s.tree for s in lost)
    [saved] = reopen(repo).snapshots()
    assert (saved.uid, saved.paths, saved.tags, saved.host) == (
        result.snapshot.uid, ["/recover"], ["recovered"], "rescuer")
    entries = dict(walk(repo, saved.tree))
    for snapshot in lost:  # each lost snapshot's whole tree, below its root's id
        below = f"/recover/{snapshot.tree.hex()}".encode()
        assert entries[below].subtree == snapshot.tree
        assert {p[len(below):] for p in entries if p.startswith(below + b"/")} == {
            p for p, _ in walk(repo, snapshot.tree)}


def test_nothing_left_over_makes_no_snapshot_and_a_dry_run_saves_none(make_repo, reopen,
                                                                      tmp_path):
    repo = make_repo()
    kept = _two_backups(repo, tmp_path / "src")
    result = recover(repo, host="h")
    assert (result.roots, result.snapshot) == ([], None)
    _lose_snapshots(repo)
    repo = reopen(repo)
    dry = recover(repo, host="h", dry_run=True)
    assert dry.roots == sorted(s.tree for s in kept) and dry.snapshot is None
    assert reopen(repo).snapshots() == []
    recover(repo, host="h")
    again = recover(reopen(repo), host="h")  # the recovered snapshot uses them now
    assert (again.roots, again.snapshot) == ([], None)


def test_a_left_over_tree_that_does_not_load_is_named_and_fails_the_command(
        make_repo, fogvault, tmp_path):
    repo = make_repo()
    Archiver(repo, BackupOptions()).run([str(tmp_path)])
    broken = store(repo, TREE, b"not a tree")
    done = fogvault("recover", "-r", repo.targets.urls[0])
    assert done.returncode == 3, done.stderr
    assert f"unreadable: tree {broken.hex()}:" in done.stdout.decode()
    assert done.stderr.decode().splitlines() == [
        "warning: 1 root left out: data or trees they use are gone (most likely pruned) or "
        "unreadable; 1 unused tree could not be read: the folders below them may show as "
        "roots of their own"]


def test_the_recovered_snapshot_restores_the_lost_files(make_repo, fogvault, tmp_path):
    repo = make_repo()
    lost = _two_backups(repo, tmp_path / "src")
    _lose_snapshots(repo)
    url = repo.targets.urls[0]
    done = fogvault("recover", "-r", url)
    assert done.returncode == 0, done.stderr
    assert "2 roots" in done.stdout.decode() + done.stderr.decode()
    assert fogvault("restore", "-r", url, "latest", "-t", "out").returncode == 0
    restored = tmp_path / "out" / "recover" / lost[1].tree.hex() / str(tmp_path).lstrip("/")
    for name in ("a/b/f", "top", "new"):
        assert (restored / "src" / name).read_bytes() == (tmp_path / "src" / name).read_bytes()


def test_a_forgotten_snapshot_whose_data_was_pruned_is_left_out(make_repo, reopen, tmp_path):
    """prune keeps a partly used pack whole: a forgotten snapshot's trees may outlive its data.
    Recovered, such a root would fail check and stop every prune."""
    from fogvault.maintenance.forget import forget
    from fogvault.maintenance.prune import PruneOptions, prune

    repo = make_repo()
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "k").write_bytes(b"kept")
    # Several packs of 256 KiB, so that some hold nothing "keep" uses and the prune frees them
    # (with 300 KB, about one run in five kept every pack of it, and the root was complete)
    (src / "gone").write_bytes(os.urandom(1_500_000))
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    (src / "gone").unlink()
    kept = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    forget(repo, uids=[first.uid])
    prune(repo, PruneOptions(max_unused=1.0))  # keeps the tree pack, which kept uses
    repo = reopen(repo)

    result = recover(repo, host="h")

    assert result.roots == [] and result.snapshot is None
    assert list(result.incomplete) == [first.tree.hex()]
    assert "is not in the index" in result.incomplete[first.tree.hex()]
    assert [s.uid for s in reopen(repo).snapshots()] == [kept.uid]
