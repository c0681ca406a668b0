"""Pack files: many encrypted blobs in one object, with an encrypted header at the end.

Layout (docs/format.md, "Packs")::

    pack   = blob_1 || ... || blob_n || header_ct || u32le(len(header_ct))
    blob_i = seal(enc_key, payload_i, aad("blob", type || id))
    header = "FVPK" || u8 version || u32le n || n * (u8 type || id[32] || u32le len || u32le raw)

Blob offsets are implicit (each blob starts where the previous ended) and must add up to the
header's position exactly; anything else is a malformed pack. The pack id is the unkeyed
BLAKE3 of the whole pack, so any copy can be verified without the key. Because the header is
in the pack, a lost index can be rebuilt from the packs alone.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fogvault.compression import pack_payload, unpack_payload
from fogvault.crypto import (
    SEAL_OVERHEAD,
    Buffer,
    content_hash,
    content_hasher,
    keyed_id,
    seal,
    seal_buffer,
    seal_into,
    unseal,
    unseal_buffer,
)
from fogvault.errors import IntegrityError, MalformedObject
from fogvault.heap import grown_map, zeroed_map
from fogvault.repo.format import BlobType, ObjectKind, aad, blob_aad

HEADER_MAGIC = b"FVPK"
HEADER_VERSION = 1
_HEADER_PREFIX = struct.Struct("<4sBI")
_ENTRY = struct.Struct("<B32sII")
_TRAILER = struct.Struct("<I")
#: No blob may be larger than this. Data blobs are at most the chunker's maximum (16 MiB); a
#: tree blob grows with its folder (~300 bytes an entry), so the bound is generous.
MAX_BLOB_SIZE = 512 * 1024 * 1024
#: Smallest possible sealed header, for bounds checks.
MIN_HEADER_SIZE = SEAL_OVERHEAD + _HEADER_PREFIX.size
#: :func:`verify_pack` reads a pack in pieces of about this many bytes (a larger blob whole), so
#: that verifying packs (``check --read-data`` reads 8 at a time per target) holds no whole pack.
VERIFY_PIECE = 4 * 1024 * 1024

#: ``(offset, length) -> bytes`` of one stored object: exactly ``length`` bytes unless it ends
#: first (a storage's ``read`` with the name bound).
RangeReader = Callable[[int, int], Buffer]
#: What :func:`verify_pack` reads first of a pack larger than a piece, from its end (if a piece
#: is that large): the header (41 bytes a blob) and trailer of a pack of up to 1,500 blobs.
_TAIL_GUESS = 64 * 1024


@dataclass(frozen=True, slots=True)
class PackEntry:
    blob_type: BlobType
    blob_id: bytes
    offset: int
    length: int
    raw_length: int


class BlobLocation(Protocol):
    """What opening a blob needs of its entry: a :class:`PackEntry` or an index entry."""

    @property
    def blob_type(self) -> BlobType: ...
    @property
    def blob_id(self) -> bytes: ...
    @property
    def length(self) -> int: ...
    @property
    def raw_length(self) -> int: ...


def seal_blob(
    enc_key: bytes, blob_type: BlobType, blob_id: bytes, data: bytes, level: int
) -> bytearray:
    """Compress and encrypt one blob into a buffer of its own."""
    return seal_buffer(enc_key, pack_payload(data, level), blob_aad(blob_type, blob_id))


def sealed_size(payload: Buffer) -> int:
    return SEAL_OVERHEAD + len(payload)


def seal_payload_into(enc_key: bytes, blob_type: BlobType, blob_id: bytes, payload: Buffer,
                      out: memoryview) -> None:
    """Encrypt a blob's payload (``pack_payload``'s ``flag || body``), bound to its id, into
    ``out`` (``sealed_size(payload)`` bytes, e.g. the blob's place in a pack)."""
    seal_into(enc_key, payload, blob_aad(blob_type, blob_id), out)


def open_blob(
    enc_key: bytes, id_key: bytes, entry: BlobLocation, sealed: bytes | memoryview
) -> bytes:
    """Decrypt one blob and check that its plaintext hashes to its id."""
    payload = unseal_buffer(enc_key, sealed, blob_aad(entry.blob_type, entry.blob_id))
    data = unpack_payload(payload, entry.raw_length)
    if len(data) != entry.raw_length or keyed_id(id_key, data) != entry.blob_id:
        # It authenticated under its id, so a writer that had the key made it: malformed, not
        # damaged on the way (a restore stops at it instead of writing zeros in its place).
        raise MalformedObject(f"blob {entry.blob_id.hex()} does not match its id")
    return data


class Span(Protocol):
    """Where a blob lies in its pack: a :class:`PackEntry` or an index entry."""

    @property
    def offset(self) -> int: ...
    @property
    def length(self) -> int: ...


SpanT = TypeVar("SpanT", bound=Span)


def pack_spans(entries: Iterable[SpanT], span: int) -> list[list[SpanT]]:
    """``entries`` (all of one pack) in offset order, cut into groups that each cover at most
    ``span`` bytes of the pack from the first blob's start to the last one's end (a larger
    blob is a group alone): the blobs one ranged read returns, with bounded memory."""
    groups: list[list[SpanT]] = []
    start = -1
    for entry in sorted(entries, key=lambda e: e.offset):
        if not groups or entry.offset + entry.length - start > span:
            groups.append([])
            start = entry.offset
        groups[-1].append(entry)
    return groups


class PackBuilder:
    """Collects sealed blobs and produces the finished pack.

    The pack is built in one private anonymous memory map: each blob is given its place in it
    (:meth:`reserve`), which its writer fills, so a backup's workers encrypt straight into the
    pack, several at once and without copying; the finished pack is a view of that map. The map
    is reserved for a whole pack at the first blob, but only the pages written are memory (the
    reservation counts only where the system refuses to overcommit); it goes back to the system
    as soon as the last view of it is dropped. A heap buffer (``BytesIO``) was reallocated at
    nearly every blob (3.3 GB allocated for 550 MB of packs in a big-file backup) and left the
    freed copies in the heap, where they set much of a backup's peak RSS (docs/performance-log.md,
    "Session 11"); copying each sealed blob into the map held the GIL through the copy and the
    page faults of its fresh pages ("Session 12")."""

    def __init__(self, blob_type: BlobType, capacity: int = 0) -> None:
        self.blob_type = blob_type
        # Room for a pack's worth of blobs and the blob that crosses the limit; a larger pack
        # (a huge tree blob, a header of very many entries) grows its map.
        self._capacity = capacity
        self._buffer: mmap.mmap | None = None  # mapped at the first blob
        self._entries: list[PackEntry] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def fits(self, length: int) -> bool:
        """Whether a blob of ``length`` bytes can be reserved without growing the map, which
        is impossible while the views of other reserved places are held."""
        return self.size + length <= (self._capacity if self._buffer is None
                                       else len(self._buffer))

    def reserve(self, blob_id: bytes, length: int, raw_length: int) -> memoryview:
        """The place of the next blob, ``length`` sealed bytes: a writable view that the caller
        must fill (and release) before :meth:`finish`. Grows the map if need be, which raises
        BufferError while views of other places are held (check :meth:`fits` first)."""
        start = self._extend(length)  # first: if it fails, the pack has no entry without bytes
        self._entries.append(PackEntry(self.blob_type, blob_id, start, length, raw_length))
        return memoryview(self._buffer)[start : start + length]

    def add(self, blob_id: bytes, sealed: Buffer, raw_length: int) -> None:
        """Copy in a blob sealed elsewhere."""
        with self.reserve(blob_id, len(sealed), raw_length) as place:
            place[:] = sealed

    def _extend(self, length: int) -> int:
        """Make room for ``length`` more bytes; return where they start."""
        if self._buffer is None:
            self._buffer = zeroed_map(max(self._capacity, length), huge_pages=True)
        elif self.size + length > len(self._buffer):
            self._buffer = grown_map(self._buffer, self.size + length, self.size)
        start, self.size = self.size, self.size + length
        return start

    def finish(self, enc_key: bytes) -> tuple[bytes, memoryview, list[PackEntry]]:
        """Return (pack id, pack view, entries); the builder is empty again afterwards. The
        pack is a view of page-aligned memory that lives as long as the view does."""
        header = _HEADER_PREFIX.pack(HEADER_MAGIC, HEADER_VERSION, len(self._entries))
        header += b"".join(
            _ENTRY.pack(e.blob_type, e.blob_id, e.length, e.raw_length) for e in self._entries
        )
        header_ct = seal(enc_key, header, aad(ObjectKind.PACK_HEADER))
        for part in (header_ct, _TRAILER.pack(len(header_ct))):
            start = self._extend(len(part))
            self._buffer[start : self.size] = part
        # Writable, so that a local target can see it is page-aligned and write it without
        # a copy (storage/local.py); nothing writes to it after this.
        data = memoryview(self._buffer)[: self.size]
        entries = self._entries
        self.discard()
        return content_hash(data), data, entries

    def discard(self) -> None:
        """Empty the builder; its map goes once no view of it is left."""
        self._buffer, self._entries, self.size = None, [], 0


def pack_overhead(blob_count: int) -> int:
    """Bytes a pack of ``blob_count`` blobs adds to its blobs: sealed header and trailer."""
    return _HEADER_PREFIX.size + blob_count * _ENTRY.size + SEAL_OVERHEAD + _TRAILER.size


def header_length(pack_size: int, trailer: bytes) -> int:
    """Given the pack's size and its last 4 bytes, the sealed header's length (validated)."""
    if pack_size < MIN_HEADER_SIZE + _TRAILER.size or len(trailer) != _TRAILER.size:
        raise MalformedObject("pack is too short")
    (length,) = _TRAILER.unpack(trailer)
    if not MIN_HEADER_SIZE <= length <= pack_size - _TRAILER.size:
        raise MalformedObject("pack header length out of range")
    return length


def parse_header(enc_key: bytes, header_ct: bytes, pack_size: int) -> list[PackEntry]:
    """Decrypt and validate a pack header read from a pack of ``pack_size`` bytes."""
    header = unseal(enc_key, header_ct, aad(ObjectKind.PACK_HEADER))
    if len(header) < _HEADER_PREFIX.size:
        raise MalformedObject("pack header is too short")
    magic, version, count = _HEADER_PREFIX.unpack_from(header)
    if magic != HEADER_MAGIC:
        raise MalformedObject("not a pack header")
    if version != HEADER_VERSION:
        raise MalformedObject(f"unsupported pack header version {version}")
    if len(header) != _HEADER_PREFIX.size + count * _ENTRY.size:
        raise MalformedObject("pack header entry count does not match its length")
    entries, offset = [], 0
    for pos in range(_HEADER_PREFIX.size, len(header), _ENTRY.size):
        raw_type, blob_id, length, raw_length = _ENTRY.unpack_from(header, pos)
        if raw_type not in (BlobType.DATA, BlobType.TREE):
            raise MalformedObject(f"unknown blob type {raw_type}")
        if not SEAL_OVERHEAD < length <= MAX_BLOB_SIZE or raw_length > MAX_BLOB_SIZE:
            raise MalformedObject("blob length out of range")
        entries.append(PackEntry(BlobType(raw_type), blob_id, offset, length, raw_length))
        offset += length
    if offset + len(header_ct) + _TRAILER.size != pack_size:
        raise MalformedObject("pack blobs do not add up to the header's position")
    return entries


def verify_pack(pack_id: bytes, size: int, read: RangeReader, keys: tuple[bytes, bytes] | None,
                piece: int = VERIFY_PIECE) -> list[PackEntry]:
    """Raise IntegrityError unless the ``size`` bytes that ``read`` returns are the pack
    ``pack_id``: they hash to it, and with ``keys`` (encryption, identity) its header parses and
    every blob opens and hashes to its id; return its entries (none without ``keys``). A damaged
    pack that does not match its name is reported as that, whatever else is wrong with it, as
    when packs were verified whole.

    A pack of at most ``piece`` bytes is one read. A larger one is read from its end first (its
    header), then its blobs in order in groups of about ``piece`` bytes, so that about ``piece``
    bytes (or the largest blob) are held at once; only the group that reaches into the header's
    read reads any byte twice. Without the header's blob boundaries (no keys, or it did not
    parse) the pieces are fixed. A header larger than a piece is read only once the pack has
    shown that it matches its name (the pack is then read twice): a damaged or hostile trailer
    could otherwise ask for a read of the whole pack."""
    first = size if size <= piece else max(min(piece, _TAIL_GUESS), MIN_HEADER_SIZE + _TRAILER.size)
    tail_start = max(0, size - first)
    tail = _read_to_end(read, tail_start, size)
    entries: list[PackEntry] = []
    problem: IntegrityError | None = None
    if keys is not None:
        try:
            header_start = size - _TRAILER.size - header_length(size, bytes(tail[-_TRAILER.size :]))
        except IntegrityError as exc:
            problem = exc
        else:
            if size - header_start > max(piece, len(tail)):
                _check_hash(pack_id, size, read, piece)
            if header_start < tail_start:
                tail_start, tail = header_start, _read_to_end(read, header_start, size)
            try:
                header_ct = bytes(memoryview(tail)[header_start - tail_start : -_TRAILER.size])
                entries = parse_header(keys[0], header_ct, size)
            except IntegrityError as exc:
                problem = exc
    hasher = content_hasher()
    for start, end, blobs in _reads(entries, tail_start, piece):
        data = _group_bytes(read, tail_start, tail, start, end)
        if start < tail_start:
            hasher.update(data[: tail_start - start])
        if problem is None and keys is not None:
            problem = _first_bad_blob(keys, blobs, data, start)
    hasher.update(tail)
    _require_name(hasher.digest(), pack_id)
    if problem is not None:
        raise problem
    return entries


def _check_hash(pack_id: bytes, size: int, read: RangeReader, piece: int) -> None:
    hasher = content_hasher()
    for start, end, _ in _reads([], size, piece):
        hasher.update(_read_exactly(read, start, end - start))
    _require_name(hasher.digest(), pack_id)


def _require_name(digest: bytes, pack_id: bytes) -> None:
    if digest != pack_id:
        raise IntegrityError("pack does not match its name")


def _first_bad_blob(keys: tuple[bytes, bytes], blobs: list[PackEntry], data: memoryview,
                    start: int) -> IntegrityError | None:
    """The error of the first of ``blobs`` (read as ``data``, from ``start``) that does not open."""
    for entry in blobs:
        try:
            open_blob(*keys, entry, data[entry.offset - start :][: entry.length])
        except IntegrityError as exc:
            return exc
    return None


def _group_bytes(read: RangeReader, tail_start: int, tail: Buffer, start: int, end: int
                 ) -> memoryview:
    """Bytes ``start`` to ``end`` of the pack: from the tail already read if they are in it."""
    if start >= tail_start:
        return memoryview(tail)[start - tail_start : end - tail_start]
    return memoryview(_read_exactly(read, start, end - start))


def _read_exactly(read: RangeReader, offset: int, length: int) -> Buffer:
    data = read(offset, length)
    if len(data) != length:
        raise IntegrityError("pack is shorter than listed")
    return data


def _read_to_end(read: RangeReader, offset: int, size: int) -> Buffer:
    """Bytes ``offset`` to ``size``, asking for one more: an object that changed since it was
    listed may have grown, and its first ``size`` bytes may still be a whole pack."""
    data = read(offset, size - offset + 1)
    if len(data) > size - offset:
        raise IntegrityError("pack is longer than listed")
    if len(data) < size - offset:
        raise IntegrityError("pack is shorter than listed")
    return data


def _reads(entries: list[PackEntry], end: int, piece: int
           ) -> Iterator[tuple[int, int, list[PackEntry]]]:
    """(start, end, blobs) of each read: the blobs' groups (they cover the pack up to its
    header), or with no blobs fixed pieces up to ``end``."""
    if entries:
        for group in pack_spans(entries, piece):
            yield group[0].offset, group[-1].offset + group[-1].length, group
        return
    for start in range(0, end, piece):
        yield start, min(start + piece, end), []
