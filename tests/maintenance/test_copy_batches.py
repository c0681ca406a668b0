"""``copy`` reads a source's trees a batch at a time, and the data of a batch's files
together, instead of one read per folder (a round trip each on S3 or SFTP); with a bounded
number of trees read ahead. Reads are counted by the storage under the source."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from conftest import PASSWORD
from crafted import DATA, TREE, dir_node, file_node, save_snapshot, store, store_tree, tree_bytes

from fogvault.maintenance import copy as copy_module
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.copy import copy
from fogvault.repo.format import BlobType, pack_name
from fogvault.repo.pack import seal_blob
from fogvault.repo.packer import PackWriter
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage
from fogvault.treewalk import walk
from tests.maintenance.test_copy import back_up, files_of

TOPS, BELOW = 12, 20  # folders under the one backed up, and under each of those


def make_folders(root: Path) -> Path:
    """TOPS folders of BELOW folders with a small file each, and an empty folder in each top
    one (the same tree TOPS times: visited once)."""
    for top in range(TOPS):
        (root / f"top{top}" / "empty").mkdir(parents=True)
        for below in range(BELOW):
            folder = root / f"top{top}" / f"below{below}"
            folder.mkdir()
            (folder / "f").write_bytes(os.urandom(2_000))
    return root


def counted_source(folder: Path) -> tuple[Repository, Counter[str]]:
    """The repository at ``folder`` opened through a storage that counts the reads of each
    pack."""
    reads: Counter[str] = Counter()
    storage = FaultyStorage(open_storage(str(folder)))
    storage.inject("read", Fault(hook=lambda _method, name: reads.update([name]), times=None,
                                 prefix="data/"))
    return Repository.open([storage], PASSWORD, use_cache=False), reads


def packs_of(repo: Repository, blob_type: BlobType) -> set[str]:
    return {pack_name(entry.pack_id) for entry in repo.index if entry.blob_type == blob_type}


@pytest.fixture
def backed_up(make_repo, tmp_path) -> tuple[Path, int]:
    """The repository 'src' with one snapshot of make_folders; the number of folders from '/'
    down to the one backed up."""
    snapshot = back_up(make_repo("src"), make_folders(tmp_path / "data"))
    return tmp_path / "src", len(Path(snapshot.paths[0]).parts)


def test_trees_and_their_files_are_read_a_batch_at_a_time(make_repo, backed_up):
    folder, above = backed_up
    source, reads = counted_source(folder)
    tree_packs, data_packs = packs_of(source, BlobType.TREE), packs_of(source, BlobType.DATA)
    destination = make_repo("dst")
    result = copy(source, destination)
    trees = above + TOPS * (BELOW + 1) + 1  # the empty folders' tree is one
    assert result.tree_blobs_read == trees  # each once
    # One read per tree pack for each batch: the folders above the top ones one by one (each
    # names the next), the top folders, then every folder below them (known once the top ones
    # are read, and fewer than TREE_BATCH). One tree at a time, it was a read per tree.
    batches = above + 2
    assert sum(reads[name] for name in tree_packs) <= batches * len(tree_packs) < trees / 4
    # the files' data, all found in the last batch: each data pack read once, not per folder
    assert {name: reads[name] for name in data_packs} == dict.fromkeys(data_packs, 1)
    _assert_copied(source, destination, result)


def test_trees_read_ahead_beyond_the_window_are_read_again(make_repo, backed_up, monkeypatch):
    """With a window smaller than what a batch reads ahead, the trees the rebuild would ask for
    last are dropped and read again: the copy is the same."""
    folder, above = backed_up
    source, _ = counted_source(folder)
    tops = [node.subtree for path, node in walk(source, source.snapshots()[0].tree)
            if node.name.startswith(b"top")]
    # The first top folder is read with three others; its first subfolder with seven of its
    # own, which need room: the three wait longest, and are dropped.
    monkeypatch.setattr(copy_module, "TREE_BATCH", 8)
    monkeypatch.setattr(copy_module, "TREE_WINDOW",
                        3 * max(source.index.get(top).raw_length for top in tops))
    reads: Counter[bytes] = Counter()  # of each blob, from the source
    real = copy_module._read_blobs
    monkeypatch.setattr(copy_module, "_read_blobs", lambda repo, entries: (
        reads.update(entry.blob_id for entry in entries), real(repo, entries))[1])
    destination = make_repo("dst")
    result = copy(source, destination)
    trees = above + TOPS * (BELOW + 1) + 1
    assert max(reads[top] for top in tops) > 1  # dropped and read again
    assert sum(reads.values()) > trees + TOPS * BELOW
    assert result.tree_blobs_read == trees  # yet counted once each, as they are copied
    assert result.data_blobs_read == TOPS * BELOW  # the data of each, once
    _assert_copied(source, destination, result)


def _assert_copied(source: Repository, destination: Repository,
                   result: copy_module.CopyResult) -> None:
    [copied] = result.copied
    assert files_of(destination, destination.load_snapshot(copied.uid)) == files_of(
        source, source.load_snapshot(copied.source_uid))
    assert check(destination, CheckOptions(read_data=True)).ok
    source.close()


def test_a_tree_that_is_not_what_its_id_says_fails_only_its_snapshot(make_repo, tmp_path):
    """A blob that authenticates but whose plaintext is not its id's fails the read of all
    the trees read with it: they are read again one by one, so that only the snapshot that
    uses it fails (the error ended the run)."""
    source = make_repo("src")
    fine = back_up(source, make_folders(tmp_path / "data"))
    file = file_node("f", [store(source, DATA, b"payload")], size=7)
    wrong = source.blob_id(b"not this tree")
    _store_as(source, wrong, tree_bytes([file]))
    other = store_tree(source, [file, file_node("g", [], size=0)])
    bad = save_snapshot(source, store_tree(source, [dir_node("a", wrong), dir_node("b", other)]))
    destination = make_repo("dst")
    result = copy(source, destination)
    assert [c.source_uid for c in result.copied] == [fine.uid]
    [failed] = result.failed
    assert (failed.source_uid, failed.repository) == (bad.uid, "source")
    assert failed.error == (f"tree {wrong.hex()} cannot be read (blob {wrong.hex()} does not "
                            "match its id)")


def _store_as(repo: Repository, blob_id: bytes, data: bytes) -> None:
    """Seal ``data`` as the tree blob ``blob_id`` (which it does not hash to), in its own
    pack: what a writer with the key, but a bug, could store."""
    writer = PackWriter(repo)
    try:
        assert writer.reserve(blob_id)
        writer.add(TREE, blob_id, seal_blob(repo.master.encryption, TREE, blob_id, data, 3),
                   len(data))
        writer.flush()
    finally:
        writer.close()
