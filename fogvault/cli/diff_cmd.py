"""``fogvault diff``: what changed between two snapshots."""

from __future__ import annotations

import os
from collections import Counter
from typing import Annotated

import typer

from fogvault.cli.common import Printer, open_repository

_LEGEND = {"+": "added", "-": "removed", "M": "modified", "U": "metadata", "T": "type changed"}


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def diff(
    ctx: typer.Context,
    first: Annotated[str, typer.Argument(help="Older snapshot uid (prefix) or 'latest'.")],
    second: Annotated[str, typer.Argument(help="Newer snapshot uid (prefix) or 'latest'.")],
) -> None:
    """Show entries added (+), removed (-), modified (M), with metadata-only changes (U)."""
    from fogvault.treewalk import diff as tree_diff

    out = Printer.of(ctx)
    with open_repository(ctx) as repo:
        a = repo.load_snapshot(repo.resolve_snapshot(first))
        b = repo.load_snapshot(repo.resolve_snapshot(second))
        changes = list(tree_diff(repo, a.tree, b.tree))
    counts = Counter(c.kind for c in changes)
    if out.json_mode:
        out.json({
            "from": a.uid, "to": b.uid,
            "changes": [{"kind": _LEGEND[c.kind], "path": os.fsdecode(c.path)} for c in changes],
            "counts": {_LEGEND[k]: v for k, v in counts.items()},
        })
        return
    for change in changes:
        out.line(f"{change.kind}    {os.fsdecode(change.path)}")
    out.line(", ".join(f"{counts.get(k, 0)} {name}" for k, name in _LEGEND.items()))
