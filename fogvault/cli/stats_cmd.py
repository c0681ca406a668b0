"""``fogvault stats``: sizes of one snapshot or of the whole repository."""

from __future__ import annotations

from dataclasses import asdict

import typer

from fogvault.cli.common import HostFilter, PathFilter, Printer, TagFilter, open_repository
from fogvault.sizes import format_size


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)


def stats(
    ctx: typer.Context,
    snapshot: str = typer.Argument("", help="Default: all (that the filters select)."),
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
) -> None:
    """Restore size, deduplicated and stored size, compression and deduplication ratios.

    Restore size: what a restore writes, a file counted each time it appears. Deduplicated
    size: the distinct blobs (file data and folder listings), uncompressed. Stored size: the
    same compressed and encrypted. Compression: deduplicated over stored size. Deduplication:
    restore size over the distinct file data, uncompressed (1.00x when nothing is stored
    twice; folder listings are left out, as a restore does not write them).
    """
    from fogvault.maintenance.selection import chosen_snapshots
    from fogvault.treewalk import stats as tree_stats

    out = Printer.of(ctx)
    with open_repository(ctx, drop_empty_targets=True) as repo:
        chosen = chosen_snapshots(repo, [snapshot] if snapshot else [], host, tag or [],
                                  path or [])
        result = tree_stats(repo, [s.tree for s in chosen])
    if out.json_mode:
        out.json({**asdict(result), "compression_ratio": round(result.compression_ratio, 3),
                  "dedup_ratio": round(result.dedup_ratio, 3)})
        return
    out.result(f"Snapshots:          {result.snapshots}")
    out.result(f"Files, folders:     {result.files}, {result.dirs}")
    out.result(f"Restore size:       {format_size(result.restore_size)}")
    out.result(f"Deduplicated size:  {format_size(result.raw_size)} in "
               f"{result.unique_blobs} blobs")
    out.result(f"Stored size:        {format_size(result.stored_size)}")
    out.result(f"Compression ratio:  {result.compression_ratio:.2f}x")
    out.result(f"Deduplication:      {result.dedup_ratio:.2f}x")
