"""Trees parsed by msgspec: the fast path of :meth:`Tree.decode` (tree.py).

msgspec checks the types of the tree format (docs/format.md, section 13) as it parses, in C:
a field that is absent takes the reader's default, a null is refused, unknown fields are
skipped (their UTF-8 is checked here first, as the standard parser checks it).
:func:`typed_nodes` checks the rest with tree.py's own functions. It must never accept what
tree.py's standard path refuses, nor read a field differently; anything it refuses goes to that
path, which says what is wrong (tests/repo/test_tree.py compares the two). One known exception:
an unknown field nested within a few levels of the interpreter's recursion limit (about 990
levels) is skipped here where the standard parser gives up; the nodes are the same.
Imported on first use: msgspec is 1 MiB and 10 ms that commands which read no tree, and the
key derivation's peak, need not carry. (No ``from __future__ import annotations`` here:
msgspec reads these annotations at run time.)
"""

from typing import Annotated

import msgspec

from fogvault.errors import MalformedObject
from fogvault.repo.format import parse_hex_id
from fogvault.repo.tree import (
    DIR,
    FILE,
    NODE_TYPES,
    SYMLINK,
    TREE_VERSION,
    Node,
    _as_str,
    _unb64,
    bytes_field,
    check_name,
)

Unsigned = Annotated[int, msgspec.Meta(ge=0)]
Text = str | msgspec.UnsetType
UNSET = msgspec.UNSET


class TypedNode(msgspec.Struct):
    type: str
    name: Text = UNSET
    name_b64: Text = UNSET
    mode: Unsigned = 0
    uid: Unsigned = 0
    gid: Unsigned = 0
    size: Unsigned = 0
    dev: Unsigned = 0
    ino: Unsigned = 0
    nlink: Unsigned = 0
    rdev: Unsigned = 0
    flags: Unsigned = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    user: str = ""
    group: str = ""
    target: Text = UNSET
    target_b64: Text = UNSET
    xattrs: list[tuple[str, str]] = []
    content: list[str] = []
    subtree: Text = UNSET


class TypedTree(msgspec.Struct):
    version: int
    nodes: list[TypedNode]


_decoder = msgspec.json.Decoder(TypedTree)


def typed_nodes(data: bytes) -> list[Node]:
    """The nodes of a well-formed tree (not yet checked for order); MalformedObject or
    UnsafePath for anything else."""
    try:
        # msgspec checks the UTF-8 of the strings it decodes only; the standard parser refuses
        # invalid bytes anywhere, in an unknown field too (a C decode: 8 % of the parse).
        str(data, "utf-8")
        doc = _decoder.decode(data)
    except (UnicodeDecodeError, msgspec.DecodeError, RecursionError) as exc:  # and ValidationError
        raise MalformedObject(f"tree refused by msgspec: {exc}") from None
    if doc.version != TREE_VERSION:
        raise MalformedObject("tree of unknown version")
    nodes = []
    for n in doc.nodes:
        node_type = n.type
        if node_type not in NODE_TYPES:
            raise MalformedObject(f"unknown node type {node_type!r}")
        nodes.append(Node(
            check_name(bytes_field(n.name, n.name_b64, UNSET)), node_type, n.mode, n.uid,
            n.gid, n.user, n.group, n.mtime_ns, n.ctime_ns, n.size, n.dev, n.ino, n.nlink,
            n.rdev, bytes_field(n.target, n.target_b64, UNSET) if node_type == SYMLINK else b"",
            [(_unb64(k), _unb64(v)) for k, v in n.xattrs],
            [parse_hex_id(_as_str(c)) for c in n.content] if node_type == FILE else [],
            parse_hex_id(_as_str(n.subtree)) if node_type == DIR else None,
            n.flags,
        ))
    return nodes

