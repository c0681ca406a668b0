"""What a system scheduler runs for a job, and which scheduler to install into.

A scheduled run is ``fogvault run JOB --config FILE`` with the absolute path of the config file
that was used to install it, so the run does not depend on the scheduler's environment. The
program is the ``fogvault`` found on ``PATH``, else ``python -m fogvault`` with this Python.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from fogvault.errors import UsageError

BACKENDS = ("systemd", "cron")


@dataclass(frozen=True, slots=True)
class InstalledSchedule:
    job: str
    backend: str
    schedule: str
    location: str


def default_program() -> list[str]:
    found = shutil.which("fogvault")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "fogvault"]


def run_argv(program: list[str], job: str, config_path: Path) -> list[str]:
    """The scheduled command. A run that finds the job still running (a long run, or one
    started by hand) is skipped with exit 0: cron would mail exit 11, and systemd would mark
    the unit failed, where nothing went wrong. A path with a line break is refused: a
    crontab line and a unit's ExecStart= end there."""
    argv = [*program, "run", job, "--skip-if-running", "--config", str(config_path)]
    for arg in argv:
        if "\n" in arg or "\r" in arg:
            raise UsageError(f"cannot schedule {arg!r}: a crontab line or a systemd unit cannot"
                             " hold its line break; move or rename it")
    return argv


def default_backend() -> str:
    """systemd when this machine runs it (and has systemctl), else cron."""
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        return "systemd"
    return "cron"
