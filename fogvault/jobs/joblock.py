"""The per-job lock: two runs of one job never overlap, and a crashed run never blocks the next.

A run holds an exclusive ``flock`` on ``locks/<job>.lock`` in the user state folder for its
whole duration, and writes its pid, host and start time into the file for the message a second
run prints. The kernel drops a ``flock`` when its holder exits or dies (even by SIGKILL), so the
lock cannot go stale: the file may stay behind, but it no longer blocks anyone. ``flock`` works
between processes and between open files of one process (the daemon), on local file systems;
keep the state folder off NFS.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import datetime
from pathlib import Path
from types import TracebackType

from fogvault.errors import FogVaultError, LockError
from fogvault.host import hostname


class JobRunning(LockError):
    """The job is already running (exit code 11, like any lock that cannot be taken)."""


class JobLockUnusable(FogVaultError):
    """The lock file cannot be created or locked (exit code 1): a read-only or full state
    folder, or one without ``flock``."""


def holder_of(directory: Path, job: str) -> str | None:
    """What the run that holds ``job``'s lock now wrote (pid, host, start), or None if no run
    holds it. Read without taking the lock, which would make a run starting at that moment
    skip: Linux lists ``flock`` locks in /proc/locks by device and inode. Elsewhere, or with
    /proc unreadable, None."""
    try:
        with open(_lock_path(directory, job), "rb") as file:
            stat = os.fstat(file.fileno())
            holder = file.read(512).decode(errors="replace").strip()
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    if not holder:  # a run empties the file as it ends
        return None
    inode = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in locks.splitlines():  # "1: FLOCK  ADVISORY  WRITE 3355 fd:01:1573297 0 EOF"
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and inode in fields:  # "->": a waiter
            return holder
    return None


def _lock_path(directory: Path, job: str) -> Path:
    return directory / f"{job}.lock"


class JobLock:
    def __init__(self, directory: Path, job: str) -> None:
        self.path = _lock_path(directory, job)
        self.job = job
        self._fd: int | None = None

    def __enter__(self) -> JobLock:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
            os.close(fd)
            raise JobRunning(f"job {self.job} is already running ({holder or 'holder unknown'}); "
                             "this run was skipped") from None
        except OSError as exc:  # no flock on this file system (NFS without locking)
            os.close(fd)
            raise self._unusable(exc) from None
        stamp = datetime.now().astimezone().isoformat(timespec="seconds")
        with contextlib.suppress(OSError):  # the holder's details are only for the message
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {hostname()} since {stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: OSError) -> JobLockUnusable:
        return JobLockUnusable(
            f"cannot lock job {self.job} at {self.path}: {exc.strerror or exc} (the run did not "
            "start; the user state folder must be writable and local; XDG_STATE_HOME moves it)")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
