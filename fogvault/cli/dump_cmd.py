"""``fogvault dump``: write one file of a snapshot, or a folder as a tar or zip archive, to
stdout."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, BinaryIO

import typer

from fogvault.cli.common import (
    SNAPSHOT_REF,
    LatestHost,
    LatestPath,
    LatestTag,
    load_snapshot_ref,
    open_repository,
)
from fogvault.errors import DestinationUnwritable, UsageError


class ArchiveFormat(StrEnum):
    tar = "tar"
    zip = "zip"


def register(app: typer.Typer) -> None:
    app.command("dump")(dump)


def dump(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help=SNAPSHOT_REF)],
    path: Annotated[str, typer.Argument(help="File or folder in the snapshot ('/': all).")],
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Write here instead of to stdout.")
    ] = None,
    archive: Annotated[
        ArchiveFormat, typer.Option("--archive", help="The archive format for a folder.")
    ] = ArchiveFormat.tar,
    host: LatestHost = None,
    tag: LatestTag = None,
    path_filter: LatestPath = None,
) -> None:
    """Write a file of a snapshot to stdout as it is, or a folder (and what is below it) as a
    tar or zip archive."""
    from fogvault.repo.tree import DIR, FILE
    from fogvault.restore.dump import dump_file, dump_tar
    from fogvault.restore.dump_zip import dump_zip
    from fogvault.treewalk import lookup_path

    if target is None and sys.stdout.isatty():
        raise UsageError("stdout is a terminal: redirect it, or give --target FILE")
    with (open_repository(ctx, drop_empty_targets=True, load_index=False) as repo,
          repo.lock(writes=False)):
        repo.load_index()  # under the lock: a prune that ran since cannot have deleted its packs
        snap = load_snapshot_ref(repo, snapshot, host=host, tags=tag, paths=path_filter)
        base = os.fsencode(path).rstrip(b"/")
        node, subtree = lookup_path(repo, snap.tree, base)
        with _output(target) as out:
            if node is not None and node.type == FILE:
                dump_file(repo, node, out)
            else:
                dump_archive = dump_zip if archive == ArchiveFormat.zip else dump_tar
                dump_archive(repo, base or b"/", node,
                             subtree if node is None or node.type == DIR else None, out)


@contextlib.contextmanager
def _output(target: str | None) -> Iterator[BinaryIO]:
    """Standard output, or the file ``target``: written under a temporary name beside it and
    renamed when the dump is complete, so that a dump that fails leaves an existing file as it
    was (and no partial one)."""
    if target is None:
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except OSError as exc:  # a full disk, a reader that went away
            raise DestinationUnwritable(f"cannot write to standard output: {exc.strerror}"
                                        ) from exc
        return
    folder = os.path.dirname(os.path.abspath(target))
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".fogvault-dump-")
    except OSError as exc:
        raise DestinationUnwritable(f"cannot write {target}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise DestinationUnwritable(f"cannot write {target}: {exc.strerror}") from exc
        raise
