"""Schedules: parsing, next runs, due steps, and agreement with systemd's calendar."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta

import pytest

from fogvault.jobs.schedule import (
    ALWAYS,
    IntervalSchedule,
    ScheduleError,
    is_due,
    parse_schedule,
    parse_when,
)


@pytest.fixture
def utc():
    """Local time = UTC, so calendar results do not depend on the machine's zone."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


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


def test_interval_counts_from_the_previous_run():
    every = parse_schedule("@every 1h30m")
    assert isinstance(every, IntervalSchedule) and every.seconds == 5400
    start = _local(2024, 3, 1, 10, 7, 13)
    assert every.next_after(start) - start == timedelta(hours=1, minutes=30)
    assert parse_schedule("every 1s").seconds == 1


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
    assert parse_schedule("30 2 * * *").oncalendar() == ["*-*-* 02:30:00"]
    assert parse_schedule("0 3 1 * mon").oncalendar() == ["Mon *-*-* 03:00:00",
                                                          "*-*-01 03:00:00"]
    assert parse_schedule("every 15s").oncalendar() == ["*-*-* *:*:00/15"]
    assert parse_schedule("every 10m").oncalendar() == ["*-*-* *:00/10:00"]
    assert parse_schedule("every 10m").cron() == "*/10 * * * *"
    assert parse_schedule("every 6h").cron() == "0 */6 * * *"
    with pytest.raises(ScheduleError, match="cannot be written as a crontab entry"):
        parse_schedule("every 30s").cron()
    with pytest.raises(ScheduleError, match="does not divide a minute, hour or day"):
        parse_schedule("every 7m").oncalendar()
