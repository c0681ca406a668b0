"""``fogvault tag``: add, remove or set the tags of snapshots."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import (
    DryRunOption,
    HostFilter,
    PathFilter,
    Printer,
    TagFilter,
    open_repository,
)
from fogvault.sizes import counted


def register(app: typer.Typer) -> None:
    app.command("tag")(tag_cmd)


def tag_cmd(
    ctx: typer.Context,
    uids: Annotated[list[str] | None, typer.Argument(help="Snapshots to retag (default: "
                                                     "those the filters select).")] = None,
    add: Annotated[list[str] | None, typer.Option("--add", help="Add this tag.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Remove this tag.")
                      ] = None,
    set_tags: Annotated[list[str] | None, typer.Option(
        "--set", help="Replace every tag with these ('' alone: no tags).")] = None,
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
    dry_run: DryRunOption = False,
) -> None:
    """Change the tags of snapshots. Each changed snapshot gets a new uid (as in restic)."""
    from fogvault.maintenance.tag import TagOptions
    from fogvault.maintenance.tag import tag as retag

    options = TagOptions(
        add=add or [], remove=remove or [],
        set=None if set_tags is None else [t for t in set_tags if t],  # --set '': no tags
        uids=uids or [], host=host, tags=tag or [], paths=path or [], dry_run=dry_run)
    options.validate()  # before the password is asked for
    out = Printer.of(ctx)
    with open_repository(ctx) as repo, repo.lock():
        result = retag(repo, options)
    if out.json_mode:
        out.json({"dry_run": dry_run, "unchanged": result.unchanged,
                  "changed": [{"old_uid": c.old_uid, "new_uid": c.new_uid, "tags": c.tags}
                              for c in result.changed]})
        return
    verb = "would change" if dry_run else "changed"
    for change in result.changed:
        out.line(f"{change.old_uid} -> {change.new_uid}: tags {', '.join(change.tags) or '(none)'}")
    out.line(f"{verb} {counted(len(result.changed), 'snapshot')}"
             + (f", {result.unchanged} already as asked" if result.unchanged else ""))
