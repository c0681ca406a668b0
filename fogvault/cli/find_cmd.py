"""``fogvault find``: search snapshots for paths matching a pattern."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.cli.ls_cmd import long_line, node_json


def register(app: typer.Typer) -> None:
    app.command("find")(find)


def find(
    ctx: typer.Context,
    pattern: Annotated[str, typer.Argument(help="Pattern, e.g. '*.jpg' or '/home/**/notes'.")],
    snapshot: Annotated[
        list[str] | None, typer.Option("--snapshot", "-s", help="Only this snapshot.")
    ] = None,
) -> None:
    """Find entries matching PATTERN in every snapshot (or the ones given)."""
    from fogvault.patterns import PathPatterns
    from fogvault.treewalk import walk

    out = Printer.of(ctx)
    matcher = PathPatterns([pattern])
    results = []
    with open_repository(ctx) as repo:
        uids = [repo.resolve_snapshot(s) for s in snapshot] if snapshot else None
        snaps = [repo.load_snapshot(u) for u in uids] if uids else repo.snapshots()
        for snap in snaps:
            hits = [(p, n) for p, n in walk(repo, snap.tree) if matcher.matches(p)]
            results.append((snap, hits))
    if out.json_mode:
        out.json([{"snapshot": s.uid, "matches": [node_json(p, n) for p, n in hits]}
                  for s, hits in results if hits])
        return
    for snap, hits in results:
        if hits:
            out.line(f"snapshot {snap.uid} of {snap.time:%Y-%m-%d %H:%M:%S}:")
            for path, node in hits:
                out.line("  " + long_line(path, node))
