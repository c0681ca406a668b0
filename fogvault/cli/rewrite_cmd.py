"""``fogvault rewrite``: take paths out of existing snapshots, or count their summaries anew."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from fogvault.cli.common import (
    DryRunOption,
    ExcludeFileOption,
    HostFilter,
    IExcludeOption,
    PathFilter,
    Printer,
    TagFilter,
    open_repository,
)
from fogvault.sizes import counted, format_size

#: paths listed per snapshot in the text report (JSON lists all)
SHOWN_PATHS = 10


def register(app: typer.Typer) -> None:
    app.command("rewrite")(rewrite_cmd)


def rewrite_cmd(
    ctx: typer.Context,
    uids: Annotated[list[str] | None, typer.Argument(help="Snapshots to rewrite (default: "
                                                     "those the filters select).")] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-e", help="Take out paths matching this.")
    ] = None,
    exclude_file: ExcludeFileOption = None,
    iexclude: IExcludeOption = None,
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
    forget: Annotated[bool, typer.Option("--forget", help="Delete the originals.")] = False,
    snapshot_summary: Annotated[bool, typer.Option(
        "--snapshot-summary", help="Also rewrite snapshots whose summary (files, folders, "
        "size) does not match their contents, with the summary counted anew.")] = False,
    dry_run: DryRunOption = False,
) -> None:
    """Take paths out of snapshots: each changed snapshot is saved again under a new uid, with
    its summary counted anew (the original stays unless --forget; prune frees the data)."""
    from fogvault.backup.excludes import ExcludeRules
    from fogvault.maintenance.rewrite import RewriteOptions, rewrite

    options = RewriteOptions(
        excludes=(exclude or []) + ExcludeRules.read_files(exclude_file or []),
        iexcludes=iexclude or [], uids=uids or [], host=host, tags=tag or [],
        paths=path or [], forget=forget, snapshot_summary=snapshot_summary, dry_run=dry_run)
    options.validate()  # before the password is asked for
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:  # loaded under rewrite's lock
        result = rewrite(repo, options)
    if out.json_mode:
        out.json({"dry_run": dry_run, "unchanged": result.unchanged, "rewritten": [
            {"old_uid": r.old_uid, "new_uid": r.new_uid, "removed": r.removed,
             "summary": asdict(r.summary), "original_kept": r.kept_original}
            for r in result.rewritten]})
        return
    for r in result.rewritten:
        change = (f"{counted(len(r.removed), 'path')} taken out" if r.removed
                  else "summary counted anew")
        out.line(f"{r.old_uid} -> {r.new_uid}: {change}; {counted(r.summary.files, 'file')}, "
                 f"{format_size(r.summary.total_bytes)}")
        for removed in r.removed[:SHOWN_PATHS]:
            out.line(f"  {removed}")
        if len(r.removed) > SHOWN_PATHS:
            out.line(f"  ... and {len(r.removed) - SHOWN_PATHS} more (--json lists them)")
        if r.kept_original:
            out.line(f"  original kept: {r.kept_original}")
    verb = "would rewrite" if dry_run else "rewrote"
    out.line(f"{verb} {counted(len(result.rewritten), 'snapshot')}"
             + (f", {result.unchanged} unchanged" if result.unchanged else "")
             + ("; run 'fogvault prune' to free the data" if forget and not dry_run else ""))
