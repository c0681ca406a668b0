"""A set of targets holding copies of one repository.

* Writes go to every target concurrently; an error on any target is raised after all have
  been tried (the multi-target issue adds k-of-N commits on top of this).
* Reads try targets in order and verify what they get with the caller's check; a missing
  object, a storage error or a failed check falls through to the next target with a warning,
  and the bad copy is remembered (``damaged``) for repair.
* Listings are the union over all targets.

Knows nothing of what the objects mean: verification is a callback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fogvault.errors import IntegrityError
from fogvault.storage import ObjectExists, ObjectInfo, ObjectNotFound, Storage, StorageError

log = logging.getLogger("fogvault")

#: Testing hook for crash-consistency tests (docs/design.md, "Testing hooks"): with
#: FOGVAULT_CRASH_AFTER_WRITES=N the process kills itself with SIGKILL when it is about to make
#: its N-th change (write or delete) to the targets, so a test can stop a command at any point.
_CRASH_AFTER = int(os.environ.get("FOGVAULT_CRASH_AFTER_WRITES", "0") or 0)
_mutations = 0
_mutations_lock = threading.Lock()


def _count_mutation() -> None:
    global _mutations
    if not _CRASH_AFTER:
        return
    with _mutations_lock:
        _mutations += 1
        if _mutations >= _CRASH_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)

T = TypeVar("T")


class TargetSet:
    def __init__(self, storages: list[Storage]) -> None:
        if not storages:
            raise ValueError("at least one target is needed")
        self.storages = storages
        self.damaged: set[tuple[str, str]] = set()  # (target url, object name)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(storages)))

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.storages]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for storage in self.storages:
            storage.close()

    def _remember_damage(self, storage: Storage, name: str) -> None:
        with self._lock:
            self.damaged.add((storage.url, name))

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.read_decoded(name, bytes, offset, length)

    def read_decoded(
        self, name: str, decode: Callable[[bytes], T], offset: int = 0, length: int | None = None
    ) -> T:
        """Read ``name`` and return ``decode(data)`` from the first target where both work.

        ``decode`` verifies (hash, authentication, structure) and raises IntegrityError on a bad
        copy, which moves the read on to the next target.
        """
        errors: list[Exception] = []
        for storage in self.storages:
            try:
                return decode(storage.read(name, offset, length))
            except (StorageError, IntegrityError) as exc:
                errors.append(exc)
                if not isinstance(exc, ObjectNotFound):
                    self._remember_damage(storage, name)
                if len(self.storages) > 1:
                    log.warning("%s: %s; trying the next target", storage.url, exc)
        if all(isinstance(e, ObjectNotFound) for e in errors):
            raise errors[0]
        raise next(e for e in errors if not isinstance(e, ObjectNotFound))

    def write(self, name: str, data: bytes, *, overwrite: bool = False) -> None:
        self.write_to_each(name, data, overwrite=overwrite, exist_ok=False)

    def write_to_each(
        self, name: str, data: bytes, *, overwrite: bool = False, exist_ok: bool = False
    ) -> None:
        """Write to every target; ``exist_ok`` accepts an existing object (content-addressed
        names, where an existing object with that name has that content or will fail its check).
        """
        _count_mutation()

        def one(storage: Storage) -> None:
            try:
                storage.write(name, data, overwrite=overwrite)
            except ObjectExists:
                if not exist_ok:
                    raise

        futures = [self._pool.submit(one, s) for s in self.storages]
        first_error = None
        for future in futures:
            exc = future.exception()
            if exc is not None and first_error is None:
                first_error = exc
        if first_error is not None:
            raise first_error

    def list(self, prefix: str) -> dict[str, int]:
        """name -> size, the union over all targets (first size seen wins)."""
        found: dict[str, int] = {}
        for storage in self.storages:
            for info in storage.list(prefix):
                found.setdefault(info.name, info.size)
        return found

    def stat(self, name: str) -> ObjectInfo:
        last: Exception | None = None
        for storage in self.storages:
            try:
                return storage.stat(name)
            except StorageError as exc:
                last = exc
        assert last is not None
        raise last

    def delete(self, name: str) -> None:
        """Delete from every target; a target that lacks the object is fine."""
        _count_mutation()
        for storage in self.storages:
            with contextlib.suppress(ObjectNotFound):
                storage.delete(name)
