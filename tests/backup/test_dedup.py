"""Deduplication and incremental backups, measured by what is stored and what is read."""

from __future__ import annotations

import os
import random
from pathlib import Path

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.backup.excludes import ExcludeRules
from fogvault.treewalk import walk


def _repo_bytes(repo) -> int:
    return sum(f.stat().st_size for f in Path(repo.targets.urls[0]).rglob("*") if f.is_file())


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_same_data_in_two_files_two_paths_two_snapshots_is_stored_once(make_repo, tmp_path):
    repo = make_repo()
    data = _random(2_000_000, 1)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one").write_bytes(data)
    first = Archiver(repo, BackupOptions()).run([str(a)])
    size_after_one = _repo_bytes(repo)
    assert size_after_one > len(data)  # random data does not compress
    (a / "copy").write_bytes(data)
    (b / "other-path").write_bytes(data)
    second = Archiver(repo, BackupOptions()).run([str(a), str(b)])
    third = Archiver(repo, BackupOptions()).run([str(b)])
    assert second.snapshot.summary.data_blobs_added == 0
    assert third.snapshot.summary.data_blobs_added == 0
    # Only tree blobs, index files and manifests were added: a few KiB, not another copy.
    assert _repo_bytes(repo) - size_after_one < 64 * 1024
    assert first.snapshot.summary.bytes_read == len(data)


def test_one_byte_insertion_adds_about_one_chunk(make_repo, tmp_path):
    repo = make_repo()  # 64 KiB average chunks (conftest)
    src = tmp_path / "src"
    src.mkdir()
    data = _random(4_000_000, 2)
    (src / "big").write_bytes(data)
    first = Archiver(repo, BackupOptions()).run([str(src)])
    chunks = first.snapshot.summary.data_blobs_added
    assert chunks > 30
    (src / "big").write_bytes(data[:2_000_000] + b"!" + data[2_000_000:])
    second = Archiver(repo, BackupOptions()).run([str(src)])
    assert second.snapshot.summary.files_changed == 1
    assert 1 <= second.snapshot.summary.data_blobs_added <= 3
    assert second.snapshot.summary.bytes_added < 4 * 256 * 1024


def test_unchanged_tree_is_not_read_again_and_costs_nothing(make_repo, tmp_path,
                                                            trust_recent_entries):
    repo = make_repo()
    src = tmp_path / "src"
    for i in range(30):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}").write_bytes(_random(5000 + i, i))
    first = Archiver(repo, BackupOptions()).run([str(src)])
    second = Archiver(repo, BackupOptions()).run([str(src)])
    s = second.snapshot.summary
    assert (s.bytes_read, s.files_unchanged, s.files_new, s.files_changed) == (0, 30, 0, 0)
    assert s.data_blobs_added == 0 and s.tree_blobs_added == 0
    assert second.snapshot.tree == first.snapshot.tree
    assert second.snapshot.parent == first.snapshot.uid
    # Touching one file re-reads exactly that file.
    os.utime(src / "d1" / "f4", ns=(1, 1))
    third = Archiver(repo, BackupOptions()).run([str(src)])
    assert third.snapshot.summary.bytes_read == 5004
    assert third.snapshot.summary.files_changed == 1


def test_force_reads_everything(make_repo, tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 1000)
    Archiver(repo, BackupOptions()).run([str(src)])
    again = Archiver(repo, BackupOptions(force=True)).run([str(src)])
    assert again.snapshot.summary.bytes_read == 1000


def test_excludes_caches_and_markers(make_repo, tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    for rel in ["keep.txt", "skip.tmp", "sub/skip.tmp", "sub/keep", "cache/x", "marked/y",
                "deep/cache2/z"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / "cache" / "CACHEDIR.TAG").write_bytes(
        b"Signature: 8a477f597d28d172789f06886806bc55\n")
    (src / "marked" / ".nobackup").write_text("")
    rules = ExcludeRules(["*.tmp", "deep/cache2"], exclude_caches=True,
                         if_present=[".nobackup"])
    result = Archiver(repo, BackupOptions(excludes=rules)).run([str(src)])
    names = {p.decode().split("/src/", 1)[1] for p, _ in walk(repo, result.snapshot.tree)
             if b"/src/" in p}
    assert names == {"keep.txt", "sub", "sub/keep", "cache", "marked", "deep"}


def test_a_file_whose_bytes_are_a_tree_encoding_does_not_break_trees(make_repo, tmp_path):
    """Data and tree blobs share one id space: a file holding exactly an empty folder's tree
    encoding is stored once; later snapshots with empty folders must still read."""
    from fogvault.repo.tree import Tree
    from fogvault.restore.restorer import RestoreOptions, Restorer

    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "tricky.json").write_bytes(Tree([]).encode())
    Archiver(repo, BackupOptions()).run([str(src)])
    (src / "empty").mkdir()
    snapshot = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    Restorer(repo, snapshot, RestoreOptions(target=str(tmp_path / "out"))).run()
    assert (tmp_path / "out" / str(src).lstrip("/") / "empty").is_dir()


def test_the_dedup_ratio_is_restore_size_over_the_distinct_file_data(make_repo, tmp_path):
    """Folder listings are stored but not restored: counted, they made a snapshot of distinct
    files 0.99x."""
    from fogvault.treewalk import stats

    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "one").write_bytes(_random(300_000, 5))
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    assert stats(repo, [first.tree]).dedup_ratio == 1.0
    (src / "copy").write_bytes((src / "one").read_bytes())
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    assert stats(repo, [second.tree]).dedup_ratio == 2.0


def test_stats_count_each_stored_blob_once_across_files_and_snapshots(make_repo, tmp_path):
    from fogvault.repo.tree import DIR, FILE
    from fogvault.treewalk import stats

    repo = make_repo()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shared = _random(700_000, 2)
    (src / "one").write_bytes(shared)
    (src / "sub" / "two").write_bytes(shared + _random(300_000, 3))
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    (src / "three").write_bytes(_random(400_000, 4))
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot

    occurrences: list[bytes] = []
    restore_size = 0
    for snap in (first, second):
        occurrences.append(snap.tree)
        for _, node in walk(repo, snap.tree):
            if node.type == DIR:
                occurrences.append(node.subtree)
            elif node.type == FILE:
                restore_size += node.size
                occurrences += node.content
    ids = set(occurrences)
    entries = [repo.index.get(blob_id) for blob_id in ids]
    result = stats(repo, [first.tree, second.tree])
    assert result.unique_blobs == len(ids) < len(occurrences) - 15  # shared across both
    assert result.raw_size == sum(e.raw_length for e in entries)
    assert result.stored_size == sum(e.length for e in entries)
    assert result.restore_size == restore_size == 2 * 1_700_000 + 400_000


def test_a_hardlinked_file_counts_once_a_snapshot_in_the_restore_size(make_repo, tmp_path):
    """A restore writes its contents once and links the other names, as restic's stats
    count it: each name counted, which stats did, claimed three times the bytes."""
    from fogvault.treewalk import stats

    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "orig").write_bytes(_random(950, 6))
    for name in ("link1", "link2"):
        os.link(src / "orig", src / name)
    (src / "alone").write_bytes(b"x" * 10)
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    one = stats(repo, [first.tree])
    assert (one.files, one.restore_size) == (4, 950 + 10)
    assert stats(repo, [first.tree, second.tree]).restore_size == 2 * (950 + 10)
