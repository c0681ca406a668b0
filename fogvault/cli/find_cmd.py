"""``fogvault find``: search snapshots for paths matching a pattern."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, lazy_list, log, open_repository
from fogvault.cli.ls_cmd import long_line, node_json

if TYPE_CHECKING:
    from fogvault.patterns import PathPatterns
    from fogvault.repo.repository import Repository
    from fogvault.repo.snapshot import Snapshot
    from fogvault.repo.tree import Node


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
    from fogvault.patterns import PathPatterns, pattern_warnings

    out = Printer.of(ctx)
    for line in pattern_warnings([pattern]):  # it would quietly find nothing
        log.warning("%s", line)
    matcher = PathPatterns([pattern])
    with open_repository(ctx) as repo:
        uids = [repo.resolve_snapshot(s) for s in snapshot] if snapshot else None
        snaps = [repo.load_snapshot(u) for u in uids] if uids else repo.snapshots()
        # Printed as found: the hits of every snapshot held at once ran to gigabytes.
        found = _hits_by_snapshot(repo, snaps, matcher)
        if out.json_mode:
            out.json_streamed(lazy_list(
                {"snapshot": snap.uid, "matches": lazy_list(node_json(p, n) for p, n in hits)}
                for snap, hits in found
            ))
            return
        for snap, hits in found:
            out.result(f"snapshot {snap.uid} of {snap.time:%Y-%m-%d %H:%M:%S}:")
            for path, node in hits:
                out.result("  " + long_line(path, node))


def _hits_by_snapshot(
    repo: Repository, snaps: list[Snapshot], matcher: PathPatterns
) -> Iterator[tuple[Snapshot, list[tuple[bytes, Node]]]]:
    """(snapshot, its matching entries) for each snapshot with at least one, the entries
    produced as the caller reads them (the first is looked for here, to know there is one)."""
    from fogvault.treewalk import walk

    for snap in snaps:
        hits = lazy_list((p, n) for p, n in walk(repo, snap.tree) if matcher.matches(p))
        if hits:
            yield snap, hits
