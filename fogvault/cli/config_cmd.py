"""``fogvault config check|show``: validate the jobs config file, or print it in effect."""

from __future__ import annotations

import typer

from fogvault.cli.common import Printer, refuse_options
from fogvault.cli.jobs_common import NO_REPOSITORY_REFUSES, ConfigOption, load
from fogvault.sizes import counted

config_app = typer.Typer(help="Check or show the jobs config file.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("check")
def check(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Validate the config file; every problem is listed with its file, line and key."""
    refuse_options(ctx, NO_REPOSITORY_REFUSES)
    cfg = load(config)
    out = Printer.of(ctx)
    if out.json_mode:
        out.json({"ok": True, "path": str(cfg.path), "repositories": list(cfg.repositories),
                  "jobs": list(cfg.jobs)})
        return
    out.line(f"{cfg.path}: OK ({counted(len(cfg.repositories), 'repository', 'repositories')}, "
             f"{counted(len(cfg.jobs), 'job')})")


@config_app.command("show")
def show(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Print the effective config: defaults filled in, paths expanded, schedules' next runs."""
    from fogvault.jobs.config_show import dump_toml, effective_document

    refuse_options(ctx, NO_REPOSITORY_REFUSES)
    cfg = load(config)
    out = Printer.of(ctx)
    document = effective_document(cfg)
    if out.json_mode:
        out.json(document)
    else:
        print(dump_toml(document), end="")
