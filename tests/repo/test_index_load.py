"""Repository.load_index: index files streamed into the in-memory index, supersedes honoured
in whatever order the files are read, and rebuilds when a loaded file is replaced."""

from __future__ import annotations

import logging
import os

import pytest
from conftest import PASSWORD

from fogvault.repo.format import INDEX_DIR, BlobType, index_name
from fogvault.repo.index import BlobIndex, IndexFile
from fogvault.repo.pack import PackEntry
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage, permanent


def _listing(n: int) -> list[PackEntry]:
    return [PackEntry(BlobType.DATA, os.urandom(32), 100 * i, 100, 90) for i in range(n)]


def _ids(entries: list[PackEntry]) -> set[bytes]:
    return {e.blob_id for e in entries}


def _read_in_order(repo, monkeypatch, first: bytes) -> None:
    """Make ``repo`` list the index file ``first`` before the others."""
    listed = repo.targets.list

    def ordered(prefix: str) -> dict[str, int]:
        names = listed(prefix)
        if prefix != INDEX_DIR:
            return names
        return dict(sorted(names.items(), key=lambda item: item[0] != index_name(first)))

    monkeypatch.setattr(repo.targets, "list", ordered)


@pytest.mark.parametrize("superseded_first", [True, False])
def test_a_superseded_file_is_ignored_in_either_order(make_repo, cache_dir, monkeypatch,
                                                      superseded_first):
    repo = make_repo()
    kept, dropped, moved = _listing(3), _listing(2), _listing(4)
    pack_kept, pack_dropped, pack_moved = os.urandom(32), os.urandom(32), os.urandom(32)
    old = repo.save_index(IndexFile({pack_kept: kept, pack_dropped: dropped}))
    new = repo.save_index(IndexFile({pack_kept: kept, pack_moved: moved}, [old]))
    fresh = Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir, load_index=False)
    _read_in_order(fresh, monkeypatch, old if superseded_first else new)
    fresh.load_index()
    assert fresh.index.pack_ids() == {pack_kept, pack_moved}
    assert all(blob_id in fresh.index for blob_id in _ids(kept) | _ids(moved))
    assert not any(blob_id in fresh.index for blob_id in _ids(dropped))
    assert len(fresh.index) == 7  # the kept pack once, though two files list it
    assert fresh.live_index_names() == {index_name(new)}


def test_a_file_superseding_a_loaded_one_rebuilds_the_index(make_repo, reopen):
    repo = make_repo()
    first, second = _listing(3), _listing(2)
    pack_a, pack_b = os.urandom(32), os.urandom(32)
    old = repo.save_index(IndexFile({pack_a: first}))
    reader = reopen(repo)
    assert _ids(first) <= {e.blob_id for e in reader.index}
    repo.save_index(IndexFile({pack_b: second}, [old]))  # a prune elsewhere; old not deleted
    reader.load_index()
    assert reader.index.pack_ids() == {pack_b}
    assert {e.blob_id for e in reader.index} == _ids(second)


def test_new_files_are_added_to_a_loaded_index_and_gone_ones_rebuild_it(make_repo, reopen):
    repo = make_repo()
    pack_a, pack_b = os.urandom(32), os.urandom(32)
    a = repo.save_index(IndexFile({pack_a: _listing(2)}))
    reader = reopen(repo)
    index = reader.index
    repo.save_index(IndexFile({pack_b: _listing(3)}))
    reader.load_index()
    assert reader.index is index and index.pack_ids() == {pack_a, pack_b}  # added in place
    repo.targets.delete(index_name(a))
    reader.load_index()
    assert reader.index is not index and reader.index.pack_ids() == {pack_b}


def test_an_unreadable_index_file_is_skipped_whole(make_repo, reopen, caplog):
    repo = make_repo()
    pack_good, pack_bad = os.urandom(32), os.urandom(32)
    repo.save_index(IndexFile({pack_good: _listing(2)}))
    bad = _listing(2)
    bad.append(PackEntry(BlobType.DATA, os.urandom(32), 0, 1, 1))  # length below the seal
    repo.save_index(IndexFile({pack_bad: bad}))
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        fresh = reopen(repo)
    assert fresh.index.pack_ids() == {pack_good} and len(fresh.index) == 2
    assert "blob length out of range" in caplog.text


def test_loading_sizes_the_table_once_from_the_index_files(make_repo, reopen, monkeypatch):
    repo = make_repo()
    for _ in range(3):
        repo.save_index(IndexFile({os.urandom(32): _listing(16) for _ in range(200)}))
    grown = []
    real_grow = BlobIndex._grow

    def grow(index: BlobIndex, entries: int, records: int):
        grown.append(entries)
        return real_grow(index, entries, records)

    monkeypatch.setattr(BlobIndex, "_grow", grow)
    fresh = reopen(repo)
    assert fresh.index.distinct_blobs() == 9600
    # Reserved from the files' sizes: one growth, not one per doubling, to a table not
    # oversized (load above 0.375, the lowest a doubling leaves).
    assert len(grown) == 1
    assert 0.375 < 9600 / len(fresh.index._table[1]) <= 0.75
    fresh.close()


def test_a_damaged_cache_file_that_cannot_be_deleted_costs_a_download(
    make_repo, cache_dir, monkeypatch
):
    """A cache the file system will not let us delete from (read-only, ``chattr +i``): the
    damaged copy is refused and the index file read from the target; the cache's discard after
    a prune fails quietly too."""
    import errno

    repo = make_repo()
    pack = os.urandom(32)
    index_id = repo.save_index(IndexFile({pack: _listing(3)}))
    cached = cache_dir / repo.config.repo_id / index_name(index_id).replace("/", "_")
    cached.write_bytes(b"damaged")
    unlink = os.unlink

    def refused_in_cache(path, *args, **kwargs):
        if str(path).startswith(str(cache_dir)):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refused_in_cache)
    fresh = Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir)
    assert fresh.index.pack_ids() == {pack}
    fresh.cache.discard(index_name(index_id))
    fresh.close()


class ClosingRecorder(FaultyStorage):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_an_open_whose_index_cannot_be_loaded_closes_its_targets(make_repo) -> None:
    """The caller gets an exception, not a repository to close: open closes what it opened
    (before, a library caller's SFTP connections and thread pool stayed open)."""
    urls = make_repo("one", "two").targets.urls
    storages = [ClosingRecorder(open_storage(url)) for url in urls]
    for storage in storages:
        storage.inject("list", Fault(error=permanent(), prefix=INDEX_DIR, times=None))
    with pytest.raises(Exception, match="injected permanent fault"):
        Repository.open(storages, PASSWORD, use_cache=False)
    assert [s.closed for s in storages] == [True, True]
