"""``fogvault backup``: back up paths into a new snapshot."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import ExcludeFileOption, IExcludeOption, Printer, open_repository
from fogvault.errors import EXIT_PARTIAL, UsageError
from fogvault.sizes import counted, format_size, parse_size

if TYPE_CHECKING:
    from fogvault.backup.archiver import BackupResult


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)


def backup(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files and folders to back up.", show_default=False)
    ] = None,
    files_from: Annotated[
        list[str] | None,
        typer.Option("--files-from", help="Also back up the paths listed in this file, one a "
                     "line; wildcards are expanded, '#' starts a comment ('-': standard input)."),
    ] = None,
    files_from_verbatim: Annotated[
        list[str] | None,
        typer.Option("--files-from-verbatim", help="Also back up the paths listed in this "
                     "file, one a line, taken as they are ('-': standard input)."),
    ] = None,
    files_from_raw: Annotated[
        list[str] | None,
        typer.Option("--files-from-raw", help="Also back up the paths in this file, separated "
                     "by NUL bytes (find -print0)."),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag the snapshot.")] = None,
    host: Annotated[str | None, typer.Option("--host", "-H", help="Host name to record.")
                    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-e", help="Skip paths matching this.")
    ] = None,
    exclude_file: ExcludeFileOption = None,
    iexclude: IExcludeOption = None,
    iexclude_file: Annotated[
        list[str] | None, typer.Option("--iexclude-file", help="As --exclude-file, ignoring case.")
    ] = None,
    exclude_larger_than: Annotated[
        str | None,
        typer.Option("--exclude-larger-than", help="Skip files larger than this (e.g. 2G)."),
    ] = None,
    exclude_caches: Annotated[
        bool, typer.Option(help="Skip the contents of folders with a CACHEDIR.TAG.")
    ] = False,
    exclude_if_present: Annotated[
        list[str] | None,
        typer.Option("--exclude-if-present", help="Skip the contents of folders holding this."),
    ] = None,
    one_file_system: Annotated[
        bool, typer.Option("--one-file-system", "-x", help="Do not cross file systems.")
    ] = False,
    parent: Annotated[
        str | None, typer.Option(help="Compare with this snapshot instead of the latest.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Read every file, even unchanged ones.")] = False,
    ignore_ctime: Annotated[
        bool, typer.Option("--ignore-ctime", help="Ignore ctime changes when checking for "
                           "modified files.")
    ] = False,
    ignore_inode: Annotated[
        bool, typer.Option("--ignore-inode", help="Ignore inode number and ctime changes when "
                           "checking for modified files.")
    ] = False,
    no_flags: Annotated[
        bool, typer.Option("--no-flags", help="Do not store inode flags (chattr's: immutable, "
                           "append-only, nodump...).")
    ] = False,
    skip_if_unchanged: Annotated[
        bool, typer.Option("--skip-if-unchanged", help="Save no snapshot if nothing changed "
                           "since the parent (same contents, paths, host and tags).")
    ] = False,
    time: Annotated[
        str | None, typer.Option("--time", help="Record this time for the snapshot instead of "
                                 "now (ISO 8601, e.g. '2026-01-02 15:04:05'; local time unless "
                                 "an offset is given; not in the future).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be stored; store nothing.")
    ] = False,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Back up standard input as one file (no PATHS).")
    ] = False,
    stdin_from_command: Annotated[
        bool, typer.Option("--stdin-from-command", help="Run PATHS as a command and back up "
                           "its output; no snapshot if it fails.")
    ] = False,
    stdin_filename: Annotated[
        str, typer.Option("--stdin-filename", help="File name of --stdin's data in the "
                          "snapshot.")
    ] = "stdin",
) -> None:
    """Back up PATHS. Exit code 3 if some files could not be read."""
    from fogvault.backup.archiver import Archiver, BackupOptions, parse_snapshot_time
    from fogvault.backup.excludes import ExcludeRules
    from fogvault.backup.path_lists import ListForm, read_path_lists
    from fogvault.backup.scanner import Scanner
    from fogvault.backup.stream_source import CommandSource, DescriptorSource, check_stream_name
    from fogvault.cli.progress import QuietProgress, make_progress
    from fogvault.host import hostname
    from fogvault.patterns import pattern_warnings
    from fogvault.repo.snapshot import refuse_commas

    out = Printer.of(ctx)
    streamed = stdin or stdin_from_command
    lists: dict[ListForm, list[str]] = {
        "patterns": files_from or [], "verbatim": files_from_verbatim or [],
        "raw": files_from_raw or []}
    if streamed and any(lists.values()):  # before reading: '-' would eat the stream
        raise UsageError("--stdin and --stdin-from-command take no --files-from list")
    if streamed:
        check_stream_name(stdin_filename)
    listed = [path for form, names in lists.items() for path in read_path_lists(names, form)]
    _check_sources(stdin, stdin_from_command, paths or [], listed)
    for name, value in (("host", host), ("parent", parent), ("time", time)):
        if value == "":  # an unset variable: not "this machine", "the latest" or "now"
            raise UsageError(f"--{name} is empty")
    if "" in (tag or []):  # tags cannot be empty (tag --add '' is refused as well)
        raise UsageError("--tag is empty")
    refuse_commas(tag or [])
    paths = [*(paths or []), *listed]
    patterns = (exclude or []) + ExcludeRules.read_files(exclude_file or [])
    folded = (iexclude or []) + ExcludeRules.read_files(iexclude_file or [])
    rules = ExcludeRules(patterns, exclude_caches, exclude_if_present or [], folded,
                         parse_size(exclude_larger_than) if exclude_larger_than else None)
    opts = BackupOptions(
        tags=tag or [], host=host or hostname(), excludes=rules,
        one_file_system=one_file_system, parent=parent, force=force, dry_run=dry_run,
        skip_if_unchanged=skip_if_unchanged, time=parse_snapshot_time(time) if time else None,
        inode_flags=not no_flags, ignore_ctime=ignore_ctime, ignore_inode=ignore_inode,
    )
    progress = make_progress(out, "backup")
    for line in pattern_warnings([*patterns, *folded]):  # they would quietly exclude nothing
        progress.warning(line)
    # The scanner only feeds totals to a visible bar or JSON status lines: it walks the tree a
    # second time, so it is not started when nobody sees progress.
    scanner = None if isinstance(progress, QuietProgress) or streamed else Scanner(
        paths, rules, progress.set_total)
    try:
        with open_repository(ctx, load_index=False) as repo:  # loaded under the backup's lock
            archiver = Archiver(repo, opts, progress)
            if stdin:
                result = archiver.run_stream(DescriptorSource(sys.stdin.fileno()), stdin_filename)
            elif stdin_from_command:
                with CommandSource(paths) as command:  # started under the backup's lock
                    result = archiver.run_stream(command, stdin_filename)
            else:
                if scanner:
                    scanner.start()
                result = archiver.run(paths)
    finally:
        if scanner:
            scanner.stop()
        progress.close()
    _report(out, result)
    if result.warnings:
        raise typer.Exit(EXIT_PARTIAL)


def _check_sources(stdin: bool, command: bool, paths: list[str], listed: list[str]) -> None:
    """UsageError unless the options name one source: paths (given or listed), standard input,
    or a command (given as PATHS)."""
    if stdin and command:
        raise UsageError("--stdin and --stdin-from-command cannot be used together")
    if stdin and (paths or listed):
        raise UsageError("--stdin backs up standard input only: give no paths")
    if stdin and sys.stdin.isatty():
        raise UsageError("--stdin: standard input is a terminal; pipe the data in")
    if command and (listed or not paths):
        raise UsageError("--stdin-from-command runs the arguments as a command: give them "
                         "(after '--') and no path list")
    if not (stdin or command or paths or listed):
        raise UsageError("nothing to back up: give paths or a --files-from list")


def _report(out: Printer, result: BackupResult) -> None:
    snap, s = result.snapshot, result.snapshot.summary
    if out.json_mode:
        saved = not (result.dry_run or result.unchanged_since)
        out.json_line({"message_type": "summary", "snapshot": snap.uid if saved else None,
                       "dry_run": result.dry_run, "unchanged_since": result.unchanged_since,
                       **snap.to_json()["summary"],
                       "warnings": result.warnings, "targets_behind": result.targets_behind})
        return
    out.line(f"Files: {s.files_new} new, {s.files_changed} changed, {s.files_unchanged} unchanged"
             + (f", {s.files_failed} failed" if s.files_failed else ""))
    out.line(f"Read {format_size(s.bytes_read)} of {format_size(s.total_bytes)}; "
             f"added {format_size(s.bytes_added)} ({s.data_blobs_added} data, "
             f"{counted(s.tree_blobs_added, 'tree blob')}) in {s.duration_s:.1f} s")
    if result.unchanged_since:
        out.line(f"nothing changed since snapshot {result.unchanged_since}: no snapshot saved"
                 + (" (dry run)" if result.dry_run else ""))
    elif result.dry_run:
        out.line("dry run: nothing was stored")
    else:
        out.line(f"snapshot {snap.uid} saved")
