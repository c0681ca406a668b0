"""BlobSaver: small blobs sealed in batches, large ones one by one, all readable afterwards."""

from __future__ import annotations

import os

import pytest
import zstandard

from fogvault import compression
from fogvault.backup import saver as saver_module
from fogvault.backup.saver import BATCH_LIMIT, BlobSaver
from fogvault.compression import RAW, ZSTD, pack_payload, pack_payloads, unpack_payload
from fogvault.repo.format import BlobType
from fogvault.repo.packer import PackWriter

BLOBS = [
    b"",
    b"x",
    b"text that compresses " * 300,
    os.urandom(5000),  # incompressible: stored raw
    os.urandom(300_000),  # large enough for the probe, which finds it incompressible
    b"\0" * 250_000 + os.urandom(1000),  # large, compressible
]


class _NoBatchCall:
    """A compressor like zstandard's CFFI backend: no batch call."""

    def __init__(self, inner: zstandard.ZstdCompressor) -> None:
        self.inner = inner

    def compress(self, data: bytes) -> bytes:
        return self.inner.compress(data)

    def multi_compress_to_buffer(self, data, threads=0):
        raise NotImplementedError


@pytest.fixture(params=["batch call", "one call per blob"])
def compress_many(request, monkeypatch):
    """Both ways of compressing a batch: zstandard's C batch call, and the fallback."""
    if request.param == "one call per blob":
        real = compression._compressor
        monkeypatch.setattr(compression, "_compressor", lambda level: _NoBatchCall(real(level)))
    return request.param


@pytest.mark.parametrize("level", [0, 1, 3])
def test_pack_payloads_choose_what_pack_payload_chooses(compress_many, level):
    payloads = pack_payloads(BLOBS, level)
    assert [p[0] for p in payloads] == [pack_payload(b, level)[0] for b in BLOBS]
    assert [unpack_payload(p, len(b)) for p, b in zip(payloads, BLOBS, strict=True)] == BLOBS
    if level:
        assert payloads[2][0] == ZSTD and len(payloads[2]) < len(BLOBS[2]) / 10
        assert payloads[5][0] == ZSTD
    assert payloads[3][0] == payloads[4][0] == RAW


def _save_all(repo, blobs, batch_bytes=None, monkeypatch=None) -> list[bytes]:
    if batch_bytes is not None:
        monkeypatch.setattr(saver_module, "BATCH_BYTES", batch_bytes)
    writer = PackWriter(repo)
    saver = BlobSaver(repo, writer)
    try:
        ids = [saver.save(BlobType.DATA, data) for data in blobs]
        saver.wait()
        writer.flush()
    finally:
        saver.close()
        writer.close()
    return ids


@pytest.mark.parametrize("batch_bytes", [1, 10_000, None])
def test_small_and_large_blobs_are_stored_once_and_read_back(make_repo, reopen, monkeypatch,
                                                             compress_many, batch_bytes):
    """Batches of one blob, of a few, and one partial batch flushed by wait(); duplicates
    within a batch and across batches are stored once."""
    repo = make_repo()
    small = [os.urandom(100) + b"small %d " % i * 50 for i in range(40)]
    large = [os.urandom(BATCH_LIMIT), b"large " * 20_000]
    blobs = small + large + small[:5] + [small[0]]
    ids = _save_all(repo, blobs, batch_bytes, monkeypatch)
    fresh = reopen(repo)
    assert [fresh.load_blob(i) for i in ids] == blobs
    assert fresh.index.distinct_blobs() == len(small) + len(large)


def test_a_failing_batch_is_raised_by_wait(make_repo, monkeypatch):
    repo = make_repo()

    def broken(blobs, level):
        raise OSError("compressor broke")

    monkeypatch.setattr(saver_module, "pack_payloads", broken)
    writer = PackWriter(repo)
    saver = BlobSaver(repo, writer)
    try:
        saver.save(BlobType.DATA, b"a small blob")
        with pytest.raises(OSError, match="compressor broke"):
            saver.wait()
    finally:
        saver.close()
        writer.close()
