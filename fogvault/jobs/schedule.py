"""Schedules: when a job runs, and when its prune and check are due.

Three forms (docs/scheduling.md, "Schedules"):

* a cron expression of 5 fields, ``minute hour day-of-month month day-of-week``, with ``*``,
  ranges ``1-5``, steps ``*/15`` and ``8-18/2``, lists ``1,15``, and names (``jan``-``dec``,
  ``sun``-``sat``; day of week 0 and 7 are Sunday). As in Vixie cron, when both day fields
  are restricted a day matching either one matches;
* a word: ``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly`` (``annually``), also with
  a leading ``@``. They mean what systemd means: ``weekly`` is Monday 00:00;
* an interval, ``every 10s`` or ``@every 1h30m`` (units s, m, h, d; 1s to 366d): the next run
  is that long after the previous run *ended*. Meant for ``fogvault daemon`` and tests;
  ``schedule install`` accepts it only as a calendar: seconds dividing a minute (timers only),
  whole minutes dividing an hour, or whole hours dividing a day (``every 90m`` is refused).

Guarantees: :func:`parse_schedule` accepts exactly these forms, else raises
:class:`ScheduleError` (a usage error, exit 2) with a hint; a cron expression that can never
match (``0 0 30 2 *``) is refused; ``next_after(t)`` is strictly later than ``t``. Calendar
schedules are read in local wall-clock time, to the minute. Across a daylight-saving change, a
time the clocks pass twice runs once (the first time), and a time they skip runs at the first
minute after the change (``30 2 * * *`` at 03:00 on the night the clocks go from 02:00 to 03:00).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from fogvault.errors import UsageError

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SYSTEMD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
WORDS = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 1",
    "monthly": "0 0 1 * *",
    "yearly": "0 0 1 1 *",
    "annually": "0 0 1 1 *",
}
#: how far a cron expression's next time is looked for: the Gregorian calendar repeats every
#: 400 years (a date on a weekday can be 40 years away: Feb 29 across 2100)
_SEARCH_YEARS = 400
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_INTERVAL_S = 366 * 86400  # a year is plenty for backups; huge ones overflow datetime
_INTERVAL = re.compile(r"@?every\s+((?:[0-9]+[smhd])+)")
_INTERVAL_PART = re.compile(r"([0-9]+)([smhd])")
HINT = "use a cron expression such as '30 2 * * *', a word (hourly, daily, weekly, monthly, " \
       "yearly) or an interval such as 'every 10m'"


class ScheduleError(UsageError):
    """A schedule that cannot be parsed, or cannot be written for a scheduler."""


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("day of week", 0, 7, DAY_NAMES, 0),
)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A cron expression (or a word standing for one); see the module docstring."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_star: bool  # the day-of-month field starts with '*'
    weekday_star: bool
    word: str | None = None

    def next_after(self, moment: datetime) -> datetime:
        moment = moment.astimezone()
        # Search from the wall-clock minute of ``moment``: after the clocks were set back, a
        # match later on the wall clock can still be an earlier instant, so each is compared.
        wall = moment.replace(tzinfo=None, second=0, microsecond=0)
        while (found := self._next_naive(wall)) is not None:
            instant = _local_instant(found)
            if instant > moment:
                return instant
            wall = found + timedelta(minutes=1)
        raise ScheduleError(f"schedule {self.text!r} never matches")  # refused at parse time

    def _next_naive(self, t: datetime) -> datetime | None:
        limit = t.replace(year=t.year + _SEARCH_YEARS, day=1)
        while t < limit:
            if t.month not in self.months:
                t = _next_month(t)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += timedelta(minutes=1)
            else:
                return t
        return None

    def _day_matches(self, t: datetime) -> bool:
        day_ok = t.day in self.days
        weekday_ok = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def oncalendar(self) -> list[str]:
        """systemd ``OnCalendar=`` values (two when both day fields are restricted)."""
        if self.word:
            return [self.word]
        clock = f"{_calendar_list(self.hours, 0, 23)}:{_calendar_list(self.minutes, 0, 59)}:00"
        months = _calendar_list(self.months, 1, 12)
        days = _calendar_list(self.days, 1, 31)
        weekdays = "" if len(self.weekdays) == 7 else \
            ",".join(SYSTEMD_DAYS[d] for d in sorted(self.weekdays)) + " "
        if self.day_star or self.weekday_star:
            # cron ANDs the day fields then, as systemd does: a starred field with a step
            # ('*/2') still restricts, so both go on one line
            return [f"{weekdays}*-{months}-{days} {clock}"]
        return [f"{weekdays}*-{months}-* {clock}", f"*-{months}-{days} {clock}"]

    def cron(self) -> str:
        """The five crontab fields."""
        if self.word:
            return WORDS[self.word]
        return " ".join(",".join(_cron_item(item, spec, self.text) for item in part.split(","))
                        for part, spec in zip(self.text.split(), _FIELDS, strict=True))


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """``every N``: N seconds after the previous run ended (0: always due; see :data:`ALWAYS`)."""

    text: str
    seconds: int

    def next_after(self, moment: datetime) -> datetime:
        return (moment + timedelta(seconds=self.seconds)).astimezone()

    def oncalendar(self) -> list[str]:
        s = self.seconds
        if s < 60 and 60 % s == 0:
            return [f"*-*-* *:*:00/{s:02d}"]
        if s % 60 == 0 and s < 3600 and 60 % (s // 60) == 0:
            return [f"*-*-* *:00/{s // 60:02d}:00"]
        if s == 86400:  # systemd refuses a repetition as large as its range ('00/24')
            return ["*-*-* 00:00:00"]
        if s % 3600 == 0 and s < 86400 and 24 % (s // 3600) == 0:
            return [f"*-*-* 00/{s // 3600:02d}:00:00"]
        raise ScheduleError(f"schedule {self.text!r} is not a number of seconds dividing a "
                            "minute, of whole minutes dividing an hour, or of whole hours "
                            "dividing a day, so a timer cannot express it; " + HINT)

    def cron(self) -> str:
        s = self.seconds
        if s % 60 == 0 and s < 3600 and 60 % (s // 60) == 0:
            return f"*/{s // 60} * * * *"
        if s % 3600 == 0 and s <= 86400 and 24 % (s // 3600) == 0:
            return f"0 */{s // 3600} * * *"
        raise ScheduleError(f"schedule {self.text!r} cannot be written as a crontab entry "
                            "(only whole minutes dividing an hour, or whole hours dividing a "
                            "day); " + HINT)


Schedule = CronSchedule | IntervalSchedule
ALWAYS = IntervalSchedule("always", 0)


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule; raises :class:`ScheduleError` with a hint."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(f"empty schedule; {HINT}")
    text = " ".join(text.split())  # on one line: it is written into crontab comments and units
    normal = text.lower()
    word = normal.removeprefix("@")
    if word in WORDS:
        return _parse_cron(WORDS[word], text, word)
    if (interval := _INTERVAL.fullmatch(normal)) is not None:
        return _parse_interval(interval.group(1), text)
    return _parse_cron(normal, text, None)


def parse_when(value: object) -> Schedule | None:
    """When prune/check are due: a schedule, ``"always"``/``true`` (every run), or
    ``"never"``/``false`` (``None``)."""
    if value is True or value == "always":
        return ALWAYS
    if value is False or value == "never":
        return None
    if not isinstance(value, str):
        raise ScheduleError("expected a schedule string, 'always', 'never', true or false")
    return parse_schedule(value)


def next_after_last(schedule: Schedule, last: datetime, now: datetime) -> datetime:
    """The next run after one at ``last``. A ``last`` in the future (the clock was set back
    since) counts as ``now``: else the job would wait until the clock passes it again."""
    return schedule.next_after(min(last, now))


def is_due(schedule: Schedule | None, last_done: datetime | None, now: datetime) -> bool:
    """True if a step on ``schedule`` last done at ``last_done`` (None: never) is due ``now``:
    never done, done "in the future" (the clock was set back since: that record cannot be
    trusted, and running once gives a true one), or an occurrence has come since."""
    if schedule is None:
        return False
    return last_done is None or last_done > now or schedule.next_after(last_done) <= now


def _parse_interval(spec: str, text: str) -> IntervalSchedule:
    seen: set[str] = set()
    seconds = 0
    for number, unit in _INTERVAL_PART.findall(spec):
        if unit in seen:
            raise ScheduleError(f"schedule {text!r}: unit {unit!r} given twice")
        seen.add(unit)
        seconds += int(number) * _UNIT_SECONDS[unit]
    if not 1 <= seconds <= MAX_INTERVAL_S:
        raise ScheduleError(f"schedule {text!r}: the interval must be at least 1s and at most "
                            f"{MAX_INTERVAL_S // 86400}d")
    return IntervalSchedule(text, seconds)


def _parse_cron(expr: str, text: str, word: str | None) -> CronSchedule:
    parts = expr.split()
    if len(parts) != 5:
        raise ScheduleError(f"schedule {text!r} is not understood: a cron expression has 5 "
                            f"fields, this has {len(parts)}; {HINT}")
    sets = [_parse_field(part, spec, text) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    schedule = CronSchedule(
        text, sets[0], sets[1], sets[2], sets[3], weekdays,
        day_star=parts[2].startswith("*"), weekday_star=parts[4].startswith("*"), word=word,
    )
    if schedule._next_naive(datetime(2000, 1, 1)) is None:
        raise ScheduleError(f"schedule {text!r} never matches (check the day and month)")
    return schedule


def _parse_field(part: str, spec: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        values |= _parse_item(item, spec, text)
    return frozenset(values)


def _parse_item(item: str, spec: _Field, text: str) -> set[int]:
    body, slash, step_text = item.partition("/")
    step = _number(step_text, spec, text, is_step=True) if slash else 1
    if body == "*":
        low, high = spec.low, spec.high
    elif "-" in body:
        first, _, last = body.partition("-")
        low, high = _value(first, spec, text), _value(last, spec, text)
        if low > high:
            raise ScheduleError(f"schedule {text!r}: {spec.name} range {body!r} runs backwards")
    else:
        low = _value(body, spec, text)
        high = spec.high if slash else low
    return set(range(low, high + 1, step))


def _value(token: str, spec: _Field, text: str) -> int:
    if token in spec.names:
        return spec.names.index(token) + spec.name_base
    return _number(token, spec, text)


def _number(token: str, spec: _Field, text: str, *, is_step: bool = False) -> int:
    if not token.isdigit():
        names = f" or a name ({spec.names[0]}, {spec.names[1]}, ...)" if spec.names else ""
        raise ScheduleError(f"schedule {text!r}: {spec.name} {token!r} is not a number{names}")
    value = int(token)
    if is_step:
        if value < 1:
            raise ScheduleError(f"schedule {text!r}: a step must be at least 1")
        return value
    if not spec.low <= value <= spec.high:
        raise ScheduleError(
            f"schedule {text!r}: {spec.name} {value} is out of range {spec.low}-{spec.high}"
        )
    return value


def _cron_item(item: str, spec: _Field, text: str) -> str:
    """``item`` as every cron reads it: Vixie cron (Debian's) refuses a step after a single
    value (``5/10``, ``mon/2``), so that is written as the range it means (``5-59/10``)."""
    body, slash, step = item.partition("/")
    if not slash or body == "*" or "-" in body:
        return item
    return f"{_value(body.lower(), spec, text)}-{spec.high}/{step}"


def _local_instant(wall: datetime) -> datetime:
    """The instant of local wall-clock time ``wall``. A time the clocks passed twice (set back)
    is its first pass, so it runs once; a time they skipped (set forward) becomes the first
    minute after it that exists, as cron runs the jobs of a skipped hour right after the
    change."""
    while (instant := wall.astimezone()).replace(tzinfo=None) != wall:  # fold=0: first pass
        wall += timedelta(minutes=1)
    return instant


def _next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return datetime(year, month, 1)


def _calendar_list(values: frozenset[int], low: int, high: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return ",".join(f"{v:02d}" for v in sorted(values))
