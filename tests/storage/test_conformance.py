"""The storage contract (fogvault/storage/base.py), checked for every backend and wrapper.

Each test runs once per entry of conftest.BACKENDS: a local folder, memory://, S3 on a real Ceph
RGW, SFTP on a real OpenSSH, FaultyStorage without faults, ThrottledStorage at limits far above
the traffic, and RetryingStorage over a target that fails one call in five.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fogvault.heap import zeroed_map
from fogvault.storage import (
    FaultyStorage,
    InvalidName,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    RetryingStorage,
    Storage,
)
from fogvault.storage.fsspec_store import S3Storage, SftpStorage
from fogvault.storage.local import LocalStorage
from fogvault.storage.throttled import ThrottledStorage

MiB = 1 << 20


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def listed(storage: Storage, prefix: str = "") -> list[ObjectInfo]:
    return sorted(storage.list(prefix), key=lambda info: info.name)


def names(storage: Storage, prefix: str = "") -> list[str]:
    return [info.name for info in listed(storage, prefix)]





def plant(storage: Storage, files: dict[str, bytes]) -> None:
    """Put ``files`` (paths below the target's root) there behind the Storage API: quickly, or
    as an interrupted write leaves its temporary."""
    while isinstance(storage, FaultyStorage | RetryingStorage | ThrottledStorage):
        storage = storage.inner
    if isinstance(storage, LocalStorage):
        for path, data in files.items():
            file = Path(storage.root, path)
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        return
    fs = storage._filesystem() if isinstance(storage, SftpStorage) else storage.fs
    fs.pipe({f"{storage.root}/{path}": data for path, data in files.items()})


# ----------------------------------------------------------------------------- write and read


@pytest.mark.parametrize("name", ["a", "config", "data/00/0a1b2c", "x-y_z.v1/A.B-c_9"])
def test_write_then_read_round_trip(storage: Storage, name: str) -> None:
    data = bytes(range(256)) * 10 + b"\x00end"
    storage.write(name, data)
    assert storage.read(name) == data
    assert storage.stat(name) == ObjectInfo(name, len(data))


def test_write_takes_a_view_of_mapped_memory_and_keeps_nothing(storage: Storage) -> None:
    """Packs are handed over as views of page-aligned maps (repo/pack.py), larger than the
    local target's direct-I/O threshold and with a partial last block; once ``write`` returns
    the memory is the caller's again: no view of it is left, so the map can be closed."""
    data = payload(3 * MiB + 4097, seed=7)
    buffer = zeroed_map(len(data))
    buffer[:] = data
    view = memoryview(buffer)
    storage.write("data/ab/view", view)
    view.release()
    buffer.close()  # BufferError if the backend still held a view of it
    assert storage.read("data/ab/view") == data


def test_empty_object(storage: Storage) -> None:
    storage.write("empty", b"")
    assert storage.read("empty") == b""
    assert storage.read("empty", 0, 10) == b""
    assert storage.stat("empty").size == 0
    assert listed(storage) == [ObjectInfo("empty", 0)]


def test_create_is_idempotent(storage: Storage) -> None:
    storage.write("kept", b"1")
    storage.create()
    assert storage.read("kept") == b"1"


def test_create_only_write_keeps_the_old_object(storage: Storage) -> None:
    storage.write("locks/a", b"first")
    with pytest.raises(ObjectExists):
        storage.write("locks/a", b"second, longer")
    assert storage.read("locks/a") == b"first"
    assert listed(storage) == [ObjectInfo("locks/a", 5)]


def test_overwrite_replaces_or_creates(storage: Storage) -> None:
    storage.write("index/0", b"a much longer first version", overwrite=True)
    storage.write("index/0", b"v2", overwrite=True)
    assert storage.read("index/0") == b"v2"
    assert listed(storage) == [ObjectInfo("index/0", 2)]


def test_concurrent_writes_of_distinct_names(storage: Storage) -> None:
    wanted = {f"data/{i % 4}/{i:04d}": payload(1000 + i, seed=i) for i in range(48)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: storage.write(*item), wanted.items()))
    assert names(storage) == sorted(wanted)
    with ThreadPoolExecutor(8) as pool:
        got = dict(zip(wanted, pool.map(storage.read, wanted), strict=True))
    assert got == wanted


def test_concurrent_create_only_writes_of_one_name_have_one_winner(storage: Storage) -> None:
    def attempt(i: int) -> bytes | None:
        data = f"writer {i}".encode() * (1000 + i)
        try:
            storage.write("snapshots/one", data)
        except ObjectExists:
            return None
        return data

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    winners = [data for data in results if data is not None]
    assert len(winners) == 1
    assert storage.read("snapshots/one") == winners[0]


def test_large_object(storage: Storage) -> None:
    data = payload(40 * MiB, seed=40)
    storage.write("packs/large", data)
    assert storage.stat("packs/large").size == len(data)
    middle = 17 * MiB + 12345
    assert storage.read("packs/large", middle, 3 * MiB) == data[middle : middle + 3 * MiB]
    assert storage.read("packs/large", len(data) - 100, 1000) == data[-100:]
    assert storage.read("packs/large") == data


def test_a_reader_never_sees_a_partial_object(storage: Storage) -> None:
    data = payload(16 * MiB, seed=16)
    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(storage.write, "packs/atomic", data)
        sizes = set()
        while not writing.done():
            try:
                sizes.add(storage.stat("packs/atomic").size)
            except ObjectNotFound:
                sizes.add(None)
            sizes.update(info.size for info in storage.list("packs/"))
        writing.result()
    assert sizes <= {None, len(data)}
    assert storage.read("packs/atomic") == data


# ----------------------------------------------------------------------------- ranged reads


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 1), (0, 10), (3, 4), (9, 1), (5, None), (0, None), (3, 0)],
)
def test_ranged_read_returns_exactly_the_range(storage: Storage, offset, length) -> None:
    data = b"0123456789"
    storage.write("r", data)
    end = None if length is None else offset + length
    assert storage.read("r", offset, length) == data[offset:end]


@pytest.mark.parametrize(("offset", "length"), [(8, 5), (0, 11), (10, 5), (10, None), (25, 3)])
def test_read_past_the_end_is_short_not_an_error(storage: Storage, offset, length) -> None:
    storage.write("r", b"0123456789")
    assert storage.read("r", offset, length) == b"0123456789"[offset:]


@pytest.mark.parametrize(("offset", "length"), [(0, None), (0, 10), (5, 1), (0, 0)])
def test_read_of_a_missing_name_raises_not_found(storage: Storage, offset, length) -> None:
    with pytest.raises(ObjectNotFound):
        storage.read("absent", offset, length)


def test_read_below_an_object_raises_not_found(storage: Storage, request) -> None:
    storage.write("present", b"x")
    with pytest.raises(ObjectNotFound):
        storage.read("present/below")


# ----------------------------------------------------------------------------- stat and list


def test_stat_and_exists(storage: Storage) -> None:
    storage.write("d/x", b"12345")
    assert storage.stat("d/x") == ObjectInfo("d/x", 5)
    assert storage.exists("d/x")
    assert not storage.exists("d/y")
    with pytest.raises(ObjectNotFound):
        storage.stat("d/y")


def test_a_folder_is_not_an_object(storage: Storage, request) -> None:
    storage.write("d/x", b"12345")
    assert not storage.exists("d")
    with pytest.raises(ObjectNotFound):
        storage.stat("d")


def test_list_by_prefix_and_recursively(storage: Storage) -> None:
    for name in ["config", "data/ab/1", "data/ab/2", "data/abc/3", "data/b/4", "keys/k1"]:
        storage.write(name, name.encode())
    assert names(storage) == [
        "config", "data/ab/1", "data/ab/2", "data/abc/3", "data/b/4", "keys/k1",
    ]  # fmt: skip
    assert names(storage, "data/") == ["data/ab/1", "data/ab/2", "data/abc/3", "data/b/4"]
    assert names(storage, "data/ab/") == ["data/ab/1", "data/ab/2"]
    assert names(storage, "data/ab") == ["data/ab/1", "data/ab/2", "data/abc/3"]
    assert names(storage, "con") == ["config"]
    assert names(storage, "keys/k1") == ["keys/k1"]
    assert names(storage, "nothing/") == []
    assert names(storage, "data/zz") == []
    assert listed(storage, "data/b/") == [ObjectInfo("data/b/4", 8)]


def test_list_yields_every_object_exactly_once(storage: Storage) -> None:
    # several pages of a listing: OpenSSH sends 100 entries per READDIR answer (S3's pages are
    # tested in test_s3.py)
    wanted = [f"data/{i % 2}/{i:05d}" for i in range(250)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda name: storage.write(name, b"x"), wanted))
    found = [info.name for info in storage.list("data/")]
    assert len(found) == len(wanted)
    assert sorted(found) == sorted(wanted)


def test_list_never_shows_temporaries(storage: Storage) -> None:
    storage.write("data/ab/real", b"1")
    temporaries = [".tmp-top-1234", "data/ab/.tmp-real-5678", "data/.tmpdir/x", ".hidden/y"]
    plant(storage, dict.fromkeys(temporaries, b"partial"))
    assert names(storage) == ["data/ab/real"]
    assert names(storage, "data/") == ["data/ab/real"]
    assert names(storage, "data/ab/") == ["data/ab/real"]


def test_list_of_an_empty_target(storage: Storage) -> None:
    assert listed(storage) == []


# ----------------------------------------------------------------------------- delete


def test_delete(storage: Storage) -> None:
    storage.write("a/1", b"1")
    storage.write("a/2", b"2")
    storage.delete("a/1")
    with pytest.raises(ObjectNotFound):
        storage.read("a/1")
    assert not storage.exists("a/1")
    assert names(storage) == ["a/2"]
    storage.write("a/1", b"again")  # a deleted name can be created anew
    assert storage.read("a/1") == b"again"


def test_delete_of_a_missing_name_raises_not_found(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.delete("never-written")
    storage.write("once", b"1")
    storage.delete("once")
    with pytest.raises(ObjectNotFound):
        storage.delete("once")


# ----------------------------------------------------------------------------- leftovers


def abandon_a_write(storage: Storage, name: str) -> bool:
    """Leave what a writer killed while writing ``name`` leaves; False if the backend's writes
    leave nothing (memory)."""
    inner = storage
    while isinstance(inner, FaultyStorage | RetryingStorage):
        inner = inner.inner
    if isinstance(inner, S3Storage):  # an upload started, one part sent, never completed
        key = inner._key(name)
        upload = inner.fs.call_s3("create_multipart_upload", Bucket=inner.bucket, Key=key)
        inner.fs.call_s3("upload_part", Bucket=inner.bucket, Key=key, PartNumber=1,
                         UploadId=upload["UploadId"], Body=b"partial")  # fmt: skip
        return True
    if isinstance(inner, LocalStorage | SftpStorage):  # a temporary never renamed
        folder, _, leaf = name.rpartition("/")
        plant(inner, {f"{folder}/.tmp-{leaf}-dead": b"partial"})
        return True
    return False


def test_remove_incomplete_removes_only_old_leftovers(storage: Storage) -> None:
    storage.write("data/ab/kept", b"object")
    left = abandon_a_write(storage, "data/ab/dead")
    assert storage.remove_incomplete(older_than=3600) == 0  # young: a writer may be running
    assert storage.remove_incomplete(older_than=-60) == int(left)  # everything counts as old
    assert storage.remove_incomplete(older_than=-60) == 0
    assert listed(storage) == [ObjectInfo("data/ab/kept", 6)]
    assert storage.read("data/ab/kept") == b"object"


# ----------------------------------------------------------------------------- names

BAD_NAMES = [
    "", "/abs", "trailing/", "a//b", ".hidden", "dir/.tmp-x", ".", "..", "a/../b", "a/./b",
    "sp ace", "na\u00efve", "back\\slash", "new\nline", "star*", "co:lon",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_rejected(storage: Storage, name: str) -> None:
    with pytest.raises(InvalidName):
        storage.write(name, b"x")
    with pytest.raises(InvalidName):
        storage.read(name)
    with pytest.raises(InvalidName):
        storage.stat(name)
    with pytest.raises(InvalidName):
        storage.delete(name)
    assert listed(storage) == []


@pytest.mark.parametrize("prefix", ["/", "../", "/abs/", ".tmp", "a/../", "sp ace"])
def test_invalid_list_prefixes_are_rejected(storage: Storage, prefix: str) -> None:
    with pytest.raises(InvalidName):
        list(storage.list(prefix))
