"""The blob index: blob id -> (type, pack, offset, length, raw length).

In memory it is a compact open-addressing hash table over flat buffers instead of a dict of
Python objects (docs/design.md, section 4):

* **Records**: 45 bytes per blob in one buffer, in the index file's own entry format
  (type, id, offset, length, raw length), so a pack listing read from an index file is
  appended as it is. A pack's records are contiguous; a blob's pack is found by bisecting the
  first record number of every pack (``array('I')``), so records carry no pack number.
* **Slots**: an ``array('I')`` probed linearly from ``hash(blob_id)``. A slot holds record
  number + 1 (0 = empty) in its low bits and, in the bits the numbers do not need yet, a tag:
  more bits of the id's hash. A probe compares the id inside the record only where the tag
  matches, so passing other ids' slots costs no random read of their records: at 10 million
  blobs that read was most of an absent lookup. The table doubles at a load of
  0.75, so it is 4 / 0.75 to 4 / 0.375 = 5.3-10.7 bytes per blob; it is also rebuilt (at its
  size) when record numbers outgrow their bits, which takes bits from the tags. ``hash`` of a
  bytes object is computed in C and cached by the object; it differs between processes, which
  is fine for a table that lives in one.
* **Packs**: their ids in one buffer (32 bytes each) with a slot table of their own.
* **Probe and insert** run in C (``fogvault/repo/_probe.c``: the same loops over the same
  buffers, with Python's ``hash``), about 2x faster for lookups and 3x for inserts; where the
  extension was not built, ``_python_probe`` and ``_python_insert`` below do the same.

Records and pack ids live in private anonymous memory (``mmap``): slicing it yields ``bytes``,
whose comparison with an id is the cheapest Python offers, and it grows in place (``mremap``).

About 51-56 bytes per blob in all; scripts/index_memory.py measures it.

Every pack listing is kept whole: a blob stored in two packs (two concurrent backups, or a
prune interrupted after repacking) has a record in each, so per-pack views (a pack's size, what
an index file must list) are always complete; lookups return the first location loaded. A pack
is listed once: a second listing of a known pack (the same pack in two index files) is ignored.

Writers hold a lock; readers take none: a record (and its pack's entries) is complete before
its slot is published, records are only ever appended, and the (mask, slots, ids, tags)
table is swapped as one tuple when it is rebuilt or its id buffer is replaced. (Under the GIL
each buffer operation is atomic.)

On storage an index file lists packs and their blobs (docs/format.md, "Index files").
:func:`parse_index_file` checks one without building a Python object per blob;
:meth:`IndexFile.decode` builds the objects for callers that want them.
"""

from __future__ import annotations

import mmap
import struct
import threading
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fogvault.crypto import SEAL_OVERHEAD
from fogvault.errors import MalformedObject
from fogvault.heap import append_to_map, zeroed_map
from fogvault.repo.format import BlobType
from fogvault.repo.pack import MAX_BLOB_SIZE, PackEntry, pack_overhead

#: One blob in an index file, and one record in memory: type, id, offset, length, raw length.
_ENTRY = struct.Struct("<B32sIII")
RECORD_SIZE = _ENTRY.size
_ID_BACK = RECORD_SIZE - 1  # record r's id starts at (r + 1) * RECORD_SIZE - _ID_BACK
_SPANS = struct.Struct("<33xII4x")  # offset, length
_LIMITS = struct.Struct("<B36xII")  # type, length, raw length: what validation checks
_PACK_ID = struct.Struct("32s")
_TYPES = (BlobType.DATA, BlobType.TREE)  # indexed by the stored type byte
_MAX_LOAD = 0.75
_REFILL_STEP = 65_536  # ids per insert call when a table is rebuilt (~50 ms of C code)
_SLOT_BITS = 32


#: mask, slots (tag | record or pack number + 1; 0 = empty), the buffer holding the ids, the
#: tag bits of a slot (the rest hold the number)
_Table = tuple[int, array, mmap.mmap, int]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    blob_id: bytes
    blob_type: BlobType
    pack_id: bytes
    offset: int
    length: int
    raw_length: int

    def pack_entry(self) -> PackEntry:
        return PackEntry(self.blob_type, self.blob_id, self.offset, self.length, self.raw_length)


def _empty_table(ids: mmap.mmap, entries: int, numbers: int) -> _Table:
    """A table with room for ``entries`` ids of the buffer ``ids`` at a load of at most 0.75,
    and for numbers up to ``numbers`` (more need a new table: :func:`_holds`). A key's tag is
    its hash's bits at the tag positions: above the number bits, so above the index bits."""
    size_bits = max(4, int(entries / _MAX_LOAD).bit_length())
    number_bits = min(_SLOT_BITS, max(size_bits, numbers.bit_length()))
    tags = (1 << _SLOT_BITS) - (1 << number_bits)
    return (1 << size_bits) - 1, array("I", bytes(4 << size_bits)), ids, tags


def _filled_table(ids: mmap.mmap, used: int, entries: int, numbers: int, stride: int,
                  back: int) -> _Table:
    """:func:`_empty_table` with every id in the first ``used`` bytes of ``ids`` inserted in
    order (so the first copy of an id keeps the slot)."""
    table = _empty_table(ids, entries, numbers)
    step = _REFILL_STEP * stride
    with memoryview(ids) as whole:
        for start in range(0, used, step):  # in steps: the C insert holds the GIL per call
            with whole[start : min(start + step, used)] as view:
                _insert(table, view, start // stride + 1, stride, back)
    return table


def _written(table: _Table, end: int, data: bytes | memoryview) -> _Table:
    """``table`` after ``data`` is written at ``end`` of its id buffer: the same table, or the
    same slots over the larger copy :func:`~fogvault.heap.append_to_map` made."""
    mask, slots, ids, tags = table
    grown = append_to_map(ids, end, data)
    return table if grown is ids else (mask, slots, grown, tags)


def _holds(table: _Table, entries: int, numbers: int) -> bool:
    """Whether ``table`` takes ``entries`` distinct ids numbered up to ``numbers``."""
    mask, _, _, tags = table
    return entries <= _MAX_LOAD * (mask + 1) and numbers < (1 << _SLOT_BITS) - tags


def _python_probe(table: _Table, key: bytes, stride: int, back: int) -> int:
    """The number (+ 1) of ``key``, or 0."""
    mask, slots, ids, tags = table
    h = hash(key)
    i = h & mask
    tag = h & tags
    while slot := slots[i]:
        if slot & tags == tag and ids[(at := (slot ^ tag) * stride - back) : at + 32] == key:
            return slot ^ tag
        i = (i + 1) & mask
    return 0


def _python_insert(table: _Table, keys: bytes | memoryview, first: int, stride: int,
                   back: int) -> int:
    """Give each key a slot (values ``first``, ``first + 1``, ...) unless an earlier number
    holds the same id. ``keys`` are laid out as the table's ids (key j at byte
    ``j * stride + stride - back``), and the id buffer must already hold them. Returns how
    many got a slot."""
    mask, slots, ids, tags = table
    added = 0
    layout = struct.Struct(f"{stride - back}x32s{back - 32}x")
    for number, (key,) in enumerate(layout.iter_unpack(keys), first):
        h = hash(key)
        i = h & mask
        tag = h & tags
        while slot := slots[i]:
            if slot & tags == tag and ids[(at := (slot ^ tag) * stride - back) : at + 32] == key:
                break  # a second copy: listed with its pack, not found by lookups
            i = (i + 1) & mask
        else:
            slots[i] = tag | number
            added += 1
    return added


# fogvault/repo/_probe.c does the same in C, 2-3x faster; where it was not built (no C
# compiler at install), the Python versions serve.
try:
    from fogvault.repo._probe import insert as _insert
    from fogvault.repo._probe import probe as _probe

    COMPILED_SLOT_TABLE = True
except ImportError:
    _probe, _insert = _python_probe, _python_insert
    COMPILED_SLOT_TABLE = False


class BlobIndex:
    def __init__(self, capacity: int = 1024) -> None:
        self._count = 0  # records: every (pack, blob) listing
        self._indexed = 0  # distinct blob ids (slots in use)
        self._table = _empty_table(zeroed_map(capacity * RECORD_SIZE), capacity, capacity)
        self._pack_first = array("I")  # each pack's first record number
        packs = max(16, capacity // 16)
        self._pack_table = _empty_table(zeroed_map(packs * 32), packs, packs)
        self._lock = threading.Lock()
        self._packs_stored = 0  # packs :meth:`stored_bytes` has counted
        self._stored_bytes = 0  # their size

    @property
    def _records(self) -> mmap.mmap:
        return self._table[2]

    @property
    def _pack_ids(self) -> mmap.mmap:
        return self._pack_table[2]

    def __len__(self) -> int:
        """Records: one per (pack, blob) listing; positions run from 0 to len - 1."""
        return self._count

    def distinct_blobs(self) -> int:
        return self._indexed

    def __contains__(self, blob_id: bytes) -> bool:
        return _probe(self._table, blob_id, RECORD_SIZE, _ID_BACK) != 0

    def position(self, blob_id: bytes) -> int:
        """The record number of ``blob_id`` (0 .. len-1, stable while the index lives), or -1.
        Lets callers keep per-blob state in a compact array instead of a set of ids."""
        return _probe(self._table, blob_id, RECORD_SIZE, _ID_BACK) - 1

    def get(self, blob_id: bytes) -> IndexEntry | None:
        slot = _probe(self._table, blob_id, RECORD_SIZE, _ID_BACK)
        return self.entry_at(slot - 1) if slot else None

    def entry_at(self, position: int) -> IndexEntry:
        blob_type, blob_id, offset, length, raw = _ENTRY.unpack_from(
            self._records, position * RECORD_SIZE)
        pack_id = self.pack_id_at(bisect_right(self._pack_first, position) - 1)
        return IndexEntry(blob_id, _TYPES[blob_type], pack_id, offset, length, raw)

    def pack_id_at(self, number: int) -> bytes:
        return self._pack_ids[32 * number : 32 * number + 32]

    # ---- adding --------------------------------------------------------------------------

    def add_pack(self, pack_id: bytes, entries: Iterable[PackEntry]) -> bool:
        """Index a pack's complete listing. False (and nothing changes) if the pack is known."""
        return self.add_listing(pack_id, encode_listing(entries))

    def add_listing(self, pack_id: bytes, listing: bytes | memoryview) -> bool:
        """:meth:`add_pack` for a listing in index-file entry format, as
        :func:`parse_index_file` checked it: appended as it is, no object per blob."""
        count, partial = divmod(len(listing), RECORD_SIZE)
        if partial:
            raise ValueError("a listing is a whole number of entries")
        with self._lock:
            if _probe(self._pack_table, pack_id, 32, 32):
                return False
            self._add_pack_id(pack_id)
            first = self._count
            self._table = table = _written(self._table, first * RECORD_SIZE, listing)
            if not _holds(table, self._indexed + count, self._count + count):
                table = self._grow(self._indexed + count, first + count)
            self._count += count
            self._indexed += _insert(table, listing, first + 1, RECORD_SIZE, _ID_BACK)
            return True

    def reserve(self, blobs: int) -> None:
        """Size the table for ``blobs`` more distinct blobs now, so a bulk load does not grow
        it (and rehash every record) again and again."""
        with self._lock:
            if not _holds(self._table, self._indexed + blobs, self._count + blobs):
                self._grow(self._indexed + blobs, self._count + blobs)

    def _add_pack_id(self, pack_id: bytes) -> None:
        packs = len(self._pack_first)
        self._pack_table = table = _written(self._pack_table, 32 * packs, pack_id)
        self._pack_first.append(self._count)  # after the id: readers go by this length
        packs += 1
        if not _holds(table, packs, packs):
            self._pack_table = _filled_table(table[2], 32 * packs, packs, packs, 32, 32)
        else:
            _insert(table, pack_id, packs, 32, 32)

    def _grow(self, entries: int, records: int) -> _Table:
        """A table for ``entries`` distinct blobs in ``records`` records, never smaller than
        the one it replaces (which :meth:`reserve` may have sized), filled from the records in
        order (so the first copy of a blob keeps the slot), swapped in whole for readers."""
        entries = max(entries, int(_MAX_LOAD * self._table[0]))  # [0]: size - 1
        self._table = _filled_table(self._records, self._count * RECORD_SIZE, entries, records,
                                    RECORD_SIZE, _ID_BACK)
        return self._table

    # ---- per pack, for maintenance ---------------------------------------------------------

    def packs(self) -> Iterator[tuple[bytes, int, int]]:
        """(pack id, first record, end record) of every pack with records, in load order:
        passes over the index by pack without an object per blob."""
        for _, pack_id, first, end in self.numbered_packs():
            yield pack_id, first, end

    def numbered_packs(self, start: int = 0) -> Iterator[tuple[int, bytes, int, int]]:
        """:meth:`packs` with each pack's number (see :meth:`pack_number`), from ``start``."""
        starts = self._pack_first
        for number in range(start, len(starts)):
            first = starts[number]
            end = starts[number + 1] if number + 1 < len(starts) else self._count
            if end > first:
                yield number, self.pack_id_at(number), first, end

    def pack_sizes(self, start: int = 0) -> Iterator[tuple[int, int]]:
        """(number, size) of every pack with records numbered ``start`` or more: the size it
        has on a target, as written (its blobs up to the end of the last, then its sealed header
        and trailer), from the records, with no object per blob."""
        for number, _, first, end in self.numbered_packs(start):
            blobs_end = max(offset + length for offset, length in self.spans(first, end))
            yield number, blobs_end + pack_overhead(end - first)

    def stored_bytes(self) -> int:
        """What the packs the index lists take on a target (:meth:`pack_sizes`, summed). Each
        pack is counted once: a call adds the packs listed since the last one (records are only
        ever added, whole packs at a time), so it costs nothing while the index is unchanged
        (counting them all: about 0.1 s per million blobs)."""
        with self._lock:  # the writers': no pack is half listed
            packs = len(self._pack_first)
            self._stored_bytes += sum(size for _, size in self.pack_sizes(self._packs_stored))
            self._packs_stored = packs
            return self._stored_bytes

    def pack_count(self) -> int:
        """Packs known (numbered 0 .. count - 1), including any listed with no blobs."""
        return len(self._pack_first)

    def pack_number(self, pack_id: bytes) -> int:
        """The number of a known pack (stable while the index lives), or -1: lets callers keep
        per-pack state in a compact array instead of a dict of names."""
        return _probe(self._pack_table, pack_id, 32, 32) - 1

    def listing(self, first: int, end: int) -> bytes:
        """Records ``first`` to ``end`` (a pack's, from :meth:`packs`) in index-file entry
        format, for :attr:`IndexFile.listings`."""
        return self._records[first * RECORD_SIZE : end * RECORD_SIZE]

    def spans(self, first: int, end: int) -> Iterator[tuple[int, int]]:
        """(offset, length) of records ``first`` to ``end``."""
        # A slice, not a view: an exported buffer would stop writers from appending.
        return _SPANS.iter_unpack(self._records[first * RECORD_SIZE : end * RECORD_SIZE])

    def __iter__(self) -> Iterator[IndexEntry]:
        for pack_id, first, end in self.packs():
            chunk = self._records[first * RECORD_SIZE : end * RECORD_SIZE]
            for blob_type, blob_id, offset, length, raw in _ENTRY.iter_unpack(chunk):
                yield IndexEntry(blob_id, _TYPES[blob_type], pack_id, offset, length, raw)

    def pack_ids(self) -> set[bytes]:
        used = self._pack_ids[: 32 * len(self._pack_first)]
        return {pack_id for (pack_id,) in _PACK_ID.iter_unpack(used)}

    def memory_bytes(self) -> int:
        """Bytes held by the records, the pack ids and both slot tables."""
        return (self._count * RECORD_SIZE + 4 * len(self._table[1])
                + (32 + 4) * len(self._pack_first) + 4 * len(self._pack_table[1]))


# ---- index files -------------------------------------------------------------------------

INDEX_MAGIC = b"FVIX"
INDEX_VERSION = 1
#: Blobs per index file written by prune and ``repair --index`` (files end between packs):
#: bounds the memory of one file's encoding.
INDEX_FILE_BLOBS = 100_000
_U32 = struct.Struct("<I")
_FILE_PREFIX = struct.Struct("<4sB")


def encode_listing(entries: Iterable[PackEntry]) -> bytes:
    """A pack's entries in index-file entry format (docs/format.md, "Index files")."""
    return b"".join(_ENTRY.pack(e.blob_type, e.blob_id, e.offset, e.length, e.raw_length)
                    for e in entries)


def decode_listing(listing: bytes | memoryview) -> list[PackEntry]:
    return [PackEntry(_TYPES[blob_type], blob_id, offset, length, raw)
            for blob_type, blob_id, offset, length, raw in _ENTRY.iter_unpack(listing)]


@dataclass(slots=True)
class IndexFile:
    """The plaintext of one index file: packs with their blobs, and the index files it replaces.
    ``listings`` holds packs already in entry format (:meth:`BlobIndex.listing`); a pack is
    in ``packs`` or in ``listings``, not both."""

    packs: dict[bytes, list[PackEntry]] = field(default_factory=dict)
    supersedes: list[bytes] = field(default_factory=list)
    listings: dict[bytes, bytes] = field(default_factory=dict)

    def blob_count(self) -> int:
        return (sum(len(entries) for entries in self.packs.values())
                + sum(len(listing) for listing in self.listings.values()) // RECORD_SIZE)

    def encode(self) -> bytes:
        out = [_FILE_PREFIX.pack(INDEX_MAGIC, INDEX_VERSION), _U32.pack(len(self.supersedes))]
        out.extend(self.supersedes)
        out.append(_U32.pack(len(self.packs) + len(self.listings)))
        for pack_id, entries in self.packs.items():
            out += (pack_id, _U32.pack(len(entries)), encode_listing(entries))
        for pack_id, listing in self.listings.items():
            out += (pack_id, _U32.pack(len(listing) // RECORD_SIZE), listing)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> IndexFile:
        parsed = parse_index_file(data)
        packs = {pack_id: decode_listing(listing) for pack_id, listing in parsed.packs}
        return cls(packs, parsed.supersedes)


@dataclass(slots=True)
class ParsedIndexFile:
    """An index file checked against every rule of docs/format.md, with its pack listings
    left in entry format (views of the plaintext) for :meth:`BlobIndex.add_listing`."""

    supersedes: list[bytes]
    packs: list[tuple[bytes, memoryview]]


def parse_index_file(data: bytes) -> ParsedIndexFile:
    reader = _Reader(data)
    magic, version = reader.unpack(_FILE_PREFIX)
    if magic != INDEX_MAGIC or version != INDEX_VERSION:
        raise MalformedObject("not an index file of a known version")
    supersedes = [reader.take(32) for _ in range(reader.count(32))]
    packs: list[tuple[bytes, memoryview]] = []
    seen: set[bytes] = set()
    for _ in range(reader.count(36)):
        pack_id = reader.take(32)
        if pack_id in seen:
            raise MalformedObject("index lists a pack twice")
        seen.add(pack_id)
        listing = reader.view(reader.count(RECORD_SIZE) * RECORD_SIZE)
        _check_listing(listing)
        packs.append((pack_id, listing))
    reader.expect_end()
    return ParsedIndexFile(supersedes, packs)


def _check_listing(listing: memoryview) -> None:
    for blob_type, length, raw_length in _LIMITS.iter_unpack(listing):
        if blob_type > 1:
            raise MalformedObject(f"unknown blob type {blob_type}")
        if not SEAL_OVERHEAD < length <= MAX_BLOB_SIZE or raw_length > MAX_BLOB_SIZE:
            raise MalformedObject("blob length out of range")


class _Reader:
    """Bounds-checked sequential reads over untrusted bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = memoryview(data), 0

    def view(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise MalformedObject("index file is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def take(self, n: int) -> bytes:
        return self.view(n).tobytes()

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.view(fmt.size))

    def count(self, min_item_size: int) -> int:
        """Read a u32 count, refusing counts the remaining bytes cannot possibly hold."""
        (n,) = self.unpack(_U32)
        if n * min_item_size > len(self.data) - self.pos:
            raise MalformedObject("index file count exceeds its size")
        return n

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise MalformedObject("trailing bytes in index file")
