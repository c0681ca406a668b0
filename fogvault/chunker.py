"""Content-defined chunking with FastCDC 2020 (pyfastcdc, compiled, releases the GIL).

The gear table is permuted by a seed derived from the repository's identity key, so the chunk
boundaries (and hence the sizes visible in pack layouts) do not fingerprint known files.

Streams are read in windows (``READ_SIZE`` new bytes after the previous window's last chunk)
and cut with ``cut_buf`` (zero-copy views; about 5x less CPU than pyfastcdc's ``cut_stream``,
which copies). Every chunk of a window but the last is complete; the last is cut again together
with the next window, which gives exactly the boundaries of chunking the whole stream at once.
A chunk is a view of its window, so chunks handed to other threads stay valid as long as they
are held: a window is reused only once no chunk refers to it (``heap.MapPool``); memory is
bounded by the window size times the windows that chunks in flight still refer to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fogvault.crypto import derive_subkey
from fogvault.heap import MapPool

KIB = 1024
MIB = 1024 * KIB
#: Bytes read per window, after the carried last chunk of the previous one (at most the
#: maximum chunk size). Chunks are views of their window, which stays alive until they are
#: sealed: larger windows cost memory (two 16 MiB windows were a third of a big-file
#: backup's heap) and gain nothing once reads and cuts are a few per MiB.
READ_SIZE = 4 * MIB
_POOLED_WINDOW = 256 * KIB  # smaller windows (small files) are buffers of their own
_NOTHING = memoryview(b"")


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    min_size: int = 512 * KIB
    avg_size: int = 1 * MIB
    max_size: int = 8 * MIB

    def validate(self) -> None:
        # pyfastcdc's own limits, checked here so a bad config is a clear error.
        if not (64 <= self.min_size <= MIB and 256 <= self.avg_size <= 4 * MIB):
            raise ValueError("chunker sizes out of range")
        if not (1024 <= self.max_size <= 16 * MIB and self.min_size <= self.avg_size):
            raise ValueError("chunker sizes out of range")
        if self.avg_size > self.max_size:
            raise ValueError("chunker sizes out of range")


def chunker_seed(identity_key: bytes) -> int:
    """A non-zero 63-bit seed: pyfastcdc takes a C ``long``, and zero would select its public
    default gear table."""
    raw = int.from_bytes(derive_subkey(identity_key, "fogvault chunker seed v1", 8), "little")
    return (raw & (2**63 - 1)) or 1


class Chunker:
    """Splits streams into chunks. One instance per thread (FastCDC objects are not shared)."""

    def __init__(self, params: ChunkerParams, seed: int) -> None:
        params.validate()
        # Imported on first use: with what it pulls in, pyfastcdc is 0.3-0.6 MiB of the start-up
        # footprint that commands which never chunk (snapshots, check, restore) would carry to
        # their peak, on top of the password KDF's 32 MiB.
        from pyfastcdc import FastCDC

        self._cdc = FastCDC(
            params.avg_size, min_size=params.min_size, max_size=params.max_size, seed=seed
        )
        # A fresh window cost a zero fill and a page fault per 4 KiB page, both holding the
        # GIL that the sealing threads wait for: 0.35 s of a 1 GiB backup's walking thread. The
        # pool reuses a window once no chunk refers to it (8: the chunks in flight, 2 per
        # BlobSaver worker, and a batch refer to a few).
        self._windows = MapPool(params.max_size + READ_SIZE, keep=8)

    def chunks(self, stream: BinaryIO, size_hint: int | None = None) -> Iterator[memoryview]:
        """Chunk ``stream``. ``size_hint`` (the expected length, e.g. from ``fstat``) only sizes
        the first buffer, so a small file does not cost a window-sized allocation; a stream
        longer or shorter than the hint is still chunked correctly."""
        carry = _NOTHING
        while True:
            want = READ_SIZE
            if size_hint is not None:
                # One byte more than expected: a short read then proves the end of the stream.
                want, size_hint = min(want, max(size_hint, 0) + 1), None
            view, got = self._window(stream, carry, want)
            carry = _NOTHING  # copied into the new window: its old window may be reused
            if not view:
                return
            cuts = [chunk.data for chunk in self._cdc.cut_buf(view)]
            if got < want:  # end of stream: the last chunk is final
                yield from cuts
                return
            yield from cuts[:-1]
            # The last chunk is copied into the next window from this one, which is not reused
            # while ``carry`` refers to it (no loop variable holds a view of it either).
            carry = cuts[-1]
            del view, cuts

    def chunk_buffer(self, data: bytes) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data

    def _window(self, stream: BinaryIO, carry: memoryview, want: int) -> tuple[memoryview, int]:
        """A window holding ``carry`` and up to ``want`` bytes read after it (fewer only at the
        end of the stream), and how many were read."""
        readinto = getattr(stream, "readinto", None)
        if readinto is None:
            data = _read_full(stream, want)
            return memoryview(bytes(carry) + data if carry else data), len(data)
        size = len(carry) + want
        # A small file's window is a buffer of its own.
        buffer = self._windows.take(size) if size >= _POOLED_WINDOW else bytearray(size)
        window = memoryview(buffer)[:size]
        window[: len(carry)] = carry
        got = _readinto_full(readinto, window[len(carry) :])
        return window[: len(carry) + got], got


def _readinto_full(readinto, view: memoryview) -> int:
    """Fill ``view``; fewer bytes only at the end of the stream. Returns the count."""
    done = 0
    while done < len(view):
        n = readinto(view[done:])
        if not n:
            break
        done += n
    return done


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of the stream."""
    parts = []
    while size > 0:
        part = stream.read(size)
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
