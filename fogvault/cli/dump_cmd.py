"""``fogvault dump``: write one file of a snapshot, or a folder as a tar archive, to stdout."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, BinaryIO

import typer

from fogvault.cli.common import open_repository
from fogvault.cli.ls_cmd import lookup_in_snapshot
from fogvault.errors import DestinationUnwritable, UsageError


def register(app: typer.Typer) -> None:
    app.command("dump")(dump)


def dump(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="Snapshot uid (prefix) or 'latest'.")],
    path: Annotated[str, typer.Argument(help="File or folder in the snapshot ('/': all).")],
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Write here instead of to stdout.")
    ] = None,
) -> None:
    """Write a file of a snapshot to stdout as it is, or a folder (and what is below it) as a
    tar archive."""
    from fogvault.repo.tree import DIR, FILE
    from fogvault.restore.dump import dump_file, dump_tar

    if target is None and sys.stdout.isatty():
        raise UsageError("stdout is a terminal: redirect it, or give --target FILE")
    with open_repository(ctx, load_index=False) as repo, repo.lock(writes=False):
        repo.load_index()  # under the lock: a prune that ran since cannot have deleted its packs
        snap = repo.load_snapshot(repo.resolve_snapshot(snapshot))
        base = os.fsencode(path).rstrip(b"/")
        node, subtree = lookup_in_snapshot(repo, snap.tree, base)
        with _output(target) as out:
            if node is not None and node.type == FILE:
                dump_file(repo, node, out)
            else:
                dump_tar(repo, base or b"/", node, subtree if node is None or node.type == DIR
                         else None, out)


@contextlib.contextmanager
def _output(target: str | None) -> Iterator[BinaryIO]:
    """Standard output, or the file ``target`` (replaced; removed again if the dump fails)."""
    if target is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        out = open(target, "wb")  # noqa: SIM115 - closed below, removed on failure
    except OSError as exc:
        raise DestinationUnwritable(f"cannot write {target}: {exc.strerror}") from exc
    try:
        with out:
            yield out
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
