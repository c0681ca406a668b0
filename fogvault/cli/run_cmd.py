"""``fogvault run JOB``: run one job of the config file now (exit codes: docs/scheduling.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fogvault.cli.common import Printer, refuse_options
from fogvault.cli.jobs_common import JOB_REFUSES, ConfigOption, load, run_options


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="The job's name ([jobs.NAME] in the config).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be done; change nothing.")
    ] = False,
    init: Annotated[
        bool, typer.Option("--init", help="Create the repository first if there is none.")
    ] = False,
    skip_if_running: Annotated[
        bool, typer.Option("--skip-if-running",
                           help="If the job is running already, skip this run with exit 0, as "
                                "a systemd timer does (cron entries use this).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Back up, forget by retention, prune and check when due; one summary, one exit code."""
    from fogvault.jobs.joblock import JobRunning
    from fogvault.jobs.runner import run_job, summary_lines

    refuse_options(ctx, JOB_REFUSES)
    out = Printer.of(ctx)
    try:
        record = run_job(load(config), job, run_options(ctx, dry_run=dry_run, init=init))
    except JobRunning as exc:
        if not skip_if_running:
            raise
        if out.json_mode:
            out.json({"job": job, "skipped": str(exc)})
        out.line(str(exc))  # not under -q: cron mails any output
        return
    if out.json_mode:
        out.json(record.to_json())
    elif record.exit_code == 0:
        for line in summary_lines(record):
            out.line(line)
        if out.opts.quiet:  # a note (a run log or ping that failed) is news even under -q
            for message in record.messages:
                print(f"note: {message}", file=sys.stderr)
    else:  # a failed run speaks even with -q (cron mails it)
        print("\n".join(summary_lines(record)), file=sys.stderr)
    if record.exit_code:
        raise typer.Exit(record.exit_code)
