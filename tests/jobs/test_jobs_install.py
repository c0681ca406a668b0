"""``schedule install|list|remove``: golden systemd units and crontab entries, checked by
systemd-analyze where it exists; crontab changes go to a temporary file, never the user's."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fogvault.errors import UsageError
from fogvault.jobs import cron, systemd
from fogvault.jobs.config import parse_config
from fogvault.jobs.install import run_argv
from fogvault.jobs.schedule import ScheduleError, parse_schedule

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("FOGVAULT_UPDATE_GOLDEN") == "1"  # read before fixtures clear it
PROGRAM = ["/usr/bin/fogvault"]
CONFIG_FILE = Path("/home/alice/.config/fogvault/config.toml")
JOBS = """\
[repositories.usb]
targets = ["/mnt/usb/fogvault"]
password_file = "/home/alice/.config/fogvault/password"

[jobs.home]
repository = "usb"
paths = ["/home/alice"]
schedule = "30 2 * * *"

[jobs.photos]
repository = "usb"
paths = ["/home/alice/Pictures"]
schedule = "0 3 1 * sun"

[jobs.often]
repository = "usb"
paths = ["/srv"]
schedule = "every 15m"

[jobs.manual]
repository = "usb"
paths = ["/srv"]
"""


@pytest.fixture
def jobs():
    return parse_config(JOBS, CONFIG_FILE).jobs


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (FOGVAULT_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("job", ["home", "photos", "often"])
def test_systemd_units_match_golden_files(jobs, job):
    units = systemd.render(jobs[job], run_argv(PROGRAM, job, CONFIG_FILE))
    _golden(units.service_name, units.service)
    _golden(units.timer_name, units.timer)


def test_crontab_entries_match_golden_file(jobs):
    text = "".join(cron.render(jobs[job], run_argv(PROGRAM, job, CONFIG_FILE))
                   for job in ("home", "photos", "often"))
    _golden("crontab.txt", text)


def test_unschedulable_jobs_are_refused(jobs):
    with pytest.raises(UsageError, match="job manual has no schedule"):
        systemd.render(jobs["manual"], PROGRAM)
    jobs["often"].schedule = parse_schedule("every 45s")
    with pytest.raises(ScheduleError, match="cannot be written as a crontab entry"):
        cron.render(jobs["often"], PROGRAM)


def test_a_config_path_with_a_line_break_is_refused():
    """It would split the crontab line and ExecStart= (cron ran half a command)."""
    with pytest.raises(UsageError, match="cannot hold its line break"):
        run_argv(PROGRAM, "home", Path("/home/alice/odd\nname/config.toml"))


def test_removing_a_job_whose_entry_line_was_deleted_by_hand_keeps_the_next_job():
    """Only the marker goes: the next job's marker, which followed it, was removed with it,
    leaving that job's entry running unmanaged."""
    text = ("# fogvault job: home (daily); managed by 'fogvault schedule'\n"
            "# fogvault job: photos (daily); managed by 'fogvault schedule'\n"
            "0 0 * * * /usr/bin/fogvault run photos -q\n")
    assert cron._without(text, "home") == text.split("\n", 1)[1]


def test_a_timer_every_few_seconds_fires_to_the_second(jobs):
    """systemd's default AccuracySec= is a minute: 'every 10s' would run once a minute."""
    jobs["often"].schedule = parse_schedule("every 10s")
    timer = systemd.render(jobs["often"], PROGRAM).timer
    assert "OnCalendar=*-*-* *:*:00/10\nAccuracySec=1s\nPersistent=true\n" in timer
    jobs["often"].schedule = parse_schedule("every 1m")  # minutes keep the default
    assert "AccuracySec" not in systemd.render(jobs["often"], PROGRAM).timer


def test_systemd_analyze_accepts_the_units(jobs, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: golden files checked, units not verified")
    names = []
    jobs["seconds"] = dataclasses.replace(jobs["often"], name="seconds",
                                          schedule=parse_schedule("every 10s"))
    for job in ("home", "photos", "often", "seconds"):
        # a program that exists, with a space and a % in the config path to exercise quoting
        argv = run_argv([sys.executable, "-m", "fogvault"], job, tmp_path / "my 100% config.toml")
        units = systemd.render(jobs[job], argv)
        for name, text in ((units.service_name, units.service), (units.timer_name, units.timer)):
            (tmp_path / name).write_text(text)
            names.append(str(tmp_path / name))
    done = subprocess.run([analyze, "verify", *names], capture_output=True, text=True,
                          check=False)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "fogvault-" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr
    for job in ("home", "photos", "often", "seconds"):
        for calendar in jobs[job].schedule.oncalendar():
            checked = subprocess.run([analyze, "calendar", calendar], capture_output=True,
                                     text=True, check=False)
            assert checked.returncode == 0, checked.stderr


def test_crontab_install_list_remove_in_a_temporary_file(setup, jobs_cli, tmp_path):
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=alice\n0 5 * * * /usr/bin/true\n")
    setup.write('schedule = "30 2 * * *"\n')
    args = ("--config", str(setup.config))
    printed = jobs_cli("schedule", "install", "home", "--backend", "cron", "--print", *args)
    assert printed.returncode == 0, printed.stderr
    assert crontab.read_text() == "MAILTO=alice\n0 5 * * * /usr/bin/true\n"  # --print: no write
    for _ in range(2):  # installing twice leaves one entry
        done = jobs_cli("schedule", "install", "home", "--backend", "cron", *args)
        assert done.returncode == 0, done.stderr
    text = crontab.read_text()
    assert text == "MAILTO=alice\n0 5 * * * /usr/bin/true\n" + printed.stdout.decode()
    entry = text.splitlines()[-1]
    assert entry.startswith("30 2 * * * ")
    assert f"run home --skip-if-running --config {setup.config} -q" in entry
    listed = jobs_cli("schedule", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert b'"backend": "cron"' in listed.stdout and b'"schedule": "30 2 * * *"' in listed.stdout
    removed = jobs_cli("schedule", "remove", "home", "--backend", "cron")
    assert removed.returncode == 0, removed.stderr
    assert crontab.read_text() == "MAILTO=alice\n0 5 * * * /usr/bin/true\n"
    again = jobs_cli("schedule", "remove", "home")
    assert again.returncode == 1
    assert "no schedule of job home is installed" in again.stderr.decode()


def test_a_crontab_file_behind_a_symlink_is_written_through_it(setup, jobs_cli, tmp_path):
    """The link was replaced by a file of its own (mode 0644), and the file it named, the one
    cron reads, was left unchanged."""
    real = tmp_path / "cron.d" / "fogvault"
    real.parent.mkdir()
    real.write_text("MAILTO=alice\n")
    real.chmod(0o600)
    (tmp_path / "crontab").symlink_to(real)
    setup.write('schedule = "30 2 * * *"\n')
    done = jobs_cli("schedule", "install", "home", "--backend", "cron",
                    "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "crontab").is_symlink()
    assert "run home" in real.read_text() and real.stat().st_mode & 0o777 == 0o600


def test_systemd_install_list_remove(setup, jobs_cli, tmp_path):
    setup.write('schedule = "daily"\n')
    unit_dir = tmp_path / "xdg-config" / "systemd" / "user"
    done = jobs_cli("schedule", "install", "home", "--backend", "systemd",
                    "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "run: systemctl --user enable --now fogvault-home.timer" in out  # not called
    timer = (unit_dir / "fogvault-home.timer").read_text()
    assert "OnCalendar=daily\nPersistent=true\n" in timer
    service = (unit_dir / "fogvault-home.service").read_text()
    assert f"run home --skip-if-running --config {setup.config}\n" in service
    listed = jobs_cli("schedule", "list")
    assert b"home  systemd  daily" in listed.stdout
    removed = jobs_cli("schedule", "remove", "home", "--backend", "systemd")
    assert removed.returncode == 0, removed.stderr
    assert not list(unit_dir.iterdir())


def test_schedule_install_of_an_interval_the_timer_cannot_express(setup, jobs_cli):
    setup.write('schedule = "every 7m"\n')
    done = jobs_cli("schedule", "install", "home", "--backend", "systemd", "--print",
                    "--config", str(setup.config))
    assert done.returncode == 2
    assert "of whole minutes dividing an hour, or of whole hours" in done.stderr.decode()
