"""``fogvault cat``: print one decrypted object, for debugging."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import Printer, open_repository
from fogvault.errors import FogVaultError, UsageError

if TYPE_CHECKING:
    from fogvault.repo.index import IndexFile
    from fogvault.repo.repository import Repository

KINDS = ("config", "snapshot", "index", "blob", "key")


def register(app: typer.Typer) -> None:
    app.command("cat")(cat)


def cat(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="config, snapshot, index, blob or key.")],
    object_id: Annotated[str, typer.Argument(help="Uid, id or a unique prefix of one.")] = "",
) -> None:
    """Print config | snapshot UID | index ID | blob ID | key ID (decrypted)."""
    if kind not in KINDS:
        raise UsageError(f"cat takes one of: {', '.join(KINDS)}")
    if kind != "config" and not object_id:
        raise UsageError(f"cat {kind} needs an id")
    if kind == "config" and object_id:
        raise UsageError("cat config takes no id")
    from fogvault.repo.format import parse_hex_id

    with open_repository(ctx, drop_empty_targets=True, load_index=kind == "blob") as repo:
        if kind == "blob":
            sys.stdout.buffer.write(repo.load_blob(parse_hex_id(object_id.lower())))
            return
        Printer.of(ctx).json(_document(repo, kind, object_id))


def _document(repo: Repository, kind: str, object_id: str) -> object:
    if kind == "config":
        return json.loads(repo.config.encode())
    if kind == "snapshot":
        return repo.load_snapshot(repo.resolve_snapshot(object_id)).to_json()
    if kind == "key":
        matches = [k for k in repo.key_files() if k.key_id.startswith(object_id)]
        if len(matches) != 1:
            raise FogVaultError(f"no unique key matches {object_id!r}")
        return json.loads(matches[0].encode())
    from fogvault.repo.format import INDEX_DIR

    names = [n for n in repo.targets.list(INDEX_DIR) if n[len(INDEX_DIR):].startswith(object_id)]
    if len(names) != 1:
        raise FogVaultError(f"no unique index file matches {object_id!r}")
    return _index_json(repo.read_index_file(names[0]))


def _index_json(index_file: IndexFile) -> dict:
    return {
        "supersedes": [i.hex() for i in index_file.supersedes],
        "packs": [
            {
                "id": pack_id.hex(),
                "blobs": [
                    {"id": e.blob_id.hex(), "type": e.blob_type.name.lower(), "offset": e.offset,
                     "length": e.length, "raw_length": e.raw_length}
                    for e in entries
                ],
            }
            for pack_id, entries in index_file.packs.items()
        ],
    }
