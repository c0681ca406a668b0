"""Tree blobs: one directory's entries, sorted by name, stored as a content-addressed blob.

Names are bytes (POSIX file names are bytes; non-UTF-8 names must round-trip). Encoding is
canonical JSON (sorted keys, no spaces) so an unchanged directory produces the same bytes and
hence the same blob id: an unchanged subtree costs nothing in a new snapshot.

Decoding validates everything a hostile repository could abuse: names that are empty, ``.``,
``..``, contain ``/`` or NUL, duplicates, unknown types, malformed ids. See docs/format.md
("Trees").
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from fogvault.errors import FogVaultError, MalformedObject, UnsafePath
from fogvault.repo.format import parse_hex_id

TREE_VERSION = 1
FILE, DIR, SYMLINK = "file", "dir", "symlink"
FIFO, CHARDEV, BLOCKDEV = "fifo", "chardev", "blockdev"
NODE_TYPES = frozenset({FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV})
# Non-negative fields first, then the times (negative before 1970): from_json relies on it.
_UINT_FIELDS = ("mode", "uid", "gid", "size", "dev", "ino", "nlink", "rdev", "flags")
_INT_FIELDS = (*_UINT_FIELDS, "mtime_ns", "ctime_ns")
_UINT_COUNT = len(_UINT_FIELDS)
_ZEROS = (0,) * len(_INT_FIELDS)
_INT_TYPE = {int}  # bool is a subclass of int, and is refused


def check_name(name: bytes) -> bytes:
    """Refuse any entry name that could address something other than one child of its folder."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise UnsafePath(f"unsafe file name in snapshot: {name!r}")
    return name


@dataclass(slots=True)
class Node:
    name: bytes
    type: str
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    dev: int = 0
    ino: int = 0
    nlink: int = 1
    rdev: int = 0
    target: bytes = b""  # symlink target
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)
    content: list[bytes] = field(default_factory=list)  # blob ids of a file's chunks
    subtree: bytes | None = None  # tree blob id of a directory
    #: Linux inode flags (chattr's), the bits of fsmeta.STORED_FLAGS; 0: none, or not read
    #: (the snapshot's ``flags_read`` tells which). Last: positional callers predate it.
    flags: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        _put_bytes(out, "name", self.name)
        for key in _INT_FIELDS:
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.user:
            out["user"] = self.user
        if self.group:
            out["group"] = self.group
        if self.type == SYMLINK:
            _put_bytes(out, "target", self.target)
        if self.xattrs:
            out["xattrs"] = [[_b64(k), _b64(v)] for k, v in self.xattrs]
        if self.type == FILE:
            out["content"] = [blob_id.hex() for blob_id in self.content]
        if self.subtree is not None:
            out["subtree"] = self.subtree.hex()
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Node:
        # Hot path (every entry of every tree a backup, restore, check or prune reads): one
        # lookup per field and one positional constructor call, validation in bulk.
        if not isinstance(obj, dict):
            raise MalformedObject("tree node is not an object")
        get = obj.get
        node_type = get("type")
        if type(node_type) is not str or node_type not in NODE_TYPES:
            raise MalformedObject(f"unknown node type {node_type!r}")
        name = check_name(_get_bytes(obj, "name"))
        ints = list(map(get, _INT_FIELDS, _ZEROS))
        if set(map(type, ints)) != _INT_TYPE or min(ints[:_UINT_COUNT]) < 0:
            raise MalformedObject(f"bad {_bad_int_field(ints)} in tree node")
        mode, uid, gid, size, dev, ino, nlink, rdev, flags, mtime_ns, ctime_ns = ints
        return cls(
            name, node_type, mode, uid, gid,
            _get_str(obj, "user"), _get_str(obj, "group"), mtime_ns, ctime_ns, size, dev, ino,
            nlink, rdev,
            _get_bytes(obj, "target") if node_type == SYMLINK else b"",
            [(_unb64(k), _unb64(v)) for k, v in _get_pairs(obj["xattrs"])]
            if "xattrs" in obj else [],
            _get_content(obj) if node_type == FILE else [],
            _get_subtree(obj) if node_type == DIR else None,
            flags,
        )


@dataclass(slots=True)
class Tree:
    nodes: list[Node] = field(default_factory=list)
    _by_name: dict[bytes, Node] | None = field(default=None, repr=False, compare=False)

    def encode(self) -> bytes:
        nodes = sorted(self.nodes, key=lambda n: n.name)
        doc = {"version": TREE_VERSION, "nodes": [n.to_json() for n in nodes]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Tree:
        """Parse and validate a tree blob (docs/format.md, "Trees").

        msgspec parses a well-formed tree and checks its types in C, twice as fast as the
        standard parser and :meth:`Node.from_json` (docs/performance-log.md, "Session 13"). Whatever
        that path refuses goes through the standard one, which gives the precise error, and
        reads what msgspec cannot: lone surrogate escapes, which the version 1 writer puts in
        user and group names that are not UTF-8 (docs/format.md, section 22), or UTF-16."""
        from fogvault.repo.tree_typed import typed_nodes  # on first use (tree_typed.py)

        try:
            return cls(_checked_order(typed_nodes(data)))
        except FogVaultError:
            pass  # the standard parser decides (outside the handler: no chained traceback)
        return cls(_checked_order(_json_nodes(data)))

    def find(self, name: bytes) -> Node | None:
        """The node called ``name`` (a dict built on first use: folders can be large)."""
        if self._by_name is None:
            self._by_name = {node.name: node for node in self.nodes}
        return self._by_name.get(name)


def _json_nodes(data: bytes) -> list[Node]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested too deep
        raise MalformedObject("tree is not valid JSON") from exc
    if not isinstance(doc, dict) or not _is_version(doc.get("version"), TREE_VERSION):
        raise MalformedObject("tree of unknown version")
    raw_nodes = doc.get("nodes")
    if not isinstance(raw_nodes, list):
        raise MalformedObject("tree without node list")
    return [Node.from_json(n) for n in raw_nodes]


def _checked_order(nodes: list[Node]) -> list[Node]:
    names = [n.name for n in nodes]
    if names != sorted(set(names)):
        raise MalformedObject("tree nodes are not sorted or have duplicate names")
    return nodes


def _is_version(value: Any, expected: int) -> bool:
    return type(value) is int and value == expected


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    try:
        return base64.b64decode(_as_str(text), validate=True)
    except ValueError as exc:
        raise MalformedObject("bad base64 in tree") from exc


def _put_bytes(out: dict[str, Any], key: str, value: bytes) -> None:
    """Store UTF-8 text as is; anything else as base64 under ``<key>_b64``."""
    try:
        out[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[f"{key}_b64"] = _b64(value)


def _get_bytes(obj: dict[str, Any], key: str) -> bytes:
    return bytes_field(obj.get(key, _ABSENT), obj.get(f"{key}_b64", _ABSENT), _ABSENT)


_ABSENT = object()


def bytes_field(text: Any, b64: Any, absent: Any) -> bytes:
    """A name or link target (format.md 13.2) from the values of ``<key>`` and ``<key>_b64``;
    ``absent`` stands for a field that is not there."""
    if b64 is not absent:
        return _unb64(b64)
    return b"" if text is absent else _as_str(text).encode("utf-8", "surrogatepass")


def _bad_int_field(values: list[Any]) -> str:
    """The first of ``_INT_FIELDS`` whose value is not a valid integer (for the message)."""
    for index, (key, value) in enumerate(zip(_INT_FIELDS, values, strict=True)):
        if type(value) is not int or (index < _UINT_COUNT and value < 0):
            return key
    raise AssertionError("no bad field")


def _get_content(obj: dict[str, Any]) -> list[bytes]:
    content = obj.get("content", [])
    if not isinstance(content, list):
        raise MalformedObject("file content is not a list")
    return [parse_hex_id(_as_str(c)) for c in content]


def _get_subtree(obj: dict[str, Any]) -> bytes:
    if "subtree" not in obj:
        raise MalformedObject("directory without subtree")
    return parse_hex_id(_as_str(obj["subtree"]))


def _get_str(obj: dict[str, Any], key: str) -> str:
    return _as_str(obj.get(key, ""))


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedObject("expected a string in tree")
    return value


def _get_pairs(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 for p in value
    ):
        raise MalformedObject("bad xattrs in tree")
    return [(p[0], p[1]) for p in value]
