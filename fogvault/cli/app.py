"""The ``fogvault`` command: composes the command modules and maps errors to exit codes.

Common options (``-r/--repo``, ``--password-file``, ``--password-command``, ``--json``,
``-q``, ``-v``, ``--cache-dir``, ``--no-cache``, ``--retry-lock``, ``--no-lock``,
``--min-targets``, ``--limit-upload``, ``--limit-download``) are accepted anywhere on the
command line, as restic accepts them: :func:`split_common_options` finds them, and they go in
front of the subcommand, where the app's callback reads them, so no command repeats them.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from fogvault import __version__
from fogvault.cli import signals, streams
from fogvault.cli.common import GlobalOptions, setup_logging
from fogvault.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    FogVaultError,
    UsageError,
    exit_code_for,
)
from fogvault.text import one_line


def _version(value: bool) -> None:
    if value:
        print(f"fogvault {__version__}")
        raise typer.Exit()


#: --retry-lock's limit: a day (a lock is stale after 30 minutes; longer waits only hide a fault)
MAX_LOCK_WAIT = 86400.0


def _finite(value: float) -> float:
    if math.isnan(value):  # passes any range check
        raise typer.BadParameter("not a number")
    return value


def _kib_per_second(param: typer.CallbackParam, text: str | None) -> int | None:
    """A bandwidth limit: a whole number of KiB/s, 0 for none. A bad one is a usage error
    of one line (exit 2), as the environment variable's is."""
    from fogvault.targets.policy import parse_limit

    return None if text is None else parse_limit(text, param.opts[0])


def main_options(
    ctx: typer.Context,
    repo: Annotated[
        list[str] | None,
        typer.Option("-r", "--repo", help="Target URL or path (repeatable; env FOGVAULT_REPO, "
                     "comma-separated)."),
    ] = None,
    password_file: Annotated[
        str | None, typer.Option("--password-file", help="Read the password from this file.")
    ] = None,
    password_command: Annotated[
        str | None, typer.Option("--password-command", help="Run this command (split as a "
                                 "shell would, run without one) and read the password from "
                                 "its output.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress and no report of what was done; "
                           "listings still print their result, warnings and errors still go "
                           "to stderr.")
    ] = False,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, show_default=False,
                          help="Repeatable: -v adds the traceback to an error, -vv also debug "
                          "messages.")
    ] = 0,
    cache_dir: Annotated[
        str | None, typer.Option("--cache-dir", help="Local cache folder.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Use no local cache.")] = False,
    retry_lock: Annotated[
        float, typer.Option("--retry-lock", min=0.0, max=MAX_LOCK_WAIT, callback=_finite,
                            help="Wait this many seconds for a locked repository.")
    ] = 0.0,
    no_lock: Annotated[
        bool, typer.Option("--no-lock", help="Take no lock (read-only targets; not for backup).")
    ] = False,
    min_targets: Annotated[
        int | None,
        typer.Option("--min-targets", min=1, help="Commit a backup only if at least this many "
                     "targets hold all of its data (default: all of them)."),
    ] = None,
    limit_upload: Annotated[
        str | None,
        typer.Option("--limit-upload", metavar="KIB", callback=_kib_per_second,
                     help="Upload at most this many KiB/s, all targets together (env "
                     "FOGVAULT_LIMIT_UPLOAD; 0: no limit)."),
    ] = None,
    limit_download: Annotated[
        str | None,
        typer.Option("--limit-download", metavar="KIB", callback=_kib_per_second,
                     help="Download at most this many KiB/s, all targets together (env "
                     "FOGVAULT_LIMIT_DOWNLOAD; 0: no limit)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Common options may be given before or after the command name."""
    if cache_dir == "":
        raise typer.BadParameter("is empty", param_hint="'--cache-dir'")
    ctx.obj = GlobalOptions(
        repos=repo or [], password_file=password_file, password_command=password_command,
        json=json_output, quiet=quiet,
        verbose=verbose, cache_dir=cache_dir, no_cache=no_cache, no_lock=no_lock,
        retry_lock=retry_lock, min_targets=min_targets,
        # converted by _kib_per_second
        limit_upload=limit_upload, limit_download=limit_download,  # type: ignore[arg-type]
    )
    setup_logging(verbose)


# The module that registers each top-level command, in the order they are registered. A run
# builds only the command it runs: Typer turns every command's signature into options before
# it parses anything, and doing that for all of them took 0.04-0.06 s of each command's start.
COMMAND_MODULES = {
    "init": "init_cmd", "backup": "backup_cmd", "snapshots": "snapshots_cmd", "ls": "ls_cmd",
    "find": "find_cmd", "diff": "diff_cmd", "stats": "stats_cmd", "restore": "restore_cmd",
    "dump": "dump_cmd", "tag": "tag_cmd", "rewrite": "rewrite_cmd", "forget": "forget_cmd",
    "prune": "prune_cmd",
    "check": "check_cmd", "key": "key_cmd", "unlock": "unlock_cmd", "cat": "cat_cmd",
    "list": "list_cmd", "recover": "recover_cmd", "cache": "cache_cmd",
    "config": "config_cmd", "run": "run_cmd", "schedule": "schedule_cmd",
    "daemon": "daemon_cmd", "status": "status_cmd",
    "repair": "repair_cmd", "targets": "targets_cmd", "target": "targets_cmd",
    "mount": "mount_cmd", "completion": "completion_cmd", "copy": "copy_cmd",
}


#: Option values named as docs/cli.md names them, not as typer 0.28 does (<str>, <int range>).
_VALUE_NAMES = {"str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "float": "NUMBER",
                "float range": "NUMBER", "path": "PATH"}


class _Group(TyperGroup):
    """The ``fogvault`` group: its commands' --help names option values as the reference does,
    and shows a counter (-v) as a flag, not as taking a number."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _name_option_values(self)


def _name_option_values(command: TyperCommand | TyperGroup) -> None:
    for param in command.params:
        if param.param_type_name != "option" or param.metavar is not None or param.is_flag:
            continue
        param.metavar = "" if param.count else _VALUE_NAMES.get(param.type.name)
    for sub in getattr(command, "commands", {}).values():
        _name_option_values(sub)


def build_app(command: str | None = None) -> typer.Typer:
    """The ``fogvault`` app with every command, or only with ``command`` if it names one."""
    app = typer.Typer(
        cls=_Group,
        name="fogvault",
        help="Versioned, deduplicating, encrypted backups to several targets at once.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(main_options)
    modules = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for module in dict.fromkeys(modules):
        importlib.import_module(f"fogvault.cli.{module}").register(app)
    return app


_WITH_VALUE = {"-r", "--repo", "--password-file", "--password-command", "--cache-dir",
               "--retry-lock", "--min-targets", "--limit-upload", "--limit-download"}
_FLAGS = {"--json", "-q", "--quiet", "-v", "--verbose", "--no-cache", "--no-lock"}


def split_common_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the common options, wherever they are before ``--``; the rest, in order), so that they
    can go in front of the subcommand."""
    lifted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if name in _WITH_VALUE and "=" in arg:
            lifted.append(arg)
        elif arg in _WITH_VALUE and i + 1 < len(argv):
            lifted += [arg, argv[i + 1]]
            i += 1
        elif arg in _FLAGS or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            lifted.append(arg)
        else:
            rest.append(arg)
        i += 1
    return lifted, rest


def _open_standard_streams() -> None:
    """Give a standard stream that was closed when the command started (``>&-``, a bare job
    runner) /dev/null. Python leaves such a stream None, and every print failed; and the
    first file the command opened would take the free descriptor, where a hook's output
    would go."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's own, never closed)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def main(argv: list[str] | None = None) -> None:
    # First: a signal from here on ends the process as documented (exit 130, "interrupted").
    # python -m fogvault has taken them already, before this module and Typer were loaded.
    signals.install()
    common, rest = split_common_options(sys.argv[1:] if argv is None else argv)
    args = common + rest
    _open_standard_streams()
    streams.install()
    verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in args)
    if os.environ.get("_FOGVAULT_COMPLETE"):  # a shell's completion script asking (completion)
        from fogvault.cli.completion_cmd import complete

        sys.exit(streams.exit_code(complete(os.environ["_FOGVAULT_COMPLETE"])))
    sys.exit(streams.exit_code(_run(args, rest[0] if rest else None, verbose)))


def _run(args: list[str], command: str | None, verbose: bool) -> int:
    """Run the command line ``args`` (of the subcommand ``command``); its exit code."""
    try:
        app = build_app(command)
        _refuse_repeated_host(app, args)
        result = signals.run_command(
            lambda: app(args=args, prog_name="fogvault", standalone_mode=False))
        if result == EXIT_INTERRUPTED:  # Typer turns the KeyboardInterrupt into this code
            signals.end_interrupted()
    except KeyboardInterrupt:
        signals.end_interrupted()
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except streams.OutputStopped:  # a listing cut short (see streams)
        return EXIT_OK
    except FogVaultError as exc:
        code = exit_code_for(exc)
        _report(exc, verbose, prefix="warning" if code == EXIT_PARTIAL else "error")
        return code
    except typer.exceptions.TyperException as exc:  # usage errors from the parser
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        return getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE
    except Exception as exc:  # a bug: one line, never a traceback (unless -v)
        _report(exc, verbose, prefix=f"unexpected error ({type(exc).__name__})")
        return exit_code_for(exc)
    return result if isinstance(result, int) else EXIT_OK


def _refuse_repeated_host(app: typer.Typer, args: list[str]) -> None:
    """A second ``--host`` (or ``-H``) is refused: the parser keeps only the last, where restic
    takes several as any of them, so 'forget --host a --host b' would have chosen b's alone.
    The value of another option (``-e -Hx``) is not a host: the options that take a value
    are read from the command, once there are two candidates."""
    options = args[:args.index("--")] if "--" in args else args
    if sum(_names_host(arg) for arg in options) < 2:
        return
    takes_value = _options_taking_values(typer.main.get_command(app))
    hosts, i = 0, 0
    while i < len(options):
        arg = options[i]
        hosts += _names_host(arg)
        i += 2 if arg in takes_value else 1  # and its value
    if hosts > 1:
        raise UsageError("--host can be given once: FogVault selects the snapshots of one host "
                         "(restic takes several, as any of them); run the command per host")


def _names_host(arg: str) -> bool:
    return arg == "--host" or arg.startswith(("--host=", "-H"))


def _options_taking_values(command: Any) -> set[str]:
    """The option names (``-e``, ``--exclude``) of the Click ``command`` and its subcommands
    that take a value in the next argument."""
    names = {name for param in command.params if param.param_type_name == "option"
             and not param.is_flag and not param.count for name in param.opts}
    for sub in getattr(command, "commands", {}).values():
        names |= _options_taking_values(sub)
    return names


def _report(exc: BaseException, verbose: bool, prefix: str = "error") -> None:
    if verbose:
        traceback.print_exception(exc)
    print(f"{prefix}: {one_line(exc)}", file=sys.stderr)
