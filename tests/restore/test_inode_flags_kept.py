"""Inode flags of the files a restore keeps (``--overwrite if-changed``, ``never``: same size
and mtime): they get the snapshot's flags as files it writes do. A restore that stopped before
the end (the i and a of a hard-linked file wait for it) is resumed with its flags whole, and so
is a target whose i and a were lifted with ``chattr -R -i -a``, as the user guide advises
before restoring into it again. Real files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fogvault.repo.repository import Repository
from fogvault.restore.flags import RestoredFlags
from tests.restore.test_inode_flags import (  # noqa: F401 (unlocked: autouse)
    _backup,
    _file,
    _placed,
    _restore,
    _source,
    chattr,
    lsattr,
    unlocked,
)


@pytest.fixture
def linked(make_repo: Callable[..., Repository], tmp_path: Path):
    """A snapshot of flagged files and folders (``_source``) and a hard-linked immutable file
    whose second name is in another folder."""
    src = tmp_path / "src"
    expected = _source(src)
    first = _file(src / "a-first", b"shared\n" * 100)
    (src / "b").mkdir()
    os.link(first, src / "b/second")
    chattr(first, "+i", "+d")
    expected |= {"a-first": {"i", "d"}, "b/second": {"i", "d"}}
    repo = make_repo()
    return repo, _backup(repo, src), src, expected


class _Stopped(Exception):
    pass


def test_a_restore_resumed_after_it_stopped_gives_the_waiting_flags(
        linked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped where every entry is written but the i of the hard-linked file still waits:
    the resumed restore keeps the file (same size and mtime) and gives it its i."""
    repo, snapshot, src, expected = linked
    target = tmp_path / "target"

    def stop(self: RestoredFlags, root: object) -> list[str]:
        raise _Stopped

    with monkeypatch.context() as patched:
        patched.setattr(RestoredFlags, "finish", stop)
        with pytest.raises(_Stopped):
            _restore(repo, snapshot, target)
    out = _placed(src, target)
    assert lsattr(out / "a-first") == {"d"}  # its i waited for the end
    summary = _restore(repo, snapshot, target, overwrite="if-changed")
    assert summary.warnings == []
    assert summary.skipped == 8  # every file kept
    for rel, letters in expected.items():
        assert lsattr(out / rel) == letters, rel


@pytest.mark.parametrize("overwrite", ["if-changed", "never"])
def test_kept_files_and_folders_get_back_the_flags_chattr_lifted(
        linked, tmp_path: Path, overwrite: str) -> None:
    repo, snapshot, src, expected = linked
    target = tmp_path / "target"
    assert _restore(repo, snapshot, target).warnings == []
    chattr(target, "-R", "-i", "-a", "-d", "-A")
    out = _placed(src, target)
    assert lsattr(out / "a-first") == set()
    summary = _restore(repo, snapshot, target, overwrite=overwrite)
    assert summary.warnings == []
    for rel, letters in expected.items():
        assert lsattr(out / rel) == letters, rel


def test_no_flags_leaves_kept_files_as_they_are(linked, tmp_path: Path) -> None:
    repo, snapshot, src, _ = linked
    target = tmp_path / "target"
    _restore(repo, snapshot, target, inode_flags=False)
    summary = _restore(repo, snapshot, target, overwrite="if-changed", inode_flags=False)
    assert summary.warnings == []
    assert lsattr(_placed(src, target) / "a-first") == set()


@pytest.mark.parametrize("overwrite", ["if-changed", "never"])
def test_restoring_again_onto_the_same_files_changes_nothing_and_exits_0(
        linked, tmp_path: Path, fogvault, overwrite: str) -> None:
    """Immutable and append-only folders and files refuse every change, even one to the
    values they have: the restore does not count those as refused (each was a warning,
    exit 3). The owner is restored too (run as root)."""
    repo, snapshot, src, expected = linked
    target = tmp_path / "target"
    restore = ("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t", str(target))
    first = fogvault(*restore)
    assert (first.returncode, first.stderr) == (0, b"")
    again = fogvault(*restore, "--overwrite", overwrite)
    assert (again.returncode, again.stderr) == (0, b"")
    for rel, letters in expected.items():
        assert lsattr(_placed(src, target) / rel) == letters, rel


def test_what_an_immutable_folder_refuses_to_change_is_explained(
        linked, tmp_path: Path) -> None:
    """Its mode as the snapshot's, its time not: the time refused says why."""
    repo, snapshot, src, _ = linked
    target = tmp_path / "target"
    assert _restore(repo, snapshot, target).warnings == []
    frozen = _placed(src, target) / "frozen"
    chattr(frozen, "-i")
    os.utime(frozen, ns=(0, 0))
    chattr(frozen, "+i")
    summary = _restore(repo, snapshot, target, overwrite="if-changed")
    assert summary.warnings == [
        f"{frozen}: cannot set times: Operation not permitted: it is immutable or append-only "
        "(lsattr shows it; chattr -i -a lifts it)"]
    assert os.lstat(frozen).st_mtime_ns == 0
