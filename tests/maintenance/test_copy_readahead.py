"""``copy``'s read-ahead (``_ReadAhead``) against random tree shapes, seeded: deep chains, wide
folders, the same tree at many places (repeated siblings, at different depths, a tree that is
also the sibling of one of its ancestors), empty folders, several snapshots sharing trees; with
tiny batches and windows (smaller than one tree, a few trees, more than everything), into an
unrelated repository and into a twin (shared ids) that holds part of the trees already.

The trees are written directly (``crafted``), a pool of folders each naming earlier ones, so
the tree of a folder is one blob however many places use it. The reads of each tree are counted
at ``_read_blobs``, which every read of a tree goes through."""

from __future__ import annotations

import dataclasses
import functools
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PASSWORD
from crafted import DATA, TREE, dir_node, file_node, save_snapshot, tree_bytes

from fogvault.backup.saver import stored_blobs
from fogvault.maintenance import copy as copy_module
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.copy import CopyResult, copy
from fogvault.repo.format import pack_name
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import FILE, Node
from fogvault.treewalk import walk
from tests.maintenance.test_copy import twin_of

#: an entry of a folder: another folder of the pool (its index), or a file (its data's indices)
Entry = int | tuple[int, ...]
NODES_PER_FOLDER = 200  # entries below a folder, counted at every place: keeps walks short
#: reads of one tree in a copy, at most: read ahead and dropped from the window TREE_DROPS
#: times, then read when the rebuild asks for it
MOST_READS = copy_module.TREE_DROPS + 1


@dataclass(frozen=True, slots=True)
class Shapes:
    """What to store: data blobs, folders (each naming earlier ones only) and the folders that
    are snapshots' roots (a folder may be the root of several)."""

    data: list[bytes]
    folders: list[tuple[Entry, ...]]
    roots: list[int]

    def below(self, *folders: int) -> set[int]:
        """``folders`` and every folder under them."""
        found, todo = set(folders), list(folders)
        while todo:
            for entry in self.folders[todo.pop()]:
                if isinstance(entry, int) and entry not in found:
                    found.add(entry)
                    todo.append(entry)
        return found

    def levels(self) -> list[int]:
        """The levels of folders in each folder, itself included."""
        levels: list[int] = []
        for entries in self.folders:  # each names earlier ones only
            levels.append(1 + max((levels[e] for e in entries if isinstance(e, int)), default=0))
        return levels

    def data_of(self, folder: int) -> list[bytes]:
        """The data of the files of ``folder``."""
        return [self.data[i] for entry in self.folders[folder] if not isinstance(entry, int)
                for i in entry]


def random_shapes(rng: random.Random) -> Shapes:
    data = [rng.randbytes(rng.randint(1, 300)) for _ in range(rng.randint(1, 8))]
    folders: list[tuple[Entry, ...]] = [()]  # an empty folder
    nodes = [0]  # entries below each folder, at every place

    def add(entries: list[Entry]) -> int:
        rng.shuffle(entries)  # the folders' order among the files, by name
        folders.append(tuple(entries))
        nodes.append(sum(1 + (nodes[e] if isinstance(e, int) else 0) for e in entries))
        return len(folders) - 1

    def some_folder() -> int:
        """A folder of the pool, the recent ones likelier, that fits in NODES_PER_FOLDER."""
        pick = len(folders) - 1 - min(int(rng.expovariate(0.3)), len(folders) - 1)
        return pick if nodes[pick] < NODES_PER_FOLDER // 4 else 0

    def some_files(most: int) -> list[Entry]:
        return [tuple(rng.randrange(len(data)) for _ in range(rng.randint(0, 3)))
                for _ in range(rng.randint(0, most))]

    def fresh(levels: int) -> int:
        """A folder of new folders (most of them: trees not met before), ``levels`` deep."""
        below = [fresh(levels - 1) for _ in range(rng.randint(1, 5) if levels else 0)]
        return add(below + some_files(3) + [some_folder()] * (rng.random() < 0.2))

    for _ in range(rng.randint(2, 10)):
        style = rng.random()
        if style < 0.35:
            fresh(rng.randint(1, 3))
        elif style < 0.5:  # a chain: each folder holds the one before (and maybe a file)
            for _ in range(rng.randint(2, rng.choice([8, 40]))):
                add([len(folders) - 1, *some_files(1)])
        elif style < 0.65:  # a wide folder, folders repeated among its entries
            add([some_folder() for _ in range(rng.randint(3, 12))] + some_files(6))
        elif style < 0.8:  # a folder beside a folder somewhere below it
            above = some_folder()
            add([above, rng.choice(sorted(Shapes(data, folders, []).below(above)))])
        elif style < 0.85:
            add([])
        else:
            add([some_folder() for _ in range(rng.randint(1, 4))] + some_files(3))
    roots = [rng.randrange(len(folders)) if rng.random() < 0.3 else len(folders) - 1 - i
             for i in range(rng.randint(1, 4))]
    return Shapes(data, folders, roots)


def encoded(repo: Repository, shapes: Shapes) -> list[tuple[bytes, bytes]]:
    """The tree of each folder of ``shapes`` in ``repo``: its id and its bytes."""
    data_ids = [repo.blob_id(blob) for blob in shapes.data]
    trees: list[tuple[bytes, bytes]] = []
    for entries in shapes.folders:
        nodes = []
        for position, entry in enumerate(entries):
            name = f"n{position:02d}"
            if isinstance(entry, int):
                nodes.append(dir_node(name, trees[entry][0]))
            else:
                nodes.append(file_node(name, [data_ids[i] for i in entry],
                                       size=sum(len(shapes.data[i]) for i in entry)))
        blob = tree_bytes(nodes)
        trees.append((repo.blob_id(blob), blob))
    return trees


def store_shapes(repo: Repository, shapes: Shapes, stored: Iterable[int]) -> list[bytes]:
    """The tree id of each folder of ``shapes``; those of ``stored`` stored in ``repo``, with
    their files' data."""
    trees = encoded(repo, shapes)
    with stored_blobs(repo) as saver:
        for folder in stored:
            for blob in shapes.data_of(folder):
                saver.save(DATA, blob)
            saver.save(TREE, trees[folder][1])
    return [tree_id for tree_id, _ in trees]


@dataclass(slots=True)
class Case:
    """A source with the snapshots of ``shapes``, and a destination (a twin holding the
    folders ``held``, or an unrelated repository)."""

    shapes: Shapes
    source: Repository
    snapshots: list[Snapshot]
    tree_ids: list[bytes]
    destination: Repository
    held: set[int]
    #: each snapshot's listing, taken before the test damages the source
    listings: dict[str, list[tuple[bytes, Node, bytes]]]

    def trees_of(self, *roots: int) -> set[bytes]:
        return {self.tree_ids[f] for f in self.shapes.below(*roots)}


def make_case(rng: random.Random, shapes: Shapes, make_repo, tmp_path: Path, *,
              lacking: int | None = None) -> Case:
    """A Case of ``shapes``, a random destination; the source lacks the tree of the folder
    ``lacking`` (not stored: nor any folder's that is the same tree)."""
    source = make_repo("src")
    tree_ids = [tree_id for tree_id, _ in encoded(source, shapes)]
    lacking_id = None if lacking is None else tree_ids[lacking]

    def reaches_lacking(folder: int) -> bool:
        return lacking_id in {tree_ids[f] for f in shapes.below(folder)}

    everything = range(len(shapes.folders))
    store_shapes(source, shapes, [f for f in everything if tree_ids[f] != lacking_id])
    snapshots = [save_snapshot(source, tree_ids[root]) for root in shapes.roots]
    held: set[int] = set()
    if rng.random() < 0.5:
        destination = make_repo("dst")
    else:
        destination = twin_of(source, tmp_path / "twin")
        for folder in everything:
            if rng.random() < 0.3 and not reaches_lacking(folder):
                held |= shapes.below(folder)
        assert store_shapes(destination, shapes, sorted(held)) == tree_ids  # the same ids
    listings = {s.uid: listing(source, s.tree)
                for s, root in zip(snapshots, shapes.roots, strict=True)
                if not reaches_lacking(root)}
    return Case(shapes, source, snapshots, tree_ids, destination, held, listings)


def set_batches(rng: random.Random, monkeypatch, source: Repository, tree_ids: list[bytes]
                ) -> tuple[int, int]:
    """A random TREE_BATCH and TREE_WINDOW (smaller than one tree, a few trees, or more than
    all of them), set; returned."""
    sizes = sorted(source.index.get(t).raw_length for t in set(tree_ids) if t in source.index)
    batch = rng.choice([1, 2, 3, 8, 256])
    few = int(sum(sizes) * rng.uniform(0.01, 0.08))
    window = rng.choice([1, few, few, few, 1 << 30])  # the read-ahead drops trees in a few
    monkeypatch.setattr(copy_module, "TREE_BATCH", batch)
    monkeypatch.setattr(copy_module, "TREE_WINDOW", window)
    return batch, window


def count_tree_reads(monkeypatch, source: Repository
                     ) -> tuple[Counter[bytes], Counter[bytes]]:
    """Counters of the reads of each tree from the source, and from the destination."""
    from_source: Counter[bytes] = Counter()
    from_destination: Counter[bytes] = Counter()
    real = copy_module._read_blobs

    def counted(repo, entries):
        trees = (entry.blob_id for entry in entries if entry.blob_type == TREE)
        (from_source if repo is source else from_destination).update(trees)
        return real(repo, entries)

    monkeypatch.setattr(copy_module, "_read_blobs", counted)
    return from_source, from_destination


def count_batches(monkeypatch) -> list[int]:
    """A list that gets the number of trees of each batch read."""
    batches: list[int] = []
    real = copy_module._Copier._read_trees

    def counted(copier, tree_ids):
        batches.append(len(tree_ids))
        return real(copier, tree_ids)

    monkeypatch.setattr(copy_module._Copier, "_read_trees", counted)
    return batches


def listing(repo: Repository, tree_id: bytes) -> list[tuple[bytes, Node, bytes]]:
    """Every entry below ``tree_id``: its path, its node but the ids it names, and a file's
    data."""
    blobs: dict[bytes, bytes] = {}  # each loaded once

    def data(node: Node) -> bytes:
        for blob_id in node.content:
            if blob_id not in blobs:
                blobs[blob_id] = repo.load_blob(blob_id)
        return b"".join(blobs[blob_id] for blob_id in node.content)

    return [(path, dataclasses.replace(node, subtree=None, content=[]),
             data(node) if node.type == FILE else b"") for path, node in walk(repo, tree_id)]


def assert_copies_whole(case: Case, result: CopyResult) -> None:
    """Each copied snapshot has its source's folders and files, and the destination checks
    clean with its data read."""
    by_uid = {s.uid: s for s in case.snapshots}
    for copied in result.copied:
        original = by_uid[copied.source_uid]
        the_copy = case.destination.load_snapshot(copied.uid)
        assert the_copy.original == original.uid
        assert listing(case.destination, the_copy.tree) == case.listings[original.uid]
        if result.same_ids:
            assert the_copy.tree == original.tree
    assert check(case.destination, CheckOptions(read_data=True)).ok


SEEDS = range(64)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_shapes_are_copied_whole_reading_each_tree_a_few_times_at_most(
        seed, make_repo, tmp_path, monkeypatch):
    rng = random.Random(seed)
    case = make_case(rng, random_shapes(rng), make_repo, tmp_path)
    batch, window = set_batches(rng, monkeypatch, case.source, case.tree_ids)
    from_source, from_destination = count_tree_reads(monkeypatch, case.source)
    batches = count_batches(monkeypatch)

    result = copy(case.source, case.destination)

    assert result.failed == [] and len(result.copied) == len(case.snapshots)
    assert_copies_whole(case, result)
    walked = case.trees_of(*case.shapes.roots)
    held = {case.tree_ids[f] for f in case.held}
    assert set(from_source) == walked - held  # what the destination has is read there
    assert set(from_destination) == walked & held
    assert result.tree_blobs_read == len(walked - held)  # each counted once
    used = {blob for f in case.shapes.below(*case.shapes.roots) for blob in case.shapes.data_of(f)}
    held_data = {blob for f in case.held for blob in case.shapes.data_of(f)}
    assert result.data_blobs_read == len(used - held_data)  # each once
    reads = from_source + from_destination
    assert max(reads.values()) <= MOST_READS, (batch, window, reads.most_common(3))
    if window >= 1 << 30:  # nothing is dropped: each tree is read once
        assert set(reads.values()) == {1}
        if batch >= len(walked):  # each batch reads every tree known: one a level at most
            levels = case.shapes.levels()
            assert len(batches) <= sum(levels[root] for root in case.shapes.roots)


@pytest.mark.parametrize("seed", range(24))
def test_a_damaged_or_missing_tree_fails_only_the_snapshots_that_use_it(
        seed, make_repo, tmp_path, monkeypatch):
    rng = random.Random(1000 + seed)
    missing = rng.random() < 0.4
    shapes = random_shapes(rng)
    victim = rng.choice(sorted(shapes.below(*shapes.roots)))
    case = make_case(rng, shapes, make_repo, tmp_path, lacking=victim if missing else None)
    bad = case.tree_ids[victim]
    if not missing:
        _damage(case.source, bad, tmp_path / "src")
        # past the tree pack cache, which holds a good copy
        case.source = Repository.open([str(tmp_path / "src")], PASSWORD, use_cache=False)
    set_batches(rng, monkeypatch, case.source, case.tree_ids)

    result = copy(case.source, case.destination)

    held = {case.tree_ids[f] for f in case.held}
    failing = {s.uid for s, root in zip(case.snapshots, shapes.roots, strict=True)
               if bad in case.trees_of(root) and bad not in held}
    assert {f.source_uid for f in result.failed} == failing
    why = "it is not in the source's index" if missing else "authentication failed"
    for failed in result.failed:
        assert failed.repository == "source"
        assert failed.error.startswith(f"tree {bad.hex()} cannot be read ({why}")
    assert len(result.copied) == len(case.snapshots) - len(failing)
    assert_copies_whole(case, result)
    case.source.close()


def _damage(repo: Repository, blob_id: bytes, folder: Path) -> None:
    """Flip bytes in the middle of the blob ``blob_id`` in its pack, on disk."""
    entry = repo.index.get(blob_id)
    with open(folder / pack_name(entry.pack_id), "r+b") as f:
        f.seek(entry.offset + entry.length // 2)
        chunk = f.read(8)
        f.seek(entry.offset + entry.length // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


def test_a_damaged_tree_read_ahead_dropped_and_read_again_fails_its_snapshot(
        make_repo, tmp_path, monkeypatch):
    """The root names A then D (damaged); A names folders bigger than itself. The window holds
    A and D: both are read ahead with the root. A's first folder reads the second ahead, which
    needs D's room: D is dropped, read again when it is the first not read, and fails its
    snapshot; a snapshot of A alone is copied."""
    source = make_repo("src")
    shapes = Shapes(
        data=[b"payload", b"more"],
        folders=[
            ((0,), (1,), (0, 1), (1, 0), (0,), (1,)),  # 0: six files, bigger than A
            ((1,), (0,), (0, 1), (1, 0), (1,), (0,)),  # 1: six other files
            ((0, 0), (1, 1), (0, 1), (1, 1, 0), (0, 0, 1), (1,)),  # 2: six more
            (0, 1, 2),  # 3: A
            ((0,), (1,), (0, 0), (1, 1), (0, 1), (1, 0), (0, 0, 0)),  # 4: D, damaged
            (3, 4),  # 5: the root
        ],
        roots=[5, 3])
    tree_ids = store_shapes(source, shapes, range(len(shapes.folders)))
    snapshots = [save_snapshot(source, tree_ids[root]) for root in shapes.roots]
    sizes = [source.index.get(t).raw_length for t in tree_ids]
    assert min(sizes[:3]) > sizes[3]
    listings = {s.uid: listing(source, s.tree) for s in snapshots}
    _damage(source, tree_ids[4], tmp_path / "src")
    source = Repository.open([str(tmp_path / "src")], PASSWORD, use_cache=False)
    monkeypatch.setattr(copy_module, "TREE_BATCH", 8)
    monkeypatch.setattr(copy_module, "TREE_WINDOW", sizes[3] + sizes[4])
    from_source, _ = count_tree_reads(monkeypatch, source)
    destination = make_repo("dst")

    result = copy(source, destination)

    assert from_source[tree_ids[4]] == 2  # read ahead, dropped, read again
    [failed] = result.failed
    assert failed.source_uid == snapshots[0].uid
    assert failed.error.startswith(f"tree {tree_ids[4].hex()} cannot be read (authentication")
    [copied] = result.copied
    assert copied.source_uid == snapshots[1].uid
    case = Case(shapes, source, snapshots, tree_ids, destination, set(), listings)
    assert_copies_whole(case, result)
    source.close()


def test_a_tree_far_ahead_is_not_read_again_at_every_level_of_a_deep_folder(
        make_repo, monkeypatch):
    """The root names a chain of folders, then W. Each folder of the chain names a small one
    (L), then the next, big and small in turn; the window holds W and a small one, not a big
    one. W was read ahead whenever the next was small, and dropped for each big one: read
    again at every other level (16 times for 30 levels)."""
    depth = 30
    files = [(i,) for i in range(depth)]
    folders: list[tuple[Entry, ...]] = [(file,) for file in files]  # the Ls
    folders.append(())  # the end of the chain
    for level in reversed(range(depth)):  # its L, the next folder; files in the big ones
        folders.append((level, len(folders) - 1, *(files[:6] if level % 2 else ())))
    big, small = len(folders) - 2, len(folders) - 1
    folders += [tuple(files[:10]), (len(folders) - 1, len(folders))]  # W, the root
    shapes = Shapes([b"%d" % i for i in range(depth)], folders, roots=[len(folders) - 1])
    source = make_repo("src")
    tree_ids = store_shapes(source, shapes, range(len(folders)))
    snapshot = save_snapshot(source, tree_ids[-1])
    size = [source.index.get(tree_id).raw_length for tree_id in tree_ids]
    assert size[big] > size[small]
    monkeypatch.setattr(copy_module, "TREE_BATCH", 8)
    monkeypatch.setattr(copy_module, "TREE_WINDOW", size[-2] + size[small])
    from_source, _ = count_tree_reads(monkeypatch, source)
    destination = make_repo("dst")

    result = copy(source, destination)

    assert from_source[tree_ids[-2]] <= MOST_READS
    case = Case(shapes, source, [snapshot], tree_ids, destination, set(),
                {snapshot.uid: listing(source, snapshot.tree)})
    assert_copies_whole(case, result)


def test_places_sort_in_the_order_the_rebuild_asks_for_them():
    """Depth-first: a folder before its folders, those in their order, past 255 and 65,535."""
    paths = [(), (0,), (0, 0), (0, 300), (1,), (1, 2, 3), (255,), (256,), (256, 0), (70_000,)]
    places = [functools.reduce(copy_module._below, path, b"") for path in paths]
    assert sorted(places) == places

