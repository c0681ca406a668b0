"""Schedules: parsing, next runs, due steps, and agreement with systemd's calendar."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fogvault.jobs.schedule import (
    ALWAYS,
    IntervalSchedule,
    ScheduleError,
    is_due,
    parse_schedule,
    parse_when,
)


@contextlib.contextmanager
def _local_zone(name: str) -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time = UTC, so calendar results do not depend on the machine's zone."""
    with _local_zone("UTC"):
        yield


@pytest.fixture
def berlin() -> Iterator[None]:
    """Local time with daylight saving: 2024-03-31 02:00 CET -> 03:00 CEST, and 2024-10-27
    03:00 CEST -> 02:00 CET."""
    if not Path("/usr/share/zoneinfo/Europe/Berlin").exists():
        pytest.skip("no tzdata for Europe/Berlin")
    with _local_zone("Europe/Berlin"):
        yield


def _local(*args: int) -> datetime:
    return datetime(*args).astimezone()


CASES = [
    # schedule, after, the next three runs
    ("daily", (2024, 3, 1, 10, 7), ["2024-03-02 00:00", "2024-03-03 00:00", "2024-03-04 00:00"]),
    ("@hourly", (2024, 3, 1, 10, 7), ["2024-03-01 11:00", "2024-03-01 12:00", "2024-03-01 13:00"]),
    ("weekly", (2024, 3, 1, 10, 7), ["2024-03-04 00:00", "2024-03-11 00:00", "2024-03-18 00:00"]),
    ("monthly", (2024, 1, 31, 0, 0), ["2024-02-01 00:00", "2024-03-01 00:00", "2024-04-01 00:00"]),
    ("yearly", (2024, 3, 1, 0, 0), ["2025-01-01 00:00", "2026-01-01 00:00", "2027-01-01 00:00"]),
    ("30 2 * * *", (2024, 3, 1, 2, 30), ["2024-03-02 02:30", "2024-03-03 02:30",
                                         "2024-03-04 02:30"]),
    ("*/20 8-9 * * mon-fri", (2024, 3, 1, 9, 45),  # a Friday
     ["2024-03-04 08:00", "2024-03-04 08:20", "2024-03-04 08:40"]),
    ("0 12 1,15 * 0", (2024, 3, 1, 13, 0),  # day 1 or 15, or a Sunday (cron's OR)
     ["2024-03-03 12:00", "2024-03-10 12:00", "2024-03-15 12:00"]),
    ("0 0 29 feb *", (2024, 3, 1, 0, 0), ["2028-02-29 00:00", "2032-02-29 00:00",
                                          "2036-02-29 00:00"]),
    ("15 4-10/3 * JAN,jul sun", (2024, 1, 1, 0, 0),
     ["2024-01-07 04:15", "2024-01-07 07:15", "2024-01-07 10:15"]),
    ("0 0 * * 7", (2024, 3, 1, 0, 0), ["2024-03-03 00:00", "2024-03-10 00:00",
                                       "2024-03-17 00:00"]),
    # a starred day field with a step still restricts, and cron ANDs the two day fields
    ("0 0 * * */2", (2024, 3, 1, 0, 0),  # Sun, Tue, Thu, Sat
     ["2024-03-02 00:00", "2024-03-03 00:00", "2024-03-05 00:00"]),
    ("0 0 */2 * mon", (2024, 3, 1, 0, 0),  # Mondays on odd days
     ["2024-03-11 00:00", "2024-03-25 00:00", "2024-04-01 00:00"]),
    # a date on a weekday: years apart (it was refused as 'never matches', or failed later)
    ("0 3 */31 3 sun", (2026, 11, 25, 0, 0),
     ["2037-03-01 03:00", "2043-03-01 03:00", "2048-03-01 03:00"]),
]


def _runs(text: str, after: tuple[int, ...], count: int = 3) -> list[str]:
    schedule = parse_schedule(text)
    moment, found = _local(*after), []
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(f"{moment:%Y-%m-%d %H:%M}")
    return found


@pytest.mark.parametrize(("text", "after", "expected"), CASES)
def test_next_runs(utc, text, after, expected):
    assert _runs(text, after) == expected


@pytest.mark.parametrize(("text", "after", "expected"), CASES)
def test_systemd_calendar_agrees(utc, text, after, expected):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: only our own next runs were checked")
    schedule = parse_schedule(text)
    base = f"{_local(*after):%Y-%m-%d %H:%M:%S}"
    elapses: list[str] = []
    for calendar in schedule.oncalendar():
        done = subprocess.run(
            ["systemd-analyze", "calendar", f"--base-time={base}", "--iterations=3", calendar],
            capture_output=True, text=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        elapses += re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \d\d:\d\d)", done.stdout)
    assert sorted(set(elapses))[:3] == expected


def test_a_schedule_is_kept_on_one_line():
    """Its text goes into a crontab comment and a unit's Description: a newline in it split
    the crontab's marker line (schedule remove then left the entry behind)."""
    assert parse_schedule(" 30 2\n* *\t* ").text == "30 2 * * *"
    assert parse_schedule("every\n2h").text == "every 2h"


def test_interval_counts_from_the_previous_run():
    every = parse_schedule("@every 1h30m")
    assert isinstance(every, IntervalSchedule) and every.seconds == 5400
    start = _local(2024, 3, 1, 10, 7, 13)
    assert every.next_after(start) - start == timedelta(hours=1, minutes=30)
    assert parse_schedule("every 1s").seconds == 1
    assert parse_schedule("every 366d").seconds == 366 * 86400


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty schedule"),
    ("30 2 * *", "has 5 fields, this has 4"),
    ("60 * * * *", "minute 60 is out of range 0-59"),
    ("* * 0 * *", "day of month 0 is out of range 1-31"),
    ("* * * 13 *", "month 13 is out of range 1-12"),
    ("* * * * 8", "day of week 8 is out of range 0-7"),
    ("* * * * funday", "is not a number or a name (sun, mon, ...)"),
    ("*/0 * * * *", "a step must be at least 1"),
    ("10-5 * * * *", "runs backwards"),
    ("0 0 30 2 *", "never matches"),
    ("every 0s", "at least 1s"),
    ("every 366d1s", "at most 366d"),
    ("every 99999999999999999999d", "at most 366d"),
    ("every 5m5m", "unit 'm' given twice"),
    ("every 5w", "has 5 fields, this has 2"),
])
def test_bad_schedules(text, message):
    with pytest.raises(ScheduleError, match=re.escape(message)):
        parse_schedule(text)


def test_when_words():
    assert parse_when(True) is ALWAYS and parse_when("always") is ALWAYS
    assert parse_when(False) is None and parse_when("never") is None
    assert parse_when("weekly").text == "weekly"


def test_due_steps(utc):
    weekly = parse_schedule("weekly")
    friday = _local(2024, 3, 1, 12, 0)
    assert is_due(weekly, None, friday)  # never done: due
    assert not is_due(weekly, friday, friday + timedelta(days=2))  # Sunday: not yet
    assert is_due(weekly, friday, _local(2024, 3, 4, 0, 0))  # Monday 00:00 has come
    assert is_due(ALWAYS, friday, friday)
    assert not is_due(None, None, friday)


def test_calendar_and_cron_forms():
    assert parse_schedule("daily").oncalendar() == ["daily"]
    assert parse_schedule("daily").cron() == "0 0 * * *"
    assert parse_schedule("weekly").cron() == "0 0 * * 1"
    assert parse_schedule("30  2 * *  *").cron() == "30 2 * * *"
    # Vixie cron (Debian's) refuses a step after one value ('bad minute'): the range it means
    assert parse_schedule("5/10 8/2 * * *").cron() == "5-59/10 8-23/2 * * *"
    assert parse_schedule("0 0 1/7 feb/3 MON/2").cron() == "0 0 1-31/7 2-12/3 1-7/2"
    assert parse_schedule("15 4-10/3 */2 JAN,jul sun").cron() == "15 4-10/3 */2 JAN,jul sun"
    assert parse_schedule("30 2 * * *").oncalendar() == ["*-*-* 02:30:00"]
    assert parse_schedule("0 3 1 * mon").oncalendar() == ["Mon *-*-* 03:00:00",
                                                          "*-*-01 03:00:00"]
    assert parse_schedule("every 15s").oncalendar() == ["*-*-* *:*:00/15"]
    assert parse_schedule("every 10m").oncalendar() == ["*-*-* *:00/10:00"]
    assert parse_schedule("every 10m").cron() == "*/10 * * * *"
    assert parse_schedule("every 6h").cron() == "0 */6 * * *"
    assert parse_schedule("every 24h").oncalendar() == ["*-*-* 00:00:00"]
    assert parse_schedule("0 0 * * */2").oncalendar() == ["Sun,Tue,Thu,Sat *-*-* 00:00:00"]
    assert parse_schedule("0 0 */2 * mon").oncalendar() == [
        "Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 00:00:00"]
    with pytest.raises(ScheduleError, match="cannot be written as a crontab entry"):
        parse_schedule("every 30s").cron()
    with pytest.raises(ScheduleError, match="of whole minutes dividing an hour, or of whole"):
        parse_schedule("every 7m").oncalendar()


ACCEPTED_INTERVALS = [f"every {n}s" for n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)] + \
    [f"every {n}m" for n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)] + \
    [f"every {n}h" for n in (1, 2, 3, 4, 6, 8, 12, 24)] + ["every 1d"]


@pytest.mark.parametrize("text", ACCEPTED_INTERVALS)
def test_systemd_accepts_the_calendar_of_every_interval_it_is_given(utc, text):
    """Runs aligned to the clock, as many a day as the interval says. 'every 24h' was
    written as '00/24', which systemd refuses: the timer never ran."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    seconds = parse_schedule(text).seconds
    (calendar,) = parse_schedule(text).oncalendar()
    count = min(86400 // seconds, 30)
    done = subprocess.run(
        ["systemd-analyze", "calendar", "--base-time=2024-03-01 23:59:59",
         f"--iterations={count}", calendar],
        capture_output=True, text=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}, check=False,
    )
    assert done.returncode == 0, done.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+)", done.stdout)
    expected = [datetime(2024, 3, 2, tzinfo=UTC) + timedelta(seconds=seconds * i)
                for i in range(count)]
    assert elapses == [f"{t:%Y-%m-%d %H:%M:%S}" for t in expected]


@pytest.mark.parametrize("text", ["every 90m", "every 45m", "every 1h30m", "every 7m", "every 5h",
                                  "every 2d"])
def test_intervals_a_calendar_cannot_express_say_exactly_what_is_accepted(text):
    """90m and 45m divide a day but not an hour, and are not whole hours: refused by both."""
    schedule = parse_schedule(text)
    with pytest.raises(ScheduleError, match="seconds dividing a minute, of whole minutes "
                                            "dividing an hour, or of whole hours dividing a day"):
        schedule.oncalendar()
    with pytest.raises(ScheduleError, match=r"only whole minutes dividing an hour, or whole "
                                            r"hours dividing a day"):
        schedule.cron()


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _walls(text: str, after: datetime, count: int) -> list[str]:
    schedule, found = parse_schedule(text), []
    for _ in range(count):
        after = schedule.next_after(after)
        found.append(f"{after:%m-%d %H:%M %Z}")
    return found


def test_a_time_the_clocks_skip_runs_once_right_after_the_change(berlin):
    after = _utc(2024, 3, 30, 12)
    assert _walls("30 2 * * *", after, 3) == ["03-31 03:00 CEST", "04-01 02:30 CEST",
                                              "04-02 02:30 CEST"]
    assert _walls("*/20 * * * *", _utc(2024, 3, 31, 0, 30), 3) == [
        "03-31 01:40 CET", "03-31 03:00 CEST", "03-31 03:20 CEST"]  # 02:00-02:40 do not exist


def test_a_time_the_clocks_pass_twice_runs_once(berlin):
    after = _utc(2024, 10, 26, 12)
    assert _walls("30 2 * * *", after, 2) == ["10-27 02:30 CEST", "10-28 02:30 CET"]
    assert _walls("hourly", _utc(2024, 10, 26, 23, 30), 3) == [
        "10-27 02:00 CEST", "10-27 03:00 CET", "10-27 04:00 CET"]


# runs in the local day of each change: the spring day has 23 hours (the skipped hour's runs
# collapse into 03:00), the autumn day 25 (the repeated hour's runs happen once)
@pytest.mark.parametrize(("text", "spring", "autumn"), [
    ("30 2 * * *", 1, 1), ("0 2 * * 0", 1, 1), ("daily", 1, 1), ("hourly", 23, 24),
    ("*/10 * * * *", 23 * 6, 24 * 6),
])
def test_next_run_is_always_strictly_later_across_daylight_saving(berlin, text, spring, autumn):
    """Every 7 minutes through both days of change, next_after is later than its input; and
    a daemon that asks for the next run after each run runs the job as often as the wall clock
    says, never back to back."""
    schedule = parse_schedule(text)
    days = ((_local(2024, 3, 31), _local(2024, 4, 1), spring),
            (_local(2024, 10, 27), _local(2024, 10, 28), autumn))
    for day, end, expected in days:
        moments = [day + timedelta(minutes=7 * i) for i in range(26 * 60 // 7)]
        assert all(schedule.next_after(m) > m for m in moments)
        runs, now = 0, day - timedelta(minutes=1)
        while (now := schedule.next_after(now)) < end:
            runs += 1
        assert runs == expected
