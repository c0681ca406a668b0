"""Run records, the JSON-lines run log, job status, and Prometheus textfile metrics.

Guarantees:

* Every finished run of a job (not a ``--dry-run``, not a run refused because the job was
  already running) appends exactly one JSON object, on one line, to the run log:
  ``runs.jsonl`` in the platformdirs user state folder (``~/.local/state/fogvault``), or
  ``[monitoring] run_log``. The line is written with one ``O_APPEND`` write, so runs of
  different jobs never interleave inside a line; a short write (full disk) is reported, and a
  line torn by one (or by a crash) is ended before the next record, so reading, which skips
  lines that do not parse, still finds every later record.
  Past 10 MiB the log is renamed to ``runs.jsonl.1`` (one old generation is kept and read).
* The metrics file (``[monitoring] metrics_file``) is replaced atomically (a temporary file in
  the same folder, fsync, rename), so a node_exporter textfile collector never reads half a
  file. See docs/scheduling.md for the metric names.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from fogvault.errors import FogVaultError
from fogvault.jobs.config import Config
from fogvault.jobs.joblock import holder_of
from fogvault.jobs.schedule import CronSchedule, Schedule, next_after_last

ROTATE_BYTES = 10 * 1024 * 1024


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir("fogvault"))


def run_log_path(config: Config) -> Path:
    return config.monitoring.run_log or state_dir() / "runs.jsonl"


def lock_dir() -> Path:
    return state_dir() / "locks"


# ---- records ---------------------------------------------------------------------------------


@dataclass(slots=True)
class StepResult:
    """One step of a run. ``status``: done, failed, skipped, not due, would run, unavailable,
    incomplete."""

    status: str
    detail: str = ""
    at: str | None = None  # ISO time the step finished, when done

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status, "detail": self.detail}
        if self.at:
            doc["at"] = self.at
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StepResult:
        at = doc.get("at")
        if at is not None:
            _aware_time(at)  # checked: the schedules compare it with now
        return cls(str(doc.get("status", "")), str(doc.get("detail", "")), at)


@dataclass(slots=True)
class RunRecord:
    """One run of a job; ``result``: success, partial, failed or interrupted."""

    job: str
    started: datetime
    finished: datetime | None = None
    result: str = "running"
    exit_code: int = 0
    dry_run: bool = False
    snapshot: str | None = None
    #: the job's last snapshot, when nothing had changed since it and none was saved
    #: (``skip_if_unchanged``): a success as much as a snapshot saved
    unchanged_since: str | None = None
    bytes_added: int = 0
    files: int = 0
    errors: int = 0  # files that could not be read (targets behind are not counted here)
    steps: dict[str, StepResult] = field(default_factory=dict)
    targets_behind: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def backed_up(self) -> bool:
        """Whether the run's data is in a snapshot: one saved, or the last one unchanged."""
        return self.snapshot is not None or self.unchanged_since is not None

    @property
    def is_partial(self) -> bool:
        """Files could not be read, or targets are behind: a run that got through is partial."""
        return self.errors > 0 or bool(self.targets_behind)

    @property
    def duration_s(self) -> float:
        end = self.finished or self.started
        return round((end - self.started).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job, "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "duration_s": self.duration_s, "result": self.result, "exit_code": self.exit_code,
            "dry_run": self.dry_run, "snapshot": self.snapshot,
            "unchanged_since": self.unchanged_since, "bytes_added": self.bytes_added,
            "files": self.files, "errors": self.errors,
            "steps": {name: step.to_json() for name, step in self.steps.items()},
            "targets_behind": self.targets_behind, "messages": self.messages,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunRecord:
        finished = doc.get("finished")
        return cls(
            job=str(doc["job"]), started=_aware_time(doc["started"]),
            finished=_aware_time(finished) if finished else None,
            result=str(doc.get("result", "")), exit_code=int(doc.get("exit_code", 1)),
            dry_run=bool(doc.get("dry_run", False)), snapshot=doc.get("snapshot"),
            unchanged_since=doc.get("unchanged_since"),
            bytes_added=int(doc.get("bytes_added", 0)), files=int(doc.get("files", 0)),
            errors=int(doc.get("errors", 0)),
            steps={k: StepResult.from_json(v) for k, v in doc.get("steps", {}).items()},
            targets_behind=list(doc.get("targets_behind", [])),
            messages=list(doc.get("messages", [])), error=doc.get("error"),
        )


def _aware_time(text: str) -> datetime:
    """An ISO time with its UTC offset, as runs log them; ValueError for anything else (a time
    without an offset cannot be compared with now)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"a time without its UTC offset: {text!r}")
    return moment


# ---- the run log -----------------------------------------------------------------------------


class RunLogUnreadable(FogVaultError):
    """The run log is there but cannot be read (a file where a folder should be, no read
    permission, a folder where the log should be): exit 1 for ``status``, a note for a run."""


class RunLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: RunRecord) -> None:
        """Append ``record`` as one line; raises OSError if it was not written whole."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where the folder should be
            raise NotADirectoryError(errno.ENOTDIR, f"{self.path.parent} is not a folder"
                                     ) from None
        self._rotate_if_large()
        line = (json.dumps(record.to_json(), separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if not _ends_a_line(fd):  # a torn last line (full disk, crash): keep ours apart
                line = b"\n" + line
            written = os.write(fd, line)
        finally:
            os.close(fd)
        if written < len(line):
            raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes were written "
                                        "(is the file system full?)")

    def records(self, job: str | None = None) -> list[RunRecord]:
        """Every readable record (oldest first), of ``job`` only if given. A log that is
        missing has none; one that is there but cannot be read raises
        :class:`RunLogUnreadable`."""
        found: list[RunRecord] = []
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            try:
                found += _read_records(path)
            except OSError as exc:
                raise RunLogUnreadable(
                    f"cannot read the run log {self.path}: {exc.strerror or exc} "
                    "([monitoring] run_log in the config, or XDG_STATE_HOME, moves it)"
                ) from exc
        return [r for r in found if job is None or r.job == job]

    def last(self, job: str) -> RunRecord | None:
        records = self.records(job)
        return records[-1] if records else None

    def last_step_done(self, job: str, step: str) -> datetime | None:
        """When ``step`` (prune, check) last finished successfully for ``job``."""
        for record in reversed(self.records(job)):
            done = record.steps.get(step)
            if done is not None and done.status == "done" and done.at:
                return datetime.fromisoformat(done.at)
        return None

    def _rotate_if_large(self) -> None:
        try:
            if self.path.stat().st_size > ROTATE_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass


def _ends_a_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def _read_records(path: Path) -> list[RunRecord]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records: list[RunRecord] = []
    for line in lines:
        try:
            records.append(RunRecord.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return records


# ---- status ----------------------------------------------------------------------------------


#: How late a scheduled run may start before its job is overdue: one period of its schedule,
#: at least a minute and at most an hour (a timer's accuracy, a machine waking up).
MIN_GRACE = timedelta(minutes=1)
MAX_GRACE = timedelta(hours=1)


@dataclass(slots=True)
class JobStatus:
    job: str
    schedule: str | None
    last: RunRecord | None
    next_run: datetime | None
    targets_behind: list[str] = field(default_factory=list)
    #: what the run going on now wrote in the job's lock (pid, host, start); None if none runs
    running: str | None = None
    #: when a run was due that has not started (past its grace), if one was
    overdue_since: datetime | None = None

    def problems(self) -> list[str]:
        """What needs a look (``status --check``): no run yet, a last run that did not
        succeed, a run overdue."""
        last = self.last
        if last is None:
            return [] if self.running else ["has never run"]
        found = []
        if last.result != "success":
            error = f": {last.error}" if last.error else ""
            found.append(f"its last run, at {last.started:%Y-%m-%d %H:%M}, was "
                         f"{last.result} (exit {last.exit_code}){error}")
        if self.overdue_since is not None:
            found.append(f"overdue: a run was due at {self.overdue_since:%Y-%m-%d %H:%M} and "
                         "none has started since")
        return found

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "job": self.job, "schedule": self.schedule,
            "last_run": None if last is None else {
                "started": last.started.isoformat(), "result": last.result,
                "exit_code": last.exit_code, "duration_s": last.duration_s,
                "snapshot": last.snapshot, "unchanged_since": last.unchanged_since,
                "bytes_added": last.bytes_added, "error": last.error,
            },
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "targets_behind": self.targets_behind,
            "running": self.running,
            "overdue_since": self.overdue_since.isoformat() if self.overdue_since else None,
            "problems": self.problems(),
        }


def job_statuses(config: Config, log: RunLog, now: datetime) -> list[JobStatus]:
    records = log.records()
    statuses = []
    for name, job in config.jobs.items():
        mine = [r for r in records if r.job == name]
        last = mine[-1] if mine else None
        running = holder_of(lock_dir(), name)
        statuses.append(JobStatus(
            name, job.schedule.text if job.schedule else None, last,
            next_run(job.schedule, last, now),
            list(last.targets_behind) if last else [],
            running,
            None if running else overdue_since(job.schedule, last, now),
        ))
    return statuses


def next_run(schedule: Schedule | None, last: RunRecord | None, now: datetime
             ) -> datetime | None:
    """The next calendar occurrence; for an interval, the end of the last run plus it."""
    if schedule is None:
        return None
    if isinstance(schedule, CronSchedule):
        return schedule.next_after(now)
    if last is None:
        return None  # an interval starts counting when the daemon starts
    return next_after_last(schedule, last.finished or last.started, now)


def overdue_since(schedule: Schedule | None, last: RunRecord | None, now: datetime
                  ) -> datetime | None:
    """When the run after ``last`` was due, if that is longer ago than the schedule's grace
    (one period, from a minute to an hour); else None. Not known before a first run: when
    the schedule was installed is not recorded."""
    if schedule is None or last is None:
        return None
    # a calendar counts from the last run's start, an interval from its end
    since = last.started if isinstance(schedule, CronSchedule) else last.finished or last.started
    due = next_after_last(schedule, since, now)
    grace = min(max(schedule.next_after(due) - due, MIN_GRACE), MAX_GRACE)
    return due if now > due + grace else None


# ---- metrics ---------------------------------------------------------------------------------

_METRICS = (
    ("fogvault_job_last_run_timestamp_seconds", "gauge", "Start of the job's last run."),
    ("fogvault_job_last_success_timestamp_seconds", "gauge",
     "Start of the job's last run that saved a snapshot (or found nothing changed since the "
     "last one, with skip_if_unchanged)."),
    ("fogvault_job_last_duration_seconds", "gauge", "Duration of the job's last run."),
    ("fogvault_job_last_exit_code", "gauge", "Exit code of the job's last run (0 = success)."),
    ("fogvault_job_last_success", "gauge",
     "1 if the job's last run saved a snapshot or found nothing changed, else 0."),
    ("fogvault_job_last_bytes_added", "gauge", "Bytes the last run added to the repository."),
    ("fogvault_job_last_files", "gauge", "Files in the last run's snapshot."),
    ("fogvault_job_last_errors", "gauge", "Files the last run could not read."),
    ("fogvault_job_last_targets_behind", "gauge",
     "Targets still behind after the last run (they miss data; the next run repairs them)."),
)


def metrics_text(records: list[RunRecord]) -> str:
    """Prometheus text exposition of the last run (and last success) of every job."""
    last: dict[str, RunRecord] = {}
    success: dict[str, RunRecord] = {}
    for record in records:
        last[record.job] = record
        if record.backed_up:  # even if a later step (a hook, check) failed
            success[record.job] = record
    lines: list[str] = []
    for name, kind, help_text in _METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for job in sorted(last):
            value = _metric_value(name, last[job], success.get(job))
            if value is not None:
                lines.append(f'{name}{{job="{_label(job)}"}} {value}')
    return "\n".join(lines) + "\n"


def _metric_value(name: str, last: RunRecord, success: RunRecord | None) -> float | int | None:
    values: dict[str, float | int | None] = {
        "fogvault_job_last_run_timestamp_seconds": round(last.started.timestamp(), 3),
        "fogvault_job_last_success_timestamp_seconds":
            round(success.started.timestamp(), 3) if success else None,
        "fogvault_job_last_duration_seconds": last.duration_s,
        "fogvault_job_last_exit_code": last.exit_code,
        "fogvault_job_last_success": int(last.backed_up),
        "fogvault_job_last_bytes_added": last.bytes_added,
        "fogvault_job_last_files": last.files,
        "fogvault_job_last_errors": last.errors,
        "fogvault_job_last_targets_behind": len(last.targets_behind),
    }
    return values[name]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_atomically(path: Path, text: str | bytes) -> None:
    """Replace ``path`` with ``text`` (UTF-8 if a str): readers see the old file or the new
    one, never a mix. A symlink is followed (the file it names is replaced, not the link),
    and an existing file keeps its permissions (else 0644)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    path = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
