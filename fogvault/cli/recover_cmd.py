"""``fogvault recover``: a snapshot of the trees that no snapshot uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import DryRunOption, Printer, open_repository
from fogvault.errors import PartialSuccess, UsageError
from fogvault.sizes import counted

if TYPE_CHECKING:
    from fogvault.maintenance.recover import RecoverResult


def register(app: typer.Typer) -> None:
    app.command("recover")(recover_cmd)


def recover_cmd(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", "-H", help="Host name to record.")
                    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Save the folder trees no snapshot uses (lost snapshots' data) as a new snapshot of
    /recover, tagged 'recovered'."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.host import hostname
    from fogvault.maintenance.recover import recover

    if host == "":  # an unset variable: not "this machine"
        raise UsageError("--host is empty")
    out = Printer.of(ctx)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as repo:  # loaded under recover's lock
            result = recover(repo, host=host or hostname(), dry_run=dry_run, progress=progress)
    finally:
        progress.close()
    _report(out, result)
    problems = []
    if result.incomplete:  # an unreadable root is one of them
        problems.append(f"{counted(len(result.incomplete), 'root')} left out: data or trees "
                        "they use are gone (most likely pruned) or unreadable")
    if result.unreadable:
        problems.append(f"{counted(len(result.unreadable), 'unused tree')} could not be read: "
                        "the folders below them may show as roots of their own")
    if problems:
        raise PartialSuccess("; ".join(problems))


def _report(out: Printer, result: RecoverResult) -> None:
    snapshot = result.snapshot
    if out.json_mode:
        out.json({"dry_run": result.dry_run, "unused_trees": result.unused_trees,
                  "roots": [root.hex() for root in result.roots],
                  "left_out": result.incomplete, "unreadable": result.unreadable,
                  "snapshot": snapshot.uid if snapshot else None})
        return
    out.line(f"{counted(result.unused_trees, 'tree')} no snapshot uses, "
             f"{counted(len(result.roots) + len(result.incomplete), 'root')} among them")
    for root, problem in result.incomplete.items():
        out.problem(f"left out: root {root}: {problem}")
    for problem in result.unreadable:
        out.problem(f"unreadable: {problem}")
    if snapshot:
        out.line(f"snapshot {snapshot.uid} saved: /recover holds a folder for each of "
                 f"{counted(len(result.roots), 'root')}")
    elif result.roots:
        out.line(f"would save {counted(len(result.roots), 'root')} as a snapshot of /recover "
                 "(dry run)")
