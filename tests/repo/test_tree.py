"""The tree codec: every field round-trips exactly, and each malformed field is refused with
a MalformedObject that names it (docs/format.md, section 13)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogvault.errors import MalformedObject, UnsafePath
from fogvault.repo.tree import (
    BLOCKDEV,
    CHARDEV,
    DIR,
    FIFO,
    FILE,
    SYMLINK,
    Node,
    Tree,
    _json_nodes,
)
from fogvault.repo.tree_typed import typed_nodes

U64 = st.integers(0, 2**64 - 1)
TIME = st.integers(-(2**63), 2**63 - 1)
IDS = st.binary(min_size=32, max_size=32)
NAMES = st.binary(min_size=1, max_size=12).filter(
    lambda n: n not in (b".", b"..") and b"/" not in n and b"\0" not in n)


@st.composite
def nodes(draw: st.DrawFn, name: bytes) -> Node:
    kind = draw(st.sampled_from([FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV]))
    xattrs = draw(st.dictionaries(st.binary(min_size=1, max_size=8), st.binary(max_size=8),
                                  max_size=3))
    return Node(
        name=name, type=kind, mode=draw(st.integers(0, 0o7777)), uid=draw(U64),
        gid=draw(U64), user=draw(st.text(max_size=6)), group=draw(st.text(max_size=6)),
        mtime_ns=draw(TIME), ctime_ns=draw(TIME), size=draw(U64) if kind == FILE else 0,
        dev=draw(U64), ino=draw(U64), nlink=draw(U64),
        rdev=draw(U64) if kind in (CHARDEV, BLOCKDEV) else 0,
        target=draw(st.binary(max_size=12)) if kind == SYMLINK else b"",
        xattrs=sorted(xattrs.items()),
        content=draw(st.lists(IDS, max_size=3)) if kind == FILE else [],
        subtree=draw(IDS) if kind == DIR else None,
    )


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    names = sorted(draw(st.sets(NAMES, max_size=6)))
    return Tree([draw(nodes(name)) for name in names])


@settings(max_examples=300, deadline=None)
@given(trees())
def test_every_field_round_trips(tree: Tree) -> None:
    data = tree.encode()
    decoded = Tree.decode(data)
    assert decoded.nodes == tree.nodes
    assert decoded.encode() == data


def _tree(**fields: object) -> bytes:
    node = {"type": "file", "name": "f", "content": [], **fields}
    return json.dumps({"version": 1, "nodes": [node]}).encode()


@pytest.mark.parametrize("key", ["mode", "uid", "gid", "size", "dev", "ino", "nlink", "rdev",
                                 "mtime_ns", "ctime_ns"])
@pytest.mark.parametrize("value", [True, 1.0, "1", None, [1]])
def test_integer_fields_must_be_integers(key: str, value: object) -> None:
    with pytest.raises(MalformedObject, match=f"bad {key} "):
        Tree.decode(_tree(**{key: value}))


@pytest.mark.parametrize("key", ["mode", "uid", "gid", "size", "dev", "ino", "nlink", "rdev"])
def test_only_times_may_be_negative(key: str) -> None:
    with pytest.raises(MalformedObject, match=f"bad {key} "):
        Tree.decode(_tree(**{key: -1}))
    node = Tree.decode(_tree(mtime_ns=-5, ctime_ns=-7)).nodes[0]
    assert (node.mtime_ns, node.ctime_ns) == (-5, -7)


@pytest.mark.parametrize("node_type", ["socket", None, 1, ["file"], {"a": 1}])
def test_unknown_or_unhashable_types_are_malformed(node_type: object) -> None:
    with pytest.raises(MalformedObject, match="unknown node type"):
        Tree.decode(_tree(type=node_type))


@pytest.mark.parametrize("fields", [
    {"user": 1}, {"group": None}, {"name": 5}, {"name_b64": None}, {"name_b64": "!!"},
    {"xattrs": None}, {"xattrs": [["a"]]}, {"xattrs": [["dXNlcg==", 1]]}, {"content": "ab"},
    {"content": ["AB" * 32]}, {"content": ["ab" * 31]},
])
def test_malformed_fields_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(MalformedObject):
        Tree.decode(_tree(**fields))


def test_directory_needs_a_subtree_and_unsafe_names_are_refused() -> None:
    with pytest.raises(MalformedObject, match="without subtree"):
        Tree.decode(_tree(type="dir"))
    with pytest.raises(UnsafePath):
        Tree.decode(_tree(name=".."))


def test_fields_of_other_types_are_ignored() -> None:
    node = Tree.decode(_tree(type="fifo", target="t", content=["ab" * 32],
                             subtree="cd" * 32, future_field=1)).nodes[0]
    assert (node.target, node.content, node.subtree) == (b"", [], None)


def test_account_names_that_are_not_utf8_are_written_and_read_back() -> None:
    """Python gives a user or group name that is not UTF-8 (Latin-1 ``jos\\xe9``) as a str with
    lone surrogates, and the writer stores them as ``\\udcXX`` escapes (docs/format.md, section
    22): trees written so must stay readable, which a strict JSON parser (orjson, msgspec) would
    not allow."""
    user, group = b"jos\xe9".decode("utf-8", "surrogateescape"), "\udcff\udcfe"
    data = Tree([Node(name=b"a", type=FILE, user=user, group=group)]).encode()
    assert b'"user":"jos\\udce9"' in data
    (node,) = Tree.decode(data).nodes
    assert (node.user, node.group) == (user, group)
    assert node.user.encode("utf-8", "surrogateescape") == b"jos\xe9"
    with pytest.raises(MalformedObject):  # msgspec refuses them: the standard parser reads them
        typed_nodes(data)


@settings(max_examples=300, deadline=None)
@given(trees())
def test_the_typed_parser_reads_every_valid_tree_as_the_standard_one(tree: Tree) -> None:
    """Tree.decode tries msgspec first and falls back to the standard parser on anything it
    refuses; the fallback would hide a typed path that never works, so it is called directly."""
    data = tree.encode()
    assert typed_nodes(data) == _json_nodes(data) == tree.nodes


_FIELDS = ["type", "name", "name_b64", "mode", "uid", "gid", "size", "dev", "ino", "nlink",
           "rdev", "mtime_ns", "ctime_ns", "user", "group", "target", "target_b64", "xattrs",
           "content", "subtree", "other"]
_LEAVES = (st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats()
           | st.text(max_size=3) | st.sampled_from(["YQ==", "Y", "a" * 64, "A" * 64, "\udcff",
                                                    "file", "dir", "symlink", ".", ""]))
_VALUES = _LEAVES | st.lists(_LEAVES | st.lists(_LEAVES, max_size=2), max_size=3)


@st.composite
def doubtful_trees(draw: st.DrawFn) -> bytes:
    """Valid trees with a field of a node replaced by any JSON value, or left out."""
    nodes = [{"type": draw(st.sampled_from([FILE, DIR, SYMLINK, FIFO])), "name": name,
              "content": ["0" * 64], "subtree": "1" * 64, "target": "t"}
             for name in sorted(draw(st.sets(st.sampled_from(["a", "b", "c"]), min_size=1)))]
    node = draw(st.sampled_from(nodes))
    key = draw(st.sampled_from(_FIELDS))
    if draw(st.booleans()):
        node[key] = draw(_VALUES)
    else:
        node.pop(key, None)
    version = draw(st.sampled_from([1, 1, 1, 1, 1, 1.0, True, 2, "1", None]))
    return json.dumps({"version": version, "nodes": nodes}).encode()


@settings(max_examples=1000, deadline=None)
@given(doubtful_trees())
def test_the_typed_parser_accepts_nothing_the_standard_one_refuses(data: bytes) -> None:
    """What the typed path accepts, the standard one reads the same; what it refuses goes to
    the standard one (Tree.decode), which alone says what is wrong."""
    try:
        typed = typed_nodes(data)
    except Exception:
        return
    assert _json_nodes(data) == typed


@pytest.mark.parametrize("data", [
    b'{"version":1,"nodes":[],"x":"\xff"}',  # bytes that are not UTF-8 in an unknown value
    b'{"version":1,"nodes":[{"type":"file","name":"a","\xff":0}]}',  # ... or key
    b'{"version":1,"nodes":[],"x":"\xc0\xaf"}',  # an overlong encoding of "/"
])
def test_bytes_that_are_not_utf8_anywhere_make_a_tree_malformed(data: bytes) -> None:
    with pytest.raises(MalformedObject):
        typed_nodes(data)
    with pytest.raises(MalformedObject):
        Tree.decode(data)


def test_a_tree_nested_too_deep_is_malformed_not_a_crash() -> None:
    data = b'{"version":1,"nodes":[],"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(MalformedObject):
        Tree.decode(data)
