"""What the job commands (config, run, schedule, daemon, status) share: ``--config`` and loading."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import options
from fogvault.errors import EXIT_USAGE

if TYPE_CHECKING:
    from fogvault.jobs.config import Config
    from fogvault.jobs.runner import RunOptions

ConfigOption = Annotated[
    str | None,
    typer.Option("--config", help="Jobs config file (env FOGVAULT_CONFIG; default "
                 "~/.config/fogvault/config.toml)."),
]


def load(config: str | None) -> Config:
    """Load and validate the config; every problem goes to stderr, then exit 2."""
    from fogvault.jobs.config import ConfigError, config_path, load_config

    try:
        return load_config(config_path(config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


def run_options(ctx: typer.Context, *, dry_run: bool = False, init: bool = False) -> RunOptions:
    from fogvault.jobs.runner import RunOptions

    opts = options(ctx)
    return RunOptions(dry_run=dry_run, init=init, cache_dir=opts.cache_path(),
                      use_cache=not opts.no_cache, retry_lock=opts.retry_lock)
