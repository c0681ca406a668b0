"""``fogvault snapshots``: list snapshots, oldest first.

With several targets, the list is the union over the reachable targets, and a snapshot that is
not on every target is marked (``*``, and its ``targets`` in JSON) until ``repair`` copies it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import Printer, open_repository, table
from fogvault.sizes import counted, format_size


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
    from fogvault.repo.snapshot import select_snapshots

    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        found = select_snapshots(repo.snapshots(), host, tag or [], path or [])
        where = repo.snapshot_locations()
        every = len(repo.targets.targets)
    if latest is not None:
        found = found[-latest:] if latest > 0 else []
    if out.json_mode:
        out.json([{**s.to_json(), "targets": where.get(s.uid, [])} for s in found])
        return
    partial = {s.uid for s in found if len(where.get(s.uid, [])) < every}
    rows = [
        [s.uid + ("*" if s.uid in partial else ""), s.time.strftime("%Y-%m-%d %H:%M:%S"),
         s.host, ",".join(s.tags),
         "\n".join(s.paths) if len(s.paths) == 1 else f"{s.paths[0]} (+{len(s.paths) - 1})",
         format_size(s.summary.total_bytes)]
        + ([f"{len(where.get(s.uid, []))}/{every}"] if every > 1 else [])
        for s in found
    ]
    headers = ["UID", "Time", "Host", "Tags", "Paths", "Size"] + (["Targets"] if every > 1
                                                                   else [])
    out.result(table(rows, headers))
    out.line(counted(len(found), "snapshot"))
    if partial:
        out.line(f"* on fewer than all {every} targets: 'fogvault repair' copies them")
