"""Building hostile repositories by hand: tree blobs and snapshots written directly.

The backup engine only ever writes trees that :meth:`Tree.encode` produces from a real file
system, so it cannot produce the malicious trees that a compromised or buggy writer could
store. These helpers seal arbitrary JSON (or raw bytes) as tree blobs through the real
:class:`PackWriter`, so the blobs are authentic: a restore can only refuse them for what they
*say*, never because they fail to decrypt.

Typical use::

    data = store(repo, DATA, b"payload")
    sub = store_tree(repo, [file_node("..", [data], size=7)])
    root = store_tree(repo, [dir_node("home", sub)])
    snapshot = save_snapshot(repo, root)
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fogvault.repo.format import BlobType
from fogvault.repo.pack import seal_blob
from fogvault.repo.packer import PackWriter
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid, now

DATA, TREE = BlobType.DATA, BlobType.TREE
Name = str | bytes


def store(repo: Repository, blob_type: BlobType, data: bytes) -> bytes:
    """Seal ``data`` as one blob in its own pack, index it, and return its id."""
    blob_id = repo.blob_id(data)
    writer = PackWriter(repo)
    try:
        if writer.reserve(blob_id):
            sealed = seal_blob(repo.master.encryption, blob_type, blob_id, data, 3)
            writer.add(blob_type, blob_id, sealed, len(data))
        writer.flush()
    finally:
        writer.close()
    return blob_id


def tree_bytes(nodes: list[dict[str, Any]], *, sort: bool = True) -> bytes:
    """Tree JSON as the decoder reads it, without any of the encoder's validation."""
    if sort:
        nodes = sorted(nodes, key=_sort_key)
    doc = {"version": 1, "nodes": nodes}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def store_tree(repo: Repository, nodes: list[dict[str, Any]], *, sort: bool = True) -> bytes:
    return store(repo, TREE, tree_bytes(nodes, sort=sort))


def save_snapshot(repo: Repository, tree: bytes, paths: list[str] | None = None) -> Snapshot:
    snapshot = Snapshot(uid=new_uid(), time=now(), host="crafted", user="mallory",
                        paths=paths or ["/crafted"], tree=tree)
    repo.save_snapshot(snapshot)
    return snapshot


# ---- nodes -------------------------------------------------------------------------------


def _name_fields(name: Name, key: str = "name") -> dict[str, str]:
    """A str is stored as JSON text verbatim (so it may hold NUL or '/'); bytes as base64."""
    if isinstance(name, bytes):
        return {f"{key}_b64": base64.b64encode(name).decode()}
    return {key: name}


def _sort_key(node: dict[str, Any]) -> bytes:
    if "name_b64" in node:
        return base64.b64decode(node["name_b64"])
    return str(node.get("name", "")).encode("utf-8", "surrogatepass")


def file_node(name: Name, content: list[bytes], size: int, **extra: Any) -> dict[str, Any]:
    return {"type": "file", **_name_fields(name), "mode": 0o644, "size": size,
            "mtime_ns": 1_600_000_000_000_000_000,
            "content": [c.hex() for c in content], **extra}


def dir_node(name: Name, subtree: bytes, **extra: Any) -> dict[str, Any]:
    return {"type": "dir", **_name_fields(name), "mode": 0o755,
            "mtime_ns": 1_600_000_000_000_000_000, "subtree": subtree.hex(), **extra}


def symlink_node(name: Name, target: Name, **extra: Any) -> dict[str, Any]:
    return {"type": "symlink", **_name_fields(name), **_name_fields(target, "target"),
            "mode": 0o777, **extra}


def fifo_node(name: Name, **extra: Any) -> dict[str, Any]:
    return {"type": "fifo", **_name_fields(name), "mode": 0o644, **extra}
