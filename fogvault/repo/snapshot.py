"""Snapshot manifests: what was backed up, when, from where, and the root tree.

A snapshot is stored as ``snapshots/<uid>``, encrypted with the uid in its associated data, so a
manifest cannot be renamed into another snapshot. The uid is 16 lowercase hex characters (64
random bits). Commands accept any unique prefix of a uid, or ``latest``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fogvault.errors import MalformedObject, UsageError
from fogvault.repo.format import UID_HEX_LEN, parse_hex_id
from fogvault.warning_list import WarningList

SNAPSHOT_VERSION = 1


def new_uid() -> str:
    return os.urandom(UID_HEX_LEN // 2).hex()


def is_uid(text: str) -> bool:
    return len(text) == UID_HEX_LEN and all(c in "0123456789abcdef" for c in text)


@dataclass(slots=True)
class SnapshotSummary:
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    dirs: int = 0
    files_failed: int = 0
    bytes_read: int = 0  # file content actually read from disk
    total_bytes: int = 0  # size of all files in the snapshot
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    bytes_added: int = 0  # stored bytes (after dedup, compression and encryption)
    duration_s: float = 0.0

    @property
    def files(self) -> int:
        """The files the snapshot holds (each name of a hardlinked file)."""
        return self.files_new + self.files_changed + self.files_unchanged

    def with_contents(self, files: int, dirs: int, total_bytes: int) -> SnapshotSummary:
        """This summary for a snapshot that now holds ``files`` files, ``dirs`` folders and
        ``total_bytes`` (a ``rewrite``'s copy). The fields that describe the contents are set;
        those that describe the backup run that made it stay (bytes read, blobs and bytes
        added, files that failed, duration), as its time and parent do. The run did not record
        which files were new, changed or unchanged: files taken out are taken from the
        unchanged first (a read file is what ``bytes_read`` counts), then the changed, then
        the new; files it did not count (a summary left out) count as unchanged."""
        split = [self.files_unchanged, self.files_changed, self.files_new]
        split[0] += max(files - sum(split), 0)
        surplus = sum(split) - files
        for i, count in enumerate(split):
            taken = min(count, surplus)
            split[i] -= taken
            surplus -= taken
        unchanged, changed, new = split
        return dataclasses.replace(self, files_new=new, files_changed=changed,
                                   files_unchanged=unchanged, dirs=dirs, total_bytes=total_bytes)


@dataclass(slots=True)
class Snapshot:
    uid: str
    time: datetime
    host: str
    user: str
    paths: list[str]
    tree: bytes
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    program_version: str = ""
    summary: SnapshotSummary = field(default_factory=SnapshotSummary)
    warnings: list[str] = field(default_factory=list)
    #: the uid of the snapshot this is a copy of (``copy``: the source's own ``original`` if
    #: it has one, else its uid), by which a later copy knows it is there; None if no copy
    original: str | None = None
    #: the uid of the snapshot this copy was repaired from (``repair --snapshots``; a copy
    #: repaired again names that copy, not the first snapshot), by which a later run finds it;
    #: kept by ``tag``, ``rewrite`` and ``copy``. None if not a repaired copy
    repaired_from: str | None = None
    #: the backup read the inode flags of files and folders: a node without ``flags`` has none
    #: (else nothing is known of them, and the next backup reads them again)
    flags_read: bool = False

    def to_json(self) -> dict[str, Any]:
        doc = {
            "version": SNAPSHOT_VERSION,
            "uid": self.uid,
            "time": self.time.isoformat(),
            "host": self.host,
            "user": self.user,
            "paths": self.paths,
            "tags": self.tags,
            "tree": self.tree.hex(),
            "parent": self.parent,
            "program_version": self.program_version,
            "summary": asdict(self.summary),
            # At most MAX_WARNINGS, then how many more: a readable manifest after a run over
            # millions of unreadable files.
            "warnings": _bounded(self.warnings),
        }
        if self.original is not None:  # only in copies: other snapshots are as they were
            doc["original"] = self.original
        if self.repaired_from is not None:  # only in repaired copies
            doc["repaired_from"] = self.repaired_from
        if self.flags_read:
            doc["flags_read"] = True
        return doc

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, expected_uid: str) -> Snapshot:
        try:
            doc = json.loads(data)
            if type(doc.get("version")) is not int or doc["version"] != SNAPSHOT_VERSION:
                raise MalformedObject("snapshot of unknown version")
            snapshot = cls(
                uid=_typed(doc["uid"], str, "uid"),
                time=_parse_time(_typed(doc["time"], str, "time")),
                host=_typed(doc["host"], str, "host"),
                user=_typed(doc.get("user", ""), str, "user"),
                paths=_str_list(doc["paths"]),
                tags=_str_list(doc.get("tags", [])),
                tree=parse_hex_id(_typed(doc["tree"], str, "tree")),
                parent=_optional_uid(doc.get("parent"), "parent"),
                program_version=_typed(doc.get("program_version", ""), str, "program_version"),
                summary=_summary(doc.get("summary", {})),
                warnings=_str_list(doc.get("warnings", [])),
                original=_optional_uid(doc.get("original"), "original"),
                repaired_from=_optional_uid(doc.get("repaired_from"), "repaired_from"),
                flags_read=_typed(doc.get("flags_read", False), bool, "flags_read"),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise MalformedObject(f"snapshot {expected_uid} is malformed: {exc}") from exc
        if snapshot.uid != expected_uid:
            raise MalformedObject(f"snapshot {expected_uid} claims to be {snapshot.uid}")
        return snapshot


def _bounded(warnings: list[str]) -> list[str]:
    return warnings if isinstance(warnings, WarningList) else WarningList.of(warnings)


def refuse_commas(tags: Iterable[str]) -> None:
    """Tags a snapshot is to get hold no comma: restic reads '--tag a,b' as two tags, and one
    tag 'a,b' would look like them in every listing, where no filter finds 'a'."""
    for tag in tags:
        if "," in tag:
            raise UsageError(f"tag {tag!r} holds a comma: give --tag once for each tag (restic "
                             "splits 'a,b' into two tags; FogVault keeps a tag as written)")


def source_path(path: str | bytes) -> bytes:
    """``path`` as a backup records it: absolute (from the current folder, ``~`` expanded),
    without ``.``, ``..`` or a trailing slash, and with symlinks in its folders resolved:
    backing up ``/home/u/data`` where ``/home`` links to ``/srv/home`` records
    ``/srv/home/u/data``; a symlink given as the path itself is recorded as the symlink."""
    absolute = os.path.abspath(os.path.expanduser(os.fsencode(path)))
    if absolute == b"/":
        return absolute
    folder, name = os.path.split(absolute)
    return os.path.join(os.path.realpath(folder), name)


def select_snapshots(
    snapshots: Iterable[Snapshot], host: str | None = None, tags: Iterable[str] = (),
    paths: Iterable[str] = (),
) -> list[Snapshot]:
    """Snapshots of ``host`` carrying every tag in ``tags`` and every path in ``paths``, which
    are normalised as a backup records its paths (``data/`` names what ``backup data`` did).
    The empty tag, which no snapshot carries, selects the snapshots without tags (restic's
    ``--tag ''``)."""
    tags = list(tags)
    wanted = [_recorded_forms(p) for p in paths]
    return [
        s for s in snapshots
        if (host is None or s.host == host)
        and all(t in s.tags if t else not s.tags for t in tags)
        and all(not forms.isdisjoint(s.paths) for forms in wanted)
    ]


def _recorded_forms(path: str) -> set[str]:
    """How a snapshot may list ``path``: as a backup here records it, or made absolute only,
    as another host whose folders are not symlinks as they are here recorded it."""
    plain = os.path.abspath(os.path.expanduser(path))
    return {plain, os.fsdecode(source_path(path))}


class Dated(Protocol):
    """What the order of snapshots in time reads (a :class:`Snapshot`, or a retention test's
    stand-in)."""

    @property
    def uid(self) -> str: ...

    @property
    def time(self) -> datetime: ...  # timezone-aware


def instant(moment: datetime) -> datetime:
    """``moment`` in UTC, to compare as instants: Python compares two datetimes that share a
    tzinfo object (one ZoneInfo) by their wall clock, ignoring ``fold``, so in the hour the
    clocks go back 02:30 (the first) would sort after 02:10 (the second)."""
    return moment.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def newest_first(snapshot: Dated) -> tuple[timedelta, str]:
    """The sort key of snapshots in time, newest first (``reverse=True``: oldest first). Every
    command that orders snapshots by time uses it (``snapshots``, ``latest``, a backup's
    parent, ``forget``'s policy), so that of two snapshots with the same time (a rewritten or
    retagged copy and its original) all of them take the same one for the newer: the one whose
    uid sorts first. The time counts as its distance back from 1970, a timedelta: smaller for
    a newer snapshot, and exact, where a float timestamp would round."""
    return _EPOCH - instant(snapshot.time), snapshot.uid


def now() -> datetime:
    return datetime.now(UTC).astimezone()


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("snapshot time without a time zone")
    try:  # every listing orders by the instant: one outside UTC's range must not stop them all
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"snapshot time {text} is out of range") from None
    return value


def _optional_uid(value: Any, name: str) -> str | None:
    if value is not None and not (isinstance(value, str) and is_uid(value)):
        raise ValueError(f"malformed {name}")
    return value


_TYPE_NAMES = {str: "a string", bool: "a boolean"}


def _typed(value: Any, kind: type, name: str) -> Any:
    """``value``, the field ``name``, if it is a ``kind``."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} is not {_TYPE_NAMES[kind]}")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return list(value)


def _summary(value: Any) -> SnapshotSummary:
    if not isinstance(value, dict):
        raise TypeError("summary is not an object")
    known = SnapshotSummary.__dataclass_fields__
    fields = {k: v for k, v in value.items() if k in known}
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in fields.values()):
        raise TypeError("summary values must be numbers")
    return SnapshotSummary(**{k: _statistic(v, k != "duration_s") for k, v in fields.items()})


def _statistic(value: float, integer: bool) -> float:
    """A summary value as a statistic (format.md, section 14): one that is not finite, is
    negative or reaches 2^63 counts as 0 (it broke listings: a size too large for a float, NaN
    in JSON); an integer field's fraction is dropped."""
    if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value < 2**63:
        return 0
    return int(value) if integer else float(value)
