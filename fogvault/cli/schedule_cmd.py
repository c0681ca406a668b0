"""``fogvault schedule install|list|remove``: jobs as systemd user timers or crontab entries."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, refuse_options, table
from fogvault.cli.jobs_common import NO_REPOSITORY_REFUSES, ConfigOption, load
from fogvault.errors import FogVaultError, UsageError

if TYPE_CHECKING:
    from fogvault.jobs import systemd
    from fogvault.jobs.install import InstalledSchedule

schedule_app = typer.Typer(help="Run jobs from systemd timers or cron.", no_args_is_help=True)
BackendOption = Annotated[
    str | None,
    typer.Option("--backend", help="systemd or cron (default: systemd where it runs, else "
                 "cron)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")


@schedule_app.command("install")
def install(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="The job to schedule.")],
    backend: BackendOption = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Show what would be written; write nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write a systemd user service + timer, or a crontab entry, that runs the job."""
    from fogvault.jobs import cron, systemd
    from fogvault.jobs.install import default_program, run_argv

    refuse_options(ctx, NO_REPOSITORY_REFUSES)
    cfg = load(config)
    chosen = _backend(backend)
    argv = run_argv(default_program(), job, cfg.path)
    out = Printer.of(ctx)
    if chosen == "systemd":
        _install_systemd(out, systemd.render(cfg.job(job), argv), print_only)
    else:
        _install_cron(out, job, cron.render(cfg.job(job), argv), print_only)


def _install_systemd(out: Printer, units: systemd.Units, print_only: bool) -> None:
    from fogvault.jobs import systemd

    directory = systemd.unit_dir()
    if print_only:
        print(f"# {directory / units.service_name}\n{units.service}\n"
              f"# {directory / units.timer_name}\n{units.timer}", end="")
        return
    notes = systemd.install(units, directory)
    out.line(f"installed {units.service_name} and {units.timer_name} in {directory}")
    for note in notes:
        out.line(note)


def _install_cron(out: Printer, job: str, entry: str, print_only: bool) -> None:
    if print_only:
        print(entry, end="")
        return
    from fogvault.jobs import cron

    crontab = cron.Crontab.from_env()
    cron.install(job, entry, crontab)
    out.line(f"installed the crontab entry of job {job} ({crontab.location})")


@schedule_app.command("list")
def list_schedules(ctx: typer.Context) -> None:
    """List the jobs installed in systemd and cron by 'schedule install'."""
    refuse_options(ctx, NO_REPOSITORY_REFUSES)
    out = Printer.of(ctx)
    found = _installed()
    if out.json_mode:
        out.json([{"job": s.job, "backend": s.backend, "schedule": s.schedule,
                   "location": s.location} for s in found])
        return
    rows = [[s.job, s.backend, s.schedule, s.location] for s in found]
    if rows:
        out.result(table(rows, ["Job", "Backend", "Schedule", "Location"]))
    else:
        out.line("no scheduled jobs")


@schedule_app.command("remove")
def remove(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="The job to unschedule.")],
    backend: BackendOption = None,
) -> None:
    """Remove the job's timer and service, and its crontab entry."""
    from fogvault.jobs import cron, systemd

    refuse_options(ctx, NO_REPOSITORY_REFUSES)
    out = Printer.of(ctx)
    if backend is not None:
        _backend(backend)
    removed = False
    if backend in (None, "systemd"):
        notes = systemd.remove(job, systemd.unit_dir())
        if notes is not None:
            removed = True
            out.line(f"removed the systemd units of job {job}")
            for note in notes:
                out.line(note)
    if backend in (None, "cron") and _cron_available():
        crontab = cron.Crontab.from_env()
        if cron.remove(job, crontab):
            removed = True
            out.line(f"removed the crontab entry of job {job} ({crontab.location})")
    if not removed:
        raise FogVaultError(f"no schedule of job {job} is installed (see 'fogvault schedule "
                            "list')")


def _backend(value: str | None) -> str:
    from fogvault.jobs.install import BACKENDS, default_backend

    if value is None:
        return default_backend()
    if value not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {value!r}")
    return value


def _cron_available() -> bool:
    from fogvault.jobs import cron

    return cron.Crontab.from_env().file is not None or shutil.which("crontab") is not None


def _installed() -> list[InstalledSchedule]:
    from fogvault.jobs import cron, systemd

    found = systemd.installed(systemd.unit_dir())
    if _cron_available():
        found += cron.installed(cron.Crontab.from_env())
    return found
