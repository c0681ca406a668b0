"""``status``: a job running now, a job overdue (a scheduled run that never started), and
``--check`` for monitoring (exit 1 when a job needs a look)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from fogvault.jobs.joblock import JobLock, holder_of
from fogvault.jobs.schedule import parse_schedule
from fogvault.jobs.status import RunLog, RunRecord, lock_dir, overdue_since

NOW = datetime(2026, 11, 25, 12, 0).astimezone()


def _ran(ago: timedelta, took: timedelta = timedelta(minutes=2), result: str = "success",
         exit_code: int = 0, now: datetime = NOW) -> RunRecord:
    return RunRecord("home", now - ago, now - ago + took, result, exit_code)


@pytest.mark.parametrize(("schedule", "ago", "took", "overdue"), [
    # a calendar counts from the last run's start: due at the next occurrence after it
    ("daily", timedelta(hours=12), timedelta(hours=2), None),  # 00:00 today: due tomorrow
    ("daily", timedelta(hours=13), timedelta(hours=2), "2026-11-25 00:00"),  # 23:00 yesterday
    ("daily", timedelta(days=1, hours=12), timedelta(minutes=2), "2026-11-25 00:00"),
    ("30 11 * * *", timedelta(hours=24, minutes=20), timedelta(minutes=2), None),  # 11:30+1h
    ("30 10 * * *", timedelta(hours=25, minutes=30), timedelta(minutes=2), "2026-11-25 10:30"),
    # an interval counts from the last run's end, with one period of grace (a minute at least)
    ("every 10m", timedelta(minutes=21), timedelta(minutes=2), None),
    ("every 10m", timedelta(minutes=23), timedelta(minutes=2), "2026-11-25 11:49"),
    ("every 10s", timedelta(minutes=1), timedelta(seconds=1), None),
    ("every 10s", timedelta(minutes=2), timedelta(seconds=1), "2026-11-25 11:58"),
    ("every 7d", timedelta(days=7, minutes=30), timedelta(minutes=2), None),  # an hour at most
    ("every 7d", timedelta(days=7, hours=2), timedelta(minutes=2), "2026-11-25 10:02"),
])
def test_a_job_is_overdue_once_its_next_run_is_later_than_its_grace(schedule, ago, took,
                                                                     overdue):
    found = overdue_since(parse_schedule(schedule), _ran(ago, took), NOW)
    assert (found and f"{found:%Y-%m-%d %H:%M}") == overdue


def test_overdue_is_not_known_before_a_first_run_or_without_a_schedule():
    assert overdue_since(parse_schedule("every 1m"), None, NOW) is None
    assert overdue_since(None, _ran(timedelta(days=300)), NOW) is None


def test_the_holder_of_a_job_is_read_without_taking_its_lock():
    assert holder_of(lock_dir(), "home") is None  # no lock file yet
    with JobLock(lock_dir(), "home"):
        holder = holder_of(lock_dir(), "home")
        assert holder is not None and holder.startswith("pid ")
        assert holder_of(lock_dir(), "other") is None
    assert holder_of(lock_dir(), "home") is None


def test_a_run_killed_leaves_its_line_but_holds_nothing(tmp_path):
    """kill -9 leaves the pid line in the file (the kernel drops the lock): not running."""
    script = ("import os, sys; from pathlib import Path; from fogvault.jobs.joblock import "
              f"JobLock\nJobLock(Path({str(lock_dir())!r}), 'home').__enter__()\n"
              "print('locked', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert holder_of(lock_dir(), "home").startswith(f"pid {holder.pid} ")
    finally:
        holder.kill()
        holder.wait()
    assert (lock_dir() / "home.lock").read_text().startswith(f"pid {holder.pid} ")
    assert holder_of(lock_dir(), "home") is None


def _status(jobs_cli, setup, *args: str) -> subprocess.CompletedProcess:
    return jobs_cli("status", "--config", str(setup.config), *args)


def test_check_passes_when_every_job_last_succeeded_on_time(setup, jobs_cli):
    setup.write('schedule = "daily"\n')
    assert jobs_cli("run", "home", "--config", str(setup.config)).returncode == 0
    done = _status(jobs_cli, setup, "--check")
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    (row,) = json.loads(_status(jobs_cli, setup, "--json").stdout)
    assert (row["running"], row["overdue_since"], row["problems"]) == (None, None, [])


def test_check_names_each_job_needing_a_look(setup, jobs_cli):
    setup.write('schedule = "daily"\n', top='[jobs.photos]\nrepository = "local"\n'
                'paths = ["src"]\nschedule = "every 1h"\n[jobs.docs]\nrepository = "local"\n'
                'paths = ["src"]\n')
    now = datetime.now().astimezone()
    log = RunLog(setup.run_log)
    log.append(RunRecord("home", now - timedelta(days=3), now - timedelta(days=3), "success"))
    failed = RunRecord("photos", now - timedelta(minutes=5), now, "failed", 10,
                       error="no repository")
    log.append(failed)
    done = _status(jobs_cli, setup, "--check")
    assert done.returncode == 1
    due = (now - timedelta(days=3)).replace(hour=0, minute=0) + timedelta(days=1)
    assert done.stderr.decode().splitlines() == [
        f"warning: job home: overdue: a run was due at {due:%Y-%m-%d %H:%M} and none has "
        "started since",
        f"warning: job photos: its last run, at {failed.started:%Y-%m-%d %H:%M}, was failed "
        "(exit 10): no repository",
        "warning: job docs: has never run",
        "error: 3 of 3 jobs need a look: home, photos, docs"]
    assert f"overdue since {due:%Y-%m-%d %H:%M}" in done.stdout.decode()
    assert _status(jobs_cli, setup).returncode == 0  # without --check: a listing


def test_a_running_job_is_shown_running_not_overdue(setup, jobs_cli):
    setup.write('schedule = "every 1m"\n')
    now = datetime.now().astimezone()
    RunLog(setup.run_log).append(
        RunRecord("home", now - timedelta(hours=1), now - timedelta(hours=1), "success"))
    assert b"overdue since" in _status(jobs_cli, setup).stdout
    with JobLock(lock_dir(), "home"):
        table = _status(jobs_cli, setup).stdout.decode()
        assert "running now" in table and "overdue" not in table
        (row,) = json.loads(_status(jobs_cli, setup, "--json").stdout)
        assert row["running"].startswith("pid ") and row["overdue_since"] is None
        assert _status(jobs_cli, setup, "--check").returncode == 0
