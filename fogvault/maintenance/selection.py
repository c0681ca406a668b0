"""Which snapshots a command that changes snapshots works on (``tag``, ``rewrite``): those
named by uid (prefixes allowed), or else every one that the --host/--tag/--path filters select
(all, without filters); naming uids and filtering at once is refused, as it would be unclear
whether the filters narrow the uids down."""

from __future__ import annotations

from collections.abc import Sequence

from fogvault.errors import UsageError
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, newest_first, select_snapshots


def check_selection(uids: Sequence[str], host: str | None, tags: Sequence[str],
                    paths: Sequence[str]) -> None:
    if uids and (host is not None or tags or paths):
        raise UsageError("give snapshot uids or --host/--tag/--path filters, not both")


def chosen_snapshots(repo: Repository, uids: Sequence[str], host: str | None,
                     tags: Sequence[str], paths: Sequence[str]) -> list[Snapshot]:
    """The snapshots named by ``uids`` (where ``latest`` is the latest the filters select,
    for commands that take both, as restic's ``find``), or else those the filters select;
    oldest first."""
    if not uids:
        return select_snapshots(repo.snapshots(), host, tags, paths)
    named = dict.fromkeys(repo.resolve_snapshot(u, host=host, tags=tags, paths=paths)
                          for u in uids)
    # each loaded by itself: a named snapshot that cannot be read is an error, not left out,
    # and the others' manifests are not read
    return sorted(map(repo.load_snapshot, named), key=newest_first, reverse=True)
