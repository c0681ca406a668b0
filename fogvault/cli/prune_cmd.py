"""``fogvault prune``: delete data that no snapshot uses."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.errors import UsageError
from fogvault.sizes import counted, format_size, parse_size

if TYPE_CHECKING:
    from fogvault.maintenance.prune import PruneResult


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_cmd)


def prune_cmd(
    ctx: typer.Context,
    max_unused: Annotated[
        float, typer.Option(help="Repack packs with more unused space than this percent.")
    ] = 5.0,
    max_repack_size: Annotated[
        str | None, typer.Option(help="Repack at most this much (e.g. 2G).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show.")] = False,
) -> None:
    """Remove unused data: delete unused packs, repack partly used ones."""
    from fogvault.cli.progress import make_phase_progress
    from fogvault.maintenance.prune import PruneOptions, prune

    if not 0 <= max_unused <= 100:
        raise UsageError("--max-unused is a percentage from 0 to 100")
    out = Printer.of(ctx)
    options = PruneOptions(max_unused=max_unused / 100, dry_run=dry_run,
                           max_repack_bytes=parse_size(max_repack_size) if max_repack_size
                           else None)
    progress = make_phase_progress(out)
    try:
        with open_repository(ctx, load_index=False) as repo:
            result = prune(repo, options, progress)
    finally:
        progress.close()
    report_prune(out, result)


def report_prune(out: Printer, result: PruneResult) -> None:
    if out.json_mode:
        out.json_line({"message_type": "summary", **asdict(result)})
        return
    verb = "would free" if result.dry_run else "freed"
    out.line(f"{counted(result.snapshots, 'snapshot')}: {result.blobs_used} of "
             f"{counted(result.blobs_total, 'blob')} used")
    unindexed = ""
    if result.packs_orphaned:
        unindexed = (f"; {counted(result.packs_orphaned, 'pack')} no index lists "
                     f"({format_size(result.bytes_orphaned)}) "
                     + ("to delete" if result.dry_run else "deleted"))
    out.line(f"packs: {result.packs_total} indexed, deleted {result.packs_deleted}, repacked "
             f"{result.packs_repacked} ({format_size(result.bytes_repacked)} copied)"
             + unindexed)
    if result.leftovers_removed:
        out.line(f"removed {counted(result.leftovers_removed, 'leftover')} of interrupted writes "
                 "(temporary files, unfinished uploads)")
    out.line(f"{verb} {format_size(result.bytes_freed)} of {format_size(result.bytes_before)} "
             f"in {result.duration_s:.1f} s")
