"""A least-recently-used cache bounded by the bytes of what it holds, safe to share between
the threads that answer a mount's requests.

A value larger than the whole budget is not kept. Two threads that miss the same key both load
it (and both put it): rare, and cheaper than making one wait for the other's read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0  # bytes of the values held, as their putters counted them
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` (``size`` bytes), dropping the least recently used to stay within the
        budget."""
        if size > self.budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.held -= old[1]
            while self._items and self.held + size > self.budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self.held -= dropped
            self._items[key] = (value, size)
            self.held += size

    def __len__(self) -> int:
        return len(self._items)
