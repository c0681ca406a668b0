"""The decoded chunks a mount's reads need: cached, loaded once however many requests want
the same one at the same time, and loaded ahead of a file read in order.

The kernel splits a file's reads into requests of 128 KiB and, reading ahead, sends several at
once to libfuse's threads; chunks are 1 MiB on average, so those requests mostly want the same
chunk. Each of them used to load it (read, decrypt, decompress, verify) on its own. Now the
first one loads it and the others wait for that load.

Reading ahead: after a read in order (starting where the file's last read ended, give or take
the kernel's reordering), the next chunks of the file are loaded by worker threads while the
reader goes on with the one it has, so that loading (which releases the GIL) overlaps the
reader's work and the next request finds its chunk decoded. A load ahead that fails is
forgotten: the read that needs the chunk loads it again and reports the failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from fogvault.mount.cache import BoundedCache

READ_AHEAD_WORKERS = 2  # chunks loaded ahead at once (both cores; a remote target's latency)
#: loads ahead waiting for a worker; beyond it, reads ahead are dropped (many files read at once
#: would otherwise queue loads that the cache drops before their reads come)
READ_AHEAD_QUEUE = 2 * READ_AHEAD_WORKERS


class ChunkLoader:
    def __init__(self, load: Callable[[bytes], bytes], cache_bytes: int) -> None:
        """``load`` returns a chunk verified, or raises."""
        self._load = load
        self._cache: BoundedCache[bytes, bytes] = BoundedCache(cache_bytes)
        # Loads under way, by chunk id. A load ahead that fails ends with None: "load it
        # yourself", so that the read that needs the chunk reports the failure.
        self._loading: dict[bytes, Future[bytes | None]] = {}
        self._lock = threading.Lock()
        self._workers = ThreadPoolExecutor(READ_AHEAD_WORKERS, "fogvault-read-ahead")
        self._queued = 0  # loads ahead not started yet
        self._closed = False

    def get(self, blob_id: bytes) -> bytes:
        """The chunk, from the cache, from a load under way, or loaded now."""
        while True:
            data = self._cache.get(blob_id)
            if data is not None:
                return data
            future, mine = self._claim(blob_id)
            data = self._fill(blob_id, future) if mine else future.result()
            if data is not None:
                return data

    def read_ahead(self, blob_ids: Iterable[bytes]) -> None:
        """Load these chunks in the background unless cached or under way, as long as the
        queue has room. A load ahead claims its chunk only when a worker starts it, so that a
        read never waits for the loads queued before it."""
        for blob_id in blob_ids:
            with self._lock:
                if self._closed or self._queued >= READ_AHEAD_QUEUE:
                    return
                if blob_id in self._loading:
                    continue
                self._queued += 1
                # under the lock: close() cannot shut the workers down between the check and
                # this (submit would raise)
                self._workers.submit(self._load_ahead, blob_id)

    def close(self) -> None:
        """Start no more loads ahead and drop those queued (they hold no claim); the ones
        running end on their own."""
        with self._lock:
            self._closed = True
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _load_ahead(self, blob_id: bytes) -> None:
        with self._lock:
            self._queued -= 1
        if self._cache.get(blob_id) is not None:
            return
        future, mine = self._claim(blob_id)
        if mine:
            self._fill(blob_id, future, ahead=True)

    def _claim(self, blob_id: bytes) -> tuple[Future[bytes | None], bool]:
        """The future of the load of ``blob_id``, and whether the caller is to make it."""
        with self._lock:
            future = self._loading.get(blob_id)
            if future is not None:
                return future, False
            future = Future()
            data = self._cache.get(blob_id)  # put by a load that ended since the caller looked
            if data is not None:
                future.set_result(data)
                return future, False
            self._loading[blob_id] = future
            return future, True

    def _fill(self, blob_id: bytes, future: Future[bytes | None], *, ahead: bool = False
              ) -> bytes | None:
        """Load the chunk for the ones waiting on ``future``; a read's load raises its
        failure (to them too), a load ahead ends with None."""
        try:
            data = self._load(blob_id)
        except BaseException as exc:
            self._done(blob_id)
            if ahead and isinstance(exc, Exception):
                future.set_result(None)
                return None
            future.set_exception(exc)
            raise
        self._cache.put(blob_id, data, len(data))
        self._done(blob_id)  # after the put: a claim that finds no load finds it cached
        future.set_result(data)
        return data

    def _done(self, blob_id: bytes) -> None:
        with self._lock:
            del self._loading[blob_id]
