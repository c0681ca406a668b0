"""A set of targets holding copies of one repository: fan-out writes, verified reads, failover.

* **Writes** go to every target in use, concurrently, at most ``concurrency`` requests in flight
  per target. Transient errors are retried with backoff (:class:`~fogvault.targets.health.Target`
  wraps each storage in ``RetryingStorage``). A target whose write still fails is *dropped* for
  the rest of the run, with a warning, and the write counts as done on the others. Only when it
  fails everywhere is the error raised. ``write_to_each`` returns the targets that hold the object.
* **k-of-N**: :meth:`TargetSet.require_quorum` raises ``NotEnoughTargets`` when fewer than K
  targets are *committable* (in use and not behind); callers decide when to ask (the archiver
  before it commits a snapshot, which it writes to the committable targets only).
* **Reads** try the targets in :func:`~fogvault.targets.health.read_order` (fastest healthy
  first) and check what they get with the caller's ``decode``; a storage error, a missing object
  or a failed check falls through to the next target with a warning, and a missing or damaged
  copy is remembered in ``damaged`` for ``repair`` (one that could not be read is not: nothing
  was seen of it, and it may be intact; it is kept until a read of it works, for ``check`` to
  report (``unreadable_copies``), and told once). A missing object is told once per target and name
  (until ``repair`` forgets it), and a target that lacks one is quiet about others until one
  of its reads works: a mount reads a pack chunk by chunk, and a target gone lacks them all.
* **Listings** are the union over the targets in use. Each target's own listing is kept until
  the next one, so reads try a target known to lack an object last, and quietly.
* **Missed changes**: a target that is dropped or skipped when an object is written or deleted
  is recorded as having missed a change (``missed_changes``; deletions also in
  ``missed_deletes``), so the command can exit 3 naming it. Locks (``locks/``) are ephemeral and
  do not count.

Knows nothing of what the objects mean: verification is a callback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

from fogvault import interrupts
from fogvault.errors import IntegrityError, NotEnoughTargets, TargetsUnavailable
from fogvault.storage import ObjectExists, ObjectInfo, ObjectNotFound, Storage, StorageError
from fogvault.targets.health import Target, read_order
from fogvault.targets.policy import TargetPolicy

log = logging.getLogger("fogvault")

#: Testing hook for crash-consistency tests (docs/design.md, "Testing hooks"): with
#: FOGVAULT_CRASH_AFTER_WRITES=N the process kills itself with SIGKILL when it is about to make
#: its N-th change (write or delete) to the targets, so a test can stop a command at any point.
_CRASH_AFTER = int(os.environ.get("FOGVAULT_CRASH_AFTER_WRITES", "0") or 0)
_mutations = 0
_mutations_lock = threading.Lock()

#: names under these prefixes come and go (locks): a target that misses them is not behind
EPHEMERAL_PREFIXES = ("locks/",)


def count_mutation() -> None:
    """The testing crash point: call before every change to a target (see above)."""
    global _mutations
    if not _CRASH_AFTER:
        return
    with _mutations_lock:
        _mutations += 1
        if _mutations >= _CRASH_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)


T = TypeVar("T")


class NameListing(Protocol):
    """What the read order needs of a target's last listing (a ``set`` of names is one)."""

    def __contains__(self, name: object, /) -> bool: ...
    def __iter__(self) -> Iterator[str]: ...
    def add(self, name: str, /) -> None: ...
    def discard(self, name: str, /) -> None: ...
    def copy(self) -> NameListing: ...


L = TypeVar("L", bound=NameListing)


@dataclass(slots=True)
class _Unread:
    """Why reads of a copy failed, and which byte ranges (offset, length; None: to the end)
    failed since a read of them last worked: a read of another part of the copy working (a
    tree beside a bad sector) does not make it readable."""

    reason: str
    ranges: set[tuple[int, int | None]] = field(default_factory=set)


class TargetSet:
    def __init__(self, storages: Iterable[Storage], policy: TargetPolicy | None = None) -> None:
        self.policy = policy or TargetPolicy()
        self.targets = [Target(s, self.policy) for s in storages]
        if not self.targets:
            raise ValueError("at least one target is needed")
        self.damaged: set[tuple[str, str]] = set()  # (target url, object name)
        self.missed_deletes: set[tuple[str, str]] = set()  # (target url, object name)
        #: (target url, object name) -> why its last read failed without seeing its bytes, and
        #: the byte ranges (offset, length) that failed since a read of them last worked
        self._unreadable: dict[tuple[str, str], _Unread] = {}
        self._quiet_on_missing: set[str] = set()  # urls told missing since their last read
        self._lock = threading.Lock()
        self._listings: dict[str, dict[str, NameListing]] = {}  # prefix -> url -> names
        workers = self.policy.concurrency * len(self.targets) + 4
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="targets")
        interrupts.register(self.interrupt)  # Ctrl-C: hanging requests end before pools join

    # ---- the members -----------------------------------------------------------------

    @property
    def storages(self) -> list[Storage]:
        """Every target's storage (retrying and metered), dropped ones included."""
        return [t.storage for t in self.targets]

    @property
    def urls(self) -> list[str]:
        return [t.url for t in self.targets]

    def target(self, url: str) -> Target:
        for t in self.targets:
            if t.url == url:
                return t
        raise KeyError(url)

    def add(self, storage: Storage) -> Target:
        """Add a target (``target add``): it is used from now on, by every operation."""
        if storage.url in self.urls:
            raise ValueError(f"{storage.url} is already a target")
        target = Target(storage, self.policy)
        self.targets.append(target)
        return target

    def active(self) -> list[Target]:
        return [t for t in self.targets if t.active]

    def committable(self) -> list[Target]:
        """Targets in use that are not behind: the ones a snapshot may be written to."""
        return [t for t in self.targets if t.active and t.behind is None]

    @property
    def min_targets(self) -> int:
        return self.policy.quorum(len(self.targets))

    def drop(self, target: Target, reason: str) -> None:
        with self._lock:
            if target.dropped is not None:
                return
            target.dropped = reason
        log.warning("%s: %s; not using this target for the rest of the run", target.url, reason)

    def mark_behind(self, target: Target, reason: str, *, skip_writes: bool = False) -> None:
        """``target`` lacks something: no snapshot goes to it; with ``skip_writes``, nothing."""
        with self._lock:
            if target.behind is None:
                target.behind = reason
            target.skip_writes = target.skip_writes or skip_writes

    def clear_behind(self, target: Target) -> None:
        """``target`` has caught up (after a repair in the same session)."""
        with self._lock:
            target.behind, target.skip_writes = None, False

    def resume_writes(self) -> None:
        """End what ``skip_writes`` held back (prune's): the targets stay behind (no snapshot
        goes to them), but later operations of the session write to them again, such as a
        forget's deletions, which a target that lacks an index file can take."""
        with self._lock:
            for target in self.targets:
                target.skip_writes = False

    def caught_up(self, url: str) -> None:
        """The target ``url`` holds everything again (a repair made it whole): it is not
        behind, and the changes it missed earlier in the session are no longer missing."""
        with self._lock:
            for target in self.targets:
                if target.url == url:
                    target.behind, target.skip_writes, target.missed = None, False, None

    def require_quorum(self, action: str) -> list[Target]:
        """The committable targets; ``NotEnoughTargets`` if fewer than K."""
        ok = self.committable()
        k = self.min_targets
        if len(ok) >= k:
            return ok
        behind = "; ".join(f"{t.url} ({t.dropped or t.behind})" for t in self.targets
                           if t not in ok)
        raise NotEnoughTargets(
            f"{action}: only {len(ok)} of {len(self.targets)} targets hold all data and "
            f"--min-targets is {k}; behind: {behind}. Run 'fogvault repair' once they are "
            "reachable, or lower --min-targets"
        )

    def missed_changes(self) -> dict[str, str]:
        """url -> why, for every target that did not get every change made in this run."""
        return {t.url: t.missed for t in self.targets if t.missed}

    def remember_damage(self, url: str, name: str) -> None:
        if name.startswith(EPHEMERAL_PREFIXES):
            return
        with self._lock:
            self.damaged.add((url, name))

    def forget_damage(self, url: str, name: str) -> None:
        with self._lock:
            self.damaged.discard((url, name))

    def usage(self) -> dict[str, dict[str, object]]:
        """url -> request counts, bytes and latency of this run."""
        return {t.url: t.meter.snapshot() for t in self.targets}

    def interrupt(self) -> None:
        """The command is being interrupted: no target retries, and hanging requests end."""
        for target in self.targets:
            target.storage.interrupt()

    def close(self) -> None:
        self._pool.shutdown(wait=True)  # an interrupt meanwhile still reaches the targets
        for target in self.targets:
            target.storage.close()
        interrupts.unregister(self.interrupt)

    def _unusable(self) -> TargetsUnavailable:
        reasons = "; ".join(f"{t.url} ({t.dropped or t.behind or 'skipped'})"
                            for t in self.targets)
        return TargetsUnavailable(f"no target is usable: {reasons}")

    def _note_missed(self, target: Target, name: str, deleted: bool = False) -> None:
        if name.startswith(EPHEMERAL_PREFIXES):
            return
        with self._lock:
            if target.missed is None:
                what = "delete" if deleted else "write"
                why = target.dropped or target.behind or "skipped"
                target.missed = f"missed the {what} of {name} and later changes: {why}"
            if deleted:
                self.missed_deletes.add((target.url, name))

    # ---- reads -----------------------------------------------------------------------

    def _absent(self, target: Target, name: str) -> bool:
        """True if the last listing of ``target`` covering ``name`` did not have it."""
        with self._lock:
            for prefix, by_url in self._listings.items():
                if name.startswith(prefix) and target.url in by_url:
                    return name not in by_url[target.url]
        return False

    def read_order(self, name: str = "") -> list[Target]:
        return read_order(self.targets, lambda t: self._absent(t, name))

    @property
    def reads_local(self) -> bool:
        """Whether reads go to a folder on this machine first (see :func:`read_order`)."""
        order = self.read_order()
        return bool(order) and order[0].local

    def local_folders(self) -> list[str] | None:
        """The active targets' folders in read order, if every target in use is a plain local
        folder (one another process can open by its path); else None."""
        from fogvault.storage.local import LocalStorage

        active = self.read_order()
        if not active or any(type(t.raw) is not LocalStorage for t in active):
            return None
        return [str(t.raw.root) for t in active]  # type: ignore[attr-defined]

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.read_decoded(name, bytes, offset, length)

    def read_decoded(
        self, name: str, decode: Callable[[bytes], T], offset: int = 0, length: int | None = None
    ) -> T:
        """Read ``name`` and return ``decode(data)`` from the first target where both work.

        ``decode`` verifies (hash, authentication, structure) and raises IntegrityError on a bad
        copy, which moves the read on to the next target.
        """
        order = self.read_order(name)
        if not order:
            raise self._unusable()
        errors: list[Exception] = []
        for position, target in enumerate(order):
            last = position == len(order) - 1
            try:
                value = decode(target.storage.read(name, offset, length))
            except ObjectNotFound as exc:
                errors.append(exc)
                if not self._absent(target, name):
                    if not last and self._tell_missing(target, name):
                        log.warning("%s: %s is missing; reading it from another target",
                                    target.url, name)
                    self.remember_damage(target.url, name)
                continue
            except (StorageError, IntegrityError) as exc:
                errors.append(exc)
                told = False
                if isinstance(exc, IntegrityError):  # a read that failed saw no bytes to judge
                    self.remember_damage(target.url, name)
                else:
                    told = self._remember_unreadable(target.url, name, exc, offset, length)
                if isinstance(exc, StorageError) and target.read_failed():
                    self.drop(target, f"reads keep failing ({exc})")
                elif len(order) > 1 and not told:
                    where = "" if isinstance(exc, StorageError) else f"{target.url} {name}: "
                    log.warning("%s%s; %s", where, exc,
                                "no other target to try" if last else "trying another target")
                continue
            target.read_worked()
            if self._unreadable:
                self._forget_unreadable(target.url, name, offset, length)
            if target.url in self._quiet_on_missing:
                with self._lock:
                    self._quiet_on_missing.discard(target.url)
            return value
        raise self._read_failure(name, order, errors)

    def unreadable_copies(self) -> dict[tuple[str, str], str]:
        """(url, name) -> why, of each copy a read of which failed without seeing its bytes,
        and has not worked since (a read of another part of it working does not count)."""
        with self._lock:
            return {key: unread.reason for key, unread in self._unreadable.items()}

    def _remember_unreadable(self, url: str, name: str, error: StorageError, offset: int,
                             length: int | None) -> bool:
        """Note that bytes ``offset`` to ``offset + length`` of ``url``'s copy of ``name``
        could not be read (not a lock's: locks come and go); whether that copy was known (and
        told) already: a batch of blobs read again one by one fails on the same copy."""
        if name.startswith(EPHEMERAL_PREFIXES):
            return False
        with self._lock:
            told = (url, name) in self._unreadable
            unread = self._unreadable.setdefault((url, name), _Unread(error.reason))
            unread.reason = error.reason  # the latest
            unread.ranges.add((offset, length))
        return told

    def _forget_unreadable(self, url: str, name: str, offset: int, length: int | None) -> None:
        """A read of bytes ``offset`` to ``offset + length`` of ``url``'s copy of ``name``
        worked: that range, or every range if the read was of the whole copy, is readable."""
        with self._lock:
            unread = self._unreadable.get((url, name))
            if unread is None:
                return
            if offset == 0 and length is None:
                unread.ranges.clear()
            else:
                unread.ranges.discard((offset, length))
            if not unread.ranges:
                del self._unreadable[(url, name)]

    def _tell_missing(self, target: Target, name: str) -> bool:
        """Whether to warn that ``target`` lacks ``name`` (module docstring): not if that is
        known already, nor while the target has read nothing since the last warning."""
        with self._lock:
            if (target.url, name) in self.damaged or target.url in self._quiet_on_missing:
                return False
            self._quiet_on_missing.add(target.url)
            return True

    def _read_failure(self, name: str, order: list[Target], errors: list[Exception]
                      ) -> Exception:
        """The error for a read that failed on every target in ``order``: an IntegrityError or
        ObjectNotFound only if every target was asked and each said the copy is damaged or
        missing (so that callers may take the data as lost); otherwise what kept a copy from
        being looked at, which says nothing about the data."""
        unreachable = [e for e in errors if not isinstance(e, IntegrityError | ObjectNotFound)]
        if unreachable:
            return unreachable[0]
        unasked = [t for t in self.targets if t not in order]
        if unasked:
            reasons = "; ".join(f"{t.url} ({t.dropped or t.behind or 'skipped'})"
                                for t in unasked)
            return TargetsUnavailable(f"{name}: {errors[0]} on every target read, and not "
                                      f"read from {reasons}")
        if all(isinstance(e, ObjectNotFound) for e in errors):
            return errors[0]
        return next(e for e in errors if not isinstance(e, ObjectNotFound))

    def read_each(
        self, name: str, offset: int = 0, length: int | None = None
    ) -> dict[Target, bytes | StorageError]:
        """Every active target's copy of ``name`` (or the error reading it), read concurrently.
        Nothing is verified, remembered or dropped: the caller judges the copies."""
        def one(target: Target) -> bytes | StorageError:
            try:
                return target.storage.read(name, offset, length)
            except StorageError as exc:
                return exc

        futures = {t: self._pool.submit(one, t) for t in self.active()}
        return {t: f.result() for t, f in futures.items()}

    def stat(self, name: str) -> ObjectInfo:
        last: Exception | None = None
        for target in self.read_order(name):
            try:
                return target.storage.stat(name)
            except StorageError as exc:
                last = exc
        if last is None:
            raise self._unusable()
        raise last

    @overload
    def list_each(self, prefix: str) -> dict[Target, dict[str, int]]: ...

    @overload
    def list_each(self, prefix: str, collect: Callable[[Iterable[ObjectInfo]], L]
                  ) -> dict[Target, L]: ...

    def list_each(
        self, prefix: str, collect: Callable[[Iterable[ObjectInfo]], Any] | None = None
    ) -> dict[Target, Any]:
        """Each active target's objects under ``prefix`` (name -> size), listed concurrently.
        A target whose listing fails is dropped, unless every target fails. ``collect`` builds
        a listing of another kind from a target's objects, a :class:`NameListing`: a copy of
        it orders reads (updated by writes and deletes), the caller's own is left alone."""
        active = self.active()
        if not active:
            raise self._unusable()

        def one(target: Target) -> Any:
            if collect is not None:
                return collect(target.storage.list(prefix))
            return {info.name: info.size for info in target.storage.list(prefix)}

        futures = {t: self._pool.submit(one, t) for t in active}
        found: dict[Target, Any] = {}
        failed: list[tuple[Target, BaseException]] = []
        for target, future in futures.items():
            exc = future.exception()
            if exc is None:
                found[target] = future.result()
            elif isinstance(exc, StorageError):
                failed.append((target, exc))
            else:
                raise exc
        if not found:
            raise failed[0][1]
        for target, exc in failed:
            self.drop(target, f"listing failed ({exc})")
        with self._lock:
            self._listings[prefix] = {t.url: set(names) if collect is None else names.copy()
                                      for t, names in found.items()}
        return found

    def list(self, prefix: str) -> dict[str, int]:
        """name -> size, the union over the active targets (first size seen wins)."""
        union: dict[str, int] = {}
        for names in self.list_each(prefix).values():
            for name, size in names.items():
                union.setdefault(name, size)
        return union

    def last_listing(self, prefix: str, target: Target) -> set[str] | None:
        """The names ``target`` had under ``prefix`` at the last listing (updated by this
        run's writes and deletes), or None if it was not listed."""
        with self._lock:
            names = self._listings.get(prefix, {}).get(target.url)
            return None if names is None else set(names)

    def _listed(self, target: Target, name: str, present: bool) -> None:
        with self._lock:
            for prefix, by_url in self._listings.items():
                if name.startswith(prefix) and target.url in by_url:
                    if present:
                        by_url[target.url].add(name)
                    else:
                        by_url[target.url].discard(name)

    # ---- writes ----------------------------------------------------------------------

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False,
              only: Iterable[Target] | None = None) -> list[Target]:
        return self.write_to_each(name, data, overwrite=overwrite, exist_ok=False, only=only)

    def write_to_each(
        self, name: str, data: bytes | memoryview, *, overwrite: bool = False,
        exist_ok: bool = False, only: Iterable[Target] | None = None,
        others_later: bool = False,
    ) -> list[Target]:
        """Write to every target in use (or to those of ``only``); returns the targets that
        hold it now. ``exist_ok`` accepts an existing object (content-addressed names, where an
        existing object with that name has that content or will fail its check).
        ``others_later``: the targets ``only`` leaves out get the object later in this run from
        the caller, so they are not recorded as having missed it.
        """
        count_mutation()
        allowed = None if only is None else set(only)
        chosen = [t for t in self._writable(name) if allowed is None or t in allowed]
        for target in self.targets:
            left_out_on_purpose = others_later and allowed is not None and target not in allowed
            if target not in chosen and not left_out_on_purpose:
                self._note_missed(target, name)
        if not chosen:
            raise self._unusable()

        def one(target: Target) -> None:
            with target.slots:
                try:
                    target.storage.write(name, data, overwrite=overwrite)
                except ObjectExists:
                    if not exist_ok:
                        raise

        futures = {t: self._pool.submit(one, t) for t in chosen}
        return self._settle(name, futures)

    def delete(self, name: str) -> None:
        """Delete from every target in use; a target that lacks the object is fine."""
        count_mutation()
        chosen = self._writable(name)
        for target in self.targets:
            if target not in chosen:
                self._note_missed(target, name, deleted=True)
        if not chosen:
            raise self._unusable()

        def one(target: Target) -> None:
            with target.slots, contextlib.suppress(ObjectNotFound):
                target.storage.delete(name)

        futures = {t: self._pool.submit(one, t) for t in chosen}
        self._settle(name, futures, deleted=True)

    def remove_incomplete(self, older_than: float) -> int:
        """Remove leftovers of interrupted writes (temporaries, unfinished multipart uploads)
        older than ``older_than`` seconds from every active target; return how many. Best
        effort: a target that fails gets a warning, it is not dropped."""
        def one(target: Target) -> int:
            try:
                return target.storage.remove_incomplete(older_than)
            except StorageError as exc:
                log.warning("%s: leftovers of interrupted writes not removed: %s",
                            target.url, exc)  # fmt: skip
                return 0

        return sum(self._pool.map(one, self.active()))

    def _writable(self, name: str) -> list[Target]:
        """The targets a change to ``name`` goes to: those in use, except the ones left alone
        (locks go to those too: a lock left behind would block other processes)."""
        ephemeral = name.startswith(EPHEMERAL_PREFIXES)
        return [t for t in self.targets if t.active and (ephemeral or not t.skip_writes)]

    def _settle(self, name: str, futures: dict[Target, Future[None]], deleted: bool = False
                ) -> list[Target]:
        """Wait for a fan-out; drop the targets it failed on (unless it failed everywhere)."""
        done: list[Target] = []
        failed: list[tuple[Target, StorageError]] = []
        other: BaseException | None = None
        for target, future in futures.items():
            exc = future.exception()
            if exc is None:
                done.append(target)
            elif isinstance(exc, StorageError) and not isinstance(exc, ObjectExists):
                failed.append((target, exc))
            elif other is None:
                other = exc
        for target in done:
            self._listed(target, name, present=not deleted)
        if other is not None:
            raise other
        if failed and not done:
            raise failed[0][1]
        for target, exc in failed:
            self.drop(target, f"{'delete' if deleted else 'write'} failed ({exc})")
            self._note_missed(target, name, deleted)
        return done
