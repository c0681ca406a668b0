"""``fogvault find``: search snapshots for paths matching a pattern."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, lazy_list, open_repository
from fogvault.cli.ls_cmd import long_line, node_json

if TYPE_CHECKING:
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
    from fogvault.patterns import PathPatterns
    from fogvault.treewalk import walk

    out = Printer.of(ctx)
    matcher = PathPatterns([pattern])
    with open_repository(ctx) as repo:
        uids = [repo.resolve_snapshot(s) for s in snapshot] if snapshot else None
        snaps = [repo.load_snapshot(u) for u in uids] if uids else repo.snapshots()

        def hits(snap: Snapshot) -> Iterator[tuple[bytes, Node]]:
            return ((p, n) for p, n in walk(repo, snap.tree) if matcher.matches(p))

        # Printed as found: the hits of every snapshot held at once ran to gigabytes.
        if out.json_mode:
            out.json_streamed(lazy_list(
                {"snapshot": snap.uid, "matches": lazy_list(node_json(p, n) for p, n in found)}
                for snap, found in _with_hits(snaps, hits)
            ))
            return
        for snap, found in _with_hits(snaps, hits):
            out.line(f"snapshot {snap.uid} of {snap.time:%Y-%m-%d %H:%M:%S}:")
            for path, node in found:
                out.line("  " + long_line(path, node))


def _with_hits(
    snaps: list[Snapshot], hits: Callable[[Snapshot], Iterator[tuple[bytes, Node]]]
) -> Iterator[tuple[Snapshot, Iterator[tuple[bytes, Node]]]]:
    """(snapshot, its hits) for the snapshots with at least one hit; the hits are produced as
    the caller reads them (the first one is found here, to know there is one)."""
    for snap in snaps:
        found = hits(snap)
        for first in found:
            yield snap, itertools.chain([first], found)
            break
