"""A wrapper that retries transient storage failures with exponential backoff and full jitter.

``RetryingStorage(inner, attempts=5, base_delay=0.2, max_delay=10.0)`` calls ``inner`` up to
``attempts`` times when it raises :class:`TransientStorageError`, sleeping a random time in
``[0, min(max_delay, base_delay * 2**retry)]`` between attempts. Everything else — permanent
errors, ``ObjectNotFound``, ``ObjectExists``, ``InvalidName`` — goes to the caller at once, and
after the last attempt the last transient error does.

Retrying is only safe because every operation is idempotent, except where an earlier attempt may
have succeeded although it reported a failure (the answer was lost). Policy — claim success only
when it is proven:

* create-only ``write``: a retry that meets ``ObjectExists`` reads the object back; if it holds
  exactly our bytes, an earlier attempt (or an identical writer) stored them, so the write
  succeeded. Otherwise, or if the read-back fails, ``ObjectExists`` is raised: the name is taken,
  which is true whatever happened before.
* ``delete``: a retry that meets ``ObjectNotFound`` raises it, although an earlier attempt may have
  deleted the object; the caller gets the truth (it is gone) and decides.
* ``list`` streams its entries, and a transient failure starts the listing again: the entries
  already yielded come again, so a caller collects names (each one does: a dict or a set).
  Collecting each attempt's entries before the first one came out, as until session 17, yielded
  each once but cost about 220 bytes an object at every target at once (a million packs at two
  targets: 440 MB), on top of what the caller keeps.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from fogvault.storage.base import ObjectInfo, Storage
from fogvault.storage.errors import ObjectExists, StorageError, TransientStorageError

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryingStorage(Storage):
    def __init__(
        self,
        inner: Storage,
        attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not (0 <= base_delay < math.inf and 0 <= max_delay < math.inf):  # also NaN
            raise ValueError("retry delays must be finite numbers of seconds, at least 0")
        self.inner = inner
        self.url = inner.url
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._random = random.Random(seed)
        self._interrupted = False  # interrupt(): no more retries

    def _delay(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**retry)]."""
        # 2**retry capped: a float overflows past 2**1023 (FOGVAULT_RETRY_ATTEMPTS may be large)
        return self._random.uniform(0, min(self.max_delay, self.base_delay * 2**min(retry, 64)))

    def _call(
        self,
        what: str,
        func: Callable[[], T],
        on_retry_error: Callable[[StorageError], T] | None = None,
    ) -> T:
        """Run ``func`` until it does not raise a transient error, at most ``attempts`` times.

        ``on_retry_error(exc)`` sees a non-transient error raised by a *retry* and may return a
        result instead (used for writes whose earlier attempt may have succeeded).
        """
        for attempt in range(self.attempts):
            try:
                return func()
            except TransientStorageError as exc:
                self._pause(what, exc, attempt)
            except StorageError as exc:
                if attempt == 0 or on_retry_error is None:
                    raise
                return on_retry_error(exc)
        raise AssertionError("unreachable")

    def _pause(self, what: str, exc: TransientStorageError, attempt: int) -> None:
        """Wait before the attempt after ``attempt``; raise ``exc`` if that was the last, or if
        the command is being interrupted."""
        if attempt + 1 == self.attempts or self._interrupted:
            raise exc
        delay = self._delay(attempt)
        log.warning("%s failed (%s); retry %d in %.2f s", what, exc, attempt + 1, delay)
        self._sleep(delay)

    def create(self) -> None:
        self._call("create", self.inner.create)

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(f"read {name}", lambda: self.inner.read(name, offset, length))

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        def after_lost_answer(exc: StorageError) -> None:
            if isinstance(exc, ObjectExists) and self._holds(name, data):
                return
            raise exc

        self._call(
            f"write {name}",
            lambda: self.inner.write(name, data, overwrite=overwrite),
            after_lost_answer,
        )

    def _holds(self, name: str, data: bytes | memoryview) -> bool:
        """True if ``name`` holds exactly ``data`` (False if that cannot be read)."""
        try:
            return self._call(f"read {name}", lambda: self.inner.read(name)) == data
        except StorageError:
            return False

    def stat(self, name: str) -> ObjectInfo:
        return self._call(f"stat {name}", lambda: self.inner.stat(name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for attempt in range(self.attempts):
            try:
                yield from self.inner.list(prefix)
                return
            except TransientStorageError as exc:
                self._pause(f"list {prefix!r}", exc, attempt)

    def delete(self, name: str) -> None:
        self._call(f"delete {name}", lambda: self.inner.delete(name))

    def remove_incomplete(self, older_than: float) -> int:
        return self._call("remove incomplete writes",
                          lambda: self.inner.remove_incomplete(older_than))

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self._interrupted = True
        self.inner.interrupt()
