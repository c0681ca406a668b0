"""A wrapper that counts one target's requests and bytes and measures its latency.

``MeteredStorage(inner)`` passes every call through unchanged. Under a lock it records requests
per method, failed requests, bytes read and written, and ``latency``: an exponentially weighted
average (weight 0.3 for the newest) of how long *small reads* took: ``stat`` and reads that
returned at most ``SMALL`` bytes. So it measures round trips, not bandwidth, and not a write's
fsync either; it orders targets for reads. It is ``None`` until the first small read finished.

It sits below :class:`~fogvault.storage.retrying.RetryingStorage`, so every retry is counted as
the request it is. It does not classify, retry or hide anything.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fogvault.storage.base import ObjectInfo, Storage
from fogvault.storage.errors import ObjectNotFound, StorageError

T = TypeVar("T")

SMALL = 64 * 1024
_WEIGHT = 0.3


class MeteredStorage(Storage):
    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url
        self.requests: Counter[str] = Counter()
        self.failures = 0  # requests that raised (a missing object is not a failure)
        self.bytes_read = 0
        self.bytes_written = 0
        self.latency: float | None = None  # seconds, see the module docstring
        self._lock = threading.Lock()

    def _call(self, method: str, func: Callable[[], T], small: bool) -> T:
        with self._request(method, small):
            return func()

    @contextmanager
    def _request(self, method: str, small: bool) -> Iterator[None]:
        """Count one request around its body (also a listing its caller stopped reading); time
        it if it is small and did not fail."""
        started = time.monotonic()
        failed = False
        try:
            yield
        except StorageError as exc:
            failed = not isinstance(exc, ObjectNotFound)
            raise
        finally:
            with self._lock:
                self.requests[method] += 1
                self.failures += failed
            if small and not failed:
                self._time(started)

    def _time(self, started: float) -> None:
        elapsed = time.monotonic() - started
        with self._lock:
            old = self.latency
            self.latency = elapsed if old is None else old + _WEIGHT * (elapsed - old)

    def snapshot(self) -> dict[str, object]:
        """The counts so far, as plain data (for reports and the ledger)."""
        with self._lock:
            return {
                "requests": dict(self.requests), "failures": self.failures,
                "bytes_read": self.bytes_read, "bytes_written": self.bytes_written,
                "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
            }

    # --- Storage

    def create(self) -> None:
        self._call("create", self.inner.create, small=False)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        started = time.monotonic()
        data = self._call("read", lambda: self.inner.read(name, offset, length), small=False)
        with self._lock:
            self.bytes_read += len(data)
        if len(data) <= SMALL:  # how much came back, not how much was asked for
            self._time(started)
        return data

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        self._call("write", lambda: self.inner.write(name, data, overwrite=overwrite),
                   small=False)
        with self._lock:
            self.bytes_written += len(data)

    def stat(self, name: str) -> ObjectInfo:
        return self._call("stat", lambda: self.inner.stat(name), small=True)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Streamed, as the retrying wrapper above it streams (retrying.py says why).
        with self._request("list", small=False):
            yield from self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self._call("delete", lambda: self.inner.delete(name), small=False)

    def remove_incomplete(self, older_than: float) -> int:
        return self._call("remove_incomplete", lambda: self.inner.remove_incomplete(older_than),
                          small=False)

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self.inner.interrupt()
