"""Inode flags (``chattr``'s) restored: several flags on files and folders, immutable and
append-only entries with their content, times and modes, a hard-linked immutable file,
``--no-flags``, ``--delete`` into an immutable folder, a target whose file system has no flags
(ramfs, mounted here), a restore without CAP_LINUX_IMMUTABLE (setpriv), and entries already at
the target that are immutable. Real files, ``chattr``/``lsattr`` as the user runs them; every
test ends by lifting i and a below its folder, which pytest could not delete otherwise."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.repo.repository import Repository
from fogvault.restore import restorer
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary
from tests.restore.test_safefs import mounted

MTIME_NS = 1_600_000_000_123_456_789
RAMFS = ("-t", "ramfs", "none")  # a file system without inode flags (ENOTTY)
WITHOUT_IMMUTABLE = ["setpriv", "--bounding-set=-linux_immutable", "--"]


def chattr(path: Path, *changes: str) -> None:
    subprocess.run(["chattr", *changes, str(path)], check=True, capture_output=True)


def lsattr(path: Path) -> set[str]:
    """The flags ``lsattr`` shows, as letters, but ``e`` (extents: ext4's own)."""
    out = subprocess.run(["lsattr", "-d", str(path)], check=True, capture_output=True).stdout
    return set(out.split()[0].decode()) - {"-", "e"}


@pytest.fixture(autouse=True)
def unlocked(tmp_path: Path) -> Iterator[None]:
    """Skip where the test folder's file system (or the user) cannot set i; lift i and a below
    it at the end."""
    probe = tmp_path / "probe"
    probe.touch()
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work here (needs root and ext4, btrfs or xfs)")
    chattr(probe, "-i")
    probe.unlink()
    yield
    subprocess.run(["chattr", "-R", "-i", "-a", str(tmp_path)], capture_output=True)


def _file(path: Path, data: bytes, *flags: str, mode: int = 0o640) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    if flags:
        chattr(path, *flags)
    return path


def _source(src: Path) -> dict[str, set[str]]:
    """Files and folders with flags below ``src``; relative path -> flags set."""
    flagged = {
        "plain.txt": set(),
        "nodump.txt": {"d", "A"},
        "many.txt": {"s", "u", "c", "S", "t"},
        "log/app.log": {"a"},
        "frozen/inside.txt": {"i"},
        "frozen/sub/deep.txt": {"d"},
    }
    for rel in flagged:
        _file(src / rel, f"{rel}\n".encode() * 100)
    os.setxattr(src / "frozen/inside.txt", "user.note", b"kept")
    for rel, letters in flagged.items():
        if letters:
            chattr(src / rel, *(f"+{x}" for x in sorted(letters)))
    folders = {"frozen/sub": {"A"}, "frozen": {"i"}, "log": {"D", "T", "d"}}
    for rel, letters in folders.items():  # deepest first: an immutable folder takes nothing
        os.utime(src / rel, ns=(MTIME_NS, MTIME_NS))
        chattr(src / rel, *(f"+{x}" for x in sorted(letters)))
    return {**flagged, **folders}


def _backup(repo: Repository, src: Path, **options: object):
    result = Archiver(repo, BackupOptions(**options)).run([str(src)])  # type: ignore[arg-type]
    assert result.warnings == []
    return result.snapshot


def _restore(repo: Repository, snapshot, target: Path, **options: object) -> RestoreSummary:
    opts = RestoreOptions(target=str(target), **options)  # type: ignore[arg-type]
    return Restorer(repo, snapshot, opts).run()


def _placed(src: Path, target: Path) -> Path:
    return target / str(src).lstrip("/")


@pytest.fixture
def flagged(make_repo: Callable[..., Repository], tmp_path: Path):
    src = tmp_path / "src"
    expected = _source(src)
    repo = make_repo()
    return repo, _backup(repo, src), src, expected


def test_flags_of_files_and_folders_round_trip_with_content_times_and_modes(
        flagged, tmp_path: Path) -> None:
    repo, snapshot, src, expected = flagged
    target = tmp_path / "target"
    summary = _restore(repo, snapshot, target)
    assert summary.warnings == []
    out = _placed(src, target)
    for rel, letters in expected.items():
        assert lsattr(out / rel) == letters, rel
        st, original = os.lstat(out / rel), os.lstat(src / rel)
        assert (st.st_mtime_ns, st.st_mode) == (MTIME_NS, original.st_mode), rel
        if (src / rel).is_file():
            assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert os.getxattr(out / "frozen/inside.txt", "user.note") == b"kept"
    # what the flags mean holds: nothing can be written into the immutable folder
    with pytest.raises(PermissionError):
        (out / "frozen/new").touch()
    with open(out / "log/app.log", "ab") as log:  # append-only: appending is allowed
        log.write(b"more\n")


def test_no_flags_restores_everything_else(flagged, tmp_path: Path) -> None:
    repo, snapshot, src, expected = flagged
    target = tmp_path / "target"
    assert _restore(repo, snapshot, target, inode_flags=False).warnings == []
    out = _placed(src, target)
    for rel in expected:
        assert lsattr(out / rel) == set(), rel
        assert os.lstat(out / rel).st_mtime_ns == MTIME_NS
    assert os.getxattr(out / "frozen/inside.txt", "user.note") == b"kept"


def test_a_hard_linked_immutable_file_keeps_all_its_names(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """link(2) refuses a new name to an immutable or append-only file: the flags of a file
    with several names wait until the last is linked (in another folder, planned later, after
    the first is written: here a batch is one file; an empty file is complete at once)."""
    monkeypatch.setattr(restorer, "PLAN_BATCH_FILES", 1)
    src = tmp_path / "src"
    first = _file(src / "a-first", b"shared\n" * 1000)
    os.makedirs(src / "b")
    os.link(first, src / "b" / "second")
    os.link(first, src / "b" / "third")
    appended = _file(src / "c-log", b"log\n")
    os.link(appended, src / "b" / "log-link")
    empty = _file(src / "d-empty", b"")
    os.link(empty, src / "b" / "empty-link")
    for path, flag in ((first, "+i"), (appended, "+a"), (empty, "+i")):
        chattr(path, flag)
    repo = make_repo()
    snapshot = _backup(repo, src)
    for processes in (False, True):  # written here, and by worker processes
        target = tmp_path / f"target-{processes}"
        summary = _restore(repo, snapshot, target, processes=processes)
        assert summary.warnings == []
        out = _placed(src, target)
        names = [out / "a-first", out / "b/second", out / "b/third"]
        assert len({os.lstat(n).st_ino for n in names}) == 1
        assert os.lstat(names[0]).st_nlink == 3
        assert (out / "b/third").read_bytes() == b"shared\n" * 1000
        assert lsattr(names[0]) == {"i"}
        assert os.lstat(out / "b/log-link").st_ino == os.lstat(out / "c-log").st_ino
        assert lsattr(out / "c-log") == {"a"}
        assert os.lstat(out / "b/empty-link").st_ino == os.lstat(out / "d-empty").st_ino
        assert lsattr(out / "d-empty") == {"i"}


def test_delete_deletes_in_an_immutable_folder_before_its_flags_are_set(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    src = tmp_path / "src"
    _file(src / "vault/kept.txt", b"kept\n")
    chattr(src / "vault", "+i")
    repo = make_repo()
    snapshot = _backup(repo, src)
    target = tmp_path / "target"
    _restore(repo, snapshot, target, inode_flags=False)
    out = _placed(src, target)
    _file(out / "vault/extra.txt", b"not in the snapshot\n")
    summary = _restore(repo, snapshot, target, delete=True)
    assert summary.warnings == [] and summary.deleted == 1
    assert sorted(os.listdir(out / "vault")) == ["kept.txt"]
    assert lsattr(out / "vault") == {"i"}


def test_a_file_system_without_flags_costs_one_warning(
        flagged, tmp_path: Path, fogvault, cli_env) -> None:
    """ramfs has no inode flags (ENOTTY): one warning for all the entries, exit 3 from the
    CLI; everything else is restored. Through worker processes too (their refusals travel
    back to be counted). With --no-flags: nothing to say."""
    repo, snapshot, src, expected = flagged
    point = tmp_path / "ramfs"
    point.mkdir()
    with mounted(point, *RAMFS):
        summary = _restore(repo, snapshot, point / "lib", processes=True)
        out = _placed(src, point / "lib")
        assert len(summary.warnings) == 1
        assert re.fullmatch(
            f"inode flags \\(chattr\\) s u c S i a d A t D T of {len(expected) - 1} entries not "
            "restored: the file "
            f"system does not support them; the first: {re.escape(str(out))}/\\S+: "
            "Inappropriate ioctl for device; restore --no-flags leaves them out",
            summary.warnings[0])
        for rel in expected:
            assert os.lstat(out / rel).st_mtime_ns == MTIME_NS
        assert (out / "frozen/inside.txt").read_bytes() == (src / "frozen/inside.txt"
                                                             ).read_bytes()
        cli = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t",
                       str(point / "cli"))
        assert cli.returncode == 3
        lines = cli.stderr.decode().splitlines()
        assert [line for line in lines if "inode flags" in line] == [
            line for line in lines if line.startswith("warning:")]
        assert len(lines) == 1 and "Traceback" not in cli.stderr.decode()
        quiet = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t",
                         str(point / "quiet"), "--no-flags")
        assert (quiet.returncode, quiet.stderr) == (0, b"")


def test_without_cap_linux_immutable_i_and_a_are_refused_in_one_line(
        flagged, tmp_path: Path, fogvault) -> None:
    """Root without CAP_LINUX_IMMUTABLE (a container's root): i and a are refused, the
    others set; one warning, exit 3."""
    repo, snapshot, src, expected = flagged
    target = tmp_path / "target"
    done = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t", str(target),
                    wrap=WITHOUT_IMMUTABLE)
    assert done.returncode == 3, done.stderr
    warnings = [line for line in done.stderr.decode().splitlines()
                if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: inode flags (chattr) i a of 3 entries not "
                                  "restored: not permitted (i and a take CAP_LINUX_IMMUTABLE")
    out = _placed(src, target)
    for rel, letters in expected.items():
        assert lsattr(out / rel) == letters - {"i", "a"}, rel


def test_an_immutable_entry_in_the_way_is_one_clear_warning(
        flagged, tmp_path: Path, fogvault) -> None:
    """Restore does not lift i or a from what it finds at the target: the file it cannot
    replace, and the immutable folder it cannot give its metadata, are each a warning that
    says why; the rest is restored."""
    repo, snapshot, src, _ = flagged
    target = tmp_path / "target"
    out = _placed(src, target)
    _file(out / "plain.txt", b"old\n", "+i")
    _file(out / "nodump.txt", b"old\n", "+a")
    (out / "frozen").mkdir(mode=0o700)  # its mode is the first change refused
    chattr(out / "frozen", "+i")
    done = fogvault("-r", repo.targets.urls[0], "restore", snapshot.uid, "-t", str(target),
                    "--no-flags")
    assert done.returncode == 3
    why = "Operation not permitted: it is immutable or append-only (lsattr shows it; chattr -i " \
          "-a lifts it)"
    assert sorted(done.stderr.decode().splitlines()) == sorted([
        f"warning: {out}/frozen/inside.txt: cannot restore: Operation not "
        "permitted: its folder is immutable or append-only (lsattr shows it; chattr -i -a "
        "lifts it)",
        f"warning: {out}/frozen/sub: cannot restore: Operation not "
        "permitted: its folder is immutable or append-only (lsattr shows it; chattr -i -a "
        "lifts it)",
        f"warning: {out}/frozen: cannot set metadata: {why}",
        f"warning: {out}/nodump.txt: cannot restore: {why}",
        f"warning: {out}/plain.txt: cannot restore: {why}",
    ])
    assert (out / "plain.txt").read_bytes() == b"old\n"
    assert (out / "many.txt").read_bytes() == (src / "many.txt").read_bytes()
