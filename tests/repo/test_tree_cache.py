"""The local cache of tree packs: trees are read from it once it holds their pack (written as a
backup uploads them, or downloaded whole at the first tree read), a damaged copy is replaced,
pruned packs leave it, ``--no-cache`` writes none, and ``check`` reads the targets."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.crypto import content_hash
from fogvault.errors import IntegrityError
from fogvault.maintenance.check import check
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.repo.cache import STALE_TEMP_S
from fogvault.repo.format import DATA_DIR, BlobType, pack_name
from fogvault.repo.index import IndexEntry, IndexFile
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import Tree
from fogvault.storage import ObjectNotFound, Storage, open_storage
from fogvault.storage.faulty import Fault, FaultyStorage
from fogvault.treewalk import walk


def _folders(root: Path, count: int, seed: int = 0) -> Path:
    """``count`` folders below ``root`` (nested two deep), a small file in each."""
    for i in range(count):
        folder = root / f"d{i % 5}" / f"e{i}"
        folder.mkdir(parents=True)
        (folder / "f").write_bytes(f"{seed}-{i}".encode() * 10)
    return root


def _backup(repo: Repository, source: Path) -> Snapshot:
    return Archiver(repo, BackupOptions()).run([str(source)]).snapshot


def _tree_packs(repo: Repository) -> set[bytes]:
    return {entry.pack_id for entry in repo.index if entry.blob_type is BlobType.TREE}


def _folder(cache_dir: Path, repo: Repository) -> Path:
    return cache_dir / repo.config.repo_id


def _copy(cache_dir: Path, repo: Repository, pack_id: bytes) -> Path:
    return _folder(cache_dir, repo) / pack_name(pack_id).replace("/", "_")


def _cached(cache_dir: Path, repo: Repository) -> set[bytes]:
    return {bytes.fromhex(p.name[-64:]) for p in _folder(cache_dir, repo).glob("data_*")}


class _Recording(FaultyStorage):
    """A FaultyStorage that records each read of a pack: (name, offset, length)."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.pack_reads: list[tuple[str, int, int | None]] = []

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if name.startswith(DATA_DIR):
            self.pack_reads.append((name, offset, length))
        return super().read(name, offset, length)

    def whole_reads(self, pack: Path) -> int:
        """Reads of the pack stored at ``pack`` that asked for more than all of it (the
        downloads for the cache; a ranged read asks for a blob or a span of them)."""
        size = pack.stat().st_size
        return sum(1 for name, _, length in self.pack_reads
                   if pack.as_posix().endswith(name) and (length is None or length > size))


class _Counted:
    """The repository on ``roots`` opened through storages that record the packs read."""

    def __init__(self, root: Path | list[Path], cache_dir: Path | None) -> None:
        self.storages = [_Recording(open_storage(str(r)))
                         for r in (root if isinstance(root, list) else [root])]
        self.storage = self.storages[0]
        self.repo = Repository.open(self.storages, PASSWORD, cache_dir=cache_dir,
                                    use_cache=cache_dir is not None)

    @property
    def packs_read(self) -> list[str]:
        return [name for storage in self.storages for name, _, _ in storage.pack_reads]

    def __enter__(self) -> _Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self.repo.close()


def _walked(repo: Repository, snapshot: Snapshot) -> list[bytes]:
    return [path for path, _ in walk(repo, snapshot.tree)]


def test_trees_are_read_from_the_cache_once_it_holds_their_packs(make_repo, tmp_path,
                                                                  cache_dir):
    """The backup leaves its tree packs in the cache: reading its trees costs no target read.
    With an empty cache each tree pack is downloaded once, whole, and then never again (it was
    a read per tree)."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    packs = _tree_packs(repo)
    assert _cached(cache_dir, repo) == packs

    with _Counted(tmp_path / "repo", cache_dir) as warm:
        paths = _walked(warm.repo, snapshot)
    assert warm.packs_read == [] and len(paths) >= 60

    cold = tmp_path / "cold"
    with _Counted(tmp_path / "repo", cold) as first:
        assert _walked(first.repo, snapshot) == paths
    assert sorted(first.packs_read) == sorted(pack_name(p) for p in packs)
    assert _cached(cold, repo) == packs
    with _Counted(tmp_path / "repo", cold) as second:
        assert _walked(second.repo, snapshot) == paths
    assert second.packs_read == []


def test_a_cache_shared_by_threads_downloads_each_pack_once(make_repo, tmp_path):
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    with _Counted(tmp_path / "repo", tmp_path / "cold") as counted:
        # a slow target: the threads ask for the pack while its download is under way
        counted.storage.inject("read", Fault(delay=0.05, times=None, prefix="data/"))
        walks: list[list[bytes]] = []
        threads = [threading.Thread(target=lambda: walks.append(_walked(counted.repo, snapshot)))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(walks) == 8 and all(w == walks[0] for w in walks)
    assert sorted(counted.packs_read) == sorted(pack_name(p) for p in _tree_packs(repo))


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty"])
def test_a_damaged_copy_is_downloaded_again_and_the_read_succeeds(make_repo, tmp_path, cache_dir,
                                                                  caplog, damage):
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    root = repo.index.get(snapshot.tree)
    copy = _copy(cache_dir, repo, root.pack_id)
    data = bytearray(copy.read_bytes())
    if damage == "flipped":
        data[root.offset + root.length // 2] ^= 0x01  # the first tree a walk reads
    copy.write_bytes({"flipped": data, "truncated": data[: root.offset + 10],
                      "empty": b""}[damage])

    with caplog.at_level(logging.WARNING, "fogvault"), \
            _Counted(tmp_path / "repo", cache_dir) as counted:
        assert len(_walked(counted.repo, snapshot)) >= 60
    assert counted.packs_read == [pack_name(root.pack_id)]
    assert copy.read_bytes() == (tmp_path / "repo" / pack_name(root.pack_id)).read_bytes()
    assert f"the cached copy of tree pack {root.pack_id.hex()} is damaged" in caplog.text


def test_a_damaged_copy_that_cannot_be_removed_is_read_past(make_repo, tmp_path, cache_dir,
                                                          caplog):
    """An immutable cache file (or a read-only cache folder): its pack's trees are read from
    the targets, with one warning, not refused each time."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    root = repo.index.get(snapshot.tree)
    copy = _copy(cache_dir, repo, root.pack_id)
    copy.write_bytes(b"")
    if subprocess.run(["chattr", "+i", str(copy)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i does not work here (needs root and ext4, btrfs or xfs)")
    try:
        with caplog.at_level(logging.WARNING, "fogvault"), \
                _Counted(tmp_path / "repo", cache_dir) as counted:
            assert len(_walked(counted.repo, snapshot)) >= 60
    finally:
        subprocess.run(["chattr", "-i", str(copy)], check=True)
    assert caplog.text.count("is damaged") == 1
    assert len(counted.packs_read) > 30 and copy.read_bytes() == b""  # a read per tree


def test_a_pack_damaged_on_the_target_is_read_in_ranges_and_not_cached(make_repo, tmp_path):
    """A tree pack that no target holds intact is not cached: its trees are read one by one,
    as without a cache, so that only the damaged one fails."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    trees = [e for e in repo.index if e.blob_type is BlobType.TREE]
    damaged = next(e for e in trees if e.blob_id != snapshot.tree)
    stored = tmp_path / "repo" / pack_name(damaged.pack_id)
    data = bytearray(stored.read_bytes())
    data[damaged.offset + damaged.length // 2] ^= 0x01
    stored.write_bytes(data)
    same_pack = [e.blob_id for e in trees if e.pack_id == damaged.pack_id]

    cold = tmp_path / "cold"
    with _Counted(tmp_path / "repo", cold) as counted:
        loaded = dict(counted.repo.load_trees(same_pack))
    assert isinstance(loaded.pop(damaged.blob_id), IntegrityError)
    assert all(isinstance(tree, Tree) for tree in loaded.values()) and loaded
    assert damaged.pack_id not in _cached(cold, repo)


def _flip_blob(pack: Path, entry: IndexEntry) -> bytes:
    """Flip a bit in the middle of ``entry``'s blob in the pack file ``pack``; its new bytes."""
    data = bytearray(pack.read_bytes())
    data[entry.offset + entry.length // 2] ^= 0x01
    pack.write_bytes(data)
    return bytes(data)


def _load_each(repo: Repository, tree_ids: list[bytes]) -> dict[bytes, Tree | Exception]:
    """Each tree loaded alone, as ``ls -R`` and a restore read them (a read per folder)."""
    loaded: dict[bytes, Tree | Exception] = {}
    for tree_id in tree_ids:
        try:
            loaded[tree_id] = repo.load_tree(tree_id)
        except IntegrityError as exc:
            loaded[tree_id] = exc
    return loaded


def test_a_pack_damaged_on_every_target_is_downloaded_whole_once(make_repo, tmp_path, caplog):
    """Each tree read of it downloaded the whole pack from every target again, with a warning
    for each copy (ls -R of 200 folders: 305 lines); now once, then it is read in ranges as
    without a cache: the warnings are those of the download and of the damaged tree."""
    repo = make_repo("a", "b")
    _backup(repo, _folders(tmp_path / "src", 30))
    trees = [e for e in repo.index if e.blob_type is BlobType.TREE]
    damaged = trees[len(trees) // 2]
    for target in ("a", "b"):
        _flip_blob(tmp_path / target / pack_name(damaged.pack_id), damaged)
    same_pack = [e.blob_id for e in trees if e.pack_id == damaged.pack_id]
    assert len(same_pack) > 30

    cold = tmp_path / "cold"
    with caplog.at_level(logging.WARNING, "fogvault"), \
            _Counted([tmp_path / "a", tmp_path / "b"], cold) as counted:
        loaded = _load_each(counted.repo, same_pack)
    assert isinstance(loaded.pop(damaged.blob_id), IntegrityError)
    assert all(isinstance(tree, Tree) for tree in loaded.values())
    for target, storage in zip(("a", "b"), counted.storages, strict=True):
        assert storage.whole_reads(tmp_path / target / pack_name(damaged.pack_id)) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, caplog.text  # the download, the damaged tree: on each target
    assert damaged.pack_id not in _cached(cold, repo)


def test_a_pack_missing_everywhere_is_asked_for_whole_once(make_repo, tmp_path):
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 10))
    root = repo.index.get(snapshot.tree)
    stored = tmp_path / "repo" / pack_name(root.pack_id)
    size = stored.stat().st_size
    stored.unlink()
    with _Counted(tmp_path / "repo", tmp_path / "cold") as counted:
        for _ in range(3):
            with pytest.raises(ObjectNotFound):
                counted.repo.load_tree(snapshot.tree)
    reads = counted.storage.pack_reads
    assert [length > size for _, _, length in reads] == [True, False, False, False]


def _written_damaged(repo: Repository, tmp_path: Path, snapshot: Snapshot) -> tuple[bytes,
                                                                                   IndexEntry]:
    """A tree pack that holds a damaged tree and hashes to its name (as one written damaged
    would: memory corrupted before the pack was sealed), indexed in place of the intact one;
    its id and the damaged tree's entry."""
    [(intact, first, end)] = [(p, f, e) for p, f, e in repo.index.packs()
                              if p in _tree_packs(repo)]
    damaged = next(e for e in repo.index if e.pack_id == intact and e.blob_id != snapshot.tree)
    data = _flip_blob(tmp_path / "repo" / pack_name(intact), damaged)
    pack_id = content_hash(data)
    (tmp_path / "repo" / pack_name(pack_id)).parent.mkdir(exist_ok=True)
    (tmp_path / "repo" / pack_name(intact)).rename(tmp_path / "repo" / pack_name(pack_id))
    repo.save_index(IndexFile(listings={pack_id: repo.index.listing(first, end)},
                              supersedes=sorted(repo.index_ids())))
    return pack_id, damaged


def test_a_tree_damaged_in_its_pack_fails_alone_and_the_copy_is_kept(make_repo, tmp_path,
                                                                      caplog):
    """The pack hashes to its name, so its copy is no worse than the targets': each read of
    the damaged tree failed the copy as damaged (a warning), deleted it, downloaded the whole
    pack again and failed. Now the tree fails with its own error, and the copy serves the
    pack's other trees, in this process and the next."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    pack_id, damaged = _written_damaged(repo, tmp_path, snapshot)
    stored = tmp_path / "repo" / pack_name(pack_id)
    others = [e.blob_id for e in repo.index if e.pack_id == pack_id and e != damaged]

    cold = tmp_path / "cold"
    with caplog.at_level(logging.WARNING, "fogvault"):
        for downloads in (1, 0):  # the second process reads the copy the first downloaded
            with _Counted(tmp_path / "repo", cold) as counted:
                for _ in range(3):
                    with pytest.raises(IntegrityError, match="authentication failed"):
                        counted.repo.load_tree(damaged.blob_id)
                loaded = _load_each(counted.repo, others)
            assert all(isinstance(tree, Tree) for tree in loaded.values())
            assert len(counted.packs_read) == counted.storage.whole_reads(stored) == downloads
            assert _copy(cold, repo, pack_id).read_bytes() == stored.read_bytes()
    assert "damaged" not in caplog.text


def test_packs_a_prune_deletes_leave_the_cache(make_repo, tmp_path, cache_dir):
    repo = make_repo()
    first = _backup(repo, _folders(tmp_path / "one", 20, seed=1))
    first_packs = _tree_packs(repo)
    _backup(repo, _folders(tmp_path / "two", 20, seed=2))
    repo.delete_snapshot(first.uid)
    prune(repo, PruneOptions(max_unused=0))
    assert first_packs - _tree_packs(repo) == first_packs  # deleted or repacked
    assert _cached(cache_dir, repo) == _tree_packs(repo)


def test_opening_removes_copies_of_objects_the_repository_no_longer_holds(make_repo, tmp_path,
                                                                          cache_dir):
    """As another process's prune leaves them: packs no index lists, index files no target
    lists, and temporary files a killed writer left an hour ago; a younger temporary file (a
    write in progress) and what the cache does not write are kept."""
    repo = make_repo()
    _backup(repo, _folders(tmp_path / "src", 10))
    folder = _folder(cache_dir, repo)
    kept = set(os.listdir(folder))
    gone_pack = _copy(cache_dir, repo, os.urandom(32))
    gone_index = folder / f"index_{os.urandom(32).hex()}"
    stale, fresh, foreign = folder / ".tmp-stale", folder / ".tmp-fresh", folder / "notes"
    for path in (gone_pack, gone_index, stale, fresh, foreign):
        path.write_bytes(b"x")
    old = os.stat(stale).st_mtime - STALE_TEMP_S - 60
    os.utime(stale, (old, old))

    Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir).close()
    assert set(os.listdir(folder)) == kept | {".tmp-fresh", "notes"}


def test_check_reads_trees_from_the_targets_not_the_cache(make_repo, tmp_path, cache_dir):
    """With every tree pack intact in the cache, check (without reading data) still finds a
    tree damaged on the target, and one whose pack is missing there."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 10))
    root = repo.index.get(snapshot.tree)
    stored = tmp_path / "repo" / pack_name(root.pack_id)
    intact = stored.read_bytes()
    data = bytearray(intact)
    data[root.offset + root.length // 2] ^= 0x01
    stored.write_bytes(data)
    assert root.pack_id in _cached(cache_dir, repo)

    damaged = check(repo)
    assert not damaged.ok
    assert damaged.problems == [f"snapshot {snapshot.uid}: tree of /: authentication failed "
                                "(wrong key, or the data was altered)"]

    stored.unlink()
    missing = check(repo)
    assert missing.targets[0].missing == [pack_name(root.pack_id)]
    problem, lost = missing.problems
    assert lost == (f"pack {pack_name(root.pack_id)} is missing or damaged on every target: "
                    "the local cache holds a good copy, which 'fogvault repair' copies back")
    assert problem.startswith(f"snapshot {snapshot.uid}: tree of /: ")
    assert problem.endswith(f"{pack_name(root.pack_id)}: no such object")
    assert _copy(cache_dir, repo, root.pack_id).read_bytes() == intact  # check leaves it


def test_within_trees_from_targets_no_copy_is_read_or_written(make_repo, tmp_path):
    """What check and repair use: every tree read goes to the targets."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 10))
    cold = tmp_path / "cold"
    with _Counted(tmp_path / "repo", cold) as counted:
        with counted.repo.trees_from_targets():
            trees = len(_walked(counted.repo, snapshot))
        assert len(counted.packs_read) > len(_tree_packs(repo))  # a read per folder
        assert _cached(cold, repo) == set()
        _walked(counted.repo, snapshot)  # and the cache is back after the block
    assert _cached(cold, repo) == _tree_packs(repo) and trees


def test_cache_folder_and_tree_pack_modes(make_repo, tmp_path, cache_dir):
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 10))
    cold = tmp_path / "cold"
    with _Counted(tmp_path / "repo", cold) as counted:
        _walked(counted.repo, snapshot)
    for cache in (cache_dir, cold):  # written by the backup; downloaded
        folder = _folder(cache, repo)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        copies = list(folder.glob("data_*"))
        assert copies and {stat.S_IMODE(p.stat().st_mode) for p in copies} == {0o600}


def test_a_cache_that_cannot_take_a_pack_costs_one_warning(make_repo, tmp_path, caplog):
    """A copy that cannot be written (here a folder in its place; a full or read-only disk):
    the trees are read in ranges from the targets, as without a cache."""
    repo = make_repo()
    snapshot = _backup(repo, _folders(tmp_path / "src", 30))
    cold = tmp_path / "cold"
    [pack] = _tree_packs(repo)
    _copy(cold, repo, pack).mkdir(parents=True)
    with caplog.at_level(logging.WARNING, "fogvault"), \
            _Counted(tmp_path / "repo", cold) as counted:
        assert len(_walked(counted.repo, snapshot)) >= 60
    assert caplog.text.count("tree packs are not cached") == 1
    assert len(counted.packs_read) > 30  # the first whole, then a read per tree


def test_a_cache_that_cannot_take_a_pack_still_serves_the_copies_it_holds(make_repo, tmp_path,
                                                                          cache_dir, caplog):
    """Once one copy could not be written, every tree was read from the targets, the intact
    copies of the other packs unused. Only downloads stop; the warning says why."""
    repo = make_repo(pack_size=64 * 1024)
    snapshot = _backup(repo, _folders(tmp_path / "src", 400))
    packs = _tree_packs(repo)
    assert len(packs) >= 2 and _cached(cache_dir, repo) == packs
    root = repo.index.get(snapshot.tree).pack_id
    _copy(cache_dir, repo, root).unlink()
    _copy(cache_dir, repo, root).mkdir()  # as a full disk would refuse it
    with caplog.at_level(logging.WARNING, "fogvault"), \
            _Counted(tmp_path / "repo", cache_dir) as counted:
        assert len(_walked(counted.repo, snapshot)) >= 800
    assert set(counted.packs_read) == {pack_name(root)}
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("tree packs are not cached from now on (the copies already there "
                              "are still read): cannot write to ")
    assert warning.endswith(": Is a directory")


def test_no_cache_writes_no_tree_packs(fogvault, tmp_path):
    _folders(tmp_path / "src", 10)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("-r", "repo", "--cache-dir", "cache", "backup", "src").returncode == 0
    [folder] = (tmp_path / "cache").glob("*/")  # beside it: CACHEDIR.TAG
    before = sorted(os.listdir(folder))
    assert any(name.startswith("data_") for name in before)
    (tmp_path / "src" / "d0" / "new").mkdir()
    for command in (["backup", "src"], ["ls", "-R", "latest"],
                    ["restore", "latest", "-t", "out"]):
        done = fogvault("-r", "repo", "--cache-dir", "cache", "--no-cache", *command)
        assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(folder)) == before


def test_two_restores_at_once_share_a_cache(fogvault, cli_env, tmp_path):
    """Both download the same tree packs into one cold cache (each copy replaced atomically):
    both restores are whole, and every copy left is its pack."""
    _folders(tmp_path / "src", 60)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("-r", "repo", "--no-cache", "backup", "src").returncode == 0
    restores = [subprocess.Popen(
        [sys.executable, "-m", "fogvault", "-r", "repo", "--cache-dir", "cache", "restore",
         "latest", "-t", f"out{i}"], env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE) for i in range(2)]
    for process in restores:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    source = sorted(p.relative_to(tmp_path / "src") for p in (tmp_path / "src").rglob("*"))
    for i in range(2):
        restored = tmp_path / f"out{i}" / tmp_path.relative_to("/") / "src"
        assert sorted(p.relative_to(restored) for p in restored.rglob("*")) == source
    [folder] = (tmp_path / "cache").glob("*/")  # beside it: CACHEDIR.TAG
    copies = list(folder.glob("data_*"))
    assert copies and not list(folder.glob(".tmp-*"))
    assert all(content_hash(p.read_bytes()).hex() == p.name[-64:] for p in copies)


def test_the_cache_command_counts_tree_packs_and_removes_them_with_their_folder(fogvault,
                                                                               tmp_path):
    _folders(tmp_path / "src", 10)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("-r", "repo", "--cache-dir", "cache", "backup", "src").returncode == 0
    [folder] = (tmp_path / "cache").glob("*/")  # beside it: CACHEDIR.TAG
    copies = list(folder.glob("data_*"))
    done = fogvault("--cache-dir", "cache", "cache", "--json")
    [listed] = json.loads(done.stdout)["folders"]
    assert listed["tree_packs"] == len(copies) >= 1
    assert listed["tree_pack_size"] == sum(p.stat().st_size for p in copies) < listed["size"]
    text = fogvault("--cache-dir", "cache", "cache").stdout.decode().splitlines()
    assert "Tree packs" in text[1] and f" {len(copies)} (" in text[-1]

    long_ago = time.time() - 100 * 86400
    os.utime(folder, (long_ago, long_ago))
    done = fogvault("--cache-dir", "cache", "cache", "--cleanup")
    assert done.returncode == 0, done.stderr
    assert not folder.exists()
