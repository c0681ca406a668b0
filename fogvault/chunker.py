"""Content-defined chunking with FastCDC 2020 (pyfastcdc, compiled, releases the GIL).

The gear table is permuted by a seed derived from the repository's identity key, so the chunk
boundaries (and hence the sizes visible in pack layouts) do not fingerprint known files.
Streaming keeps memory flat: ``cut_stream`` reuses one buffer, so every chunk is copied out
before it is handed on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC

from fogvault.crypto import derive_subkey

KIB = 1024
MIB = 1024 * KIB


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
        self._cdc = FastCDC(
            params.avg_size, min_size=params.min_size, max_size=params.max_size, seed=seed
        )

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)

    def chunk_buffer(self, data: bytes) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(data):
            yield chunk.data
