"""A file of a snapshot read at any offset, one chunk at a time.

Where each chunk starts is known from the index, which holds every chunk's plaintext length:
opening a file reads none of its chunks, and a read finds its first chunk by bisection over
the chunks' cumulative ends. The bytes a read asks for that lie beyond what the chunks hold
(a chunk that no index lists, or chunks that end before the file's recorded size) are an
:class:`~fogvault.errors.IntegrityError`, as is a chunk that cannot be loaded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from fogvault.errors import IntegrityError
from fogvault.repo.index import BlobIndex
from fogvault.repo.tree import Node


class FileContent:
    """The chunks of one file node and where each ends in the file."""

    def __init__(self, index: BlobIndex, node: Node) -> None:
        self.node = node
        self.ends: list[int] = []  # of the chunks up to the first one no index lists
        end = 0
        for blob_id in node.content:
            entry = index.get(blob_id)
            if entry is None:
                break
            end += entry.raw_length
            self.ends.append(end)

    @property
    def complete(self) -> bool:
        """Whether the index placed every chunk."""
        return len(self.ends) == len(self.node.content)

    def read(self, offset: int, size: int, load: Callable[[bytes], bytes]) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer only at the end of the file), each chunk
        from ``load`` (which returns it verified, or raises)."""
        end = min(offset + size, self.node.size)
        if offset >= end:
            return b""
        known = self.ends[-1] if self.ends else 0
        if end > known:
            raise self._gap(known)
        pieces = []
        number = bisect_right(self.ends, offset)
        position = offset
        while position < end:
            start = self.ends[number - 1] if number else 0
            chunk = load(self.node.content[number])
            pieces.append(chunk[position - start : end - start])
            position = self.ends[number]
            number += 1
        return b"".join(pieces)

    def chunk_ids(self, position: int, more: int) -> list[bytes]:
        """The id of the chunk that holds byte ``position`` and of up to ``more`` after it,
        among those the index placed."""
        number = bisect_right(self.ends, position)
        return self.node.content[number : min(number + more + 1, len(self.ends))]

    def _gap(self, known: int) -> IntegrityError:
        if not self.complete:
            missing = self.node.content[len(self.ends)].hex()
            return IntegrityError(f"chunk {missing} is not in the index (bytes from {known} on "
                                  "cannot be placed)")
        return IntegrityError(f"the file's chunks end {self.node.size - known} bytes before its "
                              "recorded size")
