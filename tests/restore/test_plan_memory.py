"""What a restore keeps while it plans, and a backup while it walks: folder metadata is set as
the restore goes, once a folder's contents are written, not kept for every folder to the end
(about 1 KiB a folder); a hardlinked file is forgotten at its last link. The result is always
the same tree."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.repo.repository import Repository
from fogvault.restore import restorer
from fogvault.restore.restorer import RestoreOptions
from tests.restore.test_roundtrip import assert_same_tree, backup, restore, restored_root

FOLDERS = 40


def _tree(root: Path, files_per_folder: int) -> list[Path]:
    """Nested and side-by-side folders with distinct old mtimes; returns them deepest last."""
    folders = []
    for i in range(FOLDERS):
        parent = folders[i // 3] if i >= 3 else root
        folder = parent / f"d{i:02}"
        folder.mkdir(parents=True)
        for j in range(files_per_folder):
            (folder / f"f{j}").write_bytes(os.urandom(3000 + i * 100 + j))
        folders.append(folder)
    for i, folder in enumerate(reversed(folders)):  # contents first: their mtimes stay
        os.chmod(folder, 0o750 if i % 2 else 0o755)
        os.utime(folder, ns=(1_000_000_000 * (i + 1), 1_000_000_000 * (i + 7)))
    return folders


def _settled(folders: list[Path], source: Path, target: Path) -> int:
    """How many of ``folders`` already have their source mtime in the restore."""
    count = 0
    for folder in folders:
        restored = Path(os.fsdecode(restored_root(target, os.fsencode(source)))) / (
            folder.relative_to(source))
        if restored.exists() and restored.stat().st_mtime_ns == folder.stat().st_mtime_ns:
            count += 1
    return count


@pytest.mark.parametrize("processes", [False, True])
def test_folders_get_their_metadata_as_the_restore_goes(
        make_repo: Callable[..., Repository], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        processes: bool) -> None:
    monkeypatch.setattr(restorer, "PLAN_BATCH_FILES", 4)
    monkeypatch.setattr(restorer, "PROCESS_MIN_FILES", 1)
    source = tmp_path / "src"
    folders = _tree(source, 2)
    repo = make_repo()
    result = backup(repo, source)
    target = tmp_path / "out"
    settled_before_batch: list[int] = []
    real = restorer.Restorer._write_contents

    def counted(self: restorer.Restorer, root: Any) -> None:
        settled_before_batch.append(_settled(folders, source, target))
        real(self, root)

    monkeypatch.setattr(restorer.Restorer, "_write_contents", counted)
    summary = restore(repo, result, target, processes=processes)
    assert summary.warnings == []
    assert len(settled_before_batch) >= FOLDERS * 2 // 4
    # Before the last batch is written, the folders whose files were in earlier batches are
    # done: more than half of them (with the workers, those whose tasks have been reported).
    assert settled_before_batch[-1] > FOLDERS // 2
    assert_same_tree(os.fsencode(source), restored_root(target, os.fsencode(source)))


@pytest.mark.parametrize(("files_per_folder", "processes"), [(0, False), (1, False), (1, True)])
def test_folders_wait_in_a_bounded_queue(make_repo: Callable[..., Repository], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, files_per_folder: int,
                                         processes: bool) -> None:
    """Folders waiting for their metadata end a batch (with no files, only they do); with
    worker processes the restore waits for the workers' reports while too many wait."""
    monkeypatch.setattr(restorer, "PLAN_BATCH_FILES", 10)
    source = tmp_path / "src"
    _tree(source, files_per_folder)
    repo = make_repo()
    result = backup(repo, source)
    waiting: list[int] = []  # before settling, and after
    real = restorer.Restorer._settle_folders

    def settle(self: restorer.Restorer, root: Any, *, finished: bool = False) -> None:
        before = len(self._folders)
        real(self, root, finished=finished)
        waiting.append((before, len(self._folders)))

    monkeypatch.setattr(restorer.Restorer, "_settle_folders", settle)
    target = tmp_path / "out"
    assert restore(repo, result, target, processes=processes).warnings == []
    assert max(before for before, _ in waiting) <= 10
    assert max(after for _, after in waiting) < 10
    assert_same_tree(os.fsencode(source), restored_root(target, os.fsencode(source)))


def test_workers_are_started_once_enough_files_are_planned(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches cut short by their chunks (or folders) do not decide that a restore of many
    files is written without workers."""
    monkeypatch.setattr(restorer, "PLAN_BATCH_BLOBS", 3)
    monkeypatch.setattr(restorer, "PROCESS_MIN_FILES", 8)
    source = tmp_path / "src"
    _tree(source, 1)
    repo = make_repo()
    result = backup(repo, source)
    batches: list[tuple[int, bool]] = []  # (chunks, written by workers)
    real = restorer.Restorer._write_contents

    def counted(self: restorer.Restorer, root: Any) -> None:
        real(self, root)
        batches.append((sum(len(j.node.content) for j in self._files),
                        self._processes is not None))

    monkeypatch.setattr(restorer.Restorer, "_write_contents", counted)
    target = tmp_path / "out"
    assert restore(repo, result, target).warnings == []
    assert max(chunks for chunks, _ in batches) == 3
    by_workers = [workers for _, workers in batches]
    first = by_workers.index(True)  # once 8 files are planned, in batches of at most 3
    assert first in (2, 3) and all(by_workers[first:]) and len(batches) > first + 2
    assert_same_tree(os.fsencode(source), restored_root(target, os.fsencode(source)))


def test_a_large_file_that_cannot_be_created_is_not_read(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Written a segment at a time: after its first segment fails, nothing more is fetched."""
    monkeypatch.setattr(restorer, "SEGMENT_BLOBS", 2)
    source = tmp_path / "src"
    source.mkdir()
    (source / "big").write_bytes(os.urandom(600_000))  # ~9 chunks of 64 KiB average
    (source / "small").write_bytes(b"fine")
    repo = make_repo()
    result = backup(repo, source)
    target = tmp_path / "out"
    restored = Path(os.fsdecode(restored_root(target, os.fsencode(source))))
    real_plan = restorer.Restorer._plan

    def plan_then_block(self: restorer.Restorer, root: Any) -> Any:
        for step in real_plan(self, root):
            (restored / "big").mkdir()  # where the file is created with its first chunk
            yield step

    writes: list[int] = []
    real_write = restorer.ContentWriter.write

    def write(self: Any, jobs: list[Any], locations: list[Any], starts: Any = None) -> None:
        writes.append(len(jobs))
        real_write(self, jobs, locations, starts)

    monkeypatch.setattr(restorer.Restorer, "_plan", plan_then_block)
    monkeypatch.setattr(restorer.ContentWriter, "write", write)
    summary = restore(repo, result, target)
    assert [w.rsplit("/", 1)[-1] for w in summary.warnings] == ["big: cannot restore: File exists"]
    assert writes == [1, 1]  # "small" with the batch, then one segment of "big"
    assert (restored / "small").read_bytes() == b"fine"


def test_a_folder_that_would_lock_this_process_out_is_set_last(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root, a folder this process could not enter or write once its mode is set
    keeps it to the very end (a hardlink of a later batch may reach into it); its neighbours
    are set as the restore goes. (Run as root, the effective uid is pretended.)"""
    monkeypatch.setattr(restorer, "PLAN_BATCH_FILES", 2)
    source = tmp_path / "src"
    locked = source / "a-locked"
    locked.mkdir(parents=True)
    (locked / "f").write_bytes(b"inside")
    os.link(locked / "f", source / "z-link")
    for i in range(4):
        (source / f"b{i}").mkdir()
        (source / f"b{i}" / "g").write_bytes(b"x" * i)
        os.utime(source / f"b{i}", ns=(10**9, 10**9 * (i + 1)))
    os.chmod(locked, 0o500)
    os.utime(locked, ns=(10**9, 5 * 10**9))
    repo = make_repo()
    result = backup(repo, source)
    monkeypatch.setattr(restorer.os, "geteuid", lambda: 1000)
    target = tmp_path / "out"
    modes: list[int] = []
    real = restorer.Restorer._write_contents

    def counted(self: restorer.Restorer, root: Any) -> None:
        restored = Path(os.fsdecode(restored_root(target, os.fsencode(source))))
        modes.append((restored / "a-locked").stat().st_mode & 0o777)
        real(self, root)

    monkeypatch.setattr(restorer.Restorer, "_write_contents", counted)
    summary = restore(repo, result, target, restore_owner=False)
    monkeypatch.undo()
    assert summary.warnings == []
    assert 0o500 not in modes  # not even before the batch that links into it
    assert_same_tree(os.fsencode(source), restored_root(target, os.fsencode(source)))


def test_a_hardlinked_file_is_forgotten_at_its_last_link(make_repo: Callable[..., Repository],
                                                         tmp_path: Path) -> None:
    """By the backup and by the restore; one with a link outside the backup stays known."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "all-1").write_bytes(os.urandom(5000))
    for name in ("all-2", "all-3"):
        os.link(source / "all-1", source / name)
    (source / "some-1").write_bytes(os.urandom(5000))
    os.link(source / "some-1", tmp_path / "outside")
    os.link(source / "some-1", source / "some-2")
    repo = make_repo()
    archiver = Archiver(repo, BackupOptions())
    result = archiver.run([str(source)])
    assert result.warnings == []
    some = os.stat(source / "some-1")
    assert list(archiver._hardlinks) == [(some.st_dev, some.st_ino)]
    target = tmp_path / "out"
    restoring = restorer.Restorer(repo, result.snapshot, RestoreOptions(target=str(target)))
    assert restoring.run().warnings == []
    assert list(restoring._hardlinks) == [(some.st_dev, some.st_ino)]
    assert_same_tree(os.fsencode(source), restored_root(target, os.fsencode(source)))
