"""Retention policy: which snapshots ``forget`` keeps, with restic's ``forget`` semantics.

Pure logic, no I/O: give :func:`apply_policy` snapshot-like objects and a
:class:`RetentionPolicy`; it answers, per group, which snapshots are kept (each with the rules
that keep it) and which are removed. The rules, exactly as restic 0.17 applies them:

* Snapshots are split into groups (by default host and paths); each group is judged alone.
* In a group, snapshots are visited newest first, in the order every command uses
  (:func:`~fogvault.repo.snapshot.newest_first`): of two with the same time, the one whose
  ``uid`` sorts first is the newer, as for ``latest``. A snapshot that any rule keeps is kept;
  every other one is removed.
* ``keep_last`` keeps the *n* newest. ``keep_hourly/daily/weekly/monthly/yearly`` keep the newest
  snapshot of each of the *n* newest hours/days/ISO weeks/months/years that have a snapshot,
  read in local time (``tz``). ``-1`` (:data:`UNLIMITED`) means every such period.
* If a counting rule still has room when the oldest snapshot of the group is reached, that
  snapshot is kept too (reason ``"oldest daily snapshot"``...), to keep the longest history.
* ``keep_within`` keeps every snapshot strictly newer than the newest snapshot minus the
  duration (``1y5m7d2h``: calendar years, months, days in ``tz``, then exact hours). The newest
  snapshot is the newest one not in the future (``now``); future snapshots always count as
  within. ``keep_within_hourly/...`` keep, among the snapshots within their duration, the newest
  of each hour/day/..., and the oldest snapshot in range too.
* ``keep_tags`` keeps snapshots carrying all tags of any entry (``"a,b"`` = both ``a`` and
  ``b``; ``""`` = snapshots without tags).
* An empty policy keeps everything (reason ``"policy is empty"``); callers should refuse it
  beforehand (:meth:`RetentionPolicy.is_empty`), and refuse a group whose result
  :attr:`GroupResult.removes_all`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Generic, Protocol, TypeVar

from fogvault.errors import UsageError
from fogvault.repo.snapshot import Dated, instant, newest_first

UNLIMITED = -1
"""A ``keep_*`` count meaning "every period", restic's ``unlimited``."""

GROUP_FIELDS = ("host", "paths", "tags")
_GROUP_ALIASES = {
    "host": "host",
    "hosts": "host",
    "path": "paths",
    "paths": "paths",
    "tag": "tags",
    "tags": "tags",
}


class SnapshotLike(Dated, Protocol):
    """What the policy reads from a snapshot: its uid and time, and these."""

    @property
    def host(self) -> str: ...

    @property
    def paths(self) -> list[str]: ...

    @property
    def tags(self) -> list[str]: ...


S = TypeVar("S", bound=SnapshotLike)
Bucket = Callable[[datetime], Hashable]


# --- durations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Duration:
    """restic's duration: whole years, months, days and hours (``1y5m7d2h``)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{value}{unit}" for value, unit in parts if value) or "0h"


_DURATION = re.compile(r"(?:[0-9]+[ymdh])+")
_DURATION_PART = re.compile(r"([0-9]+)([ymdh])")


def parse_duration(text: str) -> Duration:
    """Parse ``1y5m7d2h`` (units in any order, each at most once; ``""`` is zero).

    Raises :class:`UsageError` for anything else (``1w``, ``-1d``, ``1.5d``, ``7D``...).
    """
    stripped = text.strip()
    if not stripped:
        return Duration()
    if not _DURATION.fullmatch(stripped):
        raise UsageError(
            f"invalid duration {text!r}: use years, months, days and hours such as '1y5m7d2h'"
            " (there is no week unit: write '7d')"
        )
    values: dict[str, int] = {}
    for number, unit in _DURATION_PART.findall(stripped):
        if unit in values:
            raise UsageError(f"invalid duration {text!r}: unit {unit!r} given twice")
        values[unit] = int(number)
    return Duration(values.get("y", 0), values.get("m", 0), values.get("d", 0), values.get("h", 0))


# --- the policy ----------------------------------------------------------------------------

_COUNT_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                 "keep_yearly")
_DURATION_FIELDS = ("keep_within", "keep_within_hourly", "keep_within_daily",
                    "keep_within_weekly", "keep_within_monthly", "keep_within_yearly")


@dataclass(frozen=True)
class RetentionPolicy:
    """Which snapshots to keep. Counts: 0 = rule off, -1 = unlimited. Durations may be given
    as strings (parsed by :func:`parse_duration`). ``keep_tags`` entries are comma-separated
    tag lists (``"a,b"`` matches snapshots having both)."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: Duration = Duration()
    keep_within_hourly: Duration = Duration()
    keep_within_daily: Duration = Duration()
    keep_within_weekly: Duration = Duration()
    keep_within_monthly: Duration = Duration()
    keep_within_yearly: Duration = Duration()
    keep_tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
                raise UsageError(f"{name} must be a whole number >= 0, or -1 for unlimited")
        for name in _DURATION_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, parse_duration(value))
            elif not isinstance(value, Duration):
                raise TypeError(f"{name} must be a Duration or a duration string")
        tags = self.keep_tags
        object.__setattr__(self, "keep_tags", (tags,) if isinstance(tags, str) else tuple(tags))

    def is_empty(self) -> bool:
        """True when no rule is set: applying it would keep everything (restic refuses it)."""
        counts = any(getattr(self, name) for name in _COUNT_FIELDS)
        durations = any(not getattr(self, name).is_zero() for name in _DURATION_FIELDS)
        return not (counts or durations or self.keep_tags)

    def tag_lists(self) -> tuple[tuple[str, ...], ...]:
        """``keep_tags`` split into lists of tags (whitespace around each tag stripped)."""
        return tuple(tuple(tag.strip() for tag in entry.split(",")) for entry in self.keep_tags)

    def describe(self) -> str:
        """A one-line summary such as ``keep 7 daily, all monthly snapshots and ...``."""
        counts = [(getattr(self, name), name) for name in _COUNT_FIELDS if getattr(self, name)]
        one = [count for count, _ in counts] == [1]  # "keep 1 latest snapshot"
        phrases = [", ".join(_describe_count(count, name) for count, name in counts)
                   + (" snapshot" if one else " snapshots")] if counts else []
        for name in _DURATION_FIELDS[1:]:
            value = getattr(self, name)
            if not value.is_zero():
                phrases.append(f"{name.removeprefix('keep_within_')} snapshots within {value}")
        if self.keep_tags:
            lists = " or ".join(_tag_text(tags) for tags in self.tag_lists())
            phrases.append(f"all snapshots with tags {lists}")
        if not self.keep_within.is_zero():
            phrases.append(f"all snapshots within {self.keep_within} of the newest")
        return "keep " + " and ".join(phrases) if phrases else "keep everything (empty policy)"


def _describe_count(count: int, name: str) -> str:
    label = "latest" if name == "keep_last" else name.removeprefix("keep_")
    return f"all {label}" if count == UNLIMITED else f"{count} {label}"


def _tag_text(tags: Sequence[str]) -> str:
    return "[" + ", ".join(tags) + "]"


# --- results -------------------------------------------------------------------------------


@dataclass
class Kept(Generic[S]):
    """A kept snapshot and every rule that keeps it, e.g. ``["last snapshot", "within 2d"]``."""

    snapshot: S
    reasons: list[str]


@dataclass
class GroupResult(Generic[S]):
    """One group's verdict; ``keep`` and ``remove`` are newest first.

    ``key`` holds the grouping fields only, e.g. ``{"host": "h", "paths": ["/a", "/b"]}``
    (paths and tags sorted); it is ``{}`` without grouping.
    """

    key: dict[str, str | list[str]]
    keep: list[Kept[S]]
    remove: list[S]

    def describe(self) -> str:
        """The group in words, as restic names it: ``host vm, paths /a, /b``; ``tags (none)``
        for snapshots without tags; ``all snapshots`` without grouping."""
        words = [f"{name} {value if isinstance(value, str) else ', '.join(value) or '(none)'}"
                 for name, value in self.key.items()]
        return ", ".join(words) or "all snapshots"

    @property
    def removes_all(self) -> bool:
        """Every snapshot of the group would go (possible with ``keep_tags`` alone)."""
        return not self.keep and bool(self.remove)


# --- buckets and rules ---------------------------------------------------------------------


def _hour(t: datetime) -> Hashable:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime) -> Hashable:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> Hashable:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _month(t: datetime) -> Hashable:
    return (t.year, t.month)


def _year(t: datetime) -> Hashable:
    return t.year


_COUNT_RULES: tuple[tuple[str, str, Bucket | None], ...] = (
    ("keep_last", "last snapshot", None),  # None: every snapshot is its own bucket
    ("keep_hourly", "hourly snapshot", _hour),
    ("keep_daily", "daily snapshot", _day),
    ("keep_weekly", "weekly snapshot", _week),
    ("keep_monthly", "monthly snapshot", _month),
    ("keep_yearly", "yearly snapshot", _year),
)
_WITHIN_RULES: tuple[tuple[str, str, Bucket], ...] = (
    ("keep_within_hourly", "hourly within", _hour),
    ("keep_within_daily", "daily within", _day),
    ("keep_within_weekly", "weekly within", _week),
    ("keep_within_monthly", "monthly within", _month),
    ("keep_within_yearly", "yearly within", _year),
)
_UNSEEN = object()


@dataclass
class _CountRule:
    remaining: int  # -1: unlimited
    reason: str
    bucket: Bucket | None
    last: object = _UNSEEN

    def offer(self, nr: int, local: datetime, oldest: bool) -> str | None:
        if self.remaining == 0:
            return None
        key = nr if self.bucket is None else self.bucket(local)
        reason = self.reason
        if key == self.last:
            if not oldest:
                return None
            reason = f"oldest {reason}"
        self.last = key
        if self.remaining > 0:
            self.remaining -= 1
        return reason


@dataclass
class _WithinRule:
    start: datetime | None  # snapshots strictly after it are in range; None: all are
    reason: str
    bucket: Bucket
    last: object = _UNSEEN

    def offer(self, time: datetime, local: datetime, oldest: bool) -> str | None:
        if not _after(time, self.start):
            return None
        key = self.bucket(local)
        reason = self.reason
        if key == self.last:
            if not oldest:
                return None
            reason = f"oldest {reason}"
        self.last = key
        return reason


# --- time arithmetic -----------------------------------------------------------------------


def _local(moment: datetime, tz: tzinfo | None) -> datetime:
    return moment.astimezone(tz)  # tz None: the system's local zone


def _attach(wall: datetime, tz: tzinfo | None) -> datetime:
    return wall.astimezone() if tz is None else wall.replace(tzinfo=tz)


def _minus_calendar(wall: datetime, years: int, months: int, days: int) -> datetime:
    """Go's ``AddDate(-years, -months, -days)``: overflowing days roll over (Mar 31 - 1m =
    "Feb 31" = Mar 2 or 3), unlike clipping to the month's end."""
    index = wall.year * 12 + wall.month - 1 - years * 12 - months
    year, month0 = divmod(index, 12)
    return wall.replace(year=year, month=month0 + 1, day=1) + timedelta(days=wall.day - 1 - days)


def _range_start(latest: datetime | None, span: Duration, tz: tzinfo | None) -> datetime | None:
    """``latest - span``: calendar part on the wall clock in ``tz``, then exact hours."""
    if latest is None:
        return None  # no snapshot in the past: everything is in range, as in restic
    wall = _local(latest, tz).replace(tzinfo=None)
    try:
        shifted = _minus_calendar(wall, span.years, span.months, span.days)
        return _attach(shifted, tz).astimezone(UTC) - timedelta(hours=span.hours)
    except (ValueError, OverflowError, OSError):
        return None  # before year 1: everything is in range


def _after(moment: datetime, start: datetime | None) -> bool:
    return start is None or instant(moment) > instant(start)


def _latest(snapshots: Sequence[SnapshotLike], now: datetime) -> datetime | None:
    past = [snap.time for snap in snapshots if instant(snap.time) < instant(now)]
    return max(past, key=instant) if past else None


# --- evaluation ----------------------------------------------------------------------------


class _Judge:
    """Walks one group newest first, keeping each rule's state."""

    def __init__(self, ordered: Sequence[SnapshotLike], policy: RetentionPolicy,
                 tz: tzinfo | None, now: datetime) -> None:
        latest = _latest(ordered, now)
        self.tz = tz
        self.tag_lists = policy.tag_lists()
        self.within = policy.keep_within
        self.within_start = _range_start(latest, policy.keep_within, tz)
        self.counts = [_CountRule(getattr(policy, name), reason, bucket)
                       for name, reason, bucket in _COUNT_RULES if getattr(policy, name)]
        self.withins = [
            _WithinRule(_range_start(latest, span, tz), f"{reason} {span}", bucket)
            for name, reason, bucket in _WITHIN_RULES
            if not (span := getattr(policy, name)).is_zero()
        ]

    def reasons(self, nr: int, snap: SnapshotLike, oldest: bool) -> list[str]:
        found = [f"has tags {_tag_text(tags)}" for tags in self.tag_lists
                 if _has_tags(snap.tags, tags)]
        if not self.within.is_zero() and _after(snap.time, self.within_start):
            found.append(f"within {self.within}")
        local = _local(snap.time, self.tz)
        found += [r for rule in self.counts if (r := rule.offer(nr, local, oldest))]
        found += [r for rule in self.withins if (r := rule.offer(snap.time, local, oldest))]
        return found


def _has_tags(snapshot_tags: Sequence[str], wanted: Sequence[str]) -> bool:
    """restic's HasTags: all ``wanted`` tags present; an empty tag matches an untagged one."""
    for tag in wanted:
        if tag == "" and not snapshot_tags:
            return True
        if tag not in snapshot_tags:
            return False
    return True


def _newest_first(snapshots: Iterable[S]) -> list[S]:
    """In the order of every command: the newest is the one ``latest`` names."""
    return sorted(snapshots, key=newest_first)


def _judge_group(snapshots: Iterable[S], policy: RetentionPolicy, tz: tzinfo | None,
                 now: datetime) -> tuple[list[Kept[S]], list[S]]:
    ordered = _newest_first(snapshots)
    if policy.is_empty():
        return [Kept(snap, ["policy is empty"]) for snap in ordered], []
    judge = _Judge(ordered, policy, tz, now)
    keep: list[Kept[S]] = []
    remove: list[S] = []
    for nr, snap in enumerate(ordered):
        reasons = judge.reasons(nr, snap, oldest=nr == len(ordered) - 1)
        if reasons:
            keep.append(Kept(snap, reasons))
        else:
            remove.append(snap)
    return keep, remove


# --- grouping and the entry point ----------------------------------------------------------

_GroupKey = tuple[tuple[str, str | tuple[str, ...]], ...]


def parse_group_by(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"host,paths"`` or ``["host", "paths"]`` -> canonical field names in
    :data:`GROUP_FIELDS` order. Singular forms are accepted; ``""`` means no grouping."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: set[str] = set()
    for item in items:
        name = item.strip()
        if not name:
            continue
        if name not in _GROUP_ALIASES:
            raise UsageError(f"unknown group-by field {name!r}: use host, paths and/or tags")
        chosen.add(_GROUP_ALIASES[name])
    return tuple(name for name in GROUP_FIELDS if name in chosen)


def _group_key(snap: SnapshotLike, fields: Sequence[str]) -> _GroupKey:
    return tuple(
        (name, snap.host if name == "host" else tuple(sorted(getattr(snap, name))))
        for name in fields
    )


def _check_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


def apply_policy(
    snapshots: Iterable[S],
    policy: RetentionPolicy,
    *,
    group_by: str | Iterable[str] = ("host", "paths"),
    tz: tzinfo | None = None,
    now: datetime | None = None,
) -> list[GroupResult[S]]:
    """Apply ``policy`` to each group of ``snapshots``; groups are sorted by their key.

    ``tz`` is the zone whose wall clock defines hours, days, weeks, months and years (default:
    the system's local zone). ``now`` (default: the current time) only matters for snapshots
    dated in the future, which never serve as the "newest" reference of ``keep_within*``.
    """
    fields = parse_group_by(group_by)
    now = datetime.now(UTC) if now is None else now
    _check_aware(now, "now")
    groups: dict[_GroupKey, list[S]] = {}
    for snap in snapshots:
        _check_aware(snap.time, f"the time of snapshot {snap.uid}")
        groups.setdefault(_group_key(snap, fields), []).append(snap)
    results: list[GroupResult[S]] = []
    for key in sorted(groups):
        keep, remove = _judge_group(groups[key], policy, tz, now)
        fields_dict = {name: value if isinstance(value, str) else list(value)
                       for name, value in key}
        results.append(GroupResult(fields_dict, keep, remove))
    return results
