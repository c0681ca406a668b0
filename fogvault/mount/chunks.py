"""The decoded chunks a mount's reads need: cached, loaded once however many requests want
the same one at the same time, loaded ahead of a file read in order, and not loaded again for a
while once a load failed.

The kernel splits a file's reads into requests of 128 KiB and, reading ahead, sends several at
once to libfuse's threads; chunks are 1 MiB on average, so those requests mostly want the same
chunk. Each of them used to load it (read, decrypt, decompress, verify) on its own. Now the
first one loads it and the others wait for that load.

Reading ahead: after a read in order (starting where the file's last read ended, give or take
the kernel's reordering), the next chunks of the file are loaded by worker threads while the
reader goes on with the one it has, so that loading (which releases the GIL) overlaps the
reader's work and the next request finds its chunk decoded.

Failures: a load that fails (a chunk damaged or missing on every target, or a target that
cannot be reached) is remembered for ``FAILURE_KEPT_S`` seconds from when it failed, and every
request for that chunk meanwhile fails at once with the same exception, without a load. The
kernel answers a failed read by asking again, page by page, and a program may try again too:
without this a ``cat`` of a file with a damaged chunk loaded it 4 to 6 times, and each load
reads the chunk on every target. Once the time has passed the chunk is loaded again, so a
target that came back or a ``repair`` run meanwhile is seen. A load ahead that fails is
remembered as well (it reports nothing: the read that needs the chunk reports the failure).
Failures are kept only for that time, so they hold no more than those of the last few seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from fogvault.mount.cache import BoundedCache

READ_AHEAD_WORKERS = 2  # chunks loaded ahead at once (both cores; a remote target's latency)
#: loads ahead waiting for a worker; beyond it, reads ahead are dropped (many files read at once
#: would otherwise queue loads that the cache drops before their reads come)
READ_AHEAD_QUEUE = 2 * READ_AHEAD_WORKERS
#: seconds a failed load is remembered: long against the kernel's and programs' retries (which
#: come at once), short against a repair or a target coming back
FAILURE_KEPT_S = 5.0


class ChunkLoader:
    def __init__(self, load: Callable[[bytes], bytes], cache_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``load`` returns a chunk verified, or raises."""
        self._load = load
        self._clock = clock
        self._cache: BoundedCache[bytes, bytes] = BoundedCache(cache_bytes)
        self._loading: dict[bytes, Future[bytes]] = {}  # loads under way, by chunk id
        # Failed loads, by chunk id: when each is forgotten, and its exception. In the order
        # they failed, which is that of their ends (all are kept as long).
        self._failed: dict[bytes, tuple[float, Exception]] = {}
        self._lock = threading.Lock()
        self._workers = ThreadPoolExecutor(READ_AHEAD_WORKERS, "fogvault-read-ahead")
        self._queued = 0  # loads ahead not started yet
        self._closed = False

    def get(self, blob_id: bytes) -> bytes:
        """The chunk, from the cache, from a load under way, or loaded now; or the failure of
        its last load, if that was less than ``FAILURE_KEPT_S`` ago."""
        data = self._cache.get(blob_id)
        if data is not None:
            return data
        future, mine = self._claim(blob_id)
        return self._fill(blob_id, future) if mine else future.result()

    def read_ahead(self, blob_ids: Iterable[bytes]) -> None:
        """Load these chunks in the background unless cached, under way or failed lately, as
        long as the queue has room. A load ahead claims its chunk only when a worker starts
        it, so that a read never waits for the loads queued before it."""
        for blob_id in blob_ids:
            with self._lock:
                if self._closed or self._queued >= READ_AHEAD_QUEUE:
                    return
                if blob_id in self._loading or self._failure(blob_id) is not None:
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
            with contextlib.suppress(Exception):  # remembered: a read that needs it reports it
                self._fill(blob_id, future)

    def _claim(self, blob_id: bytes) -> tuple[Future[bytes], bool]:
        """The future of the load of ``blob_id`` (done already if the chunk is cached or its
        load failed lately), and whether the caller is to make it."""
        with self._lock:
            future = self._loading.get(blob_id)
            if future is not None:
                return future, False
            future = Future()
            failure = self._failure(blob_id)
            if failure is not None:
                # raised again and again: without this its traceback (and the frames and data
                # it holds) would grow by every raise
                future.set_exception(failure.with_traceback(None))
                return future, False
            data = self._cache.get(blob_id)  # put by a load that ended since the caller looked
            if data is not None:
                future.set_result(data)
                return future, False
            self._loading[blob_id] = future
            return future, True

    def _fill(self, blob_id: bytes, future: Future[bytes]) -> bytes:
        """Load the chunk for the ones waiting on ``future``; a failure is raised, to them too,
        and remembered."""
        try:
            data = self._load(blob_id)
        except BaseException as exc:
            with self._lock:  # one step: a claim finds the load under way, or its failure
                if isinstance(exc, Exception):
                    self._remember(blob_id, exc)
                del self._loading[blob_id]
            future.set_exception(exc)
            raise
        self._cache.put(blob_id, data, len(data))
        with self._lock:
            del self._loading[blob_id]  # after the put: a claim that finds no load finds it cached
        future.set_result(data)
        return data

    def _failure(self, blob_id: bytes) -> Exception | None:
        """The exception of the last load of ``blob_id`` if it failed lately (under the lock)."""
        failed = self._failed.get(blob_id)
        return failed[1] if failed is not None and failed[0] > self._clock() else None

    def _remember(self, blob_id: bytes, exc: Exception) -> None:
        """Keep the failure of a load of ``blob_id``, and forget those kept long enough (under
        the lock)."""
        now = self._clock()
        while self._failed:
            oldest = next(iter(self._failed))
            if self._failed[oldest][0] > now:
                break
            del self._failed[oldest]
        self._failed.pop(blob_id, None)  # to the end: the order stays that of the ends
        self._failed[blob_id] = now + FAILURE_KEPT_S, exc
