"""Inode flags restored where the destination takes only some of them: FS_IOC_SETFLAGS refuses
the whole set for one bit it lacks (tmpfs takes only i a d A; ext4 refuses T on a file; a
process without CAP_LINUX_IMMUTABLE may not set i or a), so the restore sets the others one
by one, and its one warning names the letters left out. Real files; tmpfs mounted here."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from fogvault.repo.repository import Repository
from tests.crafted import DATA, dir_node, file_node, save_snapshot, store, store_tree
from tests.restore.test_inode_flags import (  # noqa: F401 (unlocked: autouse)
    WITHOUT_IMMUTABLE,
    _backup,
    _file,
    _placed,
    _restore,
    chattr,
    lsattr,
    unlocked,
)
from tests.restore.test_safefs import TMPFS, mounted

UNSUPPORTED = "the file system does not support them"


def test_tmpfs_keeps_i_a_d_a_and_the_warning_names_what_it_refused(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    """tmpfs refuses c, s, u, S, t and a folder's D and T: the file and the folder still get
    i (and d, A), and the warning names the letters refused, not the flags as a whole."""
    src = tmp_path / "src"
    _file(src / "locked.txt", b"locked\n", "+c", "+d", "+i")
    _file(src / "many.txt", b"many\n", "+s", "+u", "+c", "+S", "+t", "+A")
    _file(src / "vault/inside.txt", b"inside\n")
    chattr(src / "vault", "+D", "+T", "+i")
    repo = make_repo()
    snapshot = _backup(repo, src)
    point = tmp_path / "tmpfs"
    point.mkdir()
    with mounted(point, *TMPFS):  # unmounted with its immutable entries
        summary = _restore(repo, snapshot, point / "out")
        out = _placed(src, point / "out")
        assert lsattr(out / "locked.txt") == {"i", "d"}
        assert lsattr(out / "many.txt") == {"A"}
        assert lsattr(out / "vault") == {"i"}
        assert (out / "vault/inside.txt").read_bytes() == b"inside\n"
        assert len(summary.warnings) == 1, summary.warnings
        assert re.fullmatch(
            f"inode flags \\(chattr\\) s u c S t D T of 3 entries not restored: "
            f"{UNSUPPORTED}; the first: {re.escape(str(out))}/\\S+: Operation not "
            "supported; restore --no-flags leaves them out", summary.warnings[0])


def test_t_on_a_file_is_refused_alone_on_ext4(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    """T (top of a folder hierarchy) is a folder's; ext4 refuses it on a file (EOPNOTSUPP),
    which cost the file its i and d too. A crafted snapshot stores it on a file."""
    repo = make_repo()
    data = store(repo, DATA, b"payload\n")
    bits = 0x20000 | 0x10 | 0x40  # T, i, d
    inner = store_tree(repo, [file_node("f", [data], 8, flags=bits)])
    snapshot = save_snapshot(repo, store_tree(repo, [dir_node("crafted", inner)]))
    summary = _restore(repo, snapshot, tmp_path / "out")
    path = tmp_path / "out/crafted/f"
    assert lsattr(path) == {"i", "d"}
    assert summary.warnings == [
        f"inode flags (chattr) T of 1 entry not restored: {UNSUPPORTED}; the first: {path}: "
        "Operation not supported; restore --no-flags leaves them out"]


def test_without_cap_linux_immutable_the_other_flags_of_an_immutable_file_are_set(
        make_repo: Callable[..., Repository], tmp_path: Path, fogvault) -> None:
    """Only i and a take CAP_LINUX_IMMUTABLE: d and A of an immutable file are set all the
    same, and the warning names i and a."""
    src = tmp_path / "src"
    _file(src / "both.txt", b"both\n", "+i", "+d", "+A")
    _file(src / "log.txt", b"log\n", "+a", "+d")
    repo = make_repo()
    snapshot = _backup(repo, src)
    target = tmp_path / "target"
    done = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t", str(target),
                    wrap=WITHOUT_IMMUTABLE)
    assert done.returncode == 3, done.stderr
    out = _placed(src, target)
    assert lsattr(out / "both.txt") == {"d", "A"}
    assert lsattr(out / "log.txt") == {"d"}
    assert [line for line in done.stderr.decode().splitlines()
            if line.startswith("warning:")] == [
        f"warning: inode flags (chattr) i a of 2 entries not restored: not permitted (i and a "
        f"take CAP_LINUX_IMMUTABLE, as root has; the others the entry's owner); the first: "
        f"{out / 'both.txt'}: Operation not permitted"]
    assert os.lstat(out / "both.txt").st_size == 5
