"""``fogvault status``: each job's last run, next run and targets behind, from the run log."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, log, refuse_options, table
from fogvault.cli.jobs_common import NO_REPOSITORY_REFUSES, ConfigOption, load
from fogvault.errors import FogVaultError
from fogvault.sizes import format_size

if TYPE_CHECKING:
    from fogvault.jobs.status import JobStatus, RunRecord


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if a job needs a look: it has never run, "
                                            "its last run did not succeed, or it is overdue.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Show each job's last run (time, result, duration, snapshot, bytes added) and next run
    (or that it is running, or overdue)."""
    from fogvault.jobs.status import RunLog, job_statuses, run_log_path

    refuse_options(ctx, NO_REPOSITORY_REFUSES)
    cfg = load(config)
    out = Printer.of(ctx)
    rows = job_statuses(cfg, RunLog(run_log_path(cfg)), datetime.now().astimezone())
    if out.json_mode:
        out.json([row.to_json() for row in rows])
    else:
        headers = ["Job", "Schedule", "Last run", "Result", "Duration", "Snapshot", "Added",
                   "Next run", "Behind"]
        out.result(table([_row(r) for r in rows], headers))
    if check:
        _check(rows)


def _check(rows: list[JobStatus]) -> None:
    needing = []
    for row in rows:
        if problems := row.problems():
            needing.append(row.job)
        for problem in problems:
            log.warning("job %s: %s", row.job, problem)
    if needing:
        raise FogVaultError(f"{len(needing)} of {len(rows)} jobs need a look: "
                            f"{', '.join(needing)}")


def _row(row: JobStatus) -> list[str]:
    last = row.last
    if row.running:
        nxt = "running now"
    elif row.overdue_since:
        nxt = f"overdue since {row.overdue_since:%Y-%m-%d %H:%M}"
    else:
        nxt = f"{row.next_run:%Y-%m-%d %H:%M}" if row.next_run else "-"
    behind = ", ".join(row.targets_behind) or "-"
    if last is None:
        return [row.job, row.schedule or "-", "never", "-", "-", "-", "-", nxt, behind]
    return [row.job, row.schedule or "-", f"{last.started:%Y-%m-%d %H:%M}",
            f"{last.result} ({last.exit_code})", f"{last.duration_s:.1f} s",
            _snapshot_shown(last), format_size(last.bytes_added), nxt, behind]


def _snapshot_shown(last: RunRecord) -> str:
    if last.unchanged_since:
        return f"{last.unchanged_since} (unchanged)"
    return last.snapshot or "-"
