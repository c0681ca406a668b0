"""Folders nested deeper than Python's default recursion limit (about 330 levels stopped the
backup's walk with RecursionError) back up and restore through the real CLI. The trees are
removed by the tests themselves: shutil.rmtree recurses, so pytest's clean-up of old temporary
folders would fail on them in a later session."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

DEPTH = 1500  # 3,000 bytes of path below the source: within PATH_MAX


def nest(root, depth: int) -> None:
    """``root/d/d/.../d/file``, made through descriptors (pathlib and os.makedirs recurse)."""
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    with os.fdopen(os.open("file", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
        f.write(b"at the bottom")
    os.close(fd)


def remove_nested(root, depth: int) -> None:
    """Remove what :func:`nest` made (and a restored copy of it), from the bottom up."""
    fds = [os.open(root, os.O_RDONLY)]
    for _ in range(depth):
        fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
    for name in os.listdir(fds[-1]):
        os.unlink(name, dir_fd=fds[-1])
    while len(fds) > 1:
        os.close(fds.pop())
        os.rmdir("d", dir_fd=fds[-1])
    os.close(fds[0])
    os.rmdir(root)


@contextmanager
def nested(root, depth: int, *copies) -> Iterator[None]:
    """A nested tree at ``root`` while the block runs; it and its ``copies`` removed after."""
    nest(root, depth)
    try:
        yield
    finally:
        for folder in (root, *copies):
            if os.path.lexists(folder):
                remove_nested(folder, depth)


def _read_bottom(root, depth: int) -> bytes:
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    with os.fdopen(os.open("file", os.O_RDONLY, dir_fd=fd), "rb") as f:
        data = f.read()
    os.close(fd)
    return data


def test_a_tree_deeper_than_the_recursion_limit_round_trips(fogvault, tmp_path):
    restored = tmp_path / "out" / str(tmp_path / "src").lstrip("/")
    with nested(tmp_path / "src", DEPTH, restored):
        assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
        done = fogvault("backup", "-r", "repo", "src")
        assert done.returncode == 0, done.stderr[-500:]
        done = fogvault("restore", "-r", "repo", "latest", "-t", "out")
        assert done.returncode == 0, done.stderr[-500:]
        assert _read_bottom(restored, DEPTH) == b"at the bottom"
        bottom = os.path.join(tmp_path / "src", *["d"] * DEPTH, "file")
        with open(bottom, "ab") as f:
            f.write(b", changed")
        assert fogvault("backup", "-r", "repo", "src").returncode == 0
        done = fogvault("diff", "-r", "repo", *_uids(fogvault))  # compared iteratively too
        assert done.returncode == 0, done.stderr[-500:]
        assert f"M    {bottom}" in done.stdout.decode()


def _uids(fogvault) -> list[str]:
    return [s["uid"] for s in json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)]


def test_a_library_backup_gives_back_the_recursion_limit_it_raised(make_repo, tmp_path):
    from fogvault.backup.archiver import Archiver, BackupOptions

    repo = make_repo()
    before = sys.getrecursionlimit()
    with nested(tmp_path / "src", 600):  # deeper than the default limit allows
        result = Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    assert result.snapshot.summary.files_new == 1
    assert sys.getrecursionlimit() == before
