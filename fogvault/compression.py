"""zstd compression of blob payloads, with a cheap probe that skips incompressible data.

The probe is an encoder choice, not format. A payload is ``flag (1 byte) || body``: flag 0
means the body is the raw data, flag 1 means a zstd frame (with its content size).
Compressors are per thread: zstandard objects must not be shared across threads.
Decompression refuses frames that claim more than the caller allows, so a hostile object
cannot make us allocate without bound.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fogvault.errors import MalformedObject

if TYPE_CHECKING:
    import zstandard

# zstandard is imported where it is first used: every command derives its key (Argon2id, 32
# MiB) before it compresses or decompresses anything, and each module loaded by then adds to
# that peak (docs/performance-log.md, "Session 11").

RAW = 0
ZSTD = 1
PROBE_SIZE = 64 * 1024
PROBE_LEVEL = 1
# A probe that shrinks by less than 3 % marks the chunk incompressible.
PROBE_MAX_RATIO = 0.97
_RAW_FLAG, _ZSTD_FLAG = bytes([RAW]), bytes([ZSTD])

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        import zstandard

        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_local, "decompressor"):
        import zstandard

        _local.decompressor = zstandard.ZstdDecompressor()
    return _local.decompressor


def looks_compressible(data: bytes | memoryview) -> bool:
    """Probe the start, middle and end of larger chunks (a binary's header alone misleads):
    compressible if any probe shrinks."""
    if len(data) <= 3 * PROBE_SIZE:
        return True
    compressor = _compressor(PROBE_LEVEL)
    for start in (0, (len(data) - PROBE_SIZE) // 2, len(data) - PROBE_SIZE):
        probe = data[start : start + PROBE_SIZE]
        if len(compressor.compress(probe)) < PROBE_MAX_RATIO * PROBE_SIZE:
            return True
    return False


def pack_payload(data: bytes | memoryview, level: int) -> bytes:
    """Compress ``data`` if that helps; return ``flag || body``. Level 0 disables compression."""
    if level > 0 and looks_compressible(data):
        return _payload(data, _compressor(level).compress(data))
    return _RAW_FLAG + data


def pack_payloads(blobs: list[bytes], level: int) -> list[bytes]:
    """:func:`pack_payload` of each blob, the compression done in one call that releases the
    GIL once (zstandard's C backend). A thread sealing many small blobs one call at a time
    takes the GIL back after each blob, and every time it waits for it the thread walking the
    files stalls as well."""
    if level <= 0:
        return [_RAW_FLAG + data for data in blobs]
    marked = [(data, looks_compressible(data)) for data in blobs]
    frames = iter(_compress_many(_compressor(level), [data for data, yes in marked if yes]))
    return [_payload(data, next(frames)) if yes else _RAW_FLAG + data
            for data, yes in marked]


def _compress_many(compressor: zstandard.ZstdCompressor, blobs: list[bytes]) -> list:
    """Each blob as a zstd frame (bytes, or a buffer of the batch's shared result)."""
    if not blobs:
        return []
    try:
        return list(compressor.multi_compress_to_buffer(blobs))
    except NotImplementedError:  # the CFFI backend (PyPy) has no batch call
        return [compressor.compress(data) for data in blobs]


def _payload(data: bytes | memoryview, frame) -> bytes:
    """``flag || body`` from a blob and its zstd frame: the frame if it is smaller."""
    return _ZSTD_FLAG + frame if len(frame) < len(data) else _RAW_FLAG + data


def unpack_payload(payload: bytes, max_size: int) -> bytes:
    """Inverse of pack_payload. ``max_size`` bounds the output (known from the index)."""
    if not payload:
        raise MalformedObject("empty payload")
    flag, body = payload[0], memoryview(payload)[1:]
    if flag == RAW:
        if len(body) > max_size:
            raise MalformedObject("payload larger than declared")
        return bytes(body)
    if flag != ZSTD:
        raise MalformedObject(f"unknown compression flag {flag}")
    import zstandard

    try:
        declared = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise MalformedObject(f"bad zstd frame: {exc}") from exc
    if declared < 0 or declared > max_size:
        raise MalformedObject("zstd frame declares a size beyond the limit")
    try:
        return _decompressor().decompress(body, max_output_size=max_size)
    except zstandard.ZstdError as exc:
        raise MalformedObject(f"bad zstd frame: {exc}") from exc
