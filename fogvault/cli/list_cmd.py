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

    # kind -> its folder and the length of its ids: other names there are not its objects
    folders = {"snapshots": (fmt.SNAPSHOTS_DIR, fmt.UID_HEX_LEN),
               "index": (fmt.INDEX_DIR, fmt.ID_HEX_LEN), "packs": (fmt.DATA_DIR, fmt.ID_HEX_LEN),
               "keys": (fmt.KEYS_DIR, fmt.UID_HEX_LEN), "locks": (fmt.LOCKS_DIR, fmt.UID_HEX_LEN)}
    out = Printer.of(ctx)
    with open_repository(ctx, drop_empty_targets=True, load_index=kind == "blobs") as repo:
        if kind == "blobs":
            lines = sorted({f"{e.blob_type.name.lower()} {e.blob_id.hex()}" for e in repo.index})
        else:
            folder, length = folders[kind]
            ids = (name.rsplit("/", 1)[1] for name in repo.targets.list(folder))
            lines = sorted(i for i in ids if len(i) == length and _is_hex(i))
    if out.json_mode:
        out.json(lines)
    else:
        for line in lines:
            out.entry(line)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
