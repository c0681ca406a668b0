"""``fogvault diff``: what changed between two snapshots."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    SNAPSHOT_REF,
    Deferred,
    Printer,
    lazy_list,
    load_snapshot_ref,
    open_repository,
)

if TYPE_CHECKING:
    from fogvault.treewalk import Change

_LEGEND = {"+": "added", "-": "removed", "M": "modified", "U": "metadata", "T": "type changed"}


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def diff(
    ctx: typer.Context,
    first: Annotated[str, typer.Argument(help=f"The older. {SNAPSHOT_REF}")],
    second: Annotated[str, typer.Argument(help="The newer, named as the older.")],
) -> None:
    """Show entries added (+), removed (-), modified (M), with metadata-only changes (U)."""
    from fogvault.treewalk import diff_snapshots

    out = Printer.of(ctx)
    counts: Counter[str] = Counter()
    with open_repository(ctx, drop_empty_targets=True) as repo:
        a = load_snapshot_ref(repo, first)
        b = load_snapshot_ref(repo, second)

        def changes() -> Iterator[Change]:  # written as found, counted on the way
            for change in diff_snapshots(repo, a, b):
                counts[change.kind] += 1
                yield change

        if out.json_mode:
            out.json_streamed({
                "from": a.uid, "to": b.uid,
                "changes": lazy_list({"kind": _LEGEND[c.kind], "path": os.fsdecode(c.path)}
                                     for c in changes()),
                "counts": Deferred(lambda: {_LEGEND[k]: v for k, v in counts.items()}),
            })
            return
        for change in changes():
            out.entry(f"{change.kind}    {os.fsdecode(change.path)}")
    out.line(", ".join(f"{counts.get(k, 0)} {name}" for k, name in _LEGEND.items()))
