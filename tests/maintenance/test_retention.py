"""Retention policy (restic ``forget`` semantics): hand-computed expectations.

Every expected result below was worked out by hand from the snapshot times written next to it
(newest first, as the policy walks them); nothing is computed by a second implementation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest

from fogvault.errors import UsageError
from fogvault.maintenance.retention import (
    Duration,
    GroupResult,
    RetentionPolicy,
    apply_policy,
    parse_duration,
    parse_group_by,
)

NY = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)

L, H, D = "last snapshot", "hourly snapshot", "daily snapshot"
W, M, Y = "weekly snapshot", "monthly snapshot", "yearly snapshot"


@dataclass
class Snap:
    uid: str
    time: datetime
    host: str = "host1"
    paths: list[str] = field(default_factory=lambda: ["/data"])
    tags: list[str] = field(default_factory=list)


def at(text: str) -> datetime:
    """An ISO time with its offset, e.g. ``2021-01-04T09:00Z``."""
    return datetime.fromisoformat(text)


def series(**times: str) -> list[Snap]:
    return [Snap(uid, at(text)) for uid, text in times.items()]


def judge(snaps: list[Snap], policy: RetentionPolicy, tz: tzinfo = UTC,
          now: datetime = FAR_FUTURE) -> GroupResult[Snap]:
    (group,) = apply_policy(snaps, policy, group_by="", tz=tz, now=now)
    return group


def check(result: GroupResult[Snap], keep: dict[str, list[str]], remove: list[str]) -> None:
    assert [(k.snapshot.uid, k.reasons) for k in result.keep] == list(keep.items())
    assert [snap.uid for snap in result.remove] == remove


# --- counting rules ------------------------------------------------------------------------

# Around the 2020/2021 turn. ISO weeks: 2020-12-28 (Mon) .. 2021-01-03 (Sun) are 2020-W53.
S1 = series(
    s01="2020-12-28T09:00Z",  # Mon, 2020-W53
    s02="2020-12-31T09:00Z",  # Thu, 2020-W53
    s03="2021-01-03T09:00Z",  # Sun, still 2020-W53
    s04="2021-01-04T09:00Z",  # Mon, 2021-W01
    s05="2021-01-04T09:30Z",  # same hour as s04
    s06="2021-01-04T18:00Z",
    s07="2021-01-05T08:00Z",
    s08="2021-01-05T08:45Z",  # same hour as s07
    s09="2021-02-01T12:00Z",  # 2021-W05
)
ALL_S1 = ["s09", "s08", "s07", "s06", "s05", "s04", "s03", "s02", "s01"]

COUNT_CASES = [
    ("last-3", RetentionPolicy(keep_last=3),
     {"s09": [L], "s08": [L], "s07": [L]},
     ["s06", "s05", "s04", "s03", "s02", "s01"]),
    ("last-unlimited", RetentionPolicy(keep_last=-1),
     {uid: [L] for uid in ALL_S1}, []),
    ("last-more-than-there-are", RetentionPolicy(keep_last=20),
     {uid: [L] for uid in ALL_S1}, []),
    ("hourly-3", RetentionPolicy(keep_hourly=3),
     {"s09": [H], "s08": [H], "s06": [H]},
     ["s07", "s05", "s04", "s03", "s02", "s01"]),
    ("hourly-unlimited", RetentionPolicy(keep_hourly=-1),
     {"s09": [H], "s08": [H], "s06": [H], "s05": [H], "s03": [H], "s02": [H], "s01": [H]},
     ["s07", "s04"]),
    ("daily-2", RetentionPolicy(keep_daily=2),
     {"s09": [D], "s08": [D]},
     ["s07", "s06", "s05", "s04", "s03", "s02", "s01"]),
    ("daily-unlimited", RetentionPolicy(keep_daily=-1),
     {"s09": [D], "s08": [D], "s06": [D], "s03": [D], "s02": [D], "s01": [D]},
     ["s07", "s05", "s04"]),
    ("weekly-2", RetentionPolicy(keep_weekly=2),
     {"s09": [W], "s08": [W]},
     ["s07", "s06", "s05", "s04", "s03", "s02", "s01"]),
    # s03 (Sunday 2021-01-03) is the newest of ISO week 2020-W53, not of a 2021 week.
    ("weekly-3-iso-year-boundary", RetentionPolicy(keep_weekly=3),
     {"s09": [W], "s08": [W], "s03": [W]},
     ["s07", "s06", "s05", "s04", "s02", "s01"]),
    # Only three weeks exist; the 4th count keeps the group's oldest snapshot.
    ("weekly-4-keeps-oldest", RetentionPolicy(keep_weekly=4),
     {"s09": [W], "s08": [W], "s03": [W], "s01": ["oldest weekly snapshot"]},
     ["s07", "s06", "s05", "s04", "s02"]),
    ("monthly-3", RetentionPolicy(keep_monthly=3),
     {"s09": [M], "s08": [M], "s02": [M]},
     ["s07", "s06", "s05", "s04", "s03", "s01"]),
    ("yearly-1", RetentionPolicy(keep_yearly=1),
     {"s09": [Y]}, ALL_S1[1:]),
    ("yearly-5-keeps-oldest", RetentionPolicy(keep_yearly=5),
     {"s09": [Y], "s02": [Y], "s01": ["oldest yearly snapshot"]},
     ["s08", "s07", "s06", "s05", "s04", "s03"]),
    ("yearly-unlimited-keeps-oldest", RetentionPolicy(keep_yearly=-1),
     {"s09": [Y], "s02": [Y], "s01": ["oldest yearly snapshot"]},
     ["s08", "s07", "s06", "s05", "s04", "s03"]),
    ("combined", RetentionPolicy(keep_last=2, keep_daily=3, keep_weekly=2, keep_monthly=2),
     {"s09": [L, D, W, M], "s08": [L, D, W, M], "s06": [D]},
     ["s07", "s05", "s04", "s03", "s02", "s01"]),
    ("combined-hourly-weekly", RetentionPolicy(keep_hourly=2, keep_weekly=3),
     {"s09": [H, W], "s08": [H, W], "s03": [W]},
     ["s07", "s06", "s05", "s04", "s02", "s01"]),
]


@pytest.mark.parametrize(("policy", "keep", "remove"), [c[1:] for c in COUNT_CASES],
                         ids=[c[0] for c in COUNT_CASES])
def test_counting_rules(policy: RetentionPolicy, keep: dict[str, list[str]],
                        remove: list[str]) -> None:
    check(judge(S1, policy), keep, remove)


def test_restic_documentation_example_twelve_sundays() -> None:
    sundays = ["09-01", "09-08", "09-15", "09-22", "09-29", "10-06", "10-13", "10-20", "10-27",
               "11-03", "11-10", "11-17"]
    snaps = [Snap(f"n{i:02}", at(f"2019-{day}T11:00Z")) for i, day in enumerate(sundays)]
    result = judge(snaps, RetentionPolicy(keep_daily=4))
    check(result, {"n11": [D], "n10": [D], "n09": [D], "n08": [D]},
          [f"n{i:02}" for i in range(7, -1, -1)])


# --- ties ----------------------------------------------------------------------------------

TIES = series(b="2024-05-01T10:00Z", a="2024-05-01T10:00Z", c="2024-05-01T09:00Z")


@pytest.mark.parametrize("order", [TIES, TIES[::-1]], ids=["given", "reversed"])
def test_ties_at_the_same_time_are_broken_by_uid(order: list[Snap]) -> None:
    check(judge(order, RetentionPolicy(keep_last=1)), {"a": [L]}, ["b", "c"])
    check(judge(order, RetentionPolicy(keep_daily=1)), {"a": [D]}, ["b", "c"])
    # A 2nd daily count is left for the oldest snapshot, in the same day as "a".
    check(judge(order, RetentionPolicy(keep_daily=2)),
          {"a": [D], "c": ["oldest daily snapshot"]}, ["b"])
    check(judge(order, RetentionPolicy(keep_within="1h")),
          {"a": ["within 1h"], "b": ["within 1h"]}, ["c"])


def test_the_newest_of_a_tie_is_the_snapshot_that_latest_names(make_repo) -> None:
    """forget's policy and ``latest`` (the last of Repository.snapshots()) take the same
    snapshot for the newest of several with the same instant, written with different UTC
    offsets (retention took the uid that sorts first, ``latest`` the one that sorts last)."""
    import random

    from fogvault.repo.snapshot import Snapshot

    repo = make_repo("repo")
    rng = random.Random(7)
    noon = at("2024-05-01T12:00+02:00")
    for zone in (UTC, NY, TOKYO, UTC):
        uid = f"{rng.getrandbits(64):016x}"
        repo.save_snapshot(Snapshot(uid, noon.astimezone(zone), "h", "u", ["/d"], bytes(32)))
    snapshots = repo.snapshots()
    assert len({s.time for s in snapshots}) == 1 and len(snapshots) == 4
    (group,) = apply_policy(snapshots, RetentionPolicy(keep_last=1), now=FAR_FUTURE)
    assert [k.snapshot.uid for k in group.keep] == [repo.resolve_snapshot("latest")]


def test_empty_and_single_snapshot_groups() -> None:
    assert apply_policy([], RetentionPolicy(keep_last=1), now=FAR_FUTURE) == []
    only = series(x="2024-01-01T00:00Z")
    check(judge(only, RetentionPolicy(keep_daily=1)), {"x": [D]}, [])
    check(judge(only, RetentionPolicy(keep_within_daily="1d")), {"x": ["daily within 1d"]}, [])


# --- keep_within ---------------------------------------------------------------------------

# Newest 2024-03-31 12:00. Go's AddDate: Mar 31 - 1 month = "Feb 31" = Mar 2 (2024 is leap).
WITHIN = series(
    w4="2024-03-01T00:00Z",
    w3="2024-03-02T12:00:00Z",
    w2="2024-03-02T12:00:01Z",
    w1="2024-03-31T12:00Z",
)

WITHIN_CASES = [
    # range start 2024-03-02 12:00 (not Feb 29): w3, exactly on it, is out.
    ("1m-month-overflow-and-boundary", "1m",
     {"w1": ["within 1m"], "w2": ["within 1m"]}, ["w3", "w4"]),
    ("1d2h", "1d2h", {"w1": ["within 1d2h"]}, ["w2", "w3", "w4"]),
    ("29d", "29d", {"w1": ["within 29d"], "w2": ["within 29d"]}, ["w3", "w4"]),
    ("1y", "1y", {uid: ["within 1y"] for uid in ("w1", "w2", "w3", "w4")}, []),
    ("5000y-before-year-1", "5000y", {uid: ["within 5000y"] for uid in ("w1", "w2", "w3", "w4")},
     []),
]


@pytest.mark.parametrize(("span", "keep", "remove"), [c[1:] for c in WITHIN_CASES],
                         ids=[c[0] for c in WITHIN_CASES])
def test_keep_within(span: str, keep: dict[str, list[str]], remove: list[str]) -> None:
    check(judge(WITHIN, RetentionPolicy(keep_within=span)), keep, remove)


def test_keep_within_ignores_future_snapshots_as_reference() -> None:
    now = at("2024-04-01T00:00Z")
    snaps = [*WITHIN, Snap("future", at("2024-06-01T00:00Z"))]
    # The reference stays w1 (the newest not in the future); "future" is after the start.
    check(judge(snaps, RetentionPolicy(keep_within="1d"), now=now),
          {"future": ["within 1d"], "w1": ["within 1d"]}, ["w2", "w3", "w4"])
    # With every snapshot in the future there is no reference: all count as within.
    check(judge(WITHIN, RetentionPolicy(keep_within="1d"), now=at("2020-01-01T00:00Z")),
          {uid: ["within 1d"] for uid in ("w1", "w2", "w3", "w4")}, [])


# Mon 2024-06-10 .. Wed 2024-06-12, all in ISO week 2024-W24; newest d5 = 06-12 23:00.
DAYS = series(
    d1="2024-06-10T08:00Z",
    d2="2024-06-10T20:00Z",
    d3="2024-06-11T07:00Z",
    d4="2024-06-12T06:00Z",
    d5="2024-06-12T23:00Z",
)
MONTHS = series(
    m1="2023-11-15T12:00Z",
    m2="2023-12-20T12:00Z",
    m3="2024-01-05T12:00Z",
    m4="2024-01-25T12:00Z",
)

WITHIN_BUCKET_CASES = [
    # range start 06-10 23:00: d3, d4, d5 in range; d4 shares d5's day.
    ("daily-2d", DAYS, RetentionPolicy(keep_within_daily="2d"),
     {"d5": ["daily within 2d"], "d3": ["daily within 2d"]}, ["d4", "d2", "d1"]),
    # range start 06-09 23:00: all in range; d1 shares d2's day but is the oldest.
    ("daily-3d-keeps-oldest", DAYS, RetentionPolicy(keep_within_daily="3d"),
     {"d5": ["daily within 3d"], "d3": ["daily within 3d"], "d2": ["daily within 3d"],
      "d1": ["oldest daily within 3d"]}, ["d4"]),
    ("hourly-1d", DAYS, RetentionPolicy(keep_within_hourly="1d"),
     {"d5": ["hourly within 1d"], "d4": ["hourly within 1d"]}, ["d3", "d2", "d1"]),
    ("weekly-1m", DAYS, RetentionPolicy(keep_within_weekly="1m"),
     {"d5": ["weekly within 1m"], "d1": ["oldest weekly within 1m"]}, ["d4", "d3", "d2"]),
    ("daily-2d-and-weekly-1m", DAYS,
     RetentionPolicy(keep_within_daily="2d", keep_within_weekly="1m"),
     {"d5": ["daily within 2d", "weekly within 1m"], "d3": ["daily within 2d"],
      "d1": ["oldest weekly within 1m"]}, ["d4", "d2"]),
    # range start 2023-11-25 12:00: m1 is out of range.
    ("monthly-2m", MONTHS, RetentionPolicy(keep_within_monthly="2m"),
     {"m4": ["monthly within 2m"], "m2": ["monthly within 2m"]}, ["m3", "m1"]),
    ("yearly-1y", MONTHS, RetentionPolicy(keep_within_yearly="1y"),
     {"m4": ["yearly within 1y"], "m2": ["yearly within 1y"],
      "m1": ["oldest yearly within 1y"]}, ["m3"]),
    ("monthly-unlimited-count", MONTHS, RetentionPolicy(keep_monthly=-1),
     {"m4": [M], "m2": [M], "m1": [M]}, ["m3"]),
]


@pytest.mark.parametrize(("snaps", "policy", "keep", "remove"),
                         [c[1:] for c in WITHIN_BUCKET_CASES],
                         ids=[c[0] for c in WITHIN_BUCKET_CASES])
def test_keep_within_buckets(snaps: list[Snap], policy: RetentionPolicy,
                             keep: dict[str, list[str]], remove: list[str]) -> None:
    check(judge(snaps, policy), keep, remove)


# --- keep_tags -----------------------------------------------------------------------------

TAGGED = [
    Snap("g1", at("2024-02-01T12:00Z")),
    Snap("g2", at("2024-02-02T12:00Z"), tags=["a"]),
    Snap("g3", at("2024-02-03T12:00Z"), tags=["b", "a"]),
    Snap("g4", at("2024-02-04T12:00Z"), tags=["b"]),
    Snap("g5", at("2024-02-05T12:00Z"), tags=["b", "c"]),
]

TAG_CASES = [
    ("all-of-a-list", ("a,b",), {"g3": ["has tags [a, b]"]}, ["g5", "g4", "g2", "g1"]),
    ("spaces-stripped", (" a , b ",), {"g3": ["has tags [a, b]"]}, ["g5", "g4", "g2", "g1"]),
    ("any-of-the-lists", ("a", "c"),
     {"g5": ["has tags [c]"], "g3": ["has tags [a]"], "g2": ["has tags [a]"]}, ["g4", "g1"]),
    ("each-matching-list-is-a-reason", ("a", "a,b"),
     {"g3": ["has tags [a]", "has tags [a, b]"], "g2": ["has tags [a]"]}, ["g5", "g4", "g1"]),
    ("empty-tag-means-untagged", ("",), {"g1": ["has tags []"]}, ["g5", "g4", "g3", "g2"]),
]


@pytest.mark.parametrize(("tags", "keep", "remove"), [c[1:] for c in TAG_CASES],
                         ids=[c[0] for c in TAG_CASES])
def test_keep_tags(tags: tuple[str, ...], keep: dict[str, list[str]], remove: list[str]) -> None:
    check(judge(TAGGED, RetentionPolicy(keep_tags=tags)), keep, remove)


def test_keep_tags_matching_nothing_removes_all() -> None:
    result = judge(TAGGED, RetentionPolicy(keep_tags=("x",)))
    check(result, {}, ["g5", "g4", "g3", "g2", "g1"])
    assert result.removes_all
    assert not judge(TAGGED, RetentionPolicy(keep_last=1)).removes_all


def test_reasons_come_in_restic_order() -> None:
    # range start for 1d is 02-04 12:00: g4, exactly on it, is out of range.
    policy = RetentionPolicy(keep_tags=("b",), keep_within="1d", keep_last=1,
                             keep_within_daily="1d")
    check(judge(TAGGED, policy),
          {"g5": ["has tags [b]", "within 1d", L, "daily within 1d"],
           "g4": ["has tags [b]"], "g3": ["has tags [b]"]},
          ["g2", "g1"])


# --- time zones and DST --------------------------------------------------------------------

# The same instants on three wall clocks (New York is UTC-5, Tokyo UTC+9 in January):
ZONES = series(
    z1="2024-01-15T14:30Z",  # NY 01-15 09:30   Tokyo 01-15 23:30
    z2="2024-01-15T16:00Z",  # NY 01-15 11:00   Tokyo 01-16 01:00
    z3="2024-01-16T03:00Z",  # NY 01-15 22:00   Tokyo 01-16 12:00
    z4="2024-01-16T06:00Z",  # NY 01-16 01:00   Tokyo 01-16 15:00
)
NEW_YEAR = series(
    k0="2023-06-01T00:00Z",
    k1="2023-12-31T20:00Z",  # Tokyo 2024-01-01 05:00
    k2="2024-01-01T10:00Z",
)

ZONE_CASES = [
    ("daily-utc", ZONES, UTC, RetentionPolicy(keep_daily=2), {"z4": [D], "z2": [D]},
     ["z3", "z1"]),
    ("daily-new-york", ZONES, NY, RetentionPolicy(keep_daily=2), {"z4": [D], "z3": [D]},
     ["z2", "z1"]),
    ("daily-tokyo", ZONES, TOKYO, RetentionPolicy(keep_daily=2), {"z4": [D], "z1": [D]},
     ["z3", "z2"]),
    ("yearly-utc", NEW_YEAR, UTC, RetentionPolicy(keep_yearly=2), {"k2": [Y], "k1": [Y]},
     ["k0"]),
    ("yearly-tokyo", NEW_YEAR, TOKYO, RetentionPolicy(keep_yearly=2), {"k2": [Y], "k0": [Y]},
     ["k1"]),
]


@pytest.mark.parametrize(("snaps", "tz", "policy", "keep", "remove"),
                         [c[1:] for c in ZONE_CASES], ids=[c[0] for c in ZONE_CASES])
def test_buckets_follow_the_given_zone(snaps: list[Snap], tz: tzinfo, policy: RetentionPolicy,
                                       keep: dict[str, list[str]], remove: list[str]) -> None:
    check(judge(snaps, policy, tz=tz), keep, remove)


def test_default_zone_is_the_system_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        (group,) = apply_policy(ZONES, RetentionPolicy(keep_daily=2), group_by="",
                                now=FAR_FUTURE)
        check(group, {"z4": [D], "z1": [D]}, ["z3", "z2"])
        # In Tokyo (no DST) one day before z4 (01-16 15:00) is 01-15 15:00 = 06:00Z.
        (group,) = apply_policy(ZONES, RetentionPolicy(keep_within="1d"), group_by="",
                                now=FAR_FUTURE)
        check(group, {uid: ["within 1d"] for uid in ("z4", "z3", "z2", "z1")}, [])
    finally:
        monkeypatch.undo()
        time.tzset()


def test_offsets_in_the_input_do_not_matter() -> None:
    # z3 written in New York time and z4 in Tokyo time: the same instants as in ZONES.
    shifted = [ZONES[0], ZONES[1], Snap("z3", at("2024-01-15T22:00-05:00")),
               Snap("z4", at("2024-01-16T15:00+09:00"))]
    check(judge(shifted, RetentionPolicy(keep_daily=2), tz=UTC), {"z4": [D], "z2": [D]},
          ["z3", "z1"])


# New York falls back on 2024-11-03: 01:00-01:59 happens twice (EDT, then EST).
FALL_BACK = series(
    f0="2024-11-03T04:50Z",  # 00:50 EDT
    f1="2024-11-03T05:30Z",  # 01:30 EDT
    f2="2024-11-03T06:10Z",  # 01:10 EST
    f3="2024-11-03T06:30Z",  # 01:30 EST
)
# ... and springs forward on 2024-03-10: 02:00 EST becomes 03:00 EDT.
SPRING_FORWARD = series(
    e1="2024-03-10T06:59Z",  # 01:59 EST
    e2="2024-03-10T07:00Z",  # 03:00 EDT
    e3="2024-03-10T08:00Z",  # 04:00 EDT
)

DST_CASES = [
    ("fall-back-hour-twice-new-york", FALL_BACK, NY, {"f3": [H], "f0": [H]}, ["f2", "f1"]),
    ("fall-back-utc", FALL_BACK, UTC, {"f3": [H], "f1": [H]}, ["f2", "f0"]),
    # 02:00-02:59 never happens: 01:59 and 03:00 are one minute apart, in two hours.
    ("spring-forward-new-york", SPRING_FORWARD, NY, {"e3": [H], "e2": [H], "e1": [H]}, []),
]


@pytest.mark.parametrize(("snaps", "tz", "keep", "remove"), [c[1:] for c in DST_CASES],
                         ids=[c[0] for c in DST_CASES])
def test_hourly_buckets_across_dst(snaps: list[Snap], tz: tzinfo, keep: dict[str, list[str]],
                                   remove: list[str]) -> None:
    policy = RetentionPolicy(keep_hourly=2 if snaps is FALL_BACK else -1)
    check(judge(snaps, policy, tz=tz), keep, remove)


# Newest 2024-11-03 12:00 EST (17:00Z). One day earlier on New York's wall clock is
# 2024-11-02 12:00 EDT = 16:00Z (25 hours before); in UTC it is 16:00Z + 1h = 17:00Z.
ACROSS_DST = series(
    q2="2024-11-02T16:00Z",
    q1="2024-11-02T16:30Z",
    latest="2024-11-03T17:00Z",
)


def test_within_days_follow_the_wall_clock_across_dst() -> None:
    check(judge(ACROSS_DST, RetentionPolicy(keep_within="1d"), tz=NY),
          {"latest": ["within 1d"], "q1": ["within 1d"]}, ["q2"])
    check(judge(ACROSS_DST, RetentionPolicy(keep_within="1d"), tz=UTC),
          {"latest": ["within 1d"]}, ["q1", "q2"])
    # Hours are exact: 24h is 24h whatever the zone.
    check(judge(ACROSS_DST, RetentionPolicy(keep_within="24h"), tz=NY),
          {"latest": ["within 24h"]}, ["q1", "q2"])


# Newest 2024-03-10 12:00 EDT (16:00Z). One day earlier in New York is 2024-03-09 12:00 EST
# = 17:00Z (23 hours before); in UTC it is 16:00Z.
ACROSS_SPRING = series(r1="2024-03-09T16:30Z", latest="2024-03-10T16:00Z")


def test_within_days_across_spring_forward() -> None:
    check(judge(ACROSS_SPRING, RetentionPolicy(keep_within="1d"), tz=NY),
          {"latest": ["within 1d"]}, ["r1"])
    check(judge(ACROSS_SPRING, RetentionPolicy(keep_within="1d"), tz=UTC),
          {"latest": ["within 1d"], "r1": ["within 1d"]}, [])


# --- grouping ------------------------------------------------------------------------------

GROUPED = [
    Snap("p1", at("2024-04-01T00:00Z"), host="h1", paths=["/a"], tags=["x"]),
    Snap("p2", at("2024-04-02T00:00Z"), host="h1", paths=["/a"]),
    Snap("p3", at("2024-04-03T00:00Z"), host="h2", paths=["/a"], tags=["x"]),
    Snap("p4", at("2024-04-04T00:00Z"), host="h1", paths=["/b", "/a"], tags=["x"]),
    Snap("p5", at("2024-04-05T00:00Z"), host="h1", paths=["/a", "/b"], tags=["y", "x"]),
]

GROUP_CASES = [
    ("default-host-paths", ("host", "paths"), [
        ({"host": "h1", "paths": ["/a"]}, ["p2"], ["p1"]),
        ({"host": "h1", "paths": ["/a", "/b"]}, ["p5"], ["p4"]),
        ({"host": "h2", "paths": ["/a"]}, ["p3"], []),
    ]),
    ("host", "host", [
        ({"host": "h1"}, ["p5"], ["p4", "p2", "p1"]),
        ({"host": "h2"}, ["p3"], []),
    ]),
    ("tags-aliased", "tag", [
        ({"tags": []}, ["p2"], []),
        ({"tags": ["x"]}, ["p4"], ["p3", "p1"]),
        ({"tags": ["x", "y"]}, ["p5"], []),
    ]),
    ("host-and-tags-as-list", ["tags", "hosts"], [
        ({"host": "h1", "tags": []}, ["p2"], []),
        ({"host": "h1", "tags": ["x"]}, ["p4"], ["p1"]),
        ({"host": "h1", "tags": ["x", "y"]}, ["p5"], []),
        ({"host": "h2", "tags": ["x"]}, ["p3"], []),
    ]),
    ("none", "", [({}, ["p5"], ["p4", "p3", "p2", "p1"])]),
]


@pytest.mark.parametrize(("group_by", "expected"), [c[1:] for c in GROUP_CASES],
                         ids=[c[0] for c in GROUP_CASES])
def test_group_by(group_by: str | list[str],
                  expected: list[tuple[dict[str, object], list[str], list[str]]]) -> None:
    results = apply_policy(GROUPED, RetentionPolicy(keep_last=1), group_by=group_by, tz=UTC,
                           now=FAR_FUTURE)
    got = [(r.key, [k.snapshot.uid for k in r.keep], [s.uid for s in r.remove])
           for r in results]
    assert got == expected


def test_a_group_describes_itself_in_words() -> None:
    results = apply_policy(GROUPED, RetentionPolicy(keep_last=1), group_by="host,paths,tags",
                           tz=UTC, now=FAR_FUTURE)
    assert [r.describe() for r in results][:2] == ["host h1, paths /a, tags (none)",
                                                   "host h1, paths /a, tags x"]
    (everything,) = apply_policy(GROUPED, RetentionPolicy(keep_last=1), group_by="", tz=UTC,
                                 now=FAR_FUTURE)
    assert everything.describe() == "all snapshots"


def test_groups_are_judged_independently() -> None:
    # keep_within's reference is each group's own newest snapshot.
    results = apply_policy(GROUPED, RetentionPolicy(keep_within="1d"), group_by="host",
                           tz=UTC, now=FAR_FUTURE)
    assert [[k.snapshot.uid for k in r.keep] for r in results] == [["p5"], ["p3"]]


def test_parse_group_by() -> None:
    assert parse_group_by("paths,host") == ("host", "paths")
    assert parse_group_by(" host , tags ") == ("host", "tags")
    assert parse_group_by(["path", "tag", "host"]) == ("host", "paths", "tags")
    assert parse_group_by("") == ()
    with pytest.raises(UsageError):
        parse_group_by("host,user")


# --- the policy object ---------------------------------------------------------------------


def test_empty_policy_is_detected_and_keeps_everything() -> None:
    empty = RetentionPolicy()
    assert empty.is_empty()
    assert RetentionPolicy(keep_last=0, keep_within="", keep_tags=()).is_empty()
    for rule in (RetentionPolicy(keep_daily=-1), RetentionPolicy(keep_within_yearly="1y"),
                 RetentionPolicy(keep_tags=("",)), RetentionPolicy(keep_within="2h")):
        assert not rule.is_empty()
    check(judge(S1[:2], empty), {"s02": ["policy is empty"], "s01": ["policy is empty"]}, [])


@pytest.mark.parametrize("bad", [{"keep_last": -2}, {"keep_daily": 1.5}, {"keep_weekly": True},
                                 {"keep_within": "1w"}, {"keep_within_daily": "-1d"}])
def test_invalid_policies_are_usage_errors(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        RetentionPolicy(**bad)  # type: ignore[arg-type]


def test_policy_normalises_its_inputs() -> None:
    policy = RetentionPolicy(keep_within="1y2h", keep_tags="a,b")  # type: ignore[arg-type]
    assert policy.keep_within == Duration(years=1, hours=2)
    assert policy.keep_tags == ("a,b",)
    assert policy.tag_lists() == (("a", "b"),)
    assert RetentionPolicy(keep_daily=7, keep_monthly=-1).describe() == (
        "keep 7 daily, all monthly snapshots")
    assert RetentionPolicy(keep_last=1).describe() == "keep 1 latest snapshot"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_policy([Snap("n", datetime(2024, 1, 1))], RetentionPolicy(keep_last=1))


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("1y5m7d2h", Duration(1, 5, 7, 2)),
    ("2h1y", Duration(years=1, hours=2)),
    (" 7d ", Duration(days=7)),
    ("36h", Duration(hours=36)),
    ("0d", Duration()),
    ("", Duration()),
])
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1w", "d", "7", "-1d", "1d1d", "1.5d", "1 d", "7D", "1y x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_duration_text() -> None:
    assert str(Duration(1, 5, 7, 2)) == "1y5m7d2h"
    assert str(Duration(days=2)) == "2d"
    assert str(Duration()) == "0h"
    assert Duration().is_zero() and not Duration(hours=1).is_zero()
