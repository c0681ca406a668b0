"""Restore on a destination that refuses writes: an entry that cannot be created, written,
sized or verified is a warning and the restore goes on (exit 3); a file system that is full,
over quota or read-only stops the restore with an error naming the entry (exit 1)."""

from __future__ import annotations

import errno
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import DestinationUnwritable, exit_code_for
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.restore import content, restorer
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary
from fogvault.restore.safefs import SafeRoot
from fogvault.restore.workers import _portable

LIMIT = 1 << 20  # the largest file the restoring processes may write (RLIMIT_FSIZE)
#: written past LIMIT: "big" by its data, "hole" only by the size its zeros leave to set
TOO_LARGE = ("big", "hole")


def make_tree(root: Path, small_files: int) -> dict[str, bytes]:
    """``TOO_LARGE`` files of 3 MiB and ``small_files`` small ones, each its own content."""
    contents = {"big": random.Random(0).randbytes(3 * LIMIT),
                "hole": random.Random(1).randbytes(100_000) + bytes(3 * LIMIT)}
    contents |= {f"d{n % 5}/f{n:05d}": f"file {n}\n".encode() * (1 + n % 40)
                 for n in range(small_files)}
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return contents


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def rel(src: Path, name: str) -> str:
    """How a restore into the folder ``out`` beside ``src`` names the entry ``src/name`` in
    its messages: its path there."""
    return f"{src.parent}/out{src}/{name}"


@pytest.mark.parametrize("small_files", [3, restorer.PROCESS_MIN_FILES + 20],
                         ids=["this process", "worker processes"])
def test_a_file_too_large_for_the_file_system_is_a_warning(
        fogvault: Callable[..., Any], tmp_path: Path, small_files: int) -> None:
    """A real EFBIG from the kernel (the file size limit stands in for a FAT file system's
    4 GiB), while writing or while setting the size: each such file is reported and left
    without its metadata (so that ``--overwrite if-changed`` writes it again), every other file
    is restored, exit code 3."""
    src = tmp_path / "src"
    contents = make_tree(src, small_files)
    assert fogvault("init", "-r", "repo").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    done = fogvault("-vv", "restore", "-r", "repo", "-V", "latest", "-t", "out",
                    wrap=["prlimit", f"--fsize={LIMIT}", "--"])
    assert done.returncode == 3, done.stderr
    workers = b"contents written by 2 worker processes" in done.stderr
    assert workers == (small_files > restorer.PROCESS_MIN_FILES)
    warnings = sorted(line for line in done.stderr.splitlines() if line.startswith(b"warning:"))
    assert warnings == [f"warning: {rel(src, name)}: cannot restore: "
                        f"{os.strerror(errno.EFBIG)}".encode() for name in TOO_LARGE]
    assert b"Traceback" not in done.stderr
    # the summary counts the files restored, without those two
    assert f": {len(contents) - len(TOO_LARGE)} files,".encode() in done.stdout, done.stdout
    out = tmp_path / "out" / str(src).lstrip("/")
    for name in TOO_LARGE:
        left = (out / name).stat()
        assert left.st_size <= LIMIT and left.st_mtime_ns != (src / name).stat().st_mtime_ns
    restored = read_tree(out)
    for name in TOO_LARGE:
        del contents[name], restored[name]
    assert restored == contents


def test_a_hard_link_to_a_file_too_large_is_not_counted_as_restored(
        fogvault: Callable[..., Any], tmp_path: Path) -> None:
    """Both names are the one partial file: the summary counted the second name (review)."""
    src = tmp_path / "src"
    make_tree(src, 3)
    os.link(src / "big", src / "biglink")
    assert fogvault("init", "-r", "repo").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    done = fogvault("restore", "-r", "repo", "-V", "latest", "-t", "out",
                    wrap=["prlimit", f"--fsize={LIMIT}", "--"])
    assert done.returncode == 3, done.stderr
    assert b": 3 files," in done.stdout, done.stdout  # the small ones: big, hole fail


def backed_up(make_repo: Callable[..., Repository], tmp_path: Path) -> tuple[Repository,
                                                                            Snapshot, Path]:
    repo = make_repo()
    src = tmp_path / "src"
    make_tree(src, 3)
    return repo, Archiver(repo, BackupOptions()).run([str(src)]).snapshot, src


def restore_here(repo: Repository, snapshot: Snapshot, target: Path, **options: Any
                 ) -> RestoreSummary:
    options = RestoreOptions(target=str(target), processes=False, **options)
    return Restorer(repo, snapshot, options).run()


def is_big(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").endswith("/big")
    except OSError:
        return False


def fail_big(monkeypatch: pytest.MonkeyPatch, when: str, error: int) -> None:
    """Make ``error`` happen to the file ``big`` while it is created, written or closed."""
    failure = OSError(error, os.strerror(error))
    if when == "creating":
        open_fd = SafeRoot.open_fd

        def failing_open(self: SafeRoot, parts: Any, flags: int, *args: Any) -> int:
            if parts[-1] == b"big" and flags & os.O_CREAT:
                raise failure
            return open_fd(self, parts, flags, *args)

        monkeypatch.setattr(SafeRoot, "open_fd", failing_open)
    elif when == "writing":
        write_runs = content._write_runs

        def failing_write(fd: int, *args: Any) -> None:
            if is_big(fd):
                raise failure
            write_runs(fd, *args)

        monkeypatch.setattr(content, "_write_runs", failing_write)
    else:  # closing: where NFS and CIFS report a full disk
        close = os.close

        def failing_close(fd: int) -> None:
            big = is_big(fd)
            close(fd)
            if big:
                raise failure

        monkeypatch.setattr(os, "close", failing_close)


@pytest.mark.parametrize("when", ["creating", "writing", "closing"])
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EDQUOT, errno.EROFS])
def test_a_full_or_read_only_file_system_stops_the_restore_naming_the_file(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, when: str, error: int) -> None:
    repo, snapshot, src = backed_up(make_repo, tmp_path)
    fail_big(monkeypatch, when, error)
    with pytest.raises(DestinationUnwritable) as raised:
        restore_here(repo, snapshot, tmp_path / "out")
    assert str(raised.value) == f"{rel(src, 'big')}: cannot restore: {os.strerror(error)}"
    assert exit_code_for(raised.value) == 1


@pytest.mark.parametrize("when", ["creating", "writing", "closing"])
def test_an_io_error_is_that_files_warning(make_repo: Callable[..., Repository],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           when: str) -> None:
    repo, snapshot, src = backed_up(make_repo, tmp_path)
    fail_big(monkeypatch, when, errno.EIO)
    summary = restore_here(repo, snapshot, tmp_path / "out", verify=True)
    assert summary.warnings == [f"{rel(src, 'big')}: cannot restore: {os.strerror(errno.EIO)}"]
    # the files restored, all verified: 'hole' and the three small ones
    assert summary.verified == summary.files == 4


def test_a_file_that_cannot_be_read_back_is_a_verify_warning(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As a file of mode 0200 is to a restore without root."""
    repo, snapshot, src = backed_up(make_repo, tmp_path)
    open_file = SafeRoot.open_file

    def unreadable_big(self: SafeRoot, parts: Any, flags: int, *args: Any) -> Any:
        if parts[-1] == b"big" and flags == os.O_RDONLY:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return open_file(self, parts, flags, *args)

    monkeypatch.setattr(SafeRoot, "open_file", unreadable_big)
    summary = restore_here(repo, snapshot, tmp_path / "out", verify=True)
    out = tmp_path / "out" / str(src).lstrip("/")
    assert summary.warnings == [f"{out}/big: cannot verify: {os.strerror(errno.EACCES)}"]
    assert summary.verified == summary.files - 1


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS])
def test_an_entry_in_the_way_that_cannot_be_removed(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """``--overwrite always`` over an existing ``big``: refused (EACCES), a warning; on a
    read-only file system (EROFS), the restore stops."""
    repo, snapshot, src = backed_up(make_repo, tmp_path)
    restore_here(repo, snapshot, tmp_path / "out")
    remove = SafeRoot.remove

    def refuse_big(self: SafeRoot, parts: Any) -> None:
        if parts[-1] == b"big":
            raise OSError(error, os.strerror(error))
        remove(self, parts)

    monkeypatch.setattr(SafeRoot, "remove", refuse_big)
    message = f"{rel(src, 'big')}: cannot restore: {os.strerror(error)}"
    if error == errno.EROFS:
        with pytest.raises(DestinationUnwritable, match=f"^{re.escape(message)}$"):
            restore_here(repo, snapshot, tmp_path / "out")
        return
    assert restore_here(repo, snapshot, tmp_path / "out").warnings == [message]


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
    for target in ("a-file/out", "a-file"):
        done = fogvault("restore", "-r", "repo", "-V", "latest", "-t", target)
        assert done.returncode == 1
        assert done.stderr == (f"error: cannot restore into {tmp_path}/{target}: a file is in "
                               "the way: the target must be a folder\n").encode()


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
    rel = f"{tmp_path}/out{src}/d3"
    if error == errno.EROFS:
        with pytest.raises(DestinationUnwritable, match=f"^{re.escape(rel)}: cannot restore: "):
            Restorer(repo, snapshot, options).run()
        return
    summary = Restorer(repo, snapshot, options).run()
    assert summary.warnings == [f"{rel}: cannot restore: {os.strerror(error)}"]
    assert sum(1 for parts in tried if b"d3" in parts) == 1  # not again for each file below
    restored = read_tree(tmp_path / "out" / str(src).lstrip("/"))
    assert restored == {rel: data for rel, data in contents.items() if not rel.startswith("d3/")}


@pytest.mark.parametrize("error", [errno.EPERM, errno.EROFS])
def test_folder_metadata_the_file_system_refuses(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """Refused (EPERM): a warning per folder. Read-only (EROFS, as with ``--overwrite never``
    over a tree already there): the restore stops instead of warning about every folder."""
    repo, snapshot, src = backed_up(make_repo, tmp_path)
    apply_metadata = content.apply_metadata

    def refuse_d1(dir_fd: int, name: bytes, *args: Any, **kwargs: Any) -> list[str]:
        if name == b"d1":
            raise OSError(error, os.strerror(error))
        return apply_metadata(dir_fd, name, *args, **kwargs)

    monkeypatch.setattr(content, "apply_metadata", refuse_d1)
    if error == errno.EROFS:
        with pytest.raises(DestinationUnwritable,
                           match=f"^{re.escape(rel(src, 'd1'))}: cannot restore: "):
            restore_here(repo, snapshot, tmp_path / "out")
        return
    out = tmp_path / "out" / str(src).lstrip("/")
    assert restore_here(repo, snapshot, tmp_path / "out").warnings == [
        f"{out}/d1: cannot set metadata: {os.strerror(error)}"]
