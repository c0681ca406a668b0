"""The in-memory index: lookups, growth, complete pack listings with duplicate blobs, the
per-pack views maintenance reads, and index files parsed without objects per blob."""

from __future__ import annotations

import mmap
import os
import random
import threading
from array import array

import pytest

import fogvault.heap as heap
import fogvault.repo.index as index_module
from fogvault.errors import MalformedObject
from fogvault.repo.format import BlobType
from fogvault.repo.index import (
    _ID_BACK,
    RECORD_SIZE,
    BlobIndex,
    IndexEntry,
    IndexFile,
    _empty_table,
    _holds,
    _python_insert,
    _python_probe,
    encode_listing,
    parse_index_file,
)
from fogvault.repo.pack import PackEntry, pack_overhead, pack_spans


def _entries(ids: list[bytes], blob_type: BlobType = BlobType.DATA) -> list[PackEntry]:
    return [PackEntry(blob_type, blob_id, 100 * i, 100 + i, 90) for i, blob_id in enumerate(ids)]


@pytest.fixture(params=["compiled", "python"])
def each_probe(request, monkeypatch):
    """The slot table through fogvault/repo/_probe.c, then through the Python fallback."""
    if request.param == "python":
        monkeypatch.setattr(index_module, "_probe", _python_probe)
        monkeypatch.setattr(index_module, "_insert", _python_insert)


def test_the_compiled_slot_table_is_built():
    assert index_module.COMPILED_SLOT_TABLE, (
        "fogvault/repo/_probe.c was not built: installing needs a C compiler and Python headers")


def test_the_compiled_table_is_built_exactly_as_the_python_one_and_probed_alike():
    rng = random.Random(7)
    for numbers in (700, 2**32 - 1):  # with tags, and with none (every probe reads the id)
        stored = [rng.randbytes(32) for _ in range(300)]
        listing = encode_listing(_entries(stored + stored[:5] + stored))  # copies: first wins
        compiled = _empty_table(listing, 300, numbers)
        python = _empty_table(listing, 300, numbers)
        assert index_module._insert(compiled, listing, 1, RECORD_SIZE, _ID_BACK) == 300
        assert _python_insert(python, listing, 1, RECORD_SIZE, _ID_BACK) == 300
        assert compiled[1] == python[1]  # slot for slot
        keys = stored + [rng.randbytes(32) for _ in range(300)] + [stored[0][:31], b""]
        found = [_python_probe(python, key, RECORD_SIZE, _ID_BACK) for key in keys]
        assert [index_module._probe(python, key, RECORD_SIZE, _ID_BACK) for key in keys] == found
        assert found[:300] == list(range(1, 301)) and not any(found[300:])


def test_the_compiled_probe_refuses_a_table_it_cannot_trust():
    ids = bytes(64)
    with pytest.raises(SystemError, match="inconsistent"):  # fewer slots than the mask says
        index_module._probe((15, array("I", [0] * 8), ids, 0), bytes(32), 32, 32)
    with pytest.raises(SystemError, match="inconsistent"):  # a number past the ids
        index_module._probe((3, array("I", [9] * 4), ids, 0), bytes(32), 32, 32)
    with pytest.raises(TypeError):
        index_module._probe((3, array("I", [0] * 4), ids, 0), "not bytes", 32, 32)
    with pytest.raises(SystemError, match="inconsistent"):  # numbers that reach the tag bits
        index_module._insert((3, array("I", [0] * 4), ids, 2**31), ids, 2**31, 32, 32)
    for keys, first in ((ids[:40], 1), (ids, 0)):  # a partial key; number 0 (an empty slot)
        with pytest.raises(SystemError, match="inconsistent"):
            index_module._insert((3, array("I", [0] * 4), ids, 0), keys, first, 32, 32)

    class Id(bytes):
        def __hash__(self) -> int:
            return 0

    with pytest.raises(TypeError):  # its __hash__ would be Python code inside the probe
        index_module._probe((3, array("I", [0] * 4), ids, 0), Id(32), 32, 32)


@pytest.mark.usefixtures("each_probe")
def test_lookups_survive_growth_of_both_tables():
    index = BlobIndex(capacity=4)
    ids = [os.urandom(32) for _ in range(5000)]
    packs = [os.urandom(32) for _ in range(500)]
    for number, pack_id in enumerate(packs):  # 500 packs also grow the pack table
        assert index.add_pack(pack_id, _entries(ids[10 * number : 10 * number + 10]))
    assert len(index) == index.distinct_blobs() == 5000
    for position, blob_id in enumerate(ids):
        entry = index.get(blob_id)
        assert entry.blob_id == blob_id and entry.pack_id == packs[position // 10]
        assert (entry.offset, entry.length) == (100 * (position % 10), 100 + position % 10)
        assert index.position(blob_id) == position and blob_id in index
    assert index.pack_ids() == set(packs)
    absent = os.urandom(32)
    assert absent not in index and index.get(absent) is None and index.position(absent) == -1


@pytest.mark.usefixtures("each_probe")
def test_a_blob_in_two_packs_keeps_both_listings_and_the_first_location():
    index = BlobIndex()
    shared, a_only, b_only = os.urandom(32), os.urandom(32), os.urandom(32)
    pack_a, pack_b = os.urandom(32), os.urandom(32)
    index.add_pack(pack_a, _entries([a_only, shared]))
    index.add_pack(pack_b, _entries([shared, b_only]))
    assert index.get(shared).pack_id == pack_a
    listed = {}
    for entry in index:
        listed.setdefault(entry.pack_id, []).append(entry.blob_id)
    assert listed == {pack_a: [a_only, shared], pack_b: [shared, b_only]}
    assert (len(index), index.distinct_blobs()) == (4, 3)
    assert index.position(shared) == 1  # the first record of it


@pytest.mark.usefixtures("each_probe")
def test_the_first_copy_keeps_the_lookup_when_the_table_grows():
    index = BlobIndex(capacity=4)
    shared = os.urandom(32)
    first, second = os.urandom(32), os.urandom(32)
    index.add_pack(first, _entries([shared]))
    index.add_pack(second, _entries([shared, shared]))  # twice even within one listing
    for _ in range(100):  # grow the table several times
        index.add_pack(os.urandom(32), _entries([os.urandom(32) for _ in range(10)]))
    assert index.get(shared).pack_id == first and index.position(shared) == 0
    assert (len(index), index.distinct_blobs()) == (1003, 1001)


@pytest.mark.usefixtures("each_probe")
def test_blobs_found_after_copies_outnumber_what_the_slots_could_number():
    index = BlobIndex(capacity=4)  # 16 slots: record numbers start with 4 bits
    shared = [os.urandom(32) for _ in range(3)]
    for _ in range(50):  # 150 records, 3 distinct: the table need not grow for its load
        index.add_pack(os.urandom(32), _entries(shared))
    late = [os.urandom(32) for _ in range(2)]
    index.add_pack(os.urandom(32), _entries(late))
    assert [index.position(blob_id) for blob_id in shared + late] == [0, 1, 2, 150, 151]
    assert os.urandom(32) not in index


@pytest.mark.usefixtures("each_probe")
def test_a_table_rebuilt_in_steps_finds_every_id_and_keeps_first_copies(monkeypatch):
    monkeypatch.setattr(index_module, "_REFILL_STEP", 7)  # steps end inside packs
    index = BlobIndex(capacity=4)
    ids = [os.urandom(32) for _ in range(500)]
    for start in range(0, 500, 50):
        index.add_pack(os.urandom(32), _entries(ids[start : start + 50] + ids[:3]))
    assert index.distinct_blobs() == 500 and len(index) == 530
    assert [index.position(blob_id) for blob_id in ids[:3]] == [0, 1, 2]
    assert all(index.position(blob_id) >= 0 for blob_id in ids)


@pytest.mark.usefixtures("each_probe")
def test_a_rebuild_for_wider_numbers_keeps_the_reserved_size():
    index = BlobIndex(capacity=4)
    index.reserve(3000)
    size = len(index._table[1])
    shared = [os.urandom(32) for _ in range(3)]
    for _ in range(1500):  # 4,500 records of 3 blobs: numbers outgrow the reserved table's bits
        index.add_pack(os.urandom(32), _entries(shared))
    assert len(index._table[1]) == size
    assert all(blob_id in index for blob_id in shared)


def test_numbers_of_32_bits_leave_no_tag_and_more_need_a_new_table():
    table = _empty_table(bytearray(), 16, 2**32 - 1)
    assert table[3] == 0  # tags off: every probe compares the id
    assert _holds(table, 1, 2**32 - 1) and not _holds(table, 1, 2**32)


def test_absent_lookups_rarely_read_a_record(monkeypatch):
    monkeypatch.setattr(index_module, "_probe", _python_probe)  # to count its reads
    index = BlobIndex()
    for _ in range(300):
        index.add_pack(os.urandom(32), _entries([os.urandom(32) for _ in range(16)]))
    mask, slots, records, tags = index._table
    reads = []

    class CountingRecords:
        def __getitem__(self, span: slice) -> bytes:
            reads.append(span.start)
            return records[span]

    index._table = (mask, slots, CountingRecords(), tags)
    assert 0.25 < index.distinct_blobs() / (mask + 1) <= 0.75  # probes pass occupied slots
    assert not any(os.urandom(32) in index for _ in range(2000))
    # Without the tags, each lookup would read one record per occupied slot it passes (~2).
    assert len(reads) < 20
    reads.clear()
    assert records[1:33] in index and len(reads) == 1  # record 0's id: read once, to confirm


class _FixedSizeMapping(mmap.mmap):
    """A mapping that cannot grow in place, as on a platform without ``mremap``."""

    def resize(self, newsize: int) -> None:
        raise SystemError("mmap: resizing not available--no mremap()")


@pytest.mark.usefixtures("each_probe")
def test_buffers_that_cannot_grow_in_place_are_copied_and_republished(monkeypatch):
    def fixed_size_map(size: int) -> _FixedSizeMapping:
        return _FixedSizeMapping(
            -1, max(size, mmap.PAGESIZE), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    monkeypatch.setattr(index_module, "zeroed_map", fixed_size_map)
    monkeypatch.setattr(heap, "zeroed_map", fixed_size_map)  # the copies append_to_map makes
    index = BlobIndex(capacity=4)
    ids = [os.urandom(32) for _ in range(3000)]
    packs = [os.urandom(32) for _ in range(300)]
    for number, pack_id in enumerate(packs):
        index.add_pack(pack_id, _entries(ids[10 * number : 10 * number + 10]))
        assert ids[10 * number] in index  # found at once, through the republished table
    assert type(index._records) is _FixedSizeMapping  # the copies, not a grown original
    assert [index.position(blob_id) for blob_id in ids] == list(range(3000))
    assert index.pack_ids() == set(packs) and index.get(ids[-1]).pack_id == packs[-1]


@pytest.mark.usefixtures("each_probe")
def test_a_pack_listed_twice_is_indexed_once():
    index = BlobIndex()
    pack, ids = os.urandom(32), [os.urandom(32) for _ in range(3)]
    assert index.add_pack(pack, _entries(ids))
    assert not index.add_pack(pack, _entries(ids))
    assert not index.add_listing(pack, encode_listing(_entries(ids)))
    assert len(index) == 3


@pytest.mark.usefixtures("each_probe")
def test_listings_in_entry_format_round_trip_through_the_per_pack_views():
    index = BlobIndex()
    pack_a, pack_b, empty = os.urandom(32), os.urandom(32), os.urandom(32)
    a_entries = _entries([os.urandom(32) for _ in range(3)], BlobType.TREE)
    b_entries = _entries([os.urandom(32) for _ in range(2)])
    assert index.add_listing(pack_a, encode_listing(a_entries))
    assert index.add_pack(empty, [])
    assert index.add_listing(pack_b, memoryview(encode_listing(b_entries)))
    # A pack without records is known, but has nothing to list or count.
    assert list(index.packs()) == [(pack_a, 0, 3), (pack_b, 3, 5)]
    assert index.pack_ids() == {pack_a, pack_b, empty}
    assert index.listing(3, 5) == encode_listing(b_entries)
    assert list(index.spans(0, 3)) == [(e.offset, e.length) for e in a_entries]
    assert index.entry_at(4).pack_entry() == b_entries[1]
    assert index.entry_at(4).pack_id == pack_b and index.entry_at(0).pack_id == pack_a
    assert [e.pack_entry() for e in index] == a_entries + b_entries


def test_pack_sizes_are_as_written_and_stored_bytes_counts_each_pack_once():
    """A pack's size: the end of its last-ending blob (whatever order it lists them in), then
    its header. stored_bytes adds the packs listed since its last call to what it counted."""
    index = BlobIndex()
    first, empty, second = os.urandom(32), os.urandom(32), os.urandom(32)
    index.add_pack(first, _entries([os.urandom(32) for _ in range(3)])[::-1])  # ends 100..302
    index.add_pack(empty, [])
    first_size = 302 + pack_overhead(3)
    assert list(index.pack_sizes()) == [(0, first_size)]
    assert index.stored_bytes() == first_size
    index.add_pack(second, _entries([os.urandom(32) for _ in range(2)]))  # ends 100, 201
    index.add_pack(first, _entries([os.urandom(32)]))  # known: not listed again
    assert list(index.pack_sizes(1)) == [(2, 201 + pack_overhead(2))]
    assert index.stored_bytes() == index.stored_bytes() == first_size + 201 + pack_overhead(2)


@pytest.mark.usefixtures("each_probe")
def test_a_partial_listing_is_refused_before_anything_changes():
    index = BlobIndex()
    with pytest.raises(ValueError):
        index.add_listing(os.urandom(32), bytes(RECORD_SIZE + 1))
    assert len(index) == 0 and index.pack_ids() == set()


@pytest.mark.usefixtures("each_probe")
def test_reserve_sizes_the_table_once():
    index = BlobIndex(capacity=4)
    index.reserve(3000)
    table = index._table
    ids = [os.urandom(32) for _ in range(3000)]
    for start in range(0, 3000, 100):
        index.add_pack(os.urandom(32), _entries(ids[start : start + 100]))
    assert index._table is table  # no regrowth
    assert all(blob_id in index for blob_id in ids)


@pytest.mark.usefixtures("each_probe")
def test_readers_find_every_published_blob_while_a_writer_grows_the_table():
    index = BlobIndex(capacity=4)
    published: list[bytes] = []
    done = threading.Event()
    misses: list[bytes] = []

    def read() -> None:
        while not done.is_set():
            for blob_id in published[-50:]:
                if blob_id not in index:
                    misses.append(blob_id)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(400):
            ids = [os.urandom(32) for _ in range(25)]
            index.add_pack(os.urandom(32), _entries(ids))
            published.extend(ids)  # only after add_pack returned
    finally:
        done.set()
        reader.join()
    assert not misses and index.distinct_blobs() == 10_000


@pytest.mark.usefixtures("each_probe")
def test_a_pack_is_listed_only_once_its_id_is_written(monkeypatch):
    """Readers take no lock, so every state between a writer's steps must be consistent; here
    a reader looks each time the writer is about to write into a buffer."""
    index = BlobIndex(capacity=4)
    write = index_module.append_to_map
    states: list[set[bytes]] = []

    def write_after_a_look(buffer, end, data):
        states.append(index.pack_ids() | {pack_id for pack_id, _, _ in index.packs()})
        return write(buffer, end, data)

    monkeypatch.setattr(index_module, "append_to_map", write_after_a_look)
    packs = [os.urandom(32) for _ in range(40)]
    for pack_id in packs:
        index.add_pack(pack_id, _entries([os.urandom(32)]))
    assert len(states) == 80 and not any(bytes(32) in ids for ids in states)
    assert states[-1] == set(packs)  # the last look: before the last pack's records


# ---- index files ---------------------------------------------------------------------------


def test_listings_encode_exactly_like_entries():
    entries = _entries([os.urandom(32) for _ in range(4)])
    pack_a, pack_b, old = os.urandom(32), os.urandom(32), os.urandom(32)
    as_entries = IndexFile({pack_a: entries, pack_b: entries[:1]}, [old])
    as_listings = IndexFile({pack_a: entries}, [old], {pack_b: encode_listing(entries[:1])})
    assert as_listings.encode() == as_entries.encode()
    assert as_listings.blob_count() == 5
    parsed = parse_index_file(as_entries.encode())
    assert parsed.supersedes == [old]
    assert [(p, bytes(listing)) for p, listing in parsed.packs] == [
        (pack_a, encode_listing(entries)), (pack_b, encode_listing(entries[:1]))]
    assert IndexFile.decode(as_listings.encode()) == as_entries


@pytest.mark.parametrize(("entry", "problem"), [
    (PackEntry(2, os.urandom(32), 0, 100, 90), "unknown blob type"),  # type: ignore[arg-type]
    (PackEntry(BlobType.DATA, os.urandom(32), 0, 40, 90), "length out of range"),
    (PackEntry(BlobType.DATA, os.urandom(32), 0, 100, 512 * 2**20 + 1), "length out of range"),
])
def test_parsing_checks_every_entry(entry: PackEntry, problem: str):
    good = _entries([os.urandom(32)])
    data = IndexFile({os.urandom(32): good, os.urandom(32): [*good, entry]}).encode()
    with pytest.raises(MalformedObject, match=problem):
        parse_index_file(data)


def test_parsing_refuses_a_pack_listed_twice():
    pack, entries = os.urandom(32), _entries([os.urandom(32)])
    data = IndexFile({pack: entries}).encode()
    listed = 32 + 4 + RECORD_SIZE  # pack id, count, the entry
    twice = data[: -listed - 4] + (2).to_bytes(4, "little") + 2 * data[-listed:]
    with pytest.raises(MalformedObject, match="twice"):
        parse_index_file(twice)


def test_spans_cut_a_pack_into_bounded_offset_ordered_groups() -> None:
    def entry(offset: int, length: int) -> IndexEntry:
        blob_id = bytes([offset % 256]) * 32
        return IndexEntry(blob_id, BlobType.DATA, b"p" * 32, offset, length, length)

    entries = [entry(o, n) for o, n in [(900, 50), (0, 100), (100, 300), (400, 700), (1100, 10)]]
    groups = pack_spans(entries, span=500)
    assert [[(e.offset, e.length) for e in g] for g in groups] == [
        [(0, 100), (100, 300)],  # 400 bytes; adding the next would make 1100
        [(400, 700)],  # larger than the span: read alone
        [(900, 50), (1100, 10)],  # a gap counts: 900..1110 is 210 bytes
    ]
    assert pack_spans([], span=500) == []
