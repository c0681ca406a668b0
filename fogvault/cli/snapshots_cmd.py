"""``fogvault snapshots``: list snapshots, oldest first."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import Printer, open_repository, table
from fogvault.repo.snapshot import select_snapshots
from fogvault.sizes import format_size


def register(app: typer.Typer) -> None:
    app.command("snapshots")(snapshots)


def snapshots(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Only this host.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only with this tag.")] = None,
    path: Annotated[list[str] | None, typer.Option("--path", help="Only with this path.")] = None,
    latest: Annotated[int | None, typer.Option(help="Only the newest N.")] = None,
) -> None:
    """List snapshots (oldest first)."""
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        found = select_snapshots(repo.snapshots(), host, tag or [], path or [])
    if latest is not None:
        found = found[-latest:] if latest > 0 else []
    if out.json_mode:
        out.json([s.to_json() for s in found])
        return
    rows = [
        [s.uid, s.time.strftime("%Y-%m-%d %H:%M:%S"), s.host, ",".join(s.tags),
         "\n".join(s.paths) if len(s.paths) == 1 else f"{s.paths[0]} (+{len(s.paths) - 1})",
         format_size(s.summary.total_bytes)]
        for s in found
    ]
    out.line(table(rows, ["UID", "Time", "Host", "Tags", "Paths", "Size"]))
    out.line(f"{len(found)} snapshots")
