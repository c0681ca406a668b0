"""Immutable (i) and append-only (a) entries at a restore's target refuse root too: each refusal
says so, as the others do ('... it is immutable or append-only (lsattr shows it; chattr -i -a
lifts it)'): ``--delete`` of such an entry, or of one in such a folder; a hard link to a first
name kept with its i; a target folder to be made in an immutable folder. Real files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fogvault.repo.repository import Repository
from tests.restore.test_inode_flags import (  # noqa: F401 (unlocked: autouse)
    _backup,
    _file,
    _placed,
    _restore,
    chattr,
    lsattr,
    unlocked,
)

LOCKED = "immutable or append-only (lsattr shows it; chattr -i -a lifts it)"


def test_delete_says_why_an_extra_entry_stays(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    src = tmp_path / "src"
    _file(src / "plain/kept.txt", b"kept\n")
    _file(src / "log/kept.txt", b"kept\n")
    repo = make_repo()
    snapshot = _backup(repo, src)
    target = tmp_path / "target"
    assert _restore(repo, snapshot, target).warnings == []
    out = _placed(src, target)
    _file(out / "plain/frozen.txt", b"not in the snapshot\n", "+i")
    _file(out / "log/old.txt", b"not in the snapshot\n")
    chattr(out / "log", "+a")
    summary = _restore(repo, snapshot, target, delete=True, overwrite="if-changed")
    assert summary.deleted == 0
    assert {
        f"{out}/plain/frozen.txt: cannot delete: Operation not permitted: it is {LOCKED}",
        f"{out}/log/old.txt: cannot delete: Operation not permitted: its folder is {LOCKED}",
    } <= set(summary.warnings)
    assert (out / "plain/frozen.txt").exists() and (out / "log/old.txt").exists()


def test_a_hard_link_to_a_kept_immutable_file_says_why_it_is_refused(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    """The first name is kept (unchanged) with its i; the second, deleted since, cannot be
    linked to it again."""
    src = tmp_path / "src"
    first = _file(src / "a-first", b"shared\n")
    (src / "b").mkdir()
    os.link(first, src / "b/second")
    chattr(first, "+i")
    repo = make_repo()
    snapshot = _backup(repo, src)
    target = tmp_path / "target"
    assert _restore(repo, snapshot, target).warnings == []
    out = _placed(src, target)
    chattr(out / "a-first", "-i")
    (out / "b/second").unlink()
    chattr(out / "a-first", "+i")
    summary = _restore(repo, snapshot, target, overwrite="if-changed")
    relative = f"{out}/b/second"
    assert summary.warnings == [
        f"{relative}: cannot restore: Operation not permitted: the file it links to, "
        f"{out}/a-first, is {LOCKED}"]


def test_a_target_to_be_made_in_an_immutable_folder(
        make_repo: Callable[..., Repository], tmp_path: Path, fogvault) -> None:
    src = tmp_path / "src"
    _file(src / "f", b"f\n")
    repo = make_repo()
    snapshot = _backup(repo, src)
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    chattr(frozen, "+i")
    done = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t",
                    str(frozen / "new/sub"))
    assert done.returncode == 1
    assert done.stderr.decode() == (
        f"error: cannot restore into {frozen}/new/sub: Operation not permitted: {frozen} is "
        f"{LOCKED}\n")
    assert lsattr(frozen) == {"i"}
