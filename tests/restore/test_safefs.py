"""SafeRoot's cache of folder descriptors under restore's concurrent writers: a descriptor
evicted while a file is being opened in it stays open until that open is done, and none
leaks. The mount points below a target, from the real /proc/self/mountinfo."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fogvault.errors import UnsafePath
from fogvault.restore.safefs import SafeRoot, mount_points_below

TMPFS = ("-t", "tmpfs", "none")

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_folder_evicted_while_a_file_is_opened_in_it_is_closed_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _open_fds()
    root = SafeRoot(os.fsencode(tmp_path / "target"))
    root.CACHED_DIRS = 2
    for name in (b"b", b"c", b"a"):  # a is the most recently used: cached
        with root.open_dir((name,), create=True):
            pass
    real_open = os.open
    checked = []

    def open_evicting(name, flags, mode=0o777, *, dir_fd=None):
        if name == b"f":  # the file's folder is in use: push it out of the cache now
            for other in (b"b", b"c"):
                with root.open_dir((other,)):
                    pass
            os.fstat(dir_fd)  # still open (EBADF otherwise)
            checked.append(dir_fd)
        return real_open(name, flags, mode, dir_fd=dir_fd)

    def create() -> None:
        with root.open_file((b"a", b"f"), _CREATE) as fd:
            os.write(fd, b"x")

    monkeypatch.setattr(os, "open", open_evicting)
    # In a thread: an open that held SafeRoot's lock would deadlock on the eviction above.
    creator = threading.Thread(target=create, daemon=True)
    creator.start()
    creator.join(timeout=60)
    monkeypatch.undo()
    assert not creator.is_alive(), "opening a file held the lock that eviction needs"
    assert checked and (tmp_path / "target" / "a" / "f").read_bytes() == b"x"
    with pytest.raises(OSError):
        os.fstat(checked[0])  # closed by its last user, once evicted
    root.close()
    assert _open_fds() == before


def test_threads_create_files_across_more_folders_than_are_cached(tmp_path: Path) -> None:
    before = _open_fds()
    root = SafeRoot(os.fsencode(tmp_path / "target"))
    root.CACHED_DIRS = 3
    folders = [(f"d{n}".encode(),) for n in range(12)]
    failures: list[BaseException] = []

    def create(thread: int) -> None:
        try:
            for n in range(240):
                folder = folders[(n * 5 + thread) % len(folders)]
                with root.open_file((*folder, f"t{thread}-{n}".encode()), _CREATE) as fd:
                    os.write(fd, b"%d" % n)
        except BaseException as exc:  # reported below
            failures.append(exc)

    for folder in folders:
        with root.open_dir(folder, create=True):
            pass
    threads = [threading.Thread(target=create, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    root.close()
    assert not failures
    expected: dict[bytes, set[str]] = {folder: set() for (folder,) in folders}
    for thread in range(3):
        for n in range(240):
            expected[folders[(n * 5 + thread) % len(folders)][0]].add(f"t{thread}-{n}")
    for folder, names in expected.items():
        path = tmp_path / "target" / folder.decode()
        assert set(os.listdir(path)) == names
        assert all((path / name).read_bytes() == name.split("-")[1].encode() for name in names)
    assert _open_fds() == before


@pytest.mark.parametrize("name", [b"..", b".", b"a/b", b""])
def test_remove_refuses_a_name_that_is_not_one_entry_of_its_folder(
        tmp_path: Path, name: bytes) -> None:
    """restore --delete removes names it listed; SafeRoot checks them again, so that a caller's
    mistake cannot remove the target's parent (or the target) through '..' or '.'."""
    (tmp_path / "target" / "a" / "b").mkdir(parents=True)
    root = SafeRoot(os.fsencode(tmp_path / "target"))
    try:
        with pytest.raises(UnsafePath):
            root.remove((b"a", name))
    finally:
        root.close()
    assert (tmp_path / "target" / "a" / "b").is_dir()


@contextlib.contextmanager
def mounted(point: Path, *how: str) -> Iterator[Path]:
    """``mount *how point`` (``TMPFS``, or ``--bind SOURCE``; tests run as root), unmounted on
    the way out whatever happens."""
    subprocess.run(["mount", *how, str(point)], check=True, capture_output=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_mount_points_below_a_folder(tmp_path: Path) -> None:
    """Mount points strictly below the root, as components: a name with a space and a tab
    (escaped in mountinfo as \\040, \\011), a bind mount of a folder,
    nested ones; neither the root itself, nor one beside it."""
    root = tmp_path / "target"
    for folder in (root, tmp_path / "beside", tmp_path / "source"):
        folder.mkdir()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mounted(root, *TMPFS))
        for folder in ("a b\tc", "bind", "other"):
            (root / folder).mkdir()
        stack.enter_context(mounted(root / "a b\tc", *TMPFS))
        stack.enter_context(mounted(root / "bind", "--bind", str(tmp_path / "source")))
        stack.enter_context(mounted(root / "other", *TMPFS))
        (root / "other" / "nested").mkdir()
        stack.enter_context(mounted(root / "other" / "nested", *TMPFS))
        stack.enter_context(mounted(tmp_path / "beside", *TMPFS))

        found = mount_points_below(os.fsencode(root))

    assert found == {(b"a b\tc",), (b"bind",), (b"other",), (b"other", b"nested")}
