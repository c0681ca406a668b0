"""Trees deeper than the kernel takes a path (PATH_MAX, 4,096 bytes) and than Python's default
recursion limit (about 330 levels stopped the backup's walk with RecursionError) back up and
restore through the real CLI. The trees are made, read and removed through descriptors:
shutil.rmtree recurses, so pytest's clean-up of old temporary folders would fail on them in a
later session, and no path to their bottom is short enough for a system call."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fogvault.backup import archiver, short_paths
from fogvault.backup.excludes import ExcludeRules

DEPTH = 2500  # 5,000 bytes of path below the source: beyond PATH_MAX


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


@contextmanager
def bottom(root, depth: int, name: bytes = b"d") -> Iterator[int]:
    """A descriptor of the deepest folder of a chain of ``depth`` folders ``name`` at
    ``root``."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            fd, parent = os.open(name, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        yield fd
    finally:
        os.close(fd)


def _bottom_file(root, depth: int, flags: int, mode: str):
    """The file at the bottom of :func:`nest`'s chain, open."""
    with bottom(root, depth) as fd:
        return os.fdopen(os.open("file", flags, dir_fd=fd), mode)


def test_a_tree_deeper_than_path_max_round_trips(fogvault, tmp_path):
    restored = tmp_path / "out" / str(tmp_path / "src").lstrip("/")
    with nested(tmp_path / "src", DEPTH, restored):
        assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
        done = fogvault("backup", "-r", "repo", "src")
        assert done.returncode == 0, done.stderr[-500:]
        done = fogvault("restore", "-r", "repo", "latest", "-t", "out")
        assert done.returncode == 0, done.stderr[-500:]
        with _bottom_file(restored, DEPTH, os.O_RDONLY, "rb") as f:
            assert f.read() == b"at the bottom"
        with _bottom_file(tmp_path / "src", DEPTH, os.O_WRONLY | os.O_APPEND, "wb") as f:
            f.write(b", changed")
        done = fogvault("backup", "-r", "repo", "src", "--json")
        assert done.returncode == 0, done.stderr[-500:]
        summary = json.loads(done.stdout.splitlines()[-1])
        assert (summary["files_changed"], summary["files_unchanged"]) == (1, 0)
        done = fogvault("diff", "-r", "repo", *_uids(fogvault))  # compared iteratively too
        assert done.returncode == 0, done.stderr[-500:]
        path = os.path.join(tmp_path / "src", *["d"] * DEPTH, "file")
        assert f"M    {path}" in done.stdout.decode()
        assert fogvault("check", "-r", "repo").returncode == 0


LONG, LONG_LEVELS = b"n" * 200, 25  # 5,025 bytes of path below the source


def _long_names_tree(root) -> None:
    """LONG_LEVELS levels of 200-byte names, each with a file; at the bottom a file with an
    xattr, a symlink and a folder tagged as a cache."""
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY)
    for level in range(LONG_LEVELS):
        _write(fd, f"f{level}", b"level %d" % level)
        os.mkdir(LONG, dir_fd=fd)
        fd, parent = os.open(LONG, os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    _write(fd, "bottom", b"at the bottom", 0o600)
    os.setxattr(f"/proc/self/fd/{fd}/bottom", "user.deep", b"yes")
    os.symlink("somewhere", "link", dir_fd=fd)
    os.mkdir("cache", dir_fd=fd)
    _write(fd, "cache/CACHEDIR.TAG", b"Signature: 8a477f597d28d172789f06886806bc55")
    _write(fd, "cache/junk", b"not backed up")
    os.close(fd)


def _write(dir_fd: int, name: str, data: bytes, mode: int = 0o644) -> None:
    with os.fdopen(os.open(name, os.O_WRONLY | os.O_CREAT, mode, dir_fd=dir_fd), "wb") as f:
        f.write(data)


def _seen(root) -> list:
    """What the tests compare: each level's file, then the bottom's entries."""
    fd = os.open(root, os.O_RDONLY)
    try:
        files = []
        for level in range(LONG_LEVELS):
            files.append(_read(fd, f"f{level}"))
            fd, parent = os.open(LONG, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        there = f"/proc/self/fd/{fd}"
        return [files, sorted(os.listdir(fd)), _read(fd, "bottom"),
                os.stat("bottom", dir_fd=fd).st_mode, os.getxattr(f"{there}/bottom", "user.deep"),
                os.readlink("link", dir_fd=fd), sorted(os.listdir(f"{there}/cache"))]
    finally:
        os.close(fd)


def _read(dir_fd: int, name: str) -> bytes:
    with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb") as f:
        return f.read()


def _remove_long(root) -> None:
    fds = [os.open(root, os.O_RDONLY)]
    for _ in range(LONG_LEVELS):
        fds.append(os.open(LONG, os.O_RDONLY, dir_fd=fds[-1]))
    for fd in fds:
        for name in os.listdir(fd):
            if name == "cache":
                for inner in os.listdir(f"/proc/self/fd/{fd}/cache"):
                    os.unlink(f"cache/{inner}", dir_fd=fd)
                os.rmdir("cache", dir_fd=fd)
            elif os.fsencode(name) != LONG:
                os.unlink(name, dir_fd=fd)
    while len(fds) > 1:
        os.close(fds.pop())
        os.rmdir(LONG, dir_fd=fds[-1])
    os.close(fds[0])
    os.rmdir(root)


def test_entries_below_path_max_keep_their_metadata_and_exclusions(fogvault, tmp_path):
    """Below 4 KiB of long names every kind of entry is stored with its metadata, and a cache
    folder's contents are still skipped."""
    source, restored = tmp_path / "src", tmp_path / "out" / str(tmp_path / "src").lstrip("/")
    _long_names_tree(source)
    try:
        assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
        done = fogvault("backup", "-r", "repo", "src", "--exclude-caches")
        assert done.returncode == 0, done.stderr[-500:]
        assert fogvault("restore", "-r", "repo", "latest", "-t", "out").returncode == 0
        want = _seen(source)
        assert want[-1] == ["CACHEDIR.TAG", "junk"]
        assert _seen(restored) == [*want[:-1], []]  # the cache folder restored empty
    finally:
        for root in (source, restored):
            if os.path.lexists(root):
                _remove_long(root)


def _too_deep(make_repo, source, monkeypatch, **options):
    """A backup of an 8-level chain at ``source`` that lists folders down to its 4th level."""
    levels = str(source).count("/") + 4  # src is that many folders deep, then d/d/d/d
    monkeypatch.setattr(archiver, "MAX_DEPTH", levels)
    result = archiver.Archiver(make_repo(), archiver.BackupOptions(**options)).run([str(source)])
    return result, levels


def test_a_folder_deeper_than_the_walk_goes_is_a_warning(make_repo, tmp_path, monkeypatch):
    source = tmp_path / "src"
    with nested(source, 8):
        result, levels = _too_deep(make_repo, source, monkeypatch)
    too_deep = os.path.join(source, *["d"] * 5)
    assert list(result.warnings) == [
        f"{too_deep}: cannot list folder: more than {levels:,} folders deep"]
    assert result.snapshot.summary.files_failed == 1
    assert result.snapshot.summary.dirs == 6  # src and five levels below it


def test_a_folder_too_deep_whose_contents_are_excluded_is_no_warning(
        make_repo, tmp_path, monkeypatch):
    source = tmp_path / "src"
    with nested(source, 8):
        with bottom(source, 5) as fd:
            _write(fd, ".nobackup", b"")
        result, _ = _too_deep(make_repo, source, monkeypatch,
                              excludes=ExcludeRules(if_present=[".nobackup"]))
        os.unlink(os.path.join(source, *["d"] * 5, ".nobackup"))
    assert list(result.warnings) == []
    assert result.snapshot.summary.dirs == 6


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


def test_without_proc_deep_entries_fail_as_too_long(make_repo, tmp_path, monkeypatch):
    """Folders are held only where /proc/self/fd can reach their entries; elsewhere the
    warning is the kernel's own, not a misleading 'No such file or directory'."""
    monkeypatch.setattr(short_paths, "PROC_FDS", str(tmp_path / "no-proc"))
    with nested(tmp_path / "src", DEPTH):
        result = archiver.Archiver(make_repo(), archiver.BackupOptions()).run(
            [str(tmp_path / "src")])
    assert len(result.warnings) == 1
    assert result.warnings[0].endswith("/d: cannot stat: File name too long")
