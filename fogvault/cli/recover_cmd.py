"""``fogvault recover``: a snapshot of the trees that no snapshot uses."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import DryRunOption, Printer, open_repository
from fogvault.errors import PartialSuccess
from fogvault.sizes import counted


def register(app: typer.Typer) -> None:
    app.command("recover")(recover_cmd)


def recover_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Host name to record.")] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Save the folder trees no snapshot uses (lost snapshots' data) as a new snapshot of
    /recover, tagged 'recovered'."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.host import hostname
    from fogvault.maintenance.recover import recover

    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as repo:  # loaded under recover's lock
            result = recover(repo, host=host or hostname(), dry_run=dry_run, progress=progress)
    finally:
        progress.close()
    snapshot = result.snapshot
    if out.json_mode:
        out.json({"dry_run": dry_run, "unused_trees": result.unused_trees,
                  "roots": [root.hex() for root in result.roots],
                  "unreadable": result.unreadable,
                  "snapshot": snapshot.uid if snapshot else None})
    else:
        out.line(f"{counted(result.unused_trees, 'tree')} no snapshot uses, "
                 f"{counted(len(result.roots), 'root')} among them")
        if snapshot:
            out.line(f"snapshot {snapshot.uid} saved: /recover holds a folder for each root")
        elif result.roots:
            out.line("would save them as a snapshot of /recover (dry run)")
    if result.unreadable:
        for problem in result.unreadable:
            out.problem(f"unreadable: {problem}")
        raise PartialSuccess(f"{counted(len(result.unreadable), 'unused tree')} could not be "
                             "read: the folders below them may show as roots of their own")
