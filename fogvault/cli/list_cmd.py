"""``fogvault list``: the ids of one kind of object, one a line (restic's ``list``), for
scripts and debugging."""

from __future__ import annotations

from typing import Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.errors import UsageError

KINDS = ("snapshots", "index", "packs", "keys", "locks", "blobs")


def register(app: typer.Typer) -> None:
    app.command("list")(list_objects)


def list_objects(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="snapshots, index, packs, keys, locks or blobs.")],
) -> None:
    """List the ids of snapshots, index files, packs, keys, locks (on any target), or blobs
    (from the index: type and id)."""
    if kind not in KINDS:
        raise UsageError(f"list takes one of: {', '.join(KINDS)}")
    from fogvault.repo import format as fmt

    folders = {"snapshots": fmt.SNAPSHOTS_DIR, "index": fmt.INDEX_DIR, "packs": fmt.DATA_DIR,
               "keys": fmt.KEYS_DIR, "locks": fmt.LOCKS_DIR}
    out = Printer.of(ctx)
    with open_repository(ctx, load_index=kind == "blobs") as repo:
        if kind == "blobs":
            lines = [f"{e.blob_type.name.lower()} {e.blob_id.hex()}" for e in repo.index]
        else:
            lines = sorted(name.rsplit("/", 1)[1] for name in repo.targets.list(folders[kind]))
    if out.json_mode:
        out.json(lines)
    else:
        for line in lines:
            out.result(line)
