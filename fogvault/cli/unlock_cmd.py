"""``fogvault unlock``: remove stale locks (or all locks)."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.sizes import counted


def register(app: typer.Typer) -> None:
    app.command("unlock")(unlock)


def unlock(
    ctx: typer.Context,
    remove_all: Annotated[
        bool, typer.Option("--remove-all", help="Also remove live locks (be sure!).")
    ] = False,
) -> None:
    """Remove locks left by processes that are gone."""
    from fogvault.repo.lock import remove_locks

    out = Printer.of(ctx)
    with open_repository(ctx, load_index=False) as repo:
        done = remove_locks(repo.lock_store(), all_locks=remove_all)
    if out.json_mode:  # unreadable: the ids of lock files that cannot be read
        out.json({"removed": [lock.describe() for lock in done.removed],
                  "unreadable": done.unreadable, "unreadable_removed": remove_all})
        return
    for lock in done.removed:
        out.line(f"removed {lock.describe()}")
    out.line(f"{counted(len(done.removed), 'lock')} removed")
    if done.unreadable:
        what = counted(len(done.unreadable), "lock file")
        out.line(f"{what} that cannot be read {'removed' if remove_all else 'kept'} "
                 f"({', '.join(done.unreadable)}); they hold nothing back"
                 + ("" if remove_all else ": 'unlock --remove-all' removes them"))
