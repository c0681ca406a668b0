"""crontab entries for jobs: one marker comment and one line per job.

An entry looks like::

    # fogvault job: home (daily); managed by 'fogvault schedule'
    0 0 * * * /usr/bin/fogvault run home --skip-if-running --config /etc/fv.toml -q

``-q`` keeps a successful run silent, so cron mails only errors; ``--skip-if-running`` (see
:func:`fogvault.jobs.install.run_argv`) keeps a run that finds the job still running silent
too. The crontab is read and written with ``crontab -l`` / ``crontab -``; with
``FOGVAULT_CRONTAB_FILE`` set, that file is read and written instead (tests, and systems where
/etc/cron.d files are managed by hand). Guarantees: :func:`render` is a pure function
(golden-file tested); installing replaces the job's previous entry; only lines under a
``# fogvault job:`` marker are ever changed or removed, and every other line is written back
byte for byte, whatever its encoding (the crontab is handled as UTF-8 with
``surrogateescape``: a Latin-1 comment survives). A crontab that cannot be read or written is
an error (exit 1) that names it and says why.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fogvault.errors import FogVaultError, UsageError
from fogvault.jobs.config import JobConfig
from fogvault.jobs.install import InstalledSchedule
from fogvault.jobs.status import write_atomically

MARKER = "# fogvault job: "
ENV_CRONTAB_FILE = "FOGVAULT_CRONTAB_FILE"


def render(job: JobConfig, argv: list[str]) -> str:
    if job.schedule is None:
        raise UsageError(f"job {job.name} has no schedule: add schedule = \"daily\" (or another) "
                         f"to [jobs.{job.name}]")
    command = " ".join(shlex.quote(a) for a in [*argv, "-q"]).replace("%", "\\%")
    return (f"{MARKER}{job.name} ({job.schedule.text}); managed by 'fogvault schedule'\n"
            f"{job.schedule.cron()} {command}\n")


@dataclass(slots=True)
class Crontab:
    """The user's crontab, or the file named by ``FOGVAULT_CRONTAB_FILE``."""

    file: Path | None = None

    @classmethod
    def from_env(cls) -> Crontab:
        path = os.environ.get(ENV_CRONTAB_FILE)
        return cls(Path(path) if path else None)

    @property
    def location(self) -> str:
        return str(self.file) if self.file else "crontab"

    def read(self) -> str:
        """The crontab as text; bytes that are not UTF-8 are kept (``surrogateescape``)."""
        if self.file is not None:
            try:
                return _decode(self.file.read_bytes())
            except FileNotFoundError:
                return ""
            except OSError as exc:
                raise FogVaultError(f"cannot read the crontab file {self.file} "
                                    f"({ENV_CRONTAB_FILE}): {exc.strerror or exc}") from exc
        done = _crontab(["-l"], None)
        if done.returncode != 0:
            if b"no crontab" in done.stderr.lower():
                return ""
            raise FogVaultError(f"crontab -l failed: {_message(done)}")
        return _decode(done.stdout)

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")  # foreign bytes as they were read
        if self.file is not None:
            try:
                write_atomically(self.file, data)
            except OSError as exc:
                raise FogVaultError(f"cannot write the crontab file {self.file} "
                                    f"({ENV_CRONTAB_FILE}): {exc.strerror or exc}") from exc
            return
        done = _crontab(["-"], data)
        if done.returncode != 0:
            raise FogVaultError(f"crontab - failed: {_message(done)}")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _message(done: subprocess.CompletedProcess[bytes]) -> str:
    text = done.stderr.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else f"exit status {done.returncode}"


def _crontab(args: list[str], data: bytes | None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["crontab", *args], input=data, capture_output=True, timeout=60,
                              check=False)
    except OSError as exc:
        raise FogVaultError(f"cannot run crontab ({exc.strerror}); is cron installed? "
                            f"(or set {ENV_CRONTAB_FILE})") from exc
    except subprocess.TimeoutExpired as exc:
        raise FogVaultError(f"crontab {' '.join(args)} did not finish within 60 s") from exc


def install(job: str, entry: str, crontab: Crontab) -> None:
    """Add the job's entry, replacing an earlier one."""
    kept = _without(crontab.read(), job)
    if kept and not kept.endswith("\n"):
        kept += "\n"
    crontab.write(kept + entry)


def remove(job: str, crontab: Crontab) -> bool:
    text = crontab.read()
    kept = _without(text, job)
    if kept == text:
        return False
    crontab.write(kept)
    return True


def installed(crontab: Crontab) -> list[InstalledSchedule]:
    lines = crontab.read().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith(MARKER):
            job = line.removeprefix(MARKER).split(" ", 1)[0]
            entry = lines[i + 1] if i + 1 < len(lines) else ""
            found.append(InstalledSchedule(job, "cron", " ".join(entry.split()[:5]),
                                           crontab.location))
    return found


def _without(text: str, job: str) -> str:
    """``text`` without the job's marker line and the entry line after it (if the line after
    it is a comment or blank, the entry was deleted by hand: that line stays)."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    skip = False
    for line in lines:
        if skip:
            skip = False
            if line.strip() and not line.startswith("#"):
                continue
        if line.startswith(MARKER) and line.removeprefix(MARKER).split(" ", 1)[0] == job:
            skip = True
            continue
        kept.append(line)
    return "".join(kept)
