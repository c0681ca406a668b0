"""Repository locks: shared for writers that only add (backup, forget, check, restore),
exclusive for ``prune``, which deletes.

A lock is an encrypted object ``locks/<16 hex>`` on every target, holding who took it and when
it was last refreshed. Taking a lock is write-then-list: write our lock, list the others, and
back off (delete ours) on a conflict. With read-after-write storage, of two racing processes at
least one sees the other, so an exclusive lock never coexists with another live lock.

A lock is refreshed every ``REFRESH_INTERVAL``; a lock not refreshed for ``STALE_AFTER``, or
one taken on this host by a process that no longer runs, is stale: it blocks nobody and
``fogvault unlock`` removes it. So a crashed process never blocks scheduled jobs for long.
Before a holder commits (a snapshot, a new index), it checks that its lock is still fresh, so
a process that was suspended past ``STALE_AFTER`` aborts instead of committing after a prune
may have run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fogvault.errors import FogVaultError, LockError, MalformedObject
from fogvault.host import hostname, username
from fogvault.repo.format import LOCKS_DIR, UID_HEX_LEN, ObjectKind, lock_name
from fogvault.storage.errors import PermanentStorageError

log = logging.getLogger("fogvault")

REFRESH_INTERVAL = timedelta(minutes=5)
STALE_AFTER = timedelta(minutes=30)
RETRY_INTERVAL_S = 2.0


@dataclass(slots=True)
class LockInfo:
    lock_id: str
    exclusive: bool
    host: str
    pid: int
    user: str
    created: datetime
    refreshed: datetime

    def encode(self) -> bytes:
        return json.dumps({
            "exclusive": self.exclusive, "host": self.host, "pid": self.pid, "user": self.user,
            "created": self.created.isoformat(), "refreshed": self.refreshed.isoformat(),
        }).encode()

    @classmethod
    def decode(cls, lock_id: str, data: bytes) -> LockInfo:
        try:
            doc = json.loads(data)
            if not isinstance(doc["exclusive"], bool) or type(doc["pid"]) is not int:
                raise TypeError("bad field types")
            if not 0 < doc["pid"] < 2**31:  # what a process id can be (os.kill takes it)
                raise ValueError("not a process id")
            created, refreshed = _aware(doc["created"]), _aware(doc["refreshed"])
            return cls(lock_id, doc["exclusive"], str(doc["host"]), doc["pid"],
                       str(doc.get("user", "")), created, refreshed)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise MalformedObject(f"lock {lock_id} is malformed") from exc

    def is_stale(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        if now - self.refreshed > STALE_AFTER:
            return True
        return self.host == hostname() and not process_alive(self.pid)

    def what_to_do(self) -> str:
        """Advice about this live lock. One of this host belongs to a running process (else it
        would be stale); another host's may be left by a process that is gone, which plain
        ``unlock`` removes only once it is stale."""
        if self.host == hostname():
            return "that process is running: wait for it, or use --retry-lock SECONDS"
        stale_at = self.refreshed + STALE_AFTER
        return (f"if that process is gone, 'fogvault unlock --remove-all' removes its lock; "
                f"plain 'fogvault unlock' only once it is stale, at "
                f"{stale_at:%Y-%m-%d %H:%M:%S %Z}")

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (f"{kind} lock {self.lock_id} by {self.user or '?'}@{self.host} pid {self.pid}, "
                f"taken {self.created:%Y-%m-%d %H:%M:%S %Z}")


class LockStore:
    """Reads and writes lock objects; sealing is the repository's (passed in as functions)."""

    def __init__(self, targets, seal: Callable[[bytes, bytes, bytes], bytes],
                 unseal: Callable[[bytes, bytes, bytes, int], bytes]) -> None:
        self.targets = targets
        self._seal = seal
        self._unseal = unseal

    def write(self, info: LockInfo, *, overwrite: bool) -> None:
        sealed = self._seal(ObjectKind.LOCK, info.lock_id.encode(), info.encode())
        self.targets.write(lock_name(info.lock_id), sealed, overwrite=overwrite)

    def delete(self, lock_id: str) -> None:
        self.targets.delete(lock_name(lock_id))

    def all(self) -> list[LockInfo]:
        return self.scan()[0]

    def scan(self) -> tuple[list[LockInfo], list[str]]:
        """(the locks, the names of lock files that cannot be read): one that cannot be read
        (damaged, not a lock, gone meanwhile) holds nothing back, but is named for unlock."""
        locks, unreadable = [], []
        for name in self.targets.list(LOCKS_DIR):
            lock_id = name[len(LOCKS_DIR):]
            try:  # verified on read: a damaged copy on one target falls through to the next
                locks.append(self.targets.read_decoded(name, lambda sealed, i=lock_id: (
                    LockInfo.decode(i, self._unseal(ObjectKind.LOCK, i.encode(), sealed,
                                                    64 * 1024)))))
            except FogVaultError as exc:
                log.debug("ignoring lock %s: %s", lock_id, exc)
                unreadable.append(lock_id)
        return locks, unreadable


class RepositoryLock:
    """A held lock; use as a context manager (``with repo.lock(exclusive=True): ...``)."""

    def __init__(self, store: LockStore, exclusive: bool, retry_for: float = 0.0,
                 refused_hint: str = "") -> None:
        """``refused_hint`` is added to the error if the lock cannot be written at all."""
        self.store = store
        self.refused_hint = refused_hint
        self.exclusive = exclusive
        self.retry_for = retry_for
        now = datetime.now(UTC)
        self.info = LockInfo(os.urandom(UID_HEX_LEN // 2).hex(), exclusive,
                             hostname(), os.getpid(), username(), now, now)
        self._last_refresh = _clock()
        self._lost = False  # once possibly stale, always: another process may have acted
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RepositoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                conflict = self._try_once()
            except PermanentStorageError as exc:  # a read-only target, read-only credentials
                if not self.refused_hint:
                    raise
                raise PermanentStorageError(f"{exc} ({self.refused_hint})") from exc
            if conflict is None:
                break
            if time.monotonic() >= deadline:
                raise LockError(f"repository is locked: {conflict.describe()} "
                                f"({conflict.what_to_do()})")
            time.sleep(RETRY_INTERVAL_S)  # waiting for another process to finish
        self._thread = threading.Thread(target=self._refresh_loop, name="lock", daemon=True)
        self._thread.start()

    def _try_once(self) -> LockInfo | None:
        self.store.write(self.info, overwrite=False)
        for other in self.store.all():
            if other.lock_id == self.info.lock_id or other.is_stale():
                continue
            if self.exclusive or other.exclusive:
                self.store.delete(self.info.lock_id)
                return other
        self._last_refresh = _clock()
        return None

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_INTERVAL.total_seconds()):
            self.refresh()

    def refresh(self) -> None:
        if self._expired():
            self._lost = True  # refreshing now would hide that others may have seen it stale
        self.info.refreshed = datetime.now(UTC)
        try:
            self.store.write(self.info, overwrite=True)
            self._last_refresh = _clock()
        except FogVaultError as exc:
            log.warning("could not refresh the repository lock: %s", exc)

    def _expired(self) -> bool:
        return _clock() - self._last_refresh > (STALE_AFTER - REFRESH_INTERVAL).total_seconds()

    def ensure_fresh(self) -> None:
        """Raise LockError if the lock may have been taken for stale (refresh failed or the
        process was suspended): committing now could race a prune."""
        if self._lost or self._expired():
            self._lost = True
            raise LockError("the repository lock went stale (refresh failed or the process was "
                            "suspended); not committing. Run the command again.")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.store.delete(self.info.lock_id)
        except FogVaultError as exc:
            log.warning("could not remove the repository lock: %s", exc)


class NoLock:
    """Stands in for a lock when locking is off (read-only targets, ``--no-lock``)."""

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def ensure_fresh(self) -> None:
        pass


@dataclass(slots=True)
class Unlocked:
    removed: list[LockInfo]
    unreadable: list[str]  # ids of lock files that cannot be read (removed with all_locks)


def remove_locks(store: LockStore, *, all_locks: bool = False) -> Unlocked:
    """Remove stale locks, or every lock and with them the lock files that cannot be read
    (which hold nothing back, but would stay for ever)."""
    locks, unreadable = store.scan()
    removed = [lock for lock in locks if all_locks or lock.is_stale()]
    for lock_id in [lock.lock_id for lock in removed] + (unreadable if all_locks else []):
        store.delete(lock_id)
    return Unlocked(removed, unreadable)


def _aware(text: object) -> datetime:
    """A lock's time, in UTC: one too close to the end of the calendar for the time it goes
    stale (the year 9999) could not be compared with now."""
    value = datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        raise ValueError("lock time without a time zone")
    try:
        value = value.astimezone(UTC)
        value + STALE_AFTER  # raises for a time too late
    except OverflowError as exc:
        raise ValueError("lock time out of range") from exc
    return value


def _clock() -> float:
    """Seconds on a clock that keeps counting while the machine sleeps (CLOCK_BOOTTIME on
    Linux; ``time.monotonic`` stops during suspend, while other hosts' clocks do not)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.time()


def process_alive(pid: int) -> bool:
    """True if a process with ``pid`` runs on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
