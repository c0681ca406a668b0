"""The view a mount shows, without FUSE: entries with their stored metadata, listings, reads at
any offset, damaged data as EIO with one warning, and new snapshots after the reload interval.
Real repositories on real folders, real backups."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import IntegrityError
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.maintenance.rewrite import RewriteOptions, rewrite
from fogvault.mount.cache import BoundedCache
from fogvault.mount.chunks import FAILURE_KEPT_S
from fogvault.mount.files import FileContent
from fogvault.mount.view import Entry, MountOptions, SnapshotView, Usage, tree_bytes
from fogvault.repo.format import pack_name
from fogvault.repo.index import BlobIndex
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import SnapshotSummary
from fogvault.repo.tree import FILE, SYMLINK, Node, Tree
from fogvault.targets.health import Target
from tests.mount.mounting import flip_a_byte, held_memory

LATIN1 = b"caf\xe9"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    rng = random.Random(7)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "chunky").write_bytes(rng.randbytes(1_000_000))  # ~15 chunks of the tests' chunker
    (src / "small").write_bytes(b"small file\n")
    (src / "empty").write_bytes(b"")
    os.link(src / "small", src / "sub" / "hardlink")
    os.symlink("../small", src / "sub" / "link")
    (src / os.fsdecode(LATIN1)).write_bytes(b"latin-1 name")
    os.setxattr(src / "small", "user.note", b"\x00binary\xff")
    os.chmod(src / "small", 0o640)
    os.utime(src / "sub", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return src


@pytest.fixture
def repo(make_repo: Callable[..., Repository], src: Path) -> Repository:
    repo = make_repo()
    Archiver(repo, BackupOptions(tags=["daily"])).run([str(src)])
    return repo


def _base(view: SnapshotView, src: Path) -> bytes:
    [uid] = [name for name, _ in view.listdir(b"/ids")]
    return b"/ids/" + uid + os.fsencode(src)


def test_entries_show_what_was_stored(repo: Repository, src: Path) -> None:
    view = SnapshotView(repo)
    base = _base(view, src)
    for rel in ("chunky", "small", "empty", "sub", "sub/hardlink", "sub/link",
                os.fsdecode(LATIN1)):
        entry, st = view.lookup(base + b"/" + os.fsencode(rel)), (src / rel).lstat()
        assert (entry.mode | {"file": 0o100000, "dir": 0o40000, "symlink": 0o120000}[entry.type],
                entry.uid, entry.gid, entry.mtime_ns, entry.ctime_ns) == (
            st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns), rel
        if entry.type != "dir":
            assert entry.size == st.st_size, rel
    small, hardlink = view.lookup(base + b"/small"), view.lookup(base + b"/sub/hardlink")
    assert (small.ino, small.nlink) == (hardlink.ino, 2)
    assert small.xattrs == [(b"user.note", b"\x00binary\xff")]
    assert view.lookup(base + b"/sub/link").target == b"../small"
    assert view.lookup(base + b"/sub").nlink == 1
    assert len({view.lookup(base + b"/" + name).ino for name, _ in view.listdir(base)}) == 5


def test_listings_and_paths_that_are_not_there(repo: Repository, src: Path) -> None:
    view = SnapshotView(repo)
    base = _base(view, src)
    assert {name for name, _ in view.listdir(b"/")} == {b"ids", b"snapshots", b"hosts", b"tags"}
    assert {name for name, _ in view.listdir(base)} == {b"chunky", b"small", b"empty", b"sub",
                                                       LATIN1}
    [(time_name, _), (latest, link)] = view.listdir(b"/tags/daily")
    assert (latest, link.type, link.target) == (b"latest", "symlink", time_name)
    for missing in (base + b"/nothing", b"/hosts/nobody", b"/ids/0123456789abcdef/x"):
        with pytest.raises(FileNotFoundError):
            view.lookup(missing)
    for below_a_file in (base + b"/small/x", b"/snapshots/latest/x"):
        with pytest.raises(NotADirectoryError):
            view.lookup(below_a_file)
    with pytest.raises(NotADirectoryError):
        view.listdir(base + b"/small")


def test_reads_at_any_offset_and_size_match_the_file(repo: Repository, src: Path) -> None:
    # a cache of about two chunks: most reads load their chunks again
    view = SnapshotView(repo, MountOptions(chunk_cache_bytes=150_000))
    data = (src / "chunky").read_bytes()
    handle = view.open(_base(view, src) + b"/chunky")
    rng = random.Random(3)
    for _ in range(200):
        offset = rng.randrange(len(data) + 10)
        size = rng.choice([1, 4096, 131072, rng.randrange(1, 400_000)])
        assert view.read(handle, offset, size) == data[offset:offset + size], (offset, size)
    assert view.read(handle, 0, len(data) * 2) == data
    view.release(handle)
    with pytest.raises(OSError) as raised:
        view.read(handle, 0, 1)
    assert raised.value.errno == errno.EBADF
    empty = view.open(_base(view, src) + b"/empty")
    assert view.read(empty, 0, 4096) == b""


def test_a_damaged_chunk_is_an_io_error_with_one_warning(
        repo: Repository, src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    view = SnapshotView(repo)
    base = _base(view, src)
    chunky = view.lookup(base + b"/chunky").node
    assert chunky is not None and len(chunky.content) > 3
    entry = repo.index.get(chunky.content[2])
    assert entry is not None
    flip_a_byte(tmp_path / "repo", entry)
    content = FileContent(repo.index, chunky)
    damaged_at = content.ends[1]  # where the third chunk starts
    data = (src / "chunky").read_bytes()
    handle = view.open(base + b"/chunky")
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        for _ in range(2):
            with pytest.raises(OSError) as raised:
                view.read(handle, damaged_at + 10, 100)
            assert raised.value.errno == errno.EIO
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"cannot read {os.fsdecode(base)}/chunky: chunk "
                              f"{chunky.content[2].hex()}: ")
    assert view.read(handle, 0, damaged_at) == data[:damaged_at]  # the chunks before it
    after = content.ends[2]
    assert view.read(handle, after, 5000) == data[after:after + 5000]
    assert view.read(view.open(base + b"/small"), 0, 100) == b"small file\n"


def test_a_damaged_chunk_is_read_once_for_the_reads_that_retry_it_until_repaired(
        repo: Repository, src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The kernel asks again after a failed read: those retries fail at once, with the same
    error, for FAILURE_KEPT_S; then the chunk is read again, here repaired meanwhile."""
    now = [0.0]
    view = SnapshotView(repo, clock=lambda: now[0])
    path = _base(view, src) + b"/chunky"
    chunky = view.lookup(path).node
    entry = repo.index.get(chunky.content[2])
    flip_a_byte(tmp_path / "repo", entry)
    damaged_at = FileContent(repo.index, chunky).ends[1]
    handle = view.open(path)
    [target] = repo.targets.targets
    reads_before = target.meter.requests["read"]
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        for _ in range(4):
            with pytest.raises(OSError) as raised:
                view.read(handle, damaged_at, 4096)
            assert raised.value.errno == errno.EIO
        now[0] = FAILURE_KEPT_S - 0.001
        with pytest.raises(OSError, match=f"chunk {chunky.content[2].hex()}: "):
            view.read(view.open(path), damaged_at + 4096, 4096)  # another handle: the same
    assert target.meter.requests["read"] - reads_before == 1
    assert len(caplog.records) == 1
    flip_a_byte(tmp_path / "repo", entry)  # repaired
    now[0] = FAILURE_KEPT_S
    data = (src / "chunky").read_bytes()
    assert view.read(handle, damaged_at, 4096) == data[damaged_at:damaged_at + 4096]
    assert target.meter.requests["read"] - reads_before == 2


@pytest.fixture
def mirrored(make_repo: Callable[..., Repository], src: Path,
             monkeypatch: pytest.MonkeyPatch) -> tuple[SnapshotView, bytes]:
    """A view of a backup of ``src`` on two targets, loading each chunk for each read, and
    the path of ``chunky`` in it. Reads try 'first' first, whatever the reads so far measured
    (targets are tried fastest first: timings under load could put 'second' first, and the
    first target's misses would then not be asked for), and the view looks for snapshots no
    more while a test runs."""
    repo = make_repo("first", "second")
    Archiver(repo, BackupOptions()).run([str(src)])
    monkeypatch.setattr(Target, "speed_key", lambda target: float(target.url.endswith("second")))
    view = SnapshotView(repo, MountOptions(chunk_cache_bytes=0, reload_interval=3600.0))
    return view, _base(view, src) + b"/chunky"


def _chunks_by_pack(view: SnapshotView, path: bytes) -> dict[bytes, list[tuple[int, int]]]:
    """The packs that hold the chunks of the file at ``path``, each with where its chunks are
    in the file (start, end)."""
    node = view.lookup(path).node
    ends = FileContent(view.repo.index, node).ends
    spans: dict[bytes, list[tuple[int, int]]] = {}
    for chunk, start, end in zip(node.content, [0, *ends[:-1]], ends, strict=True):
        spans.setdefault(view.repo.index.get(chunk).pack_id, []).append((start, end))
    return spans


def _read_each(view: SnapshotView, path: bytes, spans: list[tuple[int, int]],
               data: bytes) -> None:
    """Read each span of the file at ``path`` from a handle of its own (so that nothing is
    loaded ahead) and check it against ``data``."""
    for start, end in spans:
        handle = view.open(path)
        assert view.read(handle, start, end - start) == data[start:end]
        view.release(handle)


def _missing(target: Target, pack_id: bytes) -> str:
    return f"{target.url}: {pack_name(pack_id)} is missing; reading it from another target"


def test_a_pack_missing_on_one_target_is_one_warning_for_all_the_chunks_read_from_it(
        mirrored: tuple[SnapshotView, bytes], src: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each read of one of its chunks reads it from the other target: the first says so, not
    each one (one warning per chunk read), though the target reads other packs between."""
    view, path = mirrored
    by_pack = _chunks_by_pack(view, path)
    pack_id = max(by_pack, key=lambda pack: len(by_pack[pack]))
    assert len(by_pack[pack_id]) >= 3
    [elsewhere, *_] = (spans for pack, spans in by_pack.items() if pack != pack_id)
    first = view.repo.targets.read_order()[0]
    (Path(first.url) / pack_name(pack_id)).unlink()
    data = (src / "chunky").read_bytes()
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        for _ in range(2):
            for span in by_pack[pack_id]:
                _read_each(view, path, [span], data)
                reads = first.meter.requests["read"]
                _read_each(view, path, elsewhere[:1], data)
                assert first.meter.requests["read"] == reads + 1  # it read
    assert [r.getMessage() for r in caplog.records] == [_missing(first, pack_id)]


def test_a_target_lacking_packs_is_one_warning_until_it_reads_again(
        mirrored: tuple[SnapshotView, bytes], src: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """As a target gone lacks all it is asked for: the first pack missing there is told, not
    the others, until a read from it works; a pack missing after that is told."""
    view, path = mirrored
    by_pack = _chunks_by_pack(view, path)
    assert len(by_pack) >= 3
    first = view.repo.targets.read_order()[0]
    kept, *gone = by_pack
    for pack_id in gone:
        (Path(first.url) / pack_name(pack_id)).unlink()
    data = (src / "chunky").read_bytes()
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        for pack_id in gone:
            _read_each(view, path, by_pack[pack_id], data)
        reads = first.meter.requests["read"]
        _read_each(view, path, by_pack[kept], data)
        assert first.meter.requests["read"] == reads + len(by_pack[kept])  # it read them
        (Path(first.url) / pack_name(kept)).unlink()
        for pack_id in (kept, *gone):  # the ones told already are not told again
            _read_each(view, path, by_pack[pack_id], data)
    assert [r.getMessage() for r in caplog.records] == [_missing(first, gone[0]),
                                                        _missing(first, kept)]


def test_a_listing_that_fails_holds_nothing_of_what_it_read(
        make_repo: Callable[..., Repository], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Failed listings are not kept, but the error of a read that failed on every target holds
    itself through its traceback (a cycle), and with it the bytes that read: with the garbage
    collector off, each failure used to hold the folder's sealed listing and the tree pack."""
    repo = make_repo()
    folder = tmp_path / "src" / "folder"
    folder.mkdir(parents=True)
    for number in range(500):
        (folder / f"a-file-with-a-long-name-{number:04}").write_bytes(b"%d" % number)
    Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    uncached = Repository.open(repo.targets.urls, PASSWORD, use_cache=False)  # the target's
    view = SnapshotView(uncached)
    path = _base(view, folder)
    entry = repo.index.get(view.lookup(path).node.subtree)
    assert entry.length > 20_000
    flip_a_byte(tmp_path / "repo", entry)
    caplog.set_level(logging.CRITICAL, logger="fogvault")  # no log records to count
    try:
        with held_memory() as held:
            for _ in range(20):
                with pytest.raises(OSError):
                    view.listdir(path)
    finally:
        uncached.close()
    assert held.bytes < 20 * 2048


def test_chunks_that_do_not_hold_the_whole_file_are_an_integrity_error() -> None:
    unindexed = Node(b"f", FILE, size=10, content=[bytes(32)])
    with pytest.raises(IntegrityError, match="is not in the index"):
        FileContent(BlobIndex(), unindexed).read(0, 10, lambda blob_id: bytes(10))
    assert FileContent(BlobIndex(), Node(b"e", FILE)).read(0, 10, bytes) == b""


def test_new_and_forgotten_snapshots_show_after_the_reload_interval(
        repo: Repository, src: Path) -> None:
    now = [0.0]
    view = SnapshotView(repo, MountOptions(reload_interval=5.0), clock=lambda: now[0])
    [first] = [name for name, _ in view.listdir(b"/ids")]
    (src / "small").write_bytes(b"changed\n")
    second = Archiver(repo, BackupOptions(host="other")).run([str(src)]).snapshot.uid.encode()
    now[0] = 4.9
    assert [name for name, _ in view.listdir(b"/ids")] == [first]
    with pytest.raises(FileNotFoundError):
        view.lookup(b"/ids/" + second)
    now[0] = 5.0
    assert view.lookup(b"/ids/" + second).type == "dir"  # a lookup that misses looks too
    assert {name for name, _ in view.listdir(b"/ids")} == {first, second}
    for folder in (b"/snapshots/", b"/hosts/other/"):  # latest: the new one
        newest = folder + view.lookup(folder + b"latest").target
        handle = view.open(newest + os.fsencode(src) + b"/small")
        assert view.read(handle, 0, 100) == b"changed\n"
    repo.delete_snapshot(first.decode())
    now[0] = 10.0
    assert [name for name, _ in view.listdir(b"/ids")] == [second]
    assert [name for name, _ in view.listdir(b"/hosts")] == [b"other"]


def test_filters_choose_the_snapshots(repo: Repository, src: Path) -> None:
    Archiver(repo, BackupOptions(host="other", tags=["weekly"])).run([str(src)])
    for options, hosts in ((MountOptions(host="other"), [b"other"]),
                           (MountOptions(tags=("daily",)), [os.uname().nodename.encode()]),
                           (MountOptions(paths=("/elsewhere",)), [])):
        view = SnapshotView(repo, options)
        assert [name for name, _ in view.listdir(b"/hosts")] == hosts
        assert len(view.listdir(b"/ids")) == len(hosts)


def test_the_cache_stays_within_its_budget() -> None:
    cache: BoundedCache[int, bytes] = BoundedCache(1000)
    for key in range(50):
        cache.put(key, bytes(300), 300)
        assert cache.held <= 1000
        assert cache.get(0) is not None or key >= 3  # used again: kept while others go
    assert (len(cache), cache.get(0) is not None, cache.get(48) is not None) == (3, True, True)
    cache.put(99, bytes(1001), 1001)  # larger than the whole budget: kept beyond it
    assert (cache.get(99) is not None, cache.held, len(cache)) == (True, 1901, 4)
    for key in range(100, 110):  # the small ones around its uses do not push it out
        cache.put(key, bytes(300), 300)
    assert (cache.get(99) is not None, cache.held) == (True, 1901)
    cache.put(98, bytes(501), 501)  # over half the budget: takes the large one's place
    assert (cache.get(99), cache.get(98) is not None, cache.held) == (None, True, 1401)
    none_large: BoundedCache[int, bytes] = BoundedCache(1000, large_kept=0)
    none_large.put(1, bytes(501), 501)
    assert (none_large.get(1), none_large.held) == (None, 0)


def test_latest_is_the_snapshot_other_commands_take_of_two_with_one_time(
        repo: Repository) -> None:
    """A retagged copy has its original's time: of the two, latest is whichever ``restore
    latest`` takes, and the other is told apart by -1."""
    [original] = repo.snapshots()
    for uid in ("0" * 16, "f" * 16):  # sorting before and after the original's uid
        repo.save_snapshot(dataclasses.replace(original, uid=uid, tags=["copy"]))
    view = SnapshotView(repo)
    by_time = view.layout.folders[(b"snapshots",)]
    assert by_time[b"latest"].snapshot.uid == repo.resolve_snapshot("latest")
    assert len(by_time) == 4 and by_time[b"latest"].target.endswith(b"-2")


def test_a_file_whose_bytes_are_a_stored_tree_reads(make_repo: Callable[..., Repository],
                                                    tmp_path: Path) -> None:
    """Data and tree blobs share one id space: a file holding exactly an empty folder's
    encoding, backed up after that folder, is stored as the folder's tree blob."""
    repo = make_repo()
    (tmp_path / "empty").mkdir()
    Archiver(repo, BackupOptions()).run([str(tmp_path / "empty")])
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "tree.json").write_bytes(Tree().encode())
    Archiver(repo, BackupOptions(host="files")).run([str(tmp_path / "files")])
    view = SnapshotView(repo)
    latest = view.lookup(b"/hosts/files/latest").target
    path = b"/hosts/files/" + latest + os.fsencode(tmp_path / "files" / "tree.json")
    node = view.lookup(path).node
    assert node is not None and repo.index.get(node.content[0]).blob_type.name == "TREE"
    assert view.read(view.open(path), 0, 100) == Tree().encode()


def test_a_folder_larger_than_the_tree_cache_is_read_once_for_all_its_lookups(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``ls -l`` does: a stat of each entry of a folder whose decoded listing is larger
    than the whole cache (the folders above it are small, and are cached as usual)."""
    repo = make_repo()
    big = tmp_path / "src" / "big"
    big.mkdir(parents=True)
    for number in range(60):
        (big / f"file-{number:04}").write_bytes(b"%d" % number)
    Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    view = SnapshotView(repo, MountOptions(tree_cache_bytes=10_000))
    loaded: list[bytes] = []
    load_tree = repo.load_tree

    def counted(tree_id: bytes) -> Tree:
        loaded.append(tree_id)
        return load_tree(tree_id)

    monkeypatch.setattr(repo, "load_tree", counted)
    folder = _base(view, big)
    names = [name for name, _ in view.listdir(folder)]
    stored = repo.index.get(loaded[-1])  # the folder's tree, listed last
    assert stored is not None and stored.raw_length > 10_000 and len(names) == 60
    assert tree_bytes(repo.load_tree(stored.blob_id)) > 10_000
    loaded.clear()
    for name in names:
        assert view.lookup(folder + b"/" + name).size == len(b"%d" % int(name[5:]))
    assert loaded == []


def test_the_handles_of_one_file_share_its_chunk_offsets(
        repo: Repository, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    view = SnapshotView(repo)
    path = _base(view, src) + b"/chunky"
    chunks = view.lookup(path).node.content  # its folders' trees loaded: in the cache
    looked_up: list[bytes] = []
    get = repo.index.get
    monkeypatch.setattr(repo.index, "get", lambda blob_id: looked_up.append(blob_id) or
                        get(blob_id))
    handles = [view.open(path)]
    assert looked_up == chunks  # one index lookup per chunk, for the first open
    handles += [view.open(path) for _ in range(20)]
    assert looked_up == chunks
    data = (src / "chunky").read_bytes()
    for handle in handles:
        assert view.read(handle, 500_000, 100) == data[500_000:500_100]


def test_a_chunk_that_a_prune_elsewhere_repacked_is_read_from_its_new_pack(
        make_repo: Callable[..., Repository], reopen: Callable[[Repository], Repository],
        tmp_path: Path) -> None:
    """As after a lock that went stale during a suspend, or a mount with --no-lock."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "kept").write_bytes(b"kept " * 100)
    (src / "dropped").write_bytes(random.Random(5).randbytes(5000))
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    (src / "dropped").unlink()
    Archiver(repo, BackupOptions()).run([str(src)])
    view = SnapshotView(repo, MountOptions(reload_interval=0.0))
    path = (b"/snapshots/" + view.lookup(b"/snapshots/latest").target
            + os.fsencode(src / "kept"))
    handle = view.open(path)
    [chunk] = view.lookup(path).node.content
    before = repo.index.get(chunk)
    elsewhere = reopen(repo)
    elsewhere.delete_snapshot(first)
    prune(elsewhere, PruneOptions(max_unused=0.0))
    assert elsewhere.index.get(chunk).pack_id != before.pack_id
    assert not (tmp_path / "repo" / pack_name(before.pack_id)).exists()
    assert view.read(handle, 0, 1000) == b"kept " * 100


def _below(view: SnapshotView, folder: bytes) -> list[Entry]:
    """Every entry below ``folder`` in the mount, as ``find`` lists them."""
    found = []
    for name, entry in view.listdir(folder):
        found.append(entry)
        if entry.type == "dir":
            found += _below(view, folder.rstrip(b"/") + b"/" + name)
    return found


def test_df_counts_at_least_the_names_a_mount_shows(
        make_repo: Callable[..., Repository], src: Path, tmp_path: Path) -> None:
    """From the layout and the snapshots' manifests alone: every entry of the layout, and
    each snapshot's contents once, exactly but for what no summary records (symbolic links,
    folders above only some of its paths, all of a snapshot without a summary), and never
    more than the mount shows, whatever the filters show."""
    repo = make_repo()
    whole = Archiver(repo, BackupOptions(tags=["daily", "weekly"])).run([str(src)]).snapshot
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "f").write_bytes(b"f")
    two_paths = Archiver(repo, BackupOptions(host="two")).run(
        [str(src / "sub"), str(tmp_path / "elsewhere" / "f")]).snapshot
    unsummarised = dataclasses.replace(whole, uid="0" * 16, summary=SnapshotSummary())
    repo.save_snapshot(unsummarised)  # as recover saves one, or an older writer
    # a backup of /, as the backup of src would have been if src were /: its summary counts
    # the root folder, which is the snapshot's root
    src_tree = SnapshotView(repo).lookup(b"/ids/" + whole.uid.encode() + os.fsencode(src))
    root = dataclasses.replace(whole, uid="1" * 16, paths=["/"], tree=src_tree.node.subtree)
    repo.save_snapshot(root)
    # everything taken out but the folders above tmp_path: they are not counted
    [emptied] = rewrite(repo, RewriteOptions(excludes=[str(tmp_path)],
                                             uids=[whole.uid])).rewritten
    view = SnapshotView(repo)
    shown = {uid: _below(view, b"/ids/" + uid.encode())
             for uid in (whole.uid, two_paths.uid, unsummarised.uid, root.uid,
                         emptied.new_uid)}
    links = {uid: sum(entry.type == SYMLINK for entry in entries)
             for uid, entries in shown.items()}
    assert links[whole.uid] == links[root.uid] == links[two_paths.uid] == 1
    counted = {whole.uid: len(shown[whole.uid]) - 1,
               two_paths.uid: len(shown[two_paths.uid]) - 1 - 2,  # src/ and elsewhere/
               unsummarised.uid: 0, root.uid: len(shown[root.uid]) - 1, emptied.new_uid: 0}
    assert len(shown[emptied.new_uid]) > 0
    layout = 1 + sum(len(view.listdir(b"/" + b"/".join(key))) for key in view.layout.folders)
    assert view.usage().entries == layout + sum(counted.values())
    assert view.usage().entries < 1 + len(_below(view, b"/"))
    assert SnapshotView(repo, MountOptions(host="two")).usage() == view.usage()


def test_df_shows_an_empty_repository_as_one_block_and_the_layout(
        make_repo: Callable[..., Repository]) -> None:
    """``df`` leaves out file systems of 0 blocks; the entries are the root and its four
    folders, which a repository without snapshots shows too."""
    view = SnapshotView(make_repo())
    assert view.usage() == Usage(1, 5)
    assert [name for name, _ in view.listdir(b"/")] == [b"ids", b"snapshots", b"hosts", b"tags"]


def test_the_mount_imports_no_other_engine() -> None:
    """It reads a repository through fogvault.repo alone (df's size is the index's own
    figure): maintenance, backup and restore are sibling engines."""
    listed = subprocess.run(
        [sys.executable, "-c", "import sys, fogvault.mount.server, fogvault.mount.view; "
         "print(*sorted(m for m in sys.modules if m.startswith('fogvault.')))"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert "fogvault.mount.view" in listed
    assert [m for m in listed if m.startswith(("fogvault.maintenance", "fogvault.backup",
                                               "fogvault.restore"))] == []
