"""``fogvault daemon``: every job with a schedule, run on time, in the foreground.

Guarantees:

* One job runs at a time, so the daemon never runs two jobs (let alone one job twice) at once;
  the per-job lock also keeps its runs from overlapping a run started by systemd, cron or by
  hand (that run of the daemon is skipped and logged).
* A job that fails, in any way, is logged and the daemon carries on.
* Schedules follow the wall clock: the daemon wakes at least once a second and compares times,
  so after the machine slept through a job's time the job runs once (not once per missed
  occurrence). At start, a job whose last logged run is older than its latest occurrence runs
  once, like systemd's ``Persistent=true``. An interval (``every 10s``) counts from the end of
  the previous run, or from now if the clock was set back since.
* :meth:`Daemon.stop` ends the loop: while idle, at once (``run`` returns 0); ``fogvault
  daemon`` maps SIGTERM and SIGINT to it, and during a job also interrupts the job the way
  Ctrl-C does (what was uploaded stays indexed; the run is logged as interrupted; exit 130).

Output: one line per event on stdout, ``YYYY-MM-DD HH:MM:SS JOB: message``, flushed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fogvault.errors import UsageError
from fogvault.jobs.config import Config
from fogvault.jobs.runner import RunOptions, error_message, run_job, summary_lines
from fogvault.jobs.schedule import Schedule, next_after_last
from fogvault.jobs.status import RunLog, run_log_path

MAX_WAIT_S = 1.0


def _now() -> datetime:
    return datetime.now().astimezone()


@dataclass(slots=True)
class Scheduler:
    """Pure bookkeeping of when each job is next due."""

    schedules: dict[str, Schedule]
    next_due: dict[str, datetime]
    latest: datetime | None = None  # the latest time asked about (see due)

    @classmethod
    def start(cls, schedules: dict[str, Schedule], last_runs: dict[str, datetime | None],
              now: datetime) -> Scheduler:
        """Next due times; a job last run before its latest occurrence is due at once."""
        due = {name: next_after_last(schedule, last_runs.get(name) or now, now)
               for name, schedule in schedules.items()}
        return cls(dict(schedules), due)

    def due(self, now: datetime) -> list[str]:
        """Jobs due at ``now``, the longest-waiting first. Once the clock was set back, a job
        is next due no later than its schedule's next time after ``now``: a last run in the
        future counts as now (as at start), or an interval job would wait out the jump."""
        if self.latest is not None and now < self.latest:
            for name, schedule in self.schedules.items():
                self.next_due[name] = min(self.next_due[name], schedule.next_after(now))
        self.latest = now if self.latest is None else max(self.latest, now)
        waiting = sorted(self.next_due.items(), key=lambda item: item[1])
        return [name for name, when in waiting if when <= now]

    def ran(self, name: str, now: datetime) -> None:
        """Record that ``name`` ran (finishing ``now``): missed occurrences are dropped."""
        self.next_due[name] = self.schedules[name].next_after(now)
        self.latest = now if self.latest is None else max(self.latest, now)  # for due()

    def seconds_to_wait(self, now: datetime) -> float:
        if not self.next_due:
            return MAX_WAIT_S
        soonest = min(self.next_due.values())
        return max(0.0, min(MAX_WAIT_S, (soonest - now).total_seconds()))


def print_line(text: str) -> None:
    print(text, flush=True)


class Daemon:
    def __init__(self, config: Config, options: RunOptions | None = None,
                 out: Callable[[str], None] = print_line,
                 clock: Callable[[], datetime] = _now) -> None:
        self.config = config
        self.options = options or RunOptions()
        self.out = out
        self.clock = clock
        self.busy = False  # a job is running (SIGTERM then interrupts it)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        scheduler = self._start()
        while not self._stop.is_set():
            for name in scheduler.due(self.clock()):
                if self._stop.is_set():
                    break
                self._run_one(name)
                scheduler.ran(name, self.clock())
                self.log(name, f"next run {scheduler.next_due[name]:%Y-%m-%d %H:%M:%S}")
            self._stop.wait(scheduler.seconds_to_wait(self.clock()))
        self.log("daemon", "stopped")
        return 0

    def _start(self) -> Scheduler:
        schedules = {name: job.schedule for name, job in self.config.jobs.items()
                     if job.schedule is not None}
        if not schedules:
            raise UsageError(f"no job in {self.config.path} has a schedule: add schedule = "
                             "\"daily\" (or another) to a job")
        log = RunLog(run_log_path(self.config))
        last = {name: _last_time(log, name) for name in schedules}
        scheduler = Scheduler.start(schedules, last, self.clock())
        self.log("daemon", f"started with {len(schedules)} job(s), config {self.config.path}")
        now = self.clock()
        for name, when in scheduler.next_due.items():
            due = "due now: missed at" if when <= now else "next run"
            self.log(name, f"{schedules[name].text}; {due} {when:%Y-%m-%d %H:%M:%S}")
        return scheduler

    def _run_one(self, name: str) -> None:
        self.log(name, "started")
        self.busy = True
        try:
            record = run_job(self.config, name, self.options)
        except KeyboardInterrupt:
            self.busy = False
            self.log(name, "interrupted")
            raise
        except Exception as exc:  # the daemon survives any failure of a job
            self.busy = False
            self.log(name, f"not run: {error_message(exc)}")
            return
        self.busy = False
        for line in summary_lines(record):
            self.log(name, line.strip())

    def log(self, name: str, message: str) -> None:
        self.out(f"{self.clock():%Y-%m-%d %H:%M:%S} {name}: {message}")


def _last_time(log: RunLog, name: str) -> datetime | None:
    record = log.last(name)
    if record is None:
        return None
    return record.finished or record.started
