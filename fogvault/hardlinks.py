"""Files with several links, as a walk meets them: what the first name gave (its content in a
backup, its path in a restore) is looked up by each later name, and forgotten at the last one,
so the map holds only the inodes whose links are still to come."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
InodeKey = tuple[int, int]  # (device, inode)


class Hardlinks(Generic[T]):
    def __init__(self) -> None:
        self._seen: dict[InodeKey, tuple[T, int]] = {}  # -> (first name's value, links to come)

    def __iter__(self) -> Iterator[InodeKey]:
        return iter(self._seen)

    def remember(self, key: InodeKey, value: T, nlink: int) -> None:
        """The first name of a file with ``nlink`` links."""
        self._seen[key] = (value, nlink - 1)

    def peek(self, key: InodeKey) -> T | None:
        """The first name's value if ``key`` was met before, without counting a link."""
        known = self._seen.get(key)
        return None if known is None else known[0]

    def take(self, key: InodeKey) -> T | None:
        """The first name's value if ``key`` was met before (None otherwise), counting this
        link; a snapshot that holds only some of a file's links keeps it to the end."""
        known = self._seen.get(key)
        if known is None:
            return None
        value, to_come = known
        if to_come > 1:
            self._seen[key] = (value, to_come - 1)
        else:
            del self._seen[key]
        return value
