"""The windowed chunker cuts exactly where chunking the whole stream at once would."""

from __future__ import annotations

import io
import random

import pytest
from pyfastcdc import FastCDC

from fogvault.chunker import MIB, READ_SIZE, Chunker, ChunkerParams, chunker_seed
from fogvault.crypto import MasterKey


class TrickleStream(io.RawIOBase):
    """Returns at most 1000 bytes a read, like a pipe: short reads are not the end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        part = self.data[self.pos : self.pos + min(size, 1000)]
        self.pos += len(part)
        return part

    def readinto(self, buffer) -> int:
        part = self.read(len(buffer))
        buffer[: len(part)] = part
        return len(part)


class ReadOnlyStream:
    """Has ``read`` but no ``readinto``: the chunker falls back to reading bytes."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self.stream.read(size)


@pytest.mark.parametrize("params", [ChunkerParams(), ChunkerParams(16 * 1024, 64 * 1024,
                                                                   256 * 1024)])
@pytest.mark.parametrize("size", [0, 1, 5000, 16 * MIB, 16 * MIB + 7, 40 * MIB])
def test_windowed_chunks_equal_whole_buffer_chunks(params, size):
    seed = chunker_seed(MasterKey.generate().identity)
    data = random.Random(size).randbytes(size)
    reference = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size,
                        seed=seed)
    expected = [bytes(c.data) for c in reference.cut_buf(data)] if data else []
    chunker = Chunker(params, seed)
    assert [bytes(c) for c in chunker.chunks(io.BytesIO(data))] == expected
    if size < MIB:
        assert [bytes(c) for c in chunker.chunks(TrickleStream(data))] == expected
    assert [bytes(c) for c in chunker.chunks(ReadOnlyStream(data))] == expected
    # The size hint only sizes the first buffer: right, too small or too large, same cuts.
    for hint in {0, size, max(size - 1, 0), size + 1, size // 3, 2 * size + 5}:
        assert [bytes(c) for c in chunker.chunks(io.BytesIO(data), size_hint=hint)] == expected


def test_long_stretches_without_boundaries_carry_across_windows():
    """Zeros have no content-defined boundary: chunks there are cut at the maximum size, so the
    carried last chunk grows past a window's read size before it is cut."""
    params = ChunkerParams()
    seed = chunker_seed(MasterKey.generate().identity)
    rng = random.Random(7)
    data = rng.randbytes(3 * MIB) + bytes(3 * READ_SIZE + 5) + rng.randbytes(5 * MIB)
    reference = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size,
                        seed=seed)
    expected = [bytes(c.data) for c in reference.cut_buf(data)]
    assert max(len(c) for c in expected) == params.max_size > READ_SIZE
    chunks = Chunker(params, seed).chunks(io.BytesIO(data), size_hint=len(data))
    assert [bytes(c) for c in chunks] == expected


def test_seed_changes_boundaries():
    data = random.Random(1).randbytes(8 * MIB)
    cuts = []
    for _ in range(2):
        chunker = Chunker(ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024),
                          chunker_seed(MasterKey.generate().identity))
        cuts.append([len(c) for c in chunker.chunks(io.BytesIO(data))])
    assert cuts[0] != cuts[1]


def test_windows_are_reused_only_once_no_chunk_refers_to_them(monkeypatch):
    """Chunks are views of their window. Chunks kept alive keep their bytes while later
    windows are read; chunks dropped as they come let the same few windows serve the stream."""
    from fogvault import heap

    fresh = []

    def counted_map(size: int):
        fresh.append(size)
        return heap.mmap.mmap(-1, size, flags=heap.mmap.MAP_PRIVATE | heap.mmap.MAP_ANONYMOUS)

    monkeypatch.setattr(heap, "zeroed_map", counted_map)
    params = ChunkerParams()
    seed = chunker_seed(MasterKey.generate().identity)
    data = random.Random(3).randbytes(48 * MIB)
    reference = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size,
                        seed=seed)
    expected = [bytes(c.data) for c in reference.cut_buf(data)]
    chunker = Chunker(params, seed)
    kept = list(chunker.chunks(io.BytesIO(data)))  # every window stays referenced
    assert len(fresh) >= 48 * MIB // READ_SIZE
    assert [bytes(c) for c in kept] == expected
    del kept
    fresh.clear()
    assert [bytes(c) for c in chunker.chunks(io.BytesIO(data))] == expected
    assert fresh == []  # the windows kept from the first stream served the whole second one
