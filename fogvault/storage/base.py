"""The narrow interface every storage backend implements: named immutable byte objects.

A ``Storage`` is one target (a local folder, an S3 prefix, an SFTP directory...). It knows
nothing of packs, snapshots or encryption; it stores opaque bytes under names.

Contract (checked by tests/storage/test_conformance.py for every backend and wrapper):

* Names are relative, ``/``-separated, made of ``[A-Za-z0-9._-]`` segments, never empty, never
  ``.`` or ``..``, never starting with ``.`` (temporary files use a leading dot); see
  :func:`validate_name`.
* ``write`` is atomic: a reader sees either no object or the whole object, never a prefix. With
  ``overwrite=False`` (the default) it is create-only: if the name exists, ``ObjectExists`` is
  raised and the old object is kept. ``data`` is ``bytes`` or a ``memoryview`` (a finished
  pack is a view of a memory map); once ``write`` returns or raises, the backend holds no use
  of it: the caller may reuse or free that memory.
* ``read(name, offset, length)`` returns exactly ``length`` bytes, or fewer only when the object
  ends first (a short read at the end is not an error); ``length=None`` reads to the end.
  A missing name raises ``ObjectNotFound``.
* ``list(prefix)`` yields every object whose name starts with ``prefix`` (a folder such as
  ``"data/"``, recursively) exactly once, in no particular order, with its size. It never yields
  temporary files. Read-after-write and list-after-write are assumed (no stale listing caches).
  (``RetryingStorage`` starts a listing again after a transient failure, so through it a name
  may come twice; callers collect names into a dict or a set.)
* ``delete`` removes a name; deleting a missing name raises ``ObjectNotFound``.
* ``remove_incomplete(older_than)`` removes what interrupted writes left behind (temporary
  files, unfinished multipart uploads) that is older than ``older_than`` seconds, and returns
  how many it removed. Such leftovers are never visible as objects; they only cost space.
* Every failure is a :class:`~fogvault.storage.errors.StorageError` subclass, transient or
  permanent, so callers can decide whether to retry.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from fogvault.storage.errors import InvalidName, ObjectNotFound

#: How backends name the temporary file of a write in progress (dot names are never objects),
#: so that ``remove_incomplete`` can find those a killed writer left.
TEMP_PREFIX = ".tmp-"

_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    size: int


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise ``InvalidName``."""
    segments = name.split("/")
    if not name or any(not _SEGMENT.match(s) for s in segments):
        raise InvalidName(f"invalid object name {name!r}")
    return name


def validate_prefix(prefix: str) -> str:
    """A list prefix is empty, a name, or a name followed by ``/``."""
    if prefix:
        validate_name(prefix.rstrip("/"))
    return prefix


class Storage(ABC):
    """One target. Implementations must be safe to call from several threads at once."""

    #: The target's URL with any credentials removed; used in messages.
    url: str

    @abstractmethod
    def create(self) -> None:
        """Prepare an empty target (make the root folder or check the bucket). Idempotent."""

    @abstractmethod
    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    @abstractmethod
    def write(self, name: str, data: bytes | memoryview, *, overwrite: bool = False) -> None: ...

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def delete(self, name: str) -> None: ...

    def exists(self, name: str) -> bool:
        try:
            self.stat(name)
        except ObjectNotFound:
            return False
        return True

    def remove_incomplete(self, older_than: float) -> int:
        """Remove leftovers of interrupted writes older than ``older_than`` seconds. Backends
        whose writes leave none keep this default."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections. The storage must not be used afterwards."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook, most backends never wait long
        """The command is being interrupted: give up requests that hang soon, retry nothing.
        Requests that move go on (what was uploaded is still indexed)."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
