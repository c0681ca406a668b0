"""``fogvault run JOB``: run one job of the config file now (exit codes: docs/scheduling.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fogvault.cli.common import Printer, options
from fogvault.cli.jobs_common import ConfigOption, load, run_options
from fogvault.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def refuse_repository_options(ctx: typer.Context, command: str) -> None:
    """Common options a job cannot honour are usage errors (exit 2), never silently ignored:
    the job's repository, its password and min_targets come from the config file, and a job
    writes (backup, forget, prune), so it always locks the repository."""
    opts = options(ctx)
    where = "[repositories.NAME] of the config file"
    refused = [
        (bool(opts.repos), "-r/--repo", f"a job's targets are the targets of {where}"),
        (opts.password_file is not None or opts.password_command is not None,
         "--password-file/--password-command",
         f"a job's password comes from password_file, password_command or password_env of "
         f"{where}"),
        (opts.min_targets is not None, "--min-targets", f"set min_targets in {where}"),
        (opts.no_lock, "--no-lock", "a job writes to the repository (backup, forget, prune), "
                                    "so it always locks it"),
    ]
    for given, option, why in refused:
        if given:
            raise UsageError(f"{option} cannot be used with '{command}': {why}")


def run(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="The job's name ([jobs.NAME] in the config).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be done; change nothing.")
    ] = False,
    init: Annotated[
        bool, typer.Option("--init", help="Create the repository first if there is none.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Back up, forget by retention, prune and check when due; one summary, one exit code."""
    from fogvault.jobs.runner import run_job, summary_lines

    refuse_repository_options(ctx, "fogvault run")
    out = Printer.of(ctx)
    record = run_job(load(config), job, run_options(ctx, dry_run=dry_run, init=init))
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
