"""``fogvault snapshots``: list snapshots, oldest first.

With several targets, the list is the union over the reachable targets, and a snapshot that is
not on every target is marked (``*``, and its ``targets`` in JSON) until ``repair`` copies it.
A target that could not be listed (unreachable) may or may not hold a snapshot: one that every
reachable target holds is marked ``?`` instead, with a footnote naming the target, and JSON
gives those targets as ``targets_unknown``. A target that holds no repository (a disk not
mounted) holds no snapshot: it is left out of the counts and named in a footnote.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import HostFilter, PathFilter, Printer, TagFilter, open_repository, table
from fogvault.sizes import counted, format_size


def register(app: typer.Typer) -> None:
    app.command("snapshots")(snapshots)


def snapshots(
    ctx: typer.Context,
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
    latest: Annotated[int | None, typer.Option(min=1, help="Only the newest N.")] = None,
) -> None:
    """List snapshots (oldest first)."""
    from fogvault.repo.format import snapshot_name
    from fogvault.repo.snapshot import select_snapshots

    out = Printer.of(ctx)
    with open_repository(ctx, drop_empty_targets=True, load_index=False) as repo:
        found = select_snapshots(repo.snapshots(), host, tag or [], path or [])
        where = repo.snapshot_locations()
        # a target that holds no repository (a disk not mounted) holds no snapshot: it is left
        # out of the counts, and named below, not taken for one that could not be listed
        empty = [t.url for t in repo.targets.targets if t.empty]
        every = len(repo.targets.targets) - len(empty)
        unknown = [t.url for t in repo.targets.targets
                   if not t.active and not t.empty]  # after the listing
        missed = set(repo.targets.missed_deletes)
    if latest is not None:
        found = found[-latest:]
    if out.json_mode:
        out.json([{**s.to_json(), "targets": where.get(s.uid, []), "targets_unknown": unknown}
                  for s in found])
        return
    known = every - len(unknown)  # targets that were listed
    # held only by targets that missed its deletion (the ledger): repair deletes, not copies;
    # known whether or not some other target could be listed
    leaving = {s.uid for s in found if where.get(s.uid) and all(
        (url, snapshot_name(s.uid)) in missed for url in where[s.uid])}
    partial = {s.uid for s in found if len(where.get(s.uid, [])) < known} | leaving
    unsure = {s.uid for s in found if s.uid not in partial} if unknown else set()

    def mark(uid: str) -> str:
        return "-" if uid in leaving else "*" if uid in partial else "?" if uid in unsure else ""

    rows = [
        [s.uid + mark(s.uid), s.time.strftime("%Y-%m-%d %H:%M:%S"),
         s.host, ",".join(s.tags),
         "\n".join(s.paths) if len(s.paths) <= 1 else f"{s.paths[0]} (+{len(s.paths) - 1})",
         format_size(s.summary.total_bytes)]
        + ([f"{len(where.get(s.uid, []))}/{every}{mark(s.uid)}"] if every > 1 else [])
        for s in found
    ]
    headers = ["UID", "Time", "Host", "Tags", "Paths", "Size"] + (["Targets"] if every > 1
                                                                   else [])
    out.result(table(rows, headers))
    out.line(counted(len(found), "snapshot"))
    if partial - leaving:
        scope = f"{known} reachable" if unknown else f"{every}"
        out.line(f"* on fewer than all {scope} targets: 'fogvault repair' copies them")
    if leaving:
        out.line("- forgotten while the targets that still hold it were away: 'fogvault repair' "
                 "deletes it there")
    if unsure:
        out.line(f"? on every reachable target; not known for {', '.join(unknown)}, which could "
                 "not be listed")
    if empty:
        out.line(f"left out: {', '.join(empty)}, which holds no repository (not mounted?)")
