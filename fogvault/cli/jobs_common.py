"""What the job commands (config, run, schedule, daemon, status) share: ``--config``, loading,
and refusing the common options they cannot honour."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import RefusedOption, options
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
                      use_cache=not opts.no_cache, retry_lock=opts.retry_lock,
                      limit_upload=opts.limit_upload, limit_download=opts.limit_download)


_WHERE = "[repositories.NAME] of the config file"
_TARGETS = f"a job's targets are the targets of {_WHERE}"
_PASSWORD = (f"a job's password comes from password_file, password_command or password_env of "
             f"{_WHERE}")
_MIN_TARGETS = f"set min_targets in {_WHERE}"
_PASSWORD_OPTIONS = ("--password-file/--password-command", ("password_file", "password_command"))
_NO_REPOSITORY = "it opens no repository"

#: ``run`` and ``daemon``: a job's repository, password and min_targets come from the config
#: file, and a job writes (backup, forget, prune), so it always locks the repository.
#: --retry-lock, --cache-dir, --no-cache, --limit-upload and --limit-download apply to the
#: job's repository (the limits over its limit_upload and limit_download).
JOB_REFUSES = (
    RefusedOption("-r/--repo", ("repo",), _TARGETS),
    RefusedOption(*_PASSWORD_OPTIONS, _PASSWORD),
    RefusedOption("--min-targets", ("min_targets",), _MIN_TARGETS),
    RefusedOption("--no-lock", ("no_lock",), "a job writes to the repository (backup, forget, "
                                              "prune), so it always locks it"),
)

#: ``schedule``, ``status`` and ``config`` read the config file (and the run log) only: every
#: option about a repository would be ignored.
NO_REPOSITORY_REFUSES = (
    RefusedOption("-r/--repo", ("repo",), f"{_NO_REPOSITORY}; {_TARGETS}"),
    RefusedOption(*_PASSWORD_OPTIONS, f"{_NO_REPOSITORY}; {_PASSWORD}"),
    RefusedOption("--min-targets", ("min_targets",), f"{_NO_REPOSITORY}; {_MIN_TARGETS}"),
    RefusedOption("--no-lock", ("no_lock",), f"{_NO_REPOSITORY}, so it takes no lock"),
    RefusedOption("--retry-lock", ("retry_lock",), f"{_NO_REPOSITORY}, so it takes no lock"),
    RefusedOption("--cache-dir", ("cache_dir",), f"{_NO_REPOSITORY}, so it uses no cache"),
    RefusedOption("--no-cache", ("no_cache",), f"{_NO_REPOSITORY}, so it uses no cache"),
    RefusedOption("--limit-upload/--limit-download", ("limit_upload", "limit_download"),
                  f"{_NO_REPOSITORY}, so it moves no data"),
)
