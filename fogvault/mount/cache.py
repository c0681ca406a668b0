"""A least-recently-used cache bounded by the bytes of what it holds, safe to share between
the threads that answer a mount's requests.

Values are kept within the budget, by least recent use; besides those, the ``large_kept``
most recently put values that are *large* (over half the budget) are kept whatever their size,
outside the budget. Without that, a value larger than the budget would never be kept (a
folder of 100,000 files was read and decoded again at every lookup in it), and one near it
would be dropped by the small ones put around each use (the folders above it, looked up on
the way to it), and loaded again each time. ``held`` counts both, so it can exceed the budget
by the large values kept.

Two threads that miss the same key both load it (and both put it): rare, and cheaper than
making one wait for the other's read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, budget: int, large_kept: int = 1) -> None:
        self.budget = budget
        self.large_kept = large_kept
        self.held = 0  # bytes of the values held, as their putters counted them
        self._within = 0  # of those, the bytes of the values held within the budget
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()  # within the budget
        self._large: OrderedDict[K, tuple[V, int]] = OrderedDict()  # beyond it
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            for items in (self._items, self._large):
                item = items.get(key)
                if item is not None:
                    items.move_to_end(key)
                    return item[0]
            return None

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` (``size`` bytes), dropping the least recently used to stay within the
        budget, or (a large value) to keep at most ``large_kept`` large ones."""
        large = size > self.budget // 2
        with self._lock:
            self._drop(key)
            if large and self.large_kept < 1:
                return
            (self._large if large else self._items)[key] = (value, size)
            self.held += size
            if not large:
                self._within += size
            while len(self._large) > self.large_kept:
                self._drop(next(iter(self._large)))
            while self._within > self.budget:
                self._drop(next(iter(self._items)))

    def _drop(self, key: K) -> None:
        for items in (self._items, self._large):
            item = items.pop(key, None)
            if item is not None:
                self.held -= item[1]
                if items is self._items:
                    self._within -= item[1]

    def __len__(self) -> int:
        return len(self._items) + len(self._large)
