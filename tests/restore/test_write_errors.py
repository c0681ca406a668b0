"""A file that cannot be written is a warning and the restore goes on (exit 3); a full file
system stops the restore with an error naming the file it was writing (exit 1)."""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import DestinationUnwritable, exit_code_for
from fogvault.repo.repository import Repository
from fogvault.restore import content, restorer
from fogvault.restore.restorer import RestoreOptions, Restorer
from fogvault.restore.safefs import SafeRoot
from fogvault.restore.workers import _portable

LIMIT = 1 << 20  # the largest file the restoring processes may write (RLIMIT_FSIZE)


def make_tree(root: Path, small_files: int) -> dict[str, bytes]:
    """A 3 MiB file ``big`` and ``small_files`` small ones, each with its own content."""
    contents = {"big": random.Random(0).randbytes(3 * LIMIT)}
    contents |= {f"d{n % 5}/f{n:05d}": f"file {n}\n".encode() * (1 + n % 40)
                 for n in range(small_files)}
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return contents


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("small_files", [3, restorer.PROCESS_MIN_FILES + 20],
                         ids=["this process", "worker processes"])
def test_a_file_too_large_for_the_file_system_is_a_warning(
        fogvault: Callable[..., Any], tmp_path: Path, small_files: int) -> None:
    """A real EFBIG from the kernel (the file size limit stands in for a FAT file system's
    4 GiB): that file is reported, every other one is restored, exit code 3."""
    src = tmp_path / "src"
    contents = make_tree(src, small_files)
    assert fogvault("init", "-r", "repo").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    done = fogvault("-vv", "restore", "-r", "repo", "-V", "latest", "-t", "out",
                    wrap=["prlimit", f"--fsize={LIMIT}", "--"])
    assert done.returncode == 3, done.stderr
    workers = b"contents written by 2 worker processes" in done.stderr
    assert workers == (small_files > restorer.PROCESS_MIN_FILES)
    warnings = [line for line in done.stderr.splitlines() if line.startswith(b"warning:")]
    assert warnings == [f"warning: {str(src).lstrip('/')}/big: cannot restore: "
                        f"{os.strerror(errno.EFBIG)}".encode()]
    assert b"Traceback" not in done.stderr
    restored = read_tree(tmp_path / "out" / str(src).lstrip("/"))
    del contents["big"], restored["big"]  # left as far as it got
    assert restored == contents


@pytest.mark.parametrize("when", ["writing", "creating"])
def test_a_full_file_system_stops_the_restore_naming_the_file(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """ENOSPC while ``big`` is written (or created): no later file would fit either."""
    repo = make_repo()
    src = tmp_path / "src"
    make_tree(src, 3)
    snapshot = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if when == "writing":
        write_runs = content._write_runs

        def no_room_for_big(fd: int, *args: Any) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith("/big"):
                raise full
            write_runs(fd, *args)

        monkeypatch.setattr(content, "_write_runs", no_room_for_big)
    else:
        open_fd = SafeRoot.open_fd

        def no_inode_for_big(self: SafeRoot, parts: Any, flags: int, *args: Any) -> int:
            if parts[-1] == b"big" and flags & os.O_CREAT:
                raise full
            return open_fd(self, parts, flags, *args)

        monkeypatch.setattr(SafeRoot, "open_fd", no_inode_for_big)
    options = RestoreOptions(target=str(tmp_path / "out"), processes=False)
    with pytest.raises(DestinationUnwritable) as raised:
        Restorer(repo, snapshot, options).run()
    assert str(raised.value) == (f"{str(src).lstrip('/')}/big: cannot restore: "
                                 f"{os.strerror(errno.ENOSPC)}")
    assert exit_code_for(raised.value) == 1


def test_a_full_file_system_in_a_worker_reaches_the_restoring_process_as_itself() -> None:
    full = DestinationUnwritable("d/big: cannot restore: No space left on device")
    assert _portable(full) is full


def test_a_target_that_cannot_be_made_is_a_one_line_error(fogvault: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 1)
    (tmp_path / "a-file").write_bytes(b"x")
    assert fogvault("init", "-r", "repo").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    done = fogvault("restore", "-r", "repo", "-V", "latest", "-t", "a-file/out")
    assert done.returncode == 1
    assert done.stderr == (f"error: cannot restore into {tmp_path}/a-file/out: "
                           f"{os.strerror(errno.ENOTDIR)}\n").encode()


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS])
def test_a_folder_that_cannot_be_made(make_repo: Callable[..., Repository], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """Refused (EACCES): a warning, and nothing below it is tried; every other entry is
    restored. On a read-only file system (EROFS) nothing could be: the restore stops."""
    repo = make_repo()
    src = tmp_path / "src"
    contents = make_tree(src, 12)
    snapshot = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    enter = SafeRoot._enter
    tried = []

    def refuse_d3(self: SafeRoot, fd: int, parts: Any, depth: int, create: bool) -> int:
        tried.append(parts[: depth + 1])
        if parts[depth] == b"d3":
            raise OSError(error, os.strerror(error))
        return enter(self, fd, parts, depth, create)

    monkeypatch.setattr(SafeRoot, "_enter", refuse_d3)
    options = RestoreOptions(target=str(tmp_path / "out"), processes=False)
    rel = f"{str(src).lstrip('/')}/d3"
    if error == errno.EROFS:
        with pytest.raises(DestinationUnwritable, match=f"^{rel}: cannot restore: "):
            Restorer(repo, snapshot, options).run()
        return
    summary = Restorer(repo, snapshot, options).run()
    assert summary.warnings == [f"{rel}: cannot restore: {os.strerror(error)}"]
    assert sum(1 for parts in tried if b"d3" in parts) == 1  # not again for each file below
    restored = read_tree(tmp_path / "out" / str(src).lstrip("/"))
    assert restored == {rel: data for rel, data in contents.items() if not rel.startswith("d3/")}
