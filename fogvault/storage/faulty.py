"""A test wrapper that makes any Storage misbehave on purpose, call by call.

``FaultyStorage(inner)`` behaves exactly like ``inner`` until faults are declared::

    faulty = FaultyStorage(LocalStorage(path), seed=1)
    faulty.inject("write", Fault(error=transient(), times=2))         # next 2 writes fail
    faulty.inject("read", Fault(flip=True, skip=3))                   # the 4th read is corrupt
    faulty.inject("write", Fault(flip=True, times=None))              # stored damaged (bit rot)
    faulty.inject("write", Fault(error=transient(), when="after"))    # written, but reported lost
    faulty.inject("read", Fault(error=transient(), fraction=0.2, times=None))  # 20 %, seeded
    faulty.inject("*", Fault(delay=0.01, times=None))                 # every call is slow
    faulty.inject("delete", Fault(hook=lambda method, name: ...))     # run code first
    faulty.disappear_after(10)                                        # the target vanishes
    faulty.calls["write"]                                             # calls seen per method

Each call checks the faults declared for its method (and ``"*"``) in order; a fault applies to a
call if the name matches its ``prefix``, its ``skip`` is used up and (seeded) chance allows it.
``times`` counts applications (``None`` = forever). Guarantees: with no faults declared every call
is passed through unchanged; faults are applied under a lock, so counts stay exact with threads.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from fogvault.storage.base import ObjectInfo, Storage
from fogvault.storage.errors import PermanentStorageError, StorageError, TransientStorageError

METHODS = ("create", "read", "write", "stat", "list", "delete")


def transient(message: str = "injected transient fault") -> TransientStorageError:
    return TransientStorageError(message)


def permanent(message: str = "injected permanent fault") -> PermanentStorageError:
    return PermanentStorageError(message)


def no_space() -> PermanentStorageError:
    """What a full disk looks like (ENOSPC) once a backend has mapped it."""
    return PermanentStorageError("no space left on device")


@dataclass
class Fault:
    """One misbehaviour. Without ``error``/``flip`` it only delays or runs its hook."""

    error: StorageError | None = None  # raised (a fresh copy each time)
    when: Literal["before", "after"] = "before"  # "after": the call is done, then it raises
    flip: bool = False  # reads return, writes store, the data with one bit flipped
    delay: float = 0.0  # seconds to sleep before the call
    hook: Callable[[str, str], None] | None = None  # hook(method, name) before the call
    times: int | None = 1  # how many calls it applies to; None = no limit
    skip: int = 0  # matching calls to let through first
    fraction: float = 1.0  # chance that a matching call is hit (seeded)
    prefix: str = ""  # only names starting with this


class FaultyStorage(Storage):
    """Wraps ``inner``; see the module docstring. ``seed`` fixes the random faults."""

    def __init__(self, inner: Storage, *, seed: int = 0) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()
        self._faults: list[tuple[str, Fault]] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._ops_left: int | None = None

    def inject(self, method: str, fault: Fault) -> Fault:
        """Declare ``fault`` for ``method`` (one of METHODS, or ``"*"`` for all)."""
        if method != "*" and method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        with self._lock:
            self._faults.append((method, fault))
        return fault

    def clear(self) -> None:
        """Remove every fault (the counters stay)."""
        with self._lock:
            self._faults.clear()
            self._ops_left = None

    def disappear_after(self, operations: int) -> None:
        """Let ``operations`` more calls through; every later call fails permanently."""
        with self._lock:
            self._ops_left = operations

    # --- the fault machinery

    def _select(self, method: str, name: str) -> list[Fault]:
        """Count the call and pick the faults that apply to it."""
        with self._lock:
            self.calls[method] += 1
            if self._ops_left is not None:
                if self._ops_left <= 0:
                    raise PermanentStorageError("target disappeared", target=self.url, name=name)
                self._ops_left -= 1
            return [f for m, f in self._faults if m in (method, "*") and self._hits(f, name)]

    def _hits(self, fault: Fault, name: str) -> bool:
        if not name.startswith(fault.prefix) or fault.times == 0:
            return False
        if fault.skip > 0:
            fault.skip -= 1
            return False
        if fault.fraction < 1.0 and self._random.random() >= fault.fraction:
            return False
        if fault.times is not None:
            fault.times -= 1
        return True

    def _before(self, method: str, name: str) -> list[Fault]:
        faults = self._select(method, name)
        for fault in faults:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.hook:
                fault.hook(method, name)
            if fault.error is not None and fault.when == "before":
                raise _copy(fault.error, self.url, name)
        return faults

    def _after(self, faults: list[Fault], name: str) -> None:
        for fault in faults:
            if fault.error is not None and fault.when == "after":
                raise _copy(fault.error, self.url, name)

    # --- Storage

    def create(self) -> None:
        faults = self._before("create", "")
        self.inner.create()
        self._after(faults, "")

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        faults = self._before("read", name)
        data = self.inner.read(name, offset, length)
        self._after(faults, name)
        return _flip(data) if any(f.flip for f in faults) else data

    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None:
        faults = self._before("write", name)
        if any(f.flip for f in faults):
            data = _flip(bytes(data))
        self.inner.write(name, data, overwrite=overwrite)
        self._after(faults, name)

    def stat(self, name: str) -> ObjectInfo:
        faults = self._before("stat", name)
        info = self.inner.stat(name)
        self._after(faults, name)
        return info

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        faults = self._before("list", prefix)
        yield from self.inner.list(prefix)
        self._after(faults, prefix)

    def delete(self, name: str) -> None:
        faults = self._before("delete", name)
        self.inner.delete(name)
        self._after(faults, name)

    def remove_incomplete(self, older_than: float) -> int:
        faults = self._before("remove_incomplete", "")
        removed = self.inner.remove_incomplete(older_than)
        self._after(faults, "")
        return removed

    def close(self) -> None:
        self.inner.close()

    def interrupt(self) -> None:
        self.inner.interrupt()


def _copy(error: StorageError, target: str, name: str) -> StorageError:
    """A fresh exception of the same class, so tracebacks of earlier raises do not pile up."""
    message = error.args[0] if error.args else type(error).__name__
    return type(error)(message, target=target, name=name)


def _flip(data: bytes) -> bytes:
    """``data`` with one bit flipped in the middle byte (empty data has no bit to flip)."""
    if not data:
        return data
    at = len(data) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
