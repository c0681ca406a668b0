"""The in-memory index: lookups, growth, and complete pack listings with duplicate blobs."""

from __future__ import annotations

import os

from fogvault.repo.format import BlobType
from fogvault.repo.index import BlobIndex
from fogvault.repo.pack import PackEntry


def _entries(ids: list[bytes]) -> list[PackEntry]:
    return [PackEntry(BlobType.DATA, blob_id, 100 * i, 100, 90) for i, blob_id in enumerate(ids)]


def test_lookups_survive_growth():
    index = BlobIndex(capacity=4)
    ids = [os.urandom(32) for _ in range(5000)]
    for start in range(0, len(ids), 10):
        assert index.add_pack(os.urandom(32), _entries(ids[start : start + 10]))
    assert len(index) == index.distinct_blobs() == 5000
    assert all(index.get(blob_id).blob_id == blob_id for blob_id in ids)
    assert os.urandom(32) not in index


def test_a_blob_in_two_packs_keeps_both_listings_and_the_first_location():
    index = BlobIndex()
    shared, a_only, b_only = os.urandom(32), os.urandom(32), os.urandom(32)
    pack_a, pack_b = os.urandom(32), os.urandom(32)
    index.add_pack(pack_a, _entries([a_only, shared]))
    index.add_pack(pack_b, _entries([shared, b_only]))
    assert index.get(shared).pack_id == pack_a
    listed = {}
    for entry in index:
        listed.setdefault(entry.pack_id, []).append(entry.blob_id)
    assert listed == {pack_a: [a_only, shared], pack_b: [shared, b_only]}
    assert (len(index), index.distinct_blobs()) == (4, 3)
    assert index.position(shared) == 1  # the first record of it


def test_a_pack_listed_twice_is_indexed_once():
    index = BlobIndex()
    pack, ids = os.urandom(32), [os.urandom(32) for _ in range(3)]
    assert index.add_pack(pack, _entries(ids))
    assert not index.add_pack(pack, _entries(ids))
    assert len(index) == 3
