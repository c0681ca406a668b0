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

What is kept of a failure is its exception's class and arguments (its message; an OSError's
errno), never the exception itself: its traceback, cause and context hold the frames of the
load and what they held, the chunk's sealed bytes from every target among them (208 failed
loads of a file of 3 MB chunks kept 600 MB). Every request that meets a failure gets an
exception of its own, made from those: one exception raised again and again would keep the
frames of its last raise. A failure is forgotten when it is next looked for after its time;
at most ``FAILURES_KEPT`` are kept (the oldest go first), about 500 bytes each.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from fogvault.errors import FogVaultError
from fogvault.mount.cache import BoundedCache

READ_AHEAD_WORKERS = 2  # chunks loaded ahead at once (both cores; a remote target's latency)
#: loads ahead waiting for a worker; beyond it, reads ahead are dropped (many files read at once
#: would otherwise queue loads that the cache drops before their reads come)
READ_AHEAD_QUEUE = 2 * READ_AHEAD_WORKERS
#: seconds a failed load is remembered: long against the kernel's and programs' retries (which
#: come at once), short against a repair or a target coming back
FAILURE_KEPT_S = 5.0
#: failed loads kept at most: a target that cannot be reached fails loads as fast as they are
#: asked for (the oldest is forgotten, and loaded again if it is asked for again)
FAILURES_KEPT = 1024


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed load, as it is kept: until when, and its exception made bare (:func:`_bare`)."""

    until: float
    exception: Exception


class ChunkLoader:
    def __init__(self, load: Callable[[bytes], bytes], cache_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``load`` returns a chunk verified, or raises."""
        self._load = load
        self._clock = clock
        self._cache: BoundedCache[bytes, bytes] = BoundedCache(cache_bytes)
        # Loads under way, by chunk id: each ends with the chunk, or with its failure.
        self._loading: dict[bytes, Future[bytes | _Failure]] = {}
        # Failed loads, by chunk id, in the order they failed, which is that of their ends
        # (all are kept as long).
        self._failed: dict[bytes, _Failure] = {}
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
        outcome = self._fill(blob_id, future) if mine else future.result()
        if isinstance(outcome, _Failure):
            raise _bare(outcome.exception)
        return outcome

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
            self._fill(blob_id, future)  # a failure is kept: a read that needs it reports it

    def _claim(self, blob_id: bytes) -> tuple[Future[bytes | _Failure], bool]:
        """The future of the load of ``blob_id`` (done already if the chunk is cached or its
        load failed lately), and whether the caller is to make it."""
        with self._lock:
            future = self._loading.get(blob_id)
            if future is not None:
                return future, False
            future = Future()
            failure = self._failure(blob_id)
            if failure is not None:
                future.set_result(failure)
                return future, False
            data = self._cache.get(blob_id)  # put by a load that ended since the caller looked
            if data is not None:
                future.set_result(data)
                return future, False
            self._loading[blob_id] = future
            return future, True

    def _fill(self, blob_id: bytes, future: Future[bytes | _Failure]) -> bytes | _Failure:
        """Load the chunk for the ones waiting on ``future``: the chunk, or its failure, kept.
        (A ``KeyboardInterrupt`` or ``SystemExit`` is raised, to them too, and not kept.)"""
        try:
            data = self._load(blob_id)
        except Exception as exc:
            clear_frames(exc)
            with self._lock:  # one step: a claim finds the load under way, or its failure
                failure = self._remember(blob_id, exc)
                del self._loading[blob_id]
            future.set_result(failure)
            return failure
        except BaseException as exc:
            with self._lock:
                del self._loading[blob_id]
            future.set_exception(exc)
            raise
        self._cache.put(blob_id, data, len(data))
        with self._lock:
            del self._loading[blob_id]  # after the put: a claim that finds no load finds it cached
        future.set_result(data)
        return data

    def _failure(self, blob_id: bytes) -> _Failure | None:
        """The failure of the last load of ``blob_id`` if it was less than ``FAILURE_KEPT_S``
        ago; one kept longer is forgotten (under the lock)."""
        failure = self._failed.get(blob_id)
        if failure is None or failure.until > self._clock():
            return failure
        del self._failed[blob_id]
        return None

    def _remember(self, blob_id: bytes, exc: Exception) -> _Failure:
        """Keep the failure of a load of ``blob_id``; forget those kept long enough, and the
        oldest beyond ``FAILURES_KEPT`` (under the lock)."""
        now = self._clock()
        self._failed.pop(blob_id, None)  # to the end: the order stays that of the ends
        while self._failed:
            oldest = next(iter(self._failed))
            if self._failed[oldest].until > now and len(self._failed) < FAILURES_KEPT:
                break
            del self._failed[oldest]
        failure = self._failed[blob_id] = _Failure(now + FAILURE_KEPT_S, _bare(exc))
        return failure


def _bare(exc: Exception) -> Exception:
    """A new exception of the class of ``exc``, made from its arguments (its message; an
    OSError's errno and text), without its traceback, cause or context."""
    try:
        return type(exc)(*exc.args)
    except Exception:  # a class its arguments do not make (one that requires a keyword)
        return FogVaultError(str(exc))


def clear_frames(exc: BaseException) -> None:
    """Drop the local variables of the finished frames that ``exc`` and the exceptions it
    chains (cause, context) were raised through, so that what they held goes with ``exc``
    rather than when the garbage collector next looks: a read that fails on every target keeps
    each target's error in a list in a frame of that read, so the error it raises holds itself
    through its traceback, and with it the sealed data its frames read (a cycle: 208 failed
    loads of 3 MB chunks held 600 MB until a collection)."""
    chain: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while chain:
        current = chain.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        chain += (current.__cause__, current.__context__)
