"""``fogvault restore``: bring a snapshot back below a target folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    SNAPSHOT_REF,
    IExcludeOption,
    LatestHost,
    LatestPath,
    LatestTag,
    Printer,
    load_snapshot_ref,
    open_repository,
    options,
    printable,
)
from fogvault.errors import EXIT_PARTIAL, UsageError
from fogvault.sizes import counted, format_size

if TYPE_CHECKING:
    from fogvault.restore.progress import RestoreProgress


def register(app: typer.Typer) -> None:
    app.command("restore")(restore)


def restore(
    ctx: typer.Context,
    snapshot: Annotated[
        str | None, typer.Argument(help=f"{SNAPSHOT_REF} (Or give --version.)",
                                   show_default=False)
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", "-V", help=SNAPSHOT_REF)
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Restore below here (default: the "
                                 "current folder; --delete needs it given).",
                                 show_default=False)
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="Only paths matching this.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-e", help="Skip paths matching this.")
    ] = None,
    iinclude: Annotated[
        list[str] | None, typer.Option("--iinclude", help="As --include, ignoring case.")
    ] = None,
    iexclude: IExcludeOption = None,
    overwrite: Annotated[
        str, typer.Option(help="Existing files: always, if-changed or never.")
    ] = "always",
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete from the restored folders what the snapshot "
                           "does not have, what the backup excluded too, but the repository, "
                           "cache and password file (try --dry-run first).")
    ] = False,
    delete_unreadable: Annotated[
        bool, typer.Option("--delete-unreadable", help="With --delete, of a snapshot whose "
                           "backup could not read some files: delete them too (else refused).")
    ] = False,
    verify: Annotated[bool, typer.Option(help="Re-read restored files and check them.")] = False,
    no_flags: Annotated[
        bool, typer.Option("--no-flags", help="Do not set the inode flags the snapshot holds "
                           "(chattr's: immutable, append-only, nodump...).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be restored (and deleted).")
    ] = False,
    host: LatestHost = None,
    tag: LatestTag = None,
    path: LatestPath = None,
) -> None:
    """Restore a snapshot below TARGET (the snapshot's paths are recreated there)."""
    from fogvault.cli.progress import make_progress
    from fogvault.restore.extras import Kept
    from fogvault.restore.restorer import RestoreOptions, Restorer

    ref = _snapshot_ref(snapshot, version)
    _check_delete(delete, delete_unreadable, target)  # before the password is asked for
    out = Printer.of(ctx)
    password_file = options(ctx).password_source().file
    restore_options = RestoreOptions(
        target=target or ".", includes=include or [], excludes=exclude or [],
        iincludes=iinclude or [], iexcludes=iexclude or [], overwrite=overwrite, delete=delete,
        delete_unreadable=delete_unreadable, verify=verify, dry_run=dry_run,
        inode_flags=not no_flags,
        keep=[Kept(password_file, "the password file")] if password_file else [])
    progress = make_progress(out, "restore")
    # each deletion listed in a dry run (its point) and with -v, as restic's -vv does
    listed = (_list_deletion(out, progress, dry_run)
              if delete and (dry_run or out.opts.verbose) else None)
    try:
        # the restorer loads the index once it holds its lock (a dry run takes none)
        with open_repository(ctx, drop_empty_targets=True, load_index=dry_run) as repo:
            snap = load_snapshot_ref(repo, ref, host=host, tags=tag, paths=path)
            summary = Restorer(repo, snap, restore_options, progress, listed).run()
    finally:
        progress.close()
    if out.json_mode:
        out.json_line({"message_type": "summary", "snapshot": snap.uid, **asdict(summary)})
    else:
        verb = "would restore" if dry_run else "restored"
        out.line(f"{verb} snapshot {snap.uid}: {counted(summary.files, 'file')}, "
                 f"{counted(summary.dirs, 'folder')}, "
                 f"{format_size(summary.total_bytes)}"
                 + (f"; {counted(summary.verified, 'file')} verified" if verify else "")
                 + (f"; {summary.skipped} skipped" if summary.skipped else "")
                 + (f"; {'would delete' if dry_run else 'deleted'} "
                    f"{counted(summary.deleted, 'entry', 'entries')}" if delete else ""))
    if summary.warnings:
        raise typer.Exit(EXIT_PARTIAL)


def _list_deletion(out: Printer, progress: RestoreProgress, dry_run: bool
                   ) -> Callable[[bytes, bool], None]:
    """A line for each entry deleted (or to delete): JSON, or text on stdout, above the
    progress bar if there is one."""
    from fogvault.cli.progress import BarProgress

    verb = "would delete" if dry_run else "deleted"

    def listed(path: bytes, is_dir: bool) -> None:
        name = os.fsdecode(path)
        if out.json_mode:
            out.json_line({"message_type": "deleted", "path": name, "folder": is_dir,
                           "dry_run": dry_run})
            return
        text = f"{verb} {printable(name)}{'/' if is_dir else ''}"
        if isinstance(progress, BarProgress):
            progress.bar.write(text, file=sys.stdout)
        else:
            out.line(text)

    return listed


def _check_delete(delete: bool, delete_unreadable: bool, target: str | None) -> None:
    """--delete in the current folder by default would empty whatever folder one stands in:
    it needs the target named. An empty -t (an unset shell variable) names no folder: it is
    refused for every restore, not taken as the current folder."""
    if target is not None and not target.strip():
        raise UsageError("-t/--target is empty: give the folder to restore below")
    if delete and target is None:
        raise UsageError("--delete needs the target given with -t/--target: it deletes there "
                         "what the snapshot does not have")
    if delete_unreadable and not delete:
        raise UsageError("--delete-unreadable goes with --delete")


def _snapshot_ref(snapshot: str | None, version: str | None) -> str:
    """The snapshot to restore, given as an argument (as restic's ``restore latest``) or with
    ``--version``: one of the two."""
    if (snapshot is None) == (version is None):
        raise UsageError("give the snapshot to restore once: as an argument (a uid, a unique "
                         "prefix or 'latest') or with --version")
    return snapshot if snapshot is not None else version  # type: ignore[return-value]
