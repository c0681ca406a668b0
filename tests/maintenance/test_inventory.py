"""The inventory of what each target holds: live packs kept as a byte per pack number, every
other object by name, and the same answers a dict of names would give."""

from __future__ import annotations

import os
import random
import tracemalloc
from pathlib import Path

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance.check import check
from fogvault.maintenance.inventory import Listing, LivePacks, take_inventory
from fogvault.repo.format import BlobType, pack_name
from fogvault.repo.index import BlobIndex
from fogvault.repo.pack import PackEntry
from fogvault.storage import ObjectInfo


@pytest.fixture
def two_targets(make_repo, tmp_path):
    repo = make_repo("a", "b", pack_size=64 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(random.Random(i).randbytes(100_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    repo.load_index()
    return repo, tmp_path / "a", tmp_path / "b"


def _files(root: Path) -> dict[str, int]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            found[path.relative_to(root).as_posix()] = path.stat().st_size
    return {n: s for n, s in found.items() if not n.startswith("locks/")}


def test_listing_answers_as_a_dict_of_the_files_would(two_targets):
    repo, a, b = two_targets
    packs = sorted(p.relative_to(b).as_posix() for p in (b / "data").rglob("*") if p.is_file())
    assert len(packs) >= 4
    (b / packs[0]).unlink()  # missing
    with open(b / packs[1], "r+b") as f:  # wrong size
        f.truncate(100)
    extra = pack_name(bytes(range(32)))  # a pack no index lists
    (b / extra).parent.mkdir(parents=True, exist_ok=True)
    (b / extra).write_bytes(b"x" * 7)
    upper = f"data/{packs[2][5:7].upper()}/{packs[2][8:].upper()}"  # not a pack's spelling
    (b / upper).parent.mkdir(parents=True, exist_ok=True)
    (b / upper).write_bytes(b"y" * 3)

    inventory = take_inventory(repo)
    for root in (a, b):
        listing = inventory.listings[str(root)]
        expected = _files(root)
        assert dict(listing) == expected
        assert len(listing) == len(expected) and listing.total_bytes() == sum(expected.values())
        assert all(name in listing for name in expected)
        assert packs[0] not in listing or root == a
    assert inventory.missing(str(a)) == [] and inventory.wrong_size(str(a)) == []
    assert inventory.extra(str(a)) == []
    assert inventory.missing(str(b)) == [packs[0]]
    assert inventory.wrong_size(str(b)) == [packs[1]]
    assert inventory.extra(str(b)) == sorted([extra, upper])
    assert inventory.holders(packs[0]) == [str(a)]
    assert inventory.holders(packs[1]) == [str(a), str(b)]
    assert inventory.holders(extra) == [str(b)]
    live_packs = sorted(n for n in _files(a) if n.startswith("data/"))
    names = inventory.live.packs.name
    assert sorted(map(names, inventory.live.packs.numbers())) == live_packs
    as_expected = {str(root): sorted(map(names, inventory.listings[str(root)].packs_as_expected()))
                   for root in (a, b)}  # fmt: skip
    assert as_expected == {str(a): live_packs,
                           str(b): [n for n in live_packs if n not in packs[:2]]}  # fmt: skip
    assert {n: inventory.live[n] for n in live_packs} == {n: _files(a)[n] for n in live_packs}
    assert extra not in inventory.live and upper not in inventory.live
    assert inventory.missing("nowhere") == sorted(inventory.live)


def test_listing_add_discard_and_copy(two_targets):
    repo, _, _ = two_targets
    packs = LivePacks(repo.index)
    names = sorted(packs.name(n) for n in packs.numbers())
    listing = Listing(packs)
    listing.add(names[0])  # written from verified bytes: the size expected
    listing.add(names[1], 5)  # listed with another size
    listing.add("snapshots/abc", 10)
    assert dict(listing) == {names[0]: packs.sizes[packs.number(names[0])], names[1]: 5,
                             "snapshots/abc": 10}
    twin = listing.copy()
    listing.discard(names[0])
    listing.discard("snapshots/abc")
    listing.discard(names[2])  # not held: nothing changes
    listing.add(names[1])  # replaced by a good copy
    assert dict(listing) == {names[1]: packs.sizes[packs.number(names[1])]}
    assert list(listing.odd_sized_packs()) == []
    assert len(twin) == 3 and twin[names[1]] == 5 and list(twin.odd_sized_packs())
    with pytest.raises(KeyError):
        listing[names[0]]
    assert 42 not in listing and "data/zz" not in listing


def test_a_listing_costs_a_byte_a_pack(tmp_path):
    """40,000 live packs held by two targets: the index's packs (its own memory) plus the
    inventory's sizes and two listings, measured without the index itself."""
    count = 40_000
    index = BlobIndex()
    ids = [random.Random(i).randbytes(32) for i in range(count)]
    for i, pack_id in enumerate(ids):
        index.add_pack(pack_id, [PackEntry(BlobType.DATA, ids[-1 - i], 0, 1000, 900)])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        packs = LivePacks(index)
        listings = [Listing.of(packs, (ObjectInfo(pack_name(p), packs.sizes[i])
                                       for i, p in enumerate(ids)))
                    for _ in range(2)]
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(len(listing) == count for listing in listings)
    assert grown / count < 12  # 8 bytes of size and a byte per target; names took ~560


def test_packs_written_after_the_inventory_are_read_and_checked(two_targets, tmp_path):
    """The target set keeps a copy of each listing to order reads; packs the index gains
    afterwards have numbers past the inventory's and are looked up by name."""
    repo, _, _ = two_targets
    assert check(repo).ok
    before = set(LivePacks(repo.index).numbers())
    (tmp_path / "src" / "more").write_bytes(random.Random(99).randbytes(200_000))
    Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    repo.load_index()
    new = [n for n in LivePacks(repo.index).numbers() if n not in before]
    assert new
    name = pack_name(repo.index.pack_id_at(new[0]))
    assert [t.url for t in repo.targets.read_order(name)] and repo.targets.read(name)
    assert check(repo).ok


def test_writes_after_the_inventory_leave_it_as_found(two_targets):
    """A lock refreshed while check runs goes into the target set's copy of the listing, not
    into the inventory's (which another thread may be walking)."""
    repo, a, _ = two_targets
    inventory = take_inventory(repo)
    listing = inventory.listings[str(a)]
    held = dict(listing)
    repo.targets.write("locks/refreshed", b"x")
    repo.targets.delete(sorted(n for n in held if n.startswith("snapshots/"))[0])
    assert dict(listing) == held and inventory.extra(str(a)) == []
    assert "locks/refreshed" not in listing
