"""LocalStorage writes large objects around the page cache (O_DIRECT) where it can, and falls
back to normal writes, part-way or from the start, without changing a byte of the object."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fogvault.heap import zeroed_map
from fogvault.storage import local
from fogvault.storage.local import DIRECT_MIN, LocalStorage

BLOCK = 4096
PIECE = 1024 * 1024


def _direct_io_works(folder: Path) -> bool:
    """Whether this file system accepts an aligned O_DIRECT write (tmpfs before Linux 6.6 and
    some FUSE file systems do not)."""
    if not hasattr(os, "O_DIRECT"):
        return False
    path = folder / "direct-io-probe"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    try:
        import mmap

        with mmap.mmap(-1, BLOCK) as buffer:
            return os.write(fd, buffer) == BLOCK
    except OSError as exc:
        assert exc.errno == errno.EINVAL
        return False
    finally:
        os.close(fd)
        path.unlink()


@pytest.mark.parametrize("size", [
    DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 1, 2 * PIECE, 3 * PIECE + BLOCK - 1, 5 * PIECE + 7,
])
def test_objects_around_the_direct_sizes_round_trip(tmp_path: Path, size: int) -> None:
    storage = LocalStorage(tmp_path / "target")
    storage.create()
    data = os.urandom(size)
    storage.write("data/ab/obj", data)
    assert storage.read("data/ab/obj") == data
    assert os.listdir(tmp_path / "target" / "data" / "ab") == ["obj"]  # no temporary left


def test_direct_write_covers_the_whole_blocks(tmp_path: Path) -> None:
    data = memoryview(os.urandom(3 * PIECE + 5 * BLOCK + 100))
    path = tmp_path / "obj"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        done = local._write_direct(fd, data)
        assert os.lseek(fd, 0, os.SEEK_CUR) == done
    finally:
        os.close(fd)
    expected = len(data) - 100 if _direct_io_works(tmp_path) else 0
    assert done == expected
    assert path.read_bytes() == bytes(data[:done])


def test_page_aligned_memory_is_written_without_the_copy(tmp_path, monkeypatch) -> None:
    """A view of a private map starting at its first byte (a finished pack) goes to the kernel
    as it is; bytes and views starting part-way into a page go through the aligned buffer."""
    data = os.urandom(2 * PIECE + 3 * BLOCK + 10)
    mapped = zeroed_map(len(data))
    mapped[:] = data
    assert local._is_aligned(memoryview(mapped))
    assert not local._is_aligned(memoryview(mapped)[1:])
    assert not local._is_aligned(memoryview(data))  # read-only: cannot tell, so copied
    copies = []
    real = local._aligned_buffer
    monkeypatch.setattr(local, "_aligned_buffer", lambda: copies.append(1) or real())
    storage = LocalStorage(tmp_path / "target")
    storage.create()
    storage.write("aligned", memoryview(mapped))
    assert storage.read("aligned") == data
    assert copies == []
    storage.write("unaligned", memoryview(mapped)[1:])
    assert storage.read("unaligned") == data[1:]
    assert copies == ([1] if _direct_io_works(tmp_path) else [])


def test_a_refusal_part_way_is_finished_with_normal_writes(tmp_path, monkeypatch) -> None:
    """With a block size the kernel rejects (1000 bytes), the 1 MiB pieces are accepted and the
    last, misaligned piece is refused with EINVAL: the rest is written normally."""
    direct = _direct_io_works(tmp_path)
    monkeypatch.setattr(local, "_DIRECT_ALIGN", 1000)
    data = os.urandom(2 * PIECE + 5000)
    path = tmp_path / "obj"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert local._write_direct(fd, memoryview(data)) == (2 * PIECE if direct else 0)
    finally:
        os.close(fd)
    storage = LocalStorage(tmp_path / "target")
    storage.create()
    storage.write("obj", data)
    assert storage.read("obj") == data


def test_a_file_system_without_direct_io_gets_normal_writes(tmp_path, monkeypatch) -> None:
    """fcntl refusing O_DIRECT (as on file systems without it) leaves the write to normal I/O."""
    real_fcntl = local.fcntl.fcntl

    def refuse_direct(fd, command, arg=0):
        if command == local.fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, command, arg)

    monkeypatch.setattr(local.fcntl, "fcntl", refuse_direct)
    storage = LocalStorage(tmp_path / "target")
    storage.create()
    data = os.urandom(2 * PIECE + 1)
    storage.write("obj", data)
    assert storage.read("obj") == data


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
def test_large_reads_leave_the_page_cache_small_ones_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads of DROP_AFTER_READ bytes or more (a restore's spans, whole packs) are dropped from
    the page cache once read, for the range read; small ones (headers, trees) are not; a read
    ending at the end of the object drops what it got."""
    from fogvault.storage.local import DROP_AFTER_READ

    dropped: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        dropped.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(local.os, "posix_fadvise", spy)
    storage = LocalStorage(tmp_path / "t")
    storage.create()
    data = os.urandom(3 * DROP_AFTER_READ)
    storage.write("data/x", data)
    assert storage.read("data/x", 100, 1000) == data[100:1100]
    assert dropped == []
    assert storage.read("data/x", 7, DROP_AFTER_READ) == data[7 : 7 + DROP_AFTER_READ]
    assert dropped == [(7, DROP_AFTER_READ)]
    assert storage.read("data/x", DROP_AFTER_READ, 5 * DROP_AFTER_READ) == data[DROP_AFTER_READ:]
    assert dropped[-1] == (DROP_AFTER_READ, 2 * DROP_AFTER_READ)
    assert storage.read("data/x") == data
    assert dropped[-1] == (0, len(data))


def test_an_object_deleted_while_its_folder_is_listed_is_left_out(tmp_path, monkeypatch) -> None:
    """A lock released by another process between reading locks/ and looking at its entries:
    the listing goes on without it (it failed with 'no such object', which stopped a backup
    that was taking its lock while a prune ran)."""
    storage = LocalStorage(tmp_path)
    for name in ("locks/a", "locks/b", "locks/c"):
        storage.write(name, b"lock")
    real_scandir = local.os.scandir

    def scandir_then_release(path):
        entries = list(real_scandir(path))
        if str(path).endswith("locks"):
            os.unlink(tmp_path / "locks" / "b")
        return iter(entries)

    monkeypatch.setattr(local.os, "scandir", scandir_then_release)
    assert sorted(info.name for info in storage.list("locks/")) == ["locks/a", "locks/c"]


def test_a_fifo_or_a_folder_in_an_object_s_place_is_not_an_object(tmp_path) -> None:
    """A fifo where a pack should be: the open waited for a writer for ever (restore, dump and
    copy hung, and the first SIGTERM did not end them)."""
    from fogvault.storage.errors import ObjectNotFound

    storage = LocalStorage(tmp_path)
    storage.write("data/ab/x", b"pack")
    os.mkfifo(tmp_path / "data" / "ab" / "fifo")
    (tmp_path / "data" / "ab" / "folder").mkdir()
    with pytest.raises(ObjectNotFound, match="not an object"):
        storage.read("data/ab/fifo")
    with pytest.raises(ObjectNotFound, match="is a folder"):
        storage.read("data/ab/folder", 0, 4)
    assert storage.read("data/ab/x", 1, 2) == b"ac"
