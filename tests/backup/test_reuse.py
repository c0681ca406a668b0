"""What a backup takes from its parent snapshot instead of the file system (xattrs of entries
whose inode and ctime are unchanged; tree ids of folders whose entries all match) must be
exactly what a fresh scan records: after every kind of change, an incremental backup and a
forced full one must produce the same root tree id."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from crafted import TREE, store

from fogvault.backup import archiver
from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.repo.snapshot import Snapshot, new_uid, now
from fogvault.repo.tree import DIR, Tree
from fogvault.treewalk import lookup

SAME_MTIME = 1_700_000_000_123_456_789


def _xattrs_supported(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Files, folders, a symlink, xattrs on a file and a folder, and two files with equal
    sizes and mtimes (so only their inodes tell them apart)."""
    root = tmp_path / "src"
    (root / "d" / "e").mkdir(parents=True)
    (root / "d2").mkdir()
    for rel, data in [("d/a", b"alpha" * 100), ("d/b", b"bravo" * 100), ("d/x", b"x" * 50),
                      ("d/e/deep", b"deep"), ("d2/y", b"y"), ("top", b"top")]:
        (root / rel).write_bytes(data)
    for rel in ("d/a", "d/b"):
        os.utime(root / rel, ns=(SAME_MTIME, SAME_MTIME))
    (root / "d" / "link").symlink_to("a")
    if not _xattrs_supported(tmp_path):
        pytest.skip("no user xattrs on this file system")
    os.setxattr(root / "d" / "x", "user.tag", b"blue")
    os.setxattr(root / "d2", "user.folder", b"green")
    return root


def _backup(repo, path: Path, **options) -> Snapshot:
    return Archiver(repo, BackupOptions(**options)).run([str(path)]).snapshot


def _swap(a: Path, b: Path) -> None:
    spare = a.with_name("spare")
    a.rename(spare)
    b.rename(a)
    spare.rename(b)


def _same_length_new_bytes_same_mtime(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes(255 - c for c in data))
    os.utime(path, ns=(SAME_MTIME, SAME_MTIME))


def _file_to_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inner").write_bytes(b"inner")


def _folder_to_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_bytes(b"now a file")


def _retarget(link: Path) -> None:
    link.unlink()
    link.symlink_to("b")


MUTATIONS: dict[str, Callable[[Path], object]] = {
    "xattr added": lambda s: os.setxattr(s / "d" / "a", "user.color", b"red"),
    "xattr value changed": lambda s: os.setxattr(s / "d" / "x", "user.tag", b"bluer"),
    "xattr removed": lambda s: os.removexattr(s / "d" / "x", "user.tag"),
    "folder xattr changed": lambda s: os.setxattr(s / "d2", "user.folder", b"grey"),
    "chmod file": lambda s: os.chmod(s / "d" / "a", 0o600),
    "chmod folder": lambda s: os.chmod(s / "d" / "e", 0o700),
    "same size and mtime, new bytes": lambda s: _same_length_new_bytes_same_mtime(s / "d" / "a"),
    "rename within folder": lambda s: (s / "d" / "a").rename(s / "d" / "a2"),
    "swap two files of equal size and mtime": lambda s: _swap(s / "d" / "a", s / "d" / "b"),
    "file replaced by folder": lambda s: _file_to_folder(s / "d" / "x"),
    "folder replaced by file": lambda s: _folder_to_file(s / "d2"),
    "symlink retargeted": lambda s: _retarget(s / "d" / "link"),
    "hard link added": lambda s: os.link(s / "d" / "x", s / "d2" / "x-link"),
    "deep file touched": lambda s: os.utime(s / "d" / "e" / "deep", ns=(1, 1)),
    "file deleted": lambda s: (s / "d" / "e" / "deep").unlink(),
    "folder renamed": lambda s: (s / "d" / "e").rename(s / "d" / "e2"),
}


def _src_node(repo, snapshot: Snapshot, src: Path):
    """The snapshot's node for ``src``, with its subtree id: everything the test controls.
    The root tree is not compared: it also holds the folders above src (/tmp and pytest's
    folders), whose mtime, ctime and link count other processes change at any moment, so two
    backups a few milliseconds apart may rightly record them differently."""
    node, _ = lookup(repo, snapshot.tree, os.fsencode(src))
    assert node is not None and node.type == DIR
    return node


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_incremental_backup_records_what_a_fresh_scan_records(make_repo, src, mutation):
    repo = make_repo()
    first = _backup(repo, src)
    MUTATIONS[mutation](src)
    incremental = _backup(repo, src)
    fresh = _backup(repo, src, force=True)
    assert incremental.parent == first.uid and fresh.parent is None
    before, after = _src_node(repo, first, src), _src_node(repo, incremental, src)
    assert after.subtree != before.subtree  # the change is in the snapshot
    assert after == _src_node(repo, fresh, src)  # and nothing stale is


def test_xattr_change_is_in_the_node(make_repo, src, trust_recent_entries):
    repo = make_repo()
    _backup(repo, src)
    os.setxattr(src / "d" / "x", "user.tag", b"red")
    snapshot = _backup(repo, src)
    node, _ = lookup(repo, snapshot.tree, os.fsencode(src / "d" / "x"))
    assert node is not None and node.xattrs == [(b"user.tag", b"red")]
    assert snapshot.summary.files_unchanged == 5  # content is reused all the same


def _record_work(monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list[set[bytes]]]:
    """Paths whose xattrs are listed, and the names in each tree encoded, from now on."""
    listed: list[bytes] = []
    encoded: list[set[bytes]] = []
    read_xattrs, encode = archiver.read_xattrs, Tree.encode

    def counting_read_xattrs(path: bytes) -> list[tuple[bytes, bytes]]:
        listed.append(path)
        return read_xattrs(path)

    def recording_encode(tree: Tree) -> bytes:
        encoded.append({node.name for node in tree.nodes})
        return encode(tree)

    monkeypatch.setattr(archiver, "read_xattrs", counting_read_xattrs)
    monkeypatch.setattr(Tree, "encode", recording_encode)
    return listed, encoded


def test_unchanged_entries_are_neither_listed_nor_encoded(make_repo, src, monkeypatch,
                                                         trust_recent_entries):
    repo = make_repo()
    first = _backup(repo, src)
    listed, encoded = _record_work(monkeypatch)
    second = _backup(repo, src)
    # The folders above src may change between runs (other processes use /tmp): only what
    # is below src is certain to be unchanged.
    below = os.fsencode(src) + b"/"
    assert [p for p in listed if p.startswith(below)] == []
    assert {b"a", b"d", b"deep", b"y"}.isdisjoint(set().union(*encoded))
    node, _ = lookup(repo, second.tree, os.fsencode(src / "d" / "x"))
    assert node is not None and node.xattrs == [(b"user.tag", b"blue")]
    assert lookup(repo, second.tree, os.fsencode(src))[1] == \
        lookup(repo, first.tree, os.fsencode(src))[1]

    listed.clear()
    encoded.clear()
    os.utime(src / "d" / "e" / "deep", ns=(1, 1))  # only this file's ctime changes
    _backup(repo, src)
    assert [p for p in listed if p.startswith(below)] == [os.fsencode(src / "d" / "e" / "deep")]
    assert {b"deep"} in encoded and {b"y"} not in encoded  # d2's tree is reused


def test_trees_of_another_writer_are_encoded_again(make_repo, src, monkeypatch):
    """A parent written by other software may hold non-canonical trees: reusing their ids
    would give a snapshot that a fresh scan does not, so this backup encodes every tree."""
    repo = make_repo()
    first = _backup(repo, src)
    foreign_root = _reencode_indented(repo, first.tree)
    foreign = Snapshot(uid=new_uid(), time=now(), host=first.host, user=first.user,
                       paths=first.paths, tree=foreign_root, program_version="other 1.0")
    repo.save_snapshot(foreign)
    listed, _ = _record_work(monkeypatch)
    second = _backup(repo, src, parent=foreign.uid)
    assert second.parent == foreign.uid
    assert second.tree == first.tree != foreign_root
    assert second.summary.files_unchanged == 6 and second.summary.bytes_read == 0
    assert [p for p in listed if p.startswith(os.fsencode(src) + b"/")] == []


def _reencode_indented(repo, tree_id: bytes) -> bytes:
    """Store a copy of the tree ``tree_id`` and everything below it as indented JSON: the
    same nodes, other bytes, other ids."""
    nodes = []
    for node in repo.load_tree(tree_id).nodes:
        if node.type == DIR and node.subtree is not None:
            node.subtree = _reencode_indented(repo, node.subtree)
        nodes.append(node.to_json())
    return store(repo, TREE, json.dumps({"version": 1, "nodes": nodes}, indent=1).encode())
