"""``fogvault find``: search snapshots for paths matching a pattern."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    HostFilter,
    PathFilter,
    Printer,
    TagFilter,
    lazy_list,
    log,
    open_repository,
)
from fogvault.cli.ls_cmd import long_line, node_json
from fogvault.errors import FogVaultError, PartialSuccess

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
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
) -> None:
    """Find entries matching PATTERN in every snapshot (or the ones given, or those the
    filters select)."""
    from fogvault.maintenance.selection import chosen_snapshots
    from fogvault.patterns import PathPatterns, pattern_warnings

    out = Printer.of(ctx)
    for line in pattern_warnings([pattern]):  # it would quietly find nothing
        log.warning("%s", line)
    matcher = PathPatterns([pattern])
    with open_repository(ctx, drop_empty_targets=True) as repo:
        snaps = chosen_snapshots(repo, snapshot or [], host, tag or [], path or [])
        # Printed as found: the hits of every snapshot held at once ran to gigabytes.
        unsearched: list[str] = []
        found = _hits_by_snapshot(repo, snaps, matcher, unsearched)
        if out.json_mode:
            out.json_streamed(lazy_list(
                {"snapshot": snap.uid, "matches": lazy_list(node_json(p, n) for p, n in hits)}
                for snap, hits in found
            ))
        else:
            for snap, hits in found:
                out.result(f"snapshot {snap.uid} of {snap.time:%Y-%m-%d %H:%M:%S}:")
                for path, node in hits:
                    out.entry("  " + long_line(path, node))
    if unsearched:  # the other snapshots were searched: a partial result, exit 3
        raise PartialSuccess("; ".join(unsearched))


def _hits_by_snapshot(
    repo: Repository, snaps: list[Snapshot], matcher: PathPatterns, unsearched: list[str]
) -> Iterator[tuple[Snapshot, list[tuple[bytes, Node]]]]:
    """(snapshot, its matching entries) for each snapshot with at least one, the entries
    produced as the caller reads them (the first is looked for here, to know there is one).
    A snapshot whose trees cannot all be read is searched as far as they can, and named in
    ``unsearched``."""
    for snap in snaps:
        hits = lazy_list(_matching(_walk_noting(repo, snap, unsearched), matcher))
        if hits:
            yield snap, hits


def _matching(entries: Iterator[tuple[bytes, Node]], matcher: PathPatterns
              ) -> Iterator[tuple[bytes, Node]]:
    """The entries that match, and everything below a folder that matches: the pattern rules
    are backup's excludes', where a folder takes what it holds with it (restic's find lists
    them too). The walk gives a folder before its contents."""
    from fogvault.repo.tree import DIR

    inside = None  # the path of the matched folder being walked through, with its "/"
    for path, node in entries:
        if inside is not None and path.startswith(inside):
            yield path, node
            continue
        inside = None
        if matcher.matches(path):
            yield path, node
            if node.type == DIR:
                inside = path.rstrip(b"/") + b"/"


def _walk_noting(repo: Repository, snap: Snapshot, unsearched: list[str]
                 ) -> Iterator[tuple[bytes, Node]]:
    """The snapshot's entries; a tree that cannot be read ends the walk, noted."""
    from fogvault.treewalk import walk

    try:
        yield from walk(repo, snap.tree)
    except FogVaultError as exc:
        log.warning("snapshot %s: %s", snap.uid, exc)
        unsearched.append(f"snapshot {snap.uid} was not searched in full ({exc})")
