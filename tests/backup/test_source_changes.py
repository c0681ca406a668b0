"""Source files that change or vanish between being listed and being read. The progress hook
``file_started`` runs after the file's lstat and before it is opened, so a test can change
the file at exactly that moment, every time."""

from __future__ import annotations

import os
from pathlib import Path

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.backup.progress import Progress
from fogvault.treewalk import walk


class MeddlingProgress(Progress):
    def __init__(self, target: Path, action) -> None:
        self.target = os.fsencode(target)
        self.action = action
        self.warnings: list[str] = []

    def file_started(self, path: bytes, size: int) -> None:
        if path == self.target:
            self.action(Path(os.fsdecode(path)))

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def _names(repo, snapshot) -> set[str]:
    return {os.fsdecode(p).rsplit("/", 1)[-1] for p, n in walk(repo, snapshot.tree)}


def test_file_vanishing_before_it_is_read_is_a_warning(make_repo, tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "stays").write_text("kept")
    (src / "goes").write_text("deleted mid-backup")
    progress = MeddlingProgress(src / "goes", Path.unlink)
    result = Archiver(repo, BackupOptions(), progress).run([str(src)])
    assert any("goes" in w for w in result.warnings) and progress.warnings
    assert result.snapshot.summary.files_failed == 1
    assert "stays" in _names(repo, result.snapshot) and "goes" not in _names(repo, result.snapshot)


def test_file_changing_while_read_is_stored_as_read_and_read_again_next_time(make_repo,
                                                                              tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    target = src / "growing"
    target.write_bytes(b"a" * 1000)

    def grow(path: Path) -> None:
        with path.open("ab") as f:
            f.write(b"b" * 500)

    first = Archiver(repo, BackupOptions(), MeddlingProgress(target, grow)).run([str(src)])
    assert any("changed while it was read" in w for w in first.warnings)
    assert first.snapshot.summary.bytes_read == 1500
    second = Archiver(repo, BackupOptions()).run([str(src)])  # nothing changes this time
    assert second.snapshot.summary.files_changed == 1  # the torn copy is not trusted
    assert second.snapshot.summary.bytes_read == 1500 and not second.warnings
    third = Archiver(repo, BackupOptions()).run([str(src)])
    assert third.snapshot.summary.bytes_read == 0  # now it is settled
