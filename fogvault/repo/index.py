"""The blob index: blob id -> (type, pack, offset, length, raw length).

In memory it is a compact open-addressing hash table over ``array`` buffers instead of a dict
of Python objects: a record of 49 bytes per blob in one ``bytearray``, plus a slot table of
12 bytes per slot (the first 8 bytes of the id as an integer, and the record number). At the
table's load factor of 0.375-0.75 that is about 65-81 bytes per blob; scripts/index_memory.py
measures it. Ids are keyed BLAKE3 outputs, uniformly random, so their first 8 bytes hash well.

Every pack listing is kept whole: a blob stored in two packs (two concurrent backups, or a
prune interrupted after repacking) has a record in each, so per-pack views (a pack's size, what
an index file must list) are always complete; lookups return the first location loaded. A pack
is listed once: a second listing of a known pack (the same pack in two index files) is ignored.

Writers hold a lock; readers take none: a record is complete before its slot is published,
and the (mask, keys, slots) table is swapped as one tuple when it grows.

On storage an index file lists packs and their blobs (docs/format.md, "Index files").
"""

from __future__ import annotations

import struct
import threading
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fogvault.crypto import SEAL_OVERHEAD
from fogvault.errors import MalformedObject
from fogvault.repo.format import BlobType
from fogvault.repo.pack import MAX_BLOB_SIZE, PackEntry

_RECORD = struct.Struct("<32sIIIIB")  # id, pack number, offset, length, raw length, type
_MAX_LOAD = 0.75


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


class BlobIndex:
    def __init__(self, capacity: int = 1024) -> None:
        self._packs: list[bytes] = []
        self._pack_numbers: dict[bytes, int] = {}
        self._records = bytearray()
        self._count = 0  # records: every (pack, blob) listing
        self._indexed = 0  # distinct blob ids (slots in use)
        self._lock = threading.Lock()
        size = 1 << max(4, (int(capacity / _MAX_LOAD)).bit_length())
        self._table = (size - 1, array("Q", bytes(8 * size)), array("I", bytes(4 * size)))

    def __len__(self) -> int:
        """Records: one per (pack, blob) listing; positions run from 0 to len - 1."""
        return self._count

    def distinct_blobs(self) -> int:
        return self._indexed

    def __contains__(self, blob_id: bytes) -> bool:
        return self._find(blob_id) >= 0

    def position(self, blob_id: bytes) -> int:
        """The record number of ``blob_id`` (0 .. len-1, stable while the index lives), or -1.
        Lets callers keep per-blob state in a compact array instead of a set of ids."""
        return self._find(blob_id)

    def _find(self, blob_id: bytes) -> int:
        """Record number of ``blob_id``, or -1."""
        mask, keys, slots = self._table
        key = int.from_bytes(blob_id[:8], "little")
        i = key & mask
        records = self._records
        while slot := slots[i]:
            if keys[i] == key:
                start = (slot - 1) * _RECORD.size
                if records[start : start + 32] == blob_id:
                    return slot - 1
            i = (i + 1) & mask
        return -1

    def get(self, blob_id: bytes) -> IndexEntry | None:
        record = self._find(blob_id)
        return None if record < 0 else self._entry(record)

    def _entry(self, record: int) -> IndexEntry:
        blob_id, pack_no, offset, length, raw, blob_type = _RECORD.unpack_from(
            self._records, record * _RECORD.size
        )
        return IndexEntry(blob_id, BlobType(blob_type), self._packs[pack_no], offset, length, raw)

    def add_pack(self, pack_id: bytes, entries: Iterable[PackEntry]) -> bool:
        """Index a pack's complete listing. False (and nothing changes) if the pack is known."""
        with self._lock:
            if pack_id in self._pack_numbers:
                return False
            pack_no = self._pack_numbers[pack_id] = len(self._packs)
            self._packs.append(pack_id)
            for entry in entries:
                self._add_record(pack_no, entry)
            return True

    def _add_record(self, pack_no: int, entry: PackEntry) -> None:
        first = self._find(entry.blob_id) < 0
        self._records += _RECORD.pack(
            entry.blob_id, pack_no, entry.offset, entry.length, entry.raw_length,
            entry.blob_type,
        )
        self._count += 1
        if not first:
            return  # a second copy: listed with its pack, not found by lookups
        self._indexed += 1
        mask, keys, slots = self._table
        if self._indexed > _MAX_LOAD * (mask + 1):
            mask, keys, slots = self._grow(mask)
        self._insert(mask, keys, slots, entry.blob_id, self._count)

    @classmethod
    def _insert(cls, mask: int, keys: array, slots: array, blob_id: bytes, slot: int) -> None:
        cls._insert_key(mask, keys, slots, int.from_bytes(blob_id[:8], "little"), slot)

    @staticmethod
    def _insert_key(mask: int, keys: array, slots: array, key: int, slot: int) -> None:
        i = key & mask
        while slots[i]:
            i = (i + 1) & mask
        keys[i] = key
        slots[i] = slot

    def _grow(self, mask: int) -> tuple[int, array, array]:
        size = 2 * (mask + 1)
        table = (size - 1, array("Q", bytes(8 * size)), array("I", bytes(4 * size)))
        old_mask, old_keys, old_slots = self._table
        for i in range(old_mask + 1):  # move every slot; the caller inserts the newest record
            if old_slots[i]:
                self._insert_key(*table, old_keys[i], old_slots[i])
        self._table = table
        return table

    def __iter__(self) -> Iterator[IndexEntry]:
        for record in range(self._count):
            yield self._entry(record)

    def pack_ids(self) -> set[bytes]:
        return set(self._packs)

    def memory_bytes(self) -> int:
        """Bytes held by the blob records and the slot table (not the per-pack list)."""
        _, keys, slots = self._table
        return len(self._records) + keys.itemsize * len(keys) + slots.itemsize * len(slots)


# ---- index files -------------------------------------------------------------------------

INDEX_MAGIC = b"FVIX"
INDEX_VERSION = 1
_U32 = struct.Struct("<I")
_FILE_PREFIX = struct.Struct("<4sB")
_FILE_ENTRY = struct.Struct("<B32sIII")


@dataclass(slots=True)
class IndexFile:
    """The plaintext of one index file: packs with their blobs, and the index files it replaces."""

    packs: dict[bytes, list[PackEntry]] = field(default_factory=dict)
    supersedes: list[bytes] = field(default_factory=list)

    def blob_count(self) -> int:
        return sum(len(entries) for entries in self.packs.values())

    def encode(self) -> bytes:
        out = [_FILE_PREFIX.pack(INDEX_MAGIC, INDEX_VERSION), _U32.pack(len(self.supersedes))]
        out.extend(self.supersedes)
        out.append(_U32.pack(len(self.packs)))
        for pack_id, entries in self.packs.items():
            out.append(pack_id + _U32.pack(len(entries)))
            out.extend(
                _FILE_ENTRY.pack(e.blob_type, e.blob_id, e.offset, e.length, e.raw_length)
                for e in entries
            )
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> IndexFile:
        reader = _Reader(data)
        magic, version = reader.unpack(_FILE_PREFIX)
        if magic != INDEX_MAGIC or version != INDEX_VERSION:
            raise MalformedObject("not an index file of a known version")
        result = cls()
        result.supersedes = [reader.take(32) for _ in range(reader.count(32))]
        for _ in range(reader.count(36)):
            pack_id = reader.take(32)
            if pack_id in result.packs:
                raise MalformedObject("index lists a pack twice")
            result.packs[pack_id] = [
                _decode_entry(reader.unpack(_FILE_ENTRY))
                for _ in range(reader.count(_FILE_ENTRY.size))
            ]
        reader.expect_end()
        return result


def _decode_entry(fields: tuple) -> PackEntry:
    raw_type, blob_id, offset, length, raw_length = fields
    if raw_type not in (BlobType.DATA, BlobType.TREE):
        raise MalformedObject(f"unknown blob type {raw_type}")
    if not SEAL_OVERHEAD < length <= MAX_BLOB_SIZE or raw_length > MAX_BLOB_SIZE:
        raise MalformedObject("blob length out of range")
    return PackEntry(BlobType(raw_type), blob_id, offset, length, raw_length)


class _Reader:
    """Bounds-checked sequential reads over untrusted bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedObject("index file is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def count(self, min_item_size: int) -> int:
        """Read a u32 count, refusing counts the remaining bytes cannot possibly hold."""
        (n,) = self.unpack(_U32)
        if n * min_item_size > len(self.data) - self.pos:
            raise MalformedObject("index file count exceeds its size")
        return n

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise MalformedObject("trailing bytes in index file")
