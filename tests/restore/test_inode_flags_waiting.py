"""Inode flags of the entries that wait for the end of a restore (a file with several names;
with --delete, folders): only their i and a wait, the others are set with the rest of their
metadata. Set at the end through the path, they were refused to a restore without the
privilege to open an entry its mode closes to its owner (mode 000): modelled here by root
without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv), the owner of everything it
restores, as a user restoring their own files is."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from conftest import AS_USER

from fogvault.repo.repository import Repository
from tests.restore.test_inode_flags import (  # noqa: F401 (unlocked: autouse)
    MTIME_NS,
    _backup,
    _file,
    _placed,
    chattr,
    lsattr,
    unlocked,
)


def test_a_closed_hard_linked_file_and_folder_get_their_flags(
        make_repo: Callable[..., Repository], tmp_path: Path, fogvault) -> None:
    src = tmp_path / "src"
    shut = _file(src / "shut", b"shut\n", "+d", "+A", mode=0o000)
    (src / "b").mkdir()
    os.link(shut, src / "b/shut-link")
    _file(src / "closed/inside.txt", b"inside\n")
    os.chmod(src / "closed", 0o000)
    os.utime(src / "closed", ns=(MTIME_NS, MTIME_NS))
    chattr(src / "closed", "+d")
    repo = make_repo()
    snapshot = _backup(repo, src)
    target = tmp_path / "target"
    done = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t", str(target),
                    "--delete", wrap=AS_USER)
    assert (done.returncode, done.stderr) == (0, b"")
    out = _placed(src, target)
    assert os.lstat(out / "b/shut-link").st_ino == os.lstat(out / "shut").st_ino
    for path, letters in ((out / "shut", {"d", "A"}), (out / "closed", {"d"})):
        st = os.lstat(path)
        assert (st.st_mode & 0o777, st.st_mtime_ns) == (0, MTIME_NS), path
        assert lsattr(path) == letters, path
