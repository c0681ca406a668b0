"""A pack is verified in pieces (pack.verify_pack): what it holds at once is bounded, it reads
every byte, and it finds every damage that verifying the whole pack in memory finds, with the
same precedence (a pack that does not match its name is reported as that)."""

from __future__ import annotations

import random

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.crypto import content_hash
from fogvault.errors import IntegrityError
from fogvault.maintenance.check import CheckOptions, check
from fogvault.repo.format import BlobType
from fogvault.repo.pack import VERIFY_PIECE, PackBuilder, seal_blob, verify_pack
from fogvault.storage.errors import PermanentStorageError, TransientStorageError

PIECES = [1_000, 5_000, 20_000, 64 * 1024, 100_000, 10**9]


@pytest.fixture
def pack(make_repo):
    """keys, pack id, pack bytes and entries of one pack of 40 blobs of 1-30 KB, some of them
    compressible."""
    repo = make_repo()
    keys = (repo.master.encryption, repo.master.identity)
    rng = random.Random(7)
    builder = PackBuilder(BlobType.DATA)
    for i in range(40):
        size = rng.randrange(1_000, 30_000)
        data = rng.randbytes(size) if i % 3 else bytes([i]) * size
        blob_id = repo.blob_id(data)
        builder.add(blob_id, seal_blob(keys[0], BlobType.DATA, blob_id, data, 3), size)
    pack_id, view, entries = builder.finish(keys[0])
    return keys, pack_id, bytes(view), entries


class Reads:
    """A range reader over ``data`` that records what each read returned: (offset, length)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.ranges = data, []

    def __call__(self, offset: int, length: int) -> bytes:
        data = self.data[offset : offset + length]
        self.ranges.append((offset, len(data)))
        return data


@pytest.mark.parametrize("piece", PIECES)
def test_reads_are_bounded_and_cover_the_pack(pack, piece):
    keys, pack_id, data, entries = pack
    reads = Reads(data)
    verify_pack(pack_id, len(data), reads, keys, piece=piece)
    largest = max(e.length for e in entries)
    header = len(data) - (entries[-1].offset + entries[-1].length)
    assert all(length <= max(piece, largest, header) for _, length in reads.ranges)
    covered = bytearray(len(data))
    for offset, length in reads.ranges:
        covered[offset : offset + length] = b"\x01" * length
    assert all(covered)
    if piece >= len(data):
        assert reads.ranges == [(0, len(data))]
    else:  # only the group that reaches into the first read (the header's) reads bytes again,
        # unless the header is larger than a piece: the pack is then hashed before it is read
        first = reads.ranges[0][1]
        assert len(reads.ranges) > 1 and first <= max(min(piece, 64 * 1024), header)
        twice = len(data) + header if header > piece else first
        assert sum(length for _, length in reads.ranges) <= len(data) + twice


def test_a_pack_of_exactly_one_piece_is_one_read(pack):
    keys, pack_id, data, entries = pack
    reads = Reads(data)
    assert verify_pack(pack_id, len(data), reads, keys, piece=len(data)) == entries
    assert reads.ranges == [(0, len(data))]


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("full", [True, False])
def test_any_changed_byte_does_not_match_the_name(pack, piece, full):
    keys, pack_id, data, _ = pack
    for offset in [*range(0, len(data), len(data) // 50), len(data) - 1]:
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        with pytest.raises(IntegrityError, match="does not match its name"):
            verify_pack(pack_id, len(data), Reads(bytes(damaged)), keys if full else None,
                        piece=piece)
    verify_pack(pack_id, len(data), Reads(data), keys if full else None, piece=piece)


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("where", ["first blob", "middle blob", "last blob", "header"])
def test_damage_under_a_matching_name_is_found_with_the_keys(pack, piece, where):
    """A writer that names a damaged pack by its hash: only the blobs and header tell."""
    keys, _, data, entries = pack
    entry = {"first blob": entries[0], "middle blob": entries[20], "last blob": entries[-1]}
    offset = entry[where].offset + 40 if where in entry else len(data) - 10
    damaged = bytearray(data)
    damaged[offset] ^= 0x01
    forged_id = content_hash(damaged)
    reader = Reads(bytes(damaged))
    with pytest.raises(IntegrityError, match="authentication failed"):
        verify_pack(forged_id, len(data), reader, keys, piece=piece)
    verify_pack(forged_id, len(data), reader, None, piece=piece)  # without keys: the hash only


@pytest.mark.parametrize("piece", PIECES)
def test_the_first_bad_blob_is_the_one_reported(make_repo, piece):
    """Two blobs whose plaintext is not what their ids say, in a pack that matches its name."""
    repo = make_repo()
    keys = (repo.master.encryption, repo.master.identity)
    builder = PackBuilder(BlobType.DATA)
    liars = []
    for i in range(12):
        data = random.Random(i).randbytes(6_000)
        blob_id = repo.blob_id(data) if i not in (4, 9) else bytes([i]) * 32
        liars += [blob_id] if i in (4, 9) else []
        builder.add(blob_id, seal_blob(keys[0], BlobType.DATA, blob_id, data, 3), len(data))
    pack_id, view, _ = builder.finish(keys[0])
    with pytest.raises(IntegrityError, match=f"blob {liars[0].hex()} does not match its id"):
        verify_pack(pack_id, len(view), Reads(bytes(view)), keys, piece=piece)


@pytest.mark.parametrize("piece", PIECES)
def test_a_pack_of_another_size_than_listed_is_damaged(pack, piece):
    """An object that changed since it was listed: shorter, or longer (its first bytes may
    still be the whole pack)."""
    keys, pack_id, data, _ = pack
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(IntegrityError, match="shorter than listed"):
            verify_pack(pack_id, len(data), Reads(data[:cut]), keys, piece=piece)
    for full in (keys, None):
        with pytest.raises(IntegrityError, match="longer than listed"):
            verify_pack(pack_id, len(data), Reads(data + b"x"), full, piece=piece)


def test_a_header_larger_than_a_piece_is_read_only_from_a_pack_that_matches_its_name(make_repo):
    """A damaged trailer may claim a header of nearly the whole pack: no read larger than a
    piece is made for it. A genuine header that large (a pack of tiny blobs) still verifies."""
    repo = make_repo()
    keys = (repo.master.encryption, repo.master.identity)
    builder = PackBuilder(BlobType.DATA)
    for i in range(3_000):
        data = i.to_bytes(4, "little")
        builder.add(repo.blob_id(data), seal_blob(keys[0], BlobType.DATA, repo.blob_id(data),
                                                  data, 3), len(data))
    pack_id, view, entries = builder.finish(keys[0])
    data = bytes(view)
    header = len(data) - (entries[-1].offset + entries[-1].length)
    piece = 20_000
    assert header > piece  # 3,000 entries of 41 bytes
    reads = Reads(data)
    assert verify_pack(pack_id, len(data), reads, keys, piece=piece) == entries
    assert max(length for _, length in reads.ranges) == header
    damaged = bytearray(data)
    damaged[-2] ^= 0x01  # the trailer now claims a header of about 64 KiB more
    reads = Reads(bytes(damaged))
    with pytest.raises(IntegrityError, match="does not match its name"):
        verify_pack(pack_id, len(data), reads, keys, piece=piece)
    assert max(length for _, length in reads.ranges) <= piece


@pytest.mark.parametrize("piece", PIECES)
def test_read_errors_pass_through(pack, piece):
    keys, pack_id, data, _ = pack

    def unreachable(offset: int, length: int) -> bytes:
        raise TransientStorageError("timed out", target="t", name="data/x")

    with pytest.raises(TransientStorageError):
        verify_pack(pack_id, len(data), unreachable, keys, piece=piece)


def test_check_read_data_reads_no_pack_whole(make_repo, tmp_path):
    """Packs larger than a piece are read in pieces by check --read-data, and a blob damaged
    past the first piece is still found."""
    repo = make_repo(pack_size=4 * VERIFY_PIECE)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(random.Random(1).randbytes(3 * VERIFY_PIECE))
    Archiver(repo, BackupOptions()).run([str(src)])
    storage = repo.targets.targets[0].storage
    read, lengths = storage.read, []

    def recording(name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = read(name, offset, length)
        if name.startswith("data/"):
            lengths.append(len(data))
        return data

    storage.read = recording
    assert check(repo, CheckOptions(read_data=True)).ok
    assert sum(lengths) >= 3 * VERIFY_PIECE and max(lengths) <= VERIFY_PIECE
    pack_path = max((p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()),
                    key=lambda p: p.stat().st_size)
    damaged = bytearray(pack_path.read_bytes())
    damaged[2 * VERIFY_PIECE] ^= 0x01
    pack_path.write_bytes(bytes(damaged))
    name = str(pack_path.relative_to(tmp_path / "repo"))
    assert check(repo, CheckOptions(read_data=True)).targets[0].corrupt == [name]


def test_a_read_failing_part_way_through_a_pack_is_that_copys_problem(make_repo, tmp_path):
    repo = make_repo("one", "two", pack_size=4 * VERIFY_PIECE)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(random.Random(2).randbytes(2 * VERIFY_PIECE))
    Archiver(repo, BackupOptions()).run([str(src)])
    storage = repo.targets.targets[1].storage
    read = storage.read

    def failing(name: str, offset: int = 0, length: int | None = None) -> bytes:
        if name.startswith("data/") and offset >= VERIFY_PIECE:
            raise PermanentStorageError("disk on fire", target=storage.url, name=name)
        return read(name, offset, length)

    storage.read = failing
    result = check(repo, CheckOptions(read_data=True))
    assert result.targets[0].ok and result.targets[0].unreadable == {}
    # not read through, so not judged: unreadable there, with the reason, not corrupt
    [(name, why)] = result.targets[1].unreadable.items()
    assert name.startswith("data/") and why == "disk on fire" and not result.ok
    assert result.targets[1].corrupt == []
