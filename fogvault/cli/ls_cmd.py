"""``fogvault ls``: list the files in a snapshot."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from fogvault.cli.common import (
    SNAPSHOT_REF,
    LatestHost,
    LatestPath,
    LatestTag,
    Printer,
    lazy_list,
    load_snapshot_ref,
    open_repository,
)

if TYPE_CHECKING:
    from fogvault.repo.tree import Node

_TYPE_CHAR = {"file": "-", "dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b"}


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)


def local_time(mtime_ns: int) -> datetime | None:
    """A time stored in nanoseconds, in the local time zone to the microsecond (from the
    integer: a float loses the last digits), or None outside years 1 to 9999, which datetime
    cannot hold (a snapshot may record any integer)."""
    seconds, nanoseconds = divmod(mtime_ns, 10**9)
    try:
        return datetime.fromtimestamp(seconds).replace(microsecond=nanoseconds // 1000
                                                       ).astimezone()
    except (ValueError, OverflowError, OSError):
        return None


def node_json(path: bytes, node: Node) -> dict:
    from fogvault.fsmeta import flag_letters
    from fogvault.repo.tree import SYMLINK

    return {
        "path": os.fsdecode(path), "name": os.fsdecode(node.name), "type": node.type,
        "mode": node.mode, "size": node.size, "uid": node.uid, "gid": node.gid,
        "user": node.user, "group": node.group,
        "mtime": when.isoformat() if (when := local_time(node.mtime_ns)) else None,
        "mtime_ns": node.mtime_ns,
        **({"target": os.fsdecode(node.target)} if node.type == SYMLINK else {}),
        **({"flags": flag_letters(node.flags)} if node.flags else {}),
    }


def long_line(path: bytes, node: Node) -> str:
    from fogvault.repo.tree import SYMLINK

    mode = _TYPE_CHAR[node.type] + stat.filemode(node.mode & 0o7777)[1:]  # permission bits
    time = local_time(node.mtime_ns)
    when = time.strftime("%Y-%m-%d %H:%M:%S") if time else f"@{node.mtime_ns // 10**9:>18}"
    owner = f"{node.user or node.uid}/{node.group or node.gid}"
    link = f" -> {os.fsdecode(node.target)}" if node.type == SYMLINK else ""
    return f"{mode} {owner:>15} {node.size:>12} {when} {os.fsdecode(path)}{link}"


def ls(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help=SNAPSHOT_REF)],
    path: Annotated[str, typer.Argument(help="Folder or file in the snapshot.")] = "/",
    long: Annotated[bool, typer.Option("-l", "--long", help="Show metadata.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-R", help="Descend.")] = False,
    host: LatestHost = None,
    tag: LatestTag = None,
    path_filter: LatestPath = None,
) -> None:
    """List entries of a snapshot below PATH (one level unless --recursive)."""
    from fogvault.repo.tree import DIR
    from fogvault.treewalk import lookup_path, walk

    out = Printer.of(ctx)
    with open_repository(ctx, drop_empty_targets=True) as repo:
        snap = load_snapshot_ref(repo, snapshot, host=host, tags=tag, paths=path_filter)
        base = os.fsencode(path).rstrip(b"/")
        node, tree_id = lookup_path(repo, snap.tree, base)
        if node is not None and node.type != DIR:
            entries: Iterable[tuple[bytes, Node]] = [(base, node)]
        elif recursive:
            entries = walk(repo, tree_id, base)  # printed as it is walked
        else:
            entries = [(base + b"/" + n.name, n) for n in repo.load_tree(tree_id).nodes]
        if out.json_mode:
            out.json_streamed(lazy_list(node_json(p, n) for p, n in entries))
            return
        for entry_path, entry in entries:
            out.entry(long_line(entry_path, entry) if long else os.fsdecode(entry_path))
