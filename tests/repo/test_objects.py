"""Every object type round-trips, and any change to stored bytes is detected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fogvault.repo.pack as pack_module
from fogvault.crypto import content_hash
from fogvault.errors import IntegrityError, MalformedObject
from fogvault.heap import zeroed_map
from fogvault.maintenance.verify import stored_copy_problem
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import BlobType, index_name, pack_name, parse_hex_id, snapshot_name
from fogvault.repo.index import IndexFile
from fogvault.repo.keys import KeyFile
from fogvault.repo.lock import LockInfo
from fogvault.repo.pack import (
    PackBuilder,
    PackEntry,
    header_length,
    parse_header,
    seal_blob,
    verify_pack,
)
from fogvault.repo.packer import PackWriter
from fogvault.repo.snapshot import Snapshot, new_uid, now
from fogvault.repo.tree import DIR, FILE, Node, Tree
from fogvault.storage.errors import TransientStorageError


def _store(repo, blobs: list[bytes], blob_type=BlobType.DATA) -> list[bytes]:
    writer = PackWriter(repo)
    ids = []
    for data in blobs:
        blob_id = repo.blob_id(data)
        if writer.reserve(blob_id):
            sealed = seal_blob(repo.master.encryption, blob_type, blob_id, data, 3)
            writer.add(blob_type, blob_id, sealed, len(data))
        ids.append(blob_id)
    writer.flush()
    writer.close()
    return ids


def _pack_problem(repo, pack_id: bytes) -> str | None:
    """What check --read-data finds wrong with the pack's copy on the first target."""
    storage = repo.targets.targets[0].storage
    name = pack_name(pack_id)
    problem = stored_copy_problem(repo, storage, name, storage.stat(name).size)
    return None if problem is None else problem.reason


def _whole(data: bytes):
    return lambda offset, length: data[offset : offset + length]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_blobs_round_trip_through_packs_and_index(make_repo, reopen):
    repo = make_repo()
    blobs = [os.urandom(1000), b"text " * 5000, b"", os.urandom(300_000)]
    ids = _store(repo, blobs)
    fresh = reopen(repo)
    assert [fresh.load_blob(i) for i in ids] == blobs


def test_tree_and_snapshot_round_trip(make_repo, reopen):
    repo = make_repo()
    child = Node(name=b"\xff\xfe not utf-8", type=FILE, mode=0o640, size=3,
                 content=[os.urandom(32)], xattrs=[(b"user.a", b"\x00\x01")])
    tree = Tree([Node(name=b"dir", type=DIR, subtree=os.urandom(32)), child])
    [tree_id] = _store(repo, [tree.encode()], BlobType.TREE)
    snapshot = Snapshot(uid=new_uid(), time=now(), host="h", user="u", paths=["/x"],
                        tree=tree_id, tags=["t"])
    repo.save_snapshot(snapshot)
    fresh = reopen(repo)
    assert fresh.load_tree(tree_id).encode() == tree.encode()
    assert fresh.load_tree(tree_id).find(b"\xff\xfe not utf-8").xattrs == child.xattrs
    loaded = fresh.load_snapshot(snapshot.uid)
    assert loaded.to_json() == snapshot.to_json()


def test_load_trees_reads_a_pack_once_and_names_each_failure(make_repo, tmp_path):
    """Trees of one pack come from one ranged read; a damaged tree, a blob that is no tree and
    an id missing from the index each get their own error, and the others still load."""
    repo = make_repo()
    trees = [Tree([Node(name=b"f%d" % i, type=FILE, size=i)]) for i in range(6)]
    ids = _store(repo, [t.encode() for t in trees] + [b"not json"], BlobType.TREE)
    tree_ids, junk_id = ids[:6], ids[6]
    damaged = repo.index.get(tree_ids[2])
    _flip(tmp_path / "repo" / pack_name(damaged.pack_id), damaged.offset + 30)
    missing = os.urandom(32)
    reads: list[bytes] = []
    real = repo.read_pack_blobs
    repo.read_pack_blobs = lambda pack_id, group: reads.append(pack_id) or real(pack_id, group)

    with repo.trees_from_targets():  # not the good copy the packer cached
        loaded = dict(repo.load_trees([*tree_ids, junk_id, missing]))

    assert sorted(loaded) == sorted([*tree_ids, junk_id, missing])
    assert reads[0] == damaged.pack_id and len(reads) == 1  # then one load per tree
    for i, tree_id in enumerate(tree_ids):
        if i == 2:
            assert isinstance(loaded[tree_id], IntegrityError)
        else:
            assert loaded[tree_id].encode() == trees[i].encode()
    assert isinstance(loaded[junk_id], MalformedObject)
    assert isinstance(loaded[missing], IntegrityError)
    assert "not in the index" in str(loaded[missing])


def test_load_trees_retries_a_failed_read_tree_by_tree(make_repo):
    """A batched read that fails for a storage reason (another target's timeout, say) does not
    condemn its trees: each is loaded on its own."""
    repo = make_repo()
    trees = [Tree([Node(name=b"g%d" % i, type=FILE, size=i)]) for i in range(4)]
    ids = _store(repo, [t.encode() for t in trees], BlobType.TREE)

    def unreachable(pack_id, group):
        raise TransientStorageError("timed out", target="elsewhere", name="data/x")

    repo.read_pack_blobs = unreachable
    loaded = dict(repo.load_trees(ids))
    assert [loaded[i].encode() for i in ids] == [t.encode() for t in trees]


def test_every_byte_of_a_pack_is_protected(make_repo, tmp_path):
    repo = make_repo()
    [blob_id] = _store(repo, [b"precious " * 100])
    entry = repo.index.get(blob_id)
    path = tmp_path / "repo" / pack_name(entry.pack_id)
    original = path.read_bytes()
    for offset in range(0, len(original), max(1, len(original) // 60)):
        path.write_bytes(original)
        _flip(path, offset)
        assert _pack_problem(repo, entry.pack_id) is not None
        if offset < entry.length:  # inside the blob: reading the blob alone must fail too
            with pytest.raises(IntegrityError):
                repo.load_blob(blob_id)
    path.write_bytes(original)
    assert _pack_problem(repo, entry.pack_id) is None


def test_tampered_snapshot_index_and_config_are_rejected(make_repo, reopen, tmp_path):
    repo = make_repo()
    _store(repo, [b"data"])
    uid = new_uid()
    repo.save_snapshot(Snapshot(uid=uid, time=now(), host="h", user="u", paths=["/"],
                                tree=os.urandom(32)))
    root = tmp_path / "repo"
    _flip(root / snapshot_name(uid), 30)
    with pytest.raises(IntegrityError):
        repo.load_snapshot(uid)
    [index] = list((root / "index").iterdir())
    _flip(index, 40)
    repo.cache = None  # the cached copy is intact (and verified), so read the target's
    with pytest.raises(IntegrityError):
        repo.read_index_file(f"index/{index.name}")
    with pytest.raises(IntegrityError):
        repo.index_file_packs(f"index/{index.name}")
    _flip(root / "config", 30)
    with pytest.raises(IntegrityError):
        reopen(repo)


def test_snapshot_renamed_to_another_uid_is_rejected(make_repo):
    repo = make_repo()
    uid, other = new_uid(), new_uid()
    repo.save_snapshot(Snapshot(uid=uid, time=now(), host="h", user="u", paths=["/"],
                                tree=os.urandom(32)))
    root = Path(repo.targets.urls[0])
    (root / snapshot_name(uid)).rename(root / snapshot_name(other))
    with pytest.raises(IntegrityError):
        repo.load_snapshot(other)


def test_blob_moved_into_another_pack_or_renamed_is_rejected(make_repo):
    repo = make_repo()
    key = repo.master.encryption
    data_a, data_b = b"A" * 5000, b"B" * 5000
    id_a, id_b = repo.blob_id(data_a), repo.blob_id(data_b)
    sealed_a = seal_blob(key, BlobType.DATA, id_a, data_a, 3)
    # A pack whose header claims blob A's ciphertext is blob B (a renamed blob):
    builder = PackBuilder(BlobType.DATA)
    builder.add(id_b, sealed_a, len(data_a))
    _, pack, entries = builder.finish(key)
    with pytest.raises(IntegrityError):
        repo.open_blob(entries[0], pack[: entries[0].length])
    # A data blob served as a tree blob (type confusion) fails authentication too:
    as_tree = PackEntry(BlobType.TREE, id_a, 0, len(sealed_a), len(data_a))
    with pytest.raises(IntegrityError):
        repo.open_blob(as_tree, sealed_a)
    # A pack copied under another pack's name no longer matches its name:
    _store(repo, [data_a])
    entry = repo.index.get(id_a)
    root = Path(repo.targets.urls[0])
    other = root / pack_name(bytes(32))
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes((root / pack_name(entry.pack_id)).read_bytes())
    assert _pack_problem(repo, bytes(32)) == "pack does not match its name"


def test_index_file_with_absurd_counts_is_malformed():
    good = IndexFile({os.urandom(32): [PackEntry(BlobType.DATA, os.urandom(32), 0, 100, 50)]})
    data = bytearray(good.encode())
    assert IndexFile.decode(bytes(data)).blob_count() == 1
    huge = bytearray(data)
    huge[9:13] = (2**32 - 1).to_bytes(4, "little")  # pack count
    with pytest.raises(MalformedObject):
        IndexFile.decode(bytes(huge))
    with pytest.raises(MalformedObject):
        IndexFile.decode(bytes(data[:-3]))
    with pytest.raises(MalformedObject):
        IndexFile.decode(bytes(data) + b"x")


def test_pack_with_absurd_header_length_is_malformed(make_repo):
    repo = make_repo()
    builder = PackBuilder(BlobType.DATA)
    data = b"x" * 100
    blob_id = repo.blob_id(data)
    builder.add(blob_id, seal_blob(repo.master.encryption, BlobType.DATA, blob_id, data, 3), 100)
    pack = bytes(builder.finish(repo.master.encryption)[1])
    forged = pack[:-4] + (2**32 - 1).to_bytes(4, "little")
    keys = (repo.master.encryption, repo.master.identity)
    for bad in (forged, pack[:10]):  # named by their hash: only the parse can refuse them
        with pytest.raises(MalformedObject):
            verify_pack(content_hash(bad), len(bad), _whole(bad), keys)


def test_index_files_are_named_by_their_hash(make_repo):
    repo = make_repo()
    _store(repo, [b"x" * 10])
    [name] = repo.targets.list("index/")
    index_id = bytes.fromhex(name.split("/")[1])
    assert index_name(index_id) == name
    assert index_id in repo.index_ids()


@pytest.mark.parametrize("text", ["00 " * 16 + "00" * 8, "AB" * 32, "0" * 63, "0" * 65, "zz" * 32])
def test_an_id_is_exactly_64_lowercase_hex_digits(text: str) -> None:
    with pytest.raises(MalformedObject):
        parse_hex_id(text)
    assert parse_hex_id("ab" * 32) == b"\xab" * 32


def test_pack_builder_grows_past_its_capacity_and_hands_over_aligned_views(make_repo):
    """A builder whose map is too small (a huge tree blob, a long header) grows it; each
    finished pack is a view of its own page-aligned map, untouched by the next pack built."""
    import ctypes
    import mmap

    key = make_repo().master.encryption
    blobs = [os.urandom(size) for size in (10, 70_000, 5000, 300_000)]
    sealed = [seal_blob(key, BlobType.DATA, bytes([i]) * 32, data, 3)
              for i, data in enumerate(blobs)]
    builder = PackBuilder(BlobType.DATA, capacity=4096)
    packs = []
    for _ in range(2):
        for i, blob in enumerate(sealed):
            builder.add(bytes([i]) * 32, blob, len(blobs[i]))
        packs.append(builder.finish(key))
        assert len(builder) == 0 and builder.size == 0
        if len(packs) == 1:
            first = bytes(packs[0][1])
    assert all(ctypes.addressof(ctypes.c_char.from_buffer(pack)) % mmap.PAGESIZE == 0
               for _, pack, _ in packs)
    for pack_id, pack, entries in packs:
        header = header_length(len(pack), bytes(pack[-4:]))
        assert parse_header(key, bytes(pack[-4 - header : -4]), len(pack)) == entries
        assert [bytes(pack[e.offset : e.offset + e.length]) for e in entries] == sealed
        assert pack_id == content_hash(pack)
    assert bytes(packs[0][1]) == first  # building the second pack left the first alone


def test_a_packs_memory_is_released_once_it_is_uploaded(make_repo, monkeypatch):
    """Each pack's map must go back to the system after its upload: a view kept anywhere (the
    writer's records, a finished future, a target) would hold 16 MiB per pack for the run."""
    import gc
    import weakref

    maps = []

    def recorded_map(size: int, **options):
        buffer = zeroed_map(size, **options)
        maps.append(weakref.ref(buffer))
        return buffer

    monkeypatch.setattr(pack_module, "zeroed_map", recorded_map)
    repo = make_repo()
    repo.config.pack_size = 64 * 1024  # many packs from little data
    writer = PackWriter(repo)
    stored = {}
    for _ in range(40):
        data = os.urandom(20_000)
        blob_id = repo.blob_id(data)
        assert writer.reserve(blob_id)
        writer.add(BlobType.DATA, blob_id,
                   seal_blob(repo.master.encryption, BlobType.DATA, blob_id, data, 3), len(data))
        stored[blob_id] = data
    writer.flush()
    assert writer.stats.packs >= 10
    gc.collect()  # only for the reference cycles of exceptions; none are expected
    assert len(maps) == writer.stats.packs
    assert [ref for ref in maps if ref() is not None] == []
    writer.close()
    assert {blob_id: repo.load_blob(blob_id) for blob_id in stored} == stored


def _put_sealed(writer: PackWriter, repo, data: bytes, write=None) -> bytes:
    """Put one blob the way a backup's workers do: encrypted straight into its place."""
    from functools import partial

    from fogvault.compression import pack_payload
    from fogvault.repo.pack import seal_payload_into, sealed_size

    blob_id = repo.blob_id(data)
    assert writer.reserve(blob_id)
    payload = pack_payload(data, 3)
    seal = partial(seal_payload_into, repo.master.encryption, BlobType.DATA, blob_id, payload)
    writer.put(BlobType.DATA, blob_id, sealed_size(payload), len(data), write or seal)
    return blob_id


def test_threads_encrypting_into_one_pack_at_once_store_every_blob(make_repo, reopen):
    """Several threads write their blobs into the open pack concurrently; each pack goes up
    only after its last blob is written, so every blob reads back."""
    import threading

    repo = make_repo(pack_size=64 * 1024)
    writer = PackWriter(repo)
    blobs = [os.urandom(n) for n in range(1000, 41000, 250)]  # 160 blobs, ~3 MB, ~40 packs
    go = threading.Barrier(4)
    ids: dict[bytes, bytes] = {}

    def work(part: list[bytes]) -> None:
        go.wait()
        for data in part:
            ids[_put_sealed(writer, repo, data)] = data

    threads = [threading.Thread(target=work, args=(blobs[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    writer.close()
    assert len(ids) == len(blobs) and writer.stats.packs >= 30
    fresh = reopen(repo)
    assert {blob_id: fresh.load_blob(blob_id) for blob_id in ids} == ids


def test_a_blob_that_does_not_fit_while_another_is_written_starts_a_pack_of_its_size(make_repo):
    """A pack's map cannot grow while a blob is being written into it: a larger blob closes
    the pack (uploaded once the blob in progress is written) and gets a pack of its own."""
    repo = make_repo(pack_size=64 * 1024)
    writer = PackWriter(repo)
    small, large = os.urandom(1000), os.urandom(3 * 1024 * 1024)  # larger than a map's room
    inner: list[bytes] = []

    def write_small_then_large(place: memoryview) -> None:
        from fogvault.compression import pack_payload
        from fogvault.repo.pack import seal_payload_into

        inner.append(_put_sealed(writer, repo, large))  # while this place is still held
        blob_id = repo.blob_id(small)
        seal_payload_into(repo.master.encryption, BlobType.DATA, blob_id,
                          pack_payload(small, 3), place)

    small_id = repo.blob_id(small)
    assert writer.reserve(small_id)
    from fogvault.compression import pack_payload
    from fogvault.repo.pack import sealed_size

    writer.put(BlobType.DATA, small_id, sealed_size(pack_payload(small, 3)), len(small),
               write_small_then_large)
    writer.flush()
    writer.close()
    assert writer.stats.packs == 2
    assert repo.load_blob(small_id) == small and repo.load_blob(inner[0]) == large


def test_a_blob_whose_writing_fails_never_reaches_a_target(make_repo, tmp_path):
    """Its place in the pack holds no valid blob: that pack is dropped and the writer fails,
    rather than uploading a pack whose index entry points at garbage."""
    repo = make_repo(pack_size=64 * 1024)
    writer = PackWriter(repo)
    good = _put_sealed(writer, repo, os.urandom(5000))

    def broken(place: memoryview) -> None:
        place[:10] = b"x" * 10
        raise OSError("libsodium said no")

    with pytest.raises(OSError, match="said no"):
        _put_sealed(writer, repo, os.urandom(5000), write=broken)
    with pytest.raises(OSError, match="said no"):
        _put_sealed(writer, repo, os.urandom(5000))
    with pytest.raises(OSError, match="said no"):
        writer.flush()
    writer.close()
    assert writer.stats.packs == 0 and good not in repo.index
    assert not list((tmp_path / "repo" / "data").rglob("*"))


def test_a_full_pack_waits_for_its_last_place_to_be_written(make_repo, reopen, tmp_path):
    """A thread still encrypting into a pack that other blobs have filled: nothing is uploaded
    until that thread is done, then the pack holds every blob."""
    import threading

    repo = make_repo(pack_size=64 * 1024)
    writer = PackWriter(repo)
    slow, started, go_on = os.urandom(5000), threading.Event(), threading.Event()
    ids: dict[bytes, bytes] = {}

    def put_slowly() -> None:
        def write(place: memoryview) -> None:
            started.set()
            assert go_on.wait(10)
            from fogvault.compression import pack_payload
            from fogvault.repo.pack import seal_payload_into

            seal_payload_into(repo.master.encryption, BlobType.DATA, repo.blob_id(slow),
                              pack_payload(slow, 3), place)

        ids[_put_sealed(writer, repo, slow, write=write)] = slow

    thread = threading.Thread(target=put_slowly)
    thread.start()
    assert started.wait(10)
    for _ in range(15):  # the 14th blob (5,041 bytes sealed) fills the first 64 KiB pack
        data = os.urandom(5000)
        ids[_put_sealed(writer, repo, data)] = data
    packs = tmp_path / "repo" / "data"
    assert writer.stats.packs == 0 and not [p for p in packs.rglob("*") if p.is_file()]
    go_on.set()
    thread.join()
    writer.flush()
    writer.close()
    assert writer.stats.packs == 2
    fresh = reopen(repo)
    assert {blob_id: fresh.load_blob(blob_id) for blob_id in ids} == ids


def test_a_pack_that_cannot_be_finished_fails_the_writer_after_indexing_the_rest(
        make_repo, reopen, monkeypatch):
    """The failure is raised by every later call, and flush still writes the index file of
    the packs already uploaded (a rerun reuses them)."""
    repo = make_repo(pack_size=64 * 1024)
    writer = PackWriter(repo)
    first = [_put_sealed(writer, repo, os.urandom(5000)) for _ in range(14)]  # fills a pack

    def no_memory(self, enc_key):
        raise MemoryError("no room for the header")

    monkeypatch.setattr(PackBuilder, "finish", no_memory)
    with pytest.raises(MemoryError):
        for _ in range(100):
            _put_sealed(writer, repo, os.urandom(5000))
    with pytest.raises(MemoryError):
        _put_sealed(writer, repo, os.urandom(5000))
    with pytest.raises(MemoryError):
        writer.flush()
    writer.close()
    assert writer.stats.packs == 1
    fresh = reopen(repo)
    assert all(blob_id in fresh.index for blob_id in first)


def test_no_memory_for_a_new_pack_loses_none_of_the_blobs_already_placed(make_repo, reopen,
                                                                         monkeypatch):
    """The new pack's place is reserved before the open pack is closed: when the map cannot be
    had, the open pack stays whole, and flush still uploads and indexes it."""
    repo = make_repo(pack_size=64 * 1024)
    writer = PackWriter(repo)
    placed = [_put_sealed(writer, repo, os.urandom(5000)) for _ in range(3)]

    def no_memory(size, **options):
        raise MemoryError("no map")

    monkeypatch.setattr(pack_module, "zeroed_map", no_memory)
    with pytest.raises(MemoryError):  # a tree-sized blob: does not fit, needs a pack of its own
        _put_sealed(writer, repo, os.urandom(3 * 1024 * 1024))
    with pytest.raises(MemoryError):
        writer.flush()
    writer.close()
    fresh = reopen(repo)
    assert all(blob_id in fresh.index for blob_id in placed)


def test_a_writer_holds_no_entries_of_packs_it_has_indexed(make_repo):
    """What a run writes is in repo.index (outside the Python heap) and in index files; the
    writer itself keeps only the packs not yet in an index file, so its heap does not grow with
    the blobs written (it held every blob's entry, 177 MiB at a million blobs)."""
    import tracemalloc

    repo = make_repo()
    repo.config.pack_size = 16 * 1024  # many packs, and index files, from little data
    writer = PackWriter(repo)

    def write(count: int) -> None:
        for _ in range(count):
            data = os.urandom(64)
            blob_id = repo.blob_id(data)
            assert writer.reserve(blob_id)
            sealed = seal_blob(repo.master.encryption, BlobType.DATA, blob_id, data, 3)
            writer.add(BlobType.DATA, blob_id, sealed, len(data))
        writer.flush()

    write(500)  # warm up: imports, the index's first growth, pools
    tracemalloc.start()
    try:
        write(1000)
        first = tracemalloc.get_traced_memory()[0]
        write(4000)
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    writer.close()
    assert writer.stats.blobs == 5500
    # An entry kept per blob is about 240 bytes: 4000 of them would be close to 1 MB.
    assert grown < 200_000, grown


def test_the_packs_an_index_file_lists_read_without_its_entries(make_repo):
    repo = make_repo()
    repo.config.pack_size = 64 * 1024  # several packs in one index file
    _store(repo, [os.urandom(30_000) for _ in range(8)])
    [name] = [n for n in repo.live_index_names()]
    listed = repo.read_index_file(name).packs
    assert len(listed) >= 3
    assert repo.index_file_packs(name) == list(listed)



DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("decode", [
    lambda: Snapshot.decode(b'{"version":1,"x":' + DEEP + b"}", "0" * 16),
    lambda: KeyFile.decode("0" * 64, b'{"version":1,"x":' + DEEP[:30_000] + b"}"),
    lambda: LockInfo.decode("0" * 64, b'{"x":' + DEEP[:30_000] + b"}"),
    lambda: RepoConfig.decode(b'{"version":1,"x":' + DEEP + b"}"),
], ids=["snapshot", "key file", "lock", "config"])
def test_json_nested_too_deep_is_malformed_not_a_crash(decode):
    """A RecursionError escaped: 'unexpected error' for every command that lists snapshots
    or locks (forget and unlock too, so it could not be removed), and a key file stopped every
    open although a good key was there."""
    with pytest.raises(MalformedObject):
        decode()


@pytest.mark.parametrize(("field", "value"), [
    ("pid", 10**30), ("pid", -1), ("pid", 0),
    ("refreshed", "9999-12-31T23:59:59-23:59"), ("created", "9999-12-31T23:50:00+00:00")])
def test_a_lock_whose_pid_or_time_no_process_or_clock_has_is_malformed(field, value):
    """pid 10**30: 'unexpected error (OverflowError)' in check and unlock; pid -1 on this
    host was never stale (os.kill(-1, 0) succeeds); a time UTC cannot hold failed check."""
    doc = {"exclusive": False, "host": "h", "pid": 42, "user": "u",
           "created": "2024-01-01T00:00:00+00:00", "refreshed": "2024-01-01T00:00:00+00:00"}
    assert LockInfo.decode("0" * 64, json.dumps(doc).encode()).pid == 42
    with pytest.raises(MalformedObject):
        LockInfo.decode("0" * 64, json.dumps({**doc, field: value}).encode())


def test_summary_values_no_listing_can_show_count_as_zero():
    """total_bytes 10**400 failed 'snapshots' (OverflowError) and mount; NaN reached --json."""
    doc = {"version": 1, "uid": "0" * 16, "time": "2024-01-01T00:00:00+00:00", "host": "h",
           "paths": [], "tree": "0" * 64,
           "summary": {"total_bytes": 10**400, "files_new": 1.5, "dirs": -3,
                       "bytes_read": float("nan"), "duration_s": float("inf"),
                       "files_changed": 7}}
    summary = Snapshot.decode(json.dumps(doc).encode(), "0" * 16).summary
    assert (summary.total_bytes, summary.files_new, summary.dirs, summary.bytes_read,
            summary.duration_s, summary.files_changed) == (0, 1, 0, 0, 0, 7)
