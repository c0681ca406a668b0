"""backup's ``ignore_ctime`` and ``ignore_inode`` (restic's ``--ignore-ctime``,
``--ignore-inode``), for sources whose ctimes or inode numbers are not stable (network and FUSE
mounts, file system snapshots mounted anew, data copied with its times): a file whose size and
mtime match the parent's entry is not read again when only its ctime, or also its inode number,
changed. What they must keep: the metadata of the new lstat, xattrs and inode flags (read for
every entry, as the ctime no longer tells that they changed), the mark of a copy torn while it
was read (ctime 0), and the racy-entry guard (by the mtime). Also the CLI options and the job
keys. Real files and repositories."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup import archiver
from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.jobs.config import ConfigError, parse_config
from fogvault.jobs.config_show import effective_document
from fogvault.jobs.runner import run_job
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, SnapshotSummary
from fogvault.repo.tree import Node
from fogvault.treewalk import lookup
from tests.backup.test_reuse import _xattrs_supported
from tests.backup.test_source_changes import MeddlingProgress

DATA = b"fogvault" * 375
OLD_MTIME = 1_700_000_000_123_456_789  # settled: long before any parent's run
#: (bytes_read, files_unchanged, files_changed) of a backup of ``src`` that reads ``data``
#: again, and of one that reuses its content
READ = (len(DATA), 0, 1)
REUSED = (0, 1, 0)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A folder holding one file, ``data``, with an old mtime."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "data").write_bytes(DATA)
    os.utime(root / "data", ns=(OLD_MTIME, OLD_MTIME))
    return root


def _backup(repo: Repository, src: Path, **options: object) -> Snapshot:
    result = Archiver(repo, BackupOptions(**options)).run([str(src)])  # type: ignore[arg-type]
    assert result.warnings == []
    return result.snapshot


def _reads(summary: SnapshotSummary) -> tuple[int, int, int]:
    return summary.bytes_read, summary.files_unchanged, summary.files_changed


def _node(repo: Repository, snapshot: Snapshot, path: Path) -> Node:
    node, _ = lookup(repo, snapshot.tree, os.fsencode(path))
    assert node is not None
    return node


def _replace_with_copy(path: Path) -> None:
    """``path`` replaced by a copy of itself with the same size and mtime: a new inode and
    ctime, as a snapshot mounted anew or data copied to a new disk has."""
    before = path.stat()
    copy = path.with_name(path.name + ".copy")
    shutil.copyfile(path, copy)
    os.replace(copy, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_ino != before.st_ino


def _chmod_600(path: Path) -> None:
    """A mode change, which changes the ctime alone. Made again until the ctime moved: one
    within the clock tick of the file's last change leaves it as it was."""
    before = path.stat().st_ctime_ns
    deadline = time.monotonic() + 5
    path.chmod(0o600)
    while path.stat().st_ctime_ns == before:
        assert time.monotonic() < deadline, "the ctime does not move"
        path.chmod(0o600)


@pytest.mark.parametrize(("options", "expected"), [
    ({}, READ), ({"ignore_ctime": True}, READ), ({"ignore_inode": True}, REUSED)])
def test_a_file_replaced_by_a_copy_is_read_again_unless_inodes_are_ignored(
        make_repo: Callable[..., Repository], src: Path, options: dict, expected: tuple) -> None:
    repo = make_repo()
    _backup(repo, src, **options)
    _replace_with_copy(src / "data")
    snapshot = _backup(repo, src, **options)
    assert _reads(snapshot.summary) == expected
    st = (src / "data").stat()
    node = _node(repo, snapshot, src / "data")  # the real inode and ctime, reused or not
    assert (node.ino, node.ctime_ns, node.mtime_ns, node.size) == (
        st.st_ino, st.st_ctime_ns, OLD_MTIME, len(DATA))


@pytest.mark.parametrize(("options", "expected"), [
    ({}, READ), ({"ignore_ctime": True}, REUSED), ({"ignore_inode": True}, REUSED)])
def test_a_mode_change_is_stored_without_reading_the_file_when_ctimes_are_ignored(
        make_repo: Callable[..., Repository], src: Path, options: dict, expected: tuple) -> None:
    repo = make_repo()
    first = _backup(repo, src, **options)
    assert _node(repo, first, src / "data").mode != 0o600
    _chmod_600(src / "data")
    snapshot = _backup(repo, src, **options)
    assert _reads(snapshot.summary) == expected
    node = _node(repo, snapshot, src / "data")
    assert (node.mode, node.ctime_ns) == (0o600, (src / "data").stat().st_ctime_ns)


def _record_metadata_reads(monkeypatch: pytest.MonkeyPatch
                           ) -> tuple[list[bytes], list[bytes]]:
    """The paths whose xattrs are listed, and those whose inode flags are read, from now on."""
    listed: list[bytes] = []
    flagged: list[bytes] = []
    read_xattrs, read_flags = archiver.read_xattrs, archiver.read_flags

    def listing(path: bytes) -> list[tuple[bytes, bytes]]:
        listed.append(path)
        return read_xattrs(path)

    def reading_flags(fd: int) -> int:
        flagged.append(os.fsencode(os.readlink(f"/proc/self/fd/{fd}")))
        return read_flags(fd)

    monkeypatch.setattr(archiver, "read_xattrs", listing)
    monkeypatch.setattr(archiver, "read_flags", reading_flags)
    return listed, flagged


def test_xattrs_and_flags_are_read_for_every_entry_when_ctimes_are_ignored(
        make_repo: Callable[..., Repository], src: Path, trust_recent_entries: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting an xattr or a flag changes the ctime alone, so with the ctime ignored nothing
    tells that they changed: an unchanged file's are read all the same (its content is
    reused), and a folder's too."""
    if not _xattrs_supported(src):
        pytest.skip("no user xattrs on this file system")
    repo = make_repo()
    os.setxattr(src / "data", "user.tag", b"blue")
    _backup(repo, src, ignore_ctime=True)
    listed, flagged = _record_metadata_reads(monkeypatch)
    below = {os.fsencode(src), os.fsencode(src / "data")}  # the folders above src may change

    unchanged = _backup(repo, src, ignore_ctime=True)
    assert _reads(unchanged.summary) == REUSED
    assert (below & set(listed), below & set(flagged)) == (below, below)
    listed.clear()
    flagged.clear()
    _backup(repo, src)  # the ctime compared: the parent's are taken, nothing is read
    assert (below & set(listed), below & set(flagged)) == (set(), set())

    os.setxattr(src / "data", "user.tag", b"red")
    changed = _backup(repo, src, ignore_ctime=True)
    assert _reads(changed.summary) == REUSED
    assert _node(repo, changed, src / "data").xattrs == [(b"user.tag", b"red")]


def test_a_copy_torn_while_it_was_read_is_read_again_with_inodes_and_ctimes_ignored(
        make_repo: Callable[..., Repository], src: Path, trust_recent_entries: None) -> None:
    """A file that changed while it was read is stored as read, its entry marked with ctime
    0: the next backup reads it again, even when it compares neither ctime nor inode (its
    size and mtime match: the entry has those found after reading)."""
    target = src / "data"

    def grow(path: Path) -> None:
        with path.open("ab") as f:
            f.write(b"b" * 500)

    repo = make_repo()
    options = BackupOptions(ignore_inode=True)
    first = Archiver(repo, options, MeddlingProgress(target, grow)).run([str(src)])
    assert any("changed while it was read" in w for w in first.warnings)
    assert _node(repo, first.snapshot, target).ctime_ns == 0
    second = _backup(repo, src, ignore_inode=True)  # nothing changes this time
    assert _reads(second.summary) == (len(DATA) + 500, 0, 1)
    assert _node(repo, second, target).ctime_ns == target.stat().st_ctime_ns
    assert _reads(_backup(repo, src, ignore_inode=True).summary) == REUSED  # now settled


def test_with_ctimes_ignored_the_racy_entry_guard_compares_the_mtime(
        make_repo: Callable[..., Repository], src: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """An entry whose mtime is within the margin before the parent's run (an hour wide here),
    or later, is read again; its ctime does not make it settled."""
    repo = make_repo()
    (src / "data").write_bytes(DATA)  # mtime now
    _backup(repo, src, ignore_ctime=True)
    monkeypatch.setattr(archiver, "RACY_MARGIN_NS", 3600 * 10**9)
    assert _reads(_backup(repo, src, ignore_ctime=True).summary) == READ
    monkeypatch.setattr(archiver, "RACY_MARGIN_NS", -3600 * 10**9)  # all but the future
    assert _reads(_backup(repo, src, ignore_ctime=True).summary) == REUSED

    later = time.time_ns() + 2 * 3600 * 10**9  # after the parent's run and the margin
    os.utime(src / "data", ns=(later, later))  # the ctime is now, settled
    assert _reads(_backup(repo, src, ignore_ctime=True).summary) == READ  # the mtime changed
    assert _reads(_backup(repo, src, ignore_ctime=True).summary) == READ  # and is not settled
    assert _reads(_backup(repo, src).summary) == REUSED  # by the ctime, it is


def test_the_cli_options(fogvault: Callable[..., object], src: Path) -> None:
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0

    def backup(*options: str) -> tuple[int, int, int]:
        done = fogvault("backup", "-r", "repo", str(src), "--json", *options)
        assert done.returncode == 0, done.stderr
        s = json.loads(done.stdout.splitlines()[-1])
        return s["bytes_read"], s["files_unchanged"], s["files_changed"]

    backup()
    _replace_with_copy(src / "data")
    assert backup("--ignore-inode") == REUSED
    _replace_with_copy(src / "data")
    assert backup("--ignore-ctime") == READ  # the inode is still compared
    _chmod_600(src / "data")
    assert backup("--ignore-ctime") == REUSED
    _chmod_600(src / "data")
    assert backup() == READ


@pytest.mark.parametrize(("key", "change", "expected"), [
    ("", _replace_with_copy, READ), ("ignore_ctime", _chmod_600, REUSED),
    ("ignore_ctime", _replace_with_copy, READ), ("ignore_inode", _replace_with_copy, REUSED)])
def test_job_keys(make_repo: Callable[..., Repository], src: Path, tmp_path: Path,
                  local_job_text: Callable[[Path], str], key: str,
                  change: Callable[[Path], None], expected: tuple) -> None:
    """``ignore_ctime = true`` is backup --ignore-ctime, ``ignore_inode = true`` is
    --ignore-inode; ``config show`` shows them; not a boolean is a config error."""
    repo = make_repo("repo")
    text = local_job_text(src)
    config = parse_config(text + (f"{key} = true\n" if key else ""), tmp_path / "config.toml")
    shown = effective_document(config)["jobs"]["home"]
    for name in ("ignore_ctime", "ignore_inode"):
        assert getattr(config.job("home"), name) is shown[name] is (name == key)
    assert run_job(config, "home").exit_code == 0
    change(src / "data")
    record = run_job(config, "home")
    assert record.exit_code == 0, record.error
    fresh = Repository.open(repo.targets.urls, PASSWORD, use_cache=False)
    assert _reads(fresh.load_snapshot(record.snapshot).summary) == expected
    fresh.close()
    if key:
        with pytest.raises(ConfigError, match=key):
            parse_config(text + f'{key} = "yes"\n', tmp_path / "config.toml")
