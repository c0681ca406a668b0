"""Bandwidth limits: a token bucket per direction, shared by the whole process, and a wrapper.

``ThrottledStorage(inner, upload, download)`` makes ``write`` take ``len(data)`` tokens from
the ``upload`` bucket and ``read`` take what it returned from the ``download`` bucket; every
other call passes through unlimited (they move no object bytes). As restic's ``--limit-upload``
and ``--limit-download``, a limit is the process's: :func:`process_bucket` hands every target
(and every thread, and the source and destination of ``copy``) the same bucket per direction,
so three targets at 512 KiB/s share 512 KiB/s, not 1.5 MiB/s.

Granularity. What the wrapper can pace depends on how the backend moves bytes:

* A backend that moves an object in pieces asks for the pace itself with
  :func:`claim_upload_pacing` and takes tokens per piece of at most :func:`pace_piece` bytes
  (local folders: every ``os.write`` of a write; SFTP: every WRITE request, awaited in the
  event loop with :meth:`Pacer.reserve`, as no thread may sleep there), or per part it sends
  (S3 multipart uploads: per part, 16 MiB by default, paid before the part goes). Traffic is
  then smooth at that scale.
* A backend whose library moves a whole object in one call (an S3 PUT or GET) gets its tokens
  taken by the wrapper *after* the call, in the same amounts: each object goes at link speed,
  and the next request of the process waits until the average is back under the limit. Over
  any window longer than one object the rate holds; within one object it does not.
* Reads are paid after the call in every backend (their size is known only then), for the same
  reason as placement below: pacing inside the request would make a small read look slow.

A request of at most :data:`SMALL_REQUEST` bytes (a lock, a snapshot, a pack's header) is
charged but never waits, so that a lock refresh does not queue behind every pack owed.

A write that is retried, or read back after a lost answer (``RetryingStorage``), pays again:
those bytes crossed the link too. ``interrupt`` ends every wait at once: a command being
stopped should not sleep out its debt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from fogvault.storage.base import ObjectInfo, Storage
from fogvault.storage.errors import TransientStorageError

KIB = 1024
#: A backend that paces itself takes tokens about this often a second (:func:`pace_piece`):
#: often enough that a limit looks steady at a glance...
PACE_TAKES_PER_SECOND = 8
#: ... in pieces of at least this many bytes (a slow limit's takes cost nothing) ...
PACE_PIECE = 64 * KIB
#: ... and at most this many (an SFTP WRITE request or a direct write is smaller anyway).
MAX_PACE_PIECE = 1024 * KIB
#: The bucket holds at most this much (and a second's worth at slow rates): after an idle
#: spell this much goes at once, never more.
MAX_BURST = 256 * KIB

#: A request of at most this many bytes (a lock, a snapshot, a pack's header) is charged to
#: the bucket but never waits: a lock refresh queued behind the packs already owed would wait
#: for all of them (three targets at 64 KiB/s with two 16 MiB packs each in flight: 25 min,
#: when a lock not refreshed for 25 min counts as stale).
SMALL_REQUEST = 16 * KIB

UPLOAD = "upload"
DOWNLOAD = "download"


class TokenBucket:
    """``rate`` bytes a second, at most ``burst`` saved up while idle; thread-safe.

    A take *reserves* its bytes at once, going into debt if the bucket holds fewer, and sleeps
    until that debt is paid: takers are served in the order they came, a take larger than the
    bucket just waits longer, and no thread spins. ``clock`` and ``sleep`` are for tests.
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        if not rate > 0:
            raise ValueError("a rate must be a positive number of bytes a second")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = float(rate)
        self._burst = float(burst) if burst is not None else _default_burst(rate)
        self._tokens = self._burst  # full: the first burst goes at once
        self._stamp = clock()

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (a daemon's next job may have another limit)."""
        if not rate > 0:
            raise ValueError("a rate must be a positive number of bytes a second")
        with self._lock:
            self._refill()
            self._rate = float(rate)
            self._burst = _default_burst(rate)
            self._tokens = min(self._tokens, self._burst)

    def reserve(self, count: int) -> float:
        """Take ``count`` tokens now; return how many seconds to wait before using them."""
        with self._lock:
            self._refill()
            self._tokens -= count
            return -self._tokens / self._rate if self._tokens < 0 else 0.0

    def take(self, count: int) -> None:
        """Take ``count`` tokens, sleeping until they are there."""
        wait = self.reserve(count)
        if wait > 0:
            self._sleep(wait)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now


def pace_piece(rate: float) -> int:
    """The most bytes a backend that paces itself moves between two takes at ``rate`` bytes a
    second: an eighth of a second's worth, a multiple of :data:`PACE_PIECE` within its bounds.
    Not a fixed 64 KiB: under a limit far above the link an SFTP write went in 64 KiB requests
    instead of the server's largest (255 KiB on OpenSSH), at two thirds of the speed it had
    without the limit."""
    pieces = int(rate / PACE_TAKES_PER_SECOND) // PACE_PIECE
    return min(MAX_PACE_PIECE, max(PACE_PIECE, pieces * PACE_PIECE))


def _default_burst(rate: float) -> float:
    return min(float(rate), MAX_BURST)


_process_buckets: dict[str, TokenBucket] = {}
_process_lock = threading.Lock()


def process_bucket(direction: str, kib_per_second: int) -> TokenBucket:
    """This process's bucket for ``direction`` (:data:`UPLOAD` or :data:`DOWNLOAD`), at
    ``kib_per_second``: every target opened with a limit shares it. Asking again with another
    rate changes the rate of the one bucket (the latest repository opened sets it)."""
    rate = kib_per_second * KIB
    with _process_lock:
        bucket = _process_buckets.get(direction)
        if bucket is None:
            bucket = _process_buckets[direction] = TokenBucket(rate)
        elif bucket.rate != rate:
            bucket.set_rate(rate)
        return bucket


# ---- pacing inside a backend -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pacer:
    """How a backend that moves an object in pieces paces them: :meth:`take` after (or before)
    moving ``n`` bytes; ``piece`` is the most to move between takes (None: no limit, any).
    A backend moving the pieces in an event loop, where no thread may wait, calls ``reserve``
    instead and waits itself, as long as ``interrupted()`` is false (a command stopping)."""

    piece: int | None
    #: take ``n`` tokens now; return how many seconds to wait before moving them
    reserve: Callable[[int], float]
    wait: Callable[[float], object]  # block that long, or less if interrupted meanwhile
    interrupted: Callable[[], bool]

    def take(self, count: int) -> None:
        """Take ``count`` tokens, waiting (on this thread) until they are there."""
        seconds = self.reserve(count)
        if seconds > 0:
            self.wait(seconds)


UNLIMITED = Pacer(None, lambda count: 0.0, lambda seconds: None, lambda: False)


@dataclass(slots=True)
class _Claim:
    pacer: Pacer
    claimed: bool = False


_upload_claim: ContextVar[_Claim | None] = ContextVar("fogvault_upload_claim", default=None)


def claim_upload_pacing() -> Pacer:
    """For a backend's ``write``: the pace of the upload in progress on this thread, which the
    backend now takes per piece itself (the wrapper then takes nothing after the call);
    :data:`UNLIMITED` when no limit applies."""
    claim = _upload_claim.get()
    if claim is None:
        return UNLIMITED
    claim.claimed = True
    return claim.pacer


@contextmanager
def _offer_upload_pacing(pacer: Pacer) -> Iterator[_Claim]:
    claim = _Claim(pacer)
    token = _upload_claim.set(claim)
    try:
        yield claim
    finally:
        _upload_claim.reset(token)


# ---- the wrapper -----------------------------------------------------------------------------


class ThrottledStorage(Storage):
    """Limits the object bytes ``inner`` moves; ``None`` for a direction leaves it unlimited.

    It sits between ``RetryingStorage`` (above) and ``MeteredStorage`` (below) in a Target
    (fogvault/targets/health.py): above the retries, so that each attempt pays for its bytes;
    above the meter, so that time spent waiting for the process's shared bucket (which other
    targets' traffic empties) is not measured as this target's latency and does not reorder
    reads.
    """

    def __init__(self, inner: Storage, upload: TokenBucket | None,
                 download: TokenBucket | None, *,
                 wait: Callable[[float], object] | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self.upload = upload
        self.download = download
        self._interrupted = threading.Event()  # set: no more waiting
        self._wait = wait or self._interrupted.wait  # ``wait``: for tests

    def _pacer(self, bucket: TokenBucket, piece: int | None = None) -> Pacer:
        return Pacer(piece, bucket.reserve, self._wait, self._interrupted.is_set)

    def _charge(self, bucket: TokenBucket, count: int) -> None:
        """Take ``count`` tokens for a whole request: a small one never waits (SMALL_REQUEST),
        its bytes are owed by the next."""
        if count <= SMALL_REQUEST:
            bucket.reserve(count)
        else:
            self._pacer(bucket).take(count)

    def create(self) -> None:
        self.inner.create()

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.read(name, offset, length)
        if self.download is not None:
            self._charge(self.download, len(data))
        return data

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        if self.upload is None:
            self.inner.write(name, data, overwrite=overwrite)
            return
        bucket = self.upload
        if len(data) <= SMALL_REQUEST:
            self.inner.write(name, data, overwrite=overwrite)
            self._charge(bucket, len(data))
            return
        pacer = self._pacer(bucket, pace_piece(bucket.rate))
        sent = 0  # what the backend did not pace itself, paid after the call
        with _offer_upload_pacing(pacer) as claim:
            try:
                self.inner.write(name, data, overwrite=overwrite)
                sent = len(data)
            except TransientStorageError:  # it may have sent every byte before failing (a
                sent = len(data)           # refusal, such as ObjectExists, sent none)
                raise
            finally:
                if sent and not claim.claimed:
                    pacer.take(sent)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        yield from self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def remove_incomplete(self, older_than: float) -> int:
        return self.inner.remove_incomplete(older_than)

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self._interrupted.set()
        self.inner.interrupt()


def throttled(storage: Storage, limit_upload: int | None, limit_download: int | None
              ) -> Storage:
    """``storage`` limited to the process's buckets at these KiB/s (None or 0: unlimited), or
    ``storage`` itself when neither direction is limited."""
    upload = process_bucket(UPLOAD, limit_upload) if limit_upload else None
    download = process_bucket(DOWNLOAD, limit_download) if limit_download else None
    if upload is None and download is None:
        return storage
    return ThrottledStorage(storage, upload, download)
