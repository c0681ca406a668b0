"""systemd user units for a job: ``fogvault-JOB.service`` (oneshot) and ``fogvault-JOB.timer``.

The timer has one ``OnCalendar=`` per calendar expression of the job's schedule (and
``AccuracySec=1s`` for an interval of seconds) and ``Persistent=true``, so a run missed while
the machine was off or asleep happens once at the next boot or wake-up. Units go to
``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``). After writing or before
deleting them, ``systemctl --user`` is called (daemon-reload, enable/disable --now);
``FOGVAULT_SYSTEMCTL`` names another command, and an empty value skips it (the commands to run
are then returned as notes). Guarantees: :func:`render` is a pure function of the job and the
command (golden-file tested); files are written atomically; only files named
``fogvault-*.service``/``.timer`` are ever touched.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from fogvault.errors import FogVaultError, UsageError
from fogvault.jobs.config import JobConfig
from fogvault.jobs.install import InstalledSchedule
from fogvault.jobs.schedule import IntervalSchedule, Schedule
from fogvault.jobs.status import write_atomically

PREFIX = "fogvault-"
ENV_SYSTEMCTL = "FOGVAULT_SYSTEMCTL"
_NEEDS_QUOTES = re.compile(r"""[\s"'\\;]""")


@dataclass(frozen=True, slots=True)
class Units:
    job: str
    service: str
    timer: str

    @property
    def service_name(self) -> str:
        return f"{PREFIX}{self.job}.service"

    @property
    def timer_name(self) -> str:
        return f"{PREFIX}{self.job}.timer"


def unit_dir() -> Path:
    return Path(platformdirs.user_config_dir()) / "systemd" / "user"


def render(job: JobConfig, argv: list[str]) -> Units:
    if job.schedule is None:
        raise UsageError(f"job {job.name} has no schedule: add schedule = \"daily\" (or another) "
                         f"to [jobs.{job.name}]")
    header = (f"# Written by 'fogvault schedule install {job.name}'; "
              f"remove it with 'fogvault schedule remove {job.name}'.\n")
    service = (f"{header}[Unit]\nDescription=FogVault backup job {job.name}\n\n"
               "[Service]\nType=oneshot\n"
               f"ExecStart={' '.join(_quote(a) for a in argv)}\n"
               "Nice=10\nIOSchedulingClass=idle\n")
    calendars = "".join(f"OnCalendar={c}\n" for c in job.schedule.oncalendar())
    # systemd fires a timer anywhere in a window of AccuracySec= (1 minute by default) after
    # its time, so runs every few seconds would merge into one a minute
    accuracy = "AccuracySec=1s\n" if _below_a_minute(job.schedule) else ""
    timer = (f"{header}[Unit]\nDescription=Schedule of FogVault backup job {job.name} "
             f"({_escape(job.schedule.text)})\n\n"
             f"[Timer]\n{calendars}{accuracy}Persistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return Units(job.name, service, timer)


def _below_a_minute(schedule: Schedule) -> bool:
    return isinstance(schedule, IntervalSchedule) and schedule.seconds < 60


def _escape(text: str) -> str:
    return text.replace("%", "%%").replace("\\", "\\\\")


def _quote(arg: str) -> str:
    """One ExecStart argument: specifiers (%) and variables ($) escaped, quoted if needed."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def install(units: Units, directory: Path) -> list[str]:
    """Write the units and enable the timer; returns notes for the user."""
    base = _systemctl_command()  # a bad FOGVAULT_SYSTEMCTL is refused before anything is written
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in ((units.service_name, units.service), (units.timer_name, units.timer)):
            write_atomically(directory / name, text)
    except OSError as exc:
        raise FogVaultError(f"cannot write the units of job {units.job} in {directory}: "
                            f"{exc.strerror or exc}") from exc
    return _systemctl(base, [["daemon-reload"], ["enable", "--now", units.timer_name]])


def remove(job: str, directory: Path) -> list[str] | None:
    """Disable and delete the job's units; None if there were none."""
    files = [directory / f"{PREFIX}{job}.{kind}" for kind in ("timer", "service")]
    if not any(f.exists() for f in files):
        return None
    base = _systemctl_command()
    notes = _systemctl(base, [["disable", "--now", f"{PREFIX}{job}.timer"]])
    for path in files:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise FogVaultError(f"cannot delete {path}: {exc.strerror or exc}") from exc
    return notes + _systemctl(base, [["daemon-reload"]])


def installed(directory: Path) -> list[InstalledSchedule]:
    found = []
    for path in sorted(directory.glob(f"{PREFIX}*.timer")):
        job = path.name.removeprefix(PREFIX).removesuffix(".timer")
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:  # listed all the same: it is there
            found.append(InstalledSchedule(job, "systemd",
                                           f"(unreadable: {exc.strerror or exc})", str(path)))
            continue
        calendars = [ln.split("=", 1)[1] for ln in lines if ln.startswith("OnCalendar=")]
        found.append(InstalledSchedule(job, "systemd", "; ".join(calendars), str(path)))
    return found


def _systemctl(base: list[str] | None, commands: list[list[str]]) -> list[str]:
    """Run ``systemctl --user`` commands; notes say what to run by hand when it cannot."""
    if base is None:
        return [f"run: systemctl --user {shlex.join(c)}" for c in commands]
    for command in commands:
        argv = [*base, "--user", *command]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FogVaultError(f"{shlex.join(argv)} failed to run: {exc}") from exc
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise FogVaultError(f"{shlex.join(argv)} exited with status {done.returncode}: "
                                f"{reason}")
    return []


def _systemctl_command() -> list[str] | None:
    configured = os.environ.get(ENV_SYSTEMCTL)
    if configured is not None:
        try:
            return shlex.split(configured) or None
        except ValueError as exc:  # an unterminated quote or escape
            raise UsageError(f"{ENV_SYSTEMCTL} cannot be split into words: {exc}") from exc
    return ["systemctl"] if shutil.which("systemctl") else None
