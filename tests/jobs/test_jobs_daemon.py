"""``fogvault daemon``: runs on schedule, one job at a time, survives failures, catches up once,
and stops cleanly on SIGTERM."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest
from polling import wait_until

from fogvault.jobs.daemon import Daemon, Scheduler
from fogvault.jobs.schedule import parse_schedule
from fogvault.jobs.status import RunLog, RunRecord, next_run


def _at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2024, 3, day, hour, minute).astimezone()


def test_a_missed_run_is_caught_up_once_after_sleep():
    schedules = {"nightly": parse_schedule("0 2 * * *"), "hourly": parse_schedule("hourly")}
    scheduler = Scheduler.start(schedules, {}, _at(1, 30))
    assert scheduler.next_due == {"nightly": _at(2), "hourly": _at(2)}
    assert scheduler.due(_at(1, 59)) == []
    # the machine sleeps from 01:59 to 05:10: each job is due once, not once per missed hour
    woke = _at(5, 10)
    assert sorted(scheduler.due(woke)) == ["hourly", "nightly"]
    for name in scheduler.due(woke):
        scheduler.ran(name, woke)
    assert scheduler.due(woke) == []
    assert scheduler.next_due == {"nightly": _at(2, day=2), "hourly": _at(6)}


def test_at_start_a_run_missed_while_down_is_due_at_once():
    schedules = {"nightly": parse_schedule("0 2 * * *"), "fresh": parse_schedule("0 2 * * *"),
                 "new": parse_schedule("0 2 * * *")}
    last = {"nightly": _at(2, 5) - timedelta(days=2), "fresh": _at(2, 5)}
    scheduler = Scheduler.start(schedules, last, _at(9))
    assert scheduler.due(_at(9)) == ["nightly"]  # fresh ran today; new never ran: tomorrow
    assert scheduler.next_due["new"] == _at(2, day=2)


def test_a_last_run_in_the_future_counts_as_now():
    """After the clock was set back, a run logged in the future: the daemon and status agree
    on the next run, counted from now, not from that run (which would be a year ahead)."""
    schedules = {"nightly": parse_schedule("0 2 * * *"), "every": parse_schedule("every 1h")}
    now, future = _at(9), _at(9) + timedelta(days=365)
    scheduler = Scheduler.start(schedules, dict.fromkeys(schedules, future), now)
    assert scheduler.next_due == {"nightly": _at(2, day=2), "every": _at(10)}
    last = RunRecord("every", future, future)
    assert next_run(schedules["every"], last, now) == scheduler.next_due["every"]


def test_after_the_clock_was_set_back_a_job_waits_no_longer_than_its_schedule():
    """An interval job waited out the whole jump (an hour for 'every 2s'); a cron job keeps its
    next time on the wall clock."""
    schedules = {"every": parse_schedule("every 2s"), "nightly": parse_schedule("0 2 * * *")}
    scheduler = Scheduler.start(schedules, {}, _at(9))
    assert scheduler.due(_at(9)) == []
    scheduler.ran("every", _at(9, 1))
    back = _at(8, 1)
    assert scheduler.due(back) == []
    assert scheduler.next_due == {"every": back + timedelta(seconds=2), "nightly": _at(2, day=2)}
    assert scheduler.due(back + timedelta(seconds=2)) == ["every"]


def test_a_clock_set_back_within_the_run_just_finished_is_seen_too():
    """An hourly job ran 10:00-10:30, then the clock went back to 10:10: it waited until
    11:30 (review)."""
    scheduler = Scheduler.start({"every": parse_schedule("every 1h")}, {}, _at(9))
    assert scheduler.due(_at(10)) == ["every"]
    scheduler.ran("every", _at(10, 30))
    assert scheduler.due(_at(10, 10)) == []
    assert scheduler.next_due["every"] == _at(11, 10)


def test_the_longest_waiting_job_goes_first():
    every = parse_schedule("every 1s")
    scheduler = Scheduler({"a": every, "b": every}, {"a": _at(3, 1), "b": _at(3, 0)})
    assert scheduler.due(_at(4)) == ["b", "a"]
    assert scheduler.seconds_to_wait(_at(2)) == 1.0 and scheduler.seconds_to_wait(_at(4)) == 0


def test_at_start_a_missed_run_is_logged_as_due_now(setup):
    """It was logged as 'next run' at a time already past."""
    setup.write('schedule = "0 2 * * *"\n')
    last = _at(2, 5) - timedelta(days=2)
    RunLog(setup.run_log).append(RunRecord("home", last, last, "success"))
    lines: list[str] = []
    Daemon(setup.load(), out=lines.append, clock=lambda: _at(9))._start()
    missed = _at(2) - timedelta(days=1)  # the first occurrence since the last run
    assert lines[1].endswith(f"home: 0 2 * * *; due now: missed at {missed:%Y-%m-%d %H:%M:%S}")


def test_daemon_survives_a_failing_job(setup):
    setup.write('schedule = "every 1s"\n',
                top='[jobs.broken]\nrepository = "local"\npaths = ["src"]\n'
                    'schedule = "every 1s"\n[jobs.broken.hooks]\nbefore = "exit 3"\n')
    config = setup.load()
    lines: list[str] = []
    daemon = Daemon(config, out=lines.append)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    log = RunLog(setup.run_log)
    try:
        wait_until(lambda: len(log.records("broken")) >= 2 and len(log.records("home")) >= 2,
                   "two runs of each job", 30)
    finally:
        daemon.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert {r.exit_code for r in log.records("broken")} == {20}
    assert {r.result for r in log.records("home")} == {"success"}
    assert any("broken: job broken: failed (exit 20)" in line for line in lines)
    assert lines[-1].endswith("daemon: stopped")


def test_daemon_process_runs_on_schedule_one_at_a_time_and_stops_on_sigterm(setup, cli_env):
    events = setup.root / "events"
    hooks = (f'[jobs.{{name}}.hooks]\nbefore = "echo start {{name}} >> {events}"\n'
             f'after = "echo end {{name}} >> {events}"\n')
    setup.write('schedule = "@every 1s"\n' + hooks.format(name="home"),
                top='[jobs.other]\nrepository = "local"\npaths = ["src/docs"]\n'
                    'schedule = "every 1s"\n' + hooks.format(name="other"))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "fogvault", "daemon", "--config", str(setup.config)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=setup.root,
    )
    log = RunLog(setup.run_log)
    try:
        wait_until(lambda: len(log.records("home")) >= 2 and len(log.records("other")) >= 2,
                   "two runs of each job", 40)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode in (0, 130), err.decode()
    assert out.decode().rstrip().splitlines()[-1].endswith(
        ("daemon: stopped", "daemon: stopped, a running job was interrupted"))

    # never two runs at once: every start is followed by its own end before the next start
    lines = events.read_text().splitlines()
    if lines and lines[-1].startswith("start"):
        lines.pop()  # SIGTERM interrupted that run
    pairs = list(zip(lines[::2], lines[1::2], strict=True))
    assert all(a.split()[1] == b.split()[1] and (a.split()[0], b.split()[0]) == ("start", "end")
               for a, b in pairs), lines
    records = sorted(log.records(), key=lambda r: r.started)
    for earlier, later in itertools.pairwise(records):
        assert earlier.finished is not None and earlier.finished <= later.started
    done = [r for r in records if r.result != "interrupted"]
    assert {r.result for r in done} == {"success"}, json.dumps([r.to_json() for r in done])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_an_idle_daemon_stops_cleanly_on_a_signal(setup, cli_env, signum):
    """No job running: the daemon stops at once with exit 0, and says no job was interrupted
    (SIGHUP went to the CLI's own handler, which reported an interrupted job and exit 130)."""
    setup.write('schedule = "every 300d"\n')
    daemon = subprocess.Popen(
        [sys.executable, "-m", "fogvault", "daemon", "--config", str(setup.config)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=setup.root,
    )
    try:
        assert daemon.stdout is not None
        started = daemon.stdout.readline().decode()
        assert " daemon: started with 1 job(s)" in started, started
        assert "next run" in daemon.stdout.readline().decode()  # idle until then
        daemon.send_signal(signum)
        out, err = daemon.communicate(timeout=30)
    finally:
        daemon.kill()
        daemon.wait()
    assert daemon.returncode == 0, err.decode()
    assert out.decode().rstrip().endswith("daemon: stopped"), out
