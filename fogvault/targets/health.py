"""What one run knows about each target: is it still used, is it behind, how fast is it.

A :class:`Target` wraps one storage as ``RetryingStorage(ThrottledStorage(MeteredStorage(
storage)))``: transient errors are retried with backoff, and every request (retries included)
is counted and timed; with a bandwidth limit (``--limit-upload``, ``--limit-download``) every
attempt's bytes are paced by the process's shared buckets (fogvault/storage/throttled.py says
why the limiter sits between the two).

* **Dropping.** A target is *dropped* for the rest of the run when a write or delete fails after
  its retries (that change is lost on it), when its reads fail ``read_failures_to_drop`` times in
  a row, or when, as the repository is opened, it cannot be reached or holds no repository at
  all (``empty``: an empty folder, a disk that is not mounted). A dropped target gets no more
  requests. A missing object or a copy that fails verification is not the target's fault
  and does not count: the copy is remembered as damaged instead (``TargetSet.damaged``).
* **Behind.** A target is *behind* when it lacks something the others have (an index file at the
  start of a backup, a snapshot the backup wrote to the others). It stays in use, but backups do
  not commit snapshots to it (docs/format.md, "Ordering rules") and prune leaves it alone.
* **Read order** (:func:`read_order`): targets that are not known to lack the object first; among
  them, those whose last read worked; then those not behind; then the fastest by measured
  latency (an average over small reads, the first of which is the config read when the
  repository is opened). Before anything is measured, local folders come before remote targets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fogvault.storage.base import Storage
from fogvault.storage.metered import MeteredStorage
from fogvault.storage.retrying import RetryingStorage
from fogvault.storage.throttled import throttled
from fogvault.targets.policy import TargetPolicy

#: the latency assumed for a remote target that has not answered anything yet
_UNMEASURED_REMOTE = 1.0


class Target:
    def __init__(self, storage: Storage, policy: TargetPolicy) -> None:
        self.raw = storage
        self.url = storage.url
        self.meter = MeteredStorage(storage)
        # retries above the limiter (each attempt pays), the meter below it (waiting for the
        # shared bucket is not this target's latency)
        limited = throttled(self.meter, policy.limit_upload, policy.limit_download)
        self.storage: Storage = RetryingStorage(
            limited, policy.retry_attempts, policy.retry_base_delay, policy.retry_max_delay
        ) if policy.retry_attempts > 1 else limited
        self.slots = threading.BoundedSemaphore(policy.concurrency)
        self.dropped: str | None = None  # why it is no longer used in this run
        self.empty = False  # dropped at open for holding no repository at all
        self.behind: str | None = None  # why it cannot take a snapshot in this run
        self.skip_writes = False  # behind, and left alone (prune)
        self.missed: str | None = None  # the first change this run could not make on it
        self.read_failures = 0  # in a row
        self._read_failures_to_drop = policy.read_failures_to_drop
        self.local = _is_local(storage)  # a folder on this machine: reads cost no latency

    def __repr__(self) -> str:
        return f"Target({self.url!r})"

    @property
    def active(self) -> bool:
        return self.dropped is None

    @property
    def state(self) -> str:
        """One word for reports: ok, behind or dropped."""
        return "dropped" if self.dropped else "behind" if self.behind else "ok"

    def speed_key(self) -> float:
        latency = self.meter.latency
        if latency is not None:
            return latency
        return 0.0 if self.local else _UNMEASURED_REMOTE

    def read_worked(self) -> None:
        self.read_failures = 0

    def read_failed(self) -> bool:
        """Count a failed read; True if that makes the target one to drop."""
        self.read_failures += 1
        return self.read_failures >= self._read_failures_to_drop


def read_order(targets: list[Target], absent: Callable[[Target], bool]) -> list[Target]:
    """The active targets in the order to try a read (see the module docstring)."""
    active = [t for t in targets if t.active]
    return sorted(active, key=lambda t: (absent(t), t.read_failures > 0, t.behind is not None,
                                         t.speed_key()))


def _is_local(storage: Storage) -> bool:
    from fogvault.storage.local import LocalStorage

    for _ in range(10):  # look through wrappers (FaultyStorage, RetryingStorage, ...)
        if isinstance(storage, LocalStorage):
            return True
        inner = getattr(storage, "inner", None)
        if not isinstance(inner, Storage):
            return False
        storage = inner
    return False
