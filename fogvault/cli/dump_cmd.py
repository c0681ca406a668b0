"""``fogvault dump``: write one file of a snapshot, or a folder as a tar or zip archive, to
stdout."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, BinaryIO

import typer

from fogvault.cli import streams
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
    was (and no partial one). A symlink is followed (the file it names is written), and what
    is not a file (a device, a fifo) is written into, as a shell's ``>`` does: it was replaced
    by a file, even ``/dev/null``."""
    if target is None:
        sys.stdout.flush()
        yield from _written(_StandardOutput(), "standard output")
        return
    target = os.path.realpath(target)
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        special = False  # not there yet: made as a file
    if special:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise DestinationUnwritable(f"cannot write {target}: {exc.strerror}") from exc
        with os.fdopen(fd, "wb") as out:
            yield from _written(out, target)
        return
    folder = os.path.dirname(target)
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


def _written(out: BinaryIO, name: str) -> Iterator[BinaryIO]:
    """``out`` to write the dump to, flushed after; a failure (a full disk) as one line, and
    a reader that went away as the end of the dump (see streams)."""
    try:
        yield out
        out.flush()
    except BrokenPipeError as exc:
        raise streams.OutputStopped from exc
    except OSError as exc:
        raise DestinationUnwritable(f"cannot write to {name}: {exc.strerror}") from exc


class _StandardOutput(io.RawIOBase):
    """Stdout's descriptor, written as the dump comes and raising what fails: sys.stdout
    would keep the error and let the dump read on (see streams)."""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        streams.write_all(sys.stdout.fileno(), data)
        return len(data)
